// The write half that every database-backed store shares: one writer thread that commits
// group-wise. Callers from any number of documents and threads hand it writes (through an Inbox,
// without a shared lock); it takes everything queued, commits it in one transaction at least
// commit_interval after the previous commit started (an idle store commits at once), and only then
// reports each write done. What is a store's own (its statements, its transaction, retrying a lost
// connection, notifying other nodes) is its Backend; the grouping of appends into log rows, the
// pacing, sync() and the counts are here, once.
//
// Results. A write a store refuses on its own (a gap in the log, say) fails alone; a commit that
// fails fails every write in it, and nothing committed before is lost. sync() reports the first
// failure since the previous sync().
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "crdt/op.h"
#include "inbox.h"
#include "store/doc_store.h"

namespace tandem::storage {

using crdt::Result;
using crdt::Status;

struct Write {
  enum Kind { kAppend, kSnapshot, kRemove, kVersion, kSync } kind;
  std::string doc;
  uint64_t first = 0;    // append: the writer's count of events before it; snapshot: events covered
  uint64_t end = 0;      // append: first + its events
  crdt::codec::EncodedOps batch;  // append
  std::string bytes;     // snapshot
  std::string position;  // snapshot, for a shared store (DocStore::put_snapshot)
  store::DocStore::Done done;
  size_t row = 0;        // append: its row in the group (set by the writer)
  store::NamedVersion version{};  // version: its time set when queued
};

// Appends of one document that follow each other in a group (each starting where the one before
// ended, no snapshot or removal of the document between them) share one log row: they are written
// together, and succeed or fail together, as they would one by one.
struct Row {
  std::vector<size_t> items;  // indices into the group; the first is the row's head
};

class GroupWriter {
 public:
  class Backend {
   public:
    virtual ~Backend() = default;
    // Writes `group` (appends as `rows`; kSync items need nothing) in one transaction. A write
    // refused on its own gets its status in (*results)[i] (for a row, at its head); the
    // transaction's failure is returned and fails every write.
    virtual Status commit(std::vector<Write>& group, const std::vector<Row>& rows, std::vector<Status>* results) = 0;
    // With nothing queued: when idle() is due (nullopt: only when the writer stops).
    virtual std::optional<std::chrono::steady_clock::time_point> idle_due() { return std::nullopt; }
    // Runs when the writer woke with nothing queued: at idle_due() and on stopping.
    virtual void idle() {}
  };

  // where: the store's path, for messages. A read-only writer refuses writes and starts no thread.
  GroupWriter(std::string where, bool read_only, std::chrono::microseconds commit_interval)
      : where_(std::move(where)), read_only_(read_only), interval_(commit_interval) {}
  ~GroupWriter() { stop(); }
  GroupWriter(const GroupWriter&) = delete;
  GroupWriter& operator=(const GroupWriter&) = delete;

  // Starts the writer thread; `backend` must outlive stop().
  void start(Backend* backend);
  // Commits everything queued, then joins the thread. The backend's owner calls it first in its
  // destructor.
  void stop();

  void push(Write w);
  Status sync();
  store::StoreStats stats() const;

  // For a backend waiting to retry: whether the store is closing, and a pause that ends early then.
  bool closing() const { return inbox_.stopping(); }
  void pause_until(std::chrono::steady_clock::time_point t) { inbox_.pause_until(t); }

 private:
  void run();
  void commit(std::vector<Write>& group);

  const std::string where_;
  const bool read_only_;
  const std::chrono::microseconds interval_;
  Backend* backend_ = nullptr;
  Inbox<Write> inbox_;
  std::thread thread_;
  Status failure_since_sync_;  // writer thread only
  std::atomic<uint64_t> commits_{0}, batches_{0}, rows_{0}, events_{0}, failed_{0};
};

// The write half of a DocStore, for a store class `Interface` (itself a DocStore) whose concrete
// class is also the writer's Backend.
template <class Interface>
class WriterStore : public Interface, protected GroupWriter::Backend {
 public:
  using Done = store::DocStore::Done;
  using Interface::append;
  void append(std::string doc, uint64_t first_event, crdt::codec::EncodedOps batch, Done done) final {
    const uint64_t end = first_event + batch.events;
    writer_.push({Write::kAppend, std::move(doc), first_event, end, std::move(batch), {}, {}, std::move(done)});
  }
  void put_snapshot(std::string doc, uint64_t events, std::string bytes, Done done, std::string position) final {
    position = snapshot_position(doc, std::move(position));
    writer_.push({Write::kSnapshot, std::move(doc), events, 0, {}, std::move(bytes), std::move(position), std::move(done)});
  }
  void remove_document(std::string doc, Done done) final {
    writer_.push({Write::kRemove, std::move(doc), 0, 0, {}, {}, {}, std::move(done)});
  }
  void put_version(std::string doc, store::NamedVersion v, Done done) final {
    v.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    writer_.push({Write::kVersion, std::move(doc), 0, 0, {}, {}, {}, std::move(done), 0, std::move(v)});
  }
  Status sync() final { return writer_.sync(); }
  store::StoreStats stats() const final { return writer_.stats(); }

 protected:
  WriterStore(std::string where, bool read_only, std::chrono::microseconds commit_interval)
      : writer_(std::move(where), read_only, commit_interval) {}
  // A shared store fills in an empty position (what load() read) when the snapshot is queued.
  virtual std::string snapshot_position(const std::string& doc, std::string position) {
    (void)doc;
    return position;
  }
  GroupWriter writer_;
};

}  // namespace tandem::storage
