#include "store/replay.h"

#include <algorithm>

#include "crdt/codec.h"
#include "crdt/utf8.h"

namespace tandem::store {

namespace codec = crdt::codec;

crdt::Result<crdt::Doc> replay(DocStore& store, const std::string& doc, uint64_t at_event, int64_t until_ms,
                               const Progress& progress) {
  auto total = store.logged_events(doc);
  if (!total.ok()) return total.status();
  if (at_event != UINT64_MAX && at_event > *total) {
    return Status::OutOfRange("'" + doc + "' has only " + std::to_string(*total) + " operations, not " +
                              std::to_string(at_event));
  }
  const uint64_t target = std::min(at_event, *total);
  crdt::Doc replica("tandem-replay");
  constexpr uint64_t kSlice = 1 << 16;
  for (uint64_t from = 0; from < target;) {
    auto rows = store.read_log(doc, from, std::min(target, from + kSlice));
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return Status::Corruption("log of '" + doc + "' ends at event " + std::to_string(from));
    for (const auto& row : *rows) {
      if (row.time_ms > until_ms) return replica;
      auto batch = codec::decode_ops(row.batch);
      if (!batch.ok()) return batch.status().WithContext("log row at event " + std::to_string(row.first_event));
      if (row.end_event > target) *batch = batch_prefix(*batch, target - row.first_event);
      auto r = replica.apply(*batch);
      if (!r.ok()) return r.status().WithContext("log row at event " + std::to_string(row.first_event));
      from = row.end_event;
      if (progress) progress(std::min(from, target), target);
      if (from >= target) break;
    }
  }
  return replica;
}

crdt::OpBatch batch_prefix(const crdt::OpBatch& batch, uint64_t events) {
  crdt::OpBatch out;
  for (const auto& r : batch.runs) {
    if (events == 0) break;
    out.runs.push_back(r);
    if (r.len > events) {
      crdt::OpRun& last = out.runs.back();
      last.len = static_cast<uint32_t>(events);
      if (last.kind == crdt::OpKind::kInsert) last.content.resize(crdt::utf8::byte_offset(last.content, events));
    }
    events -= out.runs.back().len;
  }
  return out;
}

}  // namespace tandem::store
