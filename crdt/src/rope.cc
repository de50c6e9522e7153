#include "rope.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <iterator>

#include "crdt/utf8.h"

namespace tandem::crdt::internal {

namespace {
// 512 bytes of text per leaf keeps the memmove of an in-leaf edit cheap while leaving the tree
// shallow (three levels hold ~2 MB). Leaves made by splitting are filled to 3/4 so that typing
// into them does not split again at once.
constexpr size_t kLeafBytes = 512;
constexpr size_t kLeafRuns = 32;
constexpr size_t kChopRuns = kLeafRuns - 4;
constexpr size_t kSplitFill = kLeafBytes * 3 / 4;
constexpr size_t kFan = 16;

inline bool is_cont(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }
}  // namespace

struct Rope::Node {
  explicit Node(bool is_leaf) : leaf(is_leaf) {}
  Inner* parent = nullptr;
  uint8_t slot = 0;
  bool leaf;
};

struct Rope::Leaf : Node {
  Leaf() : Node(true) {}
  uint16_t nbytes = 0;
  uint16_t ncp = 0;
  uint16_t nu16 = 0;
  uint8_t nruns = 0;
  char text[kLeafBytes];
  LvRun runs[kLeafRuns];

  std::string_view view() const { return {text, nbytes}; }
  size_t byte_off(uint32_t cp) const {
    return nbytes == ncp ? cp : utf8::byte_offset(view(), cp);
  }
};

struct Rope::Inner : Node {
  Inner() : Node(false) {}
  uint8_t n = 0;
  Node* child[kFan];
  uint32_t cp[kFan];
  uint32_t u16[kFan];
};

namespace {

template <typename NodeT, typename LeafT, typename InnerT>
uint32_t node_cp(const NodeT* n) {
  if (n->leaf) return static_cast<const LeafT*>(n)->ncp;
  auto* in = static_cast<const InnerT*>(n);
  uint32_t s = 0;
  for (int i = 0; i < in->n; ++i) s += in->cp[i];
  return s;
}

template <typename NodeT, typename LeafT, typename InnerT>
uint32_t node_u16(const NodeT* n) {
  if (n->leaf) return static_cast<const LeafT*>(n)->nu16;
  auto* in = static_cast<const InnerT*>(n);
  uint32_t s = 0;
  for (int i = 0; i < in->n; ++i) s += in->u16[i];
  return s;
}

// Inserts run r at code point offset `off` of the runs array, merging with a neighbour whose
// LVs continue it. (*i, *acc) is where to start looking (acc: offset of run i, <= off); on return
// it names the run now holding the first inserted character. REQUIRES room for two more runs.
void insert_run(LvRun* runs, uint8_t& nruns, uint32_t off, LvRun r, uint32_t* i_io, uint32_t* acc_io) {
  uint32_t i = *i_io, acc = *acc_io;
  while (i < nruns && acc + runs[i].len <= off) acc += runs[i++].len;
  if (i < nruns && acc < off) {
    // Split runs[i] at off.
    const uint32_t left = off - acc;
    std::memmove(runs + i + 2, runs + i + 1, (nruns - i - 1) * sizeof(LvRun));
    runs[i + 1] = {runs[i].lv + left, runs[i].len - left};
    runs[i].len = left;
    ++nruns;
    acc += left;
    ++i;
  }
  if (i > 0 && runs[i - 1].lv + runs[i - 1].len == r.lv) {
    *i_io = i - 1;
    *acc_io = acc - runs[i - 1].len;
    runs[i - 1].len += r.len;
    return;
  }
  *i_io = i;
  *acc_io = acc;
  if (i < nruns && r.lv + r.len == runs[i].lv) {
    runs[i].lv = r.lv;
    runs[i].len += r.len;
    return;
  }
  std::memmove(runs + i + 1, runs + i, (nruns - i) * sizeof(LvRun));
  runs[i] = r;
  ++nruns;
}

// Runs of [0, total) with [off, off+k) cut out: kept ones go to kept[] (room for nruns + 1),
// cut ones to *cut. Returns the number kept.
size_t cut_runs(const LvRun* runs, size_t nruns, uint32_t off, uint32_t k, LvRun* kept, std::vector<LvRun>* cut) {
  uint32_t acc = 0;
  size_t nk = 0;
  const uint32_t end = off + k;
  for (size_t i = 0; i < nruns; ++i) {
    const LvRun r = runs[i];
    const uint32_t a = acc, b = acc + r.len;
    acc = b;
    if (b <= off || a >= end) {
      kept[nk++] = r;
      continue;
    }
    if (a < off) kept[nk++] = {r.lv, off - a};
    const uint32_t ca = std::max(a, off), cb = std::min(b, end);
    if (cut) cut->push_back({r.lv + (ca - a), cb - ca});
    if (b > end) kept[nk++] = {r.lv + (end - a), b - end};
  }
  return nk;
}

// Appends r to runs[0, *n), joining it to the last run when its LVs continue it.
inline void append_run(LvRun* runs, size_t* n, LvRun r) {
  if (*n > 0 && runs[*n - 1].lv + runs[*n - 1].len == r.lv) {
    runs[*n - 1].len += r.len;
  } else {
    runs[(*n)++] = r;
  }
}

}  // namespace

#define NCP(n) node_cp<Node, Leaf, Inner>(n)
#define NU16(n) node_u16<Node, Leaf, Inner>(n)

Rope::Rope() : root_(new Leaf()), leaves_(1) {}

Rope::~Rope() { free_tree(root_); }

Rope::Rope(Rope&& other) noexcept
    : root_(other.root_), cp_(other.cp_), u16_(other.u16_), bytes_(other.bytes_), leaves_(other.leaves_),
      inners_(other.inners_) {
  other.root_ = new Leaf();
  other.hint_leaf_ = nullptr;
  other.cp_ = other.u16_ = 0;
  other.bytes_ = 0;
  other.leaves_ = 1;
  other.inners_ = 0;
}

Rope& Rope::operator=(Rope&& other) noexcept {
  if (this != &other) {
    std::swap(root_, other.root_);
    std::swap(cp_, other.cp_);
    std::swap(u16_, other.u16_);
    hint_leaf_ = other.hint_leaf_ = nullptr;
    std::swap(bytes_, other.bytes_);
    std::swap(leaves_, other.leaves_);
    std::swap(inners_, other.inners_);
  }
  return *this;
}

void Rope::free_tree(Node* node) {
  if (!node) return;
  if (node->leaf) {
    delete static_cast<Leaf*>(node);
    return;
  }
  auto* in = static_cast<Inner*>(node);
  for (int i = 0; i < in->n; ++i) free_tree(in->child[i]);
  delete in;
}

void Rope::clear() {
  free_tree(root_);
  root_ = new Leaf();
  hint_leaf_ = nullptr;
  cp_ = u16_ = 0;
  bytes_ = 0;
  leaves_ = 1;
  inners_ = 0;
}

uint32_t Rope::length() const { return cp_; }
uint32_t Rope::length_utf16() const { return u16_; }

Rope::Leaf* Rope::edit_leaf(uint32_t pos, bool prefer_left, uint32_t* offset) {
  if (hint_leaf_ && pos >= hint_start_ &&
      (pos < hint_start_ + hint_leaf_->ncp || (prefer_left && pos == hint_start_ + hint_leaf_->ncp))) {
    *offset = pos - hint_start_;
    return hint_leaf_;
  }
  Leaf* leaf = find_leaf(pos, prefer_left, offset);
  hint_leaf_ = leaf;
  hint_start_ = pos - *offset;
  hint_run_ = hint_run_start_ = 0;
  return leaf;
}

Rope::Leaf* Rope::find_leaf(uint32_t pos, bool prefer_left, uint32_t* offset) const {
  Node* n = root_;
  const uint64_t bias = prefer_left ? 1 : 0;  // a position at a boundary goes left: pos < c + 1
  while (!n->leaf) {
    auto* in = static_cast<Inner*>(n);
    int i = 0;
    for (; i + 1 < in->n; ++i) {
      const uint32_t c = in->cp[i];
      if (pos < c + bias) break;
      pos -= c;
    }
    n = in->child[i];
  }
  *offset = pos;
  return static_cast<Leaf*>(n);
}

Rope::Leaf* Rope::first_leaf() const {
  Node* n = root_;
  while (!n->leaf) n = static_cast<Inner*>(n)->child[0];
  return static_cast<Leaf*>(n);
}

Rope::Leaf* Rope::next_leaf(const Leaf* leaf) {
  const Node* n = leaf;
  while (n->parent && n->slot + 1 == n->parent->n) n = n->parent;
  if (!n->parent) return nullptr;
  Node* m = n->parent->child[n->slot + 1];
  while (!m->leaf) m = static_cast<Inner*>(m)->child[0];
  return static_cast<Leaf*>(m);
}

void Rope::add_counts(Node* node, int64_t dcp, int64_t du16) {
  for (Node* n = node; n->parent; n = n->parent) {
    n->parent->cp[n->slot] = static_cast<uint32_t>(n->parent->cp[n->slot] + dcp);
    n->parent->u16[n->slot] = static_cast<uint32_t>(n->parent->u16[n->slot] + du16);
  }
}

void Rope::refresh(Node* node) {
  for (Node* n = node; n->parent; n = n->parent) {
    n->parent->cp[n->slot] = NCP(n);
    n->parent->u16[n->slot] = NU16(n);
  }
}

void Rope::chop(std::string_view text, const LvRun* runs, size_t nruns, size_t target_bytes, size_t target_runs,
                Leaf* first, std::vector<Node*>* rest) const {
  // The runs cover the text: as many code points as bytes means one byte each, and no counting.
  uint64_t total_cp = 0;
  for (size_t i = 0; i < nruns; ++i) total_cp += runs[i].len;
  const bool one_byte = total_cp == text.size();
  size_t bpos = 0, ri = 0;
  uint32_t roff = 0;
  while (bpos < text.size()) {
    size_t end = std::min(text.size(), bpos + target_bytes);
    while (!one_byte && end < text.size() && end > bpos && is_cont(text[end])) --end;
    if (end == bpos) end = bpos + 1;  // unreachable with target_bytes >= 4
    uint32_t ccp = one_byte ? static_cast<uint32_t>(end - bpos)
                            : static_cast<uint32_t>(utf8::count_code_points(text.substr(bpos, end - bpos)));
    Leaf* leaf = first;
    if (leaf) {
      first = nullptr;
    } else {
      leaf = new Leaf();
      rest->push_back(leaf);
    }
    leaf->nruns = 0;
    uint32_t need = ccp;
    while (need > 0 && leaf->nruns < target_runs) {
      assert(ri < nruns);
      const uint32_t take = std::min(need, runs[ri].len - roff);
      leaf->runs[leaf->nruns++] = {runs[ri].lv + roff, take};
      need -= take;
      roff += take;
      if (roff == runs[ri].len) {
        ++ri;
        roff = 0;
      }
    }
    if (need > 0) {
      ccp -= need;
      end = bpos + (one_byte ? ccp : utf8::byte_offset(text.substr(bpos, end - bpos), ccp));
    }
    const std::string_view chunk = text.substr(bpos, end - bpos);
    std::memcpy(leaf->text, chunk.data(), chunk.size());
    leaf->nbytes = static_cast<uint16_t>(chunk.size());
    leaf->ncp = static_cast<uint16_t>(ccp);
    leaf->nu16 = static_cast<uint16_t>(chunk.size() == ccp ? ccp : utf8::count_utf16(chunk));
    bpos = end;
  }
}

void Rope::insert_siblings(Node* after, const std::vector<Node*>& nodes) {
  if (nodes.empty()) return;
  Inner* p = after->parent;
  if (!p) {
    p = new Inner();
    ++inners_;
    p->n = 1;
    p->child[0] = after;
    p->cp[0] = NCP(after);
    p->u16[0] = NU16(after);
    after->parent = p;
    after->slot = 0;
    root_ = p;
  }
  if (p->n + nodes.size() <= kFan) {
    // They fit: shift the children after `after` and put the new ones in their place.
    const size_t at = after->slot + 1u, k = nodes.size();
    for (size_t i = p->n; i-- > at;) {
      p->child[i + k] = p->child[i];
      p->cp[i + k] = p->cp[i];
      p->u16[i + k] = p->u16[i];
      p->child[i + k]->slot = static_cast<uint8_t>(i + k);
    }
    for (size_t j = 0; j < k; ++j) {
      Node* c = nodes[j];
      p->child[at + j] = c;
      c->parent = p;
      c->slot = static_cast<uint8_t>(at + j);
      p->cp[at + j] = NCP(c);
      p->u16[at + j] = NU16(c);
    }
    p->n = static_cast<uint8_t>(p->n + k);
    p->cp[after->slot] = NCP(after);
    p->u16[after->slot] = NU16(after);
    refresh(p);
    return;
  }
  std::vector<Node*> kids(p->child, p->child + p->n);
  kids.insert(kids.begin() + after->slot + 1, nodes.begin(), nodes.end());
  auto fill = [](Inner* in, Node* const* src, size_t count) {
    in->n = static_cast<uint8_t>(count);
    for (size_t i = 0; i < count; ++i) {
      Node* c = src[i];
      in->child[i] = c;
      c->parent = in;
      c->slot = static_cast<uint8_t>(i);
      in->cp[i] = NCP(c);
      in->u16[i] = NU16(c);
    }
  };
  if (kids.size() <= kFan) {
    fill(p, kids.data(), kids.size());
    refresh(p);
    return;
  }
  // Split p into groups of at most 3/4 fan-out, so that the next insertion does not split again.
  const size_t per = kFan * 3 / 4;
  const size_t groups = (kids.size() + per - 1) / per;
  const size_t base = kids.size() / groups, extra = kids.size() % groups;
  std::vector<Node*> new_inners;
  size_t at = 0;
  for (size_t g = 0; g < groups; ++g) {
    const size_t count = base + (g < extra ? 1 : 0);
    Inner* in = p;
    if (g > 0) {
      in = new Inner();
      ++inners_;
      new_inners.push_back(in);
    }
    fill(in, kids.data() + at, count);
    at += count;
  }
  insert_siblings(p, new_inners);  // also refreshes p's counts in its parent
  refresh(p);
}

void Rope::unlink(Node* node) {
  Inner* p = node->parent;
  assert(p);
  hint_leaf_ = nullptr;
  for (int i = node->slot; i + 1 < p->n; ++i) {
    p->child[i] = p->child[i + 1];
    p->cp[i] = p->cp[i + 1];
    p->u16[i] = p->u16[i + 1];
    p->child[i]->slot = static_cast<uint8_t>(i);
  }
  --p->n;
  if (node->leaf) {
    delete static_cast<Leaf*>(node);
    --leaves_;
  } else {
    delete static_cast<Inner*>(node);
    --inners_;
  }
  if (p->n == 0) {
    if (p == root_) {
      delete p;
      --inners_;
      root_ = new Leaf();
      ++leaves_;
    } else {
      unlink(p);
    }
    return;
  }
  refresh(p);
  // Collapse a root with a single inner child.
  while (!root_->leaf && static_cast<Inner*>(root_)->n == 1) {
    Inner* old = static_cast<Inner*>(root_);
    root_ = old->child[0];
    root_->parent = nullptr;
    root_->slot = 0;
    delete old;
    --inners_;
  }
}

void Rope::insert_slow(Leaf* leaf, uint32_t off, std::string_view text, const LvRun* runs,
                      size_t nruns) {
  // The leaf's text and runs with the insertion, on the stack unless the insertion is long.
  const size_t b = leaf->byte_off(off);
  const size_t total = leaf->nbytes + text.size();
  char small_text[4 * kLeafBytes];
  std::string big_text;
  char* t = small_text;
  if (total > sizeof small_text) {
    big_text.resize(total);
    t = big_text.data();
  }
  std::memcpy(t, leaf->text, b);
  std::memcpy(t + b, text.data(), text.size());
  std::memcpy(t + b + text.size(), leaf->text + b, leaf->nbytes - b);
  LvRun small_runs[4 * kLeafRuns];
  std::vector<LvRun> big_runs;
  LvRun* rr = small_runs;
  if (leaf->nruns + nruns + 1 > std::size(small_runs)) {
    big_runs.resize(leaf->nruns + nruns + 1);
    rr = big_runs.data();
  }
  size_t nr = 0;
  uint32_t acc = 0;
  bool placed = false;
  for (size_t i = 0; i < leaf->nruns; ++i) {
    const LvRun r = leaf->runs[i];
    if (!placed && acc + r.len > off) {
      if (acc < off) append_run(rr, &nr, {r.lv, off - acc});
      for (size_t k = 0; k < nruns; ++k) append_run(rr, &nr, runs[k]);
      placed = true;
      if (acc < off) {
        append_run(rr, &nr, {r.lv + (off - acc), r.len - (off - acc)});
      } else {
        append_run(rr, &nr, r);
      }
    } else {
      append_run(rr, &nr, r);
    }
    acc += r.len;
  }
  if (!placed) {
    for (size_t k = 0; k < nruns; ++k) append_run(rr, &nr, runs[k]);
  }
  // The first part goes back into the leaf; the others become its siblings.
  std::vector<Node*> rest;
  // A leaf full of runs (insertions all over it) splits them evenly: filling the first part up
  // again would leave it a few insertions from the next split.
  const size_t pieces = (nr + kChopRuns - 1) / kChopRuns;
  const size_t target_runs = std::min(kChopRuns, (nr + pieces - 1) / pieces + 1);  // (+1: a run cut in two)
  chop(std::string_view(t, total), rr, nr, kSplitFill, target_runs, leaf, &rest);
  hint_leaf_ = nullptr;
  leaves_ += rest.size();
  refresh(leaf);
  insert_siblings(leaf, rest);
  bytes_ += text.size();
}

void Rope::insert(uint32_t pos, std::string_view text, uint32_t ncp, LV lv) {
  if (ncp == 0) return;
  const uint32_t du16 = text.size() == ncp ? ncp : static_cast<uint32_t>(utf8::count_utf16(text));
  cp_ += ncp;
  u16_ += du16;
  uint32_t off;
  Leaf* leaf = edit_leaf(pos, true, &off);
  if (leaf->nbytes + text.size() <= kLeafBytes && leaf->nruns + 2u <= kLeafRuns) {
    const size_t b = leaf->byte_off(off);
    std::memmove(leaf->text + b + text.size(), leaf->text + b, leaf->nbytes - b);
    std::memcpy(leaf->text + b, text.data(), text.size());
    leaf->nbytes = static_cast<uint16_t>(leaf->nbytes + text.size());
    leaf->ncp = static_cast<uint16_t>(leaf->ncp + ncp);
    leaf->nu16 = static_cast<uint16_t>(leaf->nu16 + du16);
    if (hint_run_start_ > off) hint_run_ = hint_run_start_ = 0;
    insert_run(leaf->runs, leaf->nruns, off, {lv, ncp}, &hint_run_, &hint_run_start_);
    add_counts(leaf, ncp, du16);
    bytes_ += text.size();
    return;
  }
  const LvRun r{lv, ncp};
  insert_slow(leaf, off, text, &r, 1);
}

void Rope::insert_runs(uint32_t pos, std::string_view text, const std::vector<LvRun>& runs) {
  size_t b = 0;
  for (const LvRun& r : runs) {
    const size_t nb = utf8::byte_offset(text.substr(b), r.len);
    insert(pos, text.substr(b, nb), r.len, r.lv);
    pos += r.len;
    b += nb;
  }
}

void Rope::maybe_merge_with_next(Leaf* leaf) {
  if (leaf->nbytes >= kLeafBytes / 4 || !leaf->parent) return;
  Inner* p = leaf->parent;
  Leaf* a = leaf;
  Leaf* b = nullptr;
  if (leaf->slot + 1 < p->n && p->child[leaf->slot + 1]->leaf) {
    b = static_cast<Leaf*>(p->child[leaf->slot + 1]);
  } else if (leaf->slot > 0 && p->child[leaf->slot - 1]->leaf) {
    a = static_cast<Leaf*>(p->child[leaf->slot - 1]);
    b = leaf;
  }
  if (!b || a->nbytes + b->nbytes > kSplitFill || a->nruns + b->nruns > kChopRuns) return;
  std::memcpy(a->text + a->nbytes, b->text, b->nbytes);
  a->nbytes = static_cast<uint16_t>(a->nbytes + b->nbytes);
  a->ncp = static_cast<uint16_t>(a->ncp + b->ncp);
  a->nu16 = static_cast<uint16_t>(a->nu16 + b->nu16);
  for (size_t i = 0; i < b->nruns; ++i) {
    const LvRun r = b->runs[i];
    if (a->nruns > 0 && a->runs[a->nruns - 1].lv + a->runs[a->nruns - 1].len == r.lv) {
      a->runs[a->nruns - 1].len += r.len;
    } else {
      a->runs[a->nruns++] = r;
    }
  }
  refresh(a);
  unlink(b);
}

void Rope::remove(uint32_t pos, uint32_t n, std::string* removed_text,
                  std::vector<LvRun>* removed_runs) {
  LvRun kept[kLeafRuns + 1];
  cp_ -= n;
  while (n > 0) {
    uint32_t off;
    Leaf* leaf = edit_leaf(pos, false, &off);
    assert(off < leaf->ncp);
    const uint32_t k = std::min<uint32_t>(n, leaf->ncp - off);
    const size_t b0 = leaf->byte_off(off);
    const size_t b1 = leaf->nbytes == leaf->ncp
                          ? b0 + k
                          : b0 + utf8::byte_offset(std::string_view(leaf->text + b0, leaf->nbytes - b0), k);
    const std::string_view gone(leaf->text + b0, b1 - b0);
    if (removed_text) removed_text->append(gone);
    const uint32_t du16 = gone.size() == k ? k : static_cast<uint32_t>(utf8::count_utf16(gone));
    std::memmove(leaf->text + b0, leaf->text + b1, leaf->nbytes - b1);
    leaf->nbytes = static_cast<uint16_t>(leaf->nbytes - (b1 - b0));
    leaf->ncp = static_cast<uint16_t>(leaf->ncp - k);
    leaf->nu16 = static_cast<uint16_t>(leaf->nu16 - du16);
    u16_ -= du16;
    bytes_ -= b1 - b0;
    n -= k;
    // The run holding `off`, searched from the hint.
    if (hint_run_start_ > off || hint_run_ >= leaf->nruns) hint_run_ = hint_run_start_ = 0;
    uint32_t ri = hint_run_, rs = hint_run_start_;
    while (rs + leaf->runs[ri].len <= off) rs += leaf->runs[ri++].len;
    const uint32_t o = off - rs;
    LvRun& run = leaf->runs[ri];
    if (o + k <= run.len && (o == 0 || o + k == run.len || leaf->nruns < kLeafRuns)) {
      // Inside one run: trim it, or split it in two.
      if (removed_runs) removed_runs->push_back({run.lv + o, k});
      if (o == 0 && k == run.len) {
        std::memmove(leaf->runs + ri, leaf->runs + ri + 1, (leaf->nruns - ri - 1) * sizeof(LvRun));
        --leaf->nruns;
      } else if (o == 0) {
        run.lv += k;
        run.len -= k;
      } else if (o + k == run.len) {
        run.len -= k;
      } else {
        std::memmove(leaf->runs + ri + 2, leaf->runs + ri + 1, (leaf->nruns - ri - 1) * sizeof(LvRun));
        leaf->runs[ri + 1] = {run.lv + o + k, run.len - o - k};
        run.len = o;
        ++leaf->nruns;
      }
      // Backspacing moves left: leave the hint on the run before.
      if (ri > 0) {
        hint_run_ = ri - 1;
        hint_run_start_ = rs - leaf->runs[ri - 1].len;
      } else {
        hint_run_ = hint_run_start_ = 0;
      }
      add_counts(leaf, -static_cast<int64_t>(k), -static_cast<int64_t>(du16));
    } else {
      hint_run_ = hint_run_start_ = 0;
      const size_t nkept = cut_runs(leaf->runs, leaf->nruns, off, k, kept, removed_runs);
      if (nkept <= kLeafRuns) {
        leaf->nruns = static_cast<uint8_t>(nkept);
        std::copy(kept, kept + nkept, leaf->runs);
        add_counts(leaf, -static_cast<int64_t>(k), -static_cast<int64_t>(du16));
      } else {
        // Cutting out of the middle of a run split it and the leaf has no room for the extra run:
        // re-chop the leaf's remaining content.
        const std::string rest(leaf->text, leaf->nbytes);
        leaf->nbytes = leaf->ncp = leaf->nu16 = 0;
        leaf->nruns = 0;
        bytes_ -= rest.size();  // insert_slow adds it back
        insert_slow(leaf, 0, rest, kept, nkept);
        continue;
      }
    }
    if (leaf->ncp == 0) {
      if (leaf != root_) unlink(leaf);
    } else {
      maybe_merge_with_next(leaf);
    }
  }
}

std::string Rope::text() const {
  std::string out;
  out.reserve(bytes_);
  for (const Leaf* l = first_leaf(); l; l = next_leaf(l)) out.append(l->text, l->nbytes);
  return out;
}

std::string Rope::substr(uint32_t pos, uint32_t n) const {
  std::string out;
  if (n == 0) return out;
  uint32_t off;
  const Leaf* l = find_leaf(pos, false, &off);
  while (l && n > 0) {
    const uint32_t k = std::min<uint32_t>(n, l->ncp - off);
    const size_t b0 = l->byte_off(off);
    const size_t b1 = l->byte_off(off + k);
    out.append(l->text + b0, b1 - b0);
    n -= k;
    off = 0;
    l = next_leaf(l);
  }
  return out;
}

uint32_t Rope::utf16_of(uint32_t pos) const {
  const Node* n = root_;
  uint32_t u = 0;
  while (!n->leaf) {
    auto* in = static_cast<const Inner*>(n);
    int i = 0;
    for (; i + 1 < in->n; ++i) {
      if (pos <= in->cp[i]) break;
      pos -= in->cp[i];
      u += in->u16[i];
    }
    n = in->child[i];
  }
  auto* l = static_cast<const Leaf*>(n);
  if (l->nbytes == l->ncp) return u + pos;
  return u + static_cast<uint32_t>(utf8::count_utf16(std::string_view(l->text, l->byte_off(pos))));
}

uint32_t Rope::pos_of_utf16(uint32_t u, bool* inside_pair) const {
  if (inside_pair) *inside_pair = false;
  const Node* n = root_;
  uint32_t pos = 0;
  while (!n->leaf) {
    auto* in = static_cast<const Inner*>(n);
    int i = 0;
    for (; i + 1 < in->n; ++i) {
      if (u <= in->u16[i]) break;
      u -= in->u16[i];
      pos += in->cp[i];
    }
    n = in->child[i];
  }
  auto* l = static_cast<const Leaf*>(n);
  if (l->nbytes == l->ncp) return pos + u;
  size_t b = 0;
  uint32_t units = 0;
  while (units < u && b < l->nbytes) {
    const size_t len = utf8::seq_len(static_cast<unsigned char>(l->text[b]));
    const uint32_t w = len == 4 ? 2 : 1;
    if (units + w > u) {
      if (inside_pair) *inside_pair = true;
      break;
    }
    units += w;
    b += len;
    ++pos;
  }
  return pos;
}

void Rope::for_each_chunk(const std::function<void(std::string_view, const LvRun*, size_t)>& f) const {
  for (const Leaf* l = first_leaf(); l; l = next_leaf(l)) {
    if (l->ncp) f(l->view(), l->runs, l->nruns);
  }
}

bool Rope::contains_placeholder() const {
  for (const Leaf* l = first_leaf(); l; l = next_leaf(l)) {
    if (std::memchr(l->text, kPlaceholderByte, l->nbytes)) return true;
  }
  return false;
}

void Rope::build(std::string_view text, const std::vector<LvRun>& runs) {
  clear();
  if (text.empty()) return;
  std::vector<Node*> level;
  chop(text, runs.data(), runs.size(), kLeafBytes - kLeafBytes / 8, kChopRuns, nullptr, &level);
  free_tree(root_);
  leaves_ = level.size();
  bytes_ = text.size();
  while (level.size() > 1) {
    std::vector<Node*> up;
    const size_t per = kFan - 2;
    for (size_t at = 0; at < level.size(); at += per) {
      auto* in = new Inner();
      ++inners_;
      const size_t count = std::min(per, level.size() - at);
      in->n = static_cast<uint8_t>(count);
      for (size_t i = 0; i < count; ++i) {
        Node* c = level[at + i];
        in->child[i] = c;
        c->parent = in;
        c->slot = static_cast<uint8_t>(i);
        in->cp[i] = NCP(c);
        in->u16[i] = NU16(c);
      }
      up.push_back(in);
    }
    level.swap(up);
  }
  root_ = level[0];
  root_->parent = nullptr;
  root_->slot = 0;
  cp_ = NCP(root_);
  u16_ = NU16(root_);
}

Status Rope::check_node(const Node* node, uint32_t* cp, uint32_t* u16, size_t* bytes) const {
  if (node->leaf) {
    auto* l = static_cast<const Leaf*>(node);
    if (l->ncp == 0 && node != root_) return Status::Internal("rope: empty leaf below the root");
    if (l->ncp != utf8::count_code_points(l->view())) return Status::Internal("rope: leaf cp count");
    if (l->nu16 != utf8::count_utf16(l->view())) return Status::Internal("rope: leaf utf16 count");
    uint32_t sum = 0;
    for (size_t i = 0; i < l->nruns; ++i) {
      if (l->runs[i].len == 0) return Status::Internal("rope: empty LV run");
      sum += l->runs[i].len;
    }
    if (sum != l->ncp) return Status::Internal("rope: LV runs do not cover the leaf");
    if (l->nbytes && is_cont(l->text[0])) return Status::Internal("rope: leaf starts mid-character");
    *cp = l->ncp;
    *u16 = l->nu16;
    *bytes = l->nbytes;
    return Status::OK();
  }
  auto* in = static_cast<const Inner*>(node);
  if (in->n == 0) return Status::Internal("rope: empty inner node");
  *cp = *u16 = 0;
  *bytes = 0;
  for (int i = 0; i < in->n; ++i) {
    const Node* c = in->child[i];
    if (c->parent != in || c->slot != i) return Status::Internal("rope: bad parent link");
    uint32_t ccp, cu;
    size_t cb;
    TANDEM_RETURN_IF_ERROR(check_node(c, &ccp, &cu, &cb));
    if (ccp != in->cp[i] || cu != in->u16[i]) return Status::Internal("rope: stale inner counts");
    *cp += ccp;
    *u16 += cu;
    *bytes += cb;
  }
  return Status::OK();
}

Status Rope::check() const {
  if (root_->parent) return Status::Internal("rope: root has a parent");
  uint32_t cp, u16;
  size_t bytes;
  TANDEM_RETURN_IF_ERROR(check_node(root_, &cp, &u16, &bytes));
  if (bytes != bytes_) return Status::Internal("rope: byte count");
  if (cp != cp_ || u16 != u16_) return Status::Internal("rope: cached totals");
  if (hint_leaf_) {
    uint32_t off;
    if (find_leaf(hint_start_, false, &off) != hint_leaf_ && hint_leaf_->ncp) return Status::Internal("rope: stale edit hint");
  }
  return Status::OK();
}

size_t Rope::heap_bytes() const { return leaves_ * sizeof(Leaf) + inners_ * sizeof(Inner); }

}  // namespace tandem::crdt::internal
