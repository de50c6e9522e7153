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

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<crdt::OpBatch>> docs_;
};

}  // namespace

std::unique_ptr<DocStore> make_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace tandem::net
