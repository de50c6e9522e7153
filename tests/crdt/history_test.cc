// crdt::History (crdt/history.h): the text at every point of a history equals what the replica
// held when it had exactly those events (its LVs are the order they arrived in), for concurrent
// histories of three agents and for a real trace; blame names the author of every character;
// diffs split two points' texts exactly.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>

#include "crdt/doc.h"
#include "crdt/history.h"
#include "crdt/utf8.h"
#include "replay.h"
#include "support/random_edits.h"
#include "trace.h"

using tandem::crdt::BlameSpan;
using tandem::crdt::DiffRun;
using tandem::crdt::Doc;
using tandem::crdt::History;
using Code = tandem::crdt::Status::Code;
namespace trace = tandem::trace;

namespace {

// What a replica held after each step: its event count, its text, and the author of each of
// its characters (from its snapshot, which names them independently of the history).
struct Seen {
  uint64_t events;
  std::string text;
  std::vector<std::string> authors;
};

Seen seen(const Doc& d) {
  const auto snap = d.to_snapshot();
  std::vector<std::string> agent_of_event;  // canonical event number -> agent
  for (const auto& r : snap.runs) agent_of_event.insert(agent_of_event.end(), r.len, snap.agents[r.agent]);
  Seen s{d.num_events(), d.text(), {}};
  for (const auto& t : snap.text_runs) {
    for (uint32_t k = 0; k < t.len; ++k) s.authors.push_back(agent_of_event[t.event + k]);
  }
  return s;
}

std::vector<std::string> authors_of(const std::vector<BlameSpan>& blame) {
  std::vector<std::string> out;
  for (const auto& b : blame) out.insert(out.end(), b.to - b.from, b.agent);
  return out;
}

// The diff's runs of the given kinds, joined.
std::string joined(const std::vector<DiffRun>& runs, DiffRun::Kind a, DiffRun::Kind b) {
  std::string out;
  for (const auto& r : runs) {
    if (r.kind == a || r.kind == b) out += r.text;
  }
  return out;
}

void check_diffs(const History& h, const std::vector<Seen>& steps, tandem::testing::Rng& rng) {
  for (int i = 0; i < 30; ++i) {
    const Seen& a = steps[rng.below(steps.size())];
    const Seen& b = steps[rng.below(steps.size())];
    auto d = h.diff(a.events, b.events);
    REQUIRE(d.ok());
    CHECK(joined(*d, DiffRun::kKept, DiffRun::kDeleted) == a.text);
    CHECK(joined(*d, DiffRun::kKept, DiffRun::kInserted) == b.text);
    for (size_t k = 1; k < d->size(); ++k) CHECK((*d)[k].kind != (*d)[k - 1].kind);  // maximal runs
    for (const auto& r : *d) CHECK(!r.agents.empty());
    auto same = h.diff(a.events, a.events);
    REQUIRE(same.ok());
    CHECK(same->size() <= 1);
    if (!same->empty()) CHECK(same->front().kind == DiffRun::kKept);
  }
}

}  // namespace

TEST_CASE("history: every point of a concurrent history is what the replica held then", "[history]") {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    INFO("seed " << seed);
    tandem::testing::Rng rng(seed);
    std::vector<Doc> docs;
    for (const char* name : {"ann", "bob", "cy"}) docs.emplace_back(name);
    std::vector<Seen> steps{seen(docs[0])};
    for (int step = 0; step < 120; ++step) {
      const size_t who = rng.below(3);
      if (rng.chance(0.25)) {
        // docs[0] (whose history is checked) or another replica catches up with a third.
        const size_t from = rng.below(3);
        if (from != who) REQUIRE(docs[who].apply(docs[from].ops_since(docs[who].version())).ok());
      } else {
        tandem::testing::random_edit(rng, docs[who], seed % 2 == 0);
      }
      if (who == 0) steps.push_back(seen(docs[0]));
    }
    REQUIRE(docs[0].apply(docs[1].ops_since(docs[0].version())).ok());
    REQUIRE(docs[0].apply(docs[2].ops_since(docs[0].version())).ok());
    steps.push_back(seen(docs[0]));
    auto h = docs[0].history();
    REQUIRE(h.ok());
    CHECK(h->events() == docs[0].num_events());
    for (const Seen& s : steps) {
      INFO("at " << s.events);
      auto text = h->text_at(s.events);
      REQUIRE(text.ok());
      CHECK(*text == s.text);
      auto blame = h->blame(s.events);
      REQUIRE(blame.ok());
      CHECK(authors_of(*blame) == s.authors);
      uint32_t at = 0;
      for (const auto& b : *blame) {
        CHECK(b.from == at);
        CHECK(b.to > b.from);
        at = b.to;
      }
      CHECK(at == tandem::crdt::utf8::count_code_points(s.text));
    }
    check_diffs(*h, steps, rng);
  }
}

TEST_CASE("history: diffs say who inserted and who deleted", "[history]") {
  Doc a("ann"), b("bob");
  REQUIRE(a.insert(0, "hello world").ok());  // events 0..10
  REQUIRE(b.apply(a.ops_since({})).ok());
  REQUIRE(b.remove(0, 6).ok());              // "world", events 11..16
  REQUIRE(a.apply(b.ops_since(a.version())).ok());
  REQUIRE(a.insert(5, "!").ok());            // "world!", event 17
  auto h = a.history();
  REQUIRE(h.ok());
  CHECK(*h->text_at(0) == "");
  CHECK(*h->text_at(11) == "hello world");
  CHECK(*h->text_at(14) == "lo world");
  CHECK(*h->text_at(18) == "world!");
  auto d = h->diff(11, 18);
  REQUIRE(d.ok());
  REQUIRE(d->size() == 3);
  CHECK((*d)[0] == DiffRun{DiffRun::kDeleted, "hello ", {"bob"}});
  CHECK((*d)[1] == DiffRun{DiffRun::kKept, "world", {"ann"}});
  CHECK((*d)[2] == DiffRun{DiffRun::kInserted, "!", {"ann"}});
  // Backwards, the same stretches the other way round, each made by the same event.
  auto back = h->diff(18, 11);
  REQUIRE(back.ok());
  REQUIRE(back->size() == 3);
  CHECK((*back)[0] == DiffRun{DiffRun::kInserted, "hello ", {"bob"}});
  CHECK((*back)[2] == DiffRun{DiffRun::kDeleted, "!", {"ann"}});
  auto blame = h->blame(18);
  REQUIRE(blame.ok());
  CHECK(*blame == std::vector<BlameSpan>{{0, 5, "ann", 6}, {5, 6, "ann", 17}});
  // A point past the end is refused.
  CHECK(h->text_at(19).status().code() == Code::kOutOfRange);
  CHECK(h->blame(19).status().code() == Code::kOutOfRange);
  CHECK(h->diff(0, 19).status().code() == Code::kOutOfRange);
  // The history does not follow later edits, and stays valid without its Doc.
  REQUIRE(a.insert(0, "x").ok());
  CHECK(h->events() == 18);
  { Doc gone = std::move(a); }
  CHECK(*h->text_at(18) == "world!");
}

TEST_CASE("history: a real trace's text at many points", "[history][trace]") {
  const std::string dir = trace::traces_dir();
  if (dir.empty()) {
    WARN("SKIPPED: no trace folder (set TANDEM_TRACES or put the traces in ../shared/traces)");
    return;
  }
  for (const char* name : {"seph-blog1.json.gz", "concurrent/friendsforever.json.gz"}) {
    const auto file = (std::filesystem::path(dir) / name).string();
    if (!std::filesystem::exists(file)) continue;
    auto t = trace::load(file);
    REQUIRE(t.ok());
    INFO(t->name);
    // The replica that made every transaction (a sequential trace), or agent 0's, recorded at 300
    // random transactions.
    tandem::testing::Rng rng(7);
    std::map<uint64_t, std::string> at;
    Doc doc("agent0");
    if (!t->concurrent) {
      for (const auto& tx : t->txns) {
        REQUIRE(trace::apply_txn(tx, &doc).ok());
        if (rng.below(t->txns.size()) < 300) at[doc.num_events()] = doc.text();
      }
    } else {
      auto docs = trace::replay_concurrent(*t, false);
      REQUIRE(docs.ok());
      doc = std::move(docs->front());
      at[doc.num_events()] = doc.text();
    }
    auto h = doc.history();
    REQUIRE(h.ok());
    for (const auto& [n, text] : at) {
      INFO("at " << n);
      CHECK(*h->text_at(n) == text);
    }
    CHECK(*h->text_at(h->events()) == doc.text());
  }
}
