// Beast's HTTP and WebSocket clients for the server tests, compiled once (net_fixtures.h).
#include "support/net_fixtures.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "sync/protocol.h"

namespace tandem::testing {

namespace beast = boost::beast;
namespace http = beast::http;

std::pair<int, std::string> http_request(uint16_t port, http::verb method, const std::string& target, const std::string& body,
                                         const std::string& bearer, const std::vector<std::pair<http::field, std::string>>& fields) {
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

struct RawWs::Impl {
  boost::asio::io_context ioc;
  beast::websocket::stream<beast::tcp_stream> ws{ioc};
  beast::flat_buffer buf;
};

RawWs::RawWs() : impl_(std::make_unique<Impl>()) {}
RawWs::~RawWs() = default;

int RawWs::connect(uint16_t port, const std::string& target, const std::string& origin) {
  auto& ws = impl_->ws;
  beast::error_code ec;
  boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), port);
  beast::get_lowest_layer(ws).connect(ep, ec);
  if (ec) return -1;
  ws.set_option(beast::websocket::stream_base::decorator([origin](beast::websocket::request_type& req) {
    if (!origin.empty()) req.set(http::field::origin, origin);
  }));
  ws.handshake("127.0.0.1:" + std::to_string(port), target, ec);
  if (ec) return refused_status(port, target, origin);
  ws.auto_fragment(false);
  return 101;
}

int RawWs::refused_status(uint16_t port, const std::string& target, const std::string& origin) {
  std::vector<std::pair<http::field, std::string>> fields = {{http::field::upgrade, "websocket"},
                                                             {http::field::connection, "Upgrade"},
                                                             {http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ=="},
                                                             {http::field::sec_websocket_version, "13"}};
  if (!origin.empty()) fields.emplace_back(http::field::origin, origin);
  return http_get(port, target, fields).first;
}

void RawWs::send(const std::string& bytes, bool binary) {
  beast::error_code ec;
  impl_->ws.binary(binary);
  impl_->ws.write(boost::asio::buffer(bytes), ec);
}

RawWs::Frame RawWs::read(std::chrono::milliseconds timeout) {
  auto& ws = impl_->ws;
  auto& buf = impl_->buf;
  auto& ioc = impl_->ioc;
  Frame f;
  buf.consume(buf.size());
  bool done = false;
  beast::error_code result;
  ws.async_read(buf, [&](beast::error_code ec, std::size_t) {
    result = ec;
    done = true;
  });
  ioc.restart();
  ioc.run_for(timeout);
  if (!done) {
    beast::get_lowest_layer(ws).cancel();
    ioc.restart();
    ioc.run_for(1000ms);
    f.closed = true;
    f.close_code = 0;  // timed out
    return f;
  }
  if (result) {
    f.closed = true;
    // No close frame (the connection was cut): 1006, as browsers report it.
    f.close_code = ws.reason().code ? ws.reason().code : 1006;
    return f;
  }
  f.binary = ws.got_binary();
  f.data = beast::buffers_to_string(buf.data());
  return f;
}

std::pair<uint16_t, uint16_t> RawWs::read_until_closed(std::chrono::milliseconds timeout) {
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

int RawWs::refusal(uint16_t port, const std::string& target, const std::string& origin) {
  const int status = connect(port, target, origin);
  if (status != 101) return status;
  auto [error, close] = read_until_closed(2000ms);
  if (error != close) return -1;
  return error ? error : 101;
}

}  // namespace tandem::testing
