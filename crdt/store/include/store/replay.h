// Rebuilding past versions of a document from its log alone, through any DocStore.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "crdt/doc.h"
#include "crdt/op.h"
#include "store/doc_store.h"

namespace tandem::store {

// Progress callback: (done, total).
using Progress = std::function<void(uint64_t, uint64_t)>;

// `doc` as it was after its first `at_event` logged events (OutOfRange past the end) and with
// only the rows committed at or before `until_ms`; UINT64_MAX and INT64_MAX: unbounded. Reads the
// log in slices, so a long history is never in memory at once. NotFound for no such document.
crdt::Result<crdt::Doc> replay(DocStore& store, const std::string& doc, uint64_t at_event = UINT64_MAX,
                               int64_t until_ms = INT64_MAX, const Progress& progress = {});

// The first `events` events of a batch (a prefix of a causally ordered batch is causally closed).
crdt::OpBatch batch_prefix(const crdt::OpBatch& batch, uint64_t events);

}  // namespace tandem::store
