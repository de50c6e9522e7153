#include "crdt/batch.h"

#include <unordered_map>

namespace tandem::crdt {

namespace {

// Builds a batch's agent table from the names its runs and parents give, each once. A batch may
// name many agents (a git history's 194) and repeats the last one most: a hash of views into the
// source runs, which outlive the build, behind a one-name cache.
class Interner {
 public:
  explicit Interner(Batch* b) : b_(*b) {}
  uint32_t operator()(std::string_view name) {
    if (last_ != UINT32_MAX && name == last_name_) return last_;
    auto [it, added] = index_.emplace(name, static_cast<uint32_t>(b_.agents.size()));
    if (added) {
      b_.agents.push_back({static_cast<uint32_t>(b_.bytes.size()), static_cast<uint32_t>(name.size())});
      b_.bytes.append(name);
    }
    last_ = it->second;
    last_name_ = name;
    return last_;
  }

 private:
  Batch& b_;
  std::unordered_map<std::string_view, uint32_t> index_;
  uint32_t last_ = UINT32_MAX;
  std::string_view last_name_;
};

}  // namespace

Batch Batch::from(const OpBatch& batch) {
  Batch b;
  b.runs.reserve(batch.runs.size());
  size_t text = 0, parents = 0;
  for (const OpRun& r : batch.runs) {
    text += r.content.size();
    parents += r.parents.size();
  }
  b.bytes.reserve(text + 64);
  b.parents.reserve(parents);
  Interner intern(&b);
  for (const OpRun& r : batch.runs) {
    Run run;
    run.agent = intern(r.agent);
    run.seq = r.seq;
    run.kind = r.kind;
    run.pos = r.pos;
    run.len = r.len;
    run.parents = static_cast<uint32_t>(b.parents.size());
    run.nparents = static_cast<uint32_t>(r.parents.size());
    for (const OpId& p : r.parents) b.parents.push_back({intern(p.agent), p.seq});
    if (!r.content.empty()) {
      run.text = {static_cast<uint32_t>(b.bytes.size()), static_cast<uint32_t>(r.content.size())};
      b.bytes.append(r.content);
    }
    if (r.format) {
      run.format = static_cast<uint32_t>(b.formats.size());
      b.formats.push_back(*r.format);
    }
    b.runs.push_back(run);
  }
  return b;
}

Batch Batch::join(std::span<const Batch* const> batches) {
  Batch j;
  size_t bytes = 0, runs = 0, parents = 0;
  for (const Batch* b : batches) {
    bytes += b->bytes.size();
    runs += b->runs.size();
    parents += b->parents.size();
  }
  j.bytes.reserve(bytes + 64);
  j.runs.reserve(runs);
  j.parents.reserve(parents);
  Interner intern(&j);
  std::vector<uint32_t> to_joined;  // a batch's agent index -> the joined table's
  for (const Batch* b : batches) {
    const auto off = static_cast<uint32_t>(j.bytes.size());
    const auto fmt = static_cast<uint32_t>(j.formats.size());
    j.bytes.append(b->bytes);
    to_joined.clear();
    for (uint32_t i = 0; i < b->agents.size(); ++i) to_joined.push_back(intern(b->agent(i)));
    for (Run r : b->runs) {
      // Only the parents runs name are taken (and checked by validation): a batch's list may hold
      // others, naming any index.
      const auto first = static_cast<uint32_t>(j.parents.size());
      for (const Parent& p : b->parents_of(r)) j.parents.push_back({to_joined[p.agent], p.seq});
      r.parents = first;
      r.agent = to_joined[r.agent];
      r.text.off += off;
      if (r.format != kNoFormat) r.format += fmt;
      j.runs.push_back(r);
    }
    j.formats.insert(j.formats.end(), b->formats.begin(), b->formats.end());
  }
  return j;
}

OpRun Batch::op_run(size_t i) const {
  const Run& r = runs[i];
  OpRun out;
  out.agent = agent(r.agent);
  out.seq = r.seq;
  out.kind = r.kind;
  out.pos = r.pos;
  out.len = r.len;
  out.parents.reserve(r.nparents);
  for (const Parent& p : parents_of(r)) out.parents.push_back({std::string(agent(p.agent)), p.seq});
  out.content = text(r);
  if (IsFormat(r.kind)) out.format = formats[r.format];
  return out;
}

OpBatch Batch::to_op_batch() const {
  OpBatch out;
  out.runs.reserve(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) out.runs.push_back(op_run(i));
  return out;
}

}  // namespace tandem::crdt
