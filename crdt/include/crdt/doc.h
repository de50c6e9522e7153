// Doc: one replica of a text document that any number of peers edit concurrently.
//
// Local edits apply at once and become operations with ids (agent, seq), where `agent` is this
// replica's name. Remote operations (OpBatch, see op.h) merge in any order, any number of times:
// duplicates are ignored, operations whose causal dependencies are missing are held (up to
// DocLimits) and merged when those arrive. Replicas that hold the same operations hold the same
// text, byte for byte, and encode to the same snapshot bytes.
//
// Positions are code points. Conversions to UTF-16 code units are exact (see utf8.h).
//
// Errors: InvalidArgument for malformed input (bad UTF-8, a position past the end of the document
// as its author saw it, a bad agent name), OutOfRange for a local position past the end,
// ResourceExhausted past a limit. A failed call changes nothing.
//
// Thread safety: none; use one Doc from one thread at a time (the server keeps each document on
// one I/O thread of its own). The agent name must be owned by this replica alone: two replicas writing as the same
// agent would give different operations the same ids.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crdt/batch.h"
#include "crdt/format.h"
#include "crdt/op.h"
#include "crdt/status.h"
#include "crdt/version.h"

namespace tandem::crdt {

struct DocLimits {
  uint64_t max_pending_events = 1u << 20;  // events held while their dependencies are missing
  uint32_t max_pending_runs = 10000;
  uint32_t max_length = 1u << 28;          // code points of visible text
  uint32_t max_comments = 1u << 16;        // distinct comment ids (each is a mark of its own)
};

struct SnapshotData;
class History;

class Doc {
 public:
  // REQUIRES: ValidateAgent(agent).ok().
  explicit Doc(std::string_view agent);
  ~Doc();
  Doc(Doc&&) noexcept;
  Doc& operator=(Doc&&) noexcept;
  Doc(const Doc&) = delete;
  Doc& operator=(const Doc&) = delete;

  // Agent names: 1..kMaxAgentBytes bytes of well-formed UTF-8.
  static Status ValidateAgent(std::string_view agent);
  // What can be checked of a batch without a document: agent names, lengths, kinds, text
  // (well-formed UTF-8 of the right length), parents. apply() checks this too.
  static Status ValidateBatch(const OpBatch& batch);
  static Status ValidateBatch(const Batch& batch);

  const std::string& agent() const;
  void set_limits(const DocLimits& limits);
  const DocLimits& limits() const;

  // Local edits. `text` must be well-formed UTF-8.
  Status insert(uint32_t pos, std::string_view text);
  Status remove(uint32_t pos, uint32_t len);

  // Rich text (format.h). Marks: the characters [pos, pos + len) get mark `name` = `value`, or
  // lose it (for a comment, `value` names which). Blocks: the block holding pos becomes `type`.
  // Errors: OutOfRange past the end, InvalidArgument for what format.h does not allow,
  // ResourceExhausted past DocLimits::max_comments.
  Status mark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value);
  Status unmark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value = {});
  Status set_block(uint32_t pos, std::string_view type, std::string_view value = {});
  // The visible text as stretches of equal marks (covering it all, in order), and every block.
  // A plain document reads as one unmarked stretch and all paragraphs. Once a document has format
  // events, the first read replays its history into a sequence kept from then on, and each read
  // after a change looks every format event up in it (kept until the next change: spans() and
  // blocks() together cost one).
  std::vector<TextSpan> spans() const;
  std::vector<Block> blocks() const;
  // Mark and block events held: a document with none is plain text, on the wire and on disk.
  uint64_t format_events() const;
  // Where the format events from the `first`-th on (counted as format_events() counts them, so
  // `first` is format_events() before a merge) act in today's text: a mark's characters as
  // [from, to), a block's start as the empty range [at, at). Marks and block types can have
  // changed only there; an event whose characters are all deleted acts nowhere. For an editor
  // that redraws only those stretches after a remote change.
  std::vector<std::pair<uint32_t, uint32_t>> format_ranges(uint64_t first) const;

  std::string text() const;
  std::string slice(uint32_t pos, uint32_t len) const;  // clamped to the document
  uint32_t length() const;                               // code points
  uint32_t length_utf16() const;
  size_t length_bytes() const;
  // UTF-16 offset of a code point position, and back. Errors: OutOfRange past the end;
  // InvalidArgument for a UTF-16 offset between the two halves of a surrogate pair.
  Result<uint32_t> utf16_from_pos(uint32_t pos) const;
  Result<uint32_t> pos_from_utf16(uint32_t utf16) const;

  // What this replica holds.
  const Version& version() const;
  // The operations at the tips of version `v`'s history: the parents for an operation made as of
  // `v` (OpRun::parents), which then merges with everything concurrent to it. Errors: NotFound
  // (this replica does not hold all of v), InvalidArgument (v is not the version of a history:
  // it leaves out something its operations depend on).
  Result<std::vector<OpId>> frontier_of(const Version& v) const;
  uint64_t num_events() const;
  // Which text an op batch carries for inserted characters that are deleted by now.
  enum class DeletedText {
    kOmit,     // none (kInsertDeleted): what every replica can do, so the default
    kInclude,  // the text, where this replica still has it (it may not: a replica loaded from a
               // snapshot, or one that received the characters already deleted, does not)
  };

  // The operations a replica at version `peer` lacks, in an order it can apply them, in one
  // batch that must be applied whole (see OpKind::kInsertDeleted).
  OpBatch ops_since(const Version& peer, DeletedText deleted = DeletedText::kOmit) const;

  // Merges remote operations. Returns the changes to the visible text, in order. Errors:
  // InvalidArgument (a malformed run, a position past the end of the document at its parents, or
  // characters sent without their text that the batch does not delete), ResourceExhausted (past DocLimits::max_length or the event limit),
  // FailedPrecondition (more held operations than DocLimits allows). When `added` is
  // set, it receives the events this call integrated (duplicates and still-held events left
  // out), in the order they were integrated, with every text this replica has: what a server
  // appends to its log. On error the replica is unchanged (no part of the batch is kept, not even
  // as held operations). Runs whose dependencies are missing are held until they arrive; runs of
  // unknown text (kInsertDeleted) are held too while their deletion is (in this batch or one held
  // before), so that such characters never show, and are tried again by every later apply.
  // With `as_received` set too: when the call integrated exactly the batch's events, run after
  // run in its order (no duplicate, nothing held, no held run released), *as_received is true and
  // `added` stays empty: the batch is what was added. Else it is false and `added` is filled.
  Result<std::vector<Patch>> apply(const Batch& batch, OpBatch* added = nullptr, bool* as_received = nullptr);
  // The same for a batch as runs (converted to a Batch first).
  Result<std::vector<Patch>> apply(const OpBatch& batch, OpBatch* added = nullptr);
  // As apply, for a replica that shows its text to no one (a server's): the same merge, checks,
  // errors and `added`, without the patches (their UTF-16 positions and copies of the inserted
  // text are a sixth of a many-author ingest).
  Status integrate(const Batch& batch, OpBatch* added = nullptr, bool* as_received = nullptr);
  // Integrates batches that arrived together (a server's round, a client catching up) as
  // integrate() would one after another, in order, but in one merge when it can: what they have
  // in common (a concurrent stretch) is walked once, not once per batch. Each batch is taken or
  // refused whole, on its own: result[i] is what integrate() says of batches[i] after the ones
  // before it. The group goes as one only when no batch can be refused for what another holds:
  // every batch valid, none carrying characters without their text (kInsertDeleted), and no
  // limit reachable by the group together; else, and when the one merge is refused, the batches
  // are integrated one at a time. `added` receives every event the group integrated, in order;
  // *as_received is true (and `added` empty) when every batch was integrated whole as received,
  // one after another: what was added is the batches themselves.
  std::vector<Status> integrate_group(std::span<const Batch* const> batches, OpBatch* added = nullptr,
                                      bool* as_received = nullptr);
  // Events held for missing dependencies.
  uint64_t pending_events() const;
  // What the last apply() that merged anything walked: how the cost of a merge grows (for tests
  // and benchmarks). `walked`: events the merge visited (new ones and the old ones it had to
  // replay beside them); `replayed`: those of them that went through the merge's tracker.
  struct MergeWork {
    uint64_t walked = 0;
    uint64_t replayed = 0;
  };
  MergeWork last_merge_work() const;

  // Full consistency check of the internal structures (slow; for tests and fuzzers).
  Status check_invariants() const;
  // Bytes of heap the replica's structures hold (container capacities, tree nodes).
  size_t heap_bytes() const;

  // The document's past (crdt/history.h): text at any point, who wrote what, differences.
  Result<History> history() const;

  // Snapshots: a plain description of the whole replica that the codec turns into bytes.
  SnapshotData to_snapshot() const;
  // Builds a replica from a snapshot (validated: never trusts it). `agent` names local edits.
  static Result<Doc> from_snapshot(const SnapshotData& data, std::string_view agent);
  // The same, checked the same way, but building only the text, version and frontier: the
  // replica keeps `encoded` (bytes that `decode` turns into `data` again) and builds its op log
  // from them when a call first needs it (a merge, a local edit, ops_since, a format or history
  // read, to_snapshot). Reading the text, its length and the version never does. `decode` may
  // give an empty text for a non-empty document: the text is then the replica's own (so a
  // caller may keep `encoded` without the text, which the replica already holds).
  using SnapshotDecoder = std::function<Result<SnapshotData>(std::string_view)>;
  static Result<Doc> from_snapshot_lazy(const SnapshotData& data, std::string_view agent, std::string encoded,
                                        SnapshotDecoder decode);

  struct Impl;

 private:
  friend class SnapshotLoader;
  explicit Doc(std::unique_ptr<Impl> impl);
  Impl& full() const;  // the replica with its op log built (see from_snapshot_lazy; doc_impl.h)
  Status apply_batch(const Batch& batch, OpBatch* added, bool* as_received, std::vector<Patch>* patches);
  Impl& build_deferred() const;
  std::unique_ptr<Impl> impl_;
};

// The canonical form of a replica's state, identical for replicas that hold the same operations.
// Events are numbered 0..n-1 in a canonical topological order (Kahn's algorithm, smallest
// (agent name, seq) first), and grouped in maximal runs. FORMAT.md describes its encoding.
struct SnapshotData {
  enum RunType : uint8_t { kInsert = 0, kDeleteForward = 1, kDeleteBackward = 2, kFormat = 3 };
  struct Run {
    uint32_t agent = 0;             // index into `agents`
    uint32_t len = 0;               // events; each agent's runs take its seqs 0, 1, ... in order
    uint8_t type = kInsert;
    uint32_t pos = 0;               // position of the first event
    bool follows_previous = false;  // the first event's only parent is the event before it
    std::vector<uint32_t> parents;  // otherwise: its parents, ascending event numbers
    uint32_t len_before = 0;        // document length at those parents; kept when parents.size() > 1
    bool operator==(const Run&) const = default;
  };
  struct TextRun {
    uint32_t event = 0;  // the first character's insert event
    uint32_t len = 0;
    bool operator==(const TextRun&) const = default;
  };
  std::vector<std::string> agents;  // in order of first appearance in `runs`
  std::vector<Run> runs;
  std::string text;                 // the visible text
  std::vector<TextRun> text_runs;   // which insert events the text's characters are, in order
  std::vector<Format> formats;      // what each kFormat run (one event each) sets, in run order

  uint64_t events() const {
    uint64_t n = 0;
    for (const auto& r : runs) n += r.len;
    return n;
  }
  bool operator==(const SnapshotData&) const = default;
};

// Doc::from_snapshot_lazy for a decoder that reads a snapshot's columns straight into it
// (codec::load) rather than into a SnapshotData: begin() with the agents, add() each run in
// order (with its format if it is a format run), then finish() once, with the text. It refuses
// exactly what from_snapshot_lazy refuses, though it may name another of the faults first; after
// an error nothing more may be called.
class SnapshotLoader {
 public:
  SnapshotLoader();
  ~SnapshotLoader();
  SnapshotLoader(const SnapshotLoader&) = delete;
  SnapshotLoader& operator=(const SnapshotLoader&) = delete;

  // linear: the decoder knows no run names its parents (each but the first follows the one
  // before), so the loader need not keep what finding a parent's length takes. A run that then
  // names its parents is refused, and faults in the text are named less precisely.
  Status begin(std::string_view agent, std::vector<std::string> agents, size_t runs, bool linear);
  Status add(size_t i, const SnapshotData::Run& run, const Format* format);
  // Most runs follow the one before, by the same agent, and are not formats: a decoder may hand
  // them over as their fields, many at a time. add_typed() takes runs from the front of `runs`
  // while each is such a run and passes add()'s checks, and says how many it took; add() must
  // then take the next one (the lane refuses, with nothing changed, what it does not know).
  struct TypedRun {
    uint32_t agent;
    uint32_t pos;
    uint32_t len;
    uint8_t type;
  };
  size_t add_typed(const TypedRun* runs, size_t n);
  Result<Doc> finish(std::string_view text, const std::vector<SnapshotData::TextRun>& text_runs, std::string encoded,
                     Doc::SnapshotDecoder decode);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace tandem::crdt
