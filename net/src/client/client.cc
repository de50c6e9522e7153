#include "net/client.h"
#include "net/jwt.h"
#include "net/url.h"

#include <jwt.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "crdt/codec.h"

namespace tandem::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using crdt::Status;
using Frame = std::shared_ptr<const std::string>;

const char* ClientStateName(ClientState s) {
  switch (s) {
    case ClientState::kOffline: return "offline";
    case ClientState::kConnecting: return "connecting";
    case ClientState::kConnected: return "connected";
  }
  return "?";
}

namespace {

std::string random_hex12() {
  std::random_device rd;
  std::mt19937_64 g((static_cast<uint64_t>(rd()) << 32) ^ rd());
  char buf[32];
  std::snprintf(buf, sizeof buf, "%012llx", static_cast<unsigned long long>(g() & 0xFFFFFFFFFFFFULL));
  return buf;
}

// The subject of an access token (its payload is "v1|subject|..." in base64url; a JWT's is its
// `sub` claim, read here without checking the signature: the server checks it), or "".
std::string token_subject(const std::string& token) {
  if (JwtVerifier::looks_like_jwt(token)) {
    jwt_t* j = nullptr;
    if (jwt_decode(&j, token.c_str(), nullptr, 0) != 0) return "";
    const char* sub = jwt_get_grant(j, "sub");
    std::string out = sub ? sub : "";
    jwt_free(j);
    return out;
  }
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string text;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : token.substr(0, token.find('.'))) {
    const size_t v = kAlphabet.find(c);
    if (v == std::string::npos) return "";
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      text.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (text.rfind("v1|", 0) != 0) return "";
  return text.substr(3, text.find('|', 3) - 3);
}

std::string default_agent(const ClientOptions& o) {
  const std::string sub = o.token.empty() ? "" : token_subject(o.token);
  std::string a = sub.empty() ? "client-" + random_hex12() : sub + "/" + random_hex12();
  return a.size() <= crdt::kMaxAgentBytes ? a : "client-" + random_hex12();
}

}  // namespace

class ConnBase {
 public:
  virtual ~ConnBase() = default;
  virtual void send(Frame f) = 0;
  virtual void close() = 0;
  virtual void abort() = 0;
};

struct Client::Impl : std::enable_shared_from_this<Client::Impl> {
  Impl(ClientOptions o, std::optional<sync::ClientSync> restored)
      : opt(std::move(o)),
        sync(restored ? std::move(*restored)
                      : sync::ClientSync(crdt::Doc(opt.agent.empty() ? default_agent(opt) : opt.agent), limits_of(opt))),
        agent(sync.agent()), retry(ioc), tls(ssl::context::tls_client) {
    if (opt.tls_verify) {
      tls.set_default_verify_paths();
      tls.set_verify_mode(ssl::verify_peer);
    } else {
      tls.set_verify_mode(ssl::verify_none);
    }
  }
  static sync::ClientLimits limits_of(const ClientOptions& o) {
    return {o.max_batch_events, o.max_batch_bytes, o.max_frame_bytes, o.min_backoff.count(), o.max_backoff.count()};
  }

  ClientOptions opt;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;

  mutable std::mutex mu;  // sync (the replica and the protocol's state), state, callbacks
  std::condition_variable cv;
  sync::ClientSync sync;
  const std::string agent;
  ClientState state = ClientState::kOffline;
  std::function<void(const std::vector<crdt::Patch>&)> cb_change;
  std::function<void(ClientState)> cb_state;
  std::function<void(const PeerPresence&)> cb_presence;
  std::function<void(uint64_t)> cb_leave;
  std::function<void(uint16_t, const std::string&)> cb_error;
  std::optional<std::pair<uint16_t, std::string>> refused;  // stopped for good, and why

  // Network thread only.
  bool running = false;
  std::shared_ptr<ConnBase> conn;
  uint64_t gen = 0;
  asio::steady_timer retry;
  std::atomic<bool> flush_posted{false};
  Url url;
  ssl::context tls;
  std::mt19937 rng{std::random_device{}()};

  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  // Replaces the connection (a new token): the old one's reports are ignored from now on.
  void drop_conn() {
    ++gen;
    if (conn) conn->close();
    conn.reset();
    std::lock_guard<std::mutex> lock(mu);
    sync.closed();
  }
  void restart() {
    running = true;
    {
      std::lock_guard<std::mutex> lock(mu);
      sync.reset_backoff();
    }
    connect();
  }

  void set_state(ClientState s) {
    std::function<void(ClientState)> cb;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (state == s) return;
      state = s;
      cb = cb_state;
    }
    cv.notify_all();
    if (cb) cb(s);
  }

  void connect();
  void schedule_retry();
  void report_error(uint16_t code, const std::string& message) {
    std::function<void(uint16_t, const std::string&)> cb;
    {
      std::lock_guard<std::mutex> lock(mu);
      cb = cb_error;
    }
    if (cb) cb(code, message);
  }
  void on_open(uint64_t g);
  void on_refused(uint64_t g, unsigned http_status);
  void on_frame(uint64_t g, const std::string& frame);
  void on_closed(uint64_t g);
  void flush_own();
  template <class Edit>
  crdt::Status edit(Edit&& make);
  void post_flush() {
    if (flush_posted.exchange(true)) return;  // one flush takes every edit made until it runs
    asio::post(ioc, [self = shared_from_this()] {
      self->flush_posted = false;
      self->flush_own();
    });
  }
};

namespace {

template <class Stream>
class Conn final : public ConnBase, public std::enable_shared_from_this<Conn<Stream>> {
 public:
  template <class... Args>
  Conn(Client::Impl& c, uint64_t gen, Args&&... args) : c_(c), gen_(gen), resolver_(c.ioc), ws_(std::forward<Args>(args)...) {}

  void start() {
    resolver_.async_resolve(c_.url.host, c_.url.port, [self = this->shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
      // (An aborted connection stops at its next step: a connect would open the socket again.)
      if (ec || self->closed_) return self->fail();
      beast::get_lowest_layer(self->ws_).expires_after(self->c_.opt.connect_timeout);
      beast::get_lowest_layer(self->ws_).async_connect(r, [self](beast::error_code e, const tcp::endpoint&) {
        if (e || self->closed_) return self->fail();
        if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
          if (!self->c_.url.ip_literal && !SSL_set_tlsext_host_name(self->ws_.next_layer().native_handle(), self->c_.url.host.c_str())) {
            return self->fail();
          }
          self->ws_.next_layer().async_handshake(ssl::stream_base::client, [self](beast::error_code e2) {
            if (e2 || self->closed_) return self->fail();
            self->handshake();
          });
        } else {
          self->handshake();
        }
      });
    });
  }

  void send(Frame f) override {
    q_.push_back(std::move(f));
    if (!writing_) do_write();
  }
  void close() override {
    if (closed_) return;
    // Before the upgrade has completed, the handshake still reads and writes the socket: a close
    // frame then would be a second operation on it (Beast asserts), and there is no session to
    // end politely anyway.
    if (!open_) return abort();
    closed_ = true;
    ws_.async_close(websocket::close_code::normal, [self = this->shared_from_this()](beast::error_code) {});
  }
  void abort() override {
    closed_ = true;
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

 private:
  void handshake() {
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(beast::role_type::client);
    t.handshake_timeout = c_.opt.connect_timeout;
    ws_.set_option(t);
    ws_.read_message_max(c_.opt.max_frame_bytes);
    ws_.binary(true);
    const std::string origin = c_.opt.origin;
    ws_.set_option(websocket::stream_base::decorator([origin](websocket::request_type& req) {
      req.set(beast::http::field::user_agent, "tandem-client");
      if (!origin.empty()) req.set(beast::http::field::origin, origin);
    }));
    std::string target = c_.url.path;
    if (!c_.opt.token.empty()) target += (target.find('?') == std::string::npos ? "?token=" : "&token=") + c_.opt.token;
    ws_.async_handshake(res_, c_.url.host_header, target, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) {
        if (ec == websocket::error::upgrade_declined) self->c_.on_refused(self->gen_, self->res_.result_int());
        return self->fail();
      }
      self->open_ = true;
      self->c_.on_open(self->gen_);
      self->do_read();
    });
  }

  void do_read() {
    ws_.async_read(buf_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail();
      const std::string frame = beast::buffers_to_string(self->buf_.data());
      self->buf_.consume(self->buf_.size());
      self->c_.on_frame(self->gen_, frame);
      self->do_read();
    });
  }

  void do_write() {
    writing_ = true;
    ws_.async_write(asio::buffer(*q_.front()), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec) return self->fail();
      self->q_.pop_front();
      if (!self->q_.empty()) self->do_write();
    });
  }

  void fail() {
    if (failed_) return;
    failed_ = true;
    c_.on_closed(gen_);
  }

  Client::Impl& c_;
  uint64_t gen_;
  tcp::resolver resolver_;
  websocket::stream<Stream> ws_;
  websocket::response_type res_;  // the server's answer to the upgrade
  beast::flat_buffer buf_;
  std::deque<Frame> q_;
  bool writing_ = false;
  bool open_ = false;  // the upgrade has completed
  bool closed_ = false;
  bool failed_ = false;
};

}  // namespace

void Client::Impl::connect() {
  if (!running) return;
  set_state(ClientState::kConnecting);
  const uint64_t g = ++gen;
  if (url.tls) {
    auto c = std::make_shared<Conn<beast::ssl_stream<beast::tcp_stream>>>(*this, g, ioc, tls);
    conn = c;
    c->start();
  } else {
    auto c = std::make_shared<Conn<beast::tcp_stream>>(*this, g, ioc);
    conn = c;
    c->start();
  }
}

void Client::Impl::schedule_retry() {
  if (!running) {
    set_state(ClientState::kOffline);
    return;
  }
  set_state(ClientState::kConnecting);
  // Jitter: clients that lost the same server do not all come back at once.
  const double jitter = std::uniform_real_distribution<double>(0.5, 1.0)(rng);
  int64_t delay = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    delay = sync.retry_delay_ms(now_ms(), jitter);
  }
  retry.expires_after(std::chrono::milliseconds(delay));
  retry.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->connect();
  });
}

void Client::Impl::on_open(uint64_t g) {
  if (g != gen) return;
  std::string hello;
  {
    std::lock_guard<std::mutex> lock(mu);
    hello = sync.open();
  }
  conn->send(std::make_shared<const std::string>(std::move(hello)));
}

// The server answered the upgrade with an HTTP error. 400 (a bad document id), 401 and 403 (the
// token or the Origin) would be answered the same way again: stop, as after ERROR 4400/4403.
// Others (503 at the connection limit, 429) are worth retrying.
void Client::Impl::on_refused(uint64_t g, unsigned http_status) {
  if (g != gen) return;
  uint16_t code = 0;
  std::string message = "the server refused the connection: HTTP " + std::to_string(http_status);
  if (http_status == 400 || http_status == 404) {
    code = proto::kBadMessage;
    message += " (is the URL ws://HOST:PORT/ws/<doc-id>, with an id of [A-Za-z0-9._-]{1,128}?)";
  } else if (http_status == 401 || http_status == 403) {
    code = proto::kForbidden;
    message += " (a missing, expired or forged token, or an Origin the server does not allow)";
  }
  if (code == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu);
    sync.refused(code, message);
  }
  report_error(code, message);
}

void Client::Impl::on_closed(uint64_t g) {
  if (g != gen) return;
  // The connection's last report: a frame it read before it closed may still be on its way, and
  // is ignored with everything else of it from here on (it would reach the closed sync state,
  // then abort a connection that is gone).
  ++gen;
  conn.reset();
  {
    std::lock_guard<std::mutex> lock(mu);
    sync.closed();
    // Errors that another try cannot fix end the reconnecting: the same operations would be
    // refused again.
    if (!sync.should_retry()) {
      running = false;
      refused = sync.error();
    }
  }
  cv.notify_all();
  schedule_retry();
}

void Client::Impl::on_frame(uint64_t g, const std::string& frame) {
  if (g != gen) return;
  std::vector<crdt::Patch> patches;
  sync::ClientEvent ev;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto r = sync.receive(frame, now_ms());
    if (!r.ok()) {
      conn->abort();  // the server broke the protocol: the next connection starts afresh
      return;
    }
    ev = std::move(*r);
  }
  cv.notify_all();
  switch (ev.kind) {
    case sync::ClientEvent::kWelcome:
      set_state(ClientState::kConnected);
      flush_own();
      break;
    case sync::ClientEvent::kChange: {
      std::function<void(const std::vector<crdt::Patch>&)> cb;
      {
        std::lock_guard<std::mutex> lock(mu);
        cb = cb_change;
      }
      if (cb && !ev.patches.empty()) cb(ev.patches);
      flush_own();
      break;
    }
    case sync::ClientEvent::kAck:
      break;
    case sync::ClientEvent::kPresence: {
      std::function<void(const PeerPresence&)> cb;
      {
        std::lock_guard<std::mutex> lock(mu);
        cb = cb_presence;
      }
      if (cb) cb({ev.presence.session, ev.presence.agent, ev.presence.presence});
      break;
    }
    case sync::ClientEvent::kLeave: {
      std::function<void(uint64_t)> cb;
      {
        std::lock_guard<std::mutex> lock(mu);
        cb = cb_leave;
      }
      if (cb) cb(ev.session);
      break;
    }
    case sync::ClientEvent::kError:
      report_error(ev.code, ev.message);
      break;
  }
}

void Client::Impl::flush_own() {
  if (!conn || state != ClientState::kConnected) return;
  std::vector<std::string> messages;
  {
    // One critical section: whoever waits for "synced" must never see the operations counted as
    // sent before their batch is recorded as pending.
    std::lock_guard<std::mutex> lock(mu);
    messages = sync.outgoing();
  }
  for (auto& m : messages) conn->send(std::make_shared<const std::string>(std::move(m)));
}

// ---- Client -----------------------------------------------------------------------------------

Client::Client(ClientOptions options) : Client(std::move(options), std::nullopt) {}

Client::Client(ClientOptions options, std::optional<sync::ClientSync> restored)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(restored))) {
  impl_->work.emplace(asio::make_work_guard(impl_->ioc));
  impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
}

Client::~Client() {
  stop();
  impl_->work.reset();
  asio::post(impl_->ioc, [impl = impl_.get()] { impl->ioc.stop(); });
  impl_->thread.join();
}

void Client::start() {
  asio::post(impl_->ioc, [impl = impl_->shared_from_this()] {
    if (impl->running) return;
    auto url = ParseUrl(impl->opt.url, UrlKind::kWebSocket, "server URL");
    if (url.ok()) impl->url = std::move(*url);
    const std::string bad = url.ok() ? "" : url.status().message() + " (ws://HOST:PORT/ws/DOC or wss://...)";
    if (!url.ok()) {
      {
        std::lock_guard<std::mutex> lock(impl->mu);
        impl->refused.emplace(0, bad);
      }
      impl->cv.notify_all();
      impl->report_error(0, bad);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(impl->mu);
      impl->refused.reset();
    }
    impl->restart();
  });
}

void Client::stop() {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  asio::post(impl_->ioc, [impl = impl_.get(), &m, &cv, &done] {
    impl->running = false;
    impl->retry.cancel();
    impl->drop_conn();  // whatever the old connection reports from now on is ignored
    impl->set_state(ClientState::kOffline);
    std::lock_guard<std::mutex> lock(m);
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(m);
  cv.wait_for(lock, std::chrono::seconds(5), [&] { return done; });
}

void Client::drop_connection() {
  asio::post(impl_->ioc, [impl = impl_.get()] {
    if (impl->conn) impl->conn->abort();
  });
}

// A local edit: made on the replica under the lock, then sent by the network thread.
template <class Edit>
Status Client::Impl::edit(Edit&& make) {
  {
    std::lock_guard<std::mutex> lock(mu);
    TANDEM_RETURN_IF_ERROR(make(sync.doc()));
  }
  post_flush();
  return Status::OK();
}

Status Client::insert(uint32_t pos, std::string_view text) {
  return impl_->edit([&](crdt::Doc& d) { return d.insert(pos, text); });
}

Status Client::remove(uint32_t pos, uint32_t len) {
  return impl_->edit([&](crdt::Doc& d) { return d.remove(pos, len); });
}

Status Client::mark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value) {
  return impl_->edit([&](crdt::Doc& d) { return d.mark(pos, len, name, value); });
}

Status Client::unmark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value) {
  return impl_->edit([&](crdt::Doc& d) { return d.unmark(pos, len, name, value); });
}

Status Client::set_block(uint32_t pos, std::string_view type, std::string_view value) {
  return impl_->edit([&](crdt::Doc& d) { return d.set_block(pos, type, value); });
}

std::vector<crdt::TextSpan> Client::spans() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sync.doc().spans();
}

std::vector<crdt::Block> Client::blocks() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sync.doc().blocks();
}

void Client::set_presence(proto::Presence p) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->sync.set_presence(std::move(p));
  }
  impl_->post_flush();
}

std::string Client::text() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sync.doc().text();
}

uint32_t Client::length() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sync.doc().length();
}

crdt::Version Client::version() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sync.doc().version();
}

const std::string& Client::agent() const { return impl_->agent; }

ClientState Client::state() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->state;
}

uint64_t Client::unacknowledged() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sync.unsent();
}

bool Client::read_only() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sync.read_only();
}

bool Client::wait_synced(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  auto synced = [&] {
    return impl_->state == ClientState::kConnected && impl_->sync.synced();
  };
  impl_->cv.wait_for(lock, timeout, [&] { return synced() || impl_->refused.has_value(); });
  return synced();
}

std::optional<std::pair<uint16_t, std::string>> Client::refusal() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->refused;
}

Status Client::set_token(std::string token) {
  const std::string sub = token_subject(token);
  const std::string& a = impl_->agent;
  if (!sub.empty() && a != sub && a.rfind(sub + "/", 0) != 0) {
    return Status::InvalidArgument("this client writes as '" + a + "'; a token for '" + sub +
                                   "' cannot carry its edits (open a client for that user)");
  }
  // Forgotten at once, so that a wait_synced() right after this waits for the new connection.
  bool refused_for_token = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    refused_for_token = impl_->refused && (impl_->refused->first == proto::kUnauthorized || impl_->refused->first == proto::kForbidden);
    if (refused_for_token) impl_->refused.reset();
  }
  asio::post(impl_->ioc, [impl = impl_->shared_from_this(), token = std::move(token), refused_for_token]() mutable {
    impl->opt.token = std::move(token);
    if (refused_for_token) {
      impl->restart();
    } else if (impl->running && impl->conn) {
      // The open connection's token runs out on its own time: go over to the new one now.
      impl->drop_conn();
      impl->connect();
    }
  });
  return Status::OK();
}

std::string Client::save() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sync.save();
}

crdt::Result<std::unique_ptr<Client>> Client::Restore(ClientOptions options, std::string_view state) {
  if (options.agent.empty()) options.agent = default_agent(options);
  auto restored = sync::ClientSync::Restore(state, options.agent, Impl::limits_of(options));
  if (!restored.ok()) return restored.status();
  return std::unique_ptr<Client>(new Client(std::move(options), std::move(*restored)));
}

bool Client::wait_for(const crdt::Version& v, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->sync.doc().version().includes(v); });
}

void Client::on_change(std::function<void(const std::vector<crdt::Patch>&)> f) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->cb_change = std::move(f);
}
void Client::on_state(std::function<void(ClientState)> f) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->cb_state = std::move(f);
}
void Client::on_presence(std::function<void(const PeerPresence&)> f) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->cb_presence = std::move(f);
}
void Client::on_leave(std::function<void(uint64_t)> f) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->cb_leave = std::move(f);
}
void Client::on_error(std::function<void(uint16_t, const std::string&)> f) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->cb_error = std::move(f);
}

}  // namespace tandem::net
