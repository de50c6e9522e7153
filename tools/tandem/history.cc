#include "history.h"

#include "crdt/codec.h"
#include "replay.h"

namespace tandem::history {

namespace codec = crdt::codec;
using crdt::Doc;
using crdt::OpBatch;
using crdt::Result;
using crdt::Status;

Result<Doc> import_trace(store::DocStore& store, const std::string& doc, const trace::Trace& t,
                         const ImportOptions& options, const Progress& progress) {
  if (auto have = store.logged_events(doc); have.ok()) {
    return Status::InvalidArgument("document '" + doc + "' already exists (" + std::to_string(*have) + " events)");
  }
  Doc server("tandem-import");
  uint64_t logged = 0, since_snapshot = 0;
  crdt::Version row_start;
  Status first_error;
  auto done = [&first_error](Status st) {
    if (!st.ok() && first_error.ok()) first_error = st;
  };
  auto flush_row = [&](bool force) {
    const uint64_t pending = server.num_events() - logged;
    if (pending == 0 || (!force && pending < options.row_events)) return;
    store.append(doc, logged, server.ops_since(row_start, Doc::DeletedText::kInclude), done);
    logged = server.num_events();
    row_start = server.version();
    since_snapshot += pending;
    if (since_snapshot >= options.policy.every_events) {
      store.put_snapshot(doc, logged, codec::save(server), done);
      since_snapshot = 0;
    }
  };
  auto after = [&](size_t i) {
    if (options.after_txn) {
      flush_row(true);  // so that the count of logged events is exact at this point
      options.after_txn(logged, server);
    } else {
      flush_row(false);
    }
    if (progress) progress(i + 1, t.txns.size());
  };
  if (!t.concurrent) {
    for (size_t i = 0; i < t.txns.size(); ++i) {
      Status st = trace::apply_txn(t.txns[i], &server);  // patches, then a rich trace's formatting
      if (!st.ok()) return st.WithContext(t.name + " txn " + std::to_string(i));
      after(i);
    }
  } else {
    Status st;
    auto replayed = trace::replay_concurrent(t, false, [&](uint32_t i, const OpBatch& made) {
      if (!st.ok()) return;
      auto r = server.apply(made);
      if (!r.ok()) st = r.status();
      after(i);
    });
    if (!replayed.ok()) return replayed.status();
    TANDEM_RETURN_IF_ERROR(st);
  }
  flush_row(true);
  store.put_snapshot(doc, logged, codec::save(server), done);
  Status synced = store.sync();
  TANDEM_RETURN_IF_ERROR(first_error);
  TANDEM_RETURN_IF_ERROR(synced);
  return server;
}

}  // namespace tandem::history
