// Merge: turns events that arrived from other replicas into edits of this replica's text.
//
// Events carry positions in the document as their author saw it (their parents' version). To
// apply them here, transform walks the part of the event graph where the histories diverge, in
// LV order, replaying it into a temporary sequence CRDT ("tracker") whose items remember both
// their state in the version an event was made at (prepare) and in the merged result (effect).
// This is the event-graph walking approach of Gentle and Kleppmann, "Collaborative Text Editing
// with Eg-walker: Better, Faster, Smaller" (EuroSys 2025); the ordering of concurrent inserts is
// FugueMax (Weidner and Kleppmann, "The Art of the Fugue", 2023), which never interleaves two
// runs typed concurrently at the same place.
//
// Where the history is linear (the common case: one author at a time) no tracker is built and
// the events apply as they are; the tracker lives only across concurrent stretches and starts
// from a placeholder standing for the whole document at the point where they begin.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "crdt/status.h"
#include "oplog.h"

namespace tandem::crdt::internal {

// One edit of the current text, in code points. Edits apply one after another.
struct XfOp {
  bool insert;
  uint32_t pos;
  uint32_t len;
  LV lv;  // insert: the characters are the events [lv, lv + len)
};

// A tracker kept between merges. When remote events keep arriving one batch at a time inside a
// long concurrent stretch (two people typing for a while without seeing each other), walking
// the whole stretch again for every batch would cost O(stretch) each time; instead the tracker
// that ended the previous merge carries on with just the events added since.
// Owned by the Doc; cleared whenever the log is rolled back.
class MergeCache {
 public:
  MergeCache();
  ~MergeCache();
  MergeCache(const MergeCache&) = delete;
  MergeCache& operator=(const MergeCache&) = delete;
  void clear();
  bool holds_tracker() const;
  // Events the last transform visited, and how many of them went through the tracker.
  uint64_t last_walked = 0;
  uint64_t last_replayed = 0;
  struct State;

 private:
  friend Status transform(OpLog*, const Frontier&, const Frontier&, LV, uint32_t, std::vector<XfOp>*, MergeCache*);
  std::unique_ptr<State> state_;
};

// Every character ever inserted, deleted ones too, in the one order every replica agrees on: a
// tracker over the whole history (from the empty document, no placeholder), brought up to date
// lazily. Only documents with mark or block events build one: it is what ties those events to
// characters, and what tells on which side of a deleted character later text went.
class Sequence {
 public:
  explicit Sequence(const OpLog& log);
  ~Sequence();
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  // A format event met while catching up, with the characters at its positions in the version it
  // was made in: at pos - 1, pos, end - 1 and end (kNoLV where there is none).
  struct Found {
    LV lv;
    LV before, first, last, next;
  };
  // Takes the log's events from end() on, appending a Found for each format event.
  Status catch_up(std::vector<Found>* found);
  LV end() const { return end_; }
  // Calls f(lv, len, deleted) for the runs of characters in document order.
  void for_each(const std::function<void(LV, uint32_t, bool)>& f) const;
  // Calls f(first, n, target, forward) for runs of delete events: event first + k deleted
  // character target + k (forward) or target + n - 1 - k (backward). A character deleted by
  // concurrent events is named by each of them.
  void for_each_deletion(const std::function<void(LV, uint32_t, LV, bool)>& f) const;
  // Where character `lv` (one the caught-up sequence holds) is in today's text: its position, or
  // for a deleted one the position it would have (the count of visible characters before it).
  struct Where {
    uint32_t pos;
    bool deleted;
  };
  Where where(LV lv) const;
  size_t heap_bytes() const;

 private:
  struct Impl;
  const OpLog& log_;
  std::unique_ptr<Impl> impl_;
  LV end_ = 0;
};

// Transforms the events [first_new, log->size()) (just appended) into edits of a text that holds
// exactly the events of `doc_frontier` and has length `doc_len`; `all` is the frontier of the
// whole log. Fills in the document length before each new op span (OpSpan::len_before).
// Fails with InvalidArgument, leaving *out unspecified, if an event's position is past the end of
// the document at its parents' version; the caller must then roll back and clear the cache.
Status transform(OpLog* log, const Frontier& doc_frontier, const Frontier& all, LV first_new,
                 uint32_t doc_len, std::vector<XfOp>* out, MergeCache* cache);

}  // namespace tandem::crdt::internal
