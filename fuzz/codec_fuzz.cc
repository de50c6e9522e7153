// Arbitrary bytes as an op batch, a version and a snapshot: decoding never crashes; what decodes
// re-encodes to bytes that decode to the same value; a decoded batch applied to a replica either
// is refused or leaves the replica consistent; a decoded snapshot loads into a consistent replica.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "fuzz_check.h"

using namespace tandem::crdt;

namespace {
using tandem::fuzz::require;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  codec::DecodeLimits limits;
  limits.max_events = 1u << 20;  // the default lets a replica hold 2^28 unknown characters: too slow here
  // The fast op-batch reader and the generic msgpack path agree on every input.
  auto b = codec::decode_ops(bytes, limits);
  {
    auto generic = codec::decode_ops_generic(bytes, limits);
    require(b.ok() == generic.ok());
    if (b.ok()) require(b->runs == generic->runs);
    if (!b.ok()) require(b.status() == generic.status());
  }
  if (b.ok()) {
    const std::string again = codec::encode_ops(*b);
    auto b2 = codec::decode_ops(again, limits);
    require(b2.ok() && codec::encode_ops(*b2) == again);
    Doc d("fuzz");
    require(d.insert(0, "seed text").ok());
    if (d.apply(*b).ok()) require(d.check_invariants().ok());
  }
  if (auto v = codec::decode_version(bytes, limits); v.ok()) {
    auto v2 = codec::decode_version(codec::encode_version(*v), limits);
    require(v2.ok() && *v2 == *v);
  }
  // load() checks a snapshot whole but builds the op log only when first needed: it must take
  // exactly what the eager from_snapshot takes, and give the same replica.
  auto d = codec::load(bytes, "fuzz", limits);
  auto snap = codec::decode_snapshot(bytes, limits);
  auto eager = snap.ok() ? Doc::from_snapshot(*snap, "fuzz") : Result<Doc>(snap.status());
  require(d.ok() == eager.ok());
  if (d.ok()) {
    require(d->text() == eager->text() && d->version() == eager->version());
    require(d->num_events() == eager->num_events() && d->format_events() == eager->format_events());
    require(d->check_invariants().ok());  // builds the log
    require(d->to_snapshot() == eager->to_snapshot());
    auto again = codec::load(codec::save(*d), "fuzz", limits);
    require(again.ok() && again->text() == d->text());
  } else {
    require(d.status().code() == eager.status().code() && d.status().message() == eager.status().message());
  }
  // load() reads the columns straight into the replica first: that reader takes exactly what the
  // two steps take (load() would hide a wrongful refusal by its second reading).
  auto direct = codec::load_direct(bytes, "fuzz", limits);
  require(direct.ok() == d.ok());
  if (direct.ok()) require(direct->text() == d->text() && direct->version() == d->version());
  return 0;
}
