// Every kind of bad input gets its error and close, leaves the server serving the others, and
// persists nothing. Real server, real SQLite file, real sockets on 127.0.0.1.
#include <catch2/catch.hpp>
#include <functional>
#include <stdexcept>

#include "crdt/codec.h"
#include "crdt/utf8.h"
#include "net/auth.h"
#include "support/net_fixtures.h"
#include "support/wrap_store.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;
using tandem::crdt::OpBatch;
using tandem::crdt::OpId;
using tandem::crdt::OpKind;
using tandem::crdt::OpRun;
namespace proto = tandem::proto;
namespace codec = tandem::crdt::codec;
using tandem::testing::RawWs;
using tandem::testing::ServerFixture;

namespace {

std::string hello(const std::string& agent, tandem::crdt::Version v = {}, uint32_t version = proto::kProtocolVersion) {
  proto::Hello h;
  h.version = version;
  h.agents = {agent};
  h.doc_version = std::move(v);
  return proto::encode(h);
}

std::string ops_frame(const OpBatch& b, uint64_t id = 1) { return proto::encode(proto::Ops{id, codec::encode_ops(b)}); }

OpRun insert_run(const std::string& agent, uint32_t seq, std::vector<OpId> parents, uint32_t pos, std::string text) {
  OpRun r;
  r.agent = agent;
  r.seq = seq;
  r.parents = std::move(parents);
  r.kind = OpKind::kInsert;
  r.pos = pos;
  r.content = std::move(text);
  r.len = static_cast<uint32_t>(tandem::crdt::utf8::count_code_points(r.content));
  return r;
}

using Wrap = std::function<std::unique_ptr<tandem::store::DocStore>(tandem::store::DocStore&)>;

struct Env {
  // wrap: puts another DocStore between the server and the SQLite store.
  explicit Env(tandem::net::ServerOptions o = {}, const Wrap& wrap = {}) {
    tandem::storage::StoreOptions so;
    so.path = tmp.file("t.db");
    auto s = tandem::storage::Store::open(so);
    REQUIRE(s.ok());
    store = std::move(*s);
    if (wrap) wrapper = wrap(*store);
    server.emplace(o, wrapper ? wrapper.get() : store.get());
    good = tandem::testing::make_client(server->url("doc"), "good");
    REQUIRE(good->insert(0, "base").ok());
    REQUIRE(good->wait_synced(5s));
  }
  uint64_t logged() {
    (void)store->sync();  // whatever the server handed over has been written by now
    return store->logged_events("doc").ok() ? *store->logged_events("doc") : 0;
  }
  // The good client still works and others see its edits.
  void check_still_serving() {
    const uint64_t before = logged();
    REQUIRE(good->insert(0, "+").ok());
    REQUIRE(good->wait_synced(5s));
    auto watcher = tandem::testing::make_client(server->url("doc"), "watcher");
    REQUIRE(watcher->wait_for(good->version(), 5s));
    CHECK(watcher->text() == good->text());
    CHECK(logged() == before + 1);
  }
  tandem::testing::TempDir tmp;
  std::unique_ptr<tandem::storage::Store> store;
  std::unique_ptr<tandem::store::DocStore> wrapper;
  std::optional<ServerFixture> server;
  std::unique_ptr<tandem::net::Client> good;
};

}  // namespace

TEST_CASE("hostile: malformed messages get an error and a close, and change nothing", "[net][hostile]") {
  struct Case {
    const char* what;
    std::function<std::string()> frame;
    bool after_hello;
    uint16_t code;
    bool text = false;
  };
  const std::string deep = std::string(40, '\x91') + '\x01';
  const std::vector<Case> cases = {
      {"not msgpack", [] { return std::string("\xc1\xc1", 2); }, true, proto::kBadMessage},
      {"truncated", [] { return hello("x").substr(0, 5); }, false, proto::kBadMessage},
      {"4-billion-element header", [] { return std::string("\xdd\xff\xff\xff\xff", 5); }, true, proto::kBadMessage},
      {"deep nesting", [deep] { return deep; }, true, proto::kBadMessage},
      {"unknown message type", [] { return std::string("\x91\x63", 2); }, true, proto::kBadMessage},
      {"a text frame", [] { return std::string("hello"); }, true, proto::kBadMessage, true},
      {"OPS before HELLO", [] { return ops_frame(OpBatch{{insert_run("raw", 0, {}, 0, "x")}}); }, false, proto::kBadMessage},
      {"wrong protocol version", [] { return hello("raw", {}, 4); }, false, proto::kUnsupportedVersion},
      {"ops for an agent it does not own",
       [] { return ops_frame(OpBatch{{insert_run("good", 1000, {{"good", 999}}, 0, "x")}}); }, true, proto::kForbidden},
      {"invalid UTF-8", [] {
         OpRun r = insert_run("raw", 0, {}, 0, "ab");
         r.content = "\xC3\x28";
         return ops_frame(OpBatch{{r}});
       }, true, proto::kBadMessage},
      {"a position past the end", [] { return ops_frame(OpBatch{{insert_run("raw", 0, {}, 99, "x")}}); }, true,
       proto::kRejected},
      {"a version far in the future", [] {
         tandem::crdt::Version v;
         v.advance("someone-else", 2000000000);
         return hello("raw", v);
       }, false, proto::kRejected},
      {"HELLO twice", [] { return hello("raw"); }, true, proto::kBadMessage},
      {"an ACK from a client", [] { return proto::encode(proto::Ack{1}); }, true, proto::kBadMessage},
  };
  Env env;
  for (const auto& c : cases) {
    INFO(c.what);
    const uint64_t before = env.logged();
    RawWs raw;
    REQUIRE(raw.connect(env.server->port, "/ws/doc") == 101);
    if (c.after_hello) {
      raw.send(hello("raw"));
      REQUIRE(raw.read().binary);  // WELCOME
    }
    raw.send(c.frame(), !c.text);
    auto [error, close] = raw.read_until_closed();
    CHECK(error == c.code);
    CHECK(close == c.code);
    CHECK(env.logged() == before);
  }
  env.check_still_serving();
}

TEST_CASE("hostile: an oversized frame is closed with 1009", "[net][hostile]") {
  tandem::net::ServerOptions o;
  o.max_frame_bytes = 4096;
  Env env(o);
  RawWs raw;
  REQUIRE(raw.connect(env.server->port, "/ws/doc") == 101);
  raw.send(hello("raw"));
  REQUIRE(raw.read().binary);
  raw.send(ops_frame(OpBatch{{insert_run("raw", 0, {}, 0, std::string(10000, 'x'))}}));
  auto [error, close] = raw.read_until_closed();
  // The server sends close 1009 without reading the rest of the frame. Beast 1.74's teardown
  // drains the socket with one read only (impl/teardown.hpp tests the wrong byte count), so
  // when the rest of the frame is still arriving the kernel answers it with a reset, which can
  // overtake the close frame: the client then sees 1006. Rare, and only under CPU contention.
  CHECK((close == 1009 || close == 1006));
  CHECK(env.logged() == 4);
  env.check_still_serving();
}

TEST_CASE("hostile: references to operations that never arrive, past the hold bound", "[net][hostile]") {
  tandem::net::ServerOptions o;
  o.max_held_events = 20;
  Env env(o);
  RawWs raw;
  REQUIRE(raw.connect(env.server->port, "/ws/doc") == 101);
  raw.send(hello("raw"));
  REQUIRE(raw.read().binary);
  // Depends on an operation of its own that it never sends: held, up to the bound.
  raw.send(ops_frame(OpBatch{{insert_run("raw", 5, {{"raw", 4}}, 0, "0123456789")}}, 1));
  raw.send(ops_frame(OpBatch{{insert_run("raw", 15, {{"raw", 14}}, 0, "0123456789abcdefghij")}}, 2));
  auto [error, close] = raw.read_until_closed();
  CHECK(error == proto::kRejected);
  CHECK(close == proto::kRejected);
  CHECK(env.logged() == 4);
  env.check_still_serving();
}

TEST_CASE("hostile: batch and document size limits", "[net][hostile]") {
  tandem::net::ServerOptions o;
  o.max_batch_events = 50;
  o.max_doc_chars = 100;
  Env env(o);
  {
    RawWs raw;
    REQUIRE(raw.connect(env.server->port, "/ws/doc") == 101);
    raw.send(hello("raw"));
    REQUIRE(raw.read().binary);
    raw.send(ops_frame(OpBatch{{insert_run("raw", 0, {}, 0, std::string(60, 'x'))}}));
    CHECK(raw.read_until_closed().first == proto::kTooLarge);
  }
  {
    RawWs raw;
    REQUIRE(raw.connect(env.server->port, "/ws/doc") == 101);
    raw.send(hello("raw2"));
    REQUIRE(raw.read().binary);
    for (uint32_t i = 0; i < 3; ++i) {
      raw.send(ops_frame(OpBatch{{insert_run("raw2", i * 40, i ? std::vector<OpId>{{"raw2", i * 40 - 1}} : std::vector<OpId>{}, 0,
                                             std::string(40, 'y'))}},
                         i + 1));
    }
    CHECK(raw.read_until_closed().first == proto::kTooLarge);
  }
  CHECK(env.logged() == 4 + 80);  // the third batch would have passed 100 characters
  env.check_still_serving();
}

TEST_CASE("hostile: more messages per second than allowed", "[net][hostile]") {
  tandem::net::ServerOptions o;
  o.max_messages_per_second = 10;
  Env env(o);
  RawWs raw;
  REQUIRE(raw.connect(env.server->port, "/ws/doc") == 101);
  raw.send(hello("raw"));
  REQUIRE(raw.read().binary);
  for (int i = 0; i < 40; ++i) raw.send(proto::encode(proto::Presence{"n", "#fff", 0, 0}));
  CHECK(raw.read_until_closed().first == proto::kRateLimited);
  env.check_still_serving();
}

TEST_CASE("hostile: connections past the total and per-address limits are refused before the upgrade", "[net][hostile]") {
  tandem::net::ServerOptions o;
  o.max_connections_per_ip = 3;
  ServerFixture s(o);
  std::vector<std::unique_ptr<RawWs>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<RawWs>());
    REQUIRE(open.back()->connect(s.port, "/ws/doc") == 101);
  }
  RawWs extra;
  CHECK(extra.connect(s.port, "/ws/doc") == 429);
  open.pop_back();
  std::this_thread::sleep_for(200ms);
  RawWs again;
  CHECK(again.connect(s.port, "/ws/doc") == 101);

  tandem::net::ServerOptions t;
  t.max_connections = 2;
  ServerFixture s2(t);
  RawWs a, b, c;
  REQUIRE(a.connect(s2.port, "/ws/x") == 101);
  REQUIRE(b.connect(s2.port, "/ws/y") == 101);
  CHECK(c.connect(s2.port, "/ws/z") == 503);
}

TEST_CASE("hostile: tokens and origins", "[net][hostile][auth]") {
  tandem::net::ServerOptions o;
  o.auth_secret = "s3cret";
  o.allowed_origins = {"https://notes.example"};
  ServerFixture s(o);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto token = [&](std::string sub, std::string pattern, bool write, int64_t exp, std::string secret = "s3cret") {
    return tandem::net::sign_token({std::move(sub), {std::move(pattern)}, write, exp}, secret);
  };
  const std::string origin = "https://notes.example";
  const std::string good = token("alice", "notes-*", true, now + 600);
  {
    RawWs raw;
    CHECK(raw.refusal(s.port, "/ws/notes-1", origin) == proto::kUnauthorized);  // no token
  }
  {
    RawWs raw;
    CHECK(raw.refusal(s.port, "/ws/notes-1?token=" + token("alice", "notes-*", true, now - 1), origin) == proto::kUnauthorized);
  }
  // Every one-character change of the token is refused: payload, signature, and the unused
  // low bits of the signature's last character (a lenient decoder would ignore those).
  for (size_t i = 0; i < good.size(); ++i) {
    for (char c : std::string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")) {
      if (c == good[i]) continue;
      std::string changed = good;
      changed[i] = c;
      if (tandem::net::verify_token(changed, "s3cret", now).ok()) FAIL("a changed token verified: " << changed);
    }
  }
  {
    RawWs raw;
    std::string forged = good;
    forged.back() = forged.back() == 'A' ? 'B' : 'A';
    CHECK(raw.refusal(s.port, "/ws/notes-1?token=" + forged, origin) == proto::kUnauthorized);
    RawWs other_secret;
    CHECK(other_secret.refusal(s.port, "/ws/notes-1?token=" + token("alice", "*", true, now + 60, "guess"), origin) ==
          proto::kUnauthorized);
  }
  {
    RawWs raw;
    CHECK(raw.refusal(s.port, "/ws/secret-plans?token=" + good, origin) == proto::kForbidden);  // not in the pattern
  }
  {
    RawWs raw;
    CHECK(raw.connect(s.port, "/ws/notes-1?token=" + good, "https://evil.example") == 403);
  }
  {
    RawWs raw;  // an agent that is not the token's subject
    REQUIRE(raw.connect(s.port, "/ws/notes-1?token=" + good, origin) == 101);
    raw.send(hello("mallory/1"));
    CHECK(raw.read_until_closed().first == proto::kForbidden);
  }
  {
    RawWs raw;  // a read-only token that writes
    REQUIRE(raw.connect(s.port, "/ws/notes-1?token=" + token("bob", "*", false, now + 600), origin) == 101);
    raw.send(hello("bob/1"));
    auto w = raw.read();
    auto m = proto::decode(w.data);
    REQUIRE(m.ok());
    REQUIRE(std::get<proto::Welcome>(*m).read_only);
    raw.send(ops_frame(OpBatch{{insert_run("bob/1", 0, {}, 0, "x")}}));
    auto [error, close] = raw.read_until_closed();
    CHECK(error == proto::kForbidden);
  }
  // And the right token works, through the native client too.
  tandem::net::ClientOptions co;
  co.url = s.url("notes-1");
  co.agent = "alice/laptop";
  co.token = good;
  co.origin = origin;
  tandem::net::Client c(co);
  c.start();
  REQUIRE(c.insert(0, "hi").ok());
  CHECK(c.wait_synced(5s));
}

TEST_CASE("hostile: a client that stops reading is dropped and does not slow the others", "[net][hostile]") {
  tandem::net::ServerOptions o;
  o.max_queue_bytes = 1 << 20;
  o.max_frame_bytes = 2 << 20;
  o.max_messages_per_second = 100000;
  // The slow client reads its ERROR and close only after the writer is done; the server waits
  // for the close to be answered this long (under ThreadSanitizer the writing takes ~20 s).
  o.handshake_timeout = std::chrono::seconds(60);
  ServerFixture s(o);
  auto writer = tandem::testing::make_client(s.url("busy"), "writer");
  auto reader = tandem::testing::make_client(s.url("busy"), "reader");
  REQUIRE(writer->wait_synced(5s));
  REQUIRE(reader->wait_synced(5s));
  RawWs slow;
  REQUIRE(slow.connect(s.port, "/ws/busy") == 101);
  slow.send(hello("slow"));
  // 20 MB through the room while the slow client reads nothing; the others must keep up.
  const std::string chunk(100000, 'z');
  std::vector<double> waits;
  for (int i = 0; i < 200; ++i) {
    REQUIRE(writer->insert(0, chunk).ok());
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(reader->wait_for(writer->version(), 10s));
    waits.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (i % 10 == 9) {
      REQUIRE(writer->remove(0, writer->text().size()).ok());  // keep the texts small
      REQUIRE(reader->wait_for(writer->version(), 10s));
    }
  }
  CHECK(reader->text() == writer->text());
  std::sort(waits.begin(), waits.end());
  INFO("p50 " << waits[waits.size() / 2] << " ms, max " << waits.back() << " ms");
  CHECK(waits[waits.size() / 2] < 200);
  // The slow client was cut off with kTooSlow, and no session ever queued much past the limit.
  auto [error, close] = slow.read_until_closed(10s);
  CHECK(close == proto::kTooSlow);
  const auto metrics = s.server->metrics();
  CHECK_THAT(metrics, Catch::Contains("tandem_errors_total{code=\"4503\"} 1"));
  const uint64_t peak = tandem::testing::metric_value(metrics, "tandem_session_queue_peak_bytes");
  CHECK(peak <= (1u << 20) + 200000);
}

TEST_CASE("hostile: a connection that never says HELLO is closed after the handshake timeout", "[net][hostile]") {
  tandem::net::ServerOptions o;
  o.handshake_timeout = 300ms;
  ServerFixture s(o);
  RawWs raw;
  REQUIRE(raw.connect(s.port, "/ws/doc") == 101);
  const auto t0 = std::chrono::steady_clock::now();
  auto [error, close] = raw.read_until_closed(3s);
  CHECK(error == proto::kBadMessage);
  CHECK(close == proto::kBadMessage);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
}

TEST_CASE("hostile: a token that expires ends the session it opened", "[net][hostile][auth]") {
  tandem::net::ServerOptions o;
  o.auth_secret = "k";
  ServerFixture s(o);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  RawWs raw;
  REQUIRE(raw.connect(s.port, "/ws/doc?token=" + tandem::net::sign_token({"eve", {"*"}, true, now + 2}, "k")) == 101);
  raw.send(hello("eve/1"));
  REQUIRE(raw.read().binary);
  auto [error, close] = raw.read_until_closed(5s);
  CHECK(error == proto::kUnauthorized);
}

// A store whose code throws (a bug, or memory exhausted) for two documents: loading "boom-load",
// appending to "boom-append". Everything else passes through.
class ThrowingStore final : public tandem::testing::WrapStore {
 public:
  using WrapStore::WrapStore;
  tandem::crdt::Result<tandem::crdt::Doc> load(std::string_view doc, std::string_view agent,
                                               std::vector<std::string>* warnings) override {
    if (doc == "boom-load") throw std::runtime_error("load exploded");
    return inner_.load(doc, agent, warnings);
  }
  using WrapStore::append;
  void append(std::string doc, uint64_t first, tandem::crdt::codec::EncodedOps b, Done done) override {
    if (doc == "boom-append") throw std::runtime_error("append exploded");
    inner_.append(std::move(doc), first, std::move(b), std::move(done));
  }
};

TEST_CASE("hostile: an exception in a handler ends only the sessions it touched", "[net][hostile]") {
  Env env({}, [](tandem::store::DocStore& inner) { return std::make_unique<ThrowingStore>(inner); });
  // A bystander in another document, joined before the explosions, with an edit on its way after.
  RawWs calm;
  REQUIRE(calm.connect(env.server->port, "/ws/calm") == 101);
  calm.send(hello("calm"));
  REQUIRE(calm.read().binary);  // WELCOME
  {
    INFO("the room's load throws: the joining session is closed with kInternal");
    RawWs raw;
    REQUIRE(raw.connect(env.server->port, "/ws/boom-load") == 101);
    raw.send(hello("raw"));
    auto [error, close] = raw.read_until_closed();
    CHECK(error == proto::kInternal);
    CHECK(close == proto::kInternal);
  }
  {
    INFO("the room's append throws: its sessions are closed, the document is dropped and reloads");
    RawWs writer, reader;
    REQUIRE(writer.connect(env.server->port, "/ws/boom-append") == 101);
    writer.send(hello("writer"));
    REQUIRE(writer.read().binary);
    REQUIRE(reader.connect(env.server->port, "/ws/boom-append") == 101);
    reader.send(hello("reader"));
    REQUIRE(reader.read().binary);
    writer.send(ops_frame(OpBatch{{insert_run("writer", 0, {}, 0, "x")}}));
    CHECK(writer.read_until_closed().second == proto::kInternal);
    CHECK(reader.read_until_closed().second == proto::kInternal);
    // Nothing was acknowledged, and a new session finds a fresh room (the store never had it).
    RawWs again;
    REQUIRE(again.connect(env.server->port, "/ws/boom-append") == 101);
    again.send(hello("again"));
    auto welcome = proto::decode(again.read().data, {});
    REQUIRE(welcome.ok());
    CHECK(std::get<proto::Welcome>(*welcome).doc_version.entries().empty());
  }
  // The bystander never noticed: its edit is acknowledged.
  calm.send(ops_frame(OpBatch{{insert_run("calm", 0, {}, 0, "still here")}}, 7));
  auto ack = proto::decode(calm.read().data, {});
  REQUIRE(ack.ok());
  REQUIRE(std::holds_alternative<proto::Ack>(*ack));
  CHECK(std::get<proto::Ack>(*ack).batch_id == 7);
  env.check_still_serving();
}
