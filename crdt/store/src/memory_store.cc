#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "crdt/codec.h"
#include "store/memory.h"

namespace tandem::store {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class MemoryStore final : public DocStore {
 public:
  using DocStore::append;
  void append(std::string doc, uint64_t first_event, crdt::codec::EncodedOps batch, Done done) override {
    Status st;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Document& d = docs_[doc];
      if (d.created_ms == 0) d.created_ms = now_ms();
      if (first_event != d.events) {
        st = Status::InvalidArgument("append to '" + doc + "' starts at event " + std::to_string(first_event) +
                                     " but its log holds " + std::to_string(d.events) + " events");
        if (d.rows.empty()) docs_.erase(doc);
      } else {
        const uint64_t n = batch.events;
        for (const auto& [agent, events] : batch.agents) add_agent(d, agent, events);
        d.rows.push_back({d.events, d.events + n, now_ms(), std::move(batch.bytes)});
        d.events += n;
        ++stats_.commits, ++stats_.batches, ++stats_.rows, stats_.events += n;
      }
      failed(st);
    }
    if (done) done(st);
  }
  void put_snapshot(std::string doc, uint64_t events, std::string bytes, Done done, std::string) override {
    Status st;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = docs_.find(doc);
      if (it == docs_.end()) {
        st = Status::NotFound("no document '" + doc + "'");
      } else if (events > it->second.events) {
        st = Status::InvalidArgument("snapshot of '" + doc + "' covers " + std::to_string(events) +
                                     " events but its log holds " + std::to_string(it->second.events));
      } else {
        it->second.snapshots.insert(it->second.snapshots.begin(), {events, now_ms(), bytes.size()});
        if (it->second.snapshots.size() > 2) it->second.snapshots.resize(2);
      }
      failed(st);
    }
    if (done) done(st);
  }
  void remove_document(std::string doc, Done done) override {
    Status st;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!docs_.erase(doc)) st = not_found(doc);
      failed(st);
    }
    if (done) done(st);
  }
  Status sync() override {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(failure_since_sync_, Status::OK());
  }

  void put_version(std::string doc, NamedVersion v, Done done) override {
    Status st;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = docs_.find(doc);
      if (it == docs_.end()) {
        st = not_found(doc);
      } else if (v.events > it->second.events) {
        st = version_past_log(doc, v.events, it->second.events);
      } else {
        auto& list = it->second.versions;
        if (std::any_of(list.begin(), list.end(), [&](const NamedVersion& x) { return x.name == v.name; })) {
          st = version_name_taken(doc, v.name);
        } else {
          v.time_ms = now_ms();
          list.insert(list.begin(), std::move(v));
        }
      }
      if (!is_refused_version(true, st)) failed(st);
    }
    if (done) done(st);
  }
  Result<std::vector<NamedVersion>> versions(std::string_view doc) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(std::string(doc));
    if (it == docs_.end()) return not_found(doc);
    return it->second.versions;
  }
  Result<crdt::Doc> load(std::string_view doc, std::string_view agent, std::vector<std::string>*) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(std::string(doc));
    if (it == docs_.end()) return not_found(doc);
    crdt::Doc d{std::string(agent)};
    for (const auto& row : it->second.rows) {
      auto batch = crdt::codec::decode_batch_sequence(row.batch);
      if (!batch.ok()) return batch.status().WithContext("log row at event " + std::to_string(row.first));
      auto r = d.apply(*batch);
      if (!r.ok()) return r.status().WithContext("log row at event " + std::to_string(row.first));
    }
    return d;
  }
  Result<uint64_t> logged_events(std::string_view doc) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(std::string(doc));
    if (it == docs_.end()) return not_found(doc);
    return it->second.events;
  }
  Result<std::vector<LogRow>> read_log(std::string_view doc, uint64_t from_event, uint64_t to_event) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(std::string(doc));
    if (it == docs_.end()) return not_found(doc);
    std::vector<LogRow> out;
    for (const auto& row : it->second.rows) {
      if (row.end > from_event && row.first < to_event) {
        out.push_back({row.first, row.end, row.time_ms, row.batch});
      }
    }
    return out;
  }
  Result<std::vector<SnapshotInfo>> snapshots(std::string_view doc) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(std::string(doc));
    if (it == docs_.end()) return not_found(doc);
    return it->second.snapshots;
  }
  Result<std::vector<DocInfo>> list() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<DocInfo> out;
    for (const auto& [name, d] : docs_) out.push_back(info_of(name, d));
    return out;
  }
  Result<DocInfo> info(std::string_view doc) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(std::string(doc));
    if (it == docs_.end()) return not_found(doc);
    return info_of(it->first, it->second);
  }
  // Every document's log replays.
  Result<std::string> integrity_check() override {
    std::vector<std::string> names;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [name, d] : docs_) names.push_back(name);
    }
    std::string problems;
    for (const auto& name : names) {
      auto d = load(name, "check", nullptr);
      if (!d.ok() && d.status().code() != Status::Code::kNotFound) {
        problems += (problems.empty() ? "" : "\n") + name + ": " + d.status().ToString();
      }
    }
    return problems.empty() ? std::string("ok") : problems;
  }
  StoreStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  const std::string& path() const override { return path_; }

 private:
  struct Row {
    uint64_t first = 0, end = 0;
    int64_t time_ms = 0;
    std::string batch;  // encoded batches, one after the other
  };
  struct Document {
    std::vector<Row> rows;
    uint64_t events = 0;
    int64_t created_ms = 0;
    std::vector<SnapshotInfo> snapshots;  // newest first
    std::vector<NamedVersion> versions;   // newest first
    std::vector<std::pair<std::string, uint64_t>> agents;
  };

  // Under mu_.
  void failed(const Status& st) {
    if (st.ok()) return;
    ++stats_.failed;
    if (failure_since_sync_.ok()) failure_since_sync_ = st;
  }
  static Status not_found(std::string_view doc) { return Status::NotFound("no document '" + std::string(doc) + "'"); }
  static void add_agent(Document& d, const std::string& agent, uint64_t n) {
    auto it = std::lower_bound(d.agents.begin(), d.agents.end(), agent,
                               [](const auto& a, const std::string& name) { return a.first < name; });
    if (it == d.agents.end() || it->first != agent) it = d.agents.insert(it, {agent, 0});
    it->second += n;
  }
  static DocInfo info_of(const std::string& name, const Document& d) {
    DocInfo i;
    i.name = name;
    i.events = d.events;
    i.log_rows = d.rows.size();
    for (const auto& r : d.rows) i.log_bytes += r.batch.size();
    i.snapshots = static_cast<uint32_t>(d.snapshots.size());
    if (!d.snapshots.empty()) {
      i.snapshot_bytes = d.snapshots.front().bytes;
      i.snapshot_events = d.snapshots.front().events;
      i.snapshot_ms = d.snapshots.front().time_ms;
    }
    i.created_ms = d.created_ms;
    i.updated_ms = d.rows.empty() ? d.created_ms : d.rows.back().time_ms;
    i.agents = d.agents;
    return i;
  }

  mutable std::mutex mu_;
  std::map<std::string, Document, std::less<>> docs_;  // by name, as list() reports them
  StoreStats stats_;
  Status failure_since_sync_;
  const std::string path_ = "(memory)";
};

}  // namespace

std::unique_ptr<DocStore> make_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace tandem::store
