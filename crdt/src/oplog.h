// OpLog: every event a replica holds, numbered by local version (LV) in the order it arrived.
//
// LVs are dense local integers 0, 1, 2, ...; LV order is a topological order of the event graph
// (an event arrives only after its parents). Everything is run-length encoded by LV:
//  - agent spans: which (agent, seq) each LV is;
//  - graph entries: runs where every event's parent is the event before it, except the first,
//    whose parents are listed (an empty list is the empty document);
//  - op spans: runs of one agent's events of one kind whose positions continue each other
//    (typing, forward delete, backspace), with the document length at the first event's parents;
//  - the content arena: the UTF-8 text of inserts in LV order (kPlaceholderByte for a character
//    whose text this replica never received because it was deleted before it arrived);
//  - formats: what each mark or block event sets, in LV order (a span of its own per event).
//
// Invariants:
//  1. Spans of each kind tile [0, size()) with no gaps, in increasing LV order.
//  2. An op span lies inside one graph entry's linear part and one agent span.
//  3. Each agent's seqs map to LVs in increasing order without gaps from seq 0.
//  4. Parents always have smaller LVs; frontiers are sorted and hold no ancestor of another.
//
// Not thread-safe. Owned by one Doc.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "crdt/op.h"
#include "crdt/status.h"
#include "rope.h"

namespace tandem::crdt::internal {

// Lets agent lookups take a string_view without building a std::string (a merge looks up every
// parent's agent).
struct AgentHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Real LVs stay below kUnderwater: the merge uses the range above it for the characters of the
// document as it was where a merge starts (which it does not need to tell apart).
inline constexpr LV kUnderwater = 0x80000000u;
inline constexpr LV kMaxEvents = kUnderwater - 1;
inline constexpr LV kNoLV = 0xFFFFFFFFu;

using Frontier = std::vector<LV>;

struct Span {
  LV start;
  LV end;  // exclusive
};

// kFmt: a mark or block event (one per span); it moves no text.
enum OpType : uint8_t { kIns = 0, kDelFwd = 1, kDelBack = 2, kFmt = 3 };

struct OpSpan {
  LV lv;
  uint32_t len;
  uint32_t pos;         // position of the first event
  uint32_t len_before;  // document length at the first event's parents
  uint32_t content;     // kIns: byte offset of its text in the arena; kFmt: index in formats()
  uint8_t type;
  bool one_byte = false;  // kIns: each character of its text is one byte (content() need not scan)

  LV end() const { return lv + len; }
  // Position of event lv + k.
  uint32_t pos_at(uint32_t k) const { return type == kIns ? pos + k : type == kDelBack ? pos - k : pos; }
  // Document length after event lv + k.
  uint32_t len_after(uint32_t k) const {
    return type == kIns ? len_before + k + 1 : type == kFmt ? len_before : len_before - k - 1;
  }
};

struct AgentSpan {
  LV lv;
  uint32_t agent;
  uint32_t seq;
};

struct SeqSpan {
  uint32_t seq;
  LV lv;
  uint32_t len;
};

struct GraphEntry {
  LV start;
  LV end;
  Frontier parents;
};

// How many of the `len` events (type, pos) extend op span `last`, appended right after it by the
// same agent with the event before as their only parent: typing on from its end, deleting forward
// at its position, or backspacing from its start. *to_back: `last` turns into a backspace run.
inline uint32_t extend_by(const OpSpan& last, OpType type, uint32_t pos, uint32_t len, bool* to_back) {
  if (type == kFmt || last.type == kFmt) return 0;
  if (type == kIns) return last.type == kIns && pos == last.pos + last.len ? len : 0;
  if (last.type == kDelFwd && pos == last.pos) return type == kDelFwd ? len : 1;  // a backspace continues one event
  if (last.type != kIns && (last.type == kDelBack || last.len == 1) && last.pos >= last.len &&
      pos == last.pos - last.len) {
    *to_back = true;
    return type == kDelBack ? len : 1;
  }
  return 0;
}

class OpLog {
 public:
  LV size() const { return end_; }

  // Agents are interned; their index is local to this replica.
  uint32_t find_agent(std::string_view name) const;  // kNoLV if unknown
  uint32_t intern_agent(std::string_view name);
  const std::string& agent_name(uint32_t agent) const { return agents_[agent].name; }
  size_t num_agents() const { return agents_.size(); }
  uint32_t next_seq(uint32_t agent) const;
  LV lv_of(uint32_t agent, uint32_t seq) const;  // kNoLV if not held
  AgentSpan id_of(LV lv) const;                   // {lv, agent, seq} of that exact event
  const std::vector<AgentSpan>& agent_spans() const { return agent_spans_; }
  const std::vector<SeqSpan>& seq_spans(uint32_t agent) const { return agents_[agent].spans; }

  // Appends `len` events of `agent` from `seq` (REQUIRES seq == next_seq(agent)); the first has
  // parents `parents`, each later one the event before it. `content` (kIns only) holds exactly
  // `len` characters. `len_before` may be 0 when not yet known (see set_len_before).
  void append(uint32_t agent, uint32_t seq, const Frontier& parents, OpType type, uint32_t pos,
              uint32_t len, std::string_view content, uint32_t len_before);
  // Appends one mark or block event: as append with type kFmt and len 1, plus what it sets.
  void append_format(uint32_t agent, uint32_t seq, const Frontier& parents, uint32_t pos, Format format,
                     uint32_t len_before);
  // What the kFmt span `op` sets.
  const Format& format_of(const OpSpan& op) const { return formats_[op.content]; }
  size_t num_formats() const { return formats_.size(); }
  const Format& format(size_t i) const { return formats_[i]; }
  // Gives the kFmt span append_span just appended its format.
  void attach_format(Format format);
  // Appends a run that begins an op span of its own, as every run of a snapshot Tandem wrote does
  // (its runs are maximal): append without the merging and without text (see replace_arena).
  // Appends nothing and says why if the run would extend the last op span, or if the agent's
  // seqs would pass 2^32.
  enum class SpanResult { kOk, kContinues, kSeqOverflow };
  SpanResult append_span(uint32_t agent, const Frontier& parents, OpType type, uint32_t pos, uint32_t len,
                         uint32_t len_before);
  // Room for `runs` more appends without growing (a snapshot load knows its run count).
  void reserve_runs(size_t runs) { ops_.reserve(ops_.size() + runs); }
  // Room for up to `runs` more op spans and `content_bytes` more text, growing at least twofold
  // (a merge knows its batch; repeated small batches keep the amortized growth).
  void expect(size_t runs, size_t content_bytes) {
    if (ops_.size() + runs > ops_.capacity()) ops_.reserve(std::max(ops_.size() + runs, 2 * ops_.capacity()));
    if (track_content_ && arena_.size() + content_bytes > arena_.capacity()) {
      arena_.reserve(std::max(arena_.size() + content_bytes, 2 * arena_.capacity()));
    }
  }
  // Forgets every event from LV `end` on, and every agent interned after the first `num_agents`.
  void truncate(LV end, size_t num_agents);

  const std::vector<GraphEntry>& graph() const { return graph_; }
  size_t graph_index(LV lv) const;
  void parents_of(LV lv, Frontier* out) const;

  const std::vector<OpSpan>& ops() const { return ops_; }
  size_t op_index(LV lv) const;
  void set_len_before(size_t op_index, uint32_t len) { ops_[op_index].len_before = len; }
  // Document length at version {lv}.
  uint32_t len_after(LV lv) const;
  // Text of the insert events [lv, lv + n), which lie in one op span.
  std::string_view content(LV lv, uint32_t n) const;
  const std::string& arena() const { return arena_; }
  // Replaces the arena; offsets[i] is the text offset of the i-th insert op span, and the spans'
  // texts follow each other in that order with nothing in between.
  void replace_arena(std::string arena, const std::vector<uint32_t>& offsets);
  // A log kept only for its shape (canonical snapshots) does not store text.
  void set_track_content(bool track) { track_content_ = track; }

  // The events of both a and b's histories that are not in the history of their nearest common
  // single-event version `*common` (kNoLV: the empty document), as ascending spans. Every event
  // in those spans descends from *common.
  // Gives up, returning false, once the zone holds more than `max_events` events.
  bool find_conflicting(const Frontier& a, const Frontier& b, LV* common, std::vector<Span>* zone,
                        uint64_t max_events = UINT64_MAX) const;
  // Spans in a's history but not b's, and in b's but not a's, both ascending.
  void diff(const Frontier& a, const Frontier& b, std::vector<Span>* only_a, std::vector<Span>* only_b) const;

  // The frontier after adding event `last` whose parents (or its run's first parents) are `parents`.
  static void advance(Frontier* f, const Frontier& parents, LV last);

  Status check() const;
  size_t heap_bytes() const;

 private:
  struct Agent {
    std::string name;
    std::vector<SeqSpan> spans;
  };
  std::vector<Agent> agents_;
  std::unordered_map<std::string, uint32_t, AgentHash, std::equal_to<>> agent_index_;
  std::vector<AgentSpan> agent_spans_;
  std::vector<GraphEntry> graph_;
  std::vector<OpSpan> ops_;
  std::string arena_;
  std::vector<Format> formats_;
  LV end_ = 0;
  bool track_content_ = true;
  mutable size_t op_hint_ = 0;     // the span op_index found last
  mutable size_t graph_hint_ = 0;  // the entry graph_index found last
};

}  // namespace tandem::crdt::internal
