// Batch: an op batch in columns, what Doc::apply merges.
//
// The same operations as an OpBatch (op.h), held without an object per run: agent names once in
// a table, runs as plain records, every run's parents (the implicit one of a run continuing its
// agent's previous event included) in one array as (agent index, seq), and names and inserted
// text as byte ranges of one buffer. codec::decode_batch fills that buffer with the received
// bytes themselves, so decoding copies no text and allocates a few vectors per batch, not
// several strings per run.
//
// A Batch is plain data: nothing here checks it. Doc::ValidateBatch and Doc::apply check every
// index and range, as they check an OpBatch. Decoders and Batch::from never give two table
// entries the same name, which the checks rely on.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/op.h"

namespace tandem::crdt {

struct Batch {
  struct Bytes {  // a range of `bytes`
    uint32_t off = 0;
    uint32_t len = 0;
  };
  struct Parent {
    uint32_t agent = 0;  // index into `agents`
    uint32_t seq = 0;
  };
  static constexpr uint32_t kNoFormat = UINT32_MAX;
  struct Run {
    uint32_t agent = 0;  // index into `agents`
    uint32_t seq = 0;
    OpKind kind = OpKind::kInsert;
    uint32_t pos = 0;
    uint32_t len = 0;
    Bytes text;              // kInsert: its UTF-8
    uint32_t parents = 0;    // its first event's parents: `parents[parents, parents + nparents)`
    uint32_t nparents = 0;
    uint32_t format = kNoFormat;  // kMark, kBlock: index into `formats`
  };

  std::string bytes;
  std::vector<Bytes> agents;
  std::vector<Run> runs;
  std::vector<Parent> parents;
  std::vector<Format> formats;
  // `bytes` is exactly the one op batch these columns were decoded from (codec::decode_batch's
  // direct reader): what a server logs and rebroadcasts as is when it integrated the batch whole.
  bool encoded = false;

  // The same operations, run for run (each named parent list as OpRun::parents has it).
  static Batch from(const OpBatch& batch);
  // The batches' runs one after another, in one batch: one agent table (each name once), their
  // bytes one after another, the parents their runs name. REQUIRES every batch valid
  // (Doc::ValidateBatch) and, together, fewer than 4 GiB of bytes.
  static Batch join(std::span<const Batch* const> batches);
  OpBatch to_op_batch() const;
  OpRun op_run(size_t i) const;

  std::string_view agent(uint32_t i) const { return view(agents[i]); }
  std::string_view text(const Run& r) const { return view(r.text); }
  std::span<const Parent> parents_of(const Run& r) const { return {parents.data() + r.parents, r.nparents}; }
  std::string_view view(Bytes b) const { return std::string_view(bytes).substr(b.off, b.len); }
  uint64_t events() const {
    uint64_t n = 0;
    for (const auto& r : runs) n += r.len;
    return n;
  }
  bool empty() const { return runs.empty(); }
};

}  // namespace tandem::crdt
