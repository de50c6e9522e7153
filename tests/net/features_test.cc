// TLS, presence, timeouts, HTTP routes, and convergence through a real SQLite store.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>
#include <thread>

#include "crdt/utf8.h"
#include "net/auth.h"
#include "support/net_fixtures.h"
#include "support/random_edits.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;
using tandem::testing::RawWs;
using tandem::testing::ServerFixture;
using tandem::testing::TempDir;
namespace proto = tandem::proto;

namespace {

// A self-signed certificate for 127.0.0.1, made here.
void make_certificate(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  REQUIRE(key);
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
  FILE* f = std::fopen(cert_path.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
}

// A GET with extra header fields; the whole response (headers too), or a 0 status when none came.
boost::beast::http::response<boost::beast::http::string_body> http_get_full(
    uint16_t port, const std::string& target, const std::vector<std::pair<boost::beast::http::field, std::string>>& fields = {}) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context ioc;
  beast::tcp_stream s(ioc);
  beast::error_code ec;
  http::response<http::string_body> res;
  s.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return res;
  s.expires_after(std::chrono::seconds(30));
  http::request<http::string_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [field, value] : fields) req.set(field, value);
  http::write(s, req, ec);
  beast::flat_buffer buf;
  http::read(s, buf, res, ec);
  return res;
}

}  // namespace

TEST_CASE("features: TLS (wss://) with a certificate made by the test", "[net][tls]") {
  TempDir dir;
  make_certificate(dir.file("cert.pem"), dir.file("key.pem"));
  tandem::net::ServerOptions o;
  o.tls_cert = dir.file("cert.pem");
  o.tls_key = dir.file("key.pem");
  ServerFixture s(o);
  auto a = tandem::testing::make_client(s.url("secure", true), "a", "", true);
  auto b = tandem::testing::make_client(s.url("secure", true), "b", "", true);
  REQUIRE(a->insert(0, "over TLS").ok());
  REQUIRE(a->wait_synced(10s));
  REQUIRE(b->wait_for(a->version(), 10s));
  CHECK(b->text() == "over TLS");
  // Plain ws:// to the TLS port never gets in.
  auto plain = tandem::testing::make_client(s.url("secure"), "c");
  std::this_thread::sleep_for(500ms);
  CHECK(plain->state() != tandem::net::ClientState::kConnected);
  // A certificate nobody vouches for is refused by a verifying client.
  tandem::net::ClientOptions strict;
  strict.url = s.url("secure", true);
  strict.agent = "d";
  tandem::net::Client careful(strict);
  careful.start();
  std::this_thread::sleep_for(500ms);
  CHECK(careful.state() != tandem::net::ClientState::kConnected);
}

TEST_CASE("features: presence is relayed and removed when a session ends", "[net][presence]") {
  ServerFixture s;
  auto a = tandem::testing::make_client(s.url("p"), "alice");
  auto b = tandem::testing::make_client(s.url("p"), "bob");
  REQUIRE(a->wait_synced(5s));
  REQUIRE(b->wait_synced(5s));
  std::mutex m;
  std::vector<tandem::net::PeerPresence> seen;
  std::vector<uint64_t> left;
  b->on_presence([&](const tandem::net::PeerPresence& p) {
    std::lock_guard<std::mutex> lock(m);
    seen.push_back(p);
  });
  b->on_leave([&](uint64_t id) {
    std::lock_guard<std::mutex> lock(m);
    left.push_back(id);
  });
  a->set_presence({"Alice", "#e91e63", 2, 5});
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(20ms);
    std::lock_guard<std::mutex> lock(m);
    if (!seen.empty()) break;
  }
  {
    std::lock_guard<std::mutex> lock(m);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].agent == "alice");
    CHECK(seen[0].presence == proto::Presence{"Alice", "#e91e63", 2, 5});
  }
  // A late joiner gets the presence of those already there.
  auto c = tandem::testing::make_client(s.url("p"), "carol");
  std::atomic<int> got{0};
  c->on_presence([&](const tandem::net::PeerPresence& p) {
    if (p.agent == "alice") ++got;
  });
  // (the callback may be set after the first update arrived: update once more)
  a->set_presence({"Alice", "#e91e63", 3, 3});
  for (int i = 0; i < 100 && got == 0; ++i) std::this_thread::sleep_for(20ms);
  CHECK(got > 0);
  a->stop();
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(20ms);
    std::lock_guard<std::mutex> lock(m);
    if (!left.empty()) break;
  }
  std::lock_guard<std::mutex> lock(m);
  REQUIRE(left.size() == 1);
  CHECK(left[0] == seen[0].session);
}

TEST_CASE("features: handshake and idle timeouts close what does not speak", "[net][timeouts]") {
  tandem::net::ServerOptions o;
  o.handshake_timeout = 300ms;
  o.idle_timeout = 600ms;
  ServerFixture s(o);
  // Dribbling an upgrade request: cut off after the handshake timeout.
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket sock(ioc);
  sock.connect({boost::asio::ip::make_address("127.0.0.1"), s.port});
  boost::asio::write(sock, boost::asio::buffer(std::string("GET /ws/doc HTTP/1.1\r\nHost: x\r\n")));
  const auto t0 = std::chrono::steady_clock::now();
  char c;
  boost::system::error_code ec;
  sock.read_some(boost::asio::buffer(&c, 1), ec);  // returns when the server closes
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(ec);
  CHECK(waited >= 250ms);
  CHECK(waited < 3s);
  // A session that stops answering (no pong to the server's pings): closed after the idle timeout.
  RawWs quiet;
  REQUIRE(quiet.connect(s.port, "/ws/doc") == 101);
  quiet.send(proto::encode(proto::Hello{proto::kProtocolVersion, {"quiet"}, {}}));
  std::this_thread::sleep_for(2s);  // not reading: pings go unanswered
  auto [error, close] = quiet.read_until_closed(3s);
  (void)error;
  CHECK(close != 0);
  // Meanwhile a normal client connects and works.
  auto ok = tandem::testing::make_client(s.url("doc"), "fine");
  REQUIRE(ok->insert(0, "x").ok());
  CHECK(ok->wait_synced(5s));
}

TEST_CASE("features: /healthz, /metrics and the editor's files", "[net][http]") {
  TempDir dir;
  std::ofstream(dir.file("index.html")) << "<!doctype html><title>Tandem</title>";
  std::filesystem::create_directory(dir.file("assets"));
  std::ofstream(dir.file("assets/app.js")) << "console.log(1)";
  tandem::net::ServerOptions o;
  o.static_dir = dir.path();
  ServerFixture s(o);
  auto [code, body] = tandem::testing::http_get(s.port, "/healthz");
  CHECK(code == 200);
  CHECK(body == "ok\n");
  auto c = tandem::testing::make_client(s.url("m"), "m");
  REQUIRE(c->insert(0, "metrics").ok());
  REQUIRE(c->wait_synced(5s));
  auto [mcode, metrics] = tandem::testing::http_get(s.port, "/metrics");
  CHECK(mcode == 200);
  CHECK_THAT(metrics, Catch::Contains("tandem_connections 1"));
  CHECK_THAT(metrics, Catch::Contains("tandem_open_documents 1"));
  CHECK_THAT(metrics, Catch::Contains("tandem_ops_integrated_total 7"));
  CHECK_THAT(metrics, Catch::Contains("tandem_commit_latency_seconds_count 1"));
  CHECK_THAT(metrics, Catch::Contains("# TYPE tandem_broadcast_latency_seconds histogram"));
  CHECK(tandem::testing::http_get(s.port, "/").second == "<!doctype html><title>Tandem</title>");
  CHECK(tandem::testing::http_get(s.port, "/d/some-doc").second == "<!doctype html><title>Tandem</title>");
  CHECK(tandem::testing::http_get(s.port, "/assets/app.js").second == "console.log(1)");
  CHECK(tandem::testing::http_get(s.port, "/assets/../../etc/passwd").first == 404);
  CHECK(tandem::testing::http_get(s.port, "/nothing-here.js").first == 404);
}

// The page is never cached; files named by their content's hash are cached for a year; all of
// them go compressed to a browser that takes gzip, and an unchanged file is not sent again.
TEST_CASE("features: the editor's files are compressed and cached by content hash", "[net][http]") {
  namespace http = boost::beast::http;
  TempDir dir;
  std::string js;
  for (int i = 0; i < 2000; ++i) js += "console.log('line " + std::to_string(i % 50) + "');\n";
  std::ofstream(dir.file("index.html")) << "<!doctype html><script src=/assets/app-KQ5ZQW3G.js></script>";
  std::filesystem::create_directory(dir.file("assets"));
  std::ofstream(dir.file("assets/app-KQ5ZQW3G.js")) << js;
  std::ofstream(dir.file("sw.js")) << "self.x = 1;";
  tandem::net::ServerOptions o;
  o.static_dir = dir.path();
  ServerFixture s(o);
  const std::vector<std::pair<http::field, std::string>> gzip = {{http::field::accept_encoding, "gzip, deflate, br"}};
  auto asset = http_get_full(s.port, "/assets/app-KQ5ZQW3G.js", gzip);
  CHECK(asset.result_int() == 200);
  CHECK(asset[http::field::content_encoding] == "gzip");
  CHECK(asset[http::field::cache_control] == "public, max-age=31536000, immutable");
  CHECK(asset.body().size() < js.size() / 10);
  CHECK(asset.body().substr(0, 2) == "\x1f\x8b");
  auto plain = http_get_full(s.port, "/assets/app-KQ5ZQW3G.js");
  CHECK(plain[http::field::content_encoding] == "");
  CHECK(plain.body() == js);
  auto refused = http_get_full(s.port, "/assets/app-KQ5ZQW3G.js", {{http::field::accept_encoding, "gzip;q=0"}});
  CHECK(refused.body() == js);
  const std::string etag(asset[http::field::etag]);
  REQUIRE(etag.size() > 2);
  auto again = http_get_full(s.port, "/assets/app-KQ5ZQW3G.js", {{http::field::if_none_match, etag}});
  CHECK(again.result_int() == 304);
  CHECK(again.body().empty());
  auto page = http_get_full(s.port, "/d/notes", gzip);
  CHECK(page[http::field::cache_control] == "no-store");
  CHECK(page.body() == "<!doctype html><script src=/assets/app-KQ5ZQW3G.js></script>");  // small: not worth compressing
  CHECK(http_get_full(s.port, "/sw.js")[http::field::cache_control] == "no-cache");
}

TEST_CASE("features: a server without the editor says so at /", "[net][http]") {
  ServerFixture s;
  auto [code, body] = tandem::testing::http_get(s.port, "/");
  CHECK(code == 404);
  CHECK_THAT(body, Catch::Contains("has no editor"));
  CHECK_THAT(body, Catch::Contains("web-editor/build.sh"));
}

TEST_CASE("features: random edits and disconnects converge, equal to the store after a restart", "[net][convergence]") {
  TempDir dir;
  tandem::storage::StoreOptions so;
  so.path = dir.file("t.db");
  auto store = tandem::storage::Store::open(so);
  REQUIRE(store.ok());
  tandem::testing::Rng rng(5150);
  std::string final_text;
  {
    ServerFixture s({}, store->get());
    std::vector<std::unique_ptr<tandem::net::Client>> cs;
    for (int i = 0; i < 6; ++i) cs.push_back(tandem::testing::make_client(s.url("shared"), "w" + std::to_string(i)));
    for (int step = 0; step < 600; ++step) {
      auto& c = *cs[rng.below(cs.size())];
      if (rng.chance(0.03)) {
        c.drop_connection();
        continue;
      }
      const auto len = static_cast<uint32_t>(tandem::crdt::utf8::count_code_points(c.text()));
      if (len > 0 && rng.chance(0.3)) {
        (void)c.remove(static_cast<uint32_t>(rng.below(len)), 1);
      } else {
        (void)c.insert(static_cast<uint32_t>(rng.below(len + 1)), tandem::testing::random_text(rng, 1 + rng.below(5)));
      }
      if (step % 25 == 0) std::this_thread::sleep_for(3ms);
    }
    for (auto& c : cs) REQUIRE(c->wait_synced(15s));
    tandem::crdt::Version all;
    for (auto& c : cs) all.merge(c->version());
    for (auto& c : cs) REQUIRE(c->wait_for(all, 10s));
    for (auto& c : cs) REQUIRE(c->text() == cs[0]->text());
    final_text = cs[0]->text();
    // What the server holds, seen by a new client.
    auto probe = tandem::testing::make_client(s.url("shared"), "probe");
    REQUIRE(probe->wait_synced(5s));
    CHECK(probe->text() == final_text);
  }
  // The server is gone; the store holds the same text, and a new server serves it.
  auto loaded = (*store)->load("shared", "check", nullptr);
  REQUIRE(loaded.ok());
  CHECK(loaded->text() == final_text);
  ServerFixture again({}, store->get());
  auto late = tandem::testing::make_client(again.url("shared"), "late");
  REQUIRE(late->wait_synced(5s));
  CHECK(late->text() == final_text);
}

TEST_CASE("features: a document larger than a session's queue limit still opens", "[net]") {
  tandem::net::ServerOptions o;
  o.max_queue_bytes = 64 << 10;
  ServerFixture s(o);
  auto a = tandem::testing::make_client(s.url("big"), "a");
  // 1 MB of text: the client splits it into frames under the server's 1 MiB frame limit.
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "fifty bytes of text, more or less, again and ag\n";
  REQUIRE(a->insert(0, text).ok());
  REQUIRE(a->wait_synced(10s));
  auto b = tandem::testing::make_client(s.url("big"), "b");
  REQUIRE(b->wait_synced(10s));
  CHECK(b->text() == text);
  // A hundred thousand one-character edits apart from each other: many runs, split by size too.
  for (uint32_t i = 0; i < 20000; ++i) REQUIRE(a->insert(i * 2, "x").ok());
  REQUIRE(a->wait_synced(20s));
  REQUIRE(b->wait_for(a->version(), 10s));
  CHECK(b->text() == a->text());
  // A client that joins while the document is busy: the live broadcasts queued behind its
  // catch-up (over the limit by itself) are counted on their own, so it is not dropped as slow.
  std::atomic<bool> typing{true};
  std::thread typist([&] {
    for (uint32_t i = 0; typing; ++i) {
      (void)a->insert(i % 1000, "y");
      std::this_thread::sleep_for(1ms);
    }
  });
  std::vector<uint16_t> errors;
  std::mutex mu;
  tandem::net::ClientOptions co;
  co.url = s.url("big");
  co.agent = "c";
  tandem::net::Client c(co);
  c.on_error([&](uint16_t code, const std::string&) {
    std::lock_guard<std::mutex> lock(mu);
    errors.push_back(code);
  });
  c.start();
  const bool caught_up = c.wait_synced(10s);
  typing = false;
  typist.join();
  CHECK(caught_up);
  REQUIRE(a->wait_synced(10s));
  REQUIRE(c.wait_for(a->version(), 10s));
  CHECK(c.text() == a->text());
  std::lock_guard<std::mutex> lock(mu);
  CHECK(errors.empty());
}

TEST_CASE("features: read-only sessions keep their edits local, agents follow the token", "[net][auth]") {
  tandem::net::ServerOptions o;
  o.auth_secret = "k";
  ServerFixture s(o);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  tandem::net::ClientOptions wo;
  wo.url = s.url("doc");
  wo.token = tandem::net::sign_token({"writer", {"*"}, true, now + 600}, "k");
  tandem::net::Client w(wo);  // no agent given: "writer/..." from the token
  w.start();
  CHECK(w.agent().rfind("writer/", 0) == 0);
  REQUIRE(w.insert(0, "shared").ok());
  REQUIRE(w.wait_synced(5s));
  tandem::net::ClientOptions ro;
  ro.url = s.url("doc");
  ro.token = tandem::net::sign_token({"reader", {"*"}, false, now + 600}, "k");
  tandem::net::Client r(ro);
  std::atomic<int> errors{0};
  r.on_error([&](uint16_t, const std::string&) { ++errors; });
  r.start();
  REQUIRE(r.wait_for(w.version(), 5s));
  CHECK(r.read_only());
  REQUIRE(r.insert(0, "mine: ").ok());  // applied locally, never sent
  std::this_thread::sleep_for(300ms);
  CHECK(errors == 0);
  CHECK(r.state() == tandem::net::ClientState::kConnected);
  CHECK(r.unacknowledged() == 6);
  CHECK(w.text() == "shared");
}
