// Every trace in the shared folder must reach exactly its endContent (the external oracle), both
// replayed and after a snapshot round trip and a merge of its encoded history into a new replica.
#include <catch2/catch.hpp>

#include "crdt/codec.h"
#include "replay.h"
#include "trace.h"

using tandem::crdt::Doc;
namespace codec = tandem::crdt::codec;
namespace trace = tandem::trace;

TEST_CASE("traces reach their end content", "[trace]") {
  const std::string dir = trace::traces_dir();
  if (dir.empty()) {
    WARN("SKIPPED: no trace folder (set TANDEM_TRACES or put the traces in ../shared/traces)");
    return;
  }
  const auto files = trace::list_traces(dir);
  if (files.empty()) {
    WARN("SKIPPED: no trace files in " << dir);
    return;
  }
  for (const auto& file : files) {
    SECTION(file) {
      auto t = trace::load(file);
      REQUIRE(t.ok());
      INFO(t->name);
      auto doc = trace::replay(*t);
      REQUIRE(doc.ok());
      CHECK(doc->check_invariants().ok());
      REQUIRE(doc->text() == t->end_content);

      // Snapshot round trip: the loaded replica holds the same text and re-encodes identically.
      const std::string bytes = codec::save(*doc);
      auto loaded = codec::load(bytes, "reader");
      REQUIRE(loaded.ok());
      CHECK(loaded->text() == t->end_content);
      CHECK(loaded->check_invariants().ok());
      CHECK(codec::save(*loaded) == bytes);

      // The whole history, encoded, merged into an empty replica.
      const std::string ops = codec::encode_ops(doc->ops_since({}));
      auto batch = codec::decode_ops(ops);
      REQUIRE(batch.ok());
      Doc fresh("server");
      auto patches = fresh.apply(*batch);
      REQUIRE(patches.ok());
      CHECK(fresh.text() == t->end_content);
      CHECK(fresh.check_invariants().ok());
      CHECK(codec::save(fresh) == bytes);
    }
  }
}
