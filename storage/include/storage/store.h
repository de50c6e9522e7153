// Store: documents, their operation logs and snapshots in one SQLite file.
//
// Writes go through one writer thread that commits group-wise (the writer PostgreSQL's store
// shares): it takes everything queued, from any number of documents, commits it in one
// transaction at least commit_interval after the previous commit started (an idle store commits
// at once), and only then reports each batch durable. A batch that cannot be written (a gap in
// the log, say) fails alone; a commit that fails fails every batch in it, and nothing committed
// before is lost.
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
// Threading as DocStore says; callbacks run on the writer thread, and reads use a connection of
// their own.
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
#include "store/doc_store.h"

namespace tandem::storage {

using crdt::Result;
using crdt::Status;

// The schema this build writes; it refuses files from a newer one.
inline constexpr int kSchemaVersion = 3;
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

// The SQLite store; the methods are DocStore's (store/doc_store.h), with the rules above.
class Store : public store::DocStore {
 public:
  // Opens (creating if needed) and migrates the database, and starts the writer unless read_only.
  // Refuses a file that is not a Tandem database or that a newer Tandem wrote. Destroying the
  // store commits everything queued, then closes.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);
};

// Opens the store a target names: "postgresql://..." or "postgres://..." (a libpq connection URI)
// opens PgStore (pg_store.h) with its defaults, anything else is an SQLite file for Store, whose
// folder is made if needed. read_only: offline inspection (a missing file is NotFound).
Result<std::unique_ptr<store::DocStore>> open_store(const std::string& target, bool read_only);

}  // namespace tandem::storage
