#include "merge.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace tandem::crdt::internal {

// A mark's characters, or a block's start, must lie inside the document it was made in.
Status check_format(const OpLog& log, const OpSpan& op, uint32_t doc_len) {
  const Format& f = log.format_of(op);
  const uint32_t last = f.end > op.pos ? f.end : op.pos;  // a block: its start
  if (last > doc_len) {
    return Status::InvalidArgument("format event at local version " + std::to_string(op.lv) + " reaches position " +
                                   std::to_string(last) + ", past the end of the document (length " +
                                   std::to_string(doc_len) + ") at its parents' version");
  }
  return Status::OK();
}

// Named (not anonymous): MergeCache::State, declared in the header, holds a Tracker.
namespace merge_detail {

constexpr size_t kRecCap = 32;
constexpr size_t kFan = 16;

// A run of characters in the tracker: LVs [lv, lv + len), inserted together, so that character k
// has left origin lv + k - 1 (the first one: `ol`) and all share the right origin `orr`.
//   state: 0 = not inserted yet in the prepare version, 1 = inserted, 1 + k = deleted k times.
//   del:   deleted in the effect version (the merged result).
struct Rec {
  LV lv;
  uint32_t len;
  LV ol;
  LV orr;
  uint32_t state;
  bool del;
};

struct Inner;
struct Node {
  explicit Node(bool is_leaf) : leaf(is_leaf) {}
  Inner* parent = nullptr;
  uint8_t slot = 0;
  bool leaf;
};
struct Leaf : Node {
  Leaf() : Node(true) {}
  uint8_t n = 0;
  Rec recs[kRecCap];
};
struct Inner : Node {
  Inner() : Node(false) {}
  uint8_t n = 0;
  Node* child[kFan];
  uint32_t raw[kFan];
  uint32_t prep[kFan];
  uint32_t eff[kFan];
};

struct Counts {
  uint32_t raw = 0, prep = 0, eff = 0;
};

Counts counts_of(const Node* node) {
  Counts c;
  if (node->leaf) {
    auto* l = static_cast<const Leaf*>(node);
    for (int i = 0; i < l->n; ++i) {
      const Rec& r = l->recs[i];
      c.raw += r.len;
      if (r.state == 1) c.prep += r.len;
      if (!r.del) c.eff += r.len;
    }
  } else {
    auto* in = static_cast<const Inner*>(node);
    for (int i = 0; i < in->n; ++i) {
      c.raw += in->raw[i];
      c.prep += in->prep[i];
      c.eff += in->eff[i];
    }
  }
  return c;
}

struct Cursor {
  Leaf* leaf;
  int idx;
  uint32_t off;
};

Rec split_rec(Rec* a, uint32_t off) {
  Rec b = *a;
  b.lv = a->lv + off;
  b.len = a->len - off;
  b.ol = a->lv + off - 1;
  a->len = off;
  return b;
}

void insert_into_leaf(Leaf* l, int at, const Rec& r) {
  std::memmove(l->recs + at + 1, l->recs + at, (l->n - at) * sizeof(Rec));
  l->recs[at] = r;
  ++l->n;
}

// Disjoint LV ranges -> the leaf holding their records. Sorted ranges in chunks of at most
// kMaxChunk, found through the chunks' first starts, each chunk's starts packed together for
// the search (a std::map spent a cache miss per level of a tree with a node per record: a fifth
// of a many-author replay went to its lookups).
class LvIndex {
 public:
  void clear() {
    chunks_.clear();
    firsts_.clear();
  }
  size_t heap_bytes() const {
    return chunks_.size() * sizeof(Chunk) + chunks_.capacity() * sizeof(void*) + firsts_.capacity() * sizeof(LV);
  }

  // The leaf of the range that holds x (REQUIRES one).
  Leaf* find(LV x) const {
    const size_t c = chunk_of(x);
    assert(c != kNone);
    const Chunk& ch = *chunks_[c];
    const size_t i = ch.last_at_or_before(x);
    assert(i != kNone && x < ch.end[i]);
    return ch.leaf[i];
  }

  // [start, end) now lives in `leaf`; the parts of other ranges outside it keep theirs.
  void set(LV start, LV end, Leaf* leaf) {
    for (;;) {
      const size_t c = chunk_of(end - 1);
      if (c == kNone) break;
      Chunk& ch = *chunks_[c];
      const size_t i = ch.last_at_or_before(end - 1);
      assert(i != kNone);  // the chunk's first range starts at or before end - 1
      if (ch.end[i] <= start) {
        // The last range starting before `end` ends before `start`: nothing overlaps, and the new
        // range goes right after it (the common case: a record new to the tracker).
        ch.insert_at(i + 1, start, end, leaf);
        split_if_full(c);
        return;
      }
      const LV old_start = ch.start[i], old_end = ch.end[i];
      Leaf* const old_leaf = ch.leaf[i];
      if (old_start <= start && old_end >= end) {
        // Inside one range (a record moving to a new leaf): split it where it stands.
        size_t at = i;
        if (old_start < start) {
          ch.end[at] = start;
          ch.insert_at(++at, start, end, leaf);
        } else {
          ch.end[at] = end;
          ch.leaf[at] = leaf;
        }
        if (old_end > end) ch.insert_at(at + 1, end, old_end, old_leaf);
        split_if_full(c);
        return;
      }
      erase_at(c, i);
      if (old_start < start) insert(old_start, start, old_leaf);
      if (old_end > end) insert(end, old_end, old_leaf);
    }
    insert(start, end, leaf);
  }

 private:
  static constexpr size_t kMaxChunk = 128;
  static constexpr size_t kNone = SIZE_MAX;
  struct Chunk {
    size_t n = 0;
    LV start[kMaxChunk + 2];  // two spare: a split inserts up to two before the chunk is split
    LV end[kMaxChunk + 2];
    Leaf* leaf[kMaxChunk + 2];

    size_t last_at_or_before(LV x) const {
      const LV* it = std::upper_bound(start, start + n, x);
      return it == start ? kNone : static_cast<size_t>(it - start) - 1;
    }
    void insert_at(size_t i, LV s, LV e, Leaf* l) {
      std::memmove(start + i + 1, start + i, (n - i) * sizeof(LV));
      std::memmove(end + i + 1, end + i, (n - i) * sizeof(LV));
      std::memmove(leaf + i + 1, leaf + i, (n - i) * sizeof(Leaf*));
      start[i] = s;
      end[i] = e;
      leaf[i] = l;
      ++n;
    }
    void erase_at(size_t i) {
      std::memmove(start + i, start + i + 1, (n - i - 1) * sizeof(LV));
      std::memmove(end + i, end + i + 1, (n - i - 1) * sizeof(LV));
      std::memmove(leaf + i, leaf + i + 1, (n - i - 1) * sizeof(Leaf*));
      --n;
    }
  };

  // The last chunk whose first range starts at or before x.
  size_t chunk_of(LV x) const {
    auto it = std::upper_bound(firsts_.begin(), firsts_.end(), x);
    return it == firsts_.begin() ? kNone : static_cast<size_t>(it - firsts_.begin()) - 1;
  }

  void insert(LV s, LV e, Leaf* l) {
    if (chunks_.empty()) {
      chunks_.push_back(std::make_unique<Chunk>());
      firsts_.push_back(s);
    }
    size_t c = chunk_of(s);
    if (c == kNone) c = 0;
    Chunk& ch = *chunks_[c];
    const size_t i = ch.last_at_or_before(s);
    ch.insert_at(i == kNone ? 0 : i + 1, s, e, l);
    firsts_[c] = ch.start[0];
    split_if_full(c);
  }

  void erase_at(size_t c, size_t i) {
    Chunk& ch = *chunks_[c];
    ch.erase_at(i);
    if (ch.n == 0) {
      chunks_.erase(chunks_.begin() + static_cast<std::ptrdiff_t>(c));
      firsts_.erase(firsts_.begin() + static_cast<std::ptrdiff_t>(c));
    } else {
      firsts_[c] = ch.start[0];
    }
  }

  void split_if_full(size_t c) {
    Chunk& ch = *chunks_[c];
    if (ch.n <= kMaxChunk) return;
    auto upper = std::make_unique<Chunk>();
    const size_t half = ch.n / 2;
    upper->n = ch.n - half;
    std::memcpy(upper->start, ch.start + half, upper->n * sizeof(LV));
    std::memcpy(upper->end, ch.end + half, upper->n * sizeof(LV));
    std::memcpy(upper->leaf, ch.leaf + half, upper->n * sizeof(Leaf*));
    ch.n = half;
    const LV first = upper->start[0];
    chunks_.insert(chunks_.begin() + static_cast<std::ptrdiff_t>(c + 1), std::move(upper));
    firsts_.insert(firsts_.begin() + static_cast<std::ptrdiff_t>(c + 1), first);
  }

  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::vector<LV> firsts_;  // chunks_[c]->start[0]
};

class Tracker {
 public:
  explicit Tracker(const OpLog& log) : log_(log) {}
  ~Tracker() { free_nodes(root_); }
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  void reset(uint32_t placeholder_len) {
    free_nodes(root_);
    hint_leaf_ = nullptr;
    index_.clear();
    dels_.clear();
    auto* leaf = new Leaf();
    root_ = leaf;
    if (placeholder_len > 0) {
      leaf->recs[0] = {kUnderwater, placeholder_len, kNoLV, kNoLV, 1, false};
      leaf->n = 1;
      index_.set(kUnderwater, kUnderwater + placeholder_len, leaf);
    }
  }

  uint32_t prep_len() const { return counts_of(root_).prep; }

  // The character at position p of the prepare version (kNoLV at or past its end).
  LV lv_at_prep(uint64_t p) const {
    if (p >= prep_len()) return kNoLV;
    const Cursor c = find_prep(static_cast<uint32_t>(p));
    return at(c).lv + c.off;
  }
  // Character x in the effect version (every event applied): its position and whether it is gone.
  std::pair<uint32_t, bool> eff_where(LV x) const {
    const Cursor c = cursor_at_lv(x);
    return {eff_pos(c), c.leaf->recs[c.idx].del};
  }

  template <typename F>
  void for_each_rec(F f) const {
    for (const Leaf* l = first_leaf(); l; l = next_leaf(l)) {
      for (int i = 0; i < l->n; ++i) f(l->recs[i]);
    }
  }

  size_t heap_bytes() const { return heap_of(root_) + dels_.capacity() * sizeof(DelTarget) + index_.heap_bytes(); }

  // f(first delete event, events n, first character deleted, forward): event first + k deletes
  // character target + k (forward) or target + n - 1 - k (backward).
  template <typename F>
  void for_each_deletion(F f) const {
    for (const DelTarget& d : dels_) f(d.start, d.end - d.start, d.target, d.fwd);
  }

  void retreat(Span s) {
    LV end = s.end;
    while (end > s.start) {
      const OpSpan& op = log_.ops()[log_.op_index(end - 1)];
      const LV a = std::max(op.lv, s.start);
      if (op.type == kFmt) {
        // moves no text
      } else if (op.type == kIns) {
        mutate_range(a, end - a, [](Rec* r) {
          assert(r->state == 1);
          r->state = 0;
        });
      } else {
        change_deleted(a, end, -1);
      }
      end = a;
    }
  }

  void advance(Span s) {
    LV start = s.start;
    while (start < s.end) {
      const OpSpan& op = log_.ops()[log_.op_index(start)];
      const LV b = std::min(op.end(), s.end);
      if (op.type == kFmt) {
        // moves no text
      } else if (op.type == kIns) {
        mutate_range(start, b - start, [](Rec* r) {
          assert(r->state == 0);
          r->state = 1;
        });
      } else {
        change_deleted(start, b, +1);
      }
      start = b;
    }
  }

  // Applies the events [start, start + n) of op span `op` in the prepare version; when `out` is
  // set, appends their effect on the merged text.
  Status apply(const OpSpan& op, LV start, uint32_t n, std::vector<XfOp>* out) {
    const uint32_t k0 = start - op.lv;
    const uint64_t plen = prep_len();
    if (op.type == kFmt) return check_format(log_, op, static_cast<uint32_t>(plen));
    if (op.type == kIns) {
      const uint64_t pos = op.pos + static_cast<uint64_t>(k0);
      if (pos > plen) return out_of_range(start, pos, plen);
      Cursor cur;
      LV ol = kNoLV;
      if (pos == 0) {
        cur = {first_leaf(), 0, 0};
      } else {
        cur = find_prep(static_cast<uint32_t>(pos - 1));
        ol = at(cur).lv + cur.off;
        cur.off += 1;
      }
      LV orr = kNoLV;
      for (Cursor c = cur; normalize(&c); c.off = at(c).len) {
        const Rec& r = at(c);
        if (r.state != 0) {
          orr = r.lv + c.off;
          break;
        }
      }
      const Cursor at = integrate({start, n, ol, orr, 1, false}, cur);
      if (out) out->push_back({true, eff_pos(at), n, start});
      return Status::OK();
    }
    uint64_t first;
    if (op.type == kDelFwd) {
      first = op.pos;
      if (first + n > plen) return out_of_range(start, first + n - 1, plen);
    } else {
      const uint64_t top = static_cast<uint64_t>(op.pos) - k0;
      if (top >= plen || top + 1 < n) return out_of_range(start, top, plen);
      first = top + 1 - n;
    }
    std::vector<DelTarget>& found = del_scratch_;
    found.clear();
    for (uint32_t w = 0; w < n;) {
      Cursor c = find_prep(static_cast<uint32_t>(first));
      const Rec& r = at(c);
      const uint32_t take = std::min(n - w, r.len - c.off);
      const LV target = r.lv + c.off;
      if (op.type == kDelFwd) {
        found.push_back({start + w, start + w + take, target, true});
      } else {
        found.push_back({start + n - w - take, start + n - w, target, false});
      }
      const bool emit = out && !r.del;
      const uint32_t eff = emit ? eff_pos(c) : 0;
      Cursor seg = isolate(c, take);
      Rec& s = at(seg);
      const Counts was = rec_counts(s);
      s.state = 2;
      s.del = true;
      add_up(seg.leaf, was, rec_counts(s));
      if (emit) out->push_back({false, eff, take, 0});
      w += take;
    }
    // Units are not processed in LV order: keep dels_ sorted by event.
    if (op.type == kDelBack) std::reverse(found.begin(), found.end());
    auto at = std::upper_bound(dels_.begin(), dels_.end(), start, [](LV x, const DelTarget& d) { return x < d.start; });
    dels_.insert(at, found.begin(), found.end());
    return Status::OK();
  }

 private:
  struct DelTarget {
    LV start, end;  // delete events
    LV target;      // the first of the characters they delete (consecutive LVs); event start + k
                    // deletes target + k (fwd) or target + (end - start - 1 - k) (back)
    bool fwd;
  };

  static Status out_of_range(LV lv, uint64_t pos, uint64_t len) {
    return Status::InvalidArgument("event at local version " + std::to_string(lv) + " has position " +
                                   std::to_string(pos) + " past the end of the document (length " +
                                   std::to_string(len) + ") at its parents' version");
  }

  static size_t heap_of(const Node* node) {
    if (node->leaf) return sizeof(Leaf);
    auto* in = static_cast<const Inner*>(node);
    size_t n = sizeof(Inner);
    for (int i = 0; i < in->n; ++i) n += heap_of(in->child[i]);
    return n;
  }

  static void free_nodes(Node* node) {
    if (!node) return;
    if (node->leaf) {
      delete static_cast<Leaf*>(node);
      return;
    }
    auto* in = static_cast<Inner*>(node);
    for (int i = 0; i < in->n; ++i) free_nodes(in->child[i]);
    delete in;
  }

  static Rec& at(const Cursor& c) { return c.leaf->recs[c.idx]; }

  Leaf* first_leaf() const {
    Node* n = root_;
    while (!n->leaf) n = static_cast<Inner*>(n)->child[0];
    return static_cast<Leaf*>(n);
  }

  static Leaf* next_leaf(const Leaf* leaf) {
    const Node* n = leaf;
    while (n->parent && n->slot + 1 == n->parent->n) n = n->parent;
    if (!n->parent) return nullptr;
    Node* m = n->parent->child[n->slot + 1];
    while (!m->leaf) m = static_cast<Inner*>(m)->child[0];
    return static_cast<Leaf*>(m);
  }

  // Moves a cursor sitting at the end of a record to the start of the next one. Returns false at
  // the end of the document (the cursor then points past the last record of the last leaf).
  static bool normalize(Cursor* c) {
    while (c->idx >= c->leaf->n || c->off >= c->leaf->recs[c->idx].len) {
      if (c->idx < c->leaf->n) {
        ++c->idx;
        c->off = 0;
        continue;
      }
      Leaf* next = next_leaf(c->leaf);
      if (!next) return false;
      c->leaf = next;
      c->idx = 0;
      c->off = 0;
    }
    return true;
  }

  static Counts rec_counts(const Rec& r) { return {r.len, r.state == 1 ? r.len : 0, r.del ? 0 : r.len}; }

  // One record of `node` went from `was` to `now`: its ancestors' counts change by the difference
  // (unsigned arithmetic wraps, so a decrease works too), without recounting any node.
  static void add_up(Node* node, const Counts& was, const Counts& now) {
    const uint32_t dr = now.raw - was.raw, dp = now.prep - was.prep, de = now.eff - was.eff;
    if (dr == 0 && dp == 0 && de == 0) return;
    for (Node* n = node; n->parent; n = n->parent) {
      n->parent->raw[n->slot] += dr;
      n->parent->prep[n->slot] += dp;
      n->parent->eff[n->slot] += de;
    }
  }

  static void refresh_up(Node* node) {
    for (Node* n = node; n->parent; n = n->parent) {
      const Counts c = counts_of(n);
      n->parent->raw[n->slot] = c.raw;
      n->parent->prep[n->slot] = c.prep;
      n->parent->eff[n->slot] = c.eff;
    }
  }

  Cursor find_prep(uint32_t p) const {
    Node* n = root_;
    while (!n->leaf) {
      auto* in = static_cast<Inner*>(n);
      int i = 0;
      for (; i + 1 < in->n; ++i) {
        if (p < in->prep[i]) break;
        p -= in->prep[i];
      }
      n = in->child[i];
    }
    auto* l = static_cast<Leaf*>(n);
    for (int i = 0; i < l->n; ++i) {
      const Rec& r = l->recs[i];
      if (r.state != 1) continue;
      if (p < r.len) return {l, i, p};
      p -= r.len;
    }
    assert(false && "find_prep past the end");
    return {l, l->n, 0};
  }

  uint32_t raw_pos(const Cursor& c) const {
    uint32_t pos = c.off;
    for (int i = 0; i < c.idx; ++i) pos += c.leaf->recs[i].len;
    for (const Node* n = c.leaf; n->parent; n = n->parent) {
      for (int j = 0; j < n->slot; ++j) pos += n->parent->raw[j];
    }
    return pos;
  }

  uint32_t eff_pos(const Cursor& c) const {
    uint32_t pos = 0;
    if (c.idx < c.leaf->n && !c.leaf->recs[c.idx].del) pos = c.off;
    for (int i = 0; i < c.idx; ++i) {
      if (!c.leaf->recs[i].del) pos += c.leaf->recs[i].len;
    }
    for (const Node* n = c.leaf; n->parent; n = n->parent) {
      for (int j = 0; j < n->slot; ++j) pos += n->parent->eff[j];
    }
    return pos;
  }

  Cursor cursor_at_lv(LV x) const {
    // Retreating, advancing and deleting visit neighbouring records one after another: look next
    // to the record found last before asking the index. (LVs are unique in the tracker, so a record
    // holding x is the one; leaves live until reset, which clears the hint.)
    if (Leaf* l = hint_leaf_) {
      for (int i = hint_idx_; i < l->n && i < hint_idx_ + 3; ++i) {
        const Rec& r = l->recs[i];
        if (x >= r.lv && x < r.lv + r.len) {
          hint_idx_ = i;
          return {l, i, x - r.lv};
        }
      }
    }
    Leaf* l = index_.find(x);
    for (int i = 0; i < l->n; ++i) {
      const Rec& r = l->recs[i];
      if (x - r.lv < r.len) {  // r.lv <= x < r.lv + r.len, in one unsigned comparison
        hint_leaf_ = l;
        hint_idx_ = i;
        return {l, i, x - r.lv};
      }
    }
    assert(false && "index points at the wrong leaf");
    return {l, 0, 0};
  }

  uint32_t raw_pos_of_lv(LV x) const { return x == kNoLV ? counts_of(root_).raw : raw_pos(cursor_at_lv(x)); }


  // Out of line: it runs once per full leaf, and inlined into the hot paths it only swells them
  // (and GCC 12's -O3 then reads a path through its recursion that never runs as out of bounds).
  [[gnu::noinline]] void insert_sibling(Node* after, Node* node) {
    Inner* p = after->parent;
    if (!p) {
      p = new Inner();
      p->n = 1;
      p->child[0] = after;
      after->parent = p;
      after->slot = 0;
      root_ = p;
    }
    if (p->n == kFan) {
      // Split p: its upper half moves to a new sibling, then place `node` in the right half.
      auto* q = new Inner();
      const int half = kFan / 2;
      for (int i = half; i < p->n; ++i) {
        q->child[i - half] = p->child[i];
        q->raw[i - half] = p->raw[i];
        q->prep[i - half] = p->prep[i];
        q->eff[i - half] = p->eff[i];
        p->child[i]->parent = q;
        p->child[i]->slot = static_cast<uint8_t>(i - half);
      }
      q->n = static_cast<uint8_t>(p->n - half);
      p->n = half;
      insert_sibling(p, q);
      refresh_up(p);
      refresh_up(q);
      p = after->parent;
    }
    const int at = after->slot + 1;
    for (int i = p->n; i > at; --i) {
      p->child[i] = p->child[i - 1];
      p->raw[i] = p->raw[i - 1];
      p->prep[i] = p->prep[i - 1];
      p->eff[i] = p->eff[i - 1];
      p->child[i]->slot = static_cast<uint8_t>(i);
    }
    p->child[at] = node;
    node->parent = p;
    node->slot = static_cast<uint8_t>(at);
    ++p->n;
    const Counts a = counts_of(after), b = counts_of(node);
    p->raw[at - 1] = a.raw;
    p->prep[at - 1] = a.prep;
    p->eff[at - 1] = a.eff;
    p->raw[at] = b.raw;
    p->prep[at] = b.prep;
    p->eff[at] = b.eff;
    refresh_up(p);
  }

  // Makes room for `need` more records in the cursor's leaf, splitting it if needed.
  void ensure_room(Cursor* c, int need) {
    Leaf* l = c->leaf;
    if (l->n + need <= static_cast<int>(kRecCap)) return;
    auto* r = new Leaf();
    const int half = l->n / 2;
    r->n = static_cast<uint8_t>(l->n - half);
    std::memcpy(r->recs, l->recs + half, r->n * sizeof(Rec));
    l->n = static_cast<uint8_t>(half);
    for (int i = 0; i < r->n; ++i) index_.set(r->recs[i].lv, r->recs[i].lv + r->recs[i].len, r);
    insert_sibling(l, r);
    if (c->idx >= half) {
      c->leaf = r;
      c->idx -= half;
    }
  }

  Cursor insert_rec_at(Cursor c, const Rec& rec) {
    ensure_room(&c, 2);
    Leaf* l = c.leaf;
    if (c.idx < l->n && c.off > 0) {
      if (c.off < l->recs[c.idx].len) insert_into_leaf(l, c.idx + 1, split_rec(&l->recs[c.idx], c.off));
      ++c.idx;
      c.off = 0;
    }
    insert_into_leaf(l, c.idx, rec);
    index_.set(rec.lv, rec.lv + rec.len, l);
    add_up(l, {}, rec_counts(rec));
    return {l, c.idx, 0};
  }

  // Splits records so that [c.off, c.off + take) of the cursor's record is a record of its own.
  Cursor isolate(Cursor c, uint32_t take) {
    ensure_room(&c, 2);
    Leaf* l = c.leaf;
    int i = c.idx;
    if (c.off > 0) {
      insert_into_leaf(l, i + 1, split_rec(&l->recs[i], c.off));
      ++i;
    }
    if (take < l->recs[i].len) insert_into_leaf(l, i + 1, split_rec(&l->recs[i], take));
    return {l, i, 0};
  }

  template <typename F>
  void mutate_range(LV start, uint32_t len, F fn) {
    while (len > 0) {
      const Cursor c = cursor_at_lv(start);
      const uint32_t take = std::min(len, at(c).len - c.off);
      const Cursor seg = isolate(c, take);
      const Counts was = rec_counts(at(seg));
      fn(&at(seg));
      add_up(seg.leaf, was, rec_counts(at(seg)));
      start += take;
      len -= take;
    }
  }

  // Adds `delta` to the delete count of every character deleted by the events [a, b).
  void change_deleted(LV a, LV b, int delta) {
    auto it = dels_.begin() + static_cast<std::ptrdiff_t>(del_at(a));
    for (; it != dels_.end() && it->start < b; ++it) {
      const LV x = std::max(a, it->start), y = std::min(b, it->end);
      if (x >= y) continue;
      const LV t = it->fwd ? it->target + (x - it->start) : it->target + (it->end - y);
      mutate_range(t, y - x, [delta](Rec* r) {
        assert(r->state >= 1 && (delta > 0 || r->state >= 2));
        r->state = static_cast<uint32_t>(static_cast<int64_t>(r->state) + delta);
      });
    }
  }

  // The last entry of dels_ that starts at or before `a` (0 if none). Retreating and advancing
  // visit delete spans in order, so the entry found last or a neighbour is usually the one.
  size_t del_at(LV a) const {
    const size_t n = dels_.size();
    auto fits = [&](size_t i) { return i < n && dels_[i].start <= a && (i + 1 == n || dels_[i + 1].start > a); };
    const size_t h = del_hint_;
    if (fits(h)) return h;
    if (fits(h + 1)) return del_hint_ = h + 1;
    if (h > 0 && fits(h - 1)) return del_hint_ = h - 1;
    auto it = std::upper_bound(dels_.begin(), dels_.end(), a, [](LV x, const DelTarget& d) { return x < d.start; });
    del_hint_ = it == dels_.begin() ? 0 : static_cast<size_t>(it - dels_.begin()) - 1;
    return del_hint_;
  }

  // Places `item` among the concurrent inserts that follow its left origin (the cursor is just
  // after it), FugueMax order; returns where it went.
  Cursor integrate(const Rec& item, Cursor cur) {
    // Positions and the item's id are looked up when first needed: most inserts meet their
    // right origin (or the end) at once, with no concurrent insert to order against.
    uint32_t left_raw = UINT32_MAX;
    uint32_t right_raw = UINT32_MAX;
    std::optional<AgentSpan> me;
    Cursor c = cur;
    Cursor scan_start = cur;
    bool scanning = false;
    while (normalize(&c)) {
      const Rec& o = at(c);
      const LV o_lv = o.lv + c.off;
      if (o_lv == item.orr) break;
      assert(o.state == 0);
      const LV o_ol = c.off == 0 ? o.ol : o_lv - 1;
      const uint32_t o_left_raw = o_ol == kNoLV ? 0 : raw_pos(cursor_at_lv(o_ol)) + 1;
      if (left_raw == UINT32_MAX) left_raw = raw_pos(cur);
      if (o_left_raw < left_raw) break;
      if (o_left_raw == left_raw) {
        if (o.orr == item.orr) {
          // Same origins on both sides: a deterministic tie-break on (agent name, seq).
          if (!me) me = log_.id_of(item.lv);
          const AgentSpan other = log_.id_of(o_lv);
          const int cmp = log_.agent_name(me->agent).compare(log_.agent_name(other.agent));
          if (cmp < 0 || (cmp == 0 && me->seq < other.seq)) break;
          scanning = false;
        } else {
          if (right_raw == UINT32_MAX) right_raw = raw_pos_of_lv(item.orr);
          const uint32_t o_right_raw = raw_pos_of_lv(o.orr);
          if (o_right_raw < right_raw) {
            if (!scanning) {
              scanning = true;
              scan_start = c;
            }
          } else {
            scanning = false;
          }
        }
      }
      c.off = o.len;
    }
    if (scanning) c = scan_start;
    return insert_rec_at(c, item);
  }

  const OpLog& log_;
  Node* root_ = nullptr;
  LvIndex index_;  // LV ranges -> the leaf holding their records
  mutable Leaf* hint_leaf_ = nullptr;  // where cursor_at_lv found a record last
  mutable int hint_idx_ = 0;
  // Delete events handled by this tracker, ascending.
  std::vector<DelTarget> dels_;
  mutable size_t del_hint_ = 0;  // see del_at
  std::vector<DelTarget> del_scratch_;
};

struct Unit {
  LV start, end;
  size_t op_index;
};

// Processing order: topological, all old events (already in the text) before any new one,
// and depth-first along chains, so that two interleaved branches are walked one after the other
// instead of switching the tracker between them at every unit. Also fills suffix[k]: see below.
void order_units(const OpLog& log, const std::vector<Unit>& units, LV first_new, std::vector<uint32_t>* order_out,
                 std::vector<int64_t>* suffix_out) {
  const size_t nu = units.size();
  auto unit_of = [&](LV lv) -> int64_t {
    auto it = std::upper_bound(units.begin(), units.end(), lv, [](LV x, const Unit& u) { return x < u.start; });
    if (it == units.begin()) return -1;
    --it;
    return lv < it->end ? it - units.begin() : -1;
  };
  std::vector<uint32_t> waiting(nu, 0);
  std::vector<std::pair<uint32_t, uint32_t>> edges;  // (parent unit, child unit), by child
  std::vector<uint8_t> edge_last;                      // the parent is its unit's last event
  std::vector<uint32_t> edges_of(nu + 1, 0);           // unit c's edges: [edges_of[c], edges_of[c + 1])
  std::vector<uint8_t> outside(nu, 0);                 // a parent outside the zone, or none at all
  std::vector<int64_t> cont_of(nu, -1);                // the unit whose last event is the only parent
  edges.reserve(nu);
  edge_last.reserve(nu);
  for (uint32_t c = 0; c < nu; ++c) {
    // The unit's first event's parents, read in place: the event before it inside a graph entry.
    const LV start = units[c].start;
    const GraphEntry& g = log.graph()[log.graph_index(start)];
    const LV before = start - 1;
    const std::span<const LV> parents = start > g.start ? std::span<const LV>(&before, 1) : std::span<const LV>(g.parents);
    outside[c] = parents.empty();
    for (LV p : parents) {
      // Most often the parent ends the unit just before.
      const int64_t j = c > 0 && p >= units[c - 1].start && p < units[c - 1].end ? c - 1 : unit_of(p);
      if (j < 0) {
        outside[c] = 1;
        continue;
      }
      const bool last = p == units[j].end - 1;
      edges.push_back({static_cast<uint32_t>(j), c});
      edge_last.push_back(last);
      ++waiting[c];
      if (parents.size() == 1 && last) cont_of[c] = j;
    }
    edges_of[c + 1] = static_cast<uint32_t>(edges.size());
  }
  // Children of each unit, ascending: kids[first[j] .. first[j + 1]) (a counting sort of edges).
  std::vector<uint32_t> first(nu + 1, 0), kids(edges.size());
  for (const auto& e : edges) ++first[e.first + 1];
  for (size_t j = 0; j < nu; ++j) first[j + 1] += first[j];
  {
    std::vector<uint32_t> fill(first.begin(), first.end() - 1);
    for (const auto& e : edges) kids[fill[e.first]++] = e.second;
  }
  std::vector<uint32_t> order;
  order.reserve(nu);
  {
    // Units are in LV order, a topological order with the old events first, so the lowest unit not
    // done yet is always ready; from each unit the walk goes on into the unit that continues it.
    std::vector<bool> done(nu, false);
    size_t old_total = 0, old_done = 0;
    for (const Unit& u : units) old_total += u.start < first_new;
    size_t scan = 0;
    while (order.size() < nu) {
      while (done[scan]) ++scan;
      uint32_t i = static_cast<uint32_t>(scan);
      for (;;) {
        done[i] = true;
        order.push_back(i);
        if (units[i].start < first_new) ++old_done;
        int64_t next = -1;
        for (uint32_t e = first[i]; e < first[i + 1]; ++e) --waiting[kids[e]];
        for (uint32_t e = first[i]; e < first[i + 1] && next < 0; ++e) {
          const uint32_t c = kids[e];
          const bool c_new = units[c].start >= first_new;
          if (!done[c] && waiting[c] == 0 && cont_of[c] == i && (!c_new || old_done == old_total)) next = c;
        }
        if (next < 0) break;
        i = static_cast<uint32_t>(next);
      }
    }
  }
  // Criticality: after the k-th unit of the order, every later unit descends from its last event
  // iff every parent of every later unit is that event or in a later unit. key = 2 * position of
  // the parent's unit, + 1 when the parent is that unit's last event; -1 outside the zone.
  std::vector<int64_t> pos_of(nu);
  for (size_t k = 0; k < nu; ++k) pos_of[order[k]] = static_cast<int64_t>(k);
  std::vector<int64_t> suffix(nu + 1, INT64_MAX);
  for (size_t k = nu; k-- > 0;) {
    const uint32_t c = order[k];
    int64_t key = outside[c] ? -1 : INT64_MAX;
    for (uint32_t e = edges_of[c]; e < edges_of[c + 1]; ++e) {
      key = std::min(key, 2 * pos_of[edges[e].first] + edge_last[e]);
    }
    suffix[k] = std::min(suffix[k + 1], key);
  }

  order_out->swap(order);
  suffix_out->swap(suffix);
}

}  // namespace merge_detail

using merge_detail::Tracker;
using merge_detail::Unit;

// What a tracker that outlives one transform needs to carry on with the next.
struct MergeCache::State {
  explicit State(const OpLog& log) : tracker(log) {}
  Tracker tracker;
  bool active = false;    // the tracker can take more events (see `end`)
  LV base = kNoLV;        // the version its placeholder stands for (kNoLV: the empty document)
  LV end = 0;             // events below this are in the tracker, or at or below `base`; events
                          // from here on are not (they may have applied directly since)
  Frontier prepare;       // the tracker's prepare version
  Frontier processed;     // the frontier of every event below `end`
  std::vector<Span> spans;  // events the tracker processed, ascending

  bool in_spans(LV lv) const {
    auto it = std::upper_bound(spans.begin(), spans.end(), lv, [](LV x, const Span& s) { return x < s.start; });
    return it != spans.begin() && lv < std::prev(it)->end;
  }
  void add_span(LV start, LV stop) {
    if (!spans.empty() && spans.back().end == start) {
      spans.back().end = stop;
      return;
    }
    auto it = std::upper_bound(spans.begin(), spans.end(), start, [](LV x, const Span& s) { return x < s.start; });
    spans.insert(it, {start, stop});
  }
  // True if every event from `end` on descends from `base`, so the tracker can take them.
  bool can_continue(const OpLog& log) const {
    if (!active) return false;
    for (LV lv = end; lv < log.size();) {
      const GraphEntry& g = log.graph()[log.graph_index(lv)];
      if (lv != g.start) {
        if (lv - 1 < end && lv - 1 != base && !in_spans(lv - 1)) return false;
      } else {
        if (g.parents.empty() && base != kNoLV) return false;
        for (LV p : g.parents) {
          if (p < end && p != base && !in_spans(p)) return false;
        }
      }
      lv = g.end;
    }
    return true;
  }
};

MergeCache::MergeCache() = default;
MergeCache::~MergeCache() = default;
void MergeCache::clear() { state_.reset(); }
bool MergeCache::holds_tracker() const { return state_ && state_->active; }

struct Sequence::Impl {
  explicit Impl(const OpLog& log) : tracker(log) { tracker.reset(0); }
  Tracker tracker;
  Frontier prepare;  // the tracker's prepare version
  Frontier parents;
  std::vector<Span> only_a, only_b;
};

Sequence::Sequence(const OpLog& log) : log_(log), impl_(std::make_unique<Impl>(log)) {}
Sequence::~Sequence() = default;

Status Sequence::catch_up(std::vector<Found>* found) {
  Impl& m = *impl_;
  Tracker& t = m.tracker;
  // In LV order: a topological order, and for a document edited mostly in one place at a time,
  // mostly a chain (each piece's parent the one before), which needs no retreating.
  while (end_ < log_.size()) {
    const LV lv = end_;
    const size_t oi = log_.op_index(lv);
    const OpSpan& op = log_.ops()[oi];
    const GraphEntry& g = log_.graph()[log_.graph_index(lv)];
    const LV stop = std::min(op.end(), g.end);
    log_.parents_of(lv, &m.parents);
    if (m.prepare != m.parents) {
      log_.diff(m.prepare, m.parents, &m.only_a, &m.only_b);
      for (auto it = m.only_a.rbegin(); it != m.only_a.rend(); ++it) t.retreat(*it);
      for (const Span& s : m.only_b) t.advance(s);
    }
    if (op.type == kFmt) {
      const Format& f = log_.format_of(op);
      const uint64_t p = op.pos;
      found->push_back({lv, p > 0 ? t.lv_at_prep(p - 1) : kNoLV, t.lv_at_prep(p),
                        f.end > 0 ? t.lv_at_prep(f.end - 1) : kNoLV, t.lv_at_prep(f.end)});
    }
    TANDEM_RETURN_IF_ERROR(t.apply(op, lv, stop - lv, nullptr));
    m.prepare.assign(1, stop - 1);
    end_ = stop;
  }
  return Status::OK();
}

void Sequence::for_each(const std::function<void(LV, uint32_t, bool)>& f) const {
  impl_->tracker.for_each_rec([&](const merge_detail::Rec& r) { f(r.lv, r.len, r.del); });
}

void Sequence::for_each_deletion(const std::function<void(LV, uint32_t, LV, bool)>& f) const {
  impl_->tracker.for_each_deletion(f);
}

Sequence::Where Sequence::where(LV lv) const {
  const auto [pos, deleted] = impl_->tracker.eff_where(lv);
  return {pos, deleted};
}

size_t Sequence::heap_bytes() const { return sizeof(Impl) + impl_->tracker.heap_bytes(); }

namespace {

// Applies an event of the text as it is at the event's own parents (no concurrent event
// between): as the author made it.
Status apply_direct(OpLog& log, const OpSpan& op, uint32_t k0, uint32_t n, LV start, uint32_t* doc_len,
                    std::vector<XfOp>* out) {
  const uint64_t pos = op.pos_at(k0);
  if (op.type == kFmt) {
    TANDEM_RETURN_IF_ERROR(check_format(log, op, *doc_len));
  } else if (op.type == kIns) {
    if (pos > *doc_len) return Status::InvalidArgument("insert position past the end of the document");
    out->push_back({true, static_cast<uint32_t>(pos), n, start});
    *doc_len += n;
  } else {
    const uint64_t first = op.type == kDelFwd ? pos : pos + 1 - n;
    if (op.type == kDelBack && pos + 1 < n) {
      return Status::InvalidArgument("delete position before the start of the document");
    }
    if (first + n > *doc_len) return Status::InvalidArgument("delete past the end of the document");
    out->push_back({false, static_cast<uint32_t>(first), n, 0});
    *doc_len -= n;
  }
  return Status::OK();
}

// A zone that is one chain from the document's version: every unit applies directly, in LV order
// (the old ones are in the text already), and a tracker kept from an earlier merge stays valid.
Status apply_chain(OpLog& log, const std::vector<Unit>& units, LV first_new, uint32_t doc_len, std::vector<XfOp>* out) {
  out->reserve(out->size() + units.size());  // one edit a unit at most
  for (const Unit& u : units) {
    if (u.start < first_new) continue;
    const OpSpan& op = log.ops()[u.op_index];
    if (u.start == op.lv) log.set_len_before(u.op_index, doc_len);
    TANDEM_RETURN_IF_ERROR(apply_direct(log, op, u.start - op.lv, u.end - u.start, u.start, &doc_len, out));
  }
  return Status::OK();
}

}  // namespace

Status transform(OpLog* log, const Frontier& doc_frontier, const Frontier& all, LV first_new, uint32_t doc_len,
                 std::vector<XfOp>* out, MergeCache* cache) {
  out->clear();
  if (!cache->state_) cache->state_ = std::make_unique<MergeCache::State>(*log);
  MergeCache::State& st = *cache->state_;
  // The events to walk: the diverging part of the two histories, or the events a tracker kept
  // from an earlier merge has not seen yet, whichever is fewer. A kept tracker stands for every
  // event since its base up to st.end; events after that (local edits, or remote ones that
  // applied directly) it takes as old events, without output.
  LV common = kNoLV;
  std::vector<Span> zone;
  const bool can_resume = st.active && st.can_continue(*log);
  const bool resume = !log->find_conflicting(doc_frontier, all, &common, &zone,
                                             can_resume ? log->size() - st.end : UINT64_MAX);
  if (resume) {
    zone.assign(1, {st.end, log->size()});
    common = kNoLV;
  }
  cache->last_walked = 0;
  cache->last_replayed = 0;
  for (const Span& s : zone) cache->last_walked += s.end - s.start;
  std::vector<Unit> units;
  // A unit per op span, graph entry and zone span at most (each cut ends one of them).
  units.reserve(std::min<uint64_t>(cache->last_walked, log->ops().size() + log->graph().size() + zone.size()));
  // A zone that is one chain (each unit's only parent is the last event of the one before, the
  // first's is `common`): the common case of a linear history, checked while cutting units.
  bool chain = !resume;
  for (const Span& s : zone) {
    for (LV lv = s.start; lv < s.end;) {
      const size_t oi = log->op_index(lv);
      const OpSpan& op = log->ops()[oi];
      const GraphEntry& g = log->graph()[log->graph_index(lv)];
      // New events may have extended an old op span: they start a unit of their own.
      LV end = std::min({s.end, op.end(), g.end});
      if (lv < first_new && end > first_new) end = first_new;
      if (chain) {
        const LV want = units.empty() ? common : units.back().end - 1;
        if (lv > g.start) {
          chain = lv - 1 == want;
        } else {
          chain = want == kNoLV ? g.parents.empty() : g.parents.size() == 1 && g.parents[0] == want;
        }
      }
      units.push_back({lv, end, oi});
      lv = end;
    }
  }
  const size_t nu = units.size();
  if (chain) return apply_chain(*log, units, first_new, doc_len, out);
  Frontier parents;
  std::vector<uint32_t> order;
  std::vector<int64_t> suffix;
  order_units(*log, units, first_new, &order, &suffix);
  if (order.size() != nu) return Status::Internal("merge: the event graph has a cycle");

  Tracker& tracker = st.tracker;
  Frontier processed;
  Frontier prepare;
  bool active = resume;
  if (resume) {
    processed = st.processed;
    prepare = st.prepare;
  } else if (common != kNoLV) {
    processed.push_back(common);
  }
  std::vector<Span> only_a, only_b;

  for (size_t k = 0; k < nu; ++k) {
    const Unit& u = units[order[k]];
    const OpSpan& op = log->ops()[u.op_index];
    const uint32_t n = u.end - u.start;
    const uint32_t k0 = u.start - op.lv;
    const bool is_new = u.start >= first_new;
    const bool critical_after = suffix[k + 1] >= static_cast<int64_t>(2 * k + 1);
    log->parents_of(u.start, &parents);

    if (!active && parents == processed && critical_after) {
      if (is_new) {
        // The text is exactly the version these events were made at: apply them as they are.
        if (u.start == op.lv) log->set_len_before(u.op_index, doc_len);
        TANDEM_RETURN_IF_ERROR(apply_direct(*log, op, k0, n, u.start, &doc_len, out));
      }
      // Old events are already in the text; either way nothing concurrent remains behind us.
      processed.assign(1, u.end - 1);
      continue;
    }
    if (!active) {
      if (processed.size() > 1) return Status::Internal("merge: tracker would start at a merge version");
      st.base = processed.empty() ? kNoLV : processed[0];
      tracker.reset(st.base == kNoLV ? 0 : log->len_after(st.base));
      st.spans.clear();
      st.active = true;
      prepare = processed;
      active = true;
    }
    if (prepare != parents) {
      log->diff(prepare, parents, &only_a, &only_b);
      for (auto it = only_a.rbegin(); it != only_a.rend(); ++it) tracker.retreat(*it);
      for (const Span& s : only_b) tracker.advance(s);
    }
    cache->last_replayed += n;
    if (is_new && u.start == op.lv) log->set_len_before(u.op_index, tracker.prep_len());
    const size_t before = out->size();
    TANDEM_RETURN_IF_ERROR(tracker.apply(op, u.start, n, is_new ? out : nullptr));
    for (size_t i = before; i < out->size(); ++i) {
      const XfOp& x = (*out)[i];
      doc_len = x.insert ? doc_len + x.len : doc_len - x.len;
    }
    st.add_span(u.start, u.end);
    prepare.assign(1, u.end - 1);
    OpLog::advance(&processed, parents, u.end - 1);
    if (critical_after && processed.size() == 1 && processed[0] == u.end - 1) {
      // Every event the tracker took is an ancestor of this one, and every later one descends
      // from it: they apply directly, and the tracker stays as it is for later merges (an event
      // that arrives with parents before this point resumes it instead of walking back again).
      active = false;
      st.end = u.end;
      st.prepare = prepare;
      st.processed = processed;
    }
  }
  if (active) {
    st.end = log->size();
    st.prepare = std::move(prepare);
    st.processed = std::move(processed);
  }
  return Status::OK();
}

}  // namespace tandem::crdt::internal
