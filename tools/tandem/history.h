// Importing an editing trace into a store, shared by the `tandem` command, the benchmarks and
// the tests. (Replaying a log to a past point is store::replay, store/replay.h.)
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "crdt/doc.h"
#include "storage/store.h"
#include "store/replay.h"
#include "trace.h"

namespace tandem::history {

using Progress = store::Progress;  // (done, total)

struct ImportOptions {
  uint64_t row_events = 1024;        // events per log row at most
  storage::SnapshotPolicy policy;    // snapshots while importing, and one at the end
  // Called after each transaction with the number of events logged so far and the server's
  // replica: lets tests record the text at points of the history.
  std::function<void(uint64_t events, const crdt::Doc& replica)> after_txn;
};

// Appends the trace's history to a new document `doc`: a server-side replica integrates every
// transaction in trace order (concurrent traces: as their agents made them), and its events go to
// the log in rows of at most row_events. Fails if `doc` exists. Returns the replica.
crdt::Result<crdt::Doc> import_trace(store::DocStore& store, const std::string& doc, const trace::Trace& t,
                                     const ImportOptions& options = {}, const Progress& progress = {});

}  // namespace tandem::history
