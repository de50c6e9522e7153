#include "crdt/split.h"

#include <catch2/catch.hpp>

#include "crdt/codec.h"
#include "crdt/doc.h"

using namespace tandem::crdt;

namespace {

// Applies the pieces in order to a replica at `base` and returns its text.
std::string apply_all(const Doc& base_src, const std::vector<OpBatch>& parts) {
  auto copy = codec::load(codec::save(base_src), "reader");
  REQUIRE(copy.ok());
  Doc d = std::move(*copy);
  for (const auto& p : parts) {
    auto r = d.apply(p);
    REQUIRE(r.ok());
  }
  CHECK(d.pending_events() == 0);
  return d.text();
}

}  // namespace

TEST_CASE("split_batch: pieces applied in order equal the whole, within the limits", "[crdt][split]") {
  Doc a("alice");
  std::string big;
  for (int i = 0; i < 3000; ++i) big += "héllo 👋 ";  // multi-byte characters at the cuts
  REQUIRE(a.insert(0, big).ok());
  for (uint32_t i = 0; i < 500; ++i) REQUIRE(a.insert(i * 3, "x").ok());
  REQUIRE(a.remove(100, 2000).ok());
  const Doc empty("empty");
  const OpBatch all = a.ops_since(Version{}, Doc::DeletedText::kInclude);
  for (size_t max_bytes : {size_t{0}, size_t{4096}, size_t{10000}, size_t{1} << 20}) {
    for (uint64_t max_events : {uint64_t{1}, uint64_t{7}, uint64_t{1000}, uint64_t{100000}}) {
      if (max_events == 1 && max_bytes == 4096) continue;  // slow and adds nothing
      const auto parts = split_batch(all, max_events, max_bytes);
      REQUIRE(!parts.empty());
      for (const auto& p : parts) {
        CHECK(p.events() <= std::max<uint64_t>(max_events, 1));
        CHECK(codec::encode_ops(p).size() <= std::max<size_t>(max_bytes, 4096));
      }
      CHECK(apply_all(empty, parts) == a.text());
    }
  }
}

TEST_CASE("split_batch: a batch with kInsertDeleted runs stays whole", "[crdt][split]") {
  Doc a("alice");
  REQUIRE(a.insert(0, "hello world").ok());
  REQUIRE(a.remove(0, 6).ok());
  const OpBatch omit = a.ops_since(Version{}, Doc::DeletedText::kOmit);
  bool has_deleted_run = false;
  for (const auto& r : omit.runs) has_deleted_run = has_deleted_run || r.kind == OpKind::kInsertDeleted;
  REQUIRE(has_deleted_run);
  const auto parts = split_batch(omit, 1, 0);
  REQUIRE(parts.size() == 1);
  CHECK(parts[0].events() == omit.events());
  CHECK(apply_all(Doc("empty"), parts) == "world");
  CHECK(split_batch(OpBatch{}, 10, 4096).empty());
}

TEST_CASE("without_events: drops exactly the events of the other batch, cutting runs", "[crdt][split]") {
  // Two agents' histories; "remote" holds some ranges of them, cutting runs in the middle.
  Doc a("alice"), b("bob");
  REQUIRE(a.insert(0, "héllo wörld 👋").ok());
  REQUIRE(b.apply(a.ops_since(Version{})).ok());
  REQUIRE(b.insert(3, "XYZ").ok());
  REQUIRE(b.remove(0, 2).ok());
  REQUIRE(a.apply(b.ops_since(a.version())).ok());
  REQUIRE(a.insert(a.length(), " end").ok());
  const OpBatch all = a.ops_since(Version{}, Doc::DeletedText::kInclude);
  // Every way to take out one contiguous range of each agent's operations.
  for (uint32_t lo = 0; lo < 14; lo += 3) {
    for (uint32_t hi = lo + 1; hi <= 18; hi += 4) {
      OpBatch remote;
      for (const auto& part : split_batch(all, 1, 0)) {
        for (const auto& r : part.runs) {
          if (r.agent == "alice" && r.seq >= lo && r.seq < hi) remote.runs.push_back(r);
          if (r.agent == "bob" && r.seq >= lo / 2 && r.seq < hi / 2) remote.runs.push_back(r);
        }
      }
      const OpBatch rest = without_events(all, remote);
      CHECK(rest.events() + remote.events() == all.events());
      for (const auto& x : rest.runs) {
        for (const auto& y : remote.runs) {
          if (x.agent == y.agent) CHECK((x.seq + x.len <= y.seq || y.seq + y.len <= x.seq));
        }
      }
      // The two together rebuild the document, in either order.
      Doc one("one"), two("two");
      REQUIRE(one.apply(remote).ok());
      REQUIRE(one.apply(rest).ok());
      REQUIRE(two.apply(rest).ok());
      REQUIRE(two.apply(remote).ok());
      CHECK(one.pending_events() == 0);
      CHECK(one.text() == a.text());
      CHECK(two.text() == a.text());
    }
  }
}
