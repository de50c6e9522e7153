// examples/note_sync.cc run as a real process against a server on a loopback port: what it types
// reaches another client, what the other client types reaches it, and it waits for the server's
// acknowledgement before it exits.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "support/net_fixtures.h"

using namespace std::chrono_literals;
using tandem::net::Client;
using tandem::net::ClientOptions;
using tandem::testing::ServerFixture;

namespace {

// Runs a shell command; returns its exit status and leaves its output in out_file.
int run_with_input(const std::string& cmd, const std::string& out_file) {
  const int rc = std::system((cmd + " > " + out_file + " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string slurp(const std::string& path) {
  std::string s;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
  }
  return s;
}

}  // namespace

TEST_CASE("example: note-sync appends lines, shows remote edits and waits for the server", "[net][example]") {
  ServerFixture srv;
  const std::string url = "ws://127.0.0.1:" + std::to_string(srv.port) + "/ws/shopping-list";

  // Someone else already wrote in the note.
  ClientOptions o;
  o.url = url;
  Client other(o);
  other.start();
  REQUIRE(other.insert(0, "bread\n").ok());
  REQUIRE(other.wait_synced(10s));

  const std::string out = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/note-sync-test.out";
  // The pause lets the remote edit below arrive while note-sync is running.
  const std::string cmd = "( printf 'milk\\n'; sleep 1; printf ':show\\neggs\\n:quit\\n' ) | " + std::string(NOTE_SYNC_BIN) + " " + url;
  std::thread typist([&] {
    std::this_thread::sleep_for(400ms);
    (void)other.insert(0, "# groceries\n");
  });
  const int rc = run_with_input(cmd, out);
  typist.join();
  const std::string printed = slurp(out);
  INFO(printed);
  CHECK(rc == 0);
  CHECK(printed.find("bread") != std::string::npos);                          // what the server held
  CHECK(printed.find("[remote] inserted \"# groceries") != std::string::npos);  // a live remote edit
  CHECK(printed.find("all edits stored on the server") != std::string::npos);

  REQUIRE(other.wait_synced(10s));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (other.text() != "# groceries\nbread\nmilk\neggs\n" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  CHECK(other.text() == "# groceries\nbread\nmilk\neggs\n");
}

TEST_CASE("example: note-sync with no server keeps the edits and says they are not stored", "[net][example]") {
  const std::string out = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/note-sync-offline.out";
  // Port 9 (discard) on loopback: nothing listens there.
  const int rc = run_with_input("printf 'milk\\n:quit\\n' | " + std::string(NOTE_SYNC_BIN) + " ws://127.0.0.1:9/ws/x", out);
  const std::string printed = slurp(out);
  INFO(printed);
  CHECK(rc == 1);
  CHECK(printed.find("not reachable yet") != std::string::npos);
  CHECK(printed.find("not every edit is confirmed by the server yet (5 operations)") != std::string::npos);
}

// What the README promises for a native app: edits made while the server is away are not lost
// when the process ends, if it keeps its state (--state FILE); and a server that refuses the
// client is reported at once, not after a timeout.
TEST_CASE("example: note-sync keeps unconfirmed lines in its state file for the next run", "[net][example]") {
  const std::string tmp = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  const std::string state = tmp + "/note-sync-test.state", out = tmp + "/note-sync-state.out";
  std::remove(state.c_str());
  int rc = run_with_input("printf 'milk\\n:quit\\n' | " + std::string(NOTE_SYNC_BIN) + " ws://127.0.0.1:9/ws/list --state " + state, out);
  std::string printed = slurp(out);
  INFO(printed);
  CHECK(rc == 1);
  CHECK(printed.find("they are kept in " + state) != std::string::npos);
  ServerFixture srv;
  const std::string url = "ws://127.0.0.1:" + std::to_string(srv.port) + "/ws/list";
  rc = run_with_input("printf 'eggs\\n:quit\\n' | " + std::string(NOTE_SYNC_BIN) + " " + url + " --state " + state, out);
  printed = slurp(out);
  INFO(printed);
  CHECK(rc == 0);
  CHECK(printed.find("all edits stored on the server") != std::string::npos);
  ClientOptions o;
  o.url = url;
  Client reader(o);
  reader.start();
  REQUIRE(reader.wait_synced(10s));
  CHECK(reader.text() == "milk\neggs\n");
  std::remove(state.c_str());
}

TEST_CASE("example: note-sync refused by the server says why at once", "[net][example]") {
  tandem::net::ServerOptions so;
  so.auth_secret = "s3cret";
  ServerFixture srv(so);
  const std::string out = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/note-sync-refused.out";
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = run_with_input("printf 'milk\\n:quit\\n' | " + std::string(NOTE_SYNC_BIN) + " ws://127.0.0.1:" +
                                    std::to_string(srv.port) + "/ws/list",
                                out);
  const std::string printed = slurp(out);
  INFO(printed);
  CHECK(rc == 1);
  CHECK(std::chrono::steady_clock::now() - t0 < 4s);
  CHECK(printed.find("the server refused this client: a token is required") != std::string::npos);
}
