// Round trips through the log: every trace imported, replayed to its end and to random points,
// and rebuilt from a snapshot plus the rest of the log.
#include <catch2/catch.hpp>

#include "crdt/codec.h"
#include "crdt/utf8.h"
#include "history.h"
#include "support/random_edits.h"
#include "support/temp_dir.h"
#include "trace.h"

using tandem::crdt::Doc;
using tandem::storage::Store;
using tandem::testing::Rng;
using tandem::testing::TempDir;
namespace codec = tandem::crdt::codec;
namespace history = tandem::history;
namespace trace = tandem::trace;

namespace {

// The text of a sequential trace after its first `events` events, straight from its patches
// (a patch is its deletes, then its inserts, one event per character): an oracle independent of
// the log.
std::string trace_text_at(const trace::Trace& t, uint64_t events) {
  Doc d("oracle");
  for (const auto& txn : t.txns) {
    for (const auto& p : txn.patches) {
      if (events == 0) return d.text();
      const uint32_t del = static_cast<uint32_t>(std::min<uint64_t>(p.del, events));
      if (del) REQUIRE(d.remove(p.pos, del).ok());
      events -= del;
      if (del < p.del) return d.text();
      const uint64_t n = tandem::crdt::utf8::count_code_points(p.ins);
      const uint64_t take = std::min(n, events);
      REQUIRE(d.insert(p.pos, p.ins.substr(0, tandem::crdt::utf8::byte_offset(p.ins, take))).ok());
      events -= take;
    }
  }
  return d.text();
}

}  // namespace

TEST_CASE("history: every trace imports, replays and rebuilds exactly", "[storage][trace]") {
  const std::string dir = trace::traces_dir();
  const auto files = dir.empty() ? std::vector<std::string>{} : trace::list_traces(dir);
  if (files.empty()) {
    WARN("SKIPPED: no trace folder (set TANDEM_TRACES or put the traces in ../shared/traces)");
    return;
  }
  TempDir tmp;
  tandem::storage::StoreOptions o;
  o.path = tmp.file("traces.db");
  auto store = Store::open(o);
  REQUIRE(store.ok());
  Rng rng(2026);
  for (const auto& file : files) {
    auto t = trace::load(file);
    REQUIRE(t.ok());
    INFO(t->name);
    // Concurrent traces: record the server's text at a few points while importing.
    std::vector<std::pair<uint64_t, std::string>> points;
    history::ImportOptions options;
    options.row_events = 300 + rng.below(2000);
    if (t->concurrent) {
      options.after_txn = [&](uint64_t events, const Doc& replica) {
        if (rng.below(t->txns.size() / 8 + 1) == 0) points.emplace_back(events, replica.text());
      };
    }
    auto imported = history::import_trace(**store, t->name, *t, options);
    REQUIRE(imported.ok());
    REQUIRE(imported->text() == t->end_content);
    const uint64_t total = imported->num_events();
    REQUIRE(*(*store)->logged_events(t->name) == total);

    // The whole log, and the stored document (snapshot + tail).
    auto full = tandem::store::replay(**store, t->name);
    REQUIRE(full.ok());
    CHECK(full->text() == t->end_content);
    auto loaded = (*store)->load(t->name, "reader", nullptr);
    REQUIRE(loaded.ok());
    CHECK(loaded->text() == t->end_content);
    CHECK(codec::save(*loaded) == codec::save(*full));

    // Random cut points: the log's text equals the engine's (or the patches') after that prefix.
    if (!t->concurrent) {
      for (int k = 0; k < 4; ++k) {
        const uint64_t cut = rng.below(total + 1);
        auto at = tandem::store::replay(**store, t->name, cut);
        REQUIRE(at.ok());
        CHECK(at->text() == trace_text_at(*t, cut));
      }
    } else {
      REQUIRE_FALSE(points.empty());
      for (const auto& [cut, text] : points) {
        auto at = tandem::store::replay(**store, t->name, cut);
        REQUIRE(at.ok());
        CHECK(at->text() == text);
      }
    }

    // Snapshot + tail == full replay, byte for byte, from random snapshot points.
    for (int k = 0; k < 2; ++k) {
      const uint64_t cut = rng.below(total + 1);
      auto prefix = tandem::store::replay(**store, t->name, cut);
      REQUIRE(prefix.ok());
      auto from_snapshot = codec::load(codec::save(*prefix), "reader");
      REQUIRE(from_snapshot.ok());
      auto rows = (*store)->read_log(t->name, cut, UINT64_MAX);
      REQUIRE(rows.ok());
      for (const auto& row : *rows) {
        auto batch = codec::decode_ops_sequence(row.batch);
        REQUIRE(batch.ok());
        REQUIRE(from_snapshot->apply(*batch).ok());  // the overlap with the snapshot is skipped
      }
      CHECK(from_snapshot->num_events() == total);
      CHECK(from_snapshot->text() == t->end_content);
      CHECK(codec::save(*from_snapshot) == codec::save(*full));
    }
  }
  CHECK(*(*store)->integrity_check() == "ok");
}
