// Merging: concurrent edits compared with the naive reference, non-interleaving, held ops.
#include <catch2/catch.hpp>

#include "crdt/doc.h"
#include "support/random_edits.h"
#include "support/relayed_deletes.h"
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

namespace {

// Every replica types its word at `pos`, one keystroke at a time (forward, or each character
// before the previous one when `backward`), then all sync.
std::string type_concurrently(const std::string& base, uint32_t pos, const std::vector<std::string>& words,
                              bool backward) {
  std::vector<Doc> docs;
  for (size_t i = 0; i < words.size(); ++i) docs.emplace_back("agent" + std::to_string(i));
  REQUIRE(docs[0].insert(0, base).ok());
  for (size_t i = 1; i < docs.size(); ++i) sync(docs[i], docs[0]);
  for (size_t i = 0; i < words.size(); ++i) {
    for (size_t k = 0; k < words[i].size(); ++k) {
      const size_t c = backward ? words[i].size() - 1 - k : k;
      REQUIRE(docs[i].insert(pos + static_cast<uint32_t>(backward ? 0 : k), words[i].substr(c, 1)).ok());
    }
  }
  for (size_t i = 0; i < docs.size(); ++i) {
    for (size_t j = 0; j < docs.size(); ++j) {
      if (i != j) sync(docs[i], docs[j]);
    }
  }
  for (size_t i = 1; i < docs.size(); ++i) REQUIRE(docs[i].text() == docs[0].text());
  Reference ref;
  REQUIRE(ref.add(docs[0].ops_since({})).ok());
  CHECK(ref.text() == docs[0].text());
  return docs[0].text();
}

void check_contiguous(const std::string& text, const std::string& base, uint32_t pos, std::vector<std::string> words) {
  // The result is the base with the words inserted at pos, one after another, in some order.
  std::sort(words.begin(), words.end());
  bool found = false;
  do {
    std::string middle;
    for (const auto& w : words) middle += w;
    found = found || text == base.substr(0, pos) + middle + base.substr(pos);
  } while (!found && std::next_permutation(words.begin(), words.end()));
  INFO(text);
  CHECK(found);
}

}  // namespace

TEST_CASE("concurrent typing at one place never interleaves", "[merge][interleave]") {
  const std::string base = "The  cat";
  for (bool backward : {false, true}) {
    INFO((backward ? "backward" : "forward"));
    for (uint32_t pos : {0u, 4u, 8u}) {
      const std::vector<std::string> two = {"quick", "lazy"};
      check_contiguous(type_concurrently(base, pos, two, backward), base, pos, two);
      const std::vector<std::string> three = {"brown", "sleepy", "fat"};
      check_contiguous(type_concurrently(base, pos, three, backward), base, pos, three);
    }
  }
}

TEST_CASE("concurrent typing into an empty document never interleaves", "[merge][interleave]") {
  const std::vector<std::string> words = {"hello", "world", "again"};
  check_contiguous(type_concurrently("", 0, words, false), "", 0, words);
}

TEST_CASE("ties break the same way everywhere, whatever the delivery order", "[merge]") {
  for (int order = 0; order < 2; ++order) {
    Doc a("alice"), b("bob"), c("carol");
    REQUIRE(a.insert(0, "A").ok());
    REQUIRE(b.insert(0, "B").ok());
    REQUIRE(c.insert(0, "C").ok());
    if (order == 0) {
      sync(a, b);
      sync(a, c);
    } else {
      sync(a, c);
      sync(a, b);
    }
    // Concurrent inserts at the same place with the same origins: agent names decide.
    CHECK(a.text() == "ABC");
  }
}

TEST_CASE("long concurrent branches merge in one batch and one at a time alike", "[merge]") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Rng rng(seed);
    Doc a("a"), b("b");
    REQUIRE(a.insert(0, tandem::testing::random_text(rng, 50)).ok());
    sync(b, a);
    std::vector<OpBatch> b_steps;
    for (int i = 0; i < 60; ++i) {
      tandem::testing::random_edit(rng, a);
      const Version v = b.version();
      tandem::testing::random_edit(rng, b);
      b_steps.push_back(b.ops_since(v));
    }
    Doc one_batch("x");
    sync(one_batch, a);
    sync(one_batch, b);
    Doc stepwise("y");
    sync(stepwise, a);
    // b's history as it was made, one step at a time (the shared base came with a's).
    for (const auto& step : b_steps) {
      auto r = stepwise.apply(step);
      REQUIRE(r.ok());
    }
    INFO("seed " << seed);
    CHECK(stepwise.text() == one_batch.text());
    Reference ref;
    REQUIRE(ref.add(one_batch.ops_since({})).ok());
    CHECK(ref.text() == one_batch.text());
  }
}

// Found by convergence_fuzz: a batch carrying characters without their text (kInsertDeleted)
// whose deletion waits for another replica's operation used to be refused when it arrived
// before that operation; its runs of unknown text are now held with the deletion.
TEST_CASE("a batch with deleted text arriving before what its deletion needs is held, not refused", "[merge][held]") {
  Doc a("a"), b("b"), c("c");
  REQUIRE(a.insert(0, "hello").ok());
  sync(b, a);
  sync(c, a);
  const Version c_has = c.version();
  REQUIRE(a.insert(5, "tmp").ok());  // depends on a's own operations only
  REQUIRE(b.insert(0, "X").ok());    // c does not get this yet
  sync(a, b);                        // "Xhellotmp"
  REQUIRE(a.remove(0, 1).ok());      // deletes b's X: depends on b's operation
  REQUIRE(a.remove(5, 3).ok());      // deletes "tmp": its text is not sent
  Version without_x = c_has;  // a's operations only, as a's own client would send them
  without_x.advance("b", 1);
  const OpBatch early = a.ops_since(without_x, Doc::DeletedText::kOmit);
  bool unknown = false;
  for (const auto& r : early.runs) unknown = unknown || r.kind == tandem::crdt::OpKind::kInsertDeleted;
  REQUIRE(unknown);
  auto r = c.apply(early);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(c.text() == "hello");  // nothing of the batch is visible yet
  CHECK(c.pending_events() == early.events());
  sync(c, b);  // b's X arrives: the held batch follows
  CHECK(c.pending_events() == 0);
  CHECK(c.text() == a.text());
  CHECK(c.version() == a.version());
  REQUIRE(c.check_invariants().ok());
  // A batch whose unknown text is never deleted is still refused.
  Doc d("d");
  OpBatch bad = a.ops_since({}, Doc::DeletedText::kOmit);
  bad.runs.pop_back();  // drop the deletion of "tmp"
  CHECK_FALSE(d.apply(bad).ok());
}

// Issue 22, found by convergence_fuzz: a replica that relays what it learned sends others'
// characters it deleted without their text, beside its deletions. Arriving before what those
// deletions depend on, all of it waited; then the inserts' own author sent them with their text,
// which woke the held runs of unknown text (their agent had advanced) while their deletions still
// waited: the characters would have shown, and the author's valid batch was refused.
TEST_CASE("held characters of unknown text wait for their deletion, whatever wakes them", "[merge][held]") {
  const tandem::testing::RelayedDeletes s;
  Doc e("e");
  // e has none of it: b's deletions wait for b's first insert, and a's characters with them.
  auto held = e.apply(s.relay);
  INFO(held.status().ToString());
  REQUIRE(held.ok());
  CHECK(e.text().empty());
  CHECK(e.pending_events() == s.relay.events());
  // a's own first batch wakes a's held runs; those of unknown text keep waiting.
  auto first = e.apply(s.a_first);
  INFO(first.status().ToString());
  REQUIRE(first.ok());
  CHECK(e.text() == "\xE4\xB8\x96\xE7\x95\x8C");
  REQUIRE(e.check_invariants().ok());
  const Version seen = e.version();
  // Applying anything again changes nothing while their deletion waits.
  REQUIRE(e.apply(s.a_first).ok());
  CHECK(e.version() == seen);
  REQUIRE(e.check_invariants().ok());
  // b's first insert arrives: its deletions follow, and the characters they delete with them.
  auto rest = e.apply(s.b_first);
  INFO(rest.status().ToString());
  REQUIRE(rest.ok());
  CHECK(e.pending_events() == 0);
  CHECK(e.text() == s.text);
  CHECK(e.version() == s.version);
  REQUIRE(e.check_invariants().ok());
  // Then a whole history that repeats all of it, as the fuzzer's final delivery: duplicates only.
  auto again = e.apply(e.ops_since({}));
  INFO(again.status().ToString());
  REQUIRE(again.ok());
  CHECK(e.text() == s.text);
  // In the fuzzer's order: the relay, a's first batch, then whole histories (a's second batch
  // comes only with them).
  Doc f("f"), g("g");
  REQUIRE(g.apply(s.a_first).ok());
  REQUIRE(g.apply(s.b_first).ok());
  REQUIRE(g.apply(s.relay).ok());
  REQUIRE(f.apply(s.relay).ok());
  REQUIRE(f.apply(s.a_first).ok());
  CHECK(f.text() == "\xE4\xB8\x96\xE7\x95\x8C");
  auto whole = f.apply(g.ops_since({}));
  INFO(whole.status().ToString());
  REQUIRE(whole.ok());
  CHECK(f.text() == s.text);
  CHECK(f.version() == s.version);
  CHECK(f.pending_events() == 0);
  REQUIRE(f.check_invariants().ok());
}

// Characters of unknown text that a batch does not delete are refused, also beside deletions of
// the batch that wait: those come before them, so they cannot be theirs.
TEST_CASE("unknown text not deleted by a later run of its batch is refused", "[merge][held]") {
  Doc z("z"), a("a"), b("b"), c("c");
  REQUIRE(z.insert(0, "q").ok());
  REQUIRE(a.apply(z.ops_since({})).ok());
  REQUIRE(a.remove(0, 1).ok());       // a deletion that waits at c, which lacks z's insert
  REQUIRE(b.insert(0, "tmp").ok());
  REQUIRE(a.apply(b.ops_since({})).ok());
  REQUIRE(a.remove(0, 3).ok());       // b's "tmp", relayed without its text
  Version without_z;
  without_z.advance("z", 1);
  OpBatch bad = a.ops_since(without_z);
  REQUIRE(bad.runs.size() == 3);
  REQUIRE(bad.runs[1].kind == tandem::crdt::OpKind::kInsertDeleted);
  bad.runs.pop_back();                // drop the deletion of "tmp"
  auto r = c.apply(bad);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("without their text") != std::string::npos);
  CHECK(c.num_events() == 0);
  CHECK(c.pending_events() == 0);
  REQUIRE(c.check_invariants().ok());
  // Whole, it waits for z's insert, then applies.
  OpBatch whole = a.ops_since(without_z);
  REQUIRE(c.apply(whole).ok());
  CHECK(c.pending_events() == whole.events());
  CHECK(c.text().empty());
  REQUIRE(c.apply(z.ops_since({})).ok());
  CHECK(c.pending_events() == 0);
  CHECK(c.text() == a.text());
  REQUIRE(c.check_invariants().ok());
}

// A refused batch leaves nothing behind: its unknown text shown, the replica's text was put back
// step by step (characters it removed from the middle of a multi-byte text included).
TEST_CASE("a batch refused for showing unknown text leaves the replica as it was", "[merge][held]") {
  Doc a("a"), d("d");
  REQUIRE(a.insert(0, "h\xc3\xa9llo w\xc3\xb6rld \xe4\xb8\xad").ok());
  sync(d, a);
  REQUIRE(a.remove(0, 2).ok());        // removes text d shows
  REQUIRE(a.insert(4, "tmp").ok());
  REQUIRE(a.remove(8, 2).ok());        // more of d's text, after the insert
  REQUIRE(a.remove(4, 3).ok());        // "tmp": sent without its text
  OpBatch bad = a.ops_since(d.version(), Doc::DeletedText::kOmit);
  bad.runs.pop_back();  // drop the deletion of "tmp"
  const std::string text = d.text();
  const OpBatch history = d.ops_since({}, Doc::DeletedText::kOmit);
  const auto version = d.version();
  auto refused = d.apply(bad);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("without their text") != std::string::npos);
  CHECK(d.text() == text);
  CHECK(d.version() == version);
  CHECK(d.ops_since({}, Doc::DeletedText::kOmit) == history);
  REQUIRE(d.check_invariants().ok());
  // The whole batch still applies afterwards.
  sync(d, a);
  CHECK(d.text() == a.text());
  REQUIRE(d.check_invariants().ok());
  // The same into a replica that shows no text yet (put back by clearing).
  Doc e("e");
  OpBatch bad_all = a.ops_since({}, Doc::DeletedText::kOmit);
  bad_all.runs.pop_back();
  REQUIRE_FALSE(e.apply(bad_all).ok());
  CHECK(e.text().empty());
  CHECK(e.num_events() == 0);
  REQUIRE(e.check_invariants().ok());
  sync(e, a);
  CHECK(e.text() == a.text());
  REQUIRE(e.check_invariants().ok());
}

// Eg-walker's promise: merging a branch costs the branch and what happened since it forked, not the
// history before the fork. The walk is counted (Doc::last_merge_work), not timed.
TEST_CASE("merging a branch walks what happened since its fork, not the history before it", "[merge][cost]") {
  for (int history : {2000, 8000, 32000}) {
    INFO("history of " << history << " edits");
    Rng rng(static_cast<uint64_t>(history));
    Doc main("main");
    for (int i = 0; i < history; ++i) tandem::testing::random_edit(rng, main, true);
    Doc side("side");
    sync(side, main);
    const uint64_t fork = main.num_events();
    for (int i = 0; i < 300; ++i) tandem::testing::random_edit(rng, main, true);
    for (int i = 0; i < 30; ++i) tandem::testing::random_edit(rng, side, true);
    const uint64_t since = main.num_events() - fork, branch = side.num_events() - fork;
    sync(main, side);
    CHECK(main.last_merge_work().walked == since + branch);
    CHECK(main.last_merge_work().replayed <= since + branch);
    sync(side, main);
    CHECK(side.last_merge_work().walked == since + branch);
    CHECK(main.text() == side.text());
    // An edit made on top of the merge walks only itself (through the tracker the merge kept: the
    // version has two heads, so the merge's tracker is resumed rather than rebuilt).
    Doc third("third");
    sync(third, main);
    tandem::testing::random_edit(rng, third, true);
    const uint64_t before = main.num_events();
    sync(main, third);
    CHECK(main.last_merge_work().walked == main.num_events() - before);
  }
}
