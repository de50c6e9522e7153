#include "net/webhook.h"
#include "net/url.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

namespace tandem::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using crdt::Status;
using Clock = std::chrono::steady_clock;
using Wall = std::chrono::system_clock;
using std::chrono::milliseconds;

namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), md, &len)) {
    return "";
  }
  return hex(md, len);
}

// 128 random bits: ids must not repeat across restarts, or a receiver that discards duplicates by
// id would discard a new notification.
std::string new_delivery_id() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    std::random_device rd;
    for (auto& c : b) c = static_cast<unsigned char>(rd());
  }
  return hex(b, sizeof b);
}

// 2026-11-29T19:30:00.123Z
std::string iso_utc(Wall::time_point t) {
  const long long ms = std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
  long long secs = ms / 1000;
  long long milli = ms % 1000;
  if (milli < 0) {
    milli += 1000;
    secs -= 1;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(milli));
  return buf;
}

std::string ms_text(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}

// What is known of a document: from one changed() call, or several merged.
struct Change {
  crdt::Version version;
  uint64_t events = 0;
  std::set<std::string> agents;
  Wall::time_point at{};          // of the newest change (the body's changed_at)
  Clock::time_point steady_at{};  // the same instant, for the debounce

  // Pointwise maximum: calls from several editing threads may arrive out of order, and a
  // document only grows.
  void merge(const Change& c) {
    version.merge(c.version);
    events = std::max(events, c.events);
    agents.insert(c.agents.begin(), c.agents.end());
    at = std::max(at, c.at);
    steady_at = std::max(steady_at, c.steady_at);
  }
  // True if merging `c` would tell a receiver something new.
  bool adds(const Change& c) const {
    if (!version.includes(c.version) || c.events > events) return true;
    return !std::includes(agents.begin(), agents.end(), c.agents.begin(), c.agents.end());
  }
};

class AttemptBase {
 public:
  virtual ~AttemptBase() = default;
  virtual void start() = 0;
  virtual void abort() = 0;
};

// One POST on its own connection (webhooks are seconds apart per document; a pool would buy
// little and would need its own liveness checks). `done` is called exactly once, unless the
// io_context is stopped first.
template <class Stream>
class Attempt final : public AttemptBase, public std::enable_shared_from_this<Attempt<Stream>> {
 public:
  using Done = std::function<void(bool ok, std::string detail)>;

  template <class... StreamArgs>
  Attempt(asio::io_context& ioc, const Url& t, milliseconds timeout, http::request<http::string_body> req, Done done,
          StreamArgs&&... stream_args)
      : target_(t),
        timeout_(timeout),
        resolver_(ioc),
        timer_(ioc),
        stream_(std::forward<StreamArgs>(stream_args)...),
        req_(std::move(req)),
        done_(std::move(done)) {}

  void start() override {
    // One deadline for the whole attempt: a receiver that accepts and then trickles must not hold
    // a slot longer than `timeout` however it spaces its bytes.
    timer_.expires_after(timeout_);
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->finished_) return;
      self->timed_out_ = true;
      self->abort();
    });
    resolver_.async_resolve(target_.host, target_.port,
                            [self = this->shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
                              if (ec) return self->finish(false, "resolve: " + ec.message());
                              self->on_resolve(r);
                            });
  }

  void abort() override {
    resolver_.cancel();
    beast::get_lowest_layer(stream_).close();
  }

 private:
  void on_resolve(const tcp::resolver::results_type& r) {
    beast::get_lowest_layer(stream_).async_connect(r, [self = this->shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return self->finish(false, "connect: " + ec.message());
      self->on_connect();
    });
  }

  void on_connect() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      if (!target_.ip_literal && !SSL_set_tlsext_host_name(stream_.native_handle(), target_.host.c_str())) {
        return finish(false, "tls: cannot set the server name");
      }
      // The context verifies the chain against the system store; this checks that the
      // certificate is for the host we asked for (an IP literal is matched as an address).
      stream_.set_verify_callback(ssl::host_name_verification(target_.host));
      stream_.async_handshake(ssl::stream_base::client, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->finish(false, "tls handshake: " + ec.message());
        self->do_write();
      });
    } else {
      do_write();
    }
  }

  void do_write() {
    http::async_write(stream_, req_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->finish(false, "send: " + ec.message());
      self->do_read();
    });
  }

  void do_read() {
    // The status line and headers say all we need; the body (if any) is not read.
    http::async_read_header(stream_, buf_, parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->finish(false, "response: " + ec.message());
      const unsigned status = self->parser_.get().result_int();
      self->finish(status >= 200 && status < 300, "status " + std::to_string(status));
    });
  }

  void finish(bool ok, std::string detail) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    beast::get_lowest_layer(stream_).close();  // no TLS close_notify: nothing more is read or sent
    if (timed_out_ && !ok) detail = "timed out after " + std::to_string(timeout_.count()) + " ms";
    Done done = std::move(done_);
    done(ok, std::move(detail));
  }

  const Url& target_;
  milliseconds timeout_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  Stream stream_;
  http::request<http::string_body> req_;
  beast::flat_buffer buf_;
  http::response_parser<http::empty_body> parser_;
  Done done_;
  bool finished_ = false;
  bool timed_out_ = false;
};

}  // namespace

// Threads: callers touch only the members under `mu` and the atomic counters; everything else
// belongs to the webhook thread. Per-document state machine (webhook thread):
//
//   settling --debounce--> queued --slot--> in flight --2xx--> gone (or settling if changes came)
//                             ^                 |
//                             '----backoff------'  (failure within the window; past it: dropped)
//
// A document is in `docs` exactly while it has something undelivered, so `docs` is what
// stats().pending and drain() count.
struct Webhooks::Impl {
  enum class Phase { kSettling, kQueued, kInFlight, kBackoff };
  struct Doc {
    explicit Doc(asio::io_context& ioc) : timer(ioc) {}
    Phase phase = Phase::kSettling;
    Change next;            // changes not yet in `out`
    bool has_next = false;
    Change out;             // the delivery's payload
    std::string id;         // its delivery id; empty until its first attempt
    bool id_sent = false;   // an attempt carried `id` (so a changed payload needs a new one)
    Clock::time_point deadline;  // end of the retry window
    int failures = 0;       // of this delivery, for the backoff
    asio::steady_timer timer;    // debounce or backoff
    uint64_t timer_gen = 0;      // a handler from an older arming is ignored
  };

  Impl(WebhookOptions o, Url t, Webhooks::LogFn l)
      : opt(std::move(o)), target(std::move(t)), log(std::move(l)), rng(std::random_device{}()) {}

  const WebhookOptions opt;
  const Url target;
  const Webhooks::LogFn log;

  asio::io_context ioc;  // before everything that uses it, so that it is destroyed last
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<ssl::context> tls;
  std::thread thread;

  // Shared with callers.
  mutable std::mutex mu;
  std::condition_variable idle_cv;
  std::unordered_map<std::string, Change> incoming;  // changed() calls not yet taken by flush()
  bool flush_posted = false;                        // a flush() is queued or running
  size_t active = 0;                                // docs.size(), published by the webhook thread
  std::atomic<uint64_t> delivered{0}, attempts{0}, failures{0}, dropped{0};

  // Webhook thread only.
  std::map<std::string, std::unique_ptr<Doc>> docs;
  std::deque<std::string> queue;  // documents waiting for a slot, oldest first
  size_t in_flight = 0;
  std::map<uint64_t, std::weak_ptr<AttemptBase>> live;  // attempts to abort when stopping
  uint64_t attempt_seq = 0;
  bool stopping = false;
  std::mt19937_64 rng;

  void note(std::string_view event, std::string detail, bool warning) {
    if (log) log(event, std::move(detail), warning);
  }

  void publish_active() {
    bool idle;
    {
      std::lock_guard<std::mutex> lock(mu);
      active = docs.size();
      idle = active == 0 && incoming.empty() && !flush_posted;
    }
    if (idle) idle_cv.notify_all();
  }

  // Takes every change made since the last flush. Runs until `incoming` is empty, so that a
  // changed() that saw flush_posted set never waits for a flush that has already passed.
  void flush() {
    for (;;) {
      std::unordered_map<std::string, Change> batch;
      bool idle = false;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!incoming.empty()) {
          batch.swap(incoming);
        } else {
          flush_posted = false;
          active = docs.size();
          idle = active == 0;
        }
      }
      if (batch.empty()) {
        if (idle) idle_cv.notify_all();
        return;
      }
      for (auto& [name, c] : batch) {
        if (stopping) {
          dropped++;
          note("webhook.dropped", "doc=" + name + " reason=stopping", true);
        } else {
          on_change(name, std::move(c));
        }
      }
    }
  }

  void on_change(const std::string& name, Change c) {
    auto& slot = docs[name];
    const bool fresh = !slot;
    if (fresh) slot = std::make_unique<Doc>(ioc);
    Doc& d = *slot;
    if (d.has_next) {
      d.next.merge(c);
    } else {
      d.next = std::move(c);
      d.has_next = true;
    }
    // Queued, in flight or backing off: the change waits in `next` and joins the next attempt
    // (or, after a success, starts a new debounce).
    if (fresh || d.phase == Phase::kSettling) arm_debounce(name, d);
  }

  void arm_debounce(const std::string& name, Doc& d) {
    d.phase = Phase::kSettling;
    // From the newest change itself, not from when this thread saw it.
    arm_timer(name, d, d.next.steady_at + opt.debounce);
  }

  void arm_timer(const std::string& name, Doc& d, Clock::time_point at) {
    const uint64_t gen = ++d.timer_gen;
    d.timer.expires_at(at);
    d.timer.async_wait([this, name, gen](beast::error_code ec) {
      if (ec || stopping) return;
      auto it = docs.find(name);
      if (it == docs.end() || it->second->timer_gen != gen) return;
      on_timer(name, *it->second);
    });
  }

  void on_timer(const std::string& name, Doc& d) {
    if (d.phase == Phase::kSettling) {
      d.out = Change{};
      d.id.clear();
      d.id_sent = false;
      d.failures = 0;
      d.deadline = Clock::now() + opt.retry_window;
    } else if (d.phase != Phase::kBackoff) {
      return;
    }
    d.phase = Phase::kQueued;
    queue.push_back(name);
    pump();
  }

  void pump() {
    while (!stopping && in_flight < opt.max_in_flight && !queue.empty()) {
      const std::string name = std::move(queue.front());
      queue.pop_front();
      auto it = docs.find(name);
      if (it == docs.end() || it->second->phase != Phase::kQueued) continue;
      start_attempt(name, *it->second);
    }
  }

  void start_attempt(const std::string& name, Doc& d) {
    if (d.has_next) {
      if (d.out.adds(d.next)) {
        d.out.merge(d.next);
        // A new payload: a receiver that saw the old one under this id must not take the new one
        // for a duplicate (header, point 3). The newest change settles now (point 2).
        if (d.id_sent) d.id.clear();
        d.deadline = std::max(d.deadline, Clock::now() + opt.retry_window);
      }
      d.next = Change{};
      d.has_next = false;
    }
    if (d.id.empty()) {
      d.id = new_delivery_id();
      d.id_sent = false;
    }
    d.id_sent = true;
    d.phase = Phase::kInFlight;
    ++in_flight;
    attempts++;

    nlohmann::ordered_json version = nlohmann::ordered_json::object();
    for (const auto& [agent, next] : d.out.version.entries()) version[agent] = next;
    nlohmann::ordered_json body = {
        {"type", "document.changed"},
        {"doc", name},
        {"version", std::move(version)},
        {"events", d.out.events},
        {"agents", d.out.agents},
        {"changed_at", iso_utc(d.out.at)},
        {"delivery", d.id},
    };
    // Replace, not throw: names reach here from callers this component does not validate.
    std::string text = body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    const std::string ts =
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(Wall::now().time_since_epoch()).count());

    http::request<http::string_body> req(http::verb::post, target.path, 11);
    req.set(http::field::host, target.host_header);
    req.set(http::field::user_agent, "tandem-webhook");
    req.set(http::field::content_type, "application/json");
    req.set("X-Tandem-Delivery", d.id);
    req.set("X-Tandem-Timestamp", ts);
    if (!opt.secret.empty()) req.set("X-Tandem-Signature", "sha256=" + hmac_sha256_hex(opt.secret, ts + "." + text));
    req.keep_alive(false);
    req.body() = std::move(text);
    req.prepare_payload();

    const uint64_t seq = ++attempt_seq;
    auto done = [this, name, seq](bool ok, std::string detail) { on_attempt_done(name, seq, ok, std::move(detail)); };
    std::shared_ptr<AttemptBase> a;
    if (target.tls) {
      a = std::make_shared<Attempt<beast::ssl_stream<beast::tcp_stream>>>(ioc, target, opt.timeout, std::move(req),
                                                                          std::move(done), ioc, *tls);
    } else {
      a = std::make_shared<Attempt<beast::tcp_stream>>(ioc, target, opt.timeout, std::move(req), std::move(done), ioc);
    }
    live[seq] = a;
    a->start();
  }

  void on_attempt_done(const std::string& name, uint64_t seq, bool ok, std::string detail) {
    live.erase(seq);
    if (stopping) return;
    --in_flight;
    auto it = docs.find(name);
    if (it == docs.end()) return pump();  // cannot happen: a document in flight stays in docs
    Doc& d = *it->second;
    const std::string what = "doc=" + name + " delivery=" + d.id + " attempt=" + std::to_string(d.failures + 1);
    if (ok) {
      delivered++;
      note("webhook.delivered", what + " " + detail, false);
      finish_delivery(name, d);
    } else {
      failures++;
      d.failures++;
      const auto now = Clock::now();
      if (now >= d.deadline) {
        dropped++;
        note("webhook.dropped", what + " reason=retry window passed, last: " + detail, true);
        finish_delivery(name, d);
      } else {
        const auto delay = backoff(d.failures);
        const auto at = std::min(now + delay, d.deadline);
        note("webhook.failed", what + " " + detail + ", retry in " + ms_text(at - now), true);
        d.phase = Phase::kBackoff;
        arm_timer(name, d, at);
      }
    }
    pump();
  }

  // The delivery is over (sent or dropped): changes that came meanwhile start a new one.
  void finish_delivery(const std::string& name, Doc& d) {
    d.out = Change{};
    d.id.clear();
    d.id_sent = false;
    d.failures = 0;
    if (d.has_next) {
      arm_debounce(name, d);
    } else {
      docs.erase(name);  // `d` dies here
      publish_active();
    }
  }

  // first_retry x 2^(n-1), capped, plus up to 10%: receivers that come back are not hit by every
  // document's retry in the same millisecond.
  Clock::duration backoff(int n) {
    const double first = static_cast<double>(opt.first_retry.count());
    const double cap = static_cast<double>(opt.max_retry.count());
    const double base = std::min(cap, first * std::ldexp(1.0, std::min(n - 1, 40)));
    const double jitter = std::uniform_real_distribution<double>(0.0, 0.1)(rng);
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(base * (1.0 + jitter)));
  }

  void shutdown() {
    stopping = true;
    for (auto& [name, d] : docs) {
      dropped++;
      note("webhook.dropped", "doc=" + name + (d->id.empty() ? "" : " delivery=" + d->id) + " reason=stopping", true);
      d->timer.cancel();
    }
    docs.clear();
    queue.clear();
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& entry : incoming) {
        dropped++;
        note("webhook.dropped", "doc=" + entry.first + " reason=stopping", true);
      }
      incoming.clear();
    }
    for (auto& [seq, w] : live) {
      if (auto a = w.lock()) a->abort();
    }
    publish_active();
  }
};

Status ValidateWebhookOptions(const WebhookOptions& o) {
  if (!o.url.empty()) {
    TANDEM_RETURN_IF_ERROR(ParseUrl(o.url, UrlKind::kHttp, "webhook URL").status());
  }
  auto bad = [](const std::string& why) { return Status::InvalidArgument("webhook options: " + why); };
  if (o.debounce.count() < 0) return bad("debounce must not be negative");
  if (o.timeout.count() <= 0) return bad("timeout must be positive");
  if (o.first_retry.count() <= 0) return bad("first_retry must be positive");
  if (o.max_retry < o.first_retry) return bad("max_retry must be at least first_retry");
  if (o.retry_window.count() < 0) return bad("retry_window must not be negative");
  if (o.max_in_flight == 0) return bad("max_in_flight must be at least 1");
  return Status::OK();
}

crdt::Result<std::unique_ptr<Webhooks>> Webhooks::Start(WebhookOptions o, LogFn log) {
  TANDEM_RETURN_IF_ERROR(ValidateWebhookOptions(o));
  if (o.url.empty()) return std::unique_ptr<Webhooks>(new Webhooks(nullptr));
  auto t = ParseUrl(o.url, UrlKind::kHttp, "webhook URL");
  if (!t.ok()) return t.status();
  auto impl = std::make_unique<Impl>(std::move(o), std::move(*t), std::move(log));
  if (impl->target.tls) {
    impl->tls.emplace(ssl::context::tls_client);
    beast::error_code ec;
    impl->tls->set_default_verify_paths(ec);
    if (ec) return Status::IOError("webhook: cannot load the system's CA certificates: " + ec.message());
    impl->tls->set_verify_mode(ssl::verify_peer);
  }
  impl->work.emplace(impl->ioc.get_executor());
  Impl* p = impl.get();
  impl->thread = std::thread([p] { p->ioc.run(); });
  return std::unique_ptr<Webhooks>(new Webhooks(std::move(impl)));
}

Webhooks::Webhooks(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Webhooks::~Webhooks() {
  if (!impl_) return;
  asio::post(impl_->ioc, [p = impl_.get()] { p->shutdown(); });
  // run() returns once the aborted attempts' handlers have finished.
  impl_->work.reset();
  impl_->thread.join();
}

void Webhooks::changed(const std::string& doc, const crdt::Version& version, uint64_t events,
                       const std::vector<std::string>& agents) {
  if (!impl_) return;
  Change c;
  c.version = version;
  c.events = events;
  c.agents.insert(agents.begin(), agents.end());
  c.at = Wall::now();
  c.steady_at = Clock::now();
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto [it, fresh] = impl_->incoming.try_emplace(doc);
    if (fresh) {
      it->second = std::move(c);
    } else {
      it->second.merge(c);
    }
    post = !impl_->flush_posted;
    impl_->flush_posted = true;
  }
  // One post per burst, not per call: the webhook thread takes the whole burst in one flush.
  if (post) asio::post(impl_->ioc, [p = impl_.get()] { p->flush(); });
}

bool Webhooks::drain(std::chrono::milliseconds limit) {
  if (!impl_) return true;
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->idle_cv.wait_for(lock, limit, [this] {
    return impl_->incoming.empty() && !impl_->flush_posted && impl_->active == 0;
  });
}

Webhooks::Stats Webhooks::stats() const {
  Stats s;
  if (!impl_) return s;
  s.delivered = impl_->delivered;
  s.attempts = impl_->attempts;
  s.failures = impl_->failures;
  s.dropped = impl_->dropped;
  std::lock_guard<std::mutex> lock(impl_->mu);
  s.pending = impl_->active;
  return s;
}

}  // namespace tandem::net
