// Listener, HTTP sessions (routes, upgrade checks), WebSocket sessions, and the server's life.
// The shape follows Beast's advanced server example: a strand per connection, limits on
// everything a peer sends, one write in flight per session and a bounded queue behind it.
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "crdt/codec.h"
#include "net/auth.h"
#include "room.h"
#include "session.h"

namespace tandem::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using crdt::Status;

namespace {

bool valid_doc_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

std::string query_param(std::string_view target, std::string_view key) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view kv = rest.substr(0, amp);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == key) return std::string(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return {};
}

const char* mime_type(const std::string& path) {
  auto ends = [&](const char* ext) { return path.size() >= strlen(ext) && path.compare(path.size() - strlen(ext), strlen(ext), ext) == 0; };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".wasm")) return "application/wasm";
  if (ends(".json")) return "application/json";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".ico")) return "image/x-icon";
  return "application/octet-stream";
}

// At most n bytes of s, not cutting a UTF-8 sequence (a close reason must be valid UTF-8).
std::string utf8_prefix(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

// What the network side of the server keeps: the acceptor, TLS, connection counts.
struct Server::Impl::Net {
  explicit Net(Server::Impl& impl) : acceptor(impl.ioc), signals(impl.ioc) {}
  tcp::acceptor acceptor;
  asio::signal_set signals;
  std::optional<ssl::context> tls;
  std::mutex conn_mu;
  uint32_t sessions = 0;
  std::unordered_map<std::string, uint32_t> per_ip;
  std::atomic<bool> shut_down{false};
  std::thread finisher;  // the last step of stop(): flush the store, stop the io_context
  std::optional<asio::steady_timer> lag_probe;
  uint16_t port = 0;
};


namespace {

// ---- WebSocket session ------------------------------------------------------------------------

template <class Stream>
class WsSession final : public ClientSession {
 public:
  WsSession(Server::Impl& srv, Stream&& stream, std::string doc, std::string ip, std::string subject, int64_t expires)
      : ClientSession(srv, std::move(doc), std::move(subject), expires), ws_(std::move(stream)),
        timer_(ws_.get_executor()), ip_(std::move(ip)) {
    peer = ip_;
  }

  ~WsSession() override {
    srv_.metrics.queued_bytes -= static_cast<int64_t>(queued_bytes_);
    std::lock_guard<std::mutex> lock(srv_.net->conn_mu);
    --srv_.net->sessions;
    auto it = srv_.net->per_ip.find(ip_);
    if (it != srv_.net->per_ip.end() && --it->second == 0) srv_.net->per_ip.erase(it);
    --srv_.metrics.connections;
  }

  void run(http::request<http::empty_body> req) {
    websocket::stream_base::timeout t;
    t.handshake_timeout = srv_.opt.handshake_timeout;
    t.idle_timeout = srv_.opt.idle_timeout;
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.read_message_max(srv_.opt.max_frame_bytes);
    ws_.auto_fragment(false);
    ws_.binary(true);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "tandem"); }));
    ws_.async_accept(req, beast::bind_front_handler(&WsSession::on_accept, shared_self()));
  }

  void send(Frame frame, uint64_t ops, bool catch_up) override {
    asio::post(ws_.get_executor(), [self = shared_self(), frame = std::move(frame), ops, catch_up]() mutable {
      self->enqueue(std::move(frame), ops, catch_up ? Kind::kCatchUp : Kind::kLive);
    });
  }

  void close_with(uint16_t code, std::string message) override {
    closed = true;
    asio::post(ws_.get_executor(), [self = shared_self(), code, message = std::move(message)]() mutable {
      if (self->closing_) return;
      self->srv_.metrics.count_error(code);
      self->srv_.log.warn("session.error", {{"doc", self->doc_},
                                            {"session", std::to_string(self->id)},
                                            {"code", std::to_string(code)},
                                            {"error", message}});
      self->close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), utf8_prefix(message, 120));
      self->enqueue(std::make_shared<const std::string>(proto::encode(proto::Error{code, message})), 0, Kind::kError);
      self->closing_ = true;
    });
  }

  void close_plain(uint16_t code, std::string reason) override {
    closed = true;
    asio::post(ws_.get_executor(), [self = shared_self(), code, reason = std::move(reason)] {
      if (self->closing_) return;
      self->closing_ = true;
      self->close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
      if (!self->writing_) self->do_close();
    });
  }

 private:
  std::shared_ptr<WsSession> shared_self() { return std::static_pointer_cast<WsSession>(shared_from_this()); }

  void on_accept(beast::error_code ec) {
    if (ec) return;  // the handshake failed or timed out: nothing to undo
    ++srv_.metrics.connections;
    ++srv_.metrics.connections_total;
    // A connection that never says HELLO would hold a slot forever (it answers pings).
    timer_.expires_after(srv_.opt.handshake_timeout);
    timer_.async_wait([self = shared_self()](beast::error_code e) {
      if (!e && !self->joined()) self->close_with(proto::kBadMessage, "no HELLO within the handshake timeout");
    });
    do_read();
  }

  void do_read() { ws_.async_read(buf_, beast::bind_front_handler(&WsSession::on_read, shared_self())); }

  void on_read(beast::error_code ec, std::size_t n) {
    if (ec) {
      if (ec == websocket::error::message_too_big) {
        srv_.metrics.count_error(1009);
        srv_.log.warn("session.error", {{"doc", doc_}, {"session", std::to_string(id)}, {"code", "1009"},
                                        {"error", "message over " + std::to_string(srv_.opt.max_frame_bytes) + " bytes"}});
      }
      finish();
      return;
    }
    srv_.metrics.bytes_in += n;
    if (closing_) {
      buf_.consume(buf_.size());
      do_read();
      return;
    }
    const std::string frame = beast::buffers_to_string(buf_.data());
    buf_.consume(buf_.size());
    on_message(frame, ws_.got_binary());
    // Keep reading even when closing: the peer's close frame ends the session.
    do_read();
  }

  // The token's expiry ends the session too, not just new connections.
  void on_joined() override {
    timer_.cancel();
    if (expires_ > 0) {
      timer_.expires_after(std::chrono::seconds(std::max<int64_t>(0, expires_ - now_seconds())));
      timer_.async_wait([self = shared_self()](beast::error_code e) {
        if (!e) self->close_with(proto::kForbidden, "the access token expired");
      });
    }
  }

  // kLive frames count against the queue limit; kCatchUp frames do not (their bytes are kept
  // apart); only kError frames are queued once the session is closing.
  enum class Kind { kLive, kCatchUp, kError };

  void enqueue(Frame frame, uint64_t ops, Kind kind) {
    if (closing_ && kind != Kind::kError) return;
    // The limit is on the live backlog: a frame larger than it still goes out when nothing waits.
    const size_t live = queued_bytes_ - exempt_bytes_;
    if (kind == Kind::kLive && live > 0 && live + frame->size() > srv_.opt.max_queue_bytes) {
      // Dropping what this session could not take keeps everyone else unaffected; the client
      // resyncs when it reconnects.
      close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(proto::kTooSlow), "too slow: outgoing queue over limit; reconnect");
      srv_.metrics.count_error(proto::kTooSlow);
      srv_.log.warn("session.too_slow", {{"doc", doc_}, {"session", std::to_string(id)},
                                         {"queued_bytes", std::to_string(queued_bytes_)}});
      // Everything but the frame being written goes.
      while (queue_.size() > (writing_ ? 1 : 0)) {
        release(queue_.back());
        queue_.pop_back();
      }
      closing_ = true;
      closed = true;
      push({std::make_shared<const std::string>(
                proto::encode(proto::Error{proto::kTooSlow, "too slow: outgoing queue over limit; reconnect"})),
            0, false});
      return;
    }
    push({std::move(frame), ops, kind == Kind::kCatchUp});
  }

  struct Queued {
    Frame frame;
    uint64_t ops;
    bool exempt;
  };

  void push(Queued q) {
    const size_t n = q.frame->size();
    queued_bytes_ += n;
    if (q.exempt) exempt_bytes_ += n;
    srv_.metrics.queued_bytes += static_cast<int64_t>(n);
    if (queued_bytes_ > srv_.metrics.queue_peak) srv_.metrics.queue_peak = queued_bytes_;
    queue_.push_back(std::move(q));
    if (!writing_) do_write();
  }

  void release(const Queued& q) {
    const size_t n = q.frame->size();
    queued_bytes_ -= n;
    if (q.exempt) exempt_bytes_ -= n;
    srv_.metrics.queued_bytes -= static_cast<int64_t>(n);
  }

  void do_write() {
    writing_ = true;
    ws_.async_write(asio::buffer(*queue_.front().frame), beast::bind_front_handler(&WsSession::on_write, shared_self()));
  }

  void on_write(beast::error_code ec, std::size_t n) {
    if (ec) {
      writing_ = false;
      for (const auto& q : queue_) release(q);
      queue_.clear();
      return;  // the read side sees the failure and finishes
    }
    srv_.metrics.bytes_out += n;
    srv_.metrics.ops_out += queue_.front().ops;
    release(queue_.front());
    queue_.pop_front();
    if (!queue_.empty()) {
      do_write();
      return;
    }
    writing_ = false;
    if (closing_) do_close();
  }

  void do_close() {
    if (close_sent_) return;
    close_sent_ = true;
    ws_.async_close(close_reason_, [self = shared_self()](beast::error_code) {});
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    closed = true;
    timer_.cancel();
    leave();
  }

  websocket::stream<Stream> ws_;
  asio::steady_timer timer_;  // no HELLO in time, then the token's expiry
  beast::flat_buffer buf_;
  std::string ip_;
  std::deque<Queued> queue_;
  size_t queued_bytes_ = 0;
  size_t exempt_bytes_ = 0;  // of queued_bytes_, catch-up frames
  bool writing_ = false;
  bool closing_ = false;
  bool close_sent_ = false;
  bool finished_ = false;
  websocket::close_reason close_reason_;
};

// ---- HTTP session -----------------------------------------------------------------------------

template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(Server::Impl& srv, Stream&& stream, std::string ip) : srv_(srv), stream_(std::move(stream)), ip_(std::move(ip)) {}

  void run() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(stream_).expires_after(srv_.opt.handshake_timeout);
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (!ec) self->do_read();
      });
    } else {
      do_read();
    }
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(8192);
    parser_->body_limit(0);  // none of our requests has a body
    beast::get_lowest_layer(stream_).expires_after(srv_.opt.handshake_timeout);
    http::async_read(stream_, buf_, *parser_, beast::bind_front_handler(&HttpSession::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return;  // closed, timed out, or malformed: drop the connection
    ++srv_.metrics.http_requests;
    auto req = parser_->release();
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    if (websocket::is_upgrade(req)) {
      upgrade(std::move(req), target, path);
      return;
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      respond(req, http::status::method_not_allowed, "text/plain", "only GET\n");
    } else if (path == "/healthz") {
      respond(req, http::status::ok, "text/plain", srv_.stopping ? "stopping\n" : "ok\n");
    } else if (path == "/metrics") {
      respond(req, http::status::ok, "text/plain; version=0.0.4", srv_.metrics.text());
    } else {
      serve_static(req, path);
    }
  }

  void upgrade(http::request<http::empty_body> req, const std::string& target, const std::string& path) {
    auto refuse = [&](http::status st, std::string why) {
      ++srv_.metrics.refused;
      srv_.log.warn("upgrade.refused", {{"peer", ip_}, {"path", path}, {"status", std::to_string(static_cast<int>(st))}, {"why", why}});
      respond(req, st, "text/plain", why + "\n", false);
    };
    if (path.rfind("/ws/", 0) != 0 || !valid_doc_id(path.substr(4))) {
      refuse(http::status::not_found, "WebSocket endpoint is /ws/<doc-id>, doc ids match [A-Za-z0-9._-]{1,128}");
      return;
    }
    const std::string doc = path.substr(4);
    if (srv_.stopping) {
      refuse(http::status::service_unavailable, "server is shutting down");
      return;
    }
    if (!srv_.opt.allowed_origins.empty()) {
      const std::string origin(req[http::field::origin]);
      if (std::find(srv_.opt.allowed_origins.begin(), srv_.opt.allowed_origins.end(), origin) == srv_.opt.allowed_origins.end()) {
        refuse(http::status::forbidden, "origin '" + origin + "' is not allowed");
        return;
      }
    }
    std::string subject;
    bool read_only = false;
    int64_t expires = 0;
    if (!srv_.opt.auth_secret.empty()) {
      std::string token = query_param(target, "token");
      const std::string auth(req[http::field::authorization]);
      if (token.empty() && auth.rfind("Bearer ", 0) == 0) token = auth.substr(7);
      if (token.empty()) {
        refuse(http::status::unauthorized, "a token is required (?token= or Authorization: Bearer)");
        return;
      }
      auto t = verify_token(token, srv_.opt.auth_secret, now_seconds());
      if (!t.ok()) {
        refuse(http::status::unauthorized, t.status().message());
        return;
      }
      if (!pattern_matches(t->doc_pattern, doc)) {
        refuse(http::status::forbidden, "the token does not grant document '" + doc + "'");
        return;
      }
      subject = t->subject;
      read_only = !t->write;
      expires = t->expires;
    }
    {
      std::lock_guard<std::mutex> lock(srv_.net->conn_mu);
      if (srv_.net->sessions >= srv_.opt.max_connections) {
        refuse(http::status::service_unavailable, "too many connections (" + std::to_string(srv_.opt.max_connections) + ")");
        return;
      }
      uint32_t& mine = srv_.net->per_ip[ip_];
      if (mine >= srv_.opt.max_connections_per_ip) {
        refuse(http::status::too_many_requests,
               "too many connections from " + ip_ + " (" + std::to_string(srv_.opt.max_connections_per_ip) + ")");
        return;
      }
      ++mine;
      ++srv_.net->sessions;
    }
    beast::get_lowest_layer(stream_).expires_never();  // the WebSocket has its own timeouts
    auto ws = std::make_shared<WsSession<Stream>>(srv_, std::move(stream_), doc, ip_, subject, expires);
    ws->read_only = read_only;
    ws->run(std::move(req));
  }

  void serve_static(const http::request<http::empty_body>& req, const std::string& path) {
    if (srv_.opt.static_dir.empty()) {
      respond(req, http::status::not_found, "text/plain", "no editor is installed on this server\n");
      return;
    }
    std::string rel = path == "/" || path.rfind("/d/", 0) == 0 ? "/index.html" : path;
    if (rel.find("..") != std::string::npos || rel.find('\0') != std::string::npos) {
      respond(req, http::status::bad_request, "text/plain", "bad path\n");
      return;
    }
    const std::string file = srv_.opt.static_dir + rel;
    std::ifstream in(file, std::ios::binary);
    if (!in || std::filesystem::is_directory(file)) {
      respond(req, http::status::not_found, "text/plain", "not found\n");
      return;
    }
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    respond(req, http::status::ok, mime_type(file), std::move(body));
  }

  void respond(const http::request<http::empty_body>& req, http::status st, const char* type, std::string body,
               bool keep_alive = true) {
    auto res = std::make_shared<http::response<http::string_body>>(st, req.version());
    res->set(http::field::server, "tandem");
    res->set(http::field::content_type, type);
    res->set(http::field::cache_control, "no-store");
    res->keep_alive(keep_alive && req.keep_alive());
    if (req.method() != http::verb::head) res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !res->keep_alive()) {
        beast::error_code ignored;
        beast::get_lowest_layer(self->stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      self->do_read();
    });
  }

  Server::Impl& srv_;
  Stream stream_;
  std::string ip_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::empty_body>> parser_;
};

void do_accept(Server::Impl& srv) {
  srv.net->acceptor.async_accept(asio::make_strand(srv.ioc), [&srv](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      srv.log.warn("accept.failed", {{"error", ec.message()}});
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      const std::string ip = socket.remote_endpoint(ignored).address().to_string();
      if (srv.net->tls) {
        std::make_shared<HttpSession<beast::ssl_stream<beast::tcp_stream>>>(
            srv, beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *srv.net->tls), ip)
            ->run();
      } else {
        std::make_shared<HttpSession<beast::tcp_stream>>(srv, beast::tcp_stream(std::move(socket)), ip)->run();
      }
    }
    if (!srv.stopping) do_accept(srv);
  });
}

}  // namespace

// ---- Server -----------------------------------------------------------------------------------

Server::Server(ServerOptions options, DocStore* store) : impl_(std::make_unique<Impl>(std::move(options), store)) {
  impl_->net = {new Impl::Net(*impl_), [](Impl::Net* n) { delete n; }};
}

Server::~Server() {
  stop();
  if (!impl_->ioc.stopped() && impl_->net->port) {
    // Nobody is running the io_context: run it until the shutdown is done.
    impl_->ioc.restart();
    impl_->ioc.run();
  }
  if (impl_->net->finisher.joinable()) impl_->net->finisher.join();
}

namespace {

// Every 10 ms: how late does a timer handler run? Late means handlers queue up behind each other
// (the CPU is the bottleneck), and rooms start pacing their broadcasts (Room::schedule_flush).
// Hysteresis keeps it from flapping.
void probe_lag(Server::Impl& s) {
  auto& t = *s.net->lag_probe;
  t.expires_after(std::chrono::milliseconds(10));
  t.async_wait([&s](beast::error_code ec) {
    if (ec || s.stopping) return;
    const auto lag = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - s.net->lag_probe->expiry());
    s.metrics.loop_lag_us = lag.count();
    if (lag > std::chrono::milliseconds(4)) {
      s.metrics.busy = true;
    } else if (lag < std::chrono::milliseconds(1)) {
      s.metrics.busy = false;
    }
    probe_lag(s);
  });
}

}  // namespace

Status Server::start() {
  Impl& s = *impl_;
  if (!s.opt.tls_cert.empty() || !s.opt.tls_key.empty()) {
    s.net->tls.emplace(ssl::context::tls_server);
    beast::error_code ec;
    s.net->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                            ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    s.net->tls->use_certificate_chain_file(s.opt.tls_cert, ec);
    if (!ec) s.net->tls->use_private_key_file(s.opt.tls_key, ssl::context::pem, ec);
    if (ec) return Status::IOError("TLS certificate or key: " + ec.message());
  }
  beast::error_code ec;
  const auto addr = asio::ip::make_address(s.opt.host, ec);
  if (ec) return Status::InvalidArgument("bad host '" + s.opt.host + "': " + ec.message());
  const tcp::endpoint ep(addr, s.opt.port);
  auto& acc = s.net->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::IOError("cannot listen on " + s.opt.host + ":" + std::to_string(s.opt.port) + ": " + ec.message());
  s.net->port = acc.local_endpoint().port();
  if (s.opt.handle_signals) {
    s.net->signals.add(SIGINT);
    s.net->signals.add(SIGTERM);
    s.net->signals.async_wait([this](beast::error_code e, int sig) {
      if (e) return;
      impl_->log.info("server.signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      stop();
    });
  }
  const std::string scheme = s.net->tls ? "https" : "http";
  s.log.info("server.listen", {{"url", scheme + "://" + s.opt.host + ":" + std::to_string(s.net->port) + "/"},
                               {"auth", s.opt.auth_secret.empty() ? "off" : "on"}});
  if (s.opt.auth_secret.empty()) {
    s.log.warn("server.open", {{"note", "no --auth-secret: anyone who can reach this port can read and write every document"}});
  }
  do_accept(s);
  s.net->lag_probe.emplace(s.ioc);
  probe_lag(s);
  return Status::OK();
}

uint16_t Server::port() const { return impl_->net->port; }

void Server::run() {
  Impl& s = *impl_;
  const int n = s.opt.threads > 0 ? s.opt.threads : std::max(1u, std::thread::hardware_concurrency());
  auto guard = asio::make_work_guard(s.ioc);  // run() ends when stop() stops the io_context
  std::vector<std::thread> threads;
  // Sessions and rooms contain their own exceptions; anything else escaping a handler is logged
  // and the thread goes back to work rather than take the server down.
  auto work = [&s] {
    for (;;) {
      try {
        s.ioc.run();
        return;
      } catch (const std::exception& e) {
        s.log.error("handler.exception", {{"error", e.what()}});
      }
    }
  };
  for (int i = 1; i < n; ++i) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
}

void Server::stop() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  s.log.info("server.stopping", {});
  asio::post(s.ioc, [&s] {
    beast::error_code ec;
    s.net->acceptor.close(ec);
    s.net->signals.cancel();
    if (s.net->lag_probe) s.net->lag_probe->cancel();
    std::vector<std::shared_ptr<Room>> rooms;
    {
      std::lock_guard<std::mutex> lock(s.rooms_mu);
      for (auto& [name, r] : s.rooms) rooms.push_back(r);
    }
    // Every room flushes, closes its sessions ("going away") and queues its snapshot; then the
    // store is flushed off the I/O threads, and the I/O threads stop.
    auto left = std::make_shared<std::atomic<size_t>>(rooms.size() + 1);
    auto one_done = [&s, left] {
      if (--*left != 0) return;
      s.net->finisher = std::thread([&s] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the close frames go out
        Status st = s.store->flush();
        if (!st.ok()) s.log.error("server.flush_failed", {{"error", st.ToString()}});
        s.log.info("server.stopped", {});
        s.net->shut_down = true;
        s.ioc.stop();
      });
    };
    for (auto& r : rooms) r->shutdown(one_done);
    one_done();
  });
}

std::string Server::metrics() const { return impl_->metrics.text(); }

}  // namespace tandem::net
