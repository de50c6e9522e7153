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

#include "storage/log_store.h"

namespace tandem::storage {

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

class PgStore final : public LogStore {
 public:
  // Connects, creates or checks the schema, and registers this process as a node. Errors name the
  // cause: the server unreachable, authentication failed, a newer or foreign schema.
  static Result<std::unique_ptr<PgStore>> open(const PgOptions& options);
  ~PgStore() override;

  void append(std::string doc, uint64_t first_event, crdt::OpBatch batch, Done done) override;
  void put_snapshot(std::string doc, uint64_t events, std::string bytes, Done done, std::string position = {}) override;
  void remove_document(std::string doc, Done done) override;
  Status sync() override;

  Result<crdt::Doc> load(std::string_view doc, std::string_view agent, std::vector<std::string>* warnings) override;
  Result<uint64_t> logged_events(std::string_view doc) override;
  Result<std::vector<LogRow>> read_log(std::string_view doc, uint64_t from_event, uint64_t to_event) override;
  Result<std::vector<SnapshotInfo>> snapshots(std::string_view doc) override;
  Result<std::vector<DocInfo>> list() override;
  Result<DocInfo> info(std::string_view doc) override;
  // Rows whose batches do not decode, snapshots that do not load, heads behind their rows.
  Result<std::string> integrity_check() override;

  StoreStats stats() const override;
  const std::string& path() const override;  // the connection without its password

  void watch(const std::string& doc, Remote on_remote) override;
  void unwatch(const std::string& doc) override;

  // This process's node name.
  const std::string& node() const;

  struct Impl;

 private:
  explicit PgStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::storage
