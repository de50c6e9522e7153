// A deliberately naive replica with the same semantics as the engine, used as a test oracle.
//
// It keeps one item per character ever inserted, in document order, with its origins, and
// applies each event by computing the document at the event's parents from scratch (ancestor
// sets as bit vectors), then placing inserts with the FugueMax (YjsMod) rule one character at a
// time. Quadratic in everything: for histories of a few hundred events.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "crdt/format.h"
#include "crdt/op.h"
#include "crdt/status.h"

namespace tandem::testing {

class Reference {
 public:
  // Adds every event of a batch, which must be in causal order (as Doc::ops_since emits).
  // Characters sent without text (kInsertDeleted) are recorded as '?'.
  crdt::Status add(const crdt::OpBatch& batch);
  std::string text() const;
  // Marks and blocks as crdt/format.h defines them, computed per character from scratch.
  std::vector<crdt::TextSpan> spans() const;
  std::vector<crdt::Block> blocks() const;
  size_t events() const { return events_.size(); }

 private:
  static constexpr size_t kNone = SIZE_MAX;
  struct Event {
    std::string agent;
    uint32_t seq;
    uint32_t lamport;
  };
  // A format event with the characters (events) at pos - 1, pos, end - 1 and end of its version.
  struct FormatEvent {
    size_t ev;
    crdt::Format f;
    bool mark;
    size_t before, first, last, next;
  };
  struct Item {
    size_t ev;
    size_t ol;  // events, or kNone
    size_t orr;
    std::vector<size_t> deleted_by;
    std::string ch;
  };
  crdt::Status add_event(const std::string& agent, uint32_t seq, const std::vector<size_t>& parents, bool insert,
                         uint32_t pos, const std::string& ch, const crdt::OpRun* format = nullptr);
  bool later(size_t a, size_t b) const;
  size_t index_of(size_t ev) const;
  size_t find(const std::string& agent, uint32_t seq) const;

  std::vector<Event> events_;
  std::vector<std::vector<bool>> ancestors_;  // ancestors_[e][x]: x is e or an ancestor of e
  std::vector<Item> items_;
  std::vector<FormatEvent> formats_;
};

}  // namespace tandem::testing
