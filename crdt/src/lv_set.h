// LvSet: a set of LVs as sorted, disjoint, non-adjacent runs.
//
// The replica keeps the set of inserted characters that are no longer in the text, so that it
// can tell which inserts to send without their text (see OpKind::kInsertDeleted) without walking
// the document. Deletes mostly extend a run at one of its ends (typing, backspacing), which is
// O(log n); a new run in the middle costs a vector insert.
#pragma once

#include <algorithm>
#include <vector>

#include "rope.h"

namespace tandem::crdt::internal {

// Sorts records by their `lv` field. Merges and snapshot loads sort thousands to hundreds of
// thousands of runs: three passes of an 11-bit radix sort (stable) cost a fraction of a
// comparison sort there.
template <class T>
void sort_by_lv_field(std::vector<T>* v) {
  if (v->size() < 256) {
    std::sort(v->begin(), v->end(), [](const T& a, const T& b) { return a.lv < b.lv; });
    return;
  }
  std::vector<T> tmp(v->size());
  uint32_t count[1 << 11];
  for (int shift = 0; shift < 32; shift += 11) {
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
    if (runs_.empty() || runs_.back().lv + runs_.back().len < lv) {
      hint_ = runs_.size();
      runs_.push_back({lv, len});
      return;
    }
    LV end = lv + len;
    // First run that ends at or after lv (could touch or overlap).
    auto it = std::lower_bound(runs_.begin(), runs_.end(), lv,
                               [](const LvRun& r, LV x) { return r.lv + r.len < x; });
    auto last = it;
    while (last != runs_.end() && last->lv <= end) {
      lv = std::min(lv, last->lv);
      end = std::max(end, last->lv + last->len);
      ++last;
    }
    hint_ = static_cast<size_t>(it - runs_.begin());
    if (it == last) {
      runs_.insert(it, {lv, end - lv});
      return;
    }
    *it = {lv, end - lv};
    runs_.erase(it + 1, last);
  }

  // Adds many runs at once (sorted here, any order given): one pass over the part of the set they
  // reach, where adding them one by one would move the tail of the set for each (a merge deletes
  // all over the text).
  void add_all(std::vector<LvRun>* more) {
    if (more->size() < 8) {
      for (const LvRun& r : *more) add(r.lv, r.len);
      return;
    }
    sort_by_lv_field(more);
    // Only the runs the new ones can touch are rewritten: [lo, hi).
    LV last_end = 0;
    for (const LvRun& r : *more) last_end = std::max(last_end, r.lv + r.len);
    const LV first = more->front().lv;
    auto lo = std::lower_bound(runs_.begin(), runs_.end(), first, [](const LvRun& r, LV x) { return r.lv + r.len < x; });
    auto hi = std::upper_bound(lo, runs_.end(), last_end, [](LV x, const LvRun& r) { return x < r.lv; });
    std::vector<LvRun> merged;
    merged.reserve(static_cast<size_t>(hi - lo) + more->size());
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
    auto b = more->begin();
    while (a != hi || b != more->end()) {
      if (b == more->end() || (a != hi && a->lv <= b->lv)) {
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
    hint_ = 0;
  }

  // Calls f(start, end, in_set) for the consecutive pieces of [a, b), in order.
  template <typename F>
  void partition(LV a, LV b, F f) const {
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

  const std::vector<LvRun>& runs() const { return runs_; }
  void clear() {
    runs_.clear();
    hint_ = 0;
  }
  size_t heap_bytes() const { return runs_.capacity() * sizeof(LvRun); }
  bool operator==(const LvSet& o) const { return runs_ == o.runs_; }

 private:
  std::vector<LvRun> runs_;
  size_t hint_ = 0;  // index of the run changed last
};

}  // namespace tandem::crdt::internal
