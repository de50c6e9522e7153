// The real `tandem serve` process: killed with SIGKILL while clients keep editing offline,
// restarted on the same file, and stopped with SIGTERM. Nothing acknowledged may be lost.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <regex>
#include <fstream>
#include <thread>
#include <vector>

#include "crdt/utf8.h"
#include "net/auth.h"
#include "net/client.h"
#include "storage/store.h"
#include "support/net_fixtures.h"
#include "support/random_edits.h"
#include "support/temp_dir.h"
#include "support/test_threads.h"

using namespace std::chrono_literals;
using tandem::crdt::Version;
using tandem::net::Client;
using tandem::testing::Rng;

namespace {

// `tandem serve` as a child process. Reads the port from its first line of output.
class ServeProcess {
 public:
  ServeProcess(const std::string& data, uint16_t port, std::vector<std::string> extra = {}) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      const std::string p = std::to_string(port);
      const std::string threads = std::to_string(tandem::testing::test_threads());
      std::vector<std::string> args = {"tandem", "serve", "--port", p, "--data", data, "--room-grace-ms", "200",
                                       "--quiet", "--threads", threads};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(TANDEM_BIN, argv.data());
      _exit(127);
    }
    close(fds[1]);
    FILE* out = fdopen(fds[0], "r");
    char line[512] = {0};
    REQUIRE(std::fgets(line, sizeof line, out) != nullptr);
    std::fclose(out);
    std::smatch m;
    const std::string s(line);
    REQUIRE(std::regex_search(s, m, std::regex(R"(:(\d+)/)")));
    port_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  void kill9() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // SIGTERM; returns the exit status.
  int terminate() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

std::unique_ptr<Client> make(uint16_t port, const std::string& agent) {
  tandem::net::ClientOptions o;
  o.url = "ws://127.0.0.1:" + std::to_string(port) + "/ws/notes";
  o.agent = agent;
  o.min_backoff = 50ms;
  o.max_backoff = 400ms;
  auto c = std::make_unique<Client>(o);
  c->start();
  return c;
}

void random_edits(Rng& rng, Client& c, int n) {
  for (int i = 0; i < n; ++i) {
    const auto len = static_cast<uint32_t>(tandem::crdt::utf8::count_code_points(c.text()));
    if (len > 0 && rng.chance(0.3)) {
      (void)c.remove(static_cast<uint32_t>(rng.below(len)), 1);
    } else {
      (void)c.insert(static_cast<uint32_t>(rng.below(len + 1)), tandem::testing::random_text(rng, 1 + rng.below(4)));
    }
  }
}

}  // namespace

TEST_CASE("process: SIGKILL mid-edit, restart on the same file, nothing acknowledged lost", "[net][process]") {
  tandem::testing::TempDir dir;
  Rng rng(77);
  auto server = std::make_unique<ServeProcess>(dir.path(), 0);
  const uint16_t port = server->port();
  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < 4; ++i) cs.push_back(make(port, "writer" + std::to_string(i)));
  Version acked;  // what the server acknowledged durable: each client's own operations after a sync
  auto record_acked = [&acked](const Client& c) {
    const uint32_t n = c.version().next(c.agent());
    if (n > acked.next(c.agent())) acked.advance(c.agent(), n);
  };
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    for (auto& c : cs) random_edits(rng, *c, 20);
    for (auto& c : cs) {
      REQUIRE(c->wait_synced(10s));
      record_acked(*c);  // its own operations only: others' may have been relayed before durable
    }
    // More edits, some in flight when the server dies; then edits made offline.
    for (auto& c : cs) random_edits(rng, *c, 10);
    server->kill9();
    for (auto& c : cs) random_edits(rng, *c, 15);
    std::this_thread::sleep_for(300ms);
    server = std::make_unique<ServeProcess>(dir.path(), port);
    // Whatever was acknowledged survived: a fresh client sees it before anyone resends anything.
    {
      auto probe = make(port, "probe" + std::to_string(round));
      REQUIRE(probe->wait_synced(10s));
      INFO("probe " << probe->version().ToString() << " acked " << acked.ToString());
      CHECK(probe->version().includes(acked));
    }
    for (auto& c : cs) {
      const bool synced = c->wait_synced(25s);
      // Seen once in CI under load (not reproduced in 15 local runs): say where it stopped.
      INFO("client " << c->agent() << " state " << static_cast<int>(c->state()) << " unacknowledged "
                     << c->unacknowledged() << " version " << c->version().ToString());
      REQUIRE(synced);
    }
    Version all;
    for (auto& c : cs) all.merge(c->version());
    for (auto& c : cs) REQUIRE(c->wait_for(all, 10s));
    for (auto& c : cs) REQUIRE(c->text() == cs[0]->text());
    for (auto& c : cs) record_acked(*c);
  }
  const std::string text = cs[0]->text();
  // SIGTERM: a clean exit, with the document in the store.
  for (auto& c : cs) c->stop();
  REQUIRE(server->terminate() == 0);
  tandem::storage::StoreOptions so;
  so.path = dir.file("tandem.db");
  so.read_only = true;
  auto store = tandem::storage::Store::open(so);
  REQUIRE(store.ok());
  auto loaded = (*store)->load("notes", "check", nullptr);
  REQUIRE(loaded.ok());
  CHECK(loaded->text() == text);
  CHECK(loaded->version().includes(acked));
  CHECK(*(*store)->integrity_check() == "ok");
  CHECK_FALSE((*store)->snapshots("notes")->empty());  // SIGTERM snapshots open documents
}

TEST_CASE("process: SIGTERM tells clients the server is going away", "[net][process]") {
  tandem::testing::TempDir dir;
  ServeProcess server(dir.path(), 0);
  auto c = make(server.port(), "solo");
  REQUIRE(c->insert(0, "bye").ok());
  REQUIRE(c->wait_synced(5s));
  std::atomic<int> states{0};
  c->on_state([&](tandem::net::ClientState s) {
    if (s != tandem::net::ClientState::kConnected) ++states;
  });
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(server.terminate() == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  for (int i = 0; i < 50 && states == 0; ++i) std::this_thread::sleep_for(20ms);
  CHECK(states > 0);
  CHECK(c->state() != tandem::net::ClientState::kConnected);
}

// Secrets from files (not on the command line, where ps shows them): the auth secret, and a token
// that /metrics then asks for.
TEST_CASE("process: --auth-secret-file and --metrics-token-file", "[net][process]") {
  tandem::testing::TempDir dir;
  std::ofstream(dir.file("auth.secret")) << "s3cret-for-tests\n";
  std::ofstream(dir.file("metrics.token")) << "scrape-me\n";
  ServeProcess server(dir.file("data"), 0,
                      {"--auth-secret-file", dir.file("auth.secret"), "--metrics-token-file", dir.file("metrics.token")});
  namespace http = boost::beast::http;
  const uint16_t port = server.port();
  CHECK(tandem::testing::http_get(port, "/api/docs").first == 401);
  tandem::net::Token t;
  t.subject = "ops";
  t.doc_patterns = {"*"};
  t.write = false;
  t.expires = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() + 600;
  const std::string token = tandem::net::sign_token(t, "s3cret-for-tests");
  CHECK(tandem::testing::http_request(port, http::verb::get, "/api/docs", "", token).first == 200);
  CHECK(tandem::testing::http_get(port, "/metrics").first == 401);
  CHECK(tandem::testing::http_request(port, http::verb::get, "/metrics", "", "wrong").first == 401);
  auto m = tandem::testing::http_request(port, http::verb::get, "/metrics", "", "scrape-me");
  CHECK(m.first == 200);
  CHECK_THAT(m.second, Catch::Contains("tandem_"));
}
