// Rebuilding a replica from the rows of its log after a snapshot (or from its start): rows are
// decoded as they are read and integrated in groups, one merge for many rows
// (crdt::Doc::integrate_group), so that a long tail of concurrent edits is walked once rather
// than once per row. A row's error names its place in the log, and the first row at fault is the
// one named, as when rows were integrated one at a time.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "crdt/batch.h"
#include "crdt/doc.h"
#include "crdt/status.h"

namespace tandem::storage {

class TailReplay {
 public:
  explicit TailReplay(crdt::Doc* replica) : replica_(*replica) {}
  // Decodes a row (an encoded op batch sequence) and queues it; integrates what is queued once it
  // holds kGroupBytes. `where` names the row in errors ("log of 'doc' at event 12").
  crdt::Status add(std::string_view raw, std::string where);
  // Integrates what is still queued. Call once, after the last row.
  crdt::Status finish();

  // About this much decoded log is held at once: a tail without a snapshot can be the whole log.
  static constexpr size_t kGroupBytes = size_t{8} << 20;

 private:
  crdt::Status flush();
  crdt::Doc& replica_;
  std::vector<crdt::Batch> queued_;
  std::vector<std::string> where_;
  size_t bytes_ = 0;
};

}  // namespace tandem::storage
