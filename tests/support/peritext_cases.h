// The Peritext paper's examples (Litt, Lim, Kleppmann, van Hardenberg, 2022) as data, so that the
// engine's test (two crdt::Doc replicas) and the protocol's (two net::Client over a real server)
// replay the same cases and expect the same results.
//
// A case: replica "a" types `base`, makes `shared` edits, and "b" receives all that; then a and b
// edit concurrently (`on_a`, `on_b`), exchange everything, and must both read `spans` (rendered
// by render_spans) and `blocks` (render_blocks; empty: not checked). Agent names decide ties, so
// the replicas must be called "a" and "b".
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/format.h"
#include "crdt/status.h"
#include "crdt/utf8.h"

namespace tandem::testing {

// The calls a case makes, on whichever kind of replica runs it.
struct RichEditor {
  virtual ~RichEditor() = default;
  virtual crdt::Status insert(uint32_t pos, std::string_view text) = 0;
  virtual crdt::Status remove(uint32_t pos, uint32_t len) = 0;
  virtual crdt::Status mark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value) = 0;
  virtual crdt::Status unmark(uint32_t pos, uint32_t len, std::string_view name) = 0;
  virtual crdt::Status set_block(uint32_t pos, std::string_view type, std::string_view value) = 0;
};

template <class Replica>
struct EditorOf : RichEditor {
  explicit EditorOf(Replica& r) : r(r) {}
  crdt::Status insert(uint32_t pos, std::string_view text) override { return r.insert(pos, text); }
  crdt::Status remove(uint32_t pos, uint32_t len) override { return r.remove(pos, len); }
  crdt::Status mark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value) override {
    return r.mark(pos, len, name, value);
  }
  crdt::Status unmark(uint32_t pos, uint32_t len, std::string_view name) override { return r.unmark(pos, len, name); }
  crdt::Status set_block(uint32_t pos, std::string_view type, std::string_view value) override {
    return r.set_block(pos, type, value);
  }
  Replica& r;
};

// The text with each marked stretch as {names:text}; a value shows as name=value.
inline std::string render_spans(const std::string& text, const std::vector<crdt::TextSpan>& spans) {
  std::string out;
  for (const auto& s : spans) {
    const size_t b0 = crdt::utf8::byte_offset(text, s.from);
    const std::string piece = text.substr(b0, crdt::utf8::byte_offset(std::string_view(text).substr(b0), s.to - s.from));
    if (s.marks.empty()) {
      out += piece;
      continue;
    }
    out += "{";
    for (size_t i = 0; i < s.marks.size(); ++i) {
      if (i) out += ",";
      out += s.marks[i].name;
      if (s.marks[i].value != "true") {
        out += "=";
        out += s.marks[i].value;
      }
    }
    out += ":";
    out += piece;
    out += "}";
  }
  return out;
}

inline std::string render_blocks(const std::vector<crdt::Block>& blocks) {
  std::string out;
  for (const crdt::Block& b : blocks) {
    if (!out.empty()) out += " ";
    out += std::to_string(b.at);
    out += ":";
    out += b.type;
    if (!b.value.empty()) {
      out += "=";
      out += b.value;
    }
  }
  return out;
}

struct PeritextCase {
  std::string name;
  std::string base;
  std::function<void(RichEditor&)> shared, on_a, on_b;  // shared may be empty
  std::string spans;
  std::string blocks;
};

// Each edit must succeed: a case that cannot make its edits is a broken case, not a result.
#define TANDEM_EDIT(call)                                                             \
  do {                                                                                \
    const ::tandem::crdt::Status st_ = (call);                                        \
    if (!st_.ok()) throw std::runtime_error(#call ": " + st_.ToString());             \
  } while (0)

inline const std::vector<PeritextCase>& peritext_cases() {
  using E = RichEditor;
  static const std::vector<PeritextCase> cases = {
      {"concurrent bold of overlapping ranges", "The quick fox jumped", {},
       [](E& a) { TANDEM_EDIT(a.mark(4, 9, "bold", "true")); },     // "quick fox"
       [](E& b) { TANDEM_EDIT(b.mark(10, 10, "bold", "true")); },   // "fox jumped"
       "The {bold:quick fox jumped}", ""},
      {"bold and concurrent insertions inside and at each edge", "The fox jumped", {},
       [](E& a) { TANDEM_EDIT(a.mark(4, 3, "bold", "true")); },  // "fox"
       [](E& b) {
         TANDEM_EDIT(b.insert(7, "]"));  // at the end: bold grows
         TANDEM_EDIT(b.insert(5, "-"));  // inside
         TANDEM_EDIT(b.insert(4, "["));  // at the start: not bold
       },
       "The [{bold:f-ox]} jumped", ""},
      {"a link and a concurrent insertion at its end", "see docs now", {},
       [](E& a) { TANDEM_EDIT(a.mark(4, 4, "link", "https://d.example/")); },
       [](E& b) {
         TANDEM_EDIT(b.insert(8, "!"));
         TANDEM_EDIT(b.insert(4, "the "));
       },
       "see the {link=https://d.example/:docs}! now", ""},
      // a bolds "jumped"; b unbolds "fox jumped" having seen the first bold only. "The " keeps
      // the first bold; "fox " only has b's removal (later than the first bold); on "jumped" the
      // two concurrent events meet and the order of (Lamport, agent) decides: b. Had the agents'
      // names been the other way round, the bold would win there: the rule is an order of the
      // events, the same on every replica, not the order they arrived in.
      {"bold and a concurrent unbold overlapping", "The fox jumped",
       [](E& a) { TANDEM_EDIT(a.mark(0, 7, "bold", "true")); },
       [](E& a) { TANDEM_EDIT(a.mark(8, 6, "bold", "true")); },
       [](E& b) { TANDEM_EDIT(b.unmark(4, 10, "bold")); },
       "{bold:The }fox jumped", ""},
      {"a comment over text deleted concurrently", "one two three four", {},
       [](E& a) { TANDEM_EDIT(a.mark(4, 9, "comment", "c1")); },  // "two three"
       [](E& b) { TANDEM_EDIT(b.remove(2, 6)); },                 // "e two "
       "on{comment=c1:three} four", ""},
      {"splitting a paragraph inside a bold span while the other bolds across", "alpha beta gamma", {},
       [](E& a) { TANDEM_EDIT(a.mark(0, 16, "bold", "true")); },
       [](E& b) {
         TANDEM_EDIT(b.insert(8, "\n"));  // "alpha be|ta gamma"
         TANDEM_EDIT(b.set_block(9, "heading", "2"));
       },
       "{bold:alpha be\nta gamma}", "0:paragraph 9:heading=2"},
      // One of the two, the same everywhere: equal Lamport numbers, so the agent's name decides.
      {"two replicas turn one paragraph into a heading and a list item", "intro\nthe paragraph\nend", {},
       [](E& a) { TANDEM_EDIT(a.set_block(8, "heading", "1")); },
       [](E& b) { TANDEM_EDIT(b.set_block(8, "bullet", "0")); },
       "intro\nthe paragraph\nend", "0:paragraph 6:bullet=0 20:paragraph"},
      {"joining two blocks while the other types in the second", "first\nsecond",
       [](E& a) {
         TANDEM_EDIT(a.set_block(0, "heading", "1"));
         TANDEM_EDIT(a.set_block(7, "quote", ""));
       },
       [](E& a) { TANDEM_EDIT(a.remove(5, 1)); },       // join: "firstsecond"
       [](E& b) { TANDEM_EDIT(b.insert(9, "-x-")); },   // "first\nsec-x-ond"
       "firstsec-x-ond", "0:heading=1"},
      {"a concurrent split and join neither duplicate nor lose text", "ab\ncd\nef", {},
       [](E& a) { TANDEM_EDIT(a.remove(2, 1)); },  // join the first two blocks
       [](E& b) {
         TANDEM_EDIT(b.insert(4, "\n"));  // split the second: "ab\nc\nd\nef"
         TANDEM_EDIT(b.set_block(5, "quote", ""));
       },
       "abc\nd\nef", "0:paragraph 4:quote 6:paragraph"},
  };
  return cases;
}

}  // namespace tandem::testing
