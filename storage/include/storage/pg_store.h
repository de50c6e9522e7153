// PgStore: documents, their operation logs and snapshots in PostgreSQL, shared by several Tandem
// nodes (docs/scale-out.md). The same contract as the SQLite Store: an append is acknowledged only
// after the transaction holding it committed with synchronous_commit = on; appends are committed
// group-wise across documents; a document loads from its newest snapshot plus the log after it;
// the schema has a version, and a database from a newer Tandem, or with a schema "tandem" that is
// not Tandem's, is refused.
//
// Sharing without locks. Every process that opens the store is a new node with a name of its own;
// it numbers its rows of each document 1, 2, 3, ... (node_seq) and commits them in that order, so
// "node N's rows of document D up to k" is a gap-free prefix and a reader's position in a
// document is one such k per node. A node learns of other nodes' rows through LISTEN/NOTIFY (the
// writer notifies in the commit) and, in case a notification is lost or late, by looking at the
// per-node heads of the documents it watches every poll interval; either way it reads the rows by
// node_seq. Operations commute, so nodes never wait for each other: two nodes may even log the
// same operation (a client that sent it to both); loading skips such repeats.
//
// A lost connection does not fail an append: the writer keeps what it has, reconnects with
// backoff (up to 2 s between tries) and commits it then (rows are keyed by (doc, node, node_seq),
// so a commit whose outcome was lost with the connection is retried harmlessly). Acknowledgements
// simply wait. Readers and the listener reconnect the same way.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "store/doc_store.h"

namespace tandem::storage {

using crdt::Result;
using crdt::Status;

inline constexpr int kPgSchemaVersion = 1;

struct PgOptions {
  std::string conninfo;  // a libpq connection string or URI (postgresql://USER:PASS@HOST:PORT/DB)
  bool read_only = false;  // offline inspection: no writer, no listener, no schema changes
  // Group commit, as StoreOptions::commit_interval.
  std::chrono::microseconds commit_interval{4000};
  // How often watched documents are looked at without a notification.
  std::chrono::milliseconds poll_every{1000};
  uint32_t keep_snapshots = 2;
  // Warnings and notices (connection lost and back, say); none by default.
  std::function<void(const std::string&)> log;
};

// The PostgreSQL store; the methods are DocStore's (store/doc_store.h), with the rules above.
class PgStore : public store::DocStore {
 public:
  // Connects, creates or checks the schema, and registers this process as a node (unless
  // read_only). Errors name the cause: the server unreachable, authentication failed, a newer or
  // foreign schema. path() is the connection without its password. Destroying the store commits
  // what is queued (while the database can be reached), then closes.
  static Result<std::unique_ptr<PgStore>> open(const PgOptions& options);
  // This process's node name.
  virtual const std::string& node() const = 0;
};

}  // namespace tandem::storage
