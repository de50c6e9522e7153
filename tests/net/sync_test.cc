// A real server on a loopback port and native clients editing one document.
#include <catch2/catch.hpp>
#include <thread>

#include "net/client.h"
#include "net/server.h"
#include "crdt/utf8.h"
#include "support/test_threads.h"
#include "support/random_edits.h"

using namespace std::chrono_literals;
using tandem::net::Client;
using tandem::net::ClientOptions;
using tandem::net::Server;
using tandem::net::ServerOptions;
using tandem::testing::Rng;

namespace {

// A server with an in-memory store, running on its own threads.
struct TestServer {
  explicit TestServer(ServerOptions o = {}) {
    o.port = 0;
    o.threads = tandem::testing::test_threads();
    o.log_quiet = true;
    store = tandem::net::make_memory_store();
    server = std::make_unique<Server>(o, store.get());
    REQUIRE(server->start().ok());
    thread = std::thread([this] { server->run(); });
  }
  ~TestServer() {
    server->stop();
    thread.join();
  }
  std::string url(const std::string& doc) const { return "ws://127.0.0.1:" + std::to_string(server->port()) + "/ws/" + doc; }
  std::unique_ptr<tandem::net::DocStore> store;
  std::unique_ptr<Server> server;
  std::thread thread;
};

std::unique_ptr<Client> client(const TestServer& s, const std::string& doc, const std::string& agent) {
  ClientOptions o;
  o.url = s.url(doc);
  o.agent = agent;
  o.min_backoff = 20ms;
  o.max_backoff = 200ms;
  auto c = std::make_unique<Client>(o);
  c->start();
  return c;
}

}  // namespace

TEST_CASE("net: two clients edit one document and converge", "[net]") {
  TestServer s;
  auto a = client(s, "doc1", "alice");
  auto b = client(s, "doc1", "bob");
  REQUIRE(a->wait_synced(5s));
  REQUIRE(b->wait_synced(5s));
  REQUIRE(a->insert(0, "hello").ok());
  REQUIRE(a->wait_synced(5s));
  REQUIRE(b->wait_for(a->version(), 5s));
  CHECK(b->text() == "hello");
  REQUIRE(b->insert(5, " world").ok());
  REQUIRE(b->wait_synced(5s));
  REQUIRE(a->wait_for(b->version(), 5s));
  CHECK(a->text() == "hello world");
}

TEST_CASE("net: clients with random edits and disconnects converge", "[net]") {
  TestServer s;
  Rng rng(11);
  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < 5; ++i) {
    std::string name = "c";
    name.append(std::to_string(i));
    cs.push_back(client(s, "shared", name));
  }
  for (int step = 0; step < 300; ++step) {
    auto& c = *cs[rng.below(cs.size())];
    if (rng.chance(0.05)) {
      c.drop_connection();
    } else {
      // The replica may have changed under us (remote edits): positions are clamped by length.
      const uint32_t len = static_cast<uint32_t>(tandem::crdt::utf8::count_code_points(c.text()));
      if (len > 0 && rng.chance(0.3)) {
        const uint32_t pos = static_cast<uint32_t>(rng.below(len));
        (void)c.remove(pos, 1);
      } else {
        (void)c.insert(static_cast<uint32_t>(rng.below(len + 1)), tandem::testing::random_text(rng, 1 + rng.below(3)));
      }
    }
    if (step % 20 == 0) std::this_thread::sleep_for(5ms);
  }
  for (auto& c : cs) REQUIRE(c->wait_synced(10s));
  tandem::crdt::Version all;
  for (auto& c : cs) all.merge(c->version());
  for (auto& c : cs) REQUIRE(c->wait_for(all, 10s));
  for (auto& c : cs) CHECK(c->text() == cs[0]->text());
}
