// History: a document's text at any point of its past, who wrote each character of it, and what
// changed between two points: read from a replica's whole log, deleted text included.
//
// A point is a count of events: the first n events in the replica's order (0 is the empty
// document, events() the current one). A replica rebuilt from a store's log in log order (as
// store::replay builds one) numbers its events in that order, so there n is the number of logged
// events, the unit of `GET /api/docs/<id>?at=N`.
//
// Doc::history() builds it in one pass over the whole history (what the first read of marks
// costs a rich document); each read is then one pass over the characters ever inserted. It holds
// copies of what it needs (it stays valid after the Doc changes or is gone) and does not follow
// later edits: build a new one. Formatting is not part of it (text only). Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crdt/status.h"

namespace tandem::crdt {

// Characters [from, to) of the text at a point (code points), inserted by `agent`'s events,
// the first of them event number `event`.
struct BlameSpan {
  uint32_t from = 0;
  uint32_t to = 0;
  std::string agent;
  uint64_t event = 0;
  bool operator==(const BlameSpan&) const = default;
};

// A stretch of the text of two points, in document order: in both (kept), only in the second
// (inserted), only in the first (deleted). `agents`: who made the difference, sorted: the authors
// of inserted characters and the deleters of deleted ones (going back in time, the other way
// round); for kept text its authors.
struct DiffRun {
  enum Kind : uint8_t { kKept, kInserted, kDeleted };
  Kind kind = kKept;
  std::string text;
  std::vector<std::string> agents;
  bool operator==(const DiffRun&) const = default;
};
const char* DiffKindName(DiffRun::Kind k);

class History {
 public:
  ~History();
  History(History&&) noexcept;
  History& operator=(History&&) noexcept;

  uint64_t events() const;
  // Errors: OutOfRange for a point past events().
  Result<std::string> text_at(uint64_t n) const;
  Result<std::vector<BlameSpan>> blame(uint64_t n) const;
  Result<std::vector<DiffRun>> diff(uint64_t from, uint64_t to) const;
  size_t heap_bytes() const;

  struct Impl;
  explicit History(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::crdt
