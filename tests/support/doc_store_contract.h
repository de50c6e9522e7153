// The DocStore contract (store/doc_store.h), one set of checks for every store: the in-memory
// one and SQLite's (tests/storage/doc_store_test.cc), PostgreSQL's (tests/cluster).
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <utility>

#include "crdt/codec.h"
#include "store/doc_store.h"
#include "store/replay.h"

namespace tandem::testing {

inline crdt::Status append_sync(store::DocStore& s, const std::string& doc, uint64_t first, crdt::OpBatch batch) {
  using crdt::Status;
  Status got = Status::Internal("no callback");
  s.append(doc, first, std::move(batch), [&got](Status st) { got = st; });
  const Status synced = s.sync();
  return got.ok() ? synced : got;
}

// counts: the store checks each append's first_event against its log (a single-node store);
// a shared store keeps no such count.
inline void check_doc_store_contract(store::DocStore& s, bool counts) {
  using crdt::Doc;
  using crdt::OpBatch;
  using crdt::Status;
  using crdt::Version;
  using Code = Status::Code;
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
  if (counts) {
    CHECK(append_sync(s, "a", events + 3, next).code() == Code::kInvalidArgument);  // a gap
    CHECK(append_sync(s, "a", events - 1, next).code() == Code::kInvalidArgument);  // an overlap
    CHECK(*s.logged_events("a") == events);
  }
  auto loaded = s.load("a", "reader", nullptr);
  REQUIRE(loaded.ok());
  CHECK(loaded->text() == texts.back());

  // The log reads back as rows that tile it; any prefix rebuilds.
  auto rows = s.read_log("a", 0, events);
  REQUIRE(rows.ok());
  uint64_t at = 0;
  for (const auto& r : *rows) {
    CHECK(r.first_event == at);
    CHECK(tandem::crdt::codec::decode_ops_sequence(r.batch).ok());
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
  if (counts) {
    s.put_snapshot("a", events + 1, "x", nullptr);
    CHECK(s.sync().code() == Code::kInvalidArgument);
  }
  s.put_snapshot("never", 0, "x", nullptr);
  CHECK(s.sync().code() == Code::kNotFound);
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
  if (counts) CHECK((*list)[0].agents == info->agents);  // a shared store lists without agents
  CHECK(*s.integrity_check() == "ok");

  // Named versions: unique per document, of what is logged, newest first; refusals are answers,
  // not store failures.
  auto name = [&s](const std::string& doc, const std::string& n, uint64_t at, const std::string& agent) {
    Status got = Status::Internal("no callback");
    s.put_version(doc, {n, at, 0, agent}, [&got](Status st) { got = st; });
    REQUIRE(s.sync().ok());
    return got;
  };
  CHECK(s.versions("a")->empty());
  const uint64_t failed_before = s.stats().failed;
  CHECK(name("a", "first draft", 2, "writer").ok());
  CHECK(name("a", "sent to the client", events, "").ok());
  CHECK(name("a", "first draft", events, "writer").code() == Code::kAlreadyExists);
  CHECK(name("a", "later", events + 1, "writer").code() == Code::kOutOfRange);
  CHECK(name("never", "x", 0, "writer").code() == Code::kNotFound);
  CHECK(name("b", "first draft", 0, "other").ok());  // names are per document
  CHECK(s.stats().failed == failed_before);
  auto named = s.versions("a");
  REQUIRE(named.ok());
  REQUIRE(named->size() == 2);
  CHECK((*named)[0].name == "sent to the client");  // newest first
  CHECK((*named)[0].events == events);
  CHECK((*named)[0].agent.empty());
  CHECK((*named)[1].name == "first draft");
  CHECK((*named)[1].events == 2);
  CHECK((*named)[1].agent == "writer");
  CHECK((*named)[1].time_ms > 1'700'000'000'000);
  CHECK((*named)[0].time_ms >= (*named)[1].time_ms);
  CHECK(s.versions("never").status().code() == Code::kNotFound);

  // Removal.
  removed = Status::Internal("no callback");
  s.remove_document("a", [&removed](Status st) { removed = st; });
  REQUIRE(s.sync().ok());
  CHECK(removed.ok());
  CHECK(s.logged_events("a").status().code() == Code::kNotFound);
  CHECK(s.versions("a").status().code() == Code::kNotFound);
  REQUIRE(append_sync(s, "a", 0, Doc("again").ops_since({})).ok());
  CHECK(s.versions("a")->empty());  // a document made again has none of the old names
  removed = Status::Internal("no callback");
  s.remove_document("a", [&removed](Status st) { removed = st; });
  REQUIRE(s.sync().ok());
  CHECK(s.list()->size() == 1);
  CHECK(s.stats().batches >= 6);
  CHECK(s.stats().failed >= (counts ? 5u : 2u));
}

}  // namespace tandem::testing
