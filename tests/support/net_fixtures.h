// Fixtures for server tests: a server on a loopback port (in-process), a raw WebSocket client that
// sends whatever bytes a test wants, and HTTP requests. Beast's templates are instantiated once,
// in net_fixtures.cc, not in every test that includes this.
#pragma once

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/client.h"
#include "net/server.h"
#include "storage/store.h"
#include "store/memory.h"
#include "support/test_threads.h"

namespace tandem::testing {

using namespace std::chrono_literals;

// A server on 127.0.0.1, any free port, on its own threads.
struct ServerFixture {
  explicit ServerFixture(net::ServerOptions o = {}, store::DocStore* store = nullptr) {
    o.host = "127.0.0.1";
    o.port = 0;
    if (o.threads == 0) o.threads = test_threads();
    o.log_quiet = !std::getenv("TANDEM_TEST_LOGS");
    if (!store) {
      owned = store::make_memory_store();
      store = owned.get();
    }
    server = std::make_unique<net::Server>(o, store);
    auto st = server->start();
    INFO(st.ToString());
    REQUIRE(st.ok());
    port = server->port();
    thread = std::thread([this] { server->run(); });
  }
  ~ServerFixture() { stop(); }
  void stop() {
    if (!server) return;
    server->stop();
    thread.join();
    server.reset();
  }
  std::string url(const std::string& doc, bool tls = false) const {
    return std::string(tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(port) + "/ws/" + doc;
  }
  std::unique_ptr<store::DocStore> owned;
  std::unique_ptr<net::Server> server;
  std::thread thread;
  uint16_t port = 0;
};

inline std::unique_ptr<net::Client> make_client(const std::string& url, const std::string& agent,
                                                const std::string& token = "", bool tls = false) {
  net::ClientOptions o;
  o.url = url;
  o.agent = agent;
  o.token = token;
  o.min_backoff = 20ms;
  o.max_backoff = 300ms;
  o.tls_verify = !tls;
  auto c = std::make_unique<net::Client>(o);
  c->start();
  return c;
}

// A request with any method and body on the loopback server; returns (status, body), or -1 when
// no answer came.
std::pair<int, std::string> http_request(uint16_t port, boost::beast::http::verb method, const std::string& target,
                                         const std::string& body, const std::string& bearer = "",
                                         const std::vector<std::pair<boost::beast::http::field, std::string>>& fields = {});

// GET with extra header fields.
inline std::pair<int, std::string> http_get(uint16_t port, const std::string& target,
                                            const std::vector<std::pair<boost::beast::http::field, std::string>>& fields = {}) {
  return http_request(port, boost::beast::http::verb::get, target, "", "", fields);
}

// A WebSocket client that sends exactly what it is told, for hostile-input tests.
class RawWs {
 public:
  struct Frame {
    bool closed = false;       // the server closed the connection
    uint16_t close_code = 0;
    bool binary = false;
    std::string data;
  };
  RawWs();
  ~RawWs();
  RawWs(const RawWs&) = delete;
  RawWs& operator=(const RawWs&) = delete;

  // Connects and upgrades. Returns the HTTP status if the upgrade was refused, 101 on success.
  int connect(uint16_t port, const std::string& target, const std::string& origin = "");
  // The status of a refused upgrade, asked again over plain HTTP (Beast's handshake does not
  // report it).
  static int refused_status(uint16_t port, const std::string& target, const std::string& origin);
  void send(const std::string& bytes, bool binary = true);
  // The next frame, or closed (with the server's close code, 1006 if the connection was cut
  // without one, 0 on timeout).
  Frame read(std::chrono::milliseconds timeout = 5000ms);
  // Reads frames until the connection closes; returns the last ERROR code seen and the close code.
  std::pair<uint16_t, uint16_t> read_until_closed(std::chrono::milliseconds timeout = 5000ms);
  // Connects, and returns the ERROR code of an upgrade refused in-band (auth: the server answers
  // 101, sends ERROR and closes with the same code, which a browser can read), or the HTTP
  // status of one refused before the upgrade, or 101 when the session stays open.
  int refusal(uint16_t port, const std::string& target, const std::string& origin = "");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The value of an unlabelled metric in /metrics text (the test fails if it is not there).
inline uint64_t metric_value(const std::string& metrics, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const auto at = metrics.find(key);
  REQUIRE(at != std::string::npos);
  return std::stoull(metrics.substr(at + key.size()));
}

// Current resident memory of this process, in bytes.
inline size_t rss_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages = 0, resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<size_t>(resident) * 4096 : 0;
}

}  // namespace tandem::testing
