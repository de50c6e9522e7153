// The binary codec: op batches, version vectors and snapshots as msgpack (see crdt/FORMAT.md).
//
// Every decoder treats its input as hostile: msgpack is unpacked with explicit limits sized to
// the input (an array header announcing more elements than there are bytes fails with a size
// error before anything is allocated), every field is type- and range-checked, and no decoder
// reads past the end of its buffer. Errors: Corruption for malformed bytes, NotSupported for a
// format version this build does not read, ResourceExhausted past DecodeLimits.
//
// Encoders are deterministic: equal values give equal bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "crdt/batch.h"
#include "crdt/doc.h"
#include "crdt/op.h"
#include "crdt/status.h"
#include "crdt/version.h"

namespace tandem::crdt::codec {

// Format 2 adds mark and block events (OpKind::kMark, kBlock). Encoders write format 1 whenever
// there is none, so plain documents keep their bytes; decoders read both.
inline constexpr uint32_t kOpsFormat = 1;
inline constexpr uint32_t kOpsFormatRich = 2;
inline constexpr uint32_t kSnapshotFormat = 1;
inline constexpr uint32_t kSnapshotFormatRich = 2;

struct DecodeLimits {
  size_t max_bytes = size_t{256} << 20;  // input size
  uint32_t max_runs = 1u << 22;
  uint32_t max_agents = 1u << 16;
  uint32_t max_parents = 1024;           // per run
  // Events one batch (or batch sequence) or snapshot may hold. Characters sent without their
  // text (OpKind::kInsertDeleted) take a few bytes on the wire whatever their number, but a
  // replica holds a byte of each: without this bound, ten bytes could ask for gigabytes.
  uint64_t max_events = uint64_t{1} << 28;
};

std::string encode_ops(const OpBatch& batch);
Result<OpBatch> decode_ops(std::string_view bytes, const DecodeLimits& limits = {});
// The same through a generic msgpack parse, which decode_ops only uses for what its own reader
// does not take; for tests and fuzzers, which check that both agree.
Result<OpBatch> decode_ops_generic(std::string_view bytes, const DecodeLimits& limits = {});
// One or more encode_ops outputs written one after the other, as one batch of all their runs in
// order (the store's log rows hold such sequences: joining them needs no decoding).
Result<OpBatch> decode_ops_sequence(std::string_view bytes, const DecodeLimits& limits = {});

// The same bytes as columns (batch.h), decoded straight into them: the batch keeps a copy of the
// bytes it was read from, and its names and texts are ranges of it. Accepts what decode_ops
// accepts, with the same errors.
Result<Batch> decode_batch(std::string_view bytes, const DecodeLimits& limits = {});
Result<Batch> decode_batch_sequence(std::string_view bytes, const DecodeLimits& limits = {});

// Encoded operations as a log row holds them and an OPS message carries them (one or more
// encode_ops outputs one after the other), with what a store counts of them.
struct EncodedOps {
  std::string bytes;
  uint64_t events = 0;
  std::vector<std::pair<std::string, uint64_t>> agents;  // the events of each agent (each named once)
};
EncodedOps encode_counted(const OpBatch& batch);
// A batch's own bytes when they are its encoding (Batch::encoded; taken from it), else encoded.
EncodedOps encode_counted(Batch&& batch);

std::string encode_version(const Version& version);
Result<Version> decode_version(std::string_view bytes, const DecodeLimits& limits = {});

std::string encode_snapshot(const SnapshotData& data);
Result<SnapshotData> decode_snapshot(std::string_view bytes, const DecodeLimits& limits = {});

// encode_snapshot(doc.to_snapshot()), and Doc::from_snapshot_lazy of decode_snapshot(bytes):
// the replica is checked whole, and builds its op log from a copy of `bytes` when first needed.
// load() reads the columns straight into the replica (load_direct, with no SnapshotData); when
// that refuses the bytes, the error is the one decode_snapshot and from_snapshot_lazy give.
std::string save(const Doc& doc);
Result<Doc> load(std::string_view bytes, std::string_view agent, const DecodeLimits& limits = {});
// load() without that second reading of bad bytes: it refuses exactly what load() refuses, but
// may name another fault. For tests and fuzzers that check the direct reader on its own.
Result<Doc> load_direct(std::string_view bytes, std::string_view agent, const DecodeLimits& limits = {});

}  // namespace tandem::crdt::codec
