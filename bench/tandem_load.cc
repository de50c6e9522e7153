// tandem-load: puts a Tandem server under collaborative-editing load and measures it.
//
// C connections over D documents (client i works on document i % D), each typing R edits per
// second on an open-loop schedule, all on one thread of this process. Reports edit-to-peer
// latency (send -> arrival at every other client of the document), edits/s in, deliveries/s
// out, deliveries never made, errors, and the server's CPU time and memory read from /proc, so
// that server CPU per edit can be compared with the peer servers measured by bench/peers/load
// (same JSON fields as its load.mjs, so its report.mjs prints both). Loopback only.
//
// How edits are made (the "lite" client of bench/peers/load/README.md, in C++): the generator
// keeps, per document, the text's length, each client's caret and the latest event; a client's
// edit is one event whose parent is that latest event, sent at once as one OPS batch. The
// history the server sees is therefore causally linear (no concurrent edits to merge), as with
// the Node generator's shared Y.Doc. Received OPS batches are decoded (not applied) to find
// which edits they carry.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cerrno>
#include <csignal>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crdt/codec.h"
#include "net/url.h"
#include "sync/protocol.h"
#include "ws_frame.h"

namespace {

namespace asio = boost::asio;
namespace ws = tandem::net::ws;
using Clock = std::chrono::steady_clock;
using tandem::crdt::OpBatch;
using tandem::crdt::OpKind;
using tandem::crdt::OpRun;
namespace proto = tandem::proto;
namespace codec = tandem::crdt::codec;

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::vector<std::pair<std::string, uint16_t>> servers;  // every --url; client i uses i % size
  int kill_pid = 0;         // --kill PID@T: SIGKILL PID T seconds into the typing ...
  double kill_at = 0;       // ... and report how long its clients took to be synced again
  std::string path_prefix = "/ws/";
  int clients = 20;
  int docs = 4;
  double rate = 5;
  double seconds = 10;
  double warmup = 3;
  double drain = 5;
  double settle = 5;
  double connect_timeout = 120;
  int connect_parallel = 200;
  bool idle = false;
  bool floor = false;  // the server is bench/floor-relay: no HELLO, WELCOME or ACK
  double probe = 0;    // > 0: two more clients on a document of their own, each typing this often
  bool json = false;
  int server_pid = 0;
  uint64_t seed = 0;
};

[[noreturn]] void usage(int rc) {
  std::fprintf(rc ? stderr : stdout, R"(usage:
  tandem-load --url ws://127.0.0.1:PORT --clients C --docs D --rate R --seconds S [options]
  tandem-load --url ws://127.0.0.1:PORT --clients C --docs D --idle [--settle T] [options]

  --url URL              the server: ws://HOST:PORT (documents are /ws/load-<tag>-<d>);
                         HOST must be a loopback address. Several (a list with commas, or
                         --url again): client i connects to the (i mod n)-th, so clients of one
                         document sit on different nodes of a cluster
  --kill PID@T           T seconds after typing starts, SIGKILL process PID (a node) and report
                         the failover: how long each client it dropped took to be synced again
  --clients C            connections (20)
  --docs D               documents; client i works on document i %% D (4)
  --rate R               edits per second per client (5)
  --seconds S            measured window (10)
  --warmup W             typing before the window (3)
  --drain T              after typing stops, wait at most T s for undelivered edits (5)
  --idle                 open the connections, wait --settle s, report the server's memory
  --settle T             idle: seconds to wait after all connected (5)
  --connect-timeout T    seconds for all connections to be synced (120)
  --connect-parallel N   connection attempts in flight at once (200)
  --probe R              two more clients on a quiet document of their own, each typing R edits
                         per second; their edit-to-peer latency is reported apart ("probe"):
                         what a busy server does to a document that is not busy
  --floor                the server is bench/floor-relay (it forwards frames and nothing else):
                         send no HELLO, count a connection synced once upgraded, expect no ACK
  --server-pid PID       read the server's CPU time and memory from /proc/PID
  --seed N               random seed (default: from the clock)
  --json                 print one JSON object on one line instead of text
)");
  std::exit(rc);
}

// Latencies in microseconds: exact below 64 us, then 32 buckets per power of two (3% wide).
class Histogram {
 public:
  void add(int64_t us) {
    if (us < 0) us = 0;
    const size_t b = bucket(static_cast<uint64_t>(us));
    if (b >= counts_.size()) counts_.resize(b + 1);
    ++counts_[b];
    ++n_;
    sum_ += static_cast<double>(us);
    max_ = std::max<int64_t>(max_, us);
  }
  uint64_t count() const { return n_; }
  double max_ms() const { return static_cast<double>(max_) / 1000.0; }
  double mean_ms() const { return n_ ? sum_ / static_cast<double>(n_) / 1000.0 : 0; }
  // The midpoint of the bucket holding quantile q, capped at the maximum.
  double quantile_ms(double q) const {
    if (n_ == 0) return 0;
    const uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n_)));
    uint64_t seen = 0;
    for (size_t b = 0; b < counts_.size(); ++b) {
      seen += counts_[b];
      if (seen >= std::max<uint64_t>(rank, 1)) {
        const double lo = static_cast<double>(lower(b)), hi = static_cast<double>(lower(b + 1));
        return std::min((lo + hi) / 2.0, static_cast<double>(max_)) / 1000.0;
      }
    }
    return max_ms();
  }

 private:
  static size_t bucket(uint64_t us) {
    if (us < 64) return static_cast<size_t>(us);
    const int e = 63 - __builtin_clzll(us);  // >= 6
    const uint64_t sub = (us >> (e - 5)) - 32;
    return 64 + static_cast<size_t>(e - 6) * 32 + static_cast<size_t>(sub);
  }
  static uint64_t lower(size_t b) {
    if (b < 64) return b;
    const size_t e = (b - 64) / 32 + 6, sub = (b - 64) % 32;
    return (32 + sub) << (e - 5);
  }
  std::vector<uint64_t> counts_;
  uint64_t n_ = 0;
  double sum_ = 0;
  int64_t max_ = 0;
};

struct ProcStat {
  double cpu_s = 0;
  double rss_mb = 0;
  double hwm_mb = 0;
  bool ok = false;
};

ProcStat read_proc(int pid) {
  ProcStat p;
  if (pid <= 0) return p;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return p;
  // Fields after the command name (which may hold spaces), which ends with the last ')'.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return p;
  std::vector<std::string> f;
  size_t i = close + 2;
  while (i < line.size()) {
    size_t j = line.find(' ', i);
    if (j == std::string::npos) j = line.size();
    f.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  if (f.size() < 13) return p;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  p.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / tick;  // utime, stime: fields 14 and 15
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    auto kb = [&](const char* key, double* out) {
      if (line.rfind(key, 0) == 0) *out = std::stod(line.substr(std::strlen(key))) / 1024.0;
    };
    kb("VmRSS:", &p.rss_mb);
    kb("VmHWM:", &p.hwm_mb);
  }
  p.ok = true;
  return p;
}

double self_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double self_peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

double round_to(double v, int digits) {
  const double m = std::pow(10.0, digits);
  return std::round(v * m) / m;
}

constexpr std::string_view kText =
    "The quick brown fox jumps over the lazy dog while the committee debates the minutes of the "
    "previous meeting, which nobody remembers approving. Collaborative editing means that every "
    "keystroke travels to every other person who has the document open, in order, within a blink. ";

class Load;

struct Conn {
  Load* load = nullptr;
  int index = 0;
  int doc = 0;
  int slot = 0;  // position among the clients of its document
  std::string agent;
  size_t server = 0;  // index into Options::servers
  // The connection: a non-blocking socket on the generator's epoll, RFC 6455 by hand (ws_frame.h).
  enum class State { kClosed, kConnecting, kUpgrading, kOpen } state = State::kClosed;
  int fd = -1;
  uint32_t generation = 0;  // of fd, in its epoll data: events of a closed socket are ignored
  int64_t deadline_us = 0;  // connecting and upgrading must be done by then
  std::string key;          // Sec-WebSocket-Key
  std::vector<char> in;
  size_t in_len = 0;
  std::unique_ptr<ws::FrameParser> parser;
  std::string out;          // frames not yet written
  size_t out_head = 0;
  bool dirty = false;       // has output to write at the end of this loop turn
  bool want_out = false;    // registered for EPOLLOUT
  bool synced = false;
  bool ever_synced = false;
  uint32_t next_seq = 0;
  uint32_t caret = 0;
  uint32_t own_run = 0;  // characters this client typed, contiguous, right before its caret
  size_t text_pos = 0;
  std::vector<int64_t> sent_us;         // by seq: when the edit was sent (us since the epoch)
  std::vector<uint32_t> seen;           // by author slot: next seq of that author seen here
};

struct DocModel {
  uint32_t length = 0;
  int last_client = -1;
  uint32_t last_seq = 0;
  std::vector<int> members;
};

class Load {
 public:
  explicit Load(Options o) : opt_(std::move(o)), rng_(opt_.seed) {
    char tag[16];
    std::snprintf(tag, sizeof tag, "%06x", static_cast<unsigned>(rng_() & 0xffffff));
    tag_ = tag;
    const int probes = opt_.probe > 0 ? 2 : 0;
    total_ = opt_.clients + probes;
    probe_doc_ = probes ? opt_.docs : -1;
    docs_.resize(static_cast<size_t>(opt_.docs + (probes ? 1 : 0)));
    conns_.resize(static_cast<size_t>(total_));
    for (int i = 0; i < total_; ++i) {
      auto& c = conns_[static_cast<size_t>(i)];
      c = std::make_unique<Conn>();
      c->load = this;
      c->index = i;
      c->doc = i < opt_.clients ? i % opt_.docs : probe_doc_;
      c->slot = i < opt_.clients ? i / opt_.docs : i - opt_.clients;
      c->agent = "load-" + std::to_string(i);
      c->server = static_cast<size_t>(i) % opt_.servers.size();
      c->text_pos = rng_() % kText.size();
      docs_[static_cast<size_t>(c->doc)].members.push_back(i);
    }
    for (auto& c : conns_) c->seen.assign(docs_[static_cast<size_t>(c->doc)].members.size(), 0);
    order_.resize(static_cast<size_t>(opt_.clients));
    for (int i = 0; i < opt_.clients; ++i) order_[static_cast<size_t>(i)] = i;
    std::shuffle(order_.begin(), order_.end(), rng_);
    for (const auto& [host, port] : opt_.servers) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      inet_pton(AF_INET, host.c_str(), &a.sin_addr);
      endpoints_.push_back(a);
    }
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
  }

  nlohmann::json run() {
    epoch_ = Clock::now();
    const ProcStat before = read_proc(opt_.server_pid);
    connect_all();
    const double connect_s = now_s();
    const ProcStat connected = read_proc(opt_.server_pid);
    nlohmann::json r;
    r["server"] = opt_.floor ? "floor-relay" : "tandem";
    r["client"] = "native";
    r["mode"] = opt_.idle ? "idle" : "load";
    r["date"] = iso_now();
    r["clients"] = opt_.clients;
    r["docs"] = opt_.docs;
    r["connect_s"] = round_to(connect_s, 2);
    r["synced"] = synced_;
    counting_ = true;
    if (opt_.idle) {
      const double t0 = now_s();
      run_for(opt_.settle);
      const ProcStat after = read_proc(opt_.server_pid);
      const double t1 = now_s();
      r["settle_s"] = opt_.settle;
      fill_errors(r);
      if (before.ok && after.ok) {
        r["server_rss_before_mb"] = round_to(before.rss_mb, 1);
        r["server_rss_after_mb"] = round_to(after.rss_mb, 1);
        r["server_rss_per_conn_kb"] = round_to((after.rss_mb - before.rss_mb) * 1024.0 / opt_.clients, 2);
        r["server_peak_rss_mb"] = round_to(after.hwm_mb, 1);
        r["server_idle_cpu_util"] = round_to((after.cpu_s - connected.cpu_s) / (t1 - t0), 4);
      }
      r["gen_peak_rss_mb"] = round_to(self_peak_rss_mb(), 1);
      return r;
    }
    // Typing: warmup, then the window, then the drain.
    type_start_ = now_s();
    win_start_ = type_start_ + opt_.warmup;
    win_end_ = win_start_ + opt_.seconds;
    start_ticks();
    run_until(win_start_);
    const ProcStat s1 = read_proc(opt_.server_pid);
    const double gen_cpu1 = self_cpu_s();
    in_window_ = true;
    run_until(win_end_);
    in_window_ = false;
    typing_ = false;
    const ProcStat s2 = read_proc(opt_.server_pid);
    const double gen_cpu2 = self_cpu_s();
    const double drain_start = now_s();
    while (now_s() - drain_start < opt_.drain && win_observed_ < win_expected_) run_for(0.01);
    const double drain_s = now_s() - drain_start;
    const ProcStat end = read_proc(opt_.server_pid);
    const double win = opt_.seconds;

    r["rate"] = opt_.rate;
    r["seconds"] = opt_.seconds;
    r["warmup"] = opt_.warmup;
    r["edits_target_per_s"] = round_to(opt_.clients * opt_.rate, 1);
    r["edits_per_s"] = round_to(static_cast<double>(win_edits_) / win, 1);
    r["edits_window"] = win_edits_;
    r["inserts_window"] = win_inserts_;
    r["deletes_window"] = win_edits_ - win_inserts_;
    r["edits_skipped_window"] = win_skipped_;
    double per_doc_fanout = 0;  // deliveries per edit, averaged over clients
    for (const auto& c : conns_) per_doc_fanout += static_cast<double>(docs_[static_cast<size_t>(c->doc)].members.size() - 1);
    r["deliveries_target_per_s"] = round_to(opt_.rate * per_doc_fanout, 1);
    r["deliveries_per_s"] = round_to(static_cast<double>(deliveries_in_window_) / win, 1);
    r["deliveries_expected"] = win_expected_;
    r["deliveries_observed"] = win_observed_;
    r["undelivered"] = win_expected_ - win_observed_;
    r["drain_s"] = round_to(drain_s, 2);
    r["latency_ms"] = {{"p50", round_to(lat_.quantile_ms(0.5), 3)},  {"p90", round_to(lat_.quantile_ms(0.9), 3)},
                       {"p99", round_to(lat_.quantile_ms(0.99), 3)}, {"max", round_to(lat_.max_ms(), 3)},
                       {"mean", round_to(lat_.mean_ms(), 3)},        {"samples", lat_.count()}};
    if (probe_doc_ >= 0) {
      r["probe"] = {{"rate", opt_.probe}, {"p50", round_to(probe_lat_.quantile_ms(0.5), 3)},
                    {"p99", round_to(probe_lat_.quantile_ms(0.99), 3)}, {"max", round_to(probe_lat_.max_ms(), 3)},
                    {"samples", probe_lat_.count()}, {"undelivered", probe_expected_ - probe_observed_}};
    }
    if (killed_us_ >= 0) {
      std::vector<int64_t> f = failover_us_;
      std::sort(f.begin(), f.end());
      size_t still_lost = 0;
      for (int64_t t : lost_at_) still_lost += t >= 0;
      r["failover"] = {{"clients", f.size()},
                       {"not_synced_again", still_lost},
                       {"p50_ms", f.empty() ? 0.0 : round_to(static_cast<double>(f[f.size() / 2]) / 1000.0, 1)},
                       {"max_ms", f.empty() ? 0.0 : round_to(static_cast<double>(f.back()) / 1000.0, 1)}};
    }
    r["ack_latency_ms"] = {{"p50", round_to(ack_.quantile_ms(0.5), 3)},
                           {"p99", round_to(ack_.quantile_ms(0.99), 3)},
                           {"max", round_to(ack_.max_ms(), 3)},
                           {"samples", ack_.count()}};
    fill_errors(r);
    r["bad_messages"] = bad_messages_;
    if (s1.ok && s2.ok) {
      const double cpu = s2.cpu_s - s1.cpu_s;
      r["server_cpu_s"] = round_to(cpu, 2);
      r["server_cpu_util"] = round_to(cpu / win, 3);
      r["server_us_per_edit"] = win_edits_ ? round_to(cpu * 1e6 / static_cast<double>(win_edits_), 1) : 0.0;
      r["server_us_per_delivery"] =
          deliveries_in_window_ ? round_to(cpu * 1e6 / static_cast<double>(deliveries_in_window_), 2) : 0.0;
      r["server_rss_before_mb"] = round_to(before.rss_mb, 1);
      r["server_rss_connected_mb"] = round_to(connected.rss_mb, 1);
      r["server_rss_end_mb"] = round_to(end.rss_mb, 1);
      r["server_peak_rss_mb"] = round_to(end.hwm_mb, 1);
      r["server_saturated"] = cpu / win >= 0.9;
    } else {
      r["server_cpu_s"] = nullptr;
      r["server_saturated"] = nullptr;
    }
    const double gen_cpu = gen_cpu2 - gen_cpu1;
    r["gen_cpu_s"] = round_to(gen_cpu, 2);
    r["gen_cpu_util"] = round_to(gen_cpu / win, 3);
    r["gen_loop_delay_p99_ms"] = round_to(loop_.quantile_ms(0.99), 2);
    r["gen_loop_delay_max_ms"] = round_to(loop_.max_ms(), 2);
    r["gen_peak_rss_mb"] = round_to(self_peak_rss_mb(), 1);
    r["generator_saturated"] = gen_cpu / win >= 0.9 || win_skipped_ > 0 || loop_.quantile_ms(0.99) >= 100;
    return r;
  }

  // Connection events, called by the handlers below.
  void on_welcome(Conn& c) {
    if (!c.synced && killed_us_ >= 0 && lost_at_[static_cast<size_t>(c.index)] >= 0) {
      failover_us_.push_back(now_us() - killed_us_);
      lost_at_[static_cast<size_t>(c.index)] = -1;
    }
    if (!c.synced) {
      c.synced = true;
      if (!c.ever_synced) {
        c.ever_synced = true;
        ++synced_;
        --connecting_;
        pump_connects();
      }
    }
  }
  void on_lost(Conn& c, bool during_connect) {
    const bool was_connecting = !c.ever_synced;
    if (killed_us_ >= 0 && c.synced && lost_at_[static_cast<size_t>(c.index)] < 0) lost_at_[static_cast<size_t>(c.index)] = now_us();
    c.synced = false;
    close_socket(c);
    if (counting_) {
      if (during_connect) ++conn_errors_;
      else ++closes_;
    }
    if (stopping_) return;
    if (was_connecting && during_connect && now_s() > opt_.connect_timeout) {
      --connecting_;
      ++connect_failed_;
      pump_connects();
      return;
    }
    // Reconnect after a pause; the catch-up that follows repeats what this client saw.
    reconnects_.emplace(now_us() + 500000 + static_cast<int64_t>(rng_() % 500000), c.index);
  }
  void on_ops(Conn& c, const proto::Ops& m);
  void on_ack(Conn& c, uint64_t batch_id) {
    if (batch_id == 0 || batch_id > c.sent_us.size()) return;
    const int64_t sent = c.sent_us[batch_id - 1];
    if (window_sent(sent)) ack_.add(now_us() - sent);
  }
  void on_error(Conn&, const proto::Error& e) {
    if (counting_) ++server_errors_[e.code];
    if (error_messages_ < 5) {
      ++error_messages_;
      std::fprintf(stderr, "tandem-load: server error %u: %s\n", e.code, e.message.c_str());
    }
  }
  void on_bad_message(const std::string& why) {
    ++bad_messages_;
    if (error_messages_ < 5) {
      ++error_messages_;
      std::fprintf(stderr, "tandem-load: bad message from the server: %s\n", why.c_str());
    }
  }

  // Queues one protocol message as a masked binary frame; written at the end of the loop turn.
  void send(Conn& c, std::string_view message);
  void open(Conn& c);

 private:
  int64_t now_us() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - epoch_).count();
  }
  double now_s() const { return static_cast<double>(now_us()) / 1e6; }
  bool window_sent(int64_t sent_us) const {
    return sent_us >= static_cast<int64_t>(win_start_ * 1e6) && sent_us < static_cast<int64_t>(win_end_ * 1e6);
  }
  static std::string iso_now() {
    const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return buf;
  }

  void run_for(double s) { run_until(now_s() + s); }
  // The event loop: epoll (level-triggered) until t, the typing tick every millisecond, and the
  // reconnect and connect-timeout timers. What a turn queued for a socket goes out in one write.
  void run_until(double t) {
    const int64_t end = static_cast<int64_t>(t * 1e6);
    std::vector<epoll_event> events(1024);
    for (;;) {
      int64_t now = now_us();
      if (now >= end) break;
      int64_t next = end;
      if (typing_) next = std::min(next, last_tick_due_ + 1000);
      if (!reconnects_.empty()) next = std::min(next, reconnects_.begin()->first);
      if (!pending_deadlines_.empty()) next = std::min(next, *pending_deadlines_.begin());
      const int64_t wait_us = std::max<int64_t>(0, next - now);
      const timespec ts{static_cast<time_t>(wait_us / 1000000), static_cast<long>((wait_us % 1000000) * 1000)};
      const int n = epoll_pwait2(epfd_, events.data(), static_cast<int>(events.size()), &ts, nullptr);
      for (int i = 0; i < n; ++i) {
        const uint64_t data = events[static_cast<size_t>(i)].data.u64;
        Conn& c = *conns_[static_cast<size_t>(data & 0xFFFFFFFF)];
        if (c.fd < 0 || c.generation != static_cast<uint32_t>(data >> 32)) continue;
        on_event(c, events[static_cast<size_t>(i)].events);
      }
      now = now_us();
      if (typing_ && now >= last_tick_due_ + 1000) tick(now);
      while (!reconnects_.empty() && reconnects_.begin()->first <= now) {
        const int index = reconnects_.begin()->second;
        reconnects_.erase(reconnects_.begin());
        if (!stopping_) open(*conns_[static_cast<size_t>(index)]);
      }
      if (!pending_deadlines_.empty() && *pending_deadlines_.begin() <= now) expire_connects(now);
      flush_dirty();
    }
  }

  void on_event(Conn& c, uint32_t ev);
  void on_readable(Conn& c);
  void on_upgrade_response(Conn& c);
  void on_frames(Conn& c);
  void on_message(Conn& c, std::string_view message);
  void close_socket(Conn& c);
  void set_out(Conn& c, bool want);
  void mark_dirty(Conn& c) {
    if (!c.dirty) {
      c.dirty = true;
      dirty_.push_back(c.index);
    }
  }
  void flush(Conn& c);
  void flush_dirty() {
    for (size_t i = 0; i < dirty_.size(); ++i) flush(*conns_[static_cast<size_t>(dirty_[i])]);
    dirty_.clear();
  }
  void expire_connects(int64_t now) {
    pending_deadlines_.clear();
    for (auto& c : conns_) {
      if (c->state == Conn::State::kConnecting || c->state == Conn::State::kUpgrading) {
        if (c->deadline_us <= now) {
          on_lost(*c, true);
        } else {
          pending_deadlines_.insert(c->deadline_us);
        }
      }
    }
  }

  void connect_all() {
    pump_connects();
    while (synced_ + connect_failed_ < total_ && now_s() < opt_.connect_timeout) run_for(0.05);
    if (synced_ + connect_failed_ < total_) {
      connect_failed_ = total_ - synced_;
      std::fprintf(stderr, "tandem-load: %d of %d connections not synced after %.0f s\n", connect_failed_,
                   total_, opt_.connect_timeout);
    }
  }
  void pump_connects() {
    while (connecting_ < opt_.connect_parallel && next_connect_ < total_) {
      ++connecting_;
      open(*conns_[static_cast<size_t>(next_connect_++)]);
    }
  }

  void fill_errors(nlohmann::json& r) {
    nlohmann::json by_code = nlohmann::json::object();
    for (const auto& [code, n] : server_errors_) by_code[std::to_string(code)] = n;
    r["errors"] = {{"connect_failed", connect_failed_}, {"conn_errors", conn_errors_}, {"closes", closes_},
                   {"server_errors", by_code}};
  }

  // The typing schedule: edit n of all C*R per second is due at type_start + n / (C*R) and goes
  // to the next client of a fixed random order.
  void start_ticks() {
    typing_ = true;
    last_tick_due_ = now_us();
  }
  void tick(int64_t now) {
    if (opt_.kill_pid > 0 && killed_us_ < 0 && now >= static_cast<int64_t>((type_start_ + opt_.kill_at) * 1e6)) {
      lost_at_.assign(conns_.size(), -1);
      killed_us_ = now;
      ::kill(opt_.kill_pid, SIGKILL);
    }
    last_tick_due_ += 1000;
    if (in_window_) loop_.add(now - last_tick_due_);
    type_due(now);
    // The probe's two clients type in turn, each at --probe edits per second.
    if (probe_doc_ >= 0 && now >= next_probe_us_) {
      Conn& c = *conns_[static_cast<size_t>(opt_.clients + static_cast<int>(probe_turn_++ % 2))];
      if (c.synced) type_one(c, now);
      next_probe_us_ = std::max(next_probe_us_ + static_cast<int64_t>(1e6 / (2 * opt_.probe)), now - 1000000);
    }
    if (now - last_tick_due_ > 1000) last_tick_due_ = now;  // do not try to catch up with ticks
  }
  void type_due(int64_t now) {
    const double per_s = opt_.clients * opt_.rate;
    const double elapsed = static_cast<double>(now) / 1e6 - type_start_;
    const uint64_t due = static_cast<uint64_t>(elapsed * per_s);
    for (; issued_ < due; ++issued_) {
      const double due_s = type_start_ + static_cast<double>(issued_) / per_s;
      Conn& c = *conns_[static_cast<size_t>(order_[issued_ % order_.size()])];
      const bool window = due_s >= win_start_ && due_s < win_end_;
      if (static_cast<double>(now) / 1e6 - due_s > 1.0) {
        if (window) ++win_skipped_;
        continue;
      }
      if (!c.synced) {
        if (window) ++win_offline_;
        continue;
      }
      type_one(c, now);
    }
  }
  void type_one(Conn& c, int64_t now);

  Options opt_;
  std::mt19937_64 rng_;
  std::string tag_;
  int epfd_ = -1;
  std::vector<sockaddr_in> endpoints_;  // by Options::servers
  int64_t killed_us_ = -1;              // when --kill's SIGKILL went out
  std::vector<int64_t> failover_us_;    // per dropped client: kill to synced again
  std::vector<int64_t> lost_at_;        // per client: when its connection was lost after the kill
  uint64_t mask_state_ = 0x9E3779B97F4A7C15ull;  // xorshift for masking keys
  std::vector<int> dirty_;
  std::multimap<int64_t, int> reconnects_;  // when, connection
  std::set<int64_t> pending_deadlines_;     // of connections not yet open
  Clock::time_point epoch_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<DocModel> docs_;
  std::vector<int> order_;
  int64_t last_tick_due_ = 0;
  int total_ = 0;        // connections, with the probe's
  int probe_doc_ = -1;   // the probe's document, or -1
  uint64_t probe_turn_ = 0;
  int64_t next_probe_us_ = 0;
  uint64_t probe_expected_ = 0, probe_observed_ = 0;
  Histogram probe_lat_;
  uint64_t issued_ = 0;
  int next_connect_ = 0, connecting_ = 0, synced_ = 0;
  bool counting_ = false, typing_ = false, in_window_ = false, stopping_ = false;
  double type_start_ = 0, win_start_ = 0, win_end_ = 0;
  uint64_t win_edits_ = 0, win_inserts_ = 0, win_skipped_ = 0, win_offline_ = 0;
  uint64_t win_expected_ = 0, win_observed_ = 0, deliveries_in_window_ = 0;
  int connect_failed_ = 0;
  uint64_t conn_errors_ = 0, closes_ = 0, bad_messages_ = 0;
  int error_messages_ = 0;
  std::map<uint16_t, uint64_t> server_errors_;
  Histogram lat_, ack_, loop_;
};

void Load::type_one(Conn& c, int64_t now) {
  DocModel& d = docs_[static_cast<size_t>(c.doc)];
  OpRun run;
  run.agent = c.agent;
  run.seq = c.next_seq++;
  run.len = 1;
  if (d.last_client >= 0) run.parents.push_back({conns_[static_cast<size_t>(d.last_client)]->agent, d.last_seq});
  const uint32_t r = static_cast<uint32_t>(rng_() % 100);
  bool insert = true;
  if (r < 10 && c.own_run > 0 && c.caret > 0) {
    insert = false;  // backspace over this client's own last character
    run.kind = OpKind::kDeleteForward;
    run.pos = c.caret - 1;
    --c.own_run;
  } else {
    if (r >= 97 || c.caret > d.length) {  // jump somewhere, then type
      c.caret = static_cast<uint32_t>(rng_() % (d.length + 1));
      c.own_run = 0;
    }
    run.kind = OpKind::kInsert;
    run.pos = c.caret;
    run.content.assign(1, kText[c.text_pos++ % kText.size()]);
    ++c.own_run;
  }
  // Everyone's caret stays on the same character.
  for (int m : d.members) {
    Conn& o = *conns_[static_cast<size_t>(m)];
    if (&o == &c) continue;
    if (insert && o.caret > run.pos) ++o.caret;
    if (!insert && o.caret > run.pos) --o.caret;
  }
  if (insert) {
    ++c.caret;
    ++d.length;
  } else {
    --c.caret;
    --d.length;
  }
  d.last_client = c.index;
  d.last_seq = run.seq;
  c.sent_us.push_back(now);
  if (c.doc == probe_doc_) {
    if (window_sent(now)) probe_expected_ += d.members.size() - 1;
  } else if (now >= static_cast<int64_t>(win_start_ * 1e6) && now < static_cast<int64_t>(win_end_ * 1e6)) {
    ++win_edits_;
    if (insert) ++win_inserts_;
    win_expected_ += d.members.size() - 1;
  }
  OpBatch batch;
  batch.runs.push_back(std::move(run));
  send(c, proto::encode(proto::Ops{c.next_seq, codec::encode_ops(batch)}));
}

void Load::on_ops(Conn& c, const proto::Ops& m) {
  auto batch = codec::decode_ops(m.encoded);
  if (!batch.ok()) {
    on_bad_message("undecodable ops: " + batch.status().ToString());
    return;
  }
  const int64_t now = now_us();
  const bool window_now = in_window_;
  for (const OpRun& run : batch->runs) {
    // Agents here are "load-<i>"; any other is not ours to count.
    if (run.agent.size() <= 5 || run.agent.compare(0, 5, "load-") != 0) continue;
    int author = -1;
    const char* first = run.agent.data() + 5;
    auto [end, ec] = std::from_chars(first, run.agent.data() + run.agent.size(), author);
    if (ec != std::errc() || end != run.agent.data() + run.agent.size() || author < 0 || author >= total_) continue;
    if (author == c.index) continue;
    const Conn& a = *conns_[static_cast<size_t>(author)];
    if (a.doc != c.doc) {
      on_bad_message("an edit of another document arrived");
      continue;
    }
    uint32_t& seen = c.seen[static_cast<size_t>(a.slot)];
    const bool probe = c.doc == probe_doc_;
    for (uint32_t s = std::max(seen, run.seq); s < run.seq + run.len && s < a.sent_us.size(); ++s) {
      const int64_t sent = a.sent_us[s];
      if (probe) {
        if (window_sent(sent)) {
          ++probe_observed_;
          probe_lat_.add(now - sent);
        }
        continue;
      }
      if (window_now) ++deliveries_in_window_;
      if (window_sent(sent)) {
        ++win_observed_;
        lat_.add(now - sent);
      }
    }
    seen = std::max(seen, run.seq + run.len);
  }
}

void Load::send(Conn& c, std::string_view message) {
  if (c.state != Conn::State::kOpen) return;
  // xorshift64: masking keys need not be secret here, only present (RFC 6455 5.3).
  mask_state_ ^= mask_state_ << 13;
  mask_state_ ^= mask_state_ >> 7;
  mask_state_ ^= mask_state_ << 17;
  uint8_t mask[4];
  std::memcpy(mask, &mask_state_, 4);
  uint8_t header[ws::kMaxHeaderBytes];
  const size_t h = ws::write_header(header, ws::kBinary, message.size(), mask);
  const size_t at = c.out.size();
  c.out.append(reinterpret_cast<const char*>(header), h);
  c.out.append(message);
  ws::apply_mask(c.out.data() + at + h, message.size(), mask);
  mark_dirty(c);
}

void Load::set_out(Conn& c, bool want) {
  if (c.want_out == want || c.fd < 0) return;
  c.want_out = want;
  epoll_event ev{};
  ev.events = EPOLLIN | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  ev.data.u64 = static_cast<uint64_t>(c.index) | (static_cast<uint64_t>(c.generation) << 32);
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Load::flush(Conn& c) {
  c.dirty = false;
  if (c.fd < 0 || c.state == Conn::State::kConnecting) return;
  while (c.out_head < c.out.size()) {
    const ssize_t w = ::send(c.fd, c.out.data() + c.out_head, c.out.size() - c.out_head, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      on_lost(c, !c.synced);  // the read side would see it too
      return;
    }
    c.out_head += static_cast<size_t>(w);
  }
  if (c.out_head == c.out.size()) {
    c.out.clear();
    c.out_head = 0;
    set_out(c, false);
  } else {
    set_out(c, true);
  }
}

void Load::close_socket(Conn& c) {
  if (c.fd >= 0) ::close(c.fd);  // also leaves the epoll set
  c.fd = -1;
  c.state = Conn::State::kClosed;
  c.in_len = 0;
  c.out.clear();
  c.out_head = 0;
  c.want_out = false;
  c.parser.reset();
}

void Load::open(Conn& c) {
  close_socket(c);
  ++c.generation;
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) return on_lost(c, true);
  const int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const sockaddr_in& endpoint = endpoints_[c.server];
  if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&endpoint), sizeof endpoint) != 0 && errno != EINPROGRESS) {
    return on_lost(c, true);
  }
  c.state = Conn::State::kConnecting;
  c.deadline_us = now_us() + 30000000;
  pending_deadlines_.insert(c.deadline_us);
  if (c.in.size() < 4096) c.in.resize(4096);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = static_cast<uint64_t>(c.index) | (static_cast<uint64_t>(c.generation) << 32);
  epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
  c.want_out = true;
}

void Load::on_event(Conn& c, uint32_t ev) {
  if (c.state == Conn::State::kConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) return on_lost(c, true);
    if (!(ev & EPOLLOUT)) return;
    // The upgrade request.
    uint8_t raw[16];
    for (auto& b : raw) b = static_cast<uint8_t>(rng_());
    static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    c.key.clear();
    for (int i = 0; i < 16; i += 3) {
      const uint32_t v = (uint32_t{raw[i]} << 16) | (i + 1 < 16 ? uint32_t{raw[i + 1]} << 8 : 0) | (i + 2 < 16 ? raw[i + 2] : 0);
      c.key += kB64[(v >> 18) & 63];
      c.key += kB64[(v >> 12) & 63];
      c.key += i + 1 < 16 ? kB64[(v >> 6) & 63] : '=';
      c.key += i + 2 < 16 ? kB64[v & 63] : '=';
    }
    const std::string target = opt_.path_prefix + "load-" + tag_ + "-" + std::to_string(c.doc);
    c.out = "GET " + target + " HTTP/1.1\r\nHost: " + opt_.servers[c.server].first + ":" +
            std::to_string(opt_.servers[c.server].second) +
            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + c.key +
            "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    c.out_head = 0;
    c.state = Conn::State::kUpgrading;
    flush(c);
    return;
  }
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
  if (c.fd >= 0 && (ev & EPOLLOUT) && !c.dirty) flush(c);
}

void Load::on_readable(Conn& c) {
  for (;;) {
    if (c.in_len == c.in.size()) c.in.resize(c.in.size() * 2);
    const size_t space = c.in.size() - c.in_len;
    const ssize_t r = ::recv(c.fd, c.in.data() + c.in_len, space, 0);
    if (r == 0) return on_lost(c, !c.synced);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) on_lost(c, !c.synced);
      return;
    }
    c.in_len += static_cast<size_t>(r);
    if (c.state == Conn::State::kUpgrading) on_upgrade_response(c);
    if (c.state == Conn::State::kOpen) on_frames(c);
    // Level-triggered: a short read drained the socket; epoll reports what comes next.
    if (c.fd < 0 || static_cast<size_t>(r) < space) return;
  }
}

void Load::on_upgrade_response(Conn& c) {
  const std::string_view got(c.in.data(), c.in_len);
  const size_t end = got.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (c.in_len > 16384) on_lost(c, true);
    return;
  }
  const std::string head(got.substr(0, end + 2));
  // Header names are case-insensitive (HAProxy sends them in lower case).
  std::string lower = head;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const std::string accept = "sec-websocket-accept: " + ws::accept_key(c.key) + "\r\n";
  std::string accept_lower = accept;
  for (char& ch : accept_lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (head.rfind("HTTP/1.1 101", 0) != 0 || lower.find(accept_lower) == std::string::npos) {
    if (error_messages_ < 5) {
      ++error_messages_;
      std::fprintf(stderr, "tandem-load: upgrade refused: %s\n", head.substr(0, head.find('\r')).c_str());
    }
    return on_lost(c, true);
  }
  std::memmove(c.in.data(), c.in.data() + end + 4, c.in_len - end - 4);
  c.in_len -= end + 4;
  c.state = Conn::State::kOpen;
  c.parser = std::make_unique<ws::FrameParser>(false, size_t{256} << 20);
  if (opt_.floor) {
    on_welcome(c);
    return;
  }
  proto::Hello h;
  // Plain text only: protocol 1, which servers of before and after formatting (protocol 2) take.
  h.version = proto::kOldestProtocolVersion;
  h.agents = {c.agent};
  // What this client saw, so that a reconnect is sent only what it missed. Edits it sent that
  // never reached the server are not resent (a reconnect counts as a close).
  const auto& members = docs_[static_cast<size_t>(c.doc)].members;
  for (size_t slot = 0; slot < members.size(); ++slot) {
    const Conn& a = *conns_[static_cast<size_t>(members[slot])];
    const uint32_t n = &a == &c ? c.next_seq : c.seen[slot];
    if (n > 0) h.doc_version.advance(a.agent, n);
  }
  send(c, proto::encode(h));
}

void Load::on_frames(Conn& c) {
  size_t off = 0;
  while (c.fd >= 0) {
    auto e = c.parser->next(c.in.data() + off, c.in_len - off);
    using K = ws::FrameParser::Kind;
    if (e.kind == K::kNeedMore) {
      if (e.need > c.in.size() - off) {
        std::memmove(c.in.data(), c.in.data() + off, c.in_len - off);
        c.in_len -= off;
        off = 0;
        c.in.resize(std::max(e.need, c.in.size()));
      }
      break;
    }
    off += e.consumed;
    if (e.kind == K::kMessage) {
      on_message(c, e.payload);
    } else if (e.kind == K::kPing) {
      // A pong carries the ping's data, masked like any client frame.
      uint8_t mask[4] = {1, 2, 3, 4};
      uint8_t header[ws::kMaxHeaderBytes];
      const size_t h = ws::write_header(header, ws::kPong, e.payload.size(), mask);
      const size_t at = c.out.size();
      c.out.append(reinterpret_cast<const char*>(header), h);
      c.out.append(e.payload);
      ws::apply_mask(c.out.data() + at + h, e.payload.size(), mask);
      mark_dirty(c);
    } else if (e.kind == K::kClose || e.kind == K::kError) {
      if (e.kind == K::kError) on_bad_message(std::string("framing: ") + e.error);
      return on_lost(c, !c.synced);
    }
  }
  if (c.fd < 0) return;
  if (off > 0) {
    std::memmove(c.in.data(), c.in.data() + off, c.in_len - off);
    c.in_len -= off;
  }
}

void Load::on_message(Conn& c, std::string_view message) {
  auto m = proto::decode(message);
  if (!m.ok()) {
    on_bad_message(m.status().ToString());
  } else if (std::holds_alternative<proto::Welcome>(*m)) {
    on_welcome(c);
  } else if (auto* o = std::get_if<proto::Ops>(&*m)) {
    on_ops(c, *o);
  } else if (auto* a = std::get_if<proto::Ack>(&*m)) {
    on_ack(c, a->batch_id);
  } else if (auto* e = std::get_if<proto::Error>(&*m)) {
    on_error(c, *e);
  }
}

bool parse_one_url(const std::string& url, Options* o) {
  auto u = tandem::net::ParseUrl(url, tandem::net::UrlKind::kWebSocket, "server URL");
  if (!u.ok() || u->tls || (u->path != "/" && u->path != "/ws" && u->path != "/ws/")) return false;
  o->host = u->host;
  o->port = static_cast<uint16_t>(std::stoul(u->port));
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(o->host, ec);
  if (ec) {
    std::fprintf(stderr, "tandem-load: give the host as an IP address, not '%s'\n", o->host.c_str());
    return false;
  }
  if (!addr.is_loopback()) {
    std::fprintf(stderr, "tandem-load: %s is not a loopback address; load tests stay on this machine\n", o->host.c_str());
    std::exit(2);
  }
  o->servers.emplace_back(o->host, o->port);
  return true;
}

bool parse_url(const std::string& urls, Options* o) {
  size_t at = 0;
  while (at <= urls.size()) {
    const size_t comma = urls.find(',', at);
    if (!parse_one_url(urls.substr(at, comma == std::string::npos ? std::string::npos : comma - at), o)) return false;
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return true;
}

void print_text(const nlohmann::json& r) {
  auto kv = [](const char* k, const std::string& v) { std::printf("  %-28s %s\n", k, v.c_str()); };
  auto s = [](const nlohmann::json& v) { return v.is_null() ? std::string("n/a") : v.dump(); };
  std::printf("%s %s: clients=%d docs=%d\n", r["server"].get<std::string>().c_str(), r["mode"].get<std::string>().c_str(), r["clients"].get<int>(),
              r["docs"].get<int>());
  kv("connect (all synced)", s(r["connect_s"]) + " s, " + s(r["synced"]) + " synced");
  if (r["mode"] == "idle") {
    kv("server RSS before/after", s(r.value("server_rss_before_mb", nlohmann::json())) + " / " +
                                      s(r.value("server_rss_after_mb", nlohmann::json())) + " MiB");
    kv("server RSS per connection", s(r.value("server_rss_per_conn_kb", nlohmann::json())) + " KiB");
    kv("server CPU while idle", s(r.value("server_idle_cpu_util", nlohmann::json())) + " of a core");
  } else {
    kv("edits/s (target)", s(r["edits_per_s"]) + " (" + s(r["edits_target_per_s"]) + "), skipped " +
                               s(r["edits_skipped_window"]));
    kv("deliveries/s (target)", s(r["deliveries_per_s"]) + " (" + s(r["deliveries_target_per_s"]) + ")");
    kv("deliveries expected/seen", s(r["deliveries_expected"]) + " / " + s(r["deliveries_observed"]) +
                                       ", undelivered " + s(r["undelivered"]) + " (drain " + s(r["drain_s"]) + " s)");
    const auto& l = r["latency_ms"];
    kv("latency ms p50/p90/p99/max", s(l["p50"]) + " / " + s(l["p90"]) + " / " + s(l["p99"]) + " / " + s(l["max"]) +
                                         " (" + s(l["samples"]) + " samples)");
    const auto& a = r["ack_latency_ms"];
    if (r.contains("probe")) {
      const auto& p = r["probe"];
      kv("probe (quiet doc) ms p50/p99", s(p["p50"]) + " / " + s(p["p99"]) + " / max " + s(p["max"]) + " (" +
                                             s(p["samples"]) + " samples, undelivered " + s(p["undelivered"]) + ")");
    }
    if (r.contains("failover")) {
      const auto& f = r["failover"];
      kv("failover: clients synced again", s(f["clients"]) + " after the kill, p50 " + s(f["p50_ms"]) + " ms, max " +
                                                  s(f["max_ms"]) + " ms, never " + s(f["not_synced_again"]));
    }
    kv("durable ack ms p50/p99/max", s(a["p50"]) + " / " + s(a["p99"]) + " / " + s(a["max"]));
    kv("server CPU", s(r["server_cpu_s"]) + " s (" + s(r.value("server_cpu_util", nlohmann::json())) + " of a core), " +
                         s(r.value("server_us_per_edit", nlohmann::json())) + " us/edit");
    kv("server peak RSS (VmHWM)", s(r.value("server_peak_rss_mb", nlohmann::json())) + " MiB");
    kv("generator CPU", s(r["gen_cpu_s"]) + " s (" + s(r["gen_cpu_util"]) + " of a core), tick delay p99 " +
                            s(r["gen_loop_delay_p99_ms"]) + " ms");
    kv("saturated", "server " + s(r["server_saturated"]) + ", generator " + s(r["generator_saturated"]));
  }
  kv("errors", r["errors"].dump());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool have_url = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tandem-load: %s needs a value\n", a.c_str());
        usage(2);
      }
      return argv[++i];
    };
    auto num = [&](double lo, double hi) {
      const std::string v = next();
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(d >= lo && d <= hi)) {
        std::fprintf(stderr, "tandem-load: %s wants a number in [%g, %g], not '%s'\n", a.c_str(), lo, hi, v.c_str());
        std::exit(2);
      }
      return d;
    };
    if (a == "-h" || a == "--help") usage(0);
    else if (a == "--url") {
      if (!parse_url(next(), &o)) {
        std::fprintf(stderr, "tandem-load: --url wants ws://IP:PORT\n");
        return 2;
      }
      have_url = true;
    } else if (a == "--clients") o.clients = static_cast<int>(num(1, 1e6));
    else if (a == "--docs") o.docs = static_cast<int>(num(1, 1e6));
    else if (a == "--rate") o.rate = num(0.001, 1e4);
    else if (a == "--seconds") o.seconds = num(0.1, 86400);
    else if (a == "--warmup") o.warmup = num(0, 86400);
    else if (a == "--drain") o.drain = num(0, 86400);
    else if (a == "--settle") o.settle = num(0, 86400);
    else if (a == "--connect-timeout") o.connect_timeout = num(1, 86400);
    else if (a == "--connect-parallel") o.connect_parallel = static_cast<int>(num(1, 1e5));
    else if (a == "--server-pid") o.server_pid = static_cast<int>(num(1, 1e9));
    else if (a == "--seed") o.seed = static_cast<uint64_t>(num(0, 1e18));
    else if (a == "--idle") o.idle = true;
    else if (a == "--floor") o.floor = true;
    else if (a == "--kill") {
      const std::string v = next();
      const size_t atsign = v.find('@');
      o.kill_pid = atsign == std::string::npos ? 0 : std::atoi(v.substr(0, atsign).c_str());
      o.kill_at = atsign == std::string::npos ? 0 : std::atof(v.substr(atsign + 1).c_str());
      if (o.kill_pid <= 0) {
        std::fprintf(stderr, "tandem-load: --kill wants PID@SECONDS\n");
        return 2;
      }
    }
    else if (a == "--probe") o.probe = num(0.001, 1000);
    else if (a == "--json") o.json = true;
    else {
      std::fprintf(stderr, "tandem-load: unknown argument %s\n", a.c_str());
      usage(2);
    }
  }
  if (!have_url) usage(2);
  if (o.docs > o.clients) {
    std::fprintf(stderr, "tandem-load: more documents (%d) than clients (%d)\n", o.docs, o.clients);
    return 2;
  }
  if (o.seed == 0) o.seed = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < static_cast<rlim_t>(o.clients) + 64) {
    nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, static_cast<rlim_t>(o.clients) + 1024);
    setrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_cur < static_cast<rlim_t>(o.clients) + 64) {
      std::fprintf(stderr, "tandem-load: the open-files limit (%lu) is too low for %d connections\n",
                   static_cast<unsigned long>(nofile.rlim_cur), o.clients);
      return 2;
    }
  }
  Load load(o);
  const nlohmann::json r = load.run();
  if (o.json) std::printf("%s\n", r.dump().c_str());
  else print_text(r);
  return 0;
}
