#include "replay.h"

#include <algorithm>

namespace tandem::trace {

using crdt::Doc;
using crdt::Result;
using crdt::Status;

Status apply_txn(const Txn& txn, Doc* doc) {
  for (const Patch& p : txn.patches) {
    if (p.del) TANDEM_RETURN_IF_ERROR(doc->remove(p.pos, p.del));
    if (!p.ins.empty()) TANDEM_RETURN_IF_ERROR(doc->insert(p.pos, p.ins));
  }
  for (const Format& f : txn.formats) {
    if (!f.mark) {
      TANDEM_RETURN_IF_ERROR(doc->set_block(f.from, f.name, f.value));
    } else if (f.remove) {
      TANDEM_RETURN_IF_ERROR(doc->unmark(f.from, f.to - f.from, f.name, f.name == "comment" ? f.value : ""));
    } else {
      TANDEM_RETURN_IF_ERROR(doc->mark(f.from, f.to - f.from, f.name, f.value));
    }
  }
  return Status::OK();
}

Status replay_local(const Trace& t, Doc* doc) {
  for (size_t i = 0; i < t.txns.size(); ++i) {
    Status st = apply_txn(t.txns[i], doc);
    if (!st.ok()) return st.WithContext(t.name + " txn " + std::to_string(i));
  }
  return Status::OK();
}

Result<std::vector<Doc>> replay_concurrent(const Trace& t, bool merge_all,
                                           const std::function<void(uint32_t, const crdt::OpBatch&)>& on_txn) {
  std::vector<Doc> docs;
  for (uint32_t a = 0; a < std::max<uint32_t>(t.num_agents, 1); ++a) docs.emplace_back("agent" + std::to_string(a));
  std::vector<std::vector<bool>> seen(docs.size(), std::vector<bool>(t.txns.size(), false));
  std::vector<crdt::OpBatch> made(t.txns.size());
  std::vector<uint32_t> stack, todo;
  for (uint32_t i = 0; i < t.txns.size(); ++i) {
    const Txn& tx = t.txns[i];
    Doc& doc = docs[tx.agent];
    auto& s = seen[tx.agent];
    todo.clear();
    stack.assign(tx.parents.begin(), tx.parents.end());
    while (!stack.empty()) {
      const uint32_t x = stack.back();
      stack.pop_back();
      if (s[x]) continue;
      s[x] = true;
      todo.push_back(x);
      stack.insert(stack.end(), t.txns[x].parents.begin(), t.txns[x].parents.end());
    }
    std::sort(todo.begin(), todo.end());
    for (uint32_t x : todo) {
      auto r = doc.apply(made[x]);
      if (!r.ok()) return r.status().WithContext(t.name + " delivering txn " + std::to_string(x));
    }
    const crdt::Version before = doc.version();
    Status st = apply_txn(tx, &doc);
    if (!st.ok()) return st.WithContext(t.name + " txn " + std::to_string(i));
    made[i] = doc.ops_since(before, Doc::DeletedText::kInclude);
    if (on_txn) on_txn(i, made[i]);
    s[i] = true;
  }
  if (merge_all) {
    for (size_t b = 1; b < docs.size(); ++b) {
      auto r = docs[0].apply(docs[b].ops_since(docs[0].version()));
      if (!r.ok()) return r.status().WithContext(t.name + " final merge");
    }
  }
  return docs;
}

Result<Doc> ingest(const std::vector<crdt::OpBatch>& batches) {
  Doc server("server");
  for (size_t k = 0; k < batches.size(); ++k) {
    const Status st = server.integrate(crdt::Batch::from(batches[k]));  // as a server does: no patches
    if (!st.ok()) return st.WithContext("ingest of txn " + std::to_string(k));
  }
  return server;
}

Result<Doc> replay(const Trace& t) {
  if (!t.concurrent) {
    Doc doc("agent0");
    TANDEM_RETURN_IF_ERROR(replay_local(t, &doc));
    return doc;
  }
  auto docs = replay_concurrent(t, true);
  if (!docs.ok()) return docs.status();
  return std::move(docs->front());
}

}  // namespace tandem::trace
