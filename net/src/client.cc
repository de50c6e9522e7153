#include "net/client.h"
#include "net/jwt.h"

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
#include "crdt/split.h"

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

struct Url {
  bool tls = false;
  std::string host, port, target;
};

bool parse_url(const std::string& url, Url* out) {
  std::string rest;
  if (url.rfind("ws://", 0) == 0) {
    rest = url.substr(5);
  } else if (url.rfind("wss://", 0) == 0) {
    out->tls = true;
    rest = url.substr(6);
  } else {
    return false;
  }
  const size_t slash = rest.find('/');
  const std::string hostport = rest.substr(0, slash);
  out->target = slash == std::string::npos ? "/" : rest.substr(slash);
  const size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) {
    out->host = hostport;
    out->port = out->tls ? "443" : "80";
  } else {
    out->host = hostport.substr(0, colon);
    out->port = hostport.substr(colon + 1);
  }
  return !out->host.empty();
}

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
  explicit Impl(ClientOptions o, crdt::Doc* restored = nullptr)
      : opt(std::move(o)), agent(opt.agent.empty() ? default_agent(opt) : opt.agent),
        doc(restored ? std::move(*restored) : crdt::Doc(agent)), retry(ioc),
        tls(ssl::context::tls_client) {
    if (opt.tls_verify) {
      tls.set_default_verify_paths();
      tls.set_verify_mode(ssl::verify_peer);
    } else {
      tls.set_verify_mode(ssl::verify_none);
    }
  }

  ClientOptions opt;
  const std::string agent;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;

  mutable std::mutex mu;  // doc, state, callbacks, pending (read by any thread)
  std::condition_variable cv;
  crdt::Doc doc;
  ClientState state = ClientState::kOffline;
  std::map<uint64_t, uint32_t> pending;  // batch id -> own next seq once it is acknowledged
  uint32_t acked_next = 0;               // own operations below this seq are durable at the server
  crdt::Version base;                    // what the server holds, as far as this connection knows
  crdt::Version welcomed;                // what the server held durably when it welcomed us
  bool read_only = false;
  std::function<void(const std::vector<crdt::Patch>&)> cb_change;
  std::function<void(ClientState)> cb_state;
  std::function<void(const PeerPresence&)> cb_presence;
  std::function<void(uint64_t)> cb_leave;
  std::function<void(uint16_t, const std::string&)> cb_error;
  std::optional<proto::Presence> presence;
  std::optional<std::pair<uint16_t, std::string>> refused;  // stopped for good, and why

  // Network thread only.
  bool running = false;
  std::shared_ptr<ConnBase> conn;
  uint64_t gen = 0;
  uint64_t next_batch = 1;
  int attempt = 0;
  asio::steady_timer retry;
  std::atomic<bool> flush_posted{false};
  uint16_t last_error = 0;
  std::string last_error_message;
  std::chrono::steady_clock::time_point connected_since;
  Url url;
  ssl::context tls;
  std::mt19937 rng{std::random_device{}()};

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
      if (ec) return self->fail();
      beast::get_lowest_layer(self->ws_).expires_after(self->c_.opt.connect_timeout);
      beast::get_lowest_layer(self->ws_).async_connect(r, [self](beast::error_code e, const tcp::endpoint&) {
        if (e) return self->fail();
        if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
          if (!SSL_set_tlsext_host_name(self->ws_.next_layer().native_handle(), self->c_.url.host.c_str())) return self->fail();
          self->ws_.next_layer().async_handshake(ssl::stream_base::client, [self](beast::error_code e2) {
            if (e2) return self->fail();
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
    std::string target = c_.url.target;
    if (!c_.opt.token.empty()) target += (target.find('?') == std::string::npos ? "?token=" : "&token=") + c_.opt.token;
    ws_.async_handshake(res_, c_.url.host + ":" + c_.url.port, target, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) {
        if (ec == websocket::error::upgrade_declined) self->c_.on_refused(self->gen_, self->res_.result_int());
        return self->fail();
      }
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
  // A connection that lasted was healthy: start the backoff again from the bottom. One that was
  // closed soon after its WELCOME (the server refused something) keeps backing off.
  if (connected_since != std::chrono::steady_clock::time_point() &&
      std::chrono::steady_clock::now() - connected_since > std::chrono::seconds(5)) {
    attempt = 0;
  }
  connected_since = {};
  // Exponential backoff with jitter: clients that lost the same server do not all come back at once.
  const double base_ms = std::min<double>(static_cast<double>(opt.max_backoff.count()),
                                          static_cast<double>(opt.min_backoff.count()) * (1 << std::min(attempt, 20)));
  const double jitter = std::uniform_real_distribution<double>(0.5, 1.0)(rng);
  ++attempt;
  retry.expires_after(std::chrono::milliseconds(static_cast<int64_t>(base_ms * jitter)));
  retry.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->connect();
  });
}

void Client::Impl::on_open(uint64_t g) {
  if (g != gen) return;
  proto::Hello h;
  h.agents = {agent};
  {
    std::lock_guard<std::mutex> lock(mu);
    h.doc_version = doc.version();
  }
  conn->send(std::make_shared<const std::string>(proto::encode(h)));
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
  last_error = code;
  last_error_message = message;
  report_error(code, message);
}

void Client::Impl::on_closed(uint64_t g) {
  if (g != gen) return;
  conn.reset();
  {
    std::lock_guard<std::mutex> lock(mu);
    pending.clear();  // the next connection resends whatever the server turns out to lack
  }
  // Errors that another try cannot fix end the reconnecting: the same operations would be
  // refused again.
  switch (last_error) {
    case proto::kBadMessage:
    case proto::kUnauthorized:
    case proto::kForbidden:
    case proto::kAgentInUse:
    case proto::kDeleted:
    case proto::kTooLarge:
    case proto::kRejected:
    case proto::kUnsupportedVersion:
      running = false;
      {
        std::lock_guard<std::mutex> lock(mu);
        refused.emplace(last_error, last_error_message);
      }
      cv.notify_all();
      break;
    default:
      break;
  }
  schedule_retry();
}

void Client::Impl::on_frame(uint64_t g, const std::string& frame) {
  if (g != gen) return;
  auto msg = proto::decode(frame, {opt.max_frame_bytes});
  if (!msg.ok()) {
    conn->abort();
    return;
  }
  if (auto* w = std::get_if<proto::Welcome>(&*msg)) {
    last_error = 0;
    connected_since = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mu);
      // WELCOME carries what the server holds durably: own operations beyond it are resent
      // (the server ignores the ones it already integrated) and acknowledged once durable.
      base = w->doc_version;
      welcomed = w->doc_version;
      acked_next = std::max(acked_next, w->doc_version.next(agent));
      read_only = w->read_only;
      pending.clear();
    }
    set_state(ClientState::kConnected);
    std::optional<proto::Presence> p;
    {
      std::lock_guard<std::mutex> lock(mu);
      p = presence;
    }
    if (p) conn->send(std::make_shared<const std::string>(proto::encode(*p)));
    flush_own();
  } else if (auto* o = std::get_if<proto::Ops>(&*msg)) {
    auto batch = crdt::codec::decode_ops(o->encoded, {opt.max_frame_bytes, UINT32_MAX, 1u << 16, 1024});
    if (!batch.ok()) {
      conn->abort();
      return;
    }
    std::vector<crdt::Patch> patches;
    std::function<void(const std::vector<crdt::Patch>&)> cb;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto r = doc.apply(*batch);
      if (!r.ok()) {
        conn->abort();
        return;
      }
      patches = std::move(*r);
      for (const auto& run : batch->runs) {
        if (base.next(run.agent) < run.seq + run.len) base.advance(run.agent, run.seq + run.len);
      }
      cb = cb_change;
    }
    cv.notify_all();
    if (cb && !patches.empty()) cb(patches);
  } else if (auto* a = std::get_if<proto::Ack>(&*msg)) {
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = pending.find(a->batch_id);
      if (it != pending.end()) {
        // Acknowledgements may come out of order; a later batch's durability implies the earlier
        // ones' (its operations depend on theirs).
        acked_next = std::max(acked_next, it->second);
        pending.erase(it);
      }
    }
    attempt = 0;
    cv.notify_all();
  } else if (auto* pu = std::get_if<proto::PresenceUpdate>(&*msg)) {
    std::function<void(const PeerPresence&)> cb;
    {
      std::lock_guard<std::mutex> lock(mu);
      cb = cb_presence;
    }
    if (cb) cb({pu->session, pu->agent, pu->presence});
  } else if (auto* l = std::get_if<proto::Leave>(&*msg)) {
    std::function<void(uint64_t)> cb;
    {
      std::lock_guard<std::mutex> lock(mu);
      cb = cb_leave;
    }
    if (cb) cb(l->session);
  } else if (auto* e = std::get_if<proto::Error>(&*msg)) {
    last_error = e->code;
    last_error_message = e->message;
    report_error(e->code, e->message);
  }
}

void Client::Impl::flush_own() {
  if (!conn || state != ClientState::kConnected) return;
  std::vector<Frame> frames;
  {
    // One critical section: whoever waits for "synced" must never see the operations counted as
    // sent before their batch is recorded as pending.
    std::lock_guard<std::mutex> lock(mu);
    if (read_only) return;
    const uint32_t own_next = doc.version().next(agent);
    if (base.next(agent) >= own_next) return;
    crdt::OpBatch own;
    crdt::OpBatch all = doc.ops_since(base, crdt::Doc::DeletedText::kInclude);
    // Only this replica's own operations: the server refuses anyone else's.
    for (auto& r : all.runs) {
      if (r.agent == agent) own.runs.push_back(std::move(r));
    }
    base.advance(agent, own_next);
    for (auto& part : crdt::split_batch(std::move(own), opt.max_batch_events, opt.max_batch_bytes)) {
      uint32_t next = 0;
      for (const auto& r : part.runs) next = std::max(next, r.seq + r.len);
      const uint64_t id = next_batch++;
      pending[id] = next;
      frames.push_back(std::make_shared<const std::string>(proto::encode(proto::Ops{id, crdt::codec::encode_ops(part)})));
    }
  }
  for (auto& f : frames) conn->send(std::move(f));
}

// ---- Client -----------------------------------------------------------------------------------

Client::Client(ClientOptions options) : Client(std::move(options), nullptr) {}

Client::Client(ClientOptions options, crdt::Doc* restored) : impl_(std::make_shared<Impl>(std::move(options), restored)) {
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
    const std::string bad = "bad url '" + impl->opt.url + "' (ws://HOST:PORT/ws/DOC or wss://...)";
    if (!parse_url(impl->opt.url, &impl->url)) {
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
    impl->running = true;
    impl->attempt = 0;
    impl->last_error = 0;
    impl->connect();
  });
}

void Client::stop() {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  asio::post(impl_->ioc, [impl = impl_.get(), &m, &cv, &done] {
    impl->running = false;
    impl->retry.cancel();
    ++impl->gen;  // whatever the old connection reports from now on is ignored
    if (impl->conn) impl->conn->close();
    impl->conn.reset();
    {
      std::lock_guard<std::mutex> lock(impl->mu);
      impl->pending.clear();
    }
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

Status Client::insert(uint32_t pos, std::string_view text) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    TANDEM_RETURN_IF_ERROR(impl_->doc.insert(pos, text));
  }
  impl_->post_flush();
  return Status::OK();
}

Status Client::remove(uint32_t pos, uint32_t len) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    TANDEM_RETURN_IF_ERROR(impl_->doc.remove(pos, len));
  }
  impl_->post_flush();
  return Status::OK();
}

void Client::set_presence(proto::Presence p) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->presence = p;
  }
  asio::post(impl_->ioc, [impl = impl_.get(), p = std::move(p)] {
    if (impl->conn && impl->state == ClientState::kConnected) {
      impl->conn->send(std::make_shared<const std::string>(proto::encode(p)));
    }
  });
}

std::string Client::text() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->doc.text();
}

uint32_t Client::length() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->doc.length();
}

crdt::Version Client::version() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->doc.version();
}

const std::string& Client::agent() const { return impl_->agent; }

ClientState Client::state() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->state;
}

uint64_t Client::unacknowledged() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const uint32_t own = impl_->doc.version().next(impl_->agent);
  return own > impl_->acked_next ? own - impl_->acked_next : 0;
}

bool Client::read_only() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->read_only;
}

bool Client::wait_synced(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  auto synced = [&] {
    return impl_->state == ClientState::kConnected && impl_->acked_next >= impl_->doc.version().next(impl_->agent) &&
           impl_->doc.version().includes(impl_->welcomed);
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
      impl->running = true;
      impl->attempt = 0;
      impl->last_error = 0;
      impl->connect();
    } else if (impl->running && impl->conn) {
      // The open connection's token runs out on its own time: go over to the new one now.
      ++impl->gen;
      impl->conn->close();
      impl->conn.reset();
      {
        std::lock_guard<std::mutex> lock(impl->mu);
        impl->pending.clear();
      }
      impl->connect();
    }
  });
  return Status::OK();
}

namespace {

// save()'s bytes: "TCS" 0x01, own operations acknowledged (u32, little-endian), the agent name's
// length (u16, little-endian) and bytes, then the replica's snapshot (crdt/FORMAT.md).
constexpr char kStateMagic[4] = {'T', 'C', 'S', 1};

}  // namespace

std::string Client::save() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::string out(kStateMagic, 4);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((impl_->acked_next >> (8 * i)) & 0xFF));
  const size_t n = impl_->agent.size();
  out.push_back(static_cast<char>(n & 0xFF));
  out.push_back(static_cast<char>(n >> 8));
  out += impl_->agent;
  out += crdt::codec::save(impl_->doc);
  return out;
}

crdt::Result<std::unique_ptr<Client>> Client::Restore(ClientOptions options, std::string_view state) {
  if (state.size() < 10 || state.substr(0, 4) != std::string_view(kStateMagic, 4)) {
    return Status::Corruption("not a saved client state (Client::save)");
  }
  auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(state[i])); };
  const uint32_t acked = byte(4) | byte(5) << 8 | byte(6) << 16 | byte(7) << 24;
  const size_t n = byte(8) | byte(9) << 8;
  if (state.size() < 10 + n) return Status::Corruption("saved client state is cut short");
  const std::string agent(state.substr(10, n));
  TANDEM_RETURN_IF_ERROR(crdt::Doc::ValidateAgent(agent).WithContext("saved client state"));
  if (!options.agent.empty() && options.agent != agent) {
    return Status::InvalidArgument("the saved state is agent '" + agent + "'s, not '" + options.agent + "'s");
  }
  auto doc = crdt::codec::load(state.substr(10 + n), agent);
  if (!doc.ok()) return Status::Corruption("saved client state: " + doc.status().message());
  if (acked > doc->version().next(agent)) return Status::Corruption("saved client state acknowledges edits it does not hold");
  options.agent = agent;
  std::unique_ptr<Client> c(new Client(std::move(options), &*doc));
  std::lock_guard<std::mutex> lock(c->impl_->mu);
  c->impl_->acked_next = acked;
  return c;
}

bool Client::wait_for(const crdt::Version& v, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->doc.version().includes(v); });
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
