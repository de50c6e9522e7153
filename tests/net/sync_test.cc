// A real server on a loopback port and native clients editing one document.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "net/client.h"
#include "net/server.h"
#include "store/memory.h"
#include "storage/store.h"
#include "crdt/codec.h"
#include "crdt/utf8.h"
#include "sync/protocol.h"
#include "support/net_fixtures.h"
#include "support/relayed_deletes.h"
#include "support/temp_dir.h"
#include "support/wrap_store.h"
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
    store = tandem::store::make_memory_store();
    server = std::make_unique<Server>(o, store.get());
    REQUIRE(server->start().ok());
    thread = std::thread([this] { server->run(); });
  }
  ~TestServer() {
    server->stop();
    thread.join();
  }
  std::string url(const std::string& doc) const { return "ws://127.0.0.1:" + std::to_string(server->port()) + "/ws/" + doc; }
  std::unique_ptr<tandem::store::DocStore> store;
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

// Issue 22 through a server: a session writing as two agents (b, and a whose characters it
// deleted) sends what it learned, before b's first insert; the server holds all of it. Then a's
// own client sends a's edits with their text, which wakes a's held runs while b's deletions still
// wait: the server must accept the batch (it used to refuse it with 4422, closing a's client on
// every try). When b's first insert comes, everything is integrated and acknowledged, and a's
// client shows b's text.
TEST_CASE("net: a batch that wakes held characters of unknown text before their deletion is accepted", "[net]") {
  namespace proto = tandem::proto;
  namespace codec = tandem::crdt::codec;
  const tandem::testing::RelayedDeletes scenario;
  TestServer s;
  const uint16_t port = s.server->port();
  auto hello = [](std::vector<std::string> agents) {
    proto::Hello h;
    h.agents = std::move(agents);
    return proto::encode(h);
  };
  auto ops = [](uint64_t id, const tandem::crdt::OpBatch& b) { return proto::encode(proto::Ops{id, codec::encode_ops(b)}); };
  auto next_message = [](tandem::testing::RawWs& ws) {
    auto f = ws.read(10s);
    INFO("close code " << f.close_code);
    REQUIRE_FALSE(f.closed);
    auto m = proto::decode(f.data);
    REQUIRE(m.ok());
    return *m;
  };
  {
    tandem::testing::RawWs relay;
    REQUIRE(relay.connect(port, "/ws/relayed") == 101);
    relay.send(hello({"b", "a"}));
    REQUIRE(std::holds_alternative<proto::Welcome>(next_message(relay)));
    relay.send(ops(1, scenario.relay));
    // Held, so not acknowledged; and not refused.
    auto f = relay.read(300ms);
    CHECK((f.closed && f.close_code == 0));
  }
  // a's client types what a typed; the server has nothing to send it (all of it is held).
  std::atomic<int> errors{0};  // (outlives the client whose callback counts into it)
  auto a = client(s, "relayed", "a");
  a->on_error([&](uint16_t, const std::string&) { ++errors; });
  REQUIRE(a->wait_synced(5s));
  // Its first batch (a:0-1) wakes the held a:2, sent without its text, whose deletion waits.
  REQUIRE(a->insert(0, "\xE4\xB8\x96\xE7\x95\x8C").ok());
  REQUIRE(a->wait_synced(5s));
  CHECK(errors == 0);
  REQUIRE(a->insert(0, "e\xCC\x81").ok());
  REQUIRE(a->wait_synced(5s));
  CHECK(errors == 0);
  CHECK(a->text() == "e\xCC\x81\xE4\xB8\x96\xE7\x95\x8C");
  // b's first insert releases the held deletions.
  tandem::testing::RawWs b;
  REQUIRE(b.connect(port, "/ws/relayed") == 101);
  b.send(hello({"b"}));
  REQUIRE(std::holds_alternative<proto::Welcome>(next_message(b)));
  b.send(ops(7, scenario.b_first));
  bool acked = false;
  for (int i = 0; i < 10 && !acked; ++i) {
    auto m = next_message(b);
    REQUIRE_FALSE(std::holds_alternative<proto::Error>(m));
    if (auto* ack = std::get_if<proto::Ack>(&m)) acked = ack->batch_id == 7;
  }
  CHECK(acked);
  REQUIRE(a->wait_for(scenario.version, 5s));
  CHECK(a->text() == scenario.text);
  CHECK(errors == 0);
  // A client that joins now is sent the whole history (with the deleted characters' text left out)
  // and shows the same.
  auto late = client(s, "relayed", "late");
  REQUIRE(late->wait_for(scenario.version, 5s));
  CHECK(late->text() == scenario.text);
}

TEST_CASE("net: an empty room stays loaded while its appends are on their way to the store", "[net]") {
  // Closed then, the room reopened would load the log without them: a client joining would not
  // see them, and its own appends would overlap theirs in the log.
  tandem::testing::TempDir dir;
  auto sqlite = tandem::storage::Store::open({dir.file("t.db")});
  REQUIRE(sqlite.ok());
  tandem::testing::GateStore gate(**sqlite);
  ServerOptions o;
  o.room_grace = 50ms;
  tandem::testing::ServerFixture s(o, &gate);
  auto open_documents = [&] { return tandem::testing::metric_value(s.server->metrics(), "tandem_open_documents"); };
  {
    auto a = tandem::testing::make_client(s.url("notes"), "a");
    REQUIRE(a->wait_synced(5s));
    gate.set_open(false);
    REQUIRE(a->insert(0, "kept").ok());
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (gate.held() == 0 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(5ms);
    REQUIRE(gate.held() == 1);
    a->stop();
  }
  std::this_thread::sleep_for(400ms);  // eight graces
  CHECK(open_documents() == 1);
  auto b = tandem::testing::make_client(s.url("notes"), "b");
  REQUIRE(b->wait_synced(5s));
  // (Synced means holding what is durable; what the room holds besides comes with the WELCOME.)
  for (const auto end = std::chrono::steady_clock::now() + 5s; b->text() != "kept" && std::chrono::steady_clock::now() < end;) {
    std::this_thread::sleep_for(5ms);
  }
  CHECK(b->text() == "kept");
  gate.set_open(true);
  REQUIRE(b->insert(4, "!").ok());
  REQUIRE(b->wait_synced(5s));
  b->stop();
  // With nothing left on its way, the room closes after its grace.
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (open_documents() != 0 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(20ms);
  CHECK(open_documents() == 0);
  auto loaded = (*sqlite)->load("notes", "reader", nullptr);
  REQUIRE(loaded.ok());
  CHECK(loaded->text() == "kept!");
}
