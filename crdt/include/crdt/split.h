// Splitting an op batch for senders whose receiver limits the size of a message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "crdt/batch.h"
#include "crdt/op.h"
#include "crdt/version.h"

namespace tandem::crdt {

// Splits `batch` into batches of at most `max_events` events and about `max_bytes` bytes of
// encoding (an overestimate per run; at least 4096), cutting runs where needed: the rest of a
// cut run continues with its own previous event as parent. Applied in order, the pieces have the
// same effect as the whole. A batch holding kInsertDeleted runs is returned whole, since cutting
// it could separate such a run from the deletes it relies on (op.h).
std::vector<OpBatch> split_batch(OpBatch batch, uint64_t max_events, size_t max_bytes);

// A run cut after its first `at` events (0 < at < run.len): the rest continues with its own
// previous event as parent, its text and position adjusted.
std::pair<OpRun, OpRun> cut_run(OpRun run, uint32_t at);

// `batch` without the events (by id) that `remove` holds, runs cut where needed. A server that
// integrated operations another node logged uses it to find what else they released (its own
// clients' held operations), which it must log itself.
OpBatch without_events(const OpBatch& batch, const OpBatch& remove);

// How far the batch reaches per agent: one past the highest seq it holds of each. Whoever holds
// that version holds every event of the batch (an agent's events arrive in order).
Version reach(const OpBatch& batch);
// The same of a Batch that Doc::ValidateBatch accepts.
Version reach(const Batch& batch);

}  // namespace tandem::crdt
