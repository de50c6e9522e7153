// The inside of a Doc, shared by doc.cc and snapshot.cc.
#pragma once

#include <memory>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <string>
#include <vector>

#include "crdt/doc.h"
#include "lv_set.h"
#include "merge.h"
#include "oplog.h"
#include "rope.h"

namespace tandem::crdt {

// Shared by the two files that implement Doc.
using internal::Frontier;
using internal::kNoLV;
using internal::LV;
using internal::LvRun;
using internal::OpLog;
using internal::OpSpan;
using internal::OpType;
using internal::Span;

inline std::string num(uint64_t v) { return std::to_string(v); }

// What a document with mark or block events keeps to read them (none for a plain document):
// the whole sequence with its deleted characters, each format event's characters, and the
// Lamport number of every graph entry's first event (the order that decides between formats).
struct RichState {
  explicit RichState(const internal::OpLog& log) : seq(log) {}
  internal::Sequence seq;
  std::vector<internal::Sequence::Found> found;  // every format event, in LV order
  std::vector<uint32_t> lamport;                 // by graph entry, as far as computed

  // found[i] as reads see it (computed once: an event never changes).
  struct Event {
    uint32_t format;   // OpLog::format(i)
    uint32_t lamport;
    uint32_t agent;
    uint32_t seq;
    uint32_t key;      // marks: which mark (a comment: which id), an index into keys; blocks: unused
    bool mark;
  };
  std::vector<Event> events;
  std::vector<std::string> keys;  // name, or "comment\n" + id; sorted as marks are, by name then id
  std::unordered_map<std::string, uint32_t> key_of;
  // The last read: every event's anchors in today's text, for the log as it was at `at` events
  // (every change of the text or its formats is an event, so the size tells when it is stale).
  struct Read {
    uint64_t at = UINT64_MAX;
    std::vector<std::tuple<uint32_t, uint32_t, bool>> toggles;  // (position, event, start?), sorted, starts first
    std::vector<std::pair<uint32_t, uint32_t>> block_at;        // (block start, event), sorted, the winner last
    std::vector<std::pair<uint32_t, uint32_t>> range;           // by event: where it acts (format_ranges)
  } read;

  size_t heap_bytes() const {
    size_t n = sizeof(*this) + seq.heap_bytes() + found.capacity() * sizeof(found[0]) + lamport.capacity() * 4 +
               events.capacity() * sizeof(Event) + read.toggles.capacity() * 12 + read.block_at.capacity() * 8 +
               read.range.capacity() * 8;
    for (const auto& k : keys) n += k.capacity() + 64;
    return n;
  }
};

struct Doc::Impl {
  std::string agent_name;
  uint32_t agent = internal::kNoLV;  // interned on the first local edit
  DocLimits limits;
  internal::OpLog log;
  internal::Rope rope;
  internal::LvSet deleted;      // inserted characters no longer in the text
  internal::Frontier frontier;  // the events with no children: the document's version
  // The version vector, brought up to date lazily: local edits only mark it stale, so that
  // typing does not pay a string lookup per keystroke.
  mutable Version version;
  mutable bool version_stale = false;
  const Version& synced_version() const {
    if (version_stale) {
      version.advance(agent_name, log.next_seq(agent));
      version_stale = false;
    }
    return version;
  }
  // Runs held while their dependencies are missing, in slots that keep their index (a free slot
  // has len 0), and per agent the slots whose run last waited for that agent: a merge looks only
  // at the held runs that an agent it advanced may unblock, not at every held run.
  std::vector<OpRun> pending;
  std::vector<std::string> pending_blocker;  // per slot
  std::vector<uint32_t> pending_free;
  std::unordered_map<std::string, std::vector<uint32_t>, internal::AgentHash, std::equal_to<>> waiting;
  uint64_t pending_events = 0;
  uint32_t pending_runs = 0;
  std::vector<internal::LvRun> scratch;  // reused by every delete
  internal::MergeCache merge_cache;
  // Built by the first read of formats (rich.cc); reset when the log loses events it saw.
  mutable std::unique_ptr<RichState> rich;
  std::unordered_set<std::string> comment_ids;  // every comment id used, for DocLimits::max_comments

  // OK, or why `n` distinct comment ids are more than the limits allow (`whose`: "document would
  // have", "snapshot has").
  Status check_comments(size_t n, const char* whose) const {
    if (n <= limits.max_comments) return Status::OK();
    return Status::ResourceExhausted(std::string(whose) + " more than " + std::to_string(limits.max_comments) + " comments");
  }

  // A replica loaded lazily (Doc::from_snapshot_lazy) holds its snapshot's bytes here and no op
  // log, deleted set or held runs: its text, version, frontier and counts are exact, and the
  // first call that needs the rest builds it from the bytes (Doc::full).
  struct Deferred {
    std::string bytes;
    Doc::SnapshotDecoder decode;
    uint64_t events = 0;
    uint64_t formats = 0;
  };
  std::unique_ptr<Deferred> deferred;

  uint32_t local_agent() {
    if (agent == internal::kNoLV) agent = log.intern_agent(agent_name);
    return agent;
  }
};

// Inline: every local edit asks.
inline Doc::Impl& Doc::full() const { return impl_->deferred ? build_deferred() : *impl_; }

namespace internal {

// Events [lv, end) of one agent span, the first of them (agent, seq).
struct Range {
  LV lv, end;
  uint32_t agent, seq;
};

// Appends to `out` the runs of the events in `ranges` (ascending, each inside one agent span),
// with the text that `deleted` asks for.
void runs_of(const Doc::Impl& d, const std::vector<Range>& ranges, Doc::DeletedText deleted, OpBatch* out);

}  // namespace internal

}  // namespace tandem::crdt
