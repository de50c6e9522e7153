// Inbox<T>: what a store's writer thread receives from any number of threads, without a lock
// shared by the senders (the server's I/O threads append on the way of every edit). Items are
// pushed on a lock-free stack; the writer takes them all at once, oldest first. A mutex and a
// condition variable only put the writer to sleep when there is nothing to do, and wake it.
#pragma once

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace tandem::storage {

// Hands `send` a callback taking a Status, blocks until the writer calls it, and returns that status:
// sync() of a store waits this way for everything queued before it.
template <class Status, class Send>
Status wait_for_writer(Send send) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  Status result;
  send([&](Status st) {
    std::lock_guard<std::mutex> lock(m);
    result = st;
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return done; });
  return result;
}

// Lowers the calling thread's scheduling priority (nice +5): a store's writer does its work in
// bursts (a commit, folding the journal) and must not take the core from the I/O threads that
// answer clients while it does; its commits wait on the disk most of the time anyway.
inline void yield_to_io_threads() { (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 5); }

template <class T>
class Inbox {
 public:
  ~Inbox() {
    std::vector<T> left;
    take(&left);
  }

  void push(T item) {
    Node* n = new Node{std::move(item), head_.load(std::memory_order_relaxed)};
    // Sequentially consistent with the writer's "idle_ = true, then look at the inbox".
    while (!head_.compare_exchange_weak(n->next, n)) {
    }
    // A writer pacing its commits picks the item up when its interval ends; waking it for every
    // item would cost a context switch each.
    if (idle_.load() && idle_.exchange(false)) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_one();
    }
  }

  // Everything pushed so far, oldest first, appended to *out.
  void take(std::vector<T>* out) {
    Node* n = head_.exchange(nullptr, std::memory_order_acquire);
    const size_t first = out->size();
    while (n) {
      out->push_back(std::move(n->item));
      Node* next = n->next;
      delete n;
      n = next;
    }
    std::reverse(out->begin() + static_cast<std::ptrdiff_t>(first), out->end());
  }

  bool empty() const { return head_.load() == nullptr; }

  // The writer: sleeps until something is pushed, stop() is called, or `deadline` passes.
  template <class Clock, class Duration>
  void wait(std::chrono::time_point<Clock, Duration> deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    idle_ = true;  // cleared by the push that wakes the writer (under mu_), or below
    cv_.wait_until(lock, deadline, [&] { return stopping_.load() || !empty(); });
    idle_ = false;
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_ = true;
    cv_.wait(lock, [&] { return stopping_.load() || !empty(); });
    idle_ = false;
  }
  // The writer, pacing: sleeps until `deadline` unless stop() is called.
  template <class Clock, class Duration>
  void pause_until(std::chrono::time_point<Clock, Duration> deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return stopping_.load(); });
  }

  void stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  bool stopping() const { return stopping_.load(); }

 private:
  struct Node {
    T item;
    Node* next;
  };
  std::atomic<Node*> head_{nullptr};
  std::atomic<bool> idle_{false};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace tandem::storage
