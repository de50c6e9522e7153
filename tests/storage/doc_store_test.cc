// The DocStore contract (store/doc_store.h), run the same way over every single-node store: the
// in-memory one and SQLite's. (PostgreSQL's, shared by nodes, keeps no per-writer count and is
// tested in tests/cluster.)
#include <catch2/catch.hpp>
#include <functional>
#include <memory>

#include "crdt/codec.h"
#include "storage/store.h"
#include "store/memory.h"
#include "store/replay.h"
#include "support/temp_dir.h"

using tandem::crdt::Doc;
using tandem::crdt::OpBatch;
using tandem::crdt::Status;
using tandem::crdt::Version;
using tandem::store::DocStore;
using Code = Status::Code;

namespace {

Status append_sync(DocStore& s, const std::string& doc, uint64_t first, OpBatch batch) {
  Status got = Status::Internal("no callback");
  s.append(doc, first, std::move(batch), [&got](Status st) { got = st; });
  const Status synced = s.sync();
  return got.ok() ? synced : got;
}

void check_contract(DocStore& s) {
  // Nothing there yet.
  CHECK(s.logged_events("a").status().code() == Code::kNotFound);
  CHECK(s.load("a", "x", nullptr).status().code() == Code::kNotFound);
  CHECK(tandem::store::replay(s, "a").status().code() == Code::kNotFound);
  Status removed;
  s.remove_document("a", [&removed](Status st) { removed = st; });
  CHECK(s.sync().code() == Code::kNotFound);  // the first failure since the last sync
  CHECK(removed.code() == Code::kNotFound);
  CHECK(s.sync().ok());

  // Appends numbered from 0, checked against the log.
  Doc w("writer");
  Version v;
  std::vector<std::string> texts{""};
  for (int i = 0; i < 5; ++i) {
    REQUIRE(w.insert(w.length(), std::string(1, static_cast<char>('a' + i))).ok());
    if (i == 3) REQUIRE(w.remove(0, 1).ok());
    REQUIRE(append_sync(s, "a", v.total(), w.ops_since(v, Doc::DeletedText::kInclude)).ok());
    v = w.version();
    texts.push_back(w.text());
  }
  const uint64_t events = w.num_events();
  CHECK(*s.logged_events("a") == events);
  REQUIRE(w.insert(0, "z").ok());
  const OpBatch next = w.ops_since(v, Doc::DeletedText::kInclude);
  CHECK(append_sync(s, "a", events + 3, next).code() == Code::kInvalidArgument);  // a gap
  CHECK(append_sync(s, "a", events - 1, next).code() == Code::kInvalidArgument);  // an overlap
  CHECK(*s.logged_events("a") == events);
  auto loaded = s.load("a", "reader", nullptr);
  REQUIRE(loaded.ok());
  CHECK(loaded->text() == texts.back());

  // The log reads back as rows that tile it; any prefix rebuilds.
  auto rows = s.read_log("a", 0, events);
  REQUIRE(rows.ok());
  uint64_t at = 0;
  for (const auto& r : *rows) {
    CHECK(r.first_event == at);
    CHECK(tandem::crdt::codec::decode_ops(r.batch).ok());
    at = r.end_event;
  }
  CHECK(at == events);
  auto past = tandem::store::replay(s, "a", 1);
  REQUIRE(past.ok());
  CHECK(past->num_events() == 1);
  CHECK(past->text() == "a");
  CHECK(tandem::store::replay(s, "a", events + 1).status().code() == Code::kOutOfRange);

  // Snapshots: of what is logged, and no further.
  Status snap = Status::Internal("no callback");
  s.put_snapshot("a", events, tandem::crdt::codec::save(*loaded), [&snap](Status st) { snap = st; });
  REQUIRE(s.sync().ok());
  CHECK(snap.ok());
  s.put_snapshot("a", events + 1, "x", nullptr);
  CHECK(s.sync().code() == Code::kInvalidArgument);
  auto snaps = s.snapshots("a");
  REQUIRE(snaps.ok());
  REQUIRE(snaps->size() == 1);
  CHECK(snaps->front().events == events);

  // Listing and information.
  REQUIRE(append_sync(s, "b", 0, Doc("other").ops_since({})).ok());  // an empty batch creates it
  auto list = s.list();
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].name == "a");
  CHECK((*list)[1].name == "b");
  auto info = s.info("a");
  REQUIRE(info.ok());
  CHECK(info->events == events);
  CHECK(info->snapshots == 1);
  CHECK(info->snapshot_events == events);
  REQUIRE(info->agents.size() == 1);
  CHECK(info->agents[0] == std::make_pair(std::string("writer"), events));
  CHECK(*s.integrity_check() == "ok");

  // Removal.
  removed = Status::Internal("no callback");
  s.remove_document("a", [&removed](Status st) { removed = st; });
  REQUIRE(s.sync().ok());
  CHECK(removed.ok());
  CHECK(s.logged_events("a").status().code() == Code::kNotFound);
  CHECK(s.list()->size() == 1);
  CHECK(s.stats().batches >= 6);
  CHECK(s.stats().failed >= 4);
}

}  // namespace

TEST_CASE("doc store contract: the in-memory store", "[storage]") {
  auto s = tandem::store::make_memory_store();
  check_contract(*s);
}

TEST_CASE("doc store contract: SQLite", "[storage]") {
  tandem::testing::TempDir dir;
  tandem::storage::StoreOptions o;
  o.path = dir.file("t.db");
  auto s = tandem::storage::Store::open(o);
  REQUIRE(s.ok());
  check_contract(**s);
}
