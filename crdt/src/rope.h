// Rope: the visible text of a replica, with the local version (LV) of every character.
//
// A B+tree whose leaves hold up to kLeafBytes of UTF-8 and the run-length encoded LVs of those
// characters (in document order). Inner nodes keep, per child, its count of code points and of
// UTF-16 units, so that a position in either unit is found in O(log n) and converted exactly.
// Knowing which LV sits where is what lets a snapshot be written without replaying history.
//
// Invariants (checked by check()):
//  1. Every leaf's runs cover exactly its characters: the sum of run lengths is ncp.
//  2. Every inner node's counts equal the sums of its children's.
//  3. Every child's parent/slot fields point back at its place.
//  4. Only the root may be an empty leaf; no inner node is empty.
//
// Byte 0xFF never occurs in valid UTF-8; the engine uses it as the placeholder for a character
// whose text it does not know (it counts as one code point and one UTF-16 unit).
//
// Not thread-safe. Owned by one Doc.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace tandem::crdt::internal {

using LV = uint32_t;

struct LvRun {
  LV lv;
  uint32_t len;
  bool operator==(const LvRun&) const = default;
};

inline constexpr unsigned char kPlaceholderByte = 0xFF;

class Rope {
 public:
  Rope();
  ~Rope();
  Rope(Rope&& other) noexcept;
  Rope& operator=(Rope&& other) noexcept;
  Rope(const Rope&) = delete;
  Rope& operator=(const Rope&) = delete;

  uint32_t length() const;        // code points
  uint32_t length_utf16() const;  // UTF-16 code units
  size_t bytes() const { return bytes_; }

  // Inserts `text` (`ncp` code points, well-formed UTF-8 or placeholders) at code point `pos`;
  // its characters get LVs lv, lv+1, ... REQUIRES pos <= length().
  void insert(uint32_t pos, std::string_view text, uint32_t ncp, LV lv);
  // As Insert, with the LVs given as runs covering every character of `text`.
  void insert_runs(uint32_t pos, std::string_view text, const std::vector<LvRun>& runs);
  // Removes n code points at pos. When the out-parameters are non-null, the removed text and
  // LV runs are appended to them. REQUIRES pos + n <= length().
  void remove(uint32_t pos, uint32_t n, std::string* removed_text, std::vector<LvRun>* removed_runs);

  std::string text() const;
  std::string substr(uint32_t pos, uint32_t n) const;
  // UTF-16 offset of code point position `pos`. REQUIRES pos <= length().
  uint32_t utf16_of(uint32_t pos) const;
  // Code point position of UTF-16 offset `u` (REQUIRES u <= length_utf16()). If `u` falls between
  // the two halves of a surrogate pair, *inside_pair is set and the character's position returned.
  uint32_t pos_of_utf16(uint32_t u, bool* inside_pair) const;

  // Calls f(text, runs, nruns) for every leaf, in document order.
  void for_each_chunk(const std::function<void(std::string_view, const LvRun*, size_t)>& f) const;
  bool contains_placeholder() const;

  // Replaces the content with `text` whose characters carry `runs` (bulk load, linear time).
  void build(std::string_view text, const std::vector<LvRun>& runs);
  void clear();

  Status check() const;
  size_t heap_bytes() const;

 private:
  struct Node;
  struct Leaf;
  struct Inner;

  Leaf* find_leaf(uint32_t pos, bool prefer_left, uint32_t* offset) const;
  void insert_slow(Leaf* leaf, uint32_t off, std::string_view text, const LvRun* runs, size_t nruns);
  // Cuts text (whose characters carry runs[0, nruns)) into leaves of about target_bytes and at
  // most target_runs runs (<= kChopRuns): the first into `first` when given (its parent and slot
  // kept), the others new, appended to *rest.
  void chop(std::string_view text, const LvRun* runs, size_t nruns, size_t target_bytes, size_t target_runs,
            Leaf* first, std::vector<Node*>* rest) const;
  void insert_siblings(Node* after, const std::vector<Node*>& nodes);
  void unlink(Node* node);
  void maybe_merge_with_next(Leaf* leaf);
  void add_counts(Node* node, int64_t dcp, int64_t du16);
  void refresh(Node* node);
  static void free_tree(Node* node);
  static Leaf* next_leaf(const Leaf* leaf);
  Leaf* first_leaf() const;
  Status check_node(const Node* node, uint32_t* cp, uint32_t* u16, size_t* bytes) const;

  // Finds the leaf for an edit at `pos`, trying the leaf of the previous edit first: typing and
  // backspacing stay in one leaf, and skipping the descent is most of an edit's cost.
  Leaf* edit_leaf(uint32_t pos, bool prefer_left, uint32_t* offset);

  Node* root_ = nullptr;
  Leaf* hint_leaf_ = nullptr;  // the leaf of the last edit, or null
  uint32_t hint_start_ = 0;    // its first code point's position
  // In the hint leaf, a run index and the offset where that run starts: where to begin looking
  // for the run an edit touches. (0, 0) is always valid.
  uint32_t hint_run_ = 0;
  uint32_t hint_run_start_ = 0;
  uint32_t cp_ = 0;            // totals of the whole text
  uint32_t u16_ = 0;
  size_t bytes_ = 0;
  size_t leaves_ = 0;
  size_t inners_ = 0;
};

}  // namespace tandem::crdt::internal
