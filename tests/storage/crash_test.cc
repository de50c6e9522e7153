// Crash safety with a real process: a child appends batches from simulated clients and prints
// each acknowledgement; the test kills it with SIGKILL at random moments, restarts it on the
// same file, and after every kill checks that every acknowledged operation is there exactly
// once, that no batch is half there, that the file is sound, and that the stored document
// equals a replay of its log. Half of the runs also write snapshots, so kills land in them.
//
// 24 kills by default; TANDEM_SOAK=N runs N.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "crdt/codec.h"
#include "history.h"
#include "storage/store.h"
#include "support/random_edits.h"
#include "support/temp_dir.h"

using tandem::storage::Store;
using tandem::testing::Rng;
namespace codec = tandem::crdt::codec;

namespace {

struct Ack {
  uint64_t first, end;
  std::vector<std::tuple<std::string, uint32_t, uint32_t>> runs;  // agent, seq, len
};

// Runs the child until it has acknowledged `acks` batches or `ms` have passed, then SIGKILL.
// Returns the acknowledgements it printed.
std::vector<Ack> run_and_kill(const std::string& db, int run, uint64_t seed, bool snapshots, size_t acks, int ms) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    const std::string r = std::to_string(run), s = std::to_string(seed), snap = snapshots ? "1" : "0";
    execl(TANDEM_CRASH_CHILD, "crash_child", db.c_str(), r.c_str(), s.c_str(), snap.c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  std::string buf;
  size_t lines = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  bool killed = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!killed && (lines >= acks || left.count() <= 0)) {
      kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{fds[0], POLLIN, 0};
    poll(&p, 1, killed ? 1000 : static_cast<int>(std::max<int64_t>(1, left.count())));
    char chunk[65536];
    const ssize_t n = read(fds[0], chunk, sizeof chunk);
    if (n > 0) {
      buf.append(chunk, static_cast<size_t>(n));
      for (char ch : std::string_view(chunk, static_cast<size_t>(n))) lines += ch == '\n';
    } else if (n == 0) {
      break;  // the child is gone and the pipe drained
    }
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  INFO("child status " << status);
  REQUIRE(WIFSIGNALED(status));  // it must not have stopped on its own (an error)
  std::vector<Ack> out;
  std::istringstream in(buf);
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof() && !buf.empty() && buf.back() != '\n') break;  // a line cut by the kill
    std::istringstream ls(line);
    std::string word;
    Ack a;
    ls >> word >> a.first >> a.end;
    REQUIRE(word == "ACK");
    while (ls >> word) {
      const auto colon = word.rfind(':'), plus = word.rfind('+');
      a.runs.emplace_back(word.substr(0, colon), std::stoul(word.substr(colon + 1, plus - colon - 1)),
                          std::stoul(word.substr(plus + 1)));
    }
    out.push_back(std::move(a));
  }
  return out;
}

void verify(const std::string& db, const std::vector<Ack>& acked) {
  tandem::storage::StoreOptions o;
  o.path = db;
  auto store = Store::open(o);  // read-write: recovers the WAL as the server would
  REQUIRE(store.ok());
  REQUIRE(*(*store)->integrity_check() == "ok");
  auto logged = (*store)->logged_events("crash");
  if (acked.empty() && !logged.ok()) return;
  REQUIRE(logged.ok());
  auto rows = (*store)->read_log("crash", 0, UINT64_MAX);
  REQUIRE(rows.ok());
  // Rows tile the log; every operation in it appears once.
  std::set<std::pair<uint64_t, uint64_t>> bounds;
  std::map<std::string, std::set<uint32_t>> ids;
  uint64_t at = 0;
  for (const auto& row : *rows) {
    REQUIRE(row.first_event == at);
    auto batch = codec::decode_ops(row.batch);
    REQUIRE(batch.ok());
    REQUIRE(batch->events() == row.end_event - row.first_event);
    for (const auto& r : batch->runs) {
      for (uint32_t k = 0; k < r.len; ++k) REQUIRE(ids[r.agent].insert(r.seq + k).second);
    }
    bounds.insert({row.first_event, row.end_event});
    at = row.end_event;
  }
  REQUIRE(at == *logged);
  // Every acknowledged batch is there, whole: a row with exactly its bounds and its operations.
  for (const Ack& a : acked) {
    REQUIRE(bounds.count({a.first, a.end}) == 1);
    for (const auto& [agent, seq, len] : a.runs) {
      for (uint32_t k = 0; k < len; ++k) REQUIRE(ids[agent].count(seq + k) == 1);
    }
  }
  // The stored document (snapshot + tail) is the replay of the log.
  std::vector<std::string> warnings;
  auto loaded = (*store)->load("crash", "check", &warnings);
  REQUIRE(loaded.ok());
  CHECK(warnings.empty());
  auto replayed = tandem::history::replay_log(**store, "crash");
  REQUIRE(replayed.ok());
  REQUIRE(loaded->text() == replayed->text());
  REQUIRE(codec::save(*loaded) == codec::save(*replayed));
}

}  // namespace

TEST_CASE("crash: SIGKILL at random moments loses no acknowledged operation", "[storage][crash]") {
  const char* soak = std::getenv("TANDEM_SOAK");
  const int kills = soak && *soak ? std::max(24, std::atoi(soak)) : 24;
  tandem::testing::TempDir dir;
  const std::string db = dir.file("crash.db");
  Rng rng(4242);
  size_t total_acks = 0;
  for (int run = 0; run < kills; ++run) {
    INFO("run " << run);
    const bool snapshots = run % 2 == 1;
    const auto acked = run_and_kill(db, run, rng.below(1u << 30), snapshots, 1 + rng.below(300),
                                    20 + static_cast<int>(rng.below(400)));
    total_acks += acked.size();
    verify(db, acked);
  }
  // The kills must have landed while work was going on, not before anything happened.
  CHECK(total_acks > static_cast<size_t>(kills) * 5);
}
