// Replaying editing traces into Tandem replicas (tests and benchmarks).
#pragma once

#include <functional>
#include <vector>

#include "crdt/doc.h"
#include "trace.h"

namespace tandem::trace {

// Applies one txn's patches, in order, as local edits of `doc`.
crdt::Status apply_txn(const Txn& txn, crdt::Doc* doc);

// Applies every patch of a trace, in order, as local edits of `doc`.
crdt::Status replay_local(const Trace& t, crdt::Doc* doc);

// Replays a concurrent trace with one replica per agent (named "agent0", "agent1", ...): before a
// txn is applied on its agent's replica, that replica receives every ancestor txn it has not
// seen, each as the op batch captured when the txn was made. When `merge_all`, the first replica
// then receives all the others' operations.
// `on_txn`, when set, receives each txn's op batch as it is made (in trace order).
crdt::Result<std::vector<crdt::Doc>> replay_concurrent(
    const Trace& t, bool merge_all, const std::function<void(uint32_t, const crdt::OpBatch&)>& on_txn = {});

// One replica (agent "server") receives every batch, in order, each as its own apply, as a server
// receives its clients' transactions. Errors name the batch's index.
crdt::Result<crdt::Doc> ingest(const std::vector<crdt::OpBatch>& batches);

// Any trace: sequential traces replay into one replica, concurrent ones as above (merged).
// Returns the replica holding everything.
crdt::Result<crdt::Doc> replay(const Trace& t);

}  // namespace tandem::trace
