// The native client's life beyond syncing: refused for good (it stops at once and says why),
// stopped or handed a token while its upgrade is unanswered, a fresh token handed to it while it runs, its unsent edits carried over a restart; and the
// Peritext paper's examples made by two clients offline, then merged through a real server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "net/auth.h"
#include "net/client.h"
#include "support/net_fixtures.h"
#include "support/peritext_cases.h"

using namespace std::chrono_literals;
using tandem::net::Client;
using tandem::net::ClientOptions;
namespace proto = tandem::proto;

namespace {

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string token(const std::string& sub, const std::string& pattern, bool write, int64_t expires) {
  return tandem::net::sign_token({sub, {pattern}, write, expires}, "s3cret");
}

std::unique_ptr<Client> open(const std::string& url, const std::string& tok, const std::string& agent = "") {
  return tandem::testing::make_client(url, agent, tok);
}

// A listening socket on 127.0.0.1 at a free port, for a peer the test plays by hand.
int listen_loopback(uint16_t* port) {
  const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(ls >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(ls, 64) == 0);
  socklen_t alen = sizeof a;
  REQUIRE(::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &alen) == 0);
  *port = ntohs(a.sin_port);
  return ls;
}

// Reads an HTTP request's head from `fd` (what came before the connection ended, if it did).
std::string read_request(int fd) {
  char buf[4096];
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    request.append(buf, static_cast<size_t>(n));
  }
  return request;
}

}  // namespace

TEST_CASE("client: a refused client stops waiting at once and says why", "[net][client][auth]") {
  tandem::net::ServerOptions o;
  o.auth_secret = "s3cret";
  tandem::testing::ServerFixture s(o);
  struct Case {
    std::string token;
    uint16_t code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"", proto::kUnauthorized, "a token is required"},
      {token("alice", "*", true, now_s() - 5), proto::kUnauthorized, "token expired"},
      {token("alice", "other-*", true, now_s() + 600), proto::kForbidden, "does not grant document 'notes'"},
  };
  for (const auto& c : cases) {
    INFO(c.says);
    auto client = open(s.url("notes"), c.token);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(client->wait_synced(20s));
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);  // not the whole timeout
    auto why = client->refusal();
    REQUIRE(why);
    CHECK(why->first == c.code);
    CHECK_THAT(why->second, Catch::Contains(c.says));
  }
  // A bad URL is a refusal too.
  ClientOptions bad;
  bad.url = "http://127.0.0.1/notes";
  Client b(bad);
  b.start();
  CHECK_FALSE(b.wait_synced(20s));
  REQUIRE(b.refusal());
  CHECK(b.refusal()->first == 0);
}

TEST_CASE("client: a fresh token lets a refused client in, and carries a live one past the old one's expiry",
          "[net][client][auth]") {
  tandem::net::ServerOptions o;
  o.auth_secret = "s3cret";
  tandem::testing::ServerFixture s(o);
  // Refused for an expired token; typing goes on offline; the new token sends it.
  auto c = open(s.url("notes"), token("alice", "*", true, now_s() - 5), "alice/laptop");
  CHECK_FALSE(c->wait_synced(10s));
  REQUIRE(c->refusal());
  REQUIRE(c->insert(0, "typed while refused").ok());
  CHECK(c->set_token(token("bob", "*", true, now_s() + 600)).code() == tandem::crdt::Status::Code::kInvalidArgument);
  REQUIRE(c->set_token(token("alice", "*", true, now_s() + 600)).ok());
  REQUIRE(c->wait_synced(10s));
  CHECK_FALSE(c->refusal());
  // A session whose token runs out is closed with 4401 ...
  std::atomic<int> expired{0};  // (outlives the client whose callback counts into it)
  auto short_lived = open(s.url("notes"), token("carol", "*", true, now_s() + 2), "carol/1");
  REQUIRE(short_lived->wait_synced(10s));
  short_lived->on_error([&](uint16_t code, const std::string& m) {
    if (code == proto::kUnauthorized && m == "the access token expired") ++expired;
  });
  std::this_thread::sleep_for(3500ms);
  CHECK(expired == 1);
  REQUIRE(short_lived->refusal());
  CHECK(short_lived->refusal()->first == proto::kUnauthorized);
  // ... unless the app hands it a new one first: it moves to it at once and stays.
  auto renewed = open(s.url("notes"), token("dave", "*", true, now_s() + 2), "dave/1");
  REQUIRE(renewed->wait_synced(10s));
  REQUIRE(renewed->set_token(token("dave", "*", true, now_s() + 600)).ok());
  std::this_thread::sleep_for(3500ms);
  CHECK_FALSE(renewed->refusal());
  REQUIRE(renewed->insert(0, "still here ").ok());
  REQUIRE(renewed->wait_synced(10s));
  CHECK(renewed->text() == "still here typed while refused");
}

TEST_CASE("client: unsent edits survive the client through save and Restore", "[net][client]") {
  tandem::testing::ServerFixture s;
  // The server's port, closed: a client that cannot reach it edits offline.
  std::string state;
  {
    ClientOptions o;
    o.url = "ws://127.0.0.1:9/ws/list";
    o.agent = "phone";
    o.min_backoff = 20ms;
    Client offline(o);
    offline.start();
    REQUIRE(offline.insert(0, "milk\n").ok());
    REQUIRE(offline.insert(5, "eggs\n").ok());
    CHECK(offline.unacknowledged() == 10);
    state = offline.save();
  }  // the process ends
  ClientOptions o;
  o.url = s.url("list");
  o.min_backoff = 20ms;
  auto restored = Client::Restore(o, state);
  REQUIRE(restored.ok());
  Client& c = **restored;
  CHECK(c.agent() != "phone");  // a new agent; the saved one's edits go as its own
  CHECK(c.agent().rfind("client-", 0) == 0);
  CHECK(c.text() == "milk\neggs\n");
  CHECK(c.unacknowledged() == 10);
  c.start();
  REQUIRE(c.wait_synced(10s));
  CHECK(c.unacknowledged() == 0);
  auto reader = tandem::testing::make_client(s.url("list"), "reader");
  REQUIRE(reader->wait_for(c.version(), 10s));
  CHECK(reader->text() == "milk\neggs\n");
  // Saved after the acknowledgement, restored again: nothing is sent twice, and it goes on.
  auto again = Client::Restore(o, c.save());
  REQUIRE(again.ok());
  CHECK((*again)->unacknowledged() == 0);
  // Bad input: not save()'s bytes, cut short, or an agent that already wrote in it.
  CHECK(Client::Restore(o, "junk").status().code() == tandem::crdt::Status::Code::kCorruption);
  CHECK(Client::Restore(o, state.substr(0, state.size() / 2)).status().code() == tandem::crdt::Status::Code::kCorruption);
  ClientOptions same = o;
  same.agent = "phone";
  CHECK(Client::Restore(same, state).status().code() == tandem::crdt::Status::Code::kInvalidArgument);
  same.agent = "laptop";
  CHECK(Client::Restore(same, state).ok());
}

TEST_CASE("client: a save older than what the client sent restores without reusing an id", "[net][client]") {
  tandem::testing::ServerFixture s;
  ClientOptions o;
  o.url = s.url("stale");
  o.agent = "tablet";
  o.min_backoff = 20ms;
  std::string old_state;
  {
    Client c(o);
    c.start();
    REQUIRE(c.insert(0, "one ").ok());
    REQUIRE(c.wait_synced(10s));
    old_state = c.save();
    // Sent and acknowledged after the save: the save does not know of it.
    REQUIRE(c.insert(4, "two ").ok());
    REQUIRE(c.wait_synced(10s));
  }  // the process dies; only the old save survives
  o.agent.clear();
  auto restored = Client::Restore(o, old_state);
  REQUIRE(restored.ok());
  Client& c = **restored;
  CHECK(c.text() == "one ");
  // Typed before reconnecting: under the old agent it would take the id of "two " and be lost.
  REQUIRE(c.insert(4, "three").ok());
  c.start();
  REQUIRE(c.wait_synced(10s));
  auto reader = tandem::testing::make_client(s.url("stale"), "reader");
  REQUIRE(reader->wait_for(c.version(), 10s));
  CHECK(reader->text() == c.text());
  CHECK(c.text().find("two ") != std::string::npos);
  CHECK(c.text().find("three") != std::string::npos);
}

TEST_CASE("client: the Peritext examples, made offline by two clients, merge the same through the server",
          "[net][client][rich][peritext]") {
  tandem::testing::ServerFixture s;
  int n = 0;
  for (const auto& c : tandem::testing::peritext_cases()) {
    DYNAMIC_SECTION(c.name) {
      const std::string doc = "peritext-" + std::to_string(n);
      auto a = tandem::testing::make_client(s.url(doc), "a");
      auto b = tandem::testing::make_client(s.url(doc), "b");
      tandem::testing::EditorOf<Client> ea(*a), eb(*b);
      REQUIRE(a->insert(0, c.base).ok());
      if (c.shared) c.shared(ea);
      REQUIRE(a->wait_synced(10s));
      REQUIRE(b->wait_for(a->version(), 10s));
      // Both offline: their edits are concurrent, and reach the server (and each other) only
      // when they reconnect, b first.
      a->stop();
      b->stop();
      c.on_a(ea);
      c.on_b(eb);
      b->start();
      REQUIRE(b->wait_synced(10s));
      a->start();
      REQUIRE(a->wait_synced(10s));
      REQUIRE(b->wait_for(a->version(), 10s));
      REQUIRE(a->wait_for(b->version(), 10s));
      auto third = tandem::testing::make_client(s.url(doc), "c");
      REQUIRE(third->wait_for(a->version(), 10s));
      for (const Client* r : {a.get(), b.get(), third.get()}) {
        INFO("replica " << r->agent());
        CHECK(tandem::testing::render_spans(r->text(), r->spans()) == c.spans);
        if (!c.blocks.empty()) CHECK(tandem::testing::render_blocks(r->blocks()) == c.blocks);
      }
    }
    ++n;
  }
}

TEST_CASE("client: stopped or handed a token while the server has not answered its upgrade, it hangs up at once",
          "[net][client]") {
  // A listener that takes the connection and the upgrade request and never answers, as a node
  // does that is too busy or half dead behind a balancer. (Closing politely then meant a close
  // frame written while the handshake still owned the socket: Beast asserts on it.)
  uint16_t port = 0;
  const int ls = listen_loopback(&port);
  const std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/ws/notes";
  // Accepts one connection, reads its upgrade request, says so, then reports how long after that
  // the client hung up (-1: not within 5 s).
  auto silent_peer = [ls](std::promise<void>& upgrade_read) {
    const int fd = ::accept(ls, nullptr, nullptr);
    if (fd < 0) return -2;
    read_request(fd);
    upgrade_read.set_value();
    const auto t0 = std::chrono::steady_clock::now();
    int ms = -1;
    pollfd p{fd, POLLIN, 0};
    char buf[4096];
    while (::poll(&p, 1, 5000) > 0) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
        break;
      }
      // Anything written here after the request would be the bug's close frame: keep reading.
    }
    ::close(fd);
    return ms;
  };
  ClientOptions o;
  o.url = url;
  o.agent = "waiting";
  o.connect_timeout = 30s;  // the handshake's own timeout must not be what ends it
  o.min_backoff = 20ms;
  o.max_backoff = 50ms;

  // (Catch runs the case once per section, each time through this part first.)
  std::promise<void> upgrade_read;
  auto peer = std::async(std::launch::async, silent_peer, std::ref(upgrade_read));
  auto c = std::make_unique<Client>(o);
  c->start();
  REQUIRE(upgrade_read.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(c->state() != tandem::net::ClientState::kConnected);
  auto hung_up_at_once = [&] {
    const int ms = peer.get();
    CHECK(ms >= 0);
    CHECK(ms < 2000);
  };

  SECTION("stopped") {
    c->stop();
    hung_up_at_once();
    CHECK(c->state() == tandem::net::ClientState::kOffline);
  }
  SECTION("handed a token: it hangs up and tries again with the token") {
    REQUIRE(c->set_token("t0ken").ok());
    hung_up_at_once();
    // The next attempt carries the token.
    const int fd = ::accept(ls, nullptr, nullptr);
    REQUIRE(fd >= 0);
    CHECK_THAT(read_request(fd), Catch::Contains("token=t0ken"));
    c->stop();
    ::close(fd);
  }
  ::close(ls);
}

TEST_CASE("client: its retries follow the backoff it was given", "[net][client]") {
  // A listener that hangs up on every connection: each accept is one attempt of the client's.
  uint16_t port = 0;
  const int ls = listen_loopback(&port);
  ClientOptions o;
  o.url = "ws://127.0.0.1:" + std::to_string(port) + "/ws/notes";
  o.agent = "retrying";
  o.min_backoff = 10ms;
  o.max_backoff = 40ms;
  auto c = std::make_unique<Client>(o);
  c->start();
  // The default backoff (100 ms, doubling) makes 5 attempts in 2 s; this one some 50.
  int attempts = 0;
  const auto end = std::chrono::steady_clock::now() + 2s;
  pollfd p{ls, POLLIN, 0};
  while (std::chrono::steady_clock::now() < end) {
    if (::poll(&p, 1, 100) <= 0) continue;
    const int fd = ::accept(ls, nullptr, nullptr);
    if (fd < 0) continue;
    ++attempts;
    ::close(fd);
  }
  c->stop();
  ::close(ls);
  INFO(attempts << " attempts in 2 s");
  CHECK(attempts >= 12);
}
