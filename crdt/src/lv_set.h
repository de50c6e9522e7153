// LvSet: a set of LVs as sorted, disjoint, non-adjacent runs.
//
// The replica keeps the set of inserted characters that are no longer in the text, so that it
// can tell which inserts to send without their text (see OpKind::kInsertDeleted) without walking
// the document. Deletes mostly extend a run at one of its ends (typing, backspacing): O(1) at the
// run changed last. Other runs wait in a buffer and join the sorted runs in one pass when the
// buffer holds half as many runs as the set, or the set is read: a merge's runs, spread over
// the whole text, each cost a pass over the set before (a tenth of a many-author replay), and a
// pass at an eighth still cost a tenth of a many-author ingest; the buffer's memory is bounded
// by half the set's. Reads are const but may do that pass: like the Doc holding it, a set is
// used from one thread at a time.
#pragma once

#include <algorithm>
#include <vector>

#include "rope.h"

namespace tandem::crdt::internal {

// Sorts records by their `lv` field. Merges and snapshot loads sort thousands to hundreds of
// thousands of runs: up to three passes of an 11-bit radix sort (stable; as many as the largest
// LV needs) cost a fraction of a comparison sort there.
template <class T>
void sort_by_lv_field(std::vector<T>* v) {
  // A linear history deletes and a sorted set is flushed in order: one pass tells.
  if (std::is_sorted(v->begin(), v->end(), [](const T& a, const T& b) { return a.lv < b.lv; })) return;
  if (v->size() < 256) {
    std::sort(v->begin(), v->end(), [](const T& a, const T& b) { return a.lv < b.lv; });
    return;
  }
  std::vector<T> tmp(v->size());
  uint32_t count[1 << 11];
  LV max_lv = 0;
  for (const T& r : *v) max_lv = std::max<LV>(max_lv, r.lv);
  for (int shift = 0; shift < 32 && (shift == 0 || (max_lv >> shift) != 0); shift += 11) {  // digits above the largest LV are 0
    std::fill(std::begin(count), std::end(count), 0);
    for (const T& r : *v) ++count[(r.lv >> shift) & 0x7FF];
    uint32_t at = 0;
    for (auto& c : count) {
      const uint32_t k = c;
      c = at;
      at += k;
    }
    for (const T& r : *v) tmp[count[(r.lv >> shift) & 0x7FF]++] = r;
    v->swap(tmp);
  }
}

// The first element of [from, end) whose key(element) is above x, searched forward from `from`
// in steps that double: O(log d) for an answer d elements on, where scans in LV order find
// theirs. REQUIRES every element before `from` has a key at or below x, keys ascending.
template <class It, class Key>
It gallop_upper_bound(It from, It end, LV x, Key key) {
  size_t step = 1;
  while (static_cast<size_t>(end - from) > step && key(from[step - 1]) <= x) {
    from += static_cast<std::ptrdiff_t>(step);
    step *= 2;
  }
  const It stop = static_cast<size_t>(end - from) > step ? from + static_cast<std::ptrdiff_t>(step) : end;
  return std::upper_bound(from, stop, x, [&](LV v, const auto& e) { return v < key(e); });
}

// Joins runs sorted by lv that touch or overlap, in place, and drops empty ones.
inline void join_sorted_runs(std::vector<LvRun>* runs) {
  size_t w = 0;
  for (const LvRun& r : *runs) {
    if (r.len == 0) continue;
    LvRun* last = w > 0 ? &(*runs)[w - 1] : nullptr;
    if (last && last->lv + last->len >= r.lv) {
      last->len = std::max(last->lv + last->len, r.lv + r.len) - last->lv;
    } else {
      (*runs)[w++] = r;
    }
  }
  runs->resize(w);
}

class LvSet {
 public:
  void add(LV lv, uint32_t len) {
    if (len == 0) return;
    // Backspacing and forward deletes extend the run they touched last.
    if (hint_ < runs_.size()) {
      LvRun& h = runs_[hint_];
      const bool before = lv + len == h.lv && (hint_ == 0 || runs_[hint_ - 1].lv + runs_[hint_ - 1].len < lv);
      const bool after = h.lv + h.len == lv && (hint_ + 1 == runs_.size() || lv + len < runs_[hint_ + 1].lv);
      if (before) {
        h.lv = lv;
        h.len += len;
        return;
      }
      if (after) {
        h.len += len;
        return;
      }
    }
    // Past the last run and not touching it: rebuilding the set in LV order (snapshot load) lands here.
    if (pending_.empty() && (runs_.empty() || runs_.back().lv + runs_.back().len < lv)) {
      hint_ = runs_.size();
      runs_.push_back({lv, len});
      return;
    }
    pending_.push_back({lv, len});
    maybe_flush();
  }

  // Adds many runs at once, in any order (a merge's deleted runs).
  void add_all(const std::vector<LvRun>& more) {
    pending_.insert(pending_.end(), more.begin(), more.end());
    maybe_flush();
  }

  // Calls f(start, end, in_set) for the consecutive pieces of [a, b), in order.
  template <typename F>
  void partition(LV a, LV b, F f) const {
    flush();
    auto it = std::upper_bound(runs_.begin(), runs_.end(), a, [](LV x, const LvRun& r) { return x < r.lv; });
    if (it != runs_.begin() && std::prev(it)->lv + std::prev(it)->len > a) --it;
    while (a < b) {
      if (it == runs_.end() || it->lv >= b) {
        f(a, b, false);
        return;
      }
      if (it->lv > a) {
        f(a, it->lv, false);
        a = it->lv;
      }
      const LV stop = std::min<LV>(b, it->lv + it->len);
      f(a, stop, true);
      a = stop;
      ++it;
    }
  }

  const std::vector<LvRun>& runs() const {
    flush();
    return runs_;
  }
  void clear() {
    runs_.clear();
    pending_.clear();
    hint_ = 0;
  }
  size_t heap_bytes() const { return (runs_.capacity() + pending_.capacity()) * sizeof(LvRun); }
  bool operator==(const LvSet& o) const { return runs() == o.runs(); }

 private:
  void maybe_flush() {
    if (pending_.size() >= 64 + runs_.size() / 2) flush();
  }

  void flush() const {
    if (pending_.empty()) return;
    sort_by_lv_field(&pending_);
    if (runs_.empty()) {  // a fresh replica's first merge: the runs, joined, are the set
      join_sorted_runs(&pending_);
      runs_.swap(pending_);
      pending_.clear();
      hint_ = 0;
      return;
    }
    // Only the runs the new ones can touch are rewritten: [lo, hi).
    LV last_end = 0;
    for (const LvRun& r : pending_) last_end = std::max(last_end, r.lv + r.len);
    const LV first = pending_.front().lv;
    auto lo = std::lower_bound(runs_.begin(), runs_.end(), first, [](const LvRun& r, LV x) { return r.lv + r.len < x; });
    auto hi = std::upper_bound(lo, runs_.end(), last_end, [](LV x, const LvRun& r) { return x < r.lv; });
    std::vector<LvRun> merged;
    merged.reserve(static_cast<size_t>(hi - lo) + pending_.size());
    auto push = [&](const LvRun& r) {
      if (r.len == 0) return;
      if (!merged.empty() && merged.back().lv + merged.back().len >= r.lv) {
        const LV end = std::max(merged.back().lv + merged.back().len, r.lv + r.len);
        merged.back().len = end - merged.back().lv;
      } else {
        merged.push_back(r);
      }
    };
    auto a = lo;
    auto b = pending_.begin();
    while (a != hi || b != pending_.end()) {
      if (b == pending_.end() || (a != hi && a->lv <= b->lv)) {
        push(*a++);
      } else {
        push(*b++);
      }
    }
    const size_t at = static_cast<size_t>(lo - runs_.begin()), old_n = static_cast<size_t>(hi - lo);
    const size_t keep = std::min(old_n, merged.size());
    std::copy(merged.begin(), merged.begin() + static_cast<std::ptrdiff_t>(keep), runs_.begin() + static_cast<std::ptrdiff_t>(at));
    if (merged.size() < old_n) {
      runs_.erase(runs_.begin() + static_cast<std::ptrdiff_t>(at + keep), runs_.begin() + static_cast<std::ptrdiff_t>(at + old_n));
    } else {
      runs_.insert(runs_.begin() + static_cast<std::ptrdiff_t>(at + keep), merged.begin() + static_cast<std::ptrdiff_t>(keep),
                   merged.end());
    }
    pending_.clear();
    hint_ = 0;
  }

  // Mutable: reads join the pending runs first (see the top of this file).
  mutable std::vector<LvRun> runs_;
  mutable std::vector<LvRun> pending_;  // added, not yet in runs_; any order
  mutable size_t hint_ = 0;             // index of the run changed last
};

}  // namespace tandem::crdt::internal
