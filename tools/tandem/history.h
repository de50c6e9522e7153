// Building and rebuilding documents from histories: importing an editing trace into a store,
// and replaying a document's log to a past point. Shared by the `tandem` command and the tests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "crdt/doc.h"
#include "storage/store.h"
#include "trace.h"

namespace tandem::history {

// Progress callback: (done, total).
using Progress = std::function<void(uint64_t, uint64_t)>;

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
crdt::Result<crdt::Doc> import_trace(storage::LogStore& store, const std::string& doc, const trace::Trace& t,
                                     const ImportOptions& options = {}, const Progress& progress = {});

// Rebuilds `doc` from its log alone, as it was after its first `at_event` events and/or with
// only the rows committed at or before `until_ms`.
crdt::Result<crdt::Doc> replay_log(storage::LogStore& store, const std::string& doc, uint64_t at_event = UINT64_MAX,
                                   int64_t until_ms = INT64_MAX, const Progress& progress = {});

}  // namespace tandem::history
