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

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

#include "crdt/codec.h"
#include "history.h"
#include "storage/store.h"
#include "support/crash_vfs.h"
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
  // Per operation a plain check, not an assertion each: the power-loss test verifies thousands
  // of batches after each of its cuts, and under ASan the assertions were most of its time.
  for (const auto& row : *rows) {
    REQUIRE(row.first_event == at);
    auto batch = codec::decode_ops_sequence(row.batch);
    REQUIRE(batch.ok());
    REQUIRE(batch->events() == row.end_event - row.first_event);
    for (const auto& r : batch->runs) {
      for (uint32_t k = 0; k < r.len; ++k) {
        if (!ids[r.agent].insert(r.seq + k).second) FAIL(r.agent << ":" << r.seq + k << " is in the log twice");
      }
    }
    bounds.insert({row.first_event, row.end_event});
    at = row.end_event;
  }
  REQUIRE(at == *logged);
  // Every acknowledged batch is there, whole: inside one row (consecutive batches share rows),
  // with its operations.
  for (const Ack& a : acked) {
    auto row = bounds.upper_bound({a.first, UINT64_MAX});
    if (row == bounds.begin() || std::prev(row)->second < a.end) {
      FAIL("acknowledged batch [" << a.first << ", " << a.end << ") is not inside a row");
    }
    for (const auto& [agent, seq, len] : a.runs) {
      for (uint32_t k = 0; k < len; ++k) {
        if (ids[agent].count(seq + k) != 1) FAIL("acknowledged operation " << agent << ":" << seq + k << " is lost");
      }
    }
  }
  // The stored document (snapshot + tail) is the replay of the log.
  std::vector<std::string> warnings;
  auto loaded = (*store)->load("crash", "check", &warnings);
  REQUIRE(loaded.ok());
  CHECK(warnings.empty());
  auto replayed = tandem::store::replay(**store, "crash");
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

// ---- simulated power loss and injected I/O errors (support/crash_vfs.h) ----

namespace {

using tandem::testing::CrashVfs;

// crash_child's server and clients, in this process: each step() has one client edit, the
// server integrate its operations and append them to the store; an acknowledgement is recorded
// when the store reports the batch durable, a failure when it reports an error.
class Workload {
 public:
  Workload(Store& store, const std::string& tag, uint64_t seed) : store_(store), rng_(seed) {
    auto loaded = store.load("crash", "server", nullptr);
    if (loaded.ok()) {
      server_ = std::move(*loaded);
    } else {
      REQUIRE(loaded.status().code() == tandem::crdt::Status::Code::kNotFound);
    }
    for (int i = 0; i < 3; ++i) {
      clients_.emplace_back(tag + "c" + std::to_string(i));
      REQUIRE(clients_.back().apply(server_.ops_since({})).ok());
      sent_.push_back(clients_.back().version());
    }
  }

  void step(bool snapshots) {
    const size_t c = rng_.below(clients_.size());
    for (int e = 1 + static_cast<int>(rng_.below(3)); e > 0; --e) tandem::testing::random_edit(rng_, clients_[c]);
    tandem::crdt::OpBatch added;
    REQUIRE(server_.apply(clients_[c].ops_since(sent_[c], tandem::crdt::Doc::DeletedText::kInclude), &added).ok());
    sent_[c] = clients_[c].version();
    if (added.empty()) return;
    Ack ack{server_.num_events() - added.events(), server_.num_events(), {}};
    for (const auto& r : added.runs) ack.runs.emplace_back(r.agent, r.seq, r.len);
    store_.append("crash", ack.first, std::move(added), [this, ack](tandem::crdt::Status st) {
      std::lock_guard<std::mutex> lock(mu_);
      if (st.ok()) {
        acked_.push_back(ack);
      } else {
        ++failures_;
      }
    });
    if (snapshots && rng_.below(6) == 0) {
      store_.put_snapshot("crash", server_.num_events(), codec::save(server_), [this](tandem::crdt::Status st) {
        std::lock_guard<std::mutex> lock(mu_);
        failures_ += !st.ok();
      });
    }
    if (rng_.below(4) == 0) {
      for (auto& client : clients_) REQUIRE(client.apply(server_.ops_since(client.version())).ok());
    }
  }

  // Call after the store is closed (its callbacks have all run).
  std::vector<Ack> acked() const { return acked_; }
  size_t failures() const { return failures_; }

 private:
  Store& store_;
  Rng rng_;
  tandem::crdt::Doc server_{"server"};
  std::vector<tandem::crdt::Doc> clients_;
  std::vector<tandem::crdt::Version> sent_;
  std::mutex mu_;
  std::vector<Ack> acked_;
  size_t failures_ = 0;
};

tandem::storage::StoreOptions crash_vfs_options(const std::string& db, Rng& rng) {
  tandem::storage::StoreOptions o;
  o.path = db;
  o.vfs = CrashVfs::kName;
  o.commit_interval = std::chrono::microseconds(rng.below(2) * 1000);
  return o;
}

}  // namespace

namespace {

struct PowerCut {
  std::vector<Ack> acked;
  bool during_close = false;
  uint64_t lost_writes = 0;
};

// Opens `db` on the crash VFS, works on it until the power goes, and leaves the files as the
// disk kept them. A quarter of the cuts land while the store closes, when SQLite checkpoints the
// WAL into the database file; the rest while batches and snapshots are being committed.
PowerCut power_cut(const std::string& db, int cut, tandem::storage::Durability durability, Rng& rng) {
  PowerCut out;
  CrashVfs::reset();
  const bool at_close = cut % 4 == 3;
  CrashVfs::crash_at(at_close ? 0 : 1 + rng.below(cut % 3 == 0 ? 300 : 40));
  auto options = crash_vfs_options(db, rng);
  options.durability = durability;
  auto store = Store::open(options);
  if (store.ok()) {
    Workload work(**store, "p" + std::to_string(cut), rng.below(1u << 30));
    const int steps = at_close ? 5 + static_cast<int>(rng.below(60)) : 100000;
    for (int s = 0; s < steps && !CrashVfs::crashed(); ++s) {
      work.step(cut % 2 == 1);
      if (rng.below(3) == 0) (void)(*store)->sync();
    }
    if (at_close) {
      (void)(*store)->sync();
      CrashVfs::crash_at(1 + rng.below(12));
    }
    store->reset();
    out.acked = work.acked();
    out.during_close = at_close && CrashVfs::crashed();
  } else {
    INFO(store.status().ToString());
    REQUIRE(CrashVfs::crashed());  // opening fails only because the power went
  }
  if (!CrashVfs::crashed()) CHECK(at_close);  // a close with fewer writes than the cut point
  out.lost_writes = CrashVfs::lose_power(rng);
  return out;
}

}  // namespace

TEST_CASE("power loss: acknowledged operations survive hundreds of simulated power cuts", "[storage][crash][power]") {
  // 240 cuts; under the sanitizers (TANDEM_POWER_CUTS, tests/CMakeLists.txt) fewer, as each costs
  // ten times as much there; TANDEM_SOAK: more.
  const char* soak = std::getenv("TANDEM_SOAK");
  const char* fewer = std::getenv("TANDEM_POWER_CUTS");
  const int base = fewer && *fewer ? std::clamp(std::atoi(fewer), 16, 240) : 240;
  const int cuts = soak && *soak ? std::max(240, std::atoi(soak)) : base;
  CrashVfs::register_once();
  tandem::testing::TempDir dir;
  Rng rng(9090);
  std::string db;
  std::vector<Ack> acked;  // over all runs on one file: nothing acknowledged may be lost later
  size_t total_acked = 0;
  uint64_t lost_writes = 0;
  int during_close = 0;
  for (int cut = 0; cut < cuts; ++cut) {
    INFO("power cut " << cut);
    if (cut % 48 == 0) {  // a new file now and then keeps each check's work bounded
      db = dir.file("power" + std::to_string(cut) + ".db");
      acked.clear();
    }
    PowerCut pc = power_cut(db, cut, tandem::storage::Durability::kFull, rng);
    total_acked += pc.acked.size();
    acked.insert(acked.end(), pc.acked.begin(), pc.acked.end());
    lost_writes += pc.lost_writes;
    during_close += pc.during_close;
    verify(db, acked);
  }
  std::printf("power loss: %d cuts (%d while closing), %zu batches acknowledged, %llu unsynced writes lost or torn\n",
              cuts, during_close, total_acked, static_cast<unsigned long long>(lost_writes));
  // The cuts must have cost unsynced writes, and work must have been acknowledged between them.
  CHECK(lost_writes > static_cast<uint64_t>(cuts));
  CHECK(total_acked > static_cast<size_t>(cuts) * 3);
  CHECK(during_close > cuts / 8);
}

// The simulation has teeth: with synchronous=NORMAL, which syncs only at checkpoints, the same
// power cuts do lose acknowledged batches (as docs/hardening.md and --durability warn).
TEST_CASE("power loss: synchronous=NORMAL loses acknowledged batches in the same simulation", "[storage][crash][power]") {
  CrashVfs::register_once();
  tandem::testing::TempDir dir;
  const std::string db = dir.file("normal.db");
  Rng rng(9191);
  size_t acked = 0, lost = 0;
  for (int cut = 0; cut < 40; ++cut) {
    PowerCut pc = power_cut(db, cut, tandem::storage::Durability::kNormal, rng);
    acked += pc.acked.size();
    tandem::storage::StoreOptions o;
    o.path = db;
    auto store = Store::open(o);
    REQUIRE(store.ok());
    REQUIRE(*(*store)->integrity_check() == "ok");  // consistent, only not durable
    auto rows = (*store)->read_log("crash", 0, UINT64_MAX);
    std::set<std::pair<uint64_t, uint64_t>> bounds;
    if (rows.ok()) {
      for (const auto& row : *rows) bounds.insert({row.first_event, row.end_event});
    }
    for (const Ack& a : pc.acked) lost += bounds.count({a.first, a.end}) == 0;
  }
  std::printf("power loss with synchronous=NORMAL: %zu of %zu acknowledged batches lost\n", lost, acked);
  CHECK(lost > 0);
}

TEST_CASE("I/O errors: a write or sync failing at any point is never acknowledged and loses nothing",
          "[storage][crash][ioerror]") {
  CrashVfs::register_once();
  // One run of a fixed workload with the n-th write/truncate/sync failing (0: none); every batch
  // is committed on its own (sync after each step), so that the calls are the same every run.
  struct Outcome {
    uint64_t calls = 0;
    bool open_failed = false;
    bool hit = false;
    size_t failures = 0;
    size_t acked = 0;
  };
  auto run = [](uint64_t n) {
    Outcome out;
    tandem::testing::TempDir dir;
    const std::string db = dir.file("io.db");
    CrashVfs::reset();
    CrashVfs::fail_at(n);
    Rng rng(5);
    std::vector<Ack> acked;
    {
      auto o = crash_vfs_options(db, rng);
      o.commit_interval = std::chrono::microseconds(0);
      auto store = Store::open(o);
      if (!store.ok()) {
        INFO(store.status().ToString());
        REQUIRE(CrashVfs::failed());
        REQUIRE(store.status().code() == tandem::crdt::Status::Code::kIOError);
        out.open_failed = true;
      } else {
        // After a failure the server drops the document's replica and reloads it from the store
        // (Room::break_room); so does this loop.
        std::optional<Workload> work;
        work.emplace(**store, "a", 77);
        for (int s = 0; s < 24; ++s) {
          work->step(true);
          const auto st = (*store)->sync();
          if (!st.ok()) {
            const auto got = work->acked();
            acked.insert(acked.end(), got.begin(), got.end());
            out.failures += work->failures();
            work.emplace(**store, "b" + std::to_string(s), 78 + static_cast<uint64_t>(s));
          }
        }
        (void)(*store)->sync();
        const bool failed_before_close = CrashVfs::failed();
        store->reset();
        const auto got = work->acked();
        acked.insert(acked.end(), got.begin(), got.end());
        out.failures += work->failures();
        // A failure while committing is reported to whoever waits for that commit.
        INFO("failed: " << CrashVfs::failed_call());
        if (failed_before_close) CHECK(out.failures > 0);
      }
    }
    out.calls = CrashVfs::calls();
    out.hit = CrashVfs::failed();
    out.acked = acked.size();
    CrashVfs::reset();
    verify(db, acked);  // every acknowledged batch is there, the file is sound, the store reopens
    // And it goes on working: the next append after reopening is durable.
    tandem::storage::StoreOptions o;
    o.path = db;
    auto store = Store::open(o);
    REQUIRE(store.ok());
    auto events = (*store)->logged_events("crash");
    const uint64_t first = events.ok() ? *events : 0;
    tandem::crdt::Doc doc("after");
    if (first > 0) {
      auto loaded = (*store)->load("crash", "after", nullptr);
      REQUIRE(loaded.ok());
      doc = std::move(*loaded);
    }
    const auto before = doc.version();
    REQUIRE(doc.insert(0, "x").ok());
    bool ok = false;
    (*store)->append("crash", first, doc.ops_since(before, tandem::crdt::Doc::DeletedText::kInclude),
                     [&ok](tandem::crdt::Status st) { ok = st.ok(); });
    REQUIRE((*store)->sync().ok());
    REQUIRE(ok);
    return out;
  };
  const Outcome clean = run(0);
  REQUIRE_FALSE(clean.hit);
  REQUIRE(clean.failures == 0);
  REQUIRE(clean.acked > 10);
  INFO("writes, truncates and syncs in a clean run: " << clean.calls);
  // Every n until a run no longer reaches its n-th call (the writer may group a snapshot with a
  // batch or not, so runs differ by a call or two).
  size_t open_failures = 0, workload_failures = 0;
  uint64_t n = 1;
  for (;; ++n) {
    INFO("failing call " << n);
    const Outcome o = run(n);
    if (!o.hit) {
      REQUIRE(o.calls < n);
      break;
    }
    open_failures += o.open_failed;
    workload_failures += o.failures > 0;
  }
  std::printf("I/O errors: failed each of calls 1-%llu in turn (a clean run makes %llu): %zu failed the open, %zu were "
              "reported to a writer\n",
              static_cast<unsigned long long>(n - 1), static_cast<unsigned long long>(clean.calls), open_failures,
              workload_failures);
  CHECK(n > clean.calls * 9 / 10);
  CHECK(open_failures > 0);
  CHECK(workload_failures > clean.calls / 2);
}
