// DocStore: how the server persists documents, without knowing how.
//
// The server hands every batch of operations it integrated to append(), in order, and tells a
// client its batch is durable only when the store calls back with OK. The `tandem` program fills
// this with the SQLite store (storage/); tests can use the in-memory one below.
//
// A store may be shared by several servers (nodes): then a document may be open on several at
// once, each appending what its own clients send, and each must learn what the others append:
// watch() delivers those operations, with the store's position after them, which the server
// hands back with its next snapshot (a snapshot covers what the replica integrated, and no more).
// A store of one node leaves watch() empty.
//
// Threading: load() is called from a document's thread and may block. append(), put_snapshot()
// and watch() must not block; their callbacks may run on any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "crdt/doc.h"
#include "crdt/op.h"
#include "crdt/status.h"

namespace tandem::net {

class DocStore {
 public:
  using Done = std::function<void(crdt::Status)>;
  virtual ~DocStore() = default;
  // The stored document, or NotFound for one never written.
  virtual crdt::Result<crdt::Doc> load(const std::string& doc, const std::string& agent) = 0;
  // Events [first_event, first_event + batch.events()) of `doc`, in the order integrated.
  virtual void append(const std::string& doc, uint64_t first_event, crdt::OpBatch batch, Done done) = 0;
  // A snapshot (codec::save) covering the first `events` events the server appended, queued after
  // their appends, and the operations of other nodes up to `position` (the last position
  // watch() delivered and the server integrated; empty: what load() read).
  virtual void put_snapshot(const std::string& doc, uint64_t events, std::string bytes, std::string position,
                            Done done) = 0;
  // Waits until everything handed over so far is durable (or failed); the first failure.
  virtual crdt::Status flush() = 0;

  // For the HTTP API (docs/http-api.md); a store without them answers NotSupported.
  struct Summary {
    std::string name;
    uint64_t events = 0;      // logged
    uint64_t bytes = 0;       // stored: the log and the newest snapshot
    int64_t updated_ms = 0;   // last append, ms since 1970
    crdt::Version version;    // agent -> operations logged
  };
  virtual crdt::Result<std::vector<Summary>> list() { return crdt::Status::NotSupported("this store cannot list documents"); }
  // The document as it was after its first `at_event` logged events and with only what was
  // committed at or before `until_ms` (either may be unbounded: UINT64_MAX, INT64_MAX).
  virtual crdt::Result<crdt::Doc> load_past(const std::string& doc, uint64_t at_event, int64_t until_ms) {
    (void)doc, (void)at_event, (void)until_ms;
    return crdt::Status::NotSupported("this store keeps no history to rebuild");
  }
  // Removes the document, its log and its snapshots. NotFound if it was never written.
  virtual void remove(const std::string& doc, Done done) {
    (void)doc;
    done(crdt::Status::NotSupported("this store cannot delete documents"));
  }

  // Operations other nodes append to `doc` from where the last load() of it left off, each with
  // the store's position after it, until unwatch(). They are durable already.
  using Remote = std::function<void(crdt::OpBatch batch, std::string position)>;
  virtual void watch(const std::string& doc, Remote on_remote) { (void)doc, (void)on_remote; }
  virtual void unwatch(const std::string& doc) { (void)doc; }
};

// Keeps everything in memory, acknowledging at once: for tests and for running without a disk.
std::unique_ptr<DocStore> make_memory_store();

}  // namespace tandem::net
