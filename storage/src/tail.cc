#include "tail.h"

#include "crdt/codec.h"

namespace tandem::storage {

crdt::Status TailReplay::add(std::string_view raw, std::string where) {
  auto batch = crdt::codec::decode_batch_sequence(raw);
  if (!batch.ok()) {
    // A row before this one may be at fault too: that one is named first.
    TANDEM_RETURN_IF_ERROR(flush());
    return batch.status().WithContext(where);
  }
  bytes_ += batch->bytes.size() + batch->runs.size() * sizeof(crdt::Batch::Run);
  queued_.push_back(std::move(*batch));
  where_.push_back(std::move(where));
  return bytes_ >= kGroupBytes ? flush() : crdt::Status::OK();
}

crdt::Status TailReplay::finish() { return flush(); }

crdt::Status TailReplay::flush() {
  std::vector<const crdt::Batch*> group;
  group.reserve(queued_.size());
  for (const auto& b : queued_) group.push_back(&b);
  const auto result = replica_.integrate_group(group);
  for (size_t i = 0; i < result.size(); ++i) {
    if (!result[i].ok()) return result[i].WithContext(where_[i]);
  }
  queued_.clear();
  where_.clear();
  bytes_ = 0;
  return crdt::Status::OK();
}

}  // namespace tandem::storage
