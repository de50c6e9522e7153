// Store: documents, their operation logs and snapshots in one SQLite file.
//
// Writes go through one writer thread that commits group-wise: callers from any number of
// documents hand it batches; it takes everything queued, commits it in one transaction as soon as
// the previous commit has returned (no fixed delay), and only then reports each batch durable.
// A batch that cannot be written (a gap in the log, say) fails alone; a commit that fails fails
// every batch in it, and nothing committed before is lost.
//
// Durability. The file is in WAL mode. With Durability::kFull (the default) SQLite syncs the WAL
// at every commit, so a batch reported durable survives a crash of the process and of the
// machine (power loss). kNormal syncs only at checkpoints: still consistent after a crash, but
// the last commits before a power loss may be lost, though they were reported durable.
//
// The log. Each document's events are numbered 0, 1, 2, ... in the order the server integrated
// them. A log row holds the events [first_event, end_event) as encoded op batches (one, or several
// one after the other), with the time they were committed, so any range of history is read
// without decoding the rest. Rows of one document tile its numbering without gaps or overlaps
// (append checks it in the transaction). A commit writes its appends, for all documents, as one
// row of a journal; about once a second the journal is folded into per-document log rows (see
// store.cc), so that a commit's cost does not grow with the documents it touches. Readers see
// log and journal together; read_log hands out each row as one batch.
//
// Snapshots hold a whole replica (codec::save) and the number of events it covers. Loading a
// document takes its newest snapshot that decodes, plus the log rows after it.
//
// Threading: append, put_snapshot, remove_document and sync may be called from any thread. Their
// callbacks run on the writer thread: keep them short and do not call sync() from them. Reads
// (load, read_log, list, ...) may be called from any thread; they use their own connection and
// see everything committed before they start.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/doc.h"
#include "crdt/op.h"
#include "crdt/status.h"
#include "storage/log_store.h"

namespace tandem::storage {

using crdt::Result;
using crdt::Status;

// The schema this build writes; it refuses files from a newer one.
inline constexpr int kSchemaVersion = 2;
// PRAGMA application_id of Tandem databases ("TNDM").
inline constexpr int32_t kApplicationId = 0x544E444D;

enum class Durability { kFull, kNormal };

// When to take a snapshot: after `every_events` events or `every` of time with changes since the
// last one, and when a document is closed.
struct SnapshotPolicy {
  uint64_t every_events = 10000;
  std::chrono::milliseconds every{60000};
  bool on_close = true;
  bool due(uint64_t events_since, std::chrono::milliseconds since) const {
    return events_since > 0 && (events_since >= every_events || since >= every);
  }
};

struct StoreOptions {
  std::string path;                        // the database file; its folder must exist
  Durability durability = Durability::kFull;
  bool read_only = false;                  // offline inspection: no writer, no schema changes
  uint32_t keep_snapshots = 2;             // newest snapshots kept per document (at least 2)
  uint64_t max_pages = 0;                  // a size quota in SQLite pages (0: none); past it,
                                           // writes fail as on a full disk
  // Group commit: a commit starts at least this long after the previous one started, so that
  // under load many appends share one commit (and one fsync) at the cost of up to this much
  // acknowledgement latency. An idle store commits at once.
  std::chrono::microseconds commit_interval{4000};
  // The SQLite VFS to open the file with ("" is SQLite's default). Tests pass one that simulates
  // power loss and I/O errors.
  std::string vfs{};
};

class Store final : public LogStore {
 public:

  // Opens (creating if needed) and migrates the database. Refuses a file that is not a Tandem
  // database or that a newer Tandem wrote.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);
  // Commits everything queued, then closes.
  ~Store() override;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Appends events [first_event, first_event + batch.events()) to `doc`'s log, creating the
  // document on its first append. first_event must equal the events already logged for `doc`
  // (else InvalidArgument, nothing written). `done(OK)` means the batch is durable.
  void append(std::string doc, uint64_t first_event, crdt::OpBatch batch, Done done) override;
  // Stores a snapshot covering the first `events` events (which must all be logged by the time
  // the snapshot is written: queue it after their appends) and drops all but the newest
  // keep_snapshots.
  void put_snapshot(std::string doc, uint64_t events, std::string bytes, Done done,
                    std::string position = {}) override;
  void remove_document(std::string doc, Done done) override;
  // Waits until everything queued before the call has been committed or has failed; returns the
  // first failure among those, or OK.
  Status sync() override;

  // Newest valid snapshot plus the log after it. Snapshots that do not decode are skipped with a
  // line in *warnings. NotFound if the document was never written.
  Result<crdt::Doc> load(std::string_view doc, std::string_view agent, std::vector<std::string>* warnings) override;
  Result<uint64_t> logged_events(std::string_view doc) override;
  Result<std::vector<LogRow>> read_log(std::string_view doc, uint64_t from_event, uint64_t to_event) override;
  Result<std::vector<SnapshotInfo>> snapshots(std::string_view doc) override;
  Result<std::vector<DocInfo>> list() override;
  Result<DocInfo> info(std::string_view doc) override;
  // PRAGMA integrity_check.
  Result<std::string> integrity_check() override;

  // rows: journal entries (consecutive appends of a document in a commit share one).
  using Stats = StoreStats;
  Stats stats() const override;
  const std::string& path() const override;

  struct Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The first `events` events of a batch (a prefix of a causally ordered batch is causally closed).
crdt::OpBatch batch_prefix(const crdt::OpBatch& batch, uint64_t events);

}  // namespace tandem::storage
