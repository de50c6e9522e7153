// A sequence of frames (each: 2 length bytes, then the frame) decoded as the server decodes
// client messages: never crashes, every refusal is an error value, and a HELLO or OPS that
// decodes re-encodes to a frame that decodes the same way. OPS batches are then checked as the
// session checks them (Doc::ValidateBatch) and applied to one replica, as the room would.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "sync/protocol.h"
#include "fuzz_check.h"

using namespace tandem;

namespace {
using tandem::fuzz::require;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  crdt::Doc room("server");
  crdt::DocLimits dl;
  dl.max_pending_events = 1000;
  dl.max_pending_runs = 1000;
  dl.max_length = 100000;
  room.set_limits(dl);
  proto::Limits limits;
  limits.max_frame_bytes = 4096;
  size_t at = 0;
  while (at + 2 <= size) {
    const size_t n = std::min<size_t>(size - at - 2, (size_t{data[at]} << 8) | data[at + 1]);
    const std::string_view frame(reinterpret_cast<const char*>(data + at + 2), n);
    at += 2 + n;
    auto m = proto::decode(frame, limits);
    if (!m.ok()) continue;
    const std::string again = proto::encode(*m);
    auto m2 = proto::decode(again, limits);
    require(m2.ok() && proto::encode(*m2) == again && m2->index() == m->index());
    if (const auto* ops = std::get_if<proto::Ops>(&*m)) {
      auto batch = crdt::codec::decode_ops(ops->encoded);
      if (!batch.ok() || !crdt::Doc::ValidateBatch(*batch).ok()) continue;
      if (room.apply(*batch).ok()) require(room.check_invariants().ok());
    }
  }
  return 0;
}
