// DocStore: the one interface through which documents are persisted and read back. SQLite's Store
// (storage/store.h, one node), PostgreSQL's PgStore (storage/pg_store.h, several nodes sharing one
// log) and the in-memory store (store/memory.h) implement it; the server, its HTTP API and the
// offline tools use it and nothing else. It lives beside the engine, not in storage/, because net
// includes nothing of storage: the program that starts the server hands it a store.
//
// The log. Each document's events are numbered 0, 1, 2, ... in log order: for one node the order
// its server integrated them; for a shared store the order the nodes' rows were inserted, where two
// nodes may both have logged an operation a client sent to each (loading skips such repeats; they
// are counted in `events`). A log row holds events [first_event, end_event).
//
// Threading: append, put_snapshot, remove_document and sync may be called from any thread, and
// all but sync return at once (the server calls them from its I/O threads); their callbacks run on
// a thread of the store's (keep them short, do not call sync() from them). Reads may be called
// from any thread, may block, and see everything committed before they start.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "crdt/op.h"
#include "crdt/status.h"

namespace tandem::store {

using crdt::Result;
using crdt::Status;

struct DocInfo {
  std::string name;
  uint64_t events = 0;         // events in the log
  uint64_t log_rows = 0;
  uint64_t log_bytes = 0;      // encoded op batches
  uint32_t snapshots = 0;
  uint64_t snapshot_bytes = 0;  // of the newest one
  uint64_t snapshot_events = 0;  // events it covers
  int64_t snapshot_ms = 0;       // when it was taken (0: none)
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::vector<std::pair<std::string, uint64_t>> agents;  // agent name, events
};

struct LogRow {
  uint64_t first_event = 0;
  uint64_t end_event = 0;
  int64_t time_ms = 0;
  // One or more codec::encode_ops outputs one after the other (codec::decode_ops_sequence reads
  // them): a store hands out what it keeps, without decoding and encoding it again.
  std::string batch;
};

struct SnapshotInfo {
  uint64_t events = 0;
  int64_t time_ms = 0;
  uint64_t bytes = 0;
};

// A name for a point of a document's history (the first `events` of its log), saved by `agent`.
// Names are unique per document and never change; removing the document removes them.
struct NamedVersion {
  std::string name;
  uint64_t events = 0;
  int64_t time_ms = 0;  // when the store committed it (put_version sets it)
  std::string agent;
};

// put_version's refusals, worded alike by every store.
inline Status version_name_taken(std::string_view doc, std::string_view name) {
  return Status::AlreadyExists("document '" + std::string(doc) + "' has a version named '" + std::string(name) + "' already");
}
inline Status version_past_log(std::string_view doc, uint64_t events, uint64_t logged) {
  return Status::OutOfRange("a version at event " + std::to_string(events) + " of '" + std::string(doc) + "', whose log holds " +
                            std::to_string(logged) + " events");
}

// Whether a put_version's result is one of those answers (the caller's to handle), not a
// failure of the store: sync() and StoreStats::failed leave those out.
inline bool is_refused_version(bool is_version, const Status& st) {
  using C = Status::Code;
  return is_version && (st.code() == C::kAlreadyExists || st.code() == C::kOutOfRange || st.code() == C::kNotFound);
}

struct StoreStats {
  uint64_t commits = 0;
  uint64_t batches = 0;  // appends committed
  uint64_t rows = 0;     // rows they took (consecutive appends of a document may share one)
  uint64_t events = 0;
  uint64_t failed = 0;   // writes reported failed
};

class DocStore {
 public:
  using Done = std::function<void(Status)>;
  virtual ~DocStore() = default;

  // Appends `batch` to `doc`'s log, creating the document on its first append. first_event is
  // the writer's count of events it logged before (a single-node store checks it against the log
  // and refuses a gap or an overlap; a shared store, where other nodes append too, keeps no such
  // count). `done(OK)` means the batch is durable. The store keeps the bytes as they are (a server
  // hands it what a client sent, when it integrated that whole).
  virtual void append(std::string doc, uint64_t first_event, crdt::codec::EncodedOps batch, Done done) = 0;
  // The same for operations as runs (encoded first).
  void append(std::string doc, uint64_t first_event, const crdt::OpBatch& batch, Done done) {
    append(std::move(doc), first_event, crdt::codec::encode_counted(batch), std::move(done));
  }
  // Stores a snapshot (codec::save) of what the writer had logged when it queued it (`events` of
  // its log: queue it after their appends) and, for a shared store, of the other nodes' operations
  // up to `position` (what watch() delivered last; empty: what load() read). A single-node store
  // ignores `position`, and refuses a snapshot past its log (InvalidArgument). NotFound for a
  // document that does not exist.
  virtual void put_snapshot(std::string doc, uint64_t events, std::string bytes, Done done,
                            std::string position = {}) = 0;
  // Removes the document, its log and its snapshots; NotFound if it does not exist.
  virtual void remove_document(std::string doc, Done done) = 0;
  // Names the point v.events of `doc`'s log. `done` gets AlreadyExists when the document has that
  // name already, NotFound when there is no such document, OutOfRange when the log (with the
  // appends queued before) holds fewer events.
  virtual void put_version(std::string doc, NamedVersion v, Done done) = 0;
  // Waits until everything queued before the call has been committed or has failed; returns the
  // first failure among those, or OK.
  virtual Status sync() = 0;

  // Newest usable snapshot plus the log after it, as a replica writing as `agent`. Snapshots that
  // do not decode are skipped with a line in *warnings. NotFound if the document does not exist.
  virtual Result<crdt::Doc> load(std::string_view doc, std::string_view agent, std::vector<std::string>* warnings) = 0;
  // Whether the document exists, and how many events its log holds.
  virtual Result<uint64_t> logged_events(std::string_view doc) = 0;
  // Log rows that hold any of the events [from_event, to_event), in order.
  virtual Result<std::vector<LogRow>> read_log(std::string_view doc, uint64_t from_event, uint64_t to_event) = 0;
  virtual Result<std::vector<SnapshotInfo>> snapshots(std::string_view doc) = 0;
  // The document's named versions, newest first. NotFound if the document does not exist.
  virtual Result<std::vector<NamedVersion>> versions(std::string_view doc) = 0;
  // Every document, by name. A shared store leaves `agents` empty here (info() fills it).
  virtual Result<std::vector<DocInfo>> list() = 0;
  virtual Result<DocInfo> info(std::string_view doc) = 0;
  // The database's own consistency check: "ok" or the problems it found.
  virtual Result<std::string> integrity_check() = 0;

  virtual StoreStats stats() const = 0;
  // The file, or the database (without its password), for messages.
  virtual const std::string& path() const = 0;

  // A shared store only (PostgreSQL): operations other nodes append to `doc` from the position
  // its last load() reached on, each batch to `on_remote` (from a thread of the store's) with the
  // position after it, as soon as the store learns of it, until unwatch(). A single-node store
  // never calls it.
  using Remote = std::function<void(crdt::OpBatch batch, std::string position)>;
  virtual void watch(const std::string& doc, Remote on_remote) { (void)doc, (void)on_remote; }
  virtual void unwatch(const std::string& doc) { (void)doc; }
};

}  // namespace tandem::store
