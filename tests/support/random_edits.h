// Seeded random edits for property tests.
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "crdt/doc.h"

namespace tandem::testing {

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  // Uniform in [0, n); REQUIRES n > 0.
  uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(gen_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(gen_); }

 private:
  std::mt19937_64 gen_;
};

// n code points from a pool with ASCII, 2-, 3- and 4-byte UTF-8 (é, 中, 😀, 𝄞) and a combining
// accent, so that UTF-8, code point and UTF-16 positions all differ.
inline std::string random_text(Rng& rng, size_t n, bool ascii_only = false) {
  static const char* const kPool[] = {"a", "b", "c", "d", "e", " ", "\xC3\xA9", "\xE4\xB8\xAD",
                                      "\xF0\x9F\x98\x80", "\xF0\x9D\x84\x9E", "\xCC\x81", "x", "y", "z"};
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += ascii_only ? std::string(1, static_cast<char>('a' + rng.below(26))) : kPool[rng.below(std::size(kPool))];
  }
  return s;
}

// One random local edit: mostly short inserts, some deletes, sometimes a paste.
inline void random_edit(Rng& rng, crdt::Doc& doc, bool ascii_only = false) {
  const uint32_t len = doc.length();
  if (len > 0 && rng.chance(0.35)) {
    const uint32_t pos = static_cast<uint32_t>(rng.below(len));
    const uint32_t n = static_cast<uint32_t>(1 + rng.below(std::min<uint32_t>(len - pos, rng.chance(0.2) ? 12 : 3)));
    (void)doc.remove(pos, n);
    return;
  }
  const uint32_t pos = static_cast<uint32_t>(rng.below(len + 1));
  const size_t n = rng.chance(0.1) ? 5 + rng.below(30) : 1 + rng.below(4);
  (void)doc.insert(pos, random_text(rng, n, ascii_only));
}

// One random local edit of a rich document: a third of the time a mark, an unmark or a block
// change (names and comment ids from small pools, so that events meet), else a text edit that
// sometimes types a block boundary.
inline void random_rich_edit(Rng& rng, crdt::Doc& doc) {
  const uint32_t len = doc.length();
  if (!rng.chance(0.33)) {
    if (rng.chance(0.15)) {
      (void)doc.insert(static_cast<uint32_t>(rng.below(len + 1)), "\n");
    } else {
      random_edit(rng, doc);
    }
    return;
  }
  if (rng.chance(0.3)) {
    static const char* const kTypes[][2] = {{"paragraph", ""}, {"heading", "1"}, {"heading", "3"}, {"bullet", "0"},
                                            {"ordered", "2"},  {"quote", ""},    {"code", "c++"}};
    const auto& t = kTypes[rng.below(std::size(kTypes))];
    (void)doc.set_block(static_cast<uint32_t>(rng.below(len + 1)), t[0], t[1]);
    return;
  }
  if (len == 0) return;
  static const char* const kNames[] = {"bold", "italic", "link", "comment", "code"};
  const std::string name = kNames[rng.below(std::size(kNames))];
  const uint32_t pos = static_cast<uint32_t>(rng.below(len));
  const uint32_t n = static_cast<uint32_t>(1 + rng.below(len - pos));
  std::string value = "true";
  if (name == "link") value = rng.chance(0.5) ? "https://a.example/" : "/b";
  if (name == "comment") value = "c" + std::to_string(rng.below(3));
  if (rng.chance(0.3)) {
    (void)doc.unmark(pos, n, name, name == "comment" ? value : "");
  } else {
    (void)doc.mark(pos, n, name, value);
  }
}

}  // namespace tandem::testing
