// Webhooks against real HTTP receivers on 127.0.0.1: a Python http.server child process that
// records every request (arrival time, headers, body) as JSON lines, and can fail the first N
// requests, answer slowly, or speak TLS with a certificate no system store trusts.
#include "net/webhook.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>
#include <tuple>

#include "support/net_fixtures.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;
using nlohmann::json;
using tandem::crdt::Status;
using tandem::crdt::Version;
using tandem::net::ValidateWebhookOptions;
using tandem::net::WebhookOptions;
using tandem::net::Webhooks;
using tandem::testing::TempDir;
using Wall = std::chrono::system_clock;

namespace {

const char kReceiverPy[] = R"PY(
import http.server, json, ssl, sys, threading, time
args = dict(a.split('=', 1) for a in sys.argv[1:])
fail = int(args.get('fail', '0'))
delay = float(args.get('sleep', '0'))
lock = threading.Lock()
seen = [0]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', '0'))).decode('utf-8', 'replace')
        with lock:
            seen[0] += 1
            n = seen[0]
            with open(args['log'], 'a') as f:
                f.write(json.dumps({'t': time.time(), 'path': self.path,
                                    'headers': {k.lower(): v for k, v in self.headers.items()},
                                    'body': body}) + '\n')
        if delay:
            time.sleep(delay)
        try:
            self.send_response(500 if n <= fail else 200)
            self.send_header('Content-Length', '0')
            self.end_headers()
        except OSError:
            pass  # the client gave up (timeout test)

    def log_message(self, *a):
        pass

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass

srv = Server(('127.0.0.1', int(args.get('port', '0'))), Handler)
if 'cert' in args:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args['cert'], args['key'])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
)PY";

struct Request {
  double t = 0;  // arrival, unix seconds (receiver's clock)
  std::string path;
  json headers;
  std::string body;
  json doc;  // the body parsed
  std::string header(const std::string& name) const { return headers.value(name, std::string()); }
};

struct ReceiverOptions {
  int fail = 0;          // answer 500 to this many requests first
  double sleep_s = 0;    // before answering each
  uint16_t port = 0;     // 0: any free port
  std::string cert{};    // set (with key): HTTPS
  std::string key{};
};

// The receiver as a child process, killed when this goes out of scope (even when a REQUIRE fails).
class Receiver {
 public:
  Receiver(const TempDir& dir, ReceiverOptions o) {
    static int serial = 0;
    const std::string n = std::to_string(++serial);
    const std::string script = dir.file("receiver.py");
    std::ofstream(script) << kReceiverPy;
    log_ = dir.file("requests-" + n + ".jsonl");
    std::vector<std::string> args = {"python3", script, "log=" + log_, "fail=" + std::to_string(o.fail),
                                     "sleep=" + std::to_string(o.sleep_s), "port=" + std::to_string(o.port)};
    if (!o.cert.empty()) {
      args.push_back("cert=" + o.cert);
      args.push_back("key=" + o.key);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string err = dir.file("receiver-" + n + ".stderr");
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(fds[1], 1);
      const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (e >= 0) dup2(e, 2);
      close(fds[0]);
      close(fds[1]);
      execvp("python3", argv.data());
      _exit(127);
    }
    close(fds[1]);
    std::string line;
    const auto end = std::chrono::steady_clock::now() + 20s;
    char c = 0;
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      if (read(fds[0], &c, 1) != 1) break;
      line.push_back(c);
    }
    close(fds[0]);
    INFO("receiver said: " << line);
    REQUIRE(line.find('\n') != std::string::npos);
    port_ = static_cast<uint16_t>(std::stoi(line));
  }
  ~Receiver() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  uint16_t port() const { return port_; }

  // Every request recorded so far (complete lines only).
  std::vector<Request> requests() const {
    std::vector<Request> out;
    std::ifstream f(log_);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    size_t start = 0;
    for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
      json j = json::parse(text.substr(start, nl - start));
      Request r;
      r.t = j["t"].get<double>();
      r.path = j["path"].get<std::string>();
      r.headers = j["headers"];
      r.body = j["body"].get<std::string>();
      r.doc = json::parse(r.body, nullptr, false);
      out.push_back(std::move(r));
    }
    return out;
  }

  std::vector<Request> wait_requests(size_t n, std::chrono::milliseconds limit) const {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto rs = requests();
      if (rs.size() >= n || std::chrono::steady_clock::now() > end) return rs;
      std::this_thread::sleep_for(10ms);
    }
  }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_;
};

// What the component logged; declared before the Webhooks so that it outlives its thread.
class LogSink {
 public:
  Webhooks::LogFn fn() {
    return [this](std::string_view event, std::string detail, bool warning) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(std::string(event), std::move(detail), warning);
      if (std::getenv("TANDEM_TEST_LOGS")) std::fprintf(stderr, "%.*s %s\n", int(event.size()), event.data(), std::get<1>(lines_.back()).c_str());
    };
  }
  // How many lines of `event` contain `text`.
  size_t count(std::string_view event, std::string_view text = "") {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [e, d, w] : lines_) n += e == event && d.find(text) != std::string::npos;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<std::tuple<std::string, std::string, bool>> lines_;
};

WebhookOptions fast_options(const std::string& url) {
  WebhookOptions o;
  o.url = url;
  o.debounce = 50ms;
  o.timeout = 5000ms;
  o.first_retry = 100ms;
  o.max_retry = 400ms;
  o.retry_window = 20000ms;
  return o;
}

std::unique_ptr<Webhooks> start(WebhookOptions o, LogSink& sink) {
  auto w = Webhooks::Start(std::move(o), sink.fn());
  INFO(w.status().ToString());
  REQUIRE(w.ok());
  return std::move(w).value();
}

std::string url(uint16_t port, const std::string& path = "/hook") {
  return "http://127.0.0.1:" + std::to_string(port) + path;
}

Version version(std::initializer_list<std::pair<const char*, uint32_t>> entries) {
  Version v;
  for (const auto& [a, n] : entries) v.advance(a, n);
  return v;
}

// Lowercase hex HMAC-SHA256, computed here independently of the component.
std::string hmac_hex(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
               data.size(), md, &len) != nullptr);
  std::string s;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    s += b;
  }
  return s;
}

// "2026-11-29T19:30:00.123Z" as unix milliseconds, or -1.
long long parse_iso_ms(const std::string& s) {
  std::smatch m;
  if (!std::regex_match(s, m, std::regex(R"((\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z)"))) return -1;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  return static_cast<long long>(timegm(&tm)) * 1000 + std::stoi(m[7]);
}

long long wall_ms(Wall::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

uint16_t free_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// A self-signed certificate for 127.0.0.1: valid in form, trusted by no system store.
void make_self_signed(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  REQUIRE(key != nullptr);
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
  FILE* f = std::fopen(cert_path.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
}

}  // namespace

TEST_CASE("webhook: changes within the debounce make one signed POST per document", "[net][webhook]") {
  TempDir dir;
  Receiver rx(dir, {});
  LogSink sink;
  WebhookOptions o = fast_options(url(rx.port(), "/hook?x=1"));
  o.secret = "s3cret";
  o.debounce = 150ms;
  auto w = start(o, sink);

  const auto before = Wall::now();
  for (uint32_t i = 1; i <= 20; ++i) {
    Version v = i >= 2 ? version({{"alice", i}, {"bob", i / 2}}) : version({{"alice", i}});
    w->changed("notes", v, 3 * i, {i % 2 ? "alice" : "bob"});
  }
  // A late call carrying an older state must not move the document back.
  w->changed("notes", version({{"alice", 3}}), 9, {"alice"});
  w->changed("todo", version({{"carol", 5}}), 5, {"carol"});
  REQUIRE(w->drain(5000ms));
  const auto after = Wall::now();

  auto rs = rx.requests();
  REQUIRE(rs.size() == 2);
  std::sort(rs.begin(), rs.end(), [](const Request& a, const Request& b) { return a.doc["doc"] < b.doc["doc"]; });
  const Request& notes = rs[0];
  const Request& todo = rs[1];
  CHECK(notes.path == "/hook?x=1");
  CHECK(notes.header("host") == "127.0.0.1:" + std::to_string(rx.port()));
  CHECK(notes.header("content-type") == "application/json");
  CHECK(notes.header("user-agent") == "tandem-webhook");

  // The compact body, field by field in the documented order.
  const std::string id = notes.header("x-tandem-delivery");
  CHECK(std::regex_match(id, std::regex("[0-9a-f]{32}")));
  const std::string changed_at = notes.doc["changed_at"].get<std::string>();
  CHECK(notes.body == R"({"type":"document.changed","doc":"notes","version":{"alice":20,"bob":10},"events":60,)"
                      R"("agents":["alice","bob"],"changed_at":")" + changed_at + R"(","delivery":")" + id + R"("})");
  const long long at = parse_iso_ms(changed_at);
  CHECK(at >= wall_ms(before) - 1);
  CHECK(at <= wall_ms(after) + 1);
  CHECK(todo.doc["version"] == json::parse(R"({"carol":5})"));
  CHECK(todo.doc["agents"] == json::parse(R"(["carol"])"));
  CHECK(todo.doc["events"] == 5);
  CHECK(todo.header("x-tandem-delivery") == todo.doc["delivery"]);
  CHECK(todo.doc["delivery"] != id);

  // Signature over timestamp "." body; the timestamp is this attempt's.
  for (const Request& r : rs) {
    const std::string ts = r.header("x-tandem-timestamp");
    REQUIRE(std::regex_match(ts, std::regex("[0-9]+")));
    CHECK(std::abs(std::stoll(ts) - wall_ms(Wall::now()) / 1000) <= 10);
    const std::string sig = r.header("x-tandem-signature");
    CHECK(sig == "sha256=" + hmac_hex("s3cret", ts + "." + r.body));
    CHECK(sig != "sha256=" + hmac_hex("s3cret!", ts + "." + r.body));
    CHECK(sig != "sha256=" + hmac_hex("s3cret", std::to_string(std::stoll(ts) + 1) + "." + r.body));
  }

  auto s = w->stats();
  CHECK(s.delivered == 2);
  CHECK(s.attempts == 2);
  CHECK(s.failures == 0);
  CHECK(s.dropped == 0);
  CHECK(s.pending == 0);
  CHECK(sink.count("webhook.delivered") == 2);

  // Nothing more without a change; a new change is a new delivery with only its own agents.
  std::this_thread::sleep_for(300ms);
  CHECK(rx.requests().size() == 2);
  w->changed("notes", version({{"alice", 20}, {"bob", 10}, {"dave", 1}}), 61, {"dave"});
  REQUIRE(w->drain(5000ms));
  rs = rx.requests();
  REQUIRE(rs.size() == 3);
  CHECK(rs[2].doc["agents"] == json::parse(R"(["dave"])"));
  CHECK(rs[2].doc["version"] == json::parse(R"({"alice":20,"bob":10,"dave":1})"));
  CHECK(rs[2].doc["delivery"] != id);
}

TEST_CASE("webhook: a failing receiver gets the same delivery retried with growing, capped gaps", "[net][webhook]") {
  TempDir dir;
  Receiver rx(dir, {.fail = 5});
  LogSink sink;
  WebhookOptions o = fast_options(url(rx.port()));
  o.first_retry = 100ms;
  o.max_retry = 200ms;
  auto w = start(o, sink);
  w->changed("notes", version({{"alice", 4}}), 4, {"alice"});
  REQUIRE(w->drain(10000ms));

  const auto rs = rx.requests();
  REQUIRE(rs.size() == 6);
  for (const Request& r : rs) {
    CHECK(r.header("x-tandem-delivery") == rs[0].header("x-tandem-delivery"));
    CHECK(r.body == rs[0].body);  // the same payload: a receiver may drop duplicates by id
    CHECK(r.header("x-tandem-signature").empty());  // no secret: unsigned
  }
  std::vector<double> gap_ms;
  for (size_t i = 1; i < rs.size(); ++i) gap_ms.push_back((rs[i].t - rs[i - 1].t) * 1000);
  INFO("gaps (ms): " << gap_ms[0] << " " << gap_ms[1] << " " << gap_ms[2] << " " << gap_ms[3] << " " << gap_ms[4]);
  CHECK(gap_ms[0] >= 95);                // first_retry
  CHECK(gap_ms[1] >= 190);               // doubled
  CHECK(gap_ms[1] > gap_ms[0] + 50);
  for (size_t i = 2; i < gap_ms.size(); ++i) CHECK(gap_ms[i] >= 190);
  CHECK(gap_ms[2] + gap_ms[3] + gap_ms[4] < 1500);  // capped at 200 ms; doubling would be 2800

  const auto s = w->stats();
  CHECK(s.attempts == 6);
  CHECK(s.failures == 5);
  CHECK(s.delivered == 1);
  CHECK(s.dropped == 0);
  CHECK(sink.count("webhook.failed", "status 500") == 5);
  CHECK(sink.count("webhook.delivered", rs[0].header("x-tandem-delivery")) == 1);
}

TEST_CASE("webhook: a change that joins a failing delivery goes in its next retry, under a new id", "[net][webhook]") {
  TempDir dir;
  Receiver rx(dir, {.fail = 1});
  LogSink sink;
  WebhookOptions o = fast_options(url(rx.port()));
  o.first_retry = 400ms;
  o.max_retry = 400ms;
  auto w = start(o, sink);
  w->changed("notes", version({{"alice", 4}}), 4, {"alice"});
  REQUIRE(rx.wait_requests(1, 5000ms).size() == 1);
  std::this_thread::sleep_for(50ms);  // the 500 has been read: the delivery is backing off
  REQUIRE(w->stats().failures == 1);
  w->changed("notes", version({{"alice", 4}, {"bob", 2}}), 6, {"bob"});
  REQUIRE(w->drain(5000ms));

  const auto rs = rx.requests();
  REQUIRE(rs.size() == 2);  // joined the retry: no second delivery
  CHECK(rs[0].doc["version"] == json::parse(R"({"alice":4})"));
  CHECK(rs[1].doc["version"] == json::parse(R"({"alice":4,"bob":2})"));
  CHECK(rs[1].doc["agents"] == json::parse(R"(["alice","bob"])"));
  CHECK(rs[1].doc["events"] == 6);
  CHECK(rs[1].doc["delivery"] != rs[0].doc["delivery"]);
  // It waited for the backoff, not for a new debounce after the change.
  CHECK((rs[1].t - rs[0].t) * 1000 >= 380);
  CHECK(w->stats().delivered == 1);
}

TEST_CASE("webhook: a receiver that is down gets the delivery when it comes up within the window", "[net][webhook]") {
  TempDir dir;
  const uint16_t port = free_port();
  LogSink sink;

  SECTION("it comes up after a second") {
    auto w = start(fast_options(url(port)), sink);
    w->changed("notes", version({{"alice", 1}}), 1, {"alice"});
    std::this_thread::sleep_for(1000ms);
    auto s = w->stats();
    CHECK(s.attempts >= 2);
    CHECK(s.failures == s.attempts);  // refused, every one
    CHECK(s.delivered == 0);
    CHECK(s.pending == 1);
    CHECK(sink.count("webhook.failed", "connect") >= 2);
    Receiver rx(dir, {.port = port});
    REQUIRE(w->drain(5000ms));
    const auto rs = rx.requests();
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].doc["version"] == json::parse(R"({"alice":1})"));
    s = w->stats();
    CHECK(s.delivered == 1);
    CHECK(s.dropped == 0);
    CHECK(s.pending == 0);
  }

  SECTION("with a tiny window it is dropped, counted and logged, and not sent later") {
    WebhookOptions o = fast_options(url(port));
    o.retry_window = 300ms;
    auto w = start(o, sink);
    w->changed("notes", version({{"alice", 1}}), 1, {"alice"});
    REQUIRE(w->drain(5000ms));
    const auto s = w->stats();
    CHECK(s.dropped == 1);
    CHECK(s.delivered == 0);
    CHECK(s.attempts >= 2);  // the first, and one at the window's end at least
    CHECK(s.attempts <= 4);
    CHECK(s.pending == 0);
    CHECK(sink.count("webhook.dropped", "retry window") == 1);
    Receiver rx(dir, {.port = port});
    std::this_thread::sleep_for(500ms);
    CHECK(rx.requests().empty());
  }
}

TEST_CASE("webhook: a slow receiver delays neither changed() nor another document's delivery", "[net][webhook]") {
  TempDir dir;
  Receiver rx(dir, {.sleep_s = 2});
  LogSink sink;
  // With one slot the second document must wait for the first answer: proves the test can fail.
  const size_t slots = GENERATE(as<size_t>{}, 2, 1);
  WebhookOptions o = fast_options(url(rx.port()));
  o.max_in_flight = slots;
  auto w = start(o, sink);

  w->changed("slow", version({{"alice", 1}}), 1, {"alice"});
  REQUIRE(rx.wait_requests(1, 5000ms).size() == 1);  // in flight, answered in 2 s

  const auto t0 = std::chrono::steady_clock::now();
  for (uint32_t i = 1; i <= 1000; ++i) {
    w->changed("fast", version({{"bob", i}, {"carol", i / 2}}), i + i / 2, {i % 10 ? "bob" : "carol"});
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  const double took_ms = std::chrono::duration<double, std::milli>(took).count();
  INFO("1000 changed() calls: " << took_ms << " ms");
  CHECK(took < 50ms);

  const auto rs = rx.wait_requests(2, 5000ms);
  REQUIRE(rs.size() == 2);
  const double gap_ms = (rs[1].t - rs[0].t) * 1000;
  INFO("slots " << slots << ": second document arrived " << gap_ms << " ms after the first");
  CHECK(rs[1].doc["doc"] == "fast");
  CHECK(rs[1].doc["version"] == json::parse(R"({"bob":1000,"carol":500})"));
  CHECK(rs[1].doc["agents"] == json::parse(R"(["bob","carol"])"));
  if (slots > 1) {
    CHECK(gap_ms < 1000);
    CHECK(w->stats().delivered == 0);  // the slow one is still waiting for its answer
  } else {
    CHECK(gap_ms >= 1800);
  }
  REQUIRE(w->drain(10000ms));
  CHECK(w->stats().delivered == 2);
  CHECK(w->stats().failures == 0);
}

TEST_CASE("webhook: an attempt past the timeout is a failure and is retried", "[net][webhook]") {
  TempDir dir;
  Receiver rx(dir, {.sleep_s = 2});
  LogSink sink;
  {
    WebhookOptions o = fast_options(url(rx.port()));
    o.timeout = 500ms;
    o.first_retry = 100ms;
    auto w = start(o, sink);
    w->changed("notes", version({{"alice", 1}}), 1, {"alice"});
    const auto rs = rx.wait_requests(2, 5000ms);
    REQUIRE(rs.size() >= 2);
    CHECK(rs[1].header("x-tandem-delivery") == rs[0].header("x-tandem-delivery"));
    const double gap_ms = (rs[1].t - rs[0].t) * 1000;
    INFO("retry came " << gap_ms << " ms after the first attempt");
    CHECK(gap_ms >= 550);   // 500 ms timeout + 100 ms backoff
    CHECK(gap_ms < 1500);   // not after the receiver's 2 s answer
    const auto s = w->stats();
    CHECK(s.failures >= 1);
    CHECK(s.delivered == 0);
    CHECK(sink.count("webhook.failed", "timed out after 500 ms") >= 1);
    CHECK(!w->drain(100ms));
  }
  // Stopping with the delivery still failing: dropped, and said so.
  CHECK(sink.count("webhook.dropped", "stopping") == 1);
}

TEST_CASE("webhook: https verifies the receiver's certificate", "[net][webhook][tls]") {
  TempDir dir;
  make_self_signed(dir.file("cert.pem"), dir.file("key.pem"));
  Receiver rx(dir, {.cert = dir.file("cert.pem"), .key = dir.file("key.pem")});
  LogSink sink;
  WebhookOptions o = fast_options("https://127.0.0.1:" + std::to_string(rx.port()) + "/hook");
  auto w = start(o, sink);
  w->changed("notes", version({{"alice", 1}}), 1, {"alice"});
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (w->stats().failures < 2 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(10ms);
  CHECK(w->stats().failures >= 2);
  CHECK(w->stats().delivered == 0);
  // Refused in the handshake, for the certificate (not, say, a refused connection).
  CHECK(sink.count("webhook.failed", "certificate verify failed") >= 2);
  CHECK(rx.requests().empty());
}

TEST_CASE("webhook: bad options are refused with a message naming the problem", "[net][webhook]") {
  auto refused = [](WebhookOptions o, const std::string& words) {
    const Status st = ValidateWebhookOptions(o);
    INFO(o.url << " -> " << st.ToString());
    CHECK(st.code() == Status::Code::kInvalidArgument);
    CHECK(st.message().find(words) != std::string::npos);
    auto w = Webhooks::Start(o);
    CHECK(w.status().code() == Status::Code::kInvalidArgument);
  };
  auto with_url = [](const std::string& u) {
    WebhookOptions o;
    o.url = u;
    return o;
  };
  refused(with_url("ftp://x"), "scheme must be http or https");
  refused(with_url("http://"), "no host");
  refused(with_url("http:///path"), "no host");
  refused(with_url("http://example.com:65536/"), "port \"65536\" is not a number from 1 to 65535");
  refused(with_url("http://example.com:99999999/"), "from 1 to 65535");
  refused(with_url("http://example.com:0/"), "from 1 to 65535");
  refused(with_url("http://example.com:/"), "from 1 to 65535");
  refused(with_url("http://example.com:80x/"), "from 1 to 65535");
  refused(with_url("example.com/hook"), "expected http://");
  refused(with_url("http://user:pw@example.com/"), "user:password@");
  refused(with_url("http://exa mple.com/"), "space");
  refused(with_url("http://example.com/a#b"), "fragment");
  refused(with_url("http://[::1/"), "IPv6");
  WebhookOptions o = with_url("http://example.com/");
  o.max_in_flight = 0;
  refused(o, "max_in_flight");
  o = with_url("http://example.com/");
  o.max_retry = 10ms;
  refused(o, "max_retry");
  o = with_url("http://example.com/");
  o.timeout = 0ms;
  refused(o, "timeout");

  for (const char* good : {"http://127.0.0.1:8080/x", "https://example.com", "HTTPS://example.com:443/a?b=c",
                           "http://[::1]:9000/h", "http://localhost?x=1"}) {
    INFO(good);
    CHECK(ValidateWebhookOptions(with_url(good)).ok());
  }

  // No url: valid, and a Webhooks that does nothing.
  CHECK(ValidateWebhookOptions(WebhookOptions{}).ok());
  auto w = Webhooks::Start(WebhookOptions{});
  REQUIRE(w.ok());
  (*w)->changed("notes", version({{"alice", 1}}), 1, {"alice"});
  CHECK((*w)->drain(0ms));
  CHECK((*w)->stats().attempts == 0);
  CHECK((*w)->stats().pending == 0);
}

TEST_CASE("webhook: a server notifies a receiver of durable changes from editors and the HTTP API", "[net][webhook][http-api]") {
  TempDir dir;
  Receiver receiver(dir, {});
  tandem::net::ServerOptions o;
  o.webhook = fast_options(url(receiver.port(), "/tandem"));
  o.webhook.debounce = 200ms;
  o.webhook.secret = "hook-secret";
  tandem::testing::ServerFixture s(o);
  auto editor = tandem::testing::make_client(s.url("notes"), "editor");
  for (int i = 0; i < 20; ++i) REQUIRE(editor->insert(static_cast<uint32_t>(i), "x").ok());  // typing: one POST
  REQUIRE(editor->wait_synced(5s));
  auto first = receiver.wait_requests(1, 10s);
  REQUIRE(first.size() == 1);
  CHECK(first[0].path == "/tandem");
  CHECK(first[0].doc["doc"] == "notes");
  CHECK(first[0].doc["version"] == json{{"editor", 20}});
  CHECK(first[0].doc["events"] == 20);
  CHECK(first[0].doc["agents"] == json::array({"editor"}));
  CHECK(first[0].header("x-tandem-signature") ==
        "sha256=" + hmac_hex("hook-secret", first[0].header("x-tandem-timestamp") + "." + first[0].body));
  // An edit through the HTTP API is a change like any other.
  auto r = tandem::testing::http_request(s.port, boost::beast::http::verb::post, "/api/docs/notes/edits",
                                         R"({"agent":"backend","edits":[{"at":0,"insert":"# "}]})");
  REQUIRE(r.first == 200);
  auto both = receiver.wait_requests(2, 10s);
  REQUIRE(both.size() == 2);
  CHECK(both[1].doc["version"] == json{{"backend", 2}, {"editor", 20}});
  CHECK(both[1].doc["agents"] == json::array({"backend"}));
  std::this_thread::sleep_for(400ms);
  CHECK(receiver.requests().size() == 2);  // nothing more without changes
}
