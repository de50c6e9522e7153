// The in-memory DocStore: every write is durable at once and lost with the process. For tests, for
// the session fuzzer and for running without a disk. It checks appends as the SQLite store does
// (each starts where the document's log ends) and loads a document by replaying its whole log.
#pragma once

#include <memory>

#include "store/doc_store.h"

namespace tandem::store {

std::unique_ptr<DocStore> make_memory_store();

}  // namespace tandem::store
