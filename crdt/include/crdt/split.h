// Splitting an op batch for senders whose receiver limits the size of a message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "crdt/op.h"

namespace tandem::crdt {

// Splits `batch` into batches of at most `max_events` events and about `max_bytes` bytes of
// encoding (an overestimate per run; at least 4096), cutting runs where needed: the rest of a
// cut run continues with its own previous event as parent. Applied in order, the pieces have the
// same effect as the whole. A batch holding kInsertDeleted runs is returned whole, since cutting
// it could separate such a run from the deletes it relies on (op.h).
std::vector<OpBatch> split_batch(OpBatch batch, uint64_t max_events, size_t max_bytes);

}  // namespace tandem::crdt
