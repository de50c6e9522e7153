// Arbitrary bytes as an op batch in columns (crdt/batch.h): codec::decode_batch takes exactly
// what the generic msgpack reader (decode_ops_generic) takes, with the same errors, and gives the
// same runs; a sequence decodes as its batches one by one (decode_ops_sequence) do;
// a replica merging the columns ends as one merging the runs (same result, text and version,
// consistent). Bytes starting with '#' instead fill a Batch's fields directly, indices and ranges
// unchecked: applying it is refused or leaves the replica consistent, never reads out of bounds.
// Either kind, between two good batches in a group, is taken or refused as one at a time.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "crdt/batch.h"
#include "crdt/codec.h"
#include "crdt/doc.h"
#include "fuzz_check.h"

using namespace tandem::crdt;

namespace {
using tandem::fuzz::require;

Doc seeded(const char* agent) {
  Doc d(agent);
  require(d.insert(0, "seed text").ok());
  return d;
}

// Same outcome of two merges: both refused alike, or the same patches, text and version.
void same_merge(const Result<std::vector<Patch>>& a, const Doc& da, const Result<std::vector<Patch>>& b, const Doc& db) {
  require(a.ok() == b.ok());
  if (!a.ok()) {
    require(a.status() == b.status());
    return;
  }
  require(*a == *b && da.text() == db.text() && da.version() == db.version());
  require(da.check_invariants().ok());
}

// `b` in a group between two good batches (Doc::integrate_group): each refused or taken as
// integrate() one at a time does, with the same end.
void same_as_one_at_a_time(const Batch& b) {
  Doc other("other");
  require(other.insert(0, "ab").ok());
  const Batch good = Batch::from(other.ops_since({}));
  Doc one = seeded("fuzz"), grouped = seeded("fuzz");
  const std::vector<Status> expect{one.integrate(good), one.integrate(b), one.integrate(good)};
  const Batch* group[] = {&good, &b, &good};
  require(grouped.integrate_group(group) == expect);
  require(grouped.text() == one.text() && grouped.version() == one.version());
  require(grouped.pending_events() == one.pending_events() && grouped.check_invariants().ok());
}

// Reads little-endian fields from the fuzzer's bytes, zeros past the end.
struct Fields {
  std::string_view in;
  uint32_t u32() {
    uint32_t v = 0;
    const size_t n = std::min<size_t>(4, in.size());
    std::memcpy(&v, in.data(), n);
    in.remove_prefix(n);
    return v;
  }
  uint32_t small(uint32_t bound) { return u32() % bound; }
};

void raw_batch(std::string_view bytes) {
  Fields f{bytes};
  Batch b;
  b.bytes = std::string(f.in.substr(0, f.small(64)));
  const uint32_t nagents = f.small(4), nruns = f.small(6), nparents = f.small(6);
  for (uint32_t i = 0; i < nagents; ++i) b.agents.push_back({f.small(80), f.small(80)});
  for (uint32_t i = 0; i < nparents; ++i) b.parents.push_back({f.small(5), f.u32() % 16});
  for (uint32_t i = 0; i < nruns; ++i) {
    Batch::Run r;
    r.agent = f.small(5);
    r.seq = f.u32() % 16;
    r.kind = static_cast<OpKind>(f.small(7));
    r.pos = f.u32() % 24;
    r.len = f.u32() % 8;
    r.text = {f.small(80), f.small(80)};
    r.parents = f.small(8);
    r.nparents = f.small(4);
    r.format = f.small(3) == 0 ? Batch::kNoFormat : f.small(2);
    b.runs.push_back(r);
  }
  if (f.small(2)) b.formats.push_back({f.small(30), "bold", "", false});
  Doc d = seeded("fuzz");
  const Status form = Doc::ValidateBatch(b);
  auto r = d.apply(b);
  if (!form.ok()) require(!r.ok() && r.status() == form);
  if (r.ok()) require(d.check_invariants().ok());
  same_as_one_at_a_time(b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (!bytes.empty() && bytes[0] == '#') {
    raw_batch(bytes.substr(1));
    return 0;
  }
  codec::DecodeLimits limits;
  limits.max_events = 1u << 20;
  // (decode_ops reads through the columns too: the generic msgpack reader is the reference.)
  auto runs = codec::decode_ops_generic(bytes, limits);
  auto cols = codec::decode_batch(bytes, limits);
  require(runs.ok() == cols.ok());
  if (!runs.ok()) {
    require(runs.status() == cols.status());
  } else {
    require(cols->to_op_batch() == *runs);
    require(Batch::from(*runs).to_op_batch() == *runs);
    Doc a = seeded("fuzz"), b = seeded("fuzz");
    auto ra = a.apply(*cols);
    auto rb = b.apply(*runs);
    same_merge(ra, a, rb, b);
    if (ra.ok()) same_merge(a.apply(*cols), a, b.apply(*runs), b);  // duplicates change nothing
    same_as_one_at_a_time(*cols);
  }
  // As a store's log row of several batches: the bytes as they are, and twice over.
  for (const std::string& row : {std::string(bytes), std::string(bytes) + std::string(bytes)}) {
    auto seq_runs = codec::decode_ops_sequence(row, limits);
    auto seq_cols = codec::decode_batch_sequence(row, limits);
    require(seq_runs.ok() == seq_cols.ok());
    if (seq_runs.ok()) {
      require(seq_cols->to_op_batch() == *seq_runs);
      Doc a = seeded("fuzz"), b = seeded("fuzz");
      auto ra = a.apply(*seq_cols);
      auto rb = b.apply(*seq_runs);
      same_merge(ra, a, rb, b);
    } else {
      require(seq_runs.status() == seq_cols.status());
    }
  }
  return 0;
}
