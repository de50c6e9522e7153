// The central property: replicas that receive the same operations, in any order, late,
// duplicated, split, with replicas going offline and coming back, end with byte-identical text
// and identical snapshot bytes, and pass their invariant checks.
//
// Seeded; a failure prints its seed. TANDEM_SOAK=N runs N seeds per replica count instead of
// the default (250 each for 2, 3, 5 and 8 replicas: 1,000 in all).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "support/random_edits.h"
#include "support/reference.h"

using tandem::crdt::Doc;
using tandem::crdt::OpBatch;
using tandem::crdt::Version;
using tandem::testing::Rng;
namespace codec = tandem::crdt::codec;

namespace {

struct Replica {
  explicit Replica(std::string name) : doc(name) {}
  Doc doc;
  std::vector<OpBatch> inbox;  // messages on their way to this replica
  Version last_sent;           // its version when it last broadcast
  bool online = true;
};

void must_apply(Replica& r, const OpBatch& batch) {
  auto res = r.doc.apply(batch);
  INFO(res.status().ToString());
  REQUIRE(res.ok());
}

void pull(Replica& to, const Replica& from) { must_apply(to, from.doc.ops_since(to.doc.version())); }

void run_scenario(uint64_t seed, int n, bool rich = false) {
  INFO("seed " << seed << ", " << n << " replicas" << (rich ? ", rich" : "") << " (rerun: this test with the same seed)");
  Rng rng(seed * 7919 + n);
  std::vector<Replica> reps;
  for (int i = 0; i < n; ++i) {
    // Names with multi-byte characters exercise the tie-break's byte order.
    std::string name = i % 3 == 2 ? "r\xC3\xA9" : "r";
    name.append(std::to_string(i));
    reps.emplace_back(name);
  }
  const int steps = 40 + static_cast<int>(rng.below(80));
  for (int s = 0; s < steps; ++s) {
    const int i = static_cast<int>(rng.below(n));
    Replica& r = reps[i];
    const uint64_t action = rng.below(100);
    if (action < 45) {
      // A burst of local edits, broadcast if online (sometimes as separately delivered runs).
      // Sometimes the replica relays too, as gossip or an app forwarding between devices does:
      // it sends everything it learned since its last broadcast, others' characters it deleted
      // since among them (without their text), to replicas that may lack what those deletions
      // depend on.
      const Version before = rng.chance(0.3) ? r.last_sent : r.doc.version();
      const int edits = 1 + static_cast<int>(rng.below(3));
      for (int e = 0; e < edits; ++e) {
        if (rich) {
          tandem::testing::random_rich_edit(rng, r.doc);
        } else {
          tandem::testing::random_edit(rng, r.doc);
        }
      }
      if (!r.online) continue;
      const OpBatch msg = r.doc.ops_since(before);
      r.last_sent = r.doc.version();
      for (int j = 0; j < n; ++j) {
        if (j == i) continue;
        // Splitting must keep a run sent without its text in the batch with the deletes of that
        // text (the contract of OpKind::kInsertDeleted): only batches without such runs split.
        const bool splittable = std::none_of(msg.runs.begin(), msg.runs.end(), [](const auto& run) {
          return run.kind == tandem::crdt::OpKind::kInsertDeleted;
        });
        if (splittable && rng.chance(0.2) && msg.runs.size() > 1) {
          for (const auto& run : msg.runs) reps[j].inbox.push_back(OpBatch{{run}});
        } else {
          reps[j].inbox.push_back(msg);
        }
      }
    } else if (action < 75) {
      // Deliver one message, in any order; sometimes keep it to deliver again later.
      if (!r.online || r.inbox.empty()) continue;
      const size_t k = rng.below(r.inbox.size());
      must_apply(r, r.inbox[k]);
      if (!rng.chance(0.2)) r.inbox.erase(r.inbox.begin() + static_cast<long>(k));
    } else if (action < 87) {
      // Anti-entropy between two online replicas.
      const int j = static_cast<int>(rng.below(n));
      if (j != i && r.online && reps[j].online) pull(r, reps[j]);
    } else if (action < 94) {
      // Disconnect: whatever was on its way is lost.
      r.online = false;
      r.inbox.clear();
    } else {
      // Reconnect: exchange what each side lacks with some online replica.
      if (r.online) continue;
      r.online = true;
      const int j = static_cast<int>(rng.below(n));
      if (j != i && reps[j].online) {
        pull(r, reps[j]);
        pull(reps[j], r);
      }
    }
  }
  // Everyone comes back; every message still around is delivered, then full anti-entropy.
  for (auto& r : reps) r.online = true;
  for (auto& r : reps) {
    while (!r.inbox.empty()) {
      const size_t k = rng.below(r.inbox.size());
      must_apply(r, r.inbox[k]);
      r.inbox.erase(r.inbox.begin() + static_cast<long>(k));
    }
  }
  for (int round = 0; round < 2; ++round) {
    for (int a = 0; a < n; ++a) {
      for (int b = 0; b < n; ++b) {
        if (a != b) pull(reps[a], reps[b]);
      }
    }
  }
  const std::string text = reps[0].doc.text();
  const std::string snap = codec::save(reps[0].doc);
  const auto spans = reps[0].doc.spans();
  const auto blocks = reps[0].doc.blocks();
  for (auto& r : reps) {
    REQUIRE(r.doc.check_invariants().ok());
    REQUIRE(r.doc.pending_events() == 0);
    REQUIRE(r.doc.version() == reps[0].doc.version());
    REQUIRE(r.doc.text() == text);
    REQUIRE(codec::save(r.doc) == snap);
    REQUIRE(r.doc.spans() == spans);
    REQUIRE(r.doc.blocks() == blocks);
  }
  auto loaded = codec::load_direct(snap, "reader");
  REQUIRE(loaded.ok());
  REQUIRE(loaded->text() == text);
  REQUIRE(loaded->check_invariants().ok());
  REQUIRE(codec::save(*loaded) == snap);
  REQUIRE(loaded->spans() == spans);
  REQUIRE(loaded->blocks() == blocks);
  // The semantics, against the naive reference (on smaller histories: it is quadratic).
  if ((rich || seed % 5 == 0) && reps[0].doc.num_events() <= 250) {
    tandem::testing::Reference ref;
    REQUIRE(ref.add(reps[0].doc.ops_since({})).ok());
    REQUIRE(ref.text() == text);
    REQUIRE(ref.spans() == spans);
    REQUIRE(ref.blocks() == blocks);
  }
}

uint64_t seeds_per_count() {
  const char* soak = std::getenv("TANDEM_SOAK");
  return soak && *soak ? std::strtoull(soak, nullptr, 10) : 250;
}

}  // namespace

TEST_CASE("random concurrent editing converges: 2 replicas", "[convergence]") {
  for (uint64_t s = 0; s < seeds_per_count(); ++s) run_scenario(s, 2);
}

TEST_CASE("random concurrent editing converges: 3 replicas", "[convergence]") {
  for (uint64_t s = 0; s < seeds_per_count(); ++s) run_scenario(s, 3);
}

TEST_CASE("random concurrent editing converges: 5 replicas", "[convergence]") {
  for (uint64_t s = 0; s < seeds_per_count(); ++s) run_scenario(s, 5);
}

TEST_CASE("random concurrent editing converges: 8 replicas", "[convergence]") {
  for (uint64_t s = 0; s < seeds_per_count(); ++s) run_scenario(s, 8);
}

// Marks and blocks (crdt/format.h): the same property, plus equal spans and blocks everywhere,
// equal to the naive reference's.
TEST_CASE("random concurrent rich editing converges: 2 replicas", "[convergence][rich]") {
  for (uint64_t s = 0; s < seeds_per_count(); ++s) run_scenario(s, 2, true);
}

TEST_CASE("random concurrent rich editing converges: 3 replicas", "[convergence][rich]") {
  for (uint64_t s = 0; s < seeds_per_count(); ++s) run_scenario(s, 3, true);
}

TEST_CASE("random concurrent rich editing converges: 5 replicas", "[convergence][rich]") {
  for (uint64_t s = 0; s < seeds_per_count(); ++s) run_scenario(s, 5, true);
}
