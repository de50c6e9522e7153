// Operations as they travel between replicas, and the patches a merge reports.
//
// An operation (an "event") inserts or deletes one character at a position in the document as
// its author saw it: the version named by its parents. Events travel in runs: event i of a run
// has id (agent, seq + i); the first event's parents are `parents`, and every later event's only
// parent is the event just before it. Positions count Unicode code points.
//
//   kInsert         event i inserts code point i of `content` at pos + i (typing forward);
//   kInsertDeleted  as kInsert, but the text is not sent: the sender holds a deletion of every
//                   one of these characters, and sends those deletions in the same batch;
//   kDeleteForward  every event deletes the character at pos (the Delete key, or a range);
//   kDeleteBackward event i deletes the character at pos - i (Backspace).
//   kMark           one event (len 1): characters [pos, format.end) get mark `format.name` (see
//                   format.h for names, values and how concurrent marks resolve);
//   kBlock          one event (len 1): the block that starts at pos (0, or just after a `\n`)
//                   becomes type `format.name` with attribute `format.value`.
// Marks and blocks change no text; they count as events like any other (ids, versions, logs).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crdt/version.h"

namespace tandem::crdt {

enum class OpKind : uint8_t {
  kInsert = 0,
  kInsertDeleted = 1,
  kDeleteForward = 2,
  kDeleteBackward = 3,
  kMark = 4,
  kBlock = 5,
};

inline bool IsInsert(OpKind k) { return k == OpKind::kInsert || k == OpKind::kInsertDeleted; }
inline bool IsFormat(OpKind k) { return k == OpKind::kMark || k == OpKind::kBlock; }

// What a kMark or kBlock event sets (format.h validates it).
struct Format {
  uint32_t end = 0;     // kMark: the first position after the marked characters; kBlock: 0
  std::string name;     // kMark: the mark; kBlock: the block type
  std::string value;    // the mark's value (link: href; comment: its id) or the block's attribute
  bool remove = false;  // kMark: takes the mark off
  bool operator==(const Format&) const = default;
};

// An OpRun's Format, held by a shared pointer to a constant: the runs of plain text (nearly all)
// carry one empty pointer, not two strings. Compares by value.
class FormatField {
 public:
  FormatField() = default;
  FormatField(Format f) : p_(std::make_shared<const Format>(std::move(f))) {}  // NOLINT: implicit
  explicit operator bool() const { return p_ != nullptr; }
  const Format& operator*() const { return *p_; }
  const Format* operator->() const { return p_.get(); }
  bool operator==(const FormatField& o) const { return p_ == o.p_ || (p_ && o.p_ && *p_ == *o.p_); }

 private:
  std::shared_ptr<const Format> p_;
};

struct OpRun {
  std::string agent;
  uint32_t seq = 0;
  std::vector<OpId> parents;  // of the first event; empty = the empty document
  OpKind kind = OpKind::kInsert;
  uint32_t pos = 0;
  uint32_t len = 0;           // number of events (characters); at least 1
  std::string content;        // kInsert: UTF-8, exactly `len` code points; otherwise empty
  FormatField format;         // kMark, kBlock: set; otherwise empty

  bool operator==(const OpRun&) const = default;
};

struct OpBatch {
  std::vector<OpRun> runs;
  // Number of events in all runs.
  uint64_t events() const {
    uint64_t n = 0;
    for (const auto& r : runs) n += r.len;
    return n;
  }
  bool empty() const { return runs.empty(); }
  // Whether it formats (rich text: what a client of protocol 1 cannot read).
  bool has_formats() const {
    return std::any_of(runs.begin(), runs.end(), [](const OpRun& r) { return IsFormat(r.kind); });
  }
  bool operator==(const OpBatch&) const = default;
};

// One change to the visible text: at `pos`, `deleted` characters were removed, then `inserted`
// was inserted. Patches in a list apply one after another, each to the text the previous one
// left. Every count is given both in code points and in UTF-16 code units.
struct Patch {
  uint32_t pos = 0;
  uint32_t deleted = 0;
  std::string inserted;
  uint32_t pos_utf16 = 0;
  uint32_t deleted_utf16 = 0;
  uint32_t inserted_utf16 = 0;
  bool operator==(const Patch&) const = default;
};

}  // namespace tandem::crdt
