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
