// Listener, HTTP sessions (routes, upgrade checks), WebSocket sessions, and the server's life.
// Each WebSocket session lives on its document's I/O thread (a plain socket moves there at the
// upgrade; a TLS one stays where it was accepted and posts across), with limits on everything a
// peer sends, one write in flight per session and a bounded queue behind it.
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "crdt/codec.h"
#include "http_api.h"
#include "net/auth.h"
#include "net/webhook.h"
#include "room.h"
#include "session.h"
#include "static_files.h"
#include "ws_frame.h"

namespace tandem::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using crdt::Status;

namespace {

// A request's token: ?token= (browsers cannot set headers on a WebSocket) or Authorization: Bearer.
template <class Req>
std::string token_of(const Req& req, std::string_view target) {
  std::string token = query_param(target, "token");
  const std::string auth(req[http::field::authorization]);
  if (token.empty() && auth.rfind("Bearer ", 0) == 0) token = auth.substr(7);
  return token;
}

// At most n bytes of s, not cutting a UTF-8 sequence (a close reason must be valid UTF-8).
std::string utf8_prefix(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string_view sv(beast::string_view v) { return {v.data(), v.size()}; }

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

crdt::Result<Token> Server::Impl::authorize(std::string_view token) const {
  if (token.empty()) return Status::InvalidArgument("a token is required (?token= or Authorization: Bearer)");
  if (jwt && (opt.auth_secret.empty() || JwtVerifier::looks_like_jwt(token))) return jwt->verify(token, now_seconds());
  if (opt.auth_secret.empty()) return Status::InvalidArgument("this server takes JWTs only");
  return verify_token(token, opt.auth_secret, now_seconds());
}

struct LagProbe;

// What the network side of the server keeps: the acceptor, TLS, connection counts.
struct Server::Impl::Net {
  explicit Net(Server::Impl& impl) : acceptor(impl.ioc), signals(impl.ioc) {}
  tcp::acceptor acceptor;
  asio::signal_set signals;
  std::optional<ssl::context> tls;
  std::atomic<bool> shut_down{false};
  std::thread finisher;  // the last step of stop(): flush the store, stop the io_context
  std::vector<std::unique_ptr<LagProbe>> lag_probes;  // one per I/O thread
  std::shared_ptr<Webhooks> webhooks;  // when configured; rooms reach them through Impl::on_durable
  size_t next_thread = 0;                     // where the next connection is accepted
  uint16_t port = 0;
  // The HTTP API's store reads (listing, rebuilding past versions), off the I/O threads.
  asio::thread_pool api_pool{2};
  std::optional<StaticFiles> statics;  // the editor, when ServerOptions::static_dir names it
};


namespace {

// ---- WebSocket session ------------------------------------------------------------------------
//
// RFC 6455 on the socket directly (ws_frame.h), not through Beast's stream, so that a session
// costs one system call per write of everything queued for it, and none per frame: frames queued
// while a round of the I/O thread runs (broadcasts, acknowledgements) go out together in one
// sendmsg at the end of that round. Reads use Asio's async_read_some, which reads speculatively
// only when the socket reported data since the last short read.
//
// Stream is tcp::socket (plain; the socket lives on its document's I/O thread) or
// beast::ssl_stream<beast::tcp_stream> (TLS; it stays on the thread that accepted it and writes
// through async_write).

template <class Stream>
class WsSession final : public ClientSession {
  static constexpr bool kPlain = std::is_same_v<Stream, tcp::socket>;
  static constexpr size_t kReadBuffer = 2048;  // grown for a larger frame, shrunk back after
  static constexpr size_t kMaxGather = 64;     // frames per write

  // The session's life, one way only:
  //   kNew -> kOpen                       start(): the 101 is on its way
  //   kOpen -> kClosing                   this side closes (ERROR, a shutdown, too slow): its
  //                                       close frame is queued; no more data frames or pings
  //   kOpen | kClosing -> kPeerClosed     the peer's close frame came (kOpen answers it), or it
  //                                       broke the framing: ours goes out, then the end
  //   kClosing -> kCloseSent              ours is written; the peer's close is awaited
  //   kPeerClosed | kCloseSent -> kTorn   both closes done (teardown), or at once from any
  //                                       state before it (drop: idle, a failed write, the
  //                                       close timer): nothing is written any more
  //   any -> kFinished                    the connection ended (finish): the room is left
  // Input is read and dropped from kPeerClosed on. Beside it, what is not the session's life:
  // a write in flight or posted, and the idle watch (heard, pinged).
  enum class Phase { kNew, kOpen, kClosing, kPeerClosed, kCloseSent, kTorn, kFinished };
  bool discarding() const { return phase_ == Phase::kPeerClosed || phase_ >= Phase::kTorn; }

 public:
  WsSession(Server::Impl& srv, IoThread& home, Stream&& stream, std::string doc, std::string ip, std::string subject,
            int64_t expires)
      : ClientSession(srv, std::move(doc), std::move(subject), expires),
        home_(home),
        ex_(home.ioc.get_executor()),
        stream_(std::move(stream)),
        timer_(ex_),
        idle_timer_(ex_),
        ip_(std::move(ip)),
        parser_(true, srv.opt.max_frame_bytes) {
    peer = ip_;
  }

  ~WsSession() override {
    srv_.metrics.queued_bytes -= static_cast<int64_t>(queued_bytes_);
    if (phase_ != Phase::kNew) --srv_.metrics.connections;
    std::lock_guard<std::mutex> lock(srv_.conns.mu);
    --srv_.conns.sessions;
    auto it = srv_.conns.per_ip.find(ip_);
    if (it != srv_.conns.per_ip.end() && --it->second == 0) srv_.conns.per_ip.erase(it);
  }

  // A session whose upgrade is refused in-band (a browser cannot read the status of a refused
  // upgrade, only a close code): after the 101 it gets this ERROR and is closed at once.
  void refuse(uint16_t code, std::string message) { refusal_ = {code, std::move(message)}; }

  // On the session's thread: writes the 101 response, then reads frames (starting with any
  // bytes that came after the HTTP request).
  void start(std::string response, std::string early) {
    phase_ = Phase::kOpen;
    ++srv_.metrics.connections;
    ++srv_.metrics.connections_total;
    if constexpr (kPlain) {
      beast::error_code ec;
      stream_.non_blocking(true, ec);
    }
    // A connection that never says HELLO would hold a slot forever (it answers pings).
    timer_.expires_after(srv_.opt.handshake_timeout);
    timer_.async_wait([self = shared_self()](beast::error_code e) {
      if (!e && !self->joined()) self->close_with(proto::kBadMessage, "no HELLO within the handshake timeout");
    });
    arm_idle_timer();
    push({std::make_shared<const std::string>(std::move(response)), 0, true, false});
    if (refusal_) {
      srv_.metrics.count_error(refusal_->first);
      enqueue(make_frame(proto::encode(proto::Error{refusal_->first, refusal_->second})), 0, Kind::kError);
      begin_close(refusal_->first, refusal_->second);
    }
    in_.resize(std::max(kReadBuffer, early.size()));
    std::memcpy(in_.data(), early.data(), early.size());
    in_len_ = early.size();
    if (in_len_ > 0) parse();
    // Plain: what arrived before this thread had the socket may have signalled readiness
    // already; read first, then wait.
    if constexpr (kPlain) {
      read_now();
    } else {
      do_read();
    }
  }

  void send(Frame frame, uint64_t ops, bool catch_up) override {
    on_thread([self = shared_self(), frame = std::move(frame), ops, catch_up]() mutable {
      self->enqueue(std::move(frame), ops, catch_up ? Kind::kCatchUp : Kind::kLive);
    });
  }

  void close_with(uint16_t code, std::string message) override {
    closed = true;
    on_thread([self = shared_self(), code, message = std::move(message)]() mutable {
      if (self->phase_ != Phase::kOpen) return;
      self->srv_.metrics.count_error(code);
      self->srv_.log.warn("session.error", {{"doc", self->doc_},
                                            {"session", std::to_string(self->id)},
                                            {"code", std::to_string(code)},
                                            {"error", message}});
      self->enqueue(make_frame(proto::encode(proto::Error{code, message})), 0, Kind::kError);
      self->begin_close(code, message);
    });
  }

  void close_plain(uint16_t code, std::string reason) override {
    closed = true;
    on_thread([self = shared_self(), code, reason = std::move(reason)] {
      if (self->phase_ == Phase::kOpen) self->begin_close(code, reason);
    });
  }

 private:
  std::shared_ptr<WsSession> shared_self() { return std::static_pointer_cast<WsSession>(shared_from_this()); }

  std::optional<std::pair<uint16_t, std::string>> refusal_;

  template <class F>
  void on_thread(F&& f) {
    if (ex_.running_in_this_thread()) {
      f();
    } else {
      asio::post(ex_, std::forward<F>(f));
    }
  }

  // Plain sockets: wait until readable, then read until a read comes back short. (Asio 1.74's
  // async_read_some reads speculatively whenever the last read returned data, and on a socket
  // with nothing more to read that is one EAGAIN per message.) No readiness is lost between the
  // short read and the next wait: this session's thread is the only one that runs its
  // io_context's epoll_wait, and it registers the wait before it gets back there.
  // TLS: async_read_some through the TLS stream.
  void do_read() {
    if constexpr (kPlain) {
      stream_.async_wait(tcp::socket::wait_read, [self = shared_self()](beast::error_code ec) {
        if (ec) return self->finish();
        self->read_now();
      });
    } else {
      if (in_len_ == in_.size()) in_.resize(in_.size() * 2);
      stream_.async_read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
                              beast::bind_front_handler(&WsSession::on_read, shared_self()));
    }
  }

  void read_now() {
    for (;;) {
      if (in_len_ == in_.size()) in_.resize(in_.size() * 2);  // parse() wants a larger frame
      const size_t space = in_.size() - in_len_;
      beast::error_code ec;
      const size_t n = stream_.read_some(asio::buffer(in_.data() + in_len_, space), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) return finish();
      consume_input(n);
      if (phase_ == Phase::kFinished) return;
      if (n < space) break;
    }
    do_read();
  }

  void on_read(beast::error_code ec, std::size_t n) {
    if (ec) return finish();
    consume_input(n);
    do_read();
  }

  void consume_input(size_t n) {
    srv_.metrics.bytes_in += n;
    heard_ = true;
    if (discarding()) return;  // closed: only the end of the connection is still of interest
    in_len_ += n;
    parse();
    if (in_len_ == 0 && in_.size() > 64 * kReadBuffer) {
      in_.resize(kReadBuffer);
      in_.shrink_to_fit();
    }
  }

  // Handles every complete frame in in_[0, in_len_) and keeps the rest at the front.
  void parse() {
    size_t off = 0;
    while (!discarding()) {
      auto e = parser_.next(in_.data() + off, in_len_ - off);
      using K = ws::FrameParser::Kind;
      if (e.kind == K::kNeedMore) {
        if (e.need > in_.size() - off) {
          if (off > 0) {
            std::memmove(in_.data(), in_.data() + off, in_len_ - off);
            in_len_ -= off;
            off = 0;
          }
          in_.resize(std::max(e.need, in_.size()));
        }
        break;
      }
      off += e.consumed;
      switch (e.kind) {
        case K::kMessage:
          // After a close, data is read and dropped (the close frame ends the session).
          if (phase_ == Phase::kOpen) on_message(e.payload, e.binary);
          break;
        case K::kPing:
          if (phase_ == Phase::kOpen) push({std::make_shared<const std::string>(ws::frame(ws::kPong, e.payload)), 0, true, false});
          break;
        case K::kClose:
          if (phase_ == Phase::kOpen) {
            // The client closes: answer with its code (RFC 6455 5.5.1), then end.
            leave_open(Phase::kPeerClosed, e.close_code ? e.close_code : ws::kCloseNormal, "");
          } else if (phase_ == Phase::kClosing) {
            phase_ = Phase::kPeerClosed;  // ours goes out, then the end
          } else if (phase_ == Phase::kCloseSent) {
            teardown();
          }
          break;
        case K::kError:
          srv_.metrics.count_error(e.close_code);
          srv_.log.warn("session.error", {{"doc", doc_}, {"session", std::to_string(id)},
                                          {"code", std::to_string(e.close_code)},
                                          {"error", e.close_code == ws::kCloseTooBig
                                                        ? "message over " + std::to_string(srv_.opt.max_frame_bytes) + " bytes"
                                                        : std::string(e.error)}});
          // Fail the connection: the close frame, then the end, without waiting for an answer.
          if (phase_ == Phase::kOpen) {
            leave_open(Phase::kPeerClosed, e.close_code, e.error);
          } else if (phase_ == Phase::kClosing) {
            phase_ = Phase::kPeerClosed;
          } else if (phase_ == Phase::kCloseSent) {
            teardown();
          }
          break;
        default:
          break;
      }
    }
    if (discarding()) {
      in_len_ = 0;
    } else if (off > 0) {
      std::memmove(in_.data(), in_.data() + off, in_len_ - off);
      in_len_ -= off;
    }
  }

  // The token's expiry ends the session too, not just new connections.
  void on_joined() override {
    timer_.cancel();
    if (expires_ > 0) {
      timer_.expires_after(std::chrono::seconds(std::max<int64_t>(0, expires_ - now_seconds())));
      timer_.async_wait([self = shared_self()](beast::error_code e) {
        if (!e) self->close_with(proto::kUnauthorized, "the access token expired");
      });
    }
  }

  // Every idle/2: a ping if anything was heard since the last firing (always at the first),
  // else the connection is dropped.
  void arm_idle_timer() {
    idle_timer_.expires_after(srv_.opt.idle_timeout / 2);
    idle_timer_.async_wait([self = shared_self()](beast::error_code e) {
      if (e || self->phase_ >= Phase::kTorn) return;
      if (!self->heard_ && self->pinged_) {
        self->drop();
        return;
      }
      self->heard_ = false;
      self->pinged_ = true;
      if (self->phase_ == Phase::kOpen) self->push({std::make_shared<const std::string>(ws::frame(ws::kPing, "")), 0, true, false});
      self->arm_idle_timer();
    });
  }

  // kLive frames count against the queue limit; kCatchUp frames do not (their bytes are kept
  // apart); only kError frames are queued once the session is closing.
  enum class Kind { kLive, kCatchUp, kError };

  void enqueue(Frame frame, uint64_t ops, Kind kind) {
    if (phase_ != Phase::kOpen && kind != Kind::kError) return;
    // The limit is on the live backlog: a frame larger than it still goes out when nothing waits.
    const size_t live = queued_bytes_ - exempt_bytes_;
    if (kind == Kind::kLive && live > 0 && live + frame->size() > srv_.opt.max_queue_bytes) {
      // Dropping what this session could not take keeps everyone else unaffected; the client
      // resyncs when it reconnects.
      srv_.metrics.count_error(proto::kTooSlow);
      srv_.log.warn("session.too_slow", {{"doc", doc_}, {"session", std::to_string(id)},
                                         {"queued_bytes", std::to_string(queued_bytes_)}});
      // Everything but what is being written goes.
      while (queue_.size() > in_flight()) {
        release(queue_.back());
        queue_.pop_back();
      }
      closed = true;
      static const std::string kWhy = "too slow: outgoing queue over limit; reconnect";
      push({make_frame(proto::encode(proto::Error{proto::kTooSlow, kWhy})), 0, false, false});
      begin_close(proto::kTooSlow, kWhy);
      return;
    }
    push({std::move(frame), ops, kind == Kind::kCatchUp, false});
  }

  // REQUIRES: phase_ == kOpen.
  void begin_close(uint16_t code, const std::string& reason) {
    leave_open(Phase::kClosing, code, utf8_prefix(reason, 120));
    // The client has the handshake timeout to answer the close.
    timer_.cancel();
    timer_.expires_after(srv_.opt.handshake_timeout);
    timer_.async_wait([self = shared_self()](beast::error_code e) {
      if (!e) self->drop();
    });
  }

  // kOpen -> kClosing (this side closes) or kPeerClosed (the peer did, or broke the protocol):
  // the one close frame this session sends is queued behind what is queued.
  void leave_open(Phase to, uint16_t code, std::string_view reason) {
    phase_ = to;
    closed = true;
    push({std::make_shared<const std::string>(ws::close_frame(code, reason)), 0, true, true});
  }

  struct Queued {
    Frame frame;
    uint64_t ops;
    bool exempt;
    bool is_close;
  };

  void push(Queued q) {
    if (phase_ >= Phase::kTorn) return;
    const size_t n = q.frame->size();
    queued_bytes_ += n;
    if (q.exempt) exempt_bytes_ += n;
    srv_.metrics.queued_bytes += static_cast<int64_t>(n);
    if (queued_bytes_ > srv_.metrics.queue_peak) srv_.metrics.queue_peak = queued_bytes_;
    queue_.push_back(std::move(q));
    // Written at the end of this round of the thread, with whatever else is queued by then.
    if (!writing_ && !write_posted_) {
      write_posted_ = true;
      home_.defer_write(shared_from_this());
    }
  }

  void write_queued() override {
    write_posted_ = false;
    write_now();
  }

  void release(const Queued& q) {
    const size_t n = q.frame->size();
    queued_bytes_ -= n;
    if (q.exempt) exempt_bytes_ -= n;
    srv_.metrics.queued_bytes -= static_cast<int64_t>(n);
  }

  // Queue entries a write has started on, which must stay.
  size_t in_flight() const {
    if constexpr (kPlain) {
      return head_off_ > 0 ? 1 : 0;
    } else {
      return writing_ ? gathered_ : 0;
    }
  }

  void gather() {
    bufs_.clear();
    for (size_t i = 0; i < queue_.size() && bufs_.size() < kMaxGather; ++i) {
      const std::string& f = *queue_[i].frame;
      const size_t off = i == 0 ? head_off_ : 0;
      bufs_.emplace_back(f.data() + off, f.size() - off);
    }
    gathered_ = bufs_.size();
  }

  void write_now() {
    if (writing_ || phase_ >= Phase::kTorn || queue_.empty()) return;
    gather();
    if constexpr (kPlain) {
      beast::error_code ec;
      size_t n = stream_.write_some(bufs_, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        n = 0;
      } else if (ec) {
        write_failed();
        return;
      }
      consumed(n);
      if (!queue_.empty()) {
        // The socket is full: go on when it can take more.
        writing_ = true;
        stream_.async_wait(tcp::socket::wait_write, [self = shared_self()](beast::error_code e) {
          self->writing_ = false;
          if (e) return self->write_failed();
          self->write_now();
        });
      }
    } else {
      writing_ = true;
      asio::async_write(stream_, bufs_, [self = shared_self()](beast::error_code e, size_t n) {
        self->writing_ = false;
        if (e) return self->write_failed();
        self->consumed(n);
        self->write_now();
      });
    }
  }

  // n bytes from the front of the queue were written.
  void consumed(size_t n) {
    srv_.metrics.bytes_out += n;
    while (n > 0) {
      Queued& q = queue_.front();
      const size_t left = q.frame->size() - head_off_;
      if (n < left) {
        head_off_ += n;
        break;
      }
      n -= left;
      head_off_ = 0;
      srv_.metrics.ops_out += q.ops;
      const bool was_close = q.is_close;
      release(q);
      queue_.pop_front();
      if (was_close) {
        if (phase_ == Phase::kPeerClosed) {
          teardown();
        } else if (phase_ == Phase::kClosing) {
          phase_ = Phase::kCloseSent;
        }
      }
    }
  }

  void write_failed() {
    for (const auto& q : queue_) release(q);
    queue_.clear();
    head_off_ = 0;
    drop();  // the read side sees the end and finishes
  }

  // After the closing handshake: no more writes; the read side waits for the peer's end of the
  // connection (or the close timer) and finishes.
  void teardown() {
    if (phase_ >= Phase::kTorn) return;
    phase_ = Phase::kTorn;
    beast::error_code ec;
    if constexpr (kPlain) {
      stream_.shutdown(tcp::socket::shutdown_send, ec);
    } else {
      beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  // Ends the connection at once, without a close frame (idle, write failure, close timeout).
  void drop() {
    if (phase_ < Phase::kTorn) phase_ = Phase::kTorn;
    closed = true;
    beast::error_code ec;
    if constexpr (kPlain) {
      stream_.close(ec);
    } else {
      beast::get_lowest_layer(stream_).close();
    }
  }

  void finish() {
    if (phase_ == Phase::kFinished) return;
    phase_ = Phase::kFinished;
    closed = true;
    timer_.cancel();
    idle_timer_.cancel();
    beast::error_code ec;
    if constexpr (kPlain) {
      stream_.close(ec);
    } else {
      beast::get_lowest_layer(stream_).close();
    }
    leave();
  }

  IoThread& home_;                      // the thread this session runs on
  asio::io_context::executor_type ex_;  // home_'s
  Stream stream_;
  asio::steady_timer timer_;       // no HELLO in time, then the token's expiry, then the close
  asio::steady_timer idle_timer_;  // pings
  std::string ip_;
  ws::FrameParser parser_;
  std::vector<char> in_;
  size_t in_len_ = 0;
  std::deque<Queued> queue_;
  std::vector<asio::const_buffer> bufs_;
  size_t gathered_ = 0;
  size_t head_off_ = 0;  // bytes of the front frame already written
  size_t queued_bytes_ = 0;
  size_t exempt_bytes_ = 0;  // of queued_bytes_, catch-up and control frames
  Phase phase_ = Phase::kNew;
  bool writing_ = false;
  bool write_posted_ = false;
  bool heard_ = false;         // bytes arrived since the idle timer last fired
  bool pinged_ = false;
};


// ---- HTTP session -----------------------------------------------------------------------------

template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
  using Request = http::request<http::string_body>;

 public:
  HttpSession(Server::Impl& srv, IoThread& home, Stream&& stream, std::string ip)
      : srv_(srv), home_(home), stream_(std::move(stream)), ip_(std::move(ip)) {}

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
    parser_->body_limit(srv_.opt.max_frame_bytes);  // the HTTP API's edits: as large as a WebSocket message
    beast::get_lowest_layer(stream_).expires_after(srv_.opt.handshake_timeout);
    http::async_read(stream_, buf_, *parser_, beast::bind_front_handler(&HttpSession::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::body_limit) {
      Request req(parser_->get().base());
      req.keep_alive(false);
      auto e = api_error(413, "too_large", "request body over " + std::to_string(srv_.opt.max_frame_bytes) + " bytes");
      respond(req, http::status::payload_too_large, "application/json", std::move(e.body), false);
      return;
    }
    if (ec) return;  // closed, timed out, or malformed: drop the connection
    ++srv_.metrics.http_requests;
    auto req = parser_->release();
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    if (websocket::is_upgrade(req)) {
      upgrade(std::move(req), target, path);
      return;
    }
    if (is_api_path(path)) {
      ++srv_.metrics.api_requests;
      ApiRequest api{std::string(req.method_string()), target, std::move(req.body()), token_of(req, target),
                     std::string(req[http::field::content_type])};
      auto self = this->shared_from_this();
      auto shared_req = std::make_shared<Request>(std::move(req));
      handle_api(srv_, srv_.net->api_pool.get_executor(), std::move(api), [self, shared_req](ApiResponse r) {
        asio::post(self->stream_.get_executor(), [self, shared_req, r = std::move(r)]() mutable {
          self->respond(*shared_req, static_cast<http::status>(r.status), "application/json", std::move(r.body));
        });
      });
      return;
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      respond(req, http::status::method_not_allowed, "text/plain", "only GET\n");
    } else if (path == "/healthz") {
      // A stopping server fails its health check first, so that a balancer sends no one here.
      respond(req, srv_.stopping ? http::status::service_unavailable : http::status::ok, "text/plain",
              srv_.stopping ? "stopping\n" : "ok\n");
    } else if (path == "/metrics") {
      const std::string auth(req[http::field::authorization]);
      if (!srv_.opt.metrics_token.empty() &&
          !(auth.rfind("Bearer ", 0) == 0 && same_secret(std::string_view(auth).substr(7), srv_.opt.metrics_token))) {
        respond(req, http::status::unauthorized, "text/plain", "/metrics wants Authorization: Bearer <the metrics token>\n");
      } else {
        respond(req, http::status::ok, "text/plain; version=0.0.4", srv_.metrics.text());
      }
    } else {
      serve_static(req, path);
    }
  }

  void upgrade(Request req, const std::string& target, const std::string& path) {
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
    if (req[http::field::sec_websocket_version] != "13") {
      refuse(http::status::upgrade_required, "Sec-WebSocket-Version must be 13");
      return;
    }
    if (!ws::valid_client_key(sv(req[http::field::sec_websocket_key]))) {
      refuse(http::status::bad_request, "Sec-WebSocket-Key is missing or is not base64 of 16 bytes");
      return;
    }
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
    std::optional<std::pair<uint16_t, std::string>> refusal;  // in-band, after the 101
    if (srv_.auth_on()) {
      const std::string token = token_of(req, target);
      auto t = srv_.authorize(token);
      if (!t.ok()) {
        refusal.emplace(proto::kUnauthorized, token.empty() ? "a token is required (?token= or Authorization: Bearer)"
                                                            : t.status().message());
      } else if (!t->grants(doc)) {
        refusal.emplace(proto::kForbidden, "the token does not grant document '" + doc + "'");
      } else {
        subject = t->subject;
        read_only = !t->write;
        expires = t->expires;
      }
      if (refusal) {
        ++srv_.metrics.refused;
        srv_.log.warn("upgrade.refused", {{"peer", ip_}, {"path", path}, {"code", std::to_string(refusal->first)}, {"why", refusal->second}});
      }
    }
    {
      std::lock_guard<std::mutex> lock(srv_.conns.mu);
      if (srv_.conns.sessions >= srv_.opt.max_connections) {
        refuse(http::status::service_unavailable, "too many connections (" + std::to_string(srv_.opt.max_connections) + ")");
        return;
      }
      uint32_t& mine = srv_.conns.per_ip[ip_];
      if (mine >= srv_.opt.max_connections_per_ip) {
        refuse(http::status::too_many_requests,
               "too many connections from " + ip_ + " (" + std::to_string(srv_.opt.max_connections_per_ip) + ")");
        return;
      }
      ++mine;
      ++srv_.conns.sessions;
    }
    beast::get_lowest_layer(stream_).expires_never();  // the WebSocket has its own timeouts
    std::string response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: " + ws::accept_key(sv(req[http::field::sec_websocket_key])) +
                           "\r\nServer: tandem\r\n\r\n";
    std::string early = beast::buffers_to_string(buf_.data());  // frames sent right behind the request
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      // The socket moves to its document's I/O thread, where the room runs.
      IoThread& t = srv_.thread_for(doc);
      tcp::socket socket = stream_.release_socket();
      beast::error_code ec;
      const auto protocol = socket.local_endpoint(ec).protocol();
      tcp::socket moved(t.ioc);
      if (!ec) {
        const auto fd = socket.release(ec);
        if (!ec) moved.assign(protocol, fd, ec);
      }
      if (ec) {
        srv_.log.warn("upgrade.failed", {{"peer", ip_}, {"error", ec.message()}});
        std::lock_guard<std::mutex> lock(srv_.conns.mu);
        --srv_.conns.sessions;
        auto it = srv_.conns.per_ip.find(ip_);
        if (it != srv_.conns.per_ip.end() && --it->second == 0) srv_.conns.per_ip.erase(it);
        return;
      }
      auto session = std::make_shared<WsSession<tcp::socket>>(srv_, t, std::move(moved), doc, ip_, subject, expires);
      session->read_only = read_only;
      if (refusal) session->refuse(refusal->first, std::move(refusal->second));
      asio::post(t.ioc, [session, response = std::move(response), early = std::move(early)]() mutable {
        session->start(std::move(response), std::move(early));
      });
    } else {
      auto session = std::make_shared<WsSession<Stream>>(srv_, home_, std::move(stream_), doc, ip_, subject, expires);
      session->read_only = read_only;
      if (refusal) session->refuse(refusal->first, std::move(refusal->second));
      session->start(std::move(response), std::move(early));
    }
  }

  void serve_static(const Request& req, const std::string& path) {
    const auto& statics = srv_.net->statics;
    if (!statics) {
      respond(req, http::status::not_found, "text/plain",
              "This Tandem server has no editor: it was started without one (the editor is built by web-editor/build.sh,\n"
              "or given with --static DIR). The sync server is at /ws/<doc-id>, the HTTP API at /api/docs.\n");
      return;
    }
    const StaticFiles::File* f = statics->find(path);
    if (!f) {
      respond(req, http::status::not_found, "text/plain", "not found: " + path + " (the editor is at / and /d/<doc-id>)\n");
      return;
    }
    auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, req.version());
    res->set(http::field::server, "tandem");
    res->set(http::field::content_type, f->type);
    res->set(http::field::cache_control, f->cache);
    res->set(http::field::etag, f->etag);
    res->set(http::field::vary, "Accept-Encoding");
    const bool gz = !f->gzip.empty() && accepts_gzip(sv(req[http::field::accept_encoding]));
    if (gz) res->set(http::field::content_encoding, "gzip");
    if (sv(req[http::field::if_none_match]) == f->etag) {
      res->result(http::status::not_modified);
    } else if (req.method() != http::verb::head) {
      res->body() = gz ? f->gzip : f->body;
    }
    res->keep_alive(req.keep_alive());
    if (res->result() == http::status::not_modified) {
      res->content_length(boost::none);
    } else if (req.method() == http::verb::head) {
      res->content_length((gz ? f->gzip : f->body).size());
    } else {
      res->prepare_payload();
    }
    write_response(std::move(res));
  }

  void respond(const Request& req, http::status st, const char* type, std::string body,
               bool keep_alive = true) {
    auto res = std::make_shared<http::response<http::string_body>>(st, req.version());
    res->set(http::field::server, "tandem");
    res->set(http::field::content_type, type);
    res->set(http::field::cache_control, "no-store");
    res->keep_alive(keep_alive && req.keep_alive());
    if (req.method() != http::verb::head) res->body() = std::move(body);
    res->prepare_payload();
    write_response(std::move(res));
  }

  void write_response(std::shared_ptr<http::response<http::string_body>> res) {
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
  IoThread& home_;
  Stream stream_;
  std::string ip_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
};

void do_accept(Server::Impl& srv) {
  // New connections go round the I/O threads; a WebSocket then moves to its document's thread.
  IoThread& home = *srv.threads[srv.net->next_thread++ % srv.threads.size()];
  srv.net->acceptor.async_accept(home.ioc, [&srv, &home](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      srv.log.warn("accept.failed", {{"error", ec.message()}});
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      const std::string ip = socket.remote_endpoint(ignored).address().to_string();
      if (srv.net->tls) {
        auto http = std::make_shared<HttpSession<beast::ssl_stream<beast::tcp_stream>>>(
            srv, home, beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *srv.net->tls), ip);
        asio::post(home.ioc, [http] { http->run(); });
      } else {
        auto http = std::make_shared<HttpSession<beast::tcp_stream>>(srv, home, beast::tcp_stream(std::move(socket)), ip);
        asio::post(home.ioc, [http] { http->run(); });
      }
    }
    if (!srv.stopping) do_accept(srv);
  });
}

}  // namespace

// ---- Server -----------------------------------------------------------------------------------

Server::Server(ServerOptions options, store::DocStore* store) : impl_(std::make_unique<Impl>(std::move(options), store)) {
  impl_->net = {new Impl::Net(*impl_), [](Impl::Net* n) { delete n; }};
}

Server::~Server() {
  stop();
  if (!impl_->ioc.stopped() && impl_->net->port) {
    // Nobody is running the I/O threads: run them until the shutdown is done.
    for (auto& t : impl_->threads) t->ioc.restart();
    run();
  }
  if (impl_->net->finisher.joinable()) impl_->net->finisher.join();
}

namespace {

}  // namespace

// Every 10 ms, on each I/O thread: how late does a timer handler run (a metric), and, every
// 100 ms, how much of its time did the thread work? Broadcast pacing follows
// (IoThread::pace_us_per_session): it grows by half (and 100 us) while the thread, or its share of
// the process, works over 80% of the time, and halves below 65%. A server that keeps up with
// room to spare never paces; one near its capacity coalesces broadcasts until its sends fit.
// (An earlier rule paced whenever a probe ran 4 ms late; the store's writer and the kernel, on
// the same core, made that happen at light load, and broadcasts were delayed for nothing.)
struct LagProbe {
  Server::Impl& s;
  IoThread& t;
  asio::steady_timer timer;
  int ticks = 0;
  Clock::time_point since = Clock::now();
  int64_t cpu_ns_since = 0;
  int64_t worst_lag_us = 0;
  int64_t util_permille = 0;

  int64_t process_cpu_ns_since = 0;

  static int64_t cpu_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }

  void arm() {
    timer.expires_after(std::chrono::milliseconds(10));
    timer.async_wait([this](beast::error_code ec) {
      if (ec || s.stopping) return;
      const auto lag = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - timer.expiry()).count();
      t.lag_us = lag;
      worst_lag_us = std::max<int64_t>(worst_lag_us, lag);
      if (++ticks == 1) {
        since = Clock::now();
        cpu_ns_since = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
        process_cpu_ns_since = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
      } else if (ticks > 10) {
        // The thread's own share, or its share of the whole process's (the store's writer and
        // the kernel's work on its sockets run on the same cores), whichever is larger.
        const auto now = Clock::now();
        const int64_t cpu = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
        const int64_t process_cpu = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
        const double wall = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - since).count());
        const double mine = wall > 0 ? static_cast<double>(cpu - cpu_ns_since) / wall : 0;
        const double all = wall > 0 ? static_cast<double>(process_cpu - process_cpu_ns_since) / wall /
                                          static_cast<double>(s.threads.size())
                                    : 0;
        const double util = std::max(mine, all);
        adjust(util);
        util_permille = static_cast<int64_t>(util * 1000);
        ticks = 1;
        since = now;
        cpu_ns_since = cpu;
        process_cpu_ns_since = process_cpu;
        worst_lag_us = 0;
      }
      int64_t worst = 0, pace = 0;
      bool any_busy = false;
      for (const auto& other : s.threads) {
        worst = std::max<int64_t>(worst, other->lag_us);
        any_busy = any_busy || other->busy;
      }
      for (const auto& probe : s.net->lag_probes) {
        pace = std::max(pace, probe->t.pace_us_per_session.load(std::memory_order_relaxed));
      }
      s.metrics.loop_lag_us = worst;
      s.metrics.busy = any_busy;
      s.metrics.pace_us = pace;
      if (ticks == 1) s.metrics.io_util_permille = util_permille;
      arm();
    });
  }

  void adjust(double util) {
    const int64_t max_us = std::chrono::duration_cast<std::chrono::microseconds>(s.opt.max_broadcast_delay).count();
    int64_t pace = t.pace_us_per_session.load(std::memory_order_relaxed);
    if (max_us <= 0) {
      pace = 0;
    } else if (util > 0.8) {
      pace = std::min<int64_t>(max_us, pace + pace / 2 + 100);
    } else if (util < 0.65) {
      pace = pace < 100 ? 0 : pace / 2;
    }
    t.pace_us_per_session.store(pace, std::memory_order_relaxed);
    t.busy = pace > 0;
  }
};


Status Server::start() {
  Impl& s = *impl_;
  if (s.opt.jwt.enabled()) {
    auto v = JwtVerifier::Load(s.opt.jwt);
    if (!v.ok()) return v.status();
    s.jwt = *v;
  }
  if (!s.opt.webhook.url.empty()) {
    auto w = Webhooks::Start(s.opt.webhook, [&s](std::string_view event, std::string detail, bool warning) {
      if (warning) {
        s.log.warn(event, {{"detail", std::move(detail)}});
      } else {
        s.log.info(event, {{"detail", std::move(detail)}});
      }
    });
    if (!w.ok()) return w.status().WithContext("--webhook-url");
    std::shared_ptr<Webhooks> hooks = std::move(*w);
    s.net->webhooks = hooks;
    s.on_durable = [hooks](const std::string& doc, const crdt::Version& v, uint64_t events, const std::vector<std::string>& agents) {
      hooks->changed(doc, v, events, agents);
    };
  }
  if (!s.opt.static_dir.empty()) {
    auto files = StaticFiles::load(s.opt.static_dir);
    if (!files.ok()) return files.status().WithContext("the editor's files");
    s.net->statics = std::move(*files);
  }
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
                               {"auth", !s.auth_on() ? "off" : s.jwt && !s.opt.auth_secret.empty() ? "jwt+token" : s.jwt ? "jwt" : "token"}});
  if (!s.auth_on()) {
    s.log.warn("server.open", {{"note", "no --auth-secret or --jwt-*: anyone who can reach this port can read and write every document"}});
  } else if (s.opt.metrics_token.empty()) {
    s.log.info("server.metrics_open", {{"note", "/metrics answers without a token (--metrics-token-file F to require one)"}});
  }
  do_accept(s);
  for (auto& t : s.threads) {
    s.net->lag_probes.emplace_back(new LagProbe{s, *t, asio::steady_timer(t->ioc)});
    s.net->lag_probes.back()->arm();
  }
  return Status::OK();
}

uint16_t Server::port() const { return impl_->net->port; }

void Server::run() {
  Impl& s = *impl_;
  // Each I/O thread runs its own io_context until stop() stops them all.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& t : s.threads) guards.push_back(asio::make_work_guard(t->ioc));
  // Sessions and rooms contain their own exceptions; anything else escaping a handler is logged
  // and the thread goes back to work rather than take the server down.
  auto work = [&s](asio::io_context& ioc) {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        s.log.error("handler.exception", {{"error", e.what()}});
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < s.threads.size(); ++i) threads.emplace_back(work, std::ref(s.threads[i]->ioc));
  work(s.threads[0]->ioc);
  for (auto& t : threads) t.join();
}

void Server::stop() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  s.log.info("server.stopping", {{"drain_ms", std::to_string(s.opt.drain.count())}});
  auto drain = std::make_shared<asio::steady_timer>(s.ioc, s.opt.drain);
  drain->async_wait([&s, drain](beast::error_code) {
    beast::error_code ec;
    s.net->acceptor.close(ec);
    s.net->signals.cancel();
    // Each probe's timer belongs to its own thread.
    for (auto& probe : s.net->lag_probes) {
      asio::post(probe->t.ioc, [p = probe.get()] { p->timer.cancel(); });
    }
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
        Status st = s.store->sync();
        if (!st.ok()) s.log.error("server.flush_failed", {{"error", st.ToString()}});
        // Changes that are durable now are due to the webhook after its debounce: give them a
        // bounded while (what is left is logged as dropped when the server goes).
        if (s.net->webhooks && !s.net->webhooks->drain(s.opt.webhook_drain + s.opt.webhook.debounce)) {
          s.log.warn("webhook.undelivered", {{"pending", std::to_string(s.net->webhooks->stats().pending)}});
        }
        s.log.info("server.stopped", {});
        s.net->shut_down = true;
        for (auto& t : s.threads) t->ioc.stop();
      });
    };
    for (auto& r : rooms) r->shutdown(one_done);
    one_done();
  });
}

std::string Server::metrics() const { return impl_->metrics.text(); }

}  // namespace tandem::net
