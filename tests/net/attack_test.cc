// Attacks on a real server over loopback sockets written byte by byte: slowloris on the upgrade,
// and WebSocket framing that RFC 6455 forbids. Each gets its close (or its cut-off) and the
// server keeps serving a normal client. Bounded: a few hundred sockets, a few seconds.
#include <boost/asio.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "support/net_fixtures.h"

using namespace std::chrono_literals;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using tandem::testing::ServerFixture;

namespace {

// Upgrades by hand; returns false if the answer is not 101.
bool upgrade(tcp::socket& s, uint16_t port) {
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  const std::string req =
      "GET /ws/doc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  asio::write(s, asio::buffer(req));
  asio::streambuf buf;
  boost::system::error_code ec;
  asio::read_until(s, buf, "\r\n\r\n", ec);
  if (ec) return false;
  const std::string head(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
  return head.rfind("HTTP/1.1 101", 0) == 0;
}

// One client frame: `first` is FIN/RSV/opcode; masked unless told otherwise; `len` overrides
// the announced payload length.
std::string frame(uint8_t first, const std::string& payload, bool masked = true, int64_t len = -1) {
  const uint64_t n = len < 0 ? payload.size() : static_cast<uint64_t>(len);
  std::string f(1, static_cast<char>(first));
  const uint8_t m = masked ? 0x80 : 0;
  if (n < 126) {
    f += static_cast<char>(m | n);
  } else if (n < 65536) {
    f += static_cast<char>(m | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 255);
  } else {
    f += static_cast<char>(m | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((n >> (8 * i)) & 255);
  }
  const char key[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked) f.append(key, 4);
  for (size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ (masked ? key[i % 4] : 0));
  return f;
}

// Reads until the server's Close frame (its code) or the end of the connection (0).
int close_code(tcp::socket& s, std::chrono::milliseconds within) {
  s.non_blocking(false);
  struct timeval tv {};
  tv.tv_sec = within.count() / 1000;
  tv.tv_usec = (within.count() % 1000) * 1000;
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string in;
  char buf[4096];
  for (;;) {
    boost::system::error_code ec;
    const size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) return 0;
    in.append(buf, n);
    // Server frames are unmasked; skip any that are not Close.
    while (in.size() >= 2) {
      const auto op = static_cast<uint8_t>(in[0]) & 0x0f;
      uint64_t len = static_cast<uint8_t>(in[1]) & 0x7f;
      size_t head = 2;
      if (len == 126) {
        if (in.size() < 4) break;
        len = (static_cast<uint8_t>(in[2]) << 8) | static_cast<uint8_t>(in[3]);
        head = 4;
      } else if (len == 127) {
        if (in.size() < 10) break;
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<uint8_t>(in[2 + i]);
        head = 10;
      }
      if (in.size() < head + len) break;
      if (op == 8) return len >= 2 ? (static_cast<uint8_t>(in[head]) << 8) | static_cast<uint8_t>(in[head + 1]) : 1005;
      in.erase(0, head + len);
    }
  }
}

void check_serving(const ServerFixture& s, const std::string& agent) {
  auto c = tandem::testing::make_client(s.url("doc"), agent);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(c->insert(0, "ok").ok());
  REQUIRE(c->wait_synced(5s));
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
}

}  // namespace

TEST_CASE("attack: slowloris on the upgrade is cut off while a normal client connects at once", "[net][attack]") {
  tandem::net::ServerOptions o;
  o.handshake_timeout = 1000ms;
  ServerFixture s(o);
  asio::io_context ioc;
  std::vector<tcp::socket> slow;
  for (int i = 0; i < 300; ++i) {
    slow.emplace_back(ioc);
    slow.back().connect({asio::ip::make_address("127.0.0.1"), s.port});
    asio::write(slow.back(), asio::buffer(std::string("GET /ws/doc HTTP/1.1\r\n")));
  }
  // While they dribble a header byte every 100 ms, a normal client connects and syncs quickly.
  std::atomic<bool> dribbling{true};
  std::thread dribble([&] {
    while (dribbling) {
      for (auto& sock : slow) {
        boost::system::error_code ec;
        asio::write(sock, asio::buffer("X", 1), ec);
      }
      std::this_thread::sleep_for(100ms);
    }
  });
  check_serving(s, "normal");
  std::this_thread::sleep_for(1500ms);
  dribbling = false;
  dribble.join();
  // Every dribbling connection was closed by the handshake timeout.
  int closed = 0;
  for (auto& sock : slow) {
    sock.non_blocking(true);
    char c;
    boost::system::error_code ec;
    sock.read_some(asio::buffer(&c, 1), ec);
    if (ec && ec != asio::error::would_block) ++closed;
  }
  CHECK(closed == 300);
  check_serving(s, "after");
}

TEST_CASE("attack: RFC 6455 violations get their close code, and nothing else is disturbed", "[net][attack]") {
  tandem::net::ServerOptions o;
  o.max_frame_bytes = 1 << 16;
  ServerFixture s(o);
  struct Case {
    const char* what;
    std::string bytes;
    int code;
  };
  const std::vector<Case> cases = {
      {"an unmasked client frame", frame(0x82, "abc", false), 1002},
      {"reserved bits set", frame(0xF2, "abc"), 1002},
      {"a fragmented control frame (ping without FIN)", frame(0x09, "p"), 1002},
      {"a control frame with more than 125 bytes", frame(0x89, std::string(200, 'p')), 1002},
      {"a continuation with nothing to continue", frame(0x80, "abc"), 1002},
      {"an unknown opcode", frame(0x83, "abc"), 1002},
      {"a close frame with a 1-byte payload", frame(0x88, "x"), 1002},
      {"a message over the size limit", frame(0x82, "", true, (1 << 16) + 1), 1009},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    asio::io_context ioc;
    tcp::socket sock(ioc);
    REQUIRE(upgrade(sock, s.port));
    asio::write(sock, asio::buffer(c.bytes));
    CHECK(close_code(sock, 3000ms) == c.code);
  }
  check_serving(s, "after");
}
