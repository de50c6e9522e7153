// Rich text: the marks and block types a document carries (OpKind::kMark, kBlock), and how they read.
//
// Marks (Peritext: Litt, Lim, Kleppmann, van Hardenberg, 2022). A mark event covers the characters
// [pos, end) of the version it was made in, anchored to those characters' ids, never to positions:
// it starts just before the character at pos; it ends just before the character at `end` when the
// mark grows (text typed at its end, by anyone, is inside) and just after the character at end - 1
// when it does not. Text typed at a mark's start is never inside. A character's value for a mark
// is the latest event whose anchors enclose it, "latest" by (Lamport number, agent name, seq), an
// order every replica computes the same; a removal is an event like any other.
//
//   name       value                      grows   key
//   bold, italic, underline, strike, code   "true"   yes   the name
//   link       its href (no script URL)           no    the name
//   comment    its id                             no    the name and the id (comments overlap)
//
// Blocks (as Automerge's block markers): a `\n` in the text begins a block, and the document's
// first block begins at 0. A kBlock event sets the type of the block beginning at pos, anchored to
// that `\n` (or to the document's start), last writer wins as for marks. Deleting the `\n` joins the
// block to the one before, which keeps its own type. Unset blocks are paragraphs.
//
//   paragraph ""   heading "1".."6"   bullet, ordered: depth "0".."7"   quote ""   code: language
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/op.h"
#include "crdt/status.h"

namespace tandem::crdt {

inline constexpr size_t kMaxHrefBytes = 2048;
inline constexpr size_t kMaxCommentIdBytes = 64;
inline constexpr size_t kMaxLanguageBytes = 32;

// Whether `f` is a valid kMark (made at `pos`) or kBlock event; InvalidArgument says what is not.
Status ValidateFormat(OpKind kind, uint32_t pos, const Format& f);
// Whether text typed at the mark's end joins it (bold yes, link no). REQUIRES a valid mark name.
bool MarkGrows(std::string_view name);

struct Mark {
  std::string name;
  std::string value;
  bool operator==(const Mark&) const = default;
};

// A stretch of visible text with the same marks, in code points; marks sorted by (name, value).
struct TextSpan {
  uint32_t from = 0;
  uint32_t to = 0;
  std::vector<Mark> marks;
  bool operator==(const TextSpan&) const = default;
};

// A block: it begins at `at` (0, or just after a `\n`) and runs to the next `\n` or the end.
struct Block {
  uint32_t at = 0;
  std::string type = "paragraph";
  std::string value;
  bool operator==(const Block&) const = default;
};

}  // namespace tandem::crdt
