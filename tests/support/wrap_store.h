// A DocStore that hands every call to another: tests derive from it to put faults, gates or
// counters between the server and a real store, overriding only what they change.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "store/doc_store.h"

namespace tandem::testing {

class WrapStore : public store::DocStore {
 public:
  explicit WrapStore(store::DocStore& inner) : inner_(inner) {}
  using store::DocStore::append;
  void append(std::string doc, uint64_t first, crdt::codec::EncodedOps batch, Done done) override {
    inner_.append(std::move(doc), first, std::move(batch), std::move(done));
  }
  void put_snapshot(std::string doc, uint64_t events, std::string bytes, Done done, std::string position) override {
    inner_.put_snapshot(std::move(doc), events, std::move(bytes), std::move(done), std::move(position));
  }
  void remove_document(std::string doc, Done done) override { inner_.remove_document(std::move(doc), std::move(done)); }
  crdt::Status sync() override { return inner_.sync(); }
  crdt::Result<crdt::Doc> load(std::string_view doc, std::string_view agent, std::vector<std::string>* warnings) override {
    return inner_.load(doc, agent, warnings);
  }
  crdt::Result<uint64_t> logged_events(std::string_view doc) override { return inner_.logged_events(doc); }
  crdt::Result<std::vector<store::LogRow>> read_log(std::string_view doc, uint64_t from, uint64_t to) override {
    return inner_.read_log(doc, from, to);
  }
  crdt::Result<std::vector<store::SnapshotInfo>> snapshots(std::string_view doc) override { return inner_.snapshots(doc); }
  void put_version(std::string doc, store::NamedVersion v, Done done) override {
    inner_.put_version(std::move(doc), std::move(v), std::move(done));
  }
  crdt::Result<std::vector<store::NamedVersion>> versions(std::string_view doc) override { return inner_.versions(doc); }
  crdt::Result<std::vector<store::DocInfo>> list() override { return inner_.list(); }
  crdt::Result<store::DocInfo> info(std::string_view doc) override { return inner_.info(doc); }
  crdt::Result<std::string> integrity_check() override { return inner_.integrity_check(); }
  store::StoreStats stats() const override { return inner_.stats(); }
  const std::string& path() const override { return inner_.path(); }
  void watch(const std::string& doc, Remote on_remote) override { inner_.watch(doc, std::move(on_remote)); }
  void unwatch(const std::string& doc) override { inner_.unwatch(doc); }

 protected:
  store::DocStore& inner_;
};

// A store whose appends are durable only when the test opens the gate.
class GateStore : public WrapStore {
 public:
  using WrapStore::WrapStore;
  using WrapStore::append;
  void append(std::string doc, uint64_t first, crdt::codec::EncodedOps batch, Done done) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (open_) {
      lock.unlock();
      inner_.append(doc, first, std::move(batch), std::move(done));
      return;
    }
    held_.push_back([this, doc, first, batch = std::move(batch), done = std::move(done)]() mutable {
      inner_.append(doc, first, std::move(batch), std::move(done));
    });
  }

  void set_open(bool open) {
    std::vector<std::function<void()>> run;
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = open;
      if (open) run.swap(held_);
    }
    for (auto& f : run) f();
  }
  size_t held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_.size();
  }

 private:
  std::mutex mu_;
  bool open_ = true;
  std::vector<std::function<void()>> held_;
};

}  // namespace tandem::testing
