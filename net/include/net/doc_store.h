// DocStore: how the server persists documents, without knowing how.
//
// The server hands every batch of operations it integrated to append(), in order, and tells a
// client its batch is durable only when the store calls back with OK. The `tandem` program fills
// this with the SQLite store (storage/); tests can use the in-memory one below.
//
// Threading: load() is called from a document's strand and may block. append() and
// put_snapshot() must not block; their callbacks may run on any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

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
  // A snapshot (codec::save) covering the first `events` events; queued after their appends.
  virtual void put_snapshot(const std::string& doc, uint64_t events, std::string bytes, Done done) = 0;
  // Waits until everything handed over so far is durable (or failed); the first failure.
  virtual crdt::Status flush() = 0;
};

// Keeps everything in memory, acknowledging at once: for tests and for running without a disk.
std::unique_ptr<DocStore> make_memory_store();

}  // namespace tandem::net
