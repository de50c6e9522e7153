// Fixtures for server tests: a server on a loopback port (in-process), a raw WebSocket client that
// sends whatever bytes a test wants, and HTTP GET.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
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
inline std::pair<int, std::string> http_request(uint16_t port, boost::beast::http::verb method, const std::string& target,
                                                const std::string& body, const std::string& bearer = "",
                                                const std::vector<std::pair<boost::beast::http::field, std::string>>& fields = {}) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context ioc;
  beast::tcp_stream s(ioc);
  beast::error_code ec;
  s.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return {-1, ""};
  s.expires_after(std::chrono::seconds(30));
  http::request<http::string_body> req(method, target, 11);
  req.set(http::field::host, "127.0.0.1");
  if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [field, value] : fields) req.set(field, value);
  req.body() = body;
  if (method != http::verb::get || !body.empty()) req.prepare_payload();
  http::write(s, req, ec);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res, ec);
  if (ec) return {-1, ""};
  return {static_cast<int>(res.result_int()), res.body()};
}

// A GET with extra header fields; the whole response (headers too), or a 0 status when none came.
inline boost::beast::http::response<boost::beast::http::string_body> http_get_full(
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

  // Connects and upgrades. Returns the HTTP status if the upgrade was refused, 101 on success.
  int connect(uint16_t port, const std::string& target, const std::string& origin = "") {
    namespace beast = boost::beast;
    beast::error_code ec;
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), port);
    beast::get_lowest_layer(ws_).connect(ep, ec);
    if (ec) return -1;
    ws_.set_option(beast::websocket::stream_base::decorator([origin](beast::websocket::request_type& req) {
      if (!origin.empty()) req.set(beast::http::field::origin, origin);
    }));
    ws_.handshake("127.0.0.1:" + std::to_string(port), target, ec);
    if (ec) return refused_status(port, target, origin);
    ws_.auto_fragment(false);
    return 101;
  }

  // The status of a refused upgrade, asked again over plain HTTP (Beast's handshake does not
  // report it).
  static int refused_status(uint16_t port, const std::string& target, const std::string& origin) {
    namespace http = boost::beast::http;
    std::vector<std::pair<http::field, std::string>> fields = {{http::field::upgrade, "websocket"},
                                                               {http::field::connection, "Upgrade"},
                                                               {http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ=="},
                                                               {http::field::sec_websocket_version, "13"}};
    if (!origin.empty()) fields.emplace_back(http::field::origin, origin);
    return http_get(port, target, fields).first;
  }

  void send(const std::string& bytes, bool binary = true) {
    boost::beast::error_code ec;
    ws_.binary(binary);
    ws_.write(boost::asio::buffer(bytes), ec);
  }

  // The next frame, or closed (with the server's close code, 1006 if the connection was cut
  // without one, 0 on timeout).
  Frame read(std::chrono::milliseconds timeout = 5000ms) {
    namespace beast = boost::beast;
    Frame f;
    buf_.consume(buf_.size());
    bool done = false;
    beast::error_code result;
    ws_.async_read(buf_, [&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    ioc_.restart();
    ioc_.run_for(timeout);
    if (!done) {
      beast::get_lowest_layer(ws_).cancel();
      ioc_.restart();
      ioc_.run_for(1000ms);
      f.closed = true;
      f.close_code = 0;  // timed out
      return f;
    }
    if (result) {
      f.closed = true;
      // No close frame (the connection was cut): 1006, as browsers report it.
      f.close_code = ws_.reason().code ? ws_.reason().code : 1006;
      return f;
    }
    f.binary = ws_.got_binary();
    f.data = beast::buffers_to_string(buf_.data());
    return f;
  }

  // Reads frames until the connection closes; returns the last ERROR code seen and the close code.
  std::pair<uint16_t, uint16_t> read_until_closed(std::chrono::milliseconds timeout = 5000ms) {
    uint16_t error = 0;
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {error, 0};
      Frame f = read(left);
      if (f.closed) return {error, f.close_code};
      auto m = proto::decode(f.data);
      if (m.ok()) {
        if (auto* e = std::get_if<proto::Error>(&*m)) error = e->code;
      }
    }
  }

  // Connects, and returns the ERROR code of an upgrade refused in-band (auth: the server answers
  // 101, sends ERROR and closes with the same code, which a browser can read), or the HTTP
  // status of one refused before the upgrade, or 101 when the session stays open.
  int refusal(uint16_t port, const std::string& target, const std::string& origin = "") {
    const int status = connect(port, target, origin);
    if (status != 101) return status;
    auto [error, close] = read_until_closed(2000ms);
    if (error != close) return -1;
    return error ? error : 101;
  }

  boost::beast::websocket::stream<boost::beast::tcp_stream>& ws() { return ws_; }

 private:
  boost::asio::io_context ioc_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_{ioc_};
  boost::beast::flat_buffer buf_;
};

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
