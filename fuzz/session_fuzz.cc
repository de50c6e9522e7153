// Arbitrary message sequences from three clients, fed to the server's own session handler
// (net/src/server/session.h, the code behind every WebSocket) and its rooms, with no sockets: two
// sessions share document "a" (one of them read-only), one is alone on "b". After every message
// the rooms' handlers run. Checked:
//  - nothing crashes, and no exception leaves the handlers (libFuzzer reports one as a crash);
//  - a message the protocol decoder refuses closes its session with kBadMessage;
//  - every session's room accepts it (joins, leaves, reconnects) and unloads when all are gone;
//  - the stored documents stay within the limits and their invariants hold at the end.
// Memory that grows without bound shows as libFuzzer's out-of-memory finding (-rss_limit_mb).
//
// Input: a sequence of [selector][length: 2 bytes][message]. The selector's low 2 bits pick the
// session (3: the first session reconnects as a new one); bit 2 sends the message as a text frame.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "store/memory.h"
#include "sync/protocol.h"
#include "room.h"
#include "session.h"
#include "fuzz_check.h"

using namespace tandem;
using namespace std::chrono_literals;

namespace {

using tandem::fuzz::require;

class FuzzSession final : public net::ClientSession {
 public:
  using ClientSession::ClientSession;
  // As WsSession: nothing is queued once the session is closing.
  void send(net::Frame, uint64_t, bool) override {}
  void close_with(uint16_t code, std::string) override {
    if (!closed.exchange(true)) error = code;
  }
  void close_plain(uint16_t code, std::string) override {
    if (!closed.exchange(true)) error = code;
  }
  uint16_t error = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto docs = store::make_memory_store();
  net::ServerOptions opt;
  opt.max_frame_bytes = 4096;
  opt.max_batch_events = 2000;
  opt.max_held_events = 1000;
  opt.max_doc_chars = 100000;
  opt.max_messages_per_second = 1000000;  // the rate limit has its own test; here it would hide the rest
  opt.room_grace = 0ms;
  opt.log_silent = true;
  opt.threads = 1;  // one io_context, polled below
  auto srv = std::make_unique<net::Server::Impl>(opt, docs.get());

  std::shared_ptr<FuzzSession> live[3];
  auto open = [&](int i) {
    live[i] = std::make_shared<FuzzSession>(*srv, i == 2 ? "b" : "a", "", 0);
    live[i]->read_only = i == 1;
  };
  for (int i = 0; i < 3; ++i) open(i);

  proto::Limits limits;
  limits.max_frame_bytes = opt.max_frame_bytes;
  size_t at = 0;
  while (at + 3 <= size) {
    const uint8_t selector = data[at];
    const size_t n = std::min<size_t>(size - at - 3, (size_t{data[at + 1]} << 8) | data[at + 2]);
    const std::string frame(reinterpret_cast<const char*>(data + at + 3), n);
    at += 3 + n;
    int who = selector & 3;
    if (who == 3) {
      live[0]->leave();
      open(0);
      who = 0;
    }
    FuzzSession& s = *live[who];
    if (s.closed) continue;  // as WsSession: a closing session's messages are dropped
    const bool text = selector & 4;
    s.on_message(frame, !text);
    if (text || !proto::decode(frame, limits).ok()) require(s.closed && s.error == proto::kBadMessage);
    srv->ioc.restart();
    srv->ioc.poll();
  }
  for (auto& s : live) s->leave();
  srv->ioc.restart();
  srv->ioc.run();  // leaves, then the rooms' grace timers (0 ms): the rooms unload

  {
    std::lock_guard<std::mutex> lock(srv->rooms_mu);
    require(srv->rooms.empty());
  }
  for (const char* doc : {"a", "b"}) {
    auto loaded = docs->load(doc, "check", nullptr);
    if (!loaded.ok()) continue;
    require(loaded->check_invariants().ok());
    require(loaded->length() <= opt.max_doc_chars);
  }
  return 0;
}
