#include "crdt/batch.h"

#include <algorithm>

namespace tandem::crdt {

uint32_t Batch::intern(std::string_view name) {
  // A batch names a few agents (a git history's, 194): runs repeat the last one or two.
  for (size_t k = agents.size(), seen = 0; k-- > 0 && seen < 4; ++seen) {
    if (agent(static_cast<uint32_t>(k)) == name) return static_cast<uint32_t>(k);
  }
  for (size_t k = 0; k < agents.size(); ++k) {
    if (agent(static_cast<uint32_t>(k)) == name) return static_cast<uint32_t>(k);
  }
  agents.push_back({static_cast<uint32_t>(bytes.size()), static_cast<uint32_t>(name.size())});
  bytes.append(name);
  return static_cast<uint32_t>(agents.size() - 1);
}

void Batch::append(const OpRun& r) {
  Run run;
  run.agent = intern(r.agent);
  run.seq = r.seq;
  run.kind = r.kind;
  run.pos = r.pos;
  run.len = r.len;
  run.parents = static_cast<uint32_t>(parents.size());
  run.nparents = static_cast<uint32_t>(r.parents.size());
  for (const OpId& p : r.parents) parents.push_back({intern(p.agent), p.seq});
  if (!r.content.empty()) {
    run.text = {static_cast<uint32_t>(bytes.size()), static_cast<uint32_t>(r.content.size())};
    bytes.append(r.content);
  }
  if (r.format) {
    run.format = static_cast<uint32_t>(formats.size());
    formats.push_back(*r.format);
  }
  runs.push_back(run);
}

Batch Batch::from(const OpBatch& batch) {
  Batch b;
  b.runs.reserve(batch.runs.size());
  size_t text = 0;
  for (const OpRun& r : batch.runs) text += r.content.size();
  b.bytes.reserve(text + 64);
  for (const OpRun& r : batch.runs) b.append(r);
  return b;
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
