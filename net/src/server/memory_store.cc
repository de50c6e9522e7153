#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "net/doc_store.h"

namespace tandem::net {

namespace {

using crdt::Status;

// In-memory DocStore: the log as op batches in a map, durable at once.
class MemoryStore final : public DocStore {
 public:
  crdt::Result<crdt::Doc> load(const std::string& doc, const std::string& agent) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(doc);
    if (it == docs_.end()) return Status::NotFound("no document '" + doc + "'");
    crdt::Doc d(agent);
    for (const auto& b : it->second) {
      auto r = d.apply(b);
      if (!r.ok()) return r.status();
    }
    return d;
  }
  void append(const std::string& doc, uint64_t, crdt::OpBatch batch, Done done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      docs_[doc].push_back(std::move(batch));
    }
    if (done) done(Status::OK());
  }
  void put_snapshot(const std::string&, uint64_t, std::string, std::string, Done done) override {
    if (done) done(Status::OK());
  }
  Status flush() override { return Status::OK(); }
  crdt::Result<std::vector<Summary>> list() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Summary> out;
    for (const auto& [name, batches] : docs_) {
      Summary s;
      s.name = name;
      for (const auto& b : batches) {
        s.events += b.events();
        for (const auto& r : b.runs) {
          if (r.seq + r.len > s.version.next(r.agent)) s.version.advance(r.agent, r.seq + r.len);
        }
      }
      out.push_back(std::move(s));
    }
    std::sort(out.begin(), out.end(), [](const Summary& a, const Summary& b) { return a.name < b.name; });
    return out;
  }
  void remove(const std::string& doc, Done done) override {
    size_t n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      n = docs_.erase(doc);
    }
    done(n ? Status::OK() : Status::NotFound("no document '" + doc + "'"));
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<crdt::OpBatch>> docs_;
};

}  // namespace

std::unique_ptr<DocStore> make_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace tandem::net
