// The rope against a simple model: a vector of (character, LV).
#include <catch2/catch.hpp>

#include <set>

#include "crdt/utf8.h"
#include "lv_set.h"
#include "rope.h"
#include "support/random_edits.h"

using tandem::crdt::internal::LV;
using tandem::crdt::internal::LvRun;
using tandem::crdt::internal::Rope;
using tandem::testing::Rng;
namespace utf8 = tandem::crdt::utf8;

namespace {

// Consecutive LVs (in the order given) collapsed into runs.
template <class LVs>
std::vector<LvRun> runs_of(const LVs& lvs) {
  std::vector<LvRun> out;
  for (LV lv : lvs) {
    if (!out.empty() && out.back().lv + out.back().len == lv) {
      ++out.back().len;
    } else {
      out.push_back({lv, 1});
    }
  }
  return out;
}

struct Model {
  std::vector<std::string> chars;
  std::vector<LV> lvs;

  std::string text() const {
    std::string s;
    for (const auto& c : chars) s += c;
    return s;
  }
  std::vector<LvRun> runs() const { return runs_of(lvs); }
};

std::vector<std::string> split_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8::seq_len(static_cast<unsigned char>(s[i]));
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::vector<LvRun> rope_runs(const Rope& r) {
  std::vector<LvRun> out;
  r.for_each_chunk([&](std::string_view, const LvRun* runs, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (!out.empty() && out.back().lv + out.back().len == runs[i].lv) {
        out.back().len += runs[i].len;
      } else {
        out.push_back(runs[i]);
      }
    }
  });
  return out;
}

}  // namespace

TEST_CASE("rope: random edits match the model", "[rope]") {
  for (uint64_t seed = 0; seed < 40; ++seed) {
    INFO("seed " << seed);
    Rng rng(seed);
    Rope rope;
    Model model;
    LV next_lv = 0;
    for (int step = 0; step < 400; ++step) {
      const uint32_t len = static_cast<uint32_t>(model.chars.size());
      if (len > 0 && rng.chance(0.4)) {
        const uint32_t pos = static_cast<uint32_t>(rng.below(len));
        const uint32_t n = static_cast<uint32_t>(1 + rng.below(std::min<uint32_t>(len - pos, rng.chance(0.1) ? 900 : 5)));
        std::string removed;
        std::vector<LvRun> removed_runs;
        rope.remove(pos, n, &removed, &removed_runs);
        std::string expect;
        for (uint32_t i = pos; i < pos + n; ++i) expect += model.chars[i];
        CHECK(removed == expect);
        uint32_t covered = 0;
        for (const auto& r : removed_runs) covered += r.len;
        CHECK(covered == n);
        model.chars.erase(model.chars.begin() + pos, model.chars.begin() + pos + n);
        model.lvs.erase(model.lvs.begin() + pos, model.lvs.begin() + pos + n);
      } else {
        const uint32_t pos = static_cast<uint32_t>(rng.below(len + 1));
        const std::string text = tandem::testing::random_text(rng, rng.chance(0.05) ? 700 : 1 + rng.below(6));
        const auto chars = split_chars(text);
        rope.insert(pos, text, static_cast<uint32_t>(chars.size()), next_lv);
        model.chars.insert(model.chars.begin() + pos, chars.begin(), chars.end());
        for (size_t i = 0; i < chars.size(); ++i) model.lvs.insert(model.lvs.begin() + pos + i, next_lv + LV(i));
        next_lv += static_cast<LV>(chars.size()) + static_cast<LV>(rng.below(3));
      }
      REQUIRE(rope.check().ok());
      REQUIRE(rope.length() == model.chars.size());
    }
    const std::string text = model.text();
    CHECK(rope.text() == text);
    CHECK(rope.length_utf16() == utf8::count_utf16(text));
    CHECK(rope.bytes() == text.size());
    CHECK(rope_runs(rope) == model.runs());
    // Positions and UTF-16 offsets convert both ways; substrings match.
    uint32_t u16 = 0;
    for (uint32_t pos = 0; pos <= model.chars.size(); ++pos) {
      REQUIRE(rope.utf16_of(pos) == u16);
      bool inside = true;
      REQUIRE(rope.pos_of_utf16(u16, &inside) == pos);
      CHECK_FALSE(inside);
      if (pos < model.chars.size()) {
        const uint32_t w = model.chars[pos].size() == 4 ? 2 : 1;
        if (w == 2) {
          REQUIRE(rope.pos_of_utf16(u16 + 1, &inside) == pos);
          CHECK(inside);
        }
        u16 += w;
      }
    }
    if (!model.chars.empty()) {
      const uint32_t a = static_cast<uint32_t>(rng.below(model.chars.size()));
      const uint32_t n = static_cast<uint32_t>(rng.below(model.chars.size() - a + 1));
      std::string expect;
      for (uint32_t i = a; i < a + n; ++i) expect += model.chars[i];
      CHECK(rope.substr(a, n) == expect);
    }
    // Bulk build gives the same content.
    Rope built;
    built.build(text, model.runs());
    REQUIRE(built.check().ok());
    CHECK(built.text() == text);
    CHECK(rope_runs(built) == model.runs());
  }
}

TEST_CASE("rope: a large paste and its deletion", "[rope]") {
  Rope rope;
  std::string big;
  for (int i = 0; i < 100000; ++i) big += (i % 61 == 60) ? "\n" : (i % 7 == 0 ? "\xE4\xB8\xAD" : "a");
  const auto n = static_cast<uint32_t>(utf8::count_code_points(big));
  rope.insert(0, "start end", 9, 0);
  rope.insert(6, big, n, 100);
  REQUIRE(rope.check().ok());
  CHECK(rope.length() == n + 9);
  CHECK(rope.substr(0, 6) == "start ");
  CHECK(rope.substr(n + 6, 3) == "end");
  rope.remove(3, n, nullptr, nullptr);
  REQUIRE(rope.check().ok());
  CHECK(rope.length() == 9);
  rope.remove(0, 9, nullptr, nullptr);
  REQUIRE(rope.check().ok());
  CHECK(rope.text().empty());
  CHECK(rope.heap_bytes() < 4096);
}

TEST_CASE("rope: placeholders count as one character", "[rope]") {
  Rope rope;
  rope.insert(0, "ab", 2, 0);
  rope.insert(1, "\xFF\xFF", 2, 10);
  CHECK(rope.length() == 4);
  CHECK(rope.contains_placeholder());
  rope.remove(1, 2, nullptr, nullptr);
  CHECK_FALSE(rope.contains_placeholder());
  CHECK(rope.text() == "ab");
}

// The deleted-character set: runs added all at once (as a merge does) give exactly the set that
// adding them one by one gives, both against a plain set of LVs.
TEST_CASE("LvSet add_all equals adding one by one", "[crdt][lvset]") {
  using tandem::crdt::internal::LvSet;
  Rng rng(7);
  for (int round = 0; round < 200; ++round) {
    LvSet one, all;
    std::set<LV> model;
    const int start = static_cast<int>(rng.below(20));
    for (int i = 0; i < start; ++i) {
      const LV lv = static_cast<LV>(rng.below(300));
      const uint32_t len = 1 + static_cast<uint32_t>(rng.below(6));
      one.add(lv, len);
      all.add(lv, len);
      for (uint32_t k = 0; k < len; ++k) model.insert(lv + k);
    }
    std::vector<LvRun> more;
    // Every tenth round hands over up to thousands of runs spread over 2^24 LVs (all three passes of
    // the radix sort).
    const bool big = round % 10 == 0;
    const int n = static_cast<int>(big ? 100 + rng.below(3000) : rng.below(40));
    for (int i = 0; i < n; ++i) {
      const LV lv = static_cast<LV>(rng.below(big ? 1u << 24 : 300));
      const uint32_t len = 1 + static_cast<uint32_t>(rng.below(6));
      more.push_back({lv, len});
      one.add(lv, len);
      for (uint32_t k = 0; k < len; ++k) model.insert(lv + k);
    }
    all.add_all(more);
    REQUIRE(all == one);
    CHECK(all.runs() == runs_of(model));
  }
}
