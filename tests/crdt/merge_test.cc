// Merging: concurrent edits compared with the naive reference, non-interleaving, held ops.
#include <catch2/catch.hpp>

#include "crdt/doc.h"
#include "support/random_edits.h"
#include "support/reference.h"

using tandem::crdt::Doc;
using tandem::crdt::OpBatch;
using tandem::crdt::Version;
using tandem::testing::Reference;
using tandem::testing::Rng;

namespace {

void sync(Doc& to, const Doc& from) {
  auto r = to.apply(from.ops_since(to.version()));
  INFO(r.status().ToString());
  REQUIRE(r.ok());
}

}  // namespace

TEST_CASE("concurrent edits match the reference model", "[merge]") {
  const int seeds = 300;
  for (int seed = 0; seed < seeds; ++seed) {
    Rng rng(seed);
    const int n = 2 + static_cast<int>(rng.below(3));
    std::vector<Doc> docs;
    for (int i = 0; i < n; ++i) docs.emplace_back(std::string(1, static_cast<char>('a' + i)));
    const int steps = 10 + static_cast<int>(rng.below(50));
    for (int s = 0; s < steps; ++s) {
      const size_t a = rng.below(n);
      if (rng.chance(0.25)) {
        const size_t b = rng.below(n);
        if (a != b) sync(docs[a], docs[b]);
      } else {
        tandem::testing::random_edit(rng, docs[a], true);
      }
    }
    for (int round = 0; round < 2; ++round) {
      for (int a = 0; a < n; ++a) {
        for (int b = 0; b < n; ++b) {
          if (a != b) sync(docs[a], docs[b]);
        }
      }
    }
    INFO("seed " << seed);
    Reference ref;
    REQUIRE(ref.add(docs[0].ops_since({})).ok());
    for (int a = 0; a < n; ++a) {
      REQUIRE(docs[a].check_invariants().ok());
      REQUIRE(docs[a].text() == docs[0].text());
    }
    REQUIRE(docs[0].text() == ref.text());
  }
}
