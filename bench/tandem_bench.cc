// tandem-bench: benchmarks of the engine on editing traces.
//
//   tandem-bench trace [--json | --emit-text] [--runs N] [--no-local] FILE...
//   tandem-bench branch [--runs N] [--fork F] [--branch B] TRACE   (see cmd_branch)
//   tandem-bench reopen [--runs N] [--per-row K] TRACE...          (see cmd_reopen)
//
// Per trace: (a) replaying the edits as local ops (concurrent traces: one replica per agent,
// merging as the trace's causal graph says, then everything merged), (b) merging the whole
// encoded history into an empty replica (decode included), (c) encoding a snapshot, (d) loading
// it (decode, rebuild, and one read of the text); medians of N runs. Plus the snapshot size and
// the heap the replica holds after (a), measured by counting every allocation of this process.
// Concurrent traces add (e) ingest: one replica receives every transaction, in the trace's order,
// each as its own batch (as a server receives them from its clients), and (f) group: the same
// batches as bytes arriving together, decoded and integrated by one Doc::integrate_group (as a
// replica catching up, or a store rebuilding a log's tail, takes them).
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "crdt/history.h"
#include "history.h"
#include "replay.h"
#include "storage/pg_store.h"
#include "storage/store.h"
#include "trace.h"

// ---- heap accounting: every allocation of the process goes through these ----------------------
namespace {
std::atomic<int64_t> g_live_bytes{0};
}

void* operator new(size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  g_live_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept {
  if (!p) return;
  g_live_bytes.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, size_t) noexcept { operator delete(p); }
void operator delete[](void* p, size_t) noexcept { operator delete(p); }

namespace {

using tandem::crdt::Doc;
namespace codec = tandem::crdt::codec;
namespace crdt = tandem::crdt;
namespace storage = tandem::storage;
namespace history = tandem::history;
namespace trace = tandem::trace;

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "tandem-bench: %s\n", msg.c_str());
  std::exit(1);
}

struct Row {
  std::string trace;
  uint64_t ops = 0;
  uint64_t final_len = 0;
  double local_ms = 0, merge_ms = 0, apply_ms = 0, encode_ms = 0, load_ms = 0;
  double ingest_ms = -1;  // concurrent traces only
  double group_ms = -1;   // concurrent traces only
  double spans_ms = -1;   // rich traces only: the first read of marks and blocks after a load
  uint64_t formats = 0;
  size_t snapshot_bytes = 0;
  int64_t memory_bytes = 0;
  int64_t load_memory_bytes = 0;  // heap a replica holds right after loading the snapshot
};

Doc replay_or_die(const trace::Trace& t) {
  auto doc = trace::replay(t);
  if (!doc.ok()) die(t.name + ": " + doc.status().ToString());
  return std::move(*doc);
}

Row bench_trace(const trace::Trace& t, int runs, bool with_local) {
  Row row;
  row.trace = t.name;
  row.ops = t.num_patches;
  std::vector<double> local, merge, apply, encode, load, ingest, group, spans;
  row.formats = t.num_formats;

  // Heap held by the replica after (a): allocations made by the replay that are still live.
  std::optional<Doc> full;
  if (with_local) {
    const int64_t before = g_live_bytes.load();
    full = replay_or_die(t);
    if (!full->check_invariants().ok()) die(t.name + ": invariants");
    row.memory_bytes = g_live_bytes.load() - before;
  }
  std::vector<crdt::TextSpan> spans0;
  std::vector<crdt::Block> blocks0;
  auto same_format = [&](const Doc& d, const char* what) {
    if (t.concurrent && t.num_formats > 0 && (d.spans() != spans0 || d.blocks() != blocks0)) {
      die(t.name + ": " + what + " replica's marks or blocks differ from the replay's");
    }
  };
  // What each transaction's author sent, for (e), and encoded, for (f).
  std::vector<crdt::OpBatch> batches;
  // (In one buffer: a live string per transaction would leave the heap in pieces that slow every
  // allocation the other measurements make.)
  std::string sent;
  std::vector<size_t> sent_end;
  if (t.concurrent) {
    batches.resize(t.txns.size());
    auto docs = trace::replay_concurrent(t, true, [&](uint32_t i, const crdt::OpBatch& b) { batches[i] = b; });
    if (!docs.ok()) die(t.name + ": " + docs.status().ToString());
    for (const auto& b : batches) {
      sent += codec::encode_ops(b);
      sent_end.push_back(sent.size());
    }
    if (t.num_formats > 0) {
      // Formatting has no oracle in a concurrent trace: every replica, each agent's brought up to
      // date and those below, must read the same marks and blocks.
      spans0 = docs->front().spans();
      blocks0 = docs->front().blocks();
      for (size_t b = 1; b < docs->size(); ++b) {
        auto r = (*docs)[b].apply(docs->front().ops_since((*docs)[b].version()));
        if (!r.ok()) die(t.name + ": " + r.status().ToString());
        same_format((*docs)[b], "an agent's");
      }
    }
    if (!full) full = std::move(docs->front());
  } else if (!full) {
    full = replay_or_die(t);
  }
  if (full->text() != t.end_content) die(t.name + ": replay does not reach endContent");
  row.final_len = full->length();
  const std::string history = codec::encode_ops(full->ops_since({}));
  full.reset();

  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    if (with_local) {
      Doc doc = replay_or_die(t);
      local.push_back(ms_since(t0));
    }

    t0 = Clock::now();
    auto batch = codec::decode_batch(history);
    if (!batch.ok()) die(t.name + ": " + batch.status().ToString());
    const auto decoded = Clock::now();
    Doc fresh("server");
    auto patches = fresh.apply(*batch);
    merge.push_back(ms_since(t0));
    apply.push_back(ms_since(decoded));
    if (!patches.ok()) die(t.name + ": merge: " + patches.status().ToString());
    if (fresh.text() != t.end_content) die(t.name + ": merged replica does not reach endContent");
    if (i == 0) same_format(fresh, "the merged");

    // Snapshots are canonical: the merged replica encodes to the replayed one's bytes.
    t0 = Clock::now();
    const std::string snap = codec::save(fresh);
    encode.push_back(ms_since(t0));
    row.snapshot_bytes = snap.size();

    const int64_t live = g_live_bytes.load();
    t0 = Clock::now();
    auto loaded = codec::load(snap, "reader");
    if (!loaded.ok()) die(t.name + ": load: " + loaded.status().ToString());
    const std::string text = loaded->text();
    load.push_back(ms_since(t0));
    if (i == 0) row.load_memory_bytes = g_live_bytes.load() - live - static_cast<int64_t>(text.capacity());
    if (text != t.end_content) die(t.name + ": loaded snapshot does not hold endContent");
    if (t.num_formats > 0) {
      t0 = Clock::now();
      const auto s = loaded->spans();
      const auto b = loaded->blocks();
      spans.push_back(ms_since(t0));
      if (i == 0) same_format(*loaded, "the snapshot-loaded");
      if (s.empty() || b.empty()) die(t.name + ": no spans read");
    }

    if (t.concurrent) {
      t0 = Clock::now();
      auto server = trace::ingest(batches);
      ingest.push_back(ms_since(t0));
      if (!server.ok()) die(t.name + ": " + server.status().ToString());
      if (server->text() != t.end_content) die(t.name + ": ingested replica does not reach endContent");
      if (i == 0) same_format(*server, "the ingesting");
      t0 = Clock::now();
      Doc grouped("server");
      {
        std::vector<crdt::Batch> columns;
        columns.reserve(sent_end.size());
        for (size_t k = 0; k < sent_end.size(); ++k) {
          const size_t from = k == 0 ? 0 : sent_end[k - 1];
          auto b = codec::decode_batch(std::string_view(sent).substr(from, sent_end[k] - from));
          if (!b.ok()) die(t.name + ": " + b.status().ToString());
          columns.push_back(std::move(*b));
        }
        std::vector<const crdt::Batch*> all;
        all.reserve(columns.size());
        for (const auto& b : columns) all.push_back(&b);
        for (const auto& st : grouped.integrate_group(all)) {
          if (!st.ok()) die(t.name + ": grouped ingest: " + st.ToString());
        }
      }
      group.push_back(ms_since(t0));
      if (grouped.text() != t.end_content) die(t.name + ": the replica ingesting a group does not reach endContent");
      if (i == 0) same_format(grouped, "the group-ingesting");
    }
  }
  if (t.concurrent) {
    row.ingest_ms = median(ingest);
    row.group_ms = median(group);
  }
  if (!spans.empty()) row.spans_ms = median(spans);
  row.local_ms = with_local ? median(local) : -1;
  row.merge_ms = median(merge);
  row.apply_ms = median(apply);
  row.encode_ms = median(encode);
  row.load_ms = median(load);
  return row;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string fmt_ms(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
std::string fmt2(double v) { return fmt_ms(v, 2); }
std::string fmt3(double v) { return fmt_ms(v, 3); }

int cmd_trace(int argc, char** argv) {
  bool json = false, emit = false, with_local = true, strip = false;
  int runs = 5;
  std::vector<std::string> files;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--no-local") {
      with_local = false;
    } else if (a == "--strip-formats") {
      strip = true;
    } else if (a == "--emit-text") {
      emit = true;
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: tandem-bench trace [--json | --emit-text] [--runs N] [--no-local] [--strip-formats] FILE...\n"
          "  Benchmarks the engine on editing traces (josephg/editing-traces format, .json or .json.gz;\n"
          "  rich traces' marks and blocks too, bench/traces/README.md).\n"
          "  --strip-formats  replay a rich trace without its formatting (its plain twin)\n"
          "  --json       one JSON object per trace per line\n"
          "  --emit-text  print only the final text of the (single) trace\n"
          "  --runs N     runs per measurement; the median is reported (default 5)\n"
          "  --no-local   skip the local replay and the heap figure (the replay still runs once for\n"
          "               concurrent traces, untimed, to make their transactions' batches)\n");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      die("unknown option " + a + " (see --help)");
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) die("no trace files given (see --help)");
  if (emit) {
    if (files.size() != 1) die("--emit-text takes exactly one trace");
    auto t = trace::load(files[0]);
    if (!t.ok()) die(t.status().ToString());
    const std::string text = replay_or_die(*t).text();
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  if (!json) {
    std::printf("%-22s %8s %9s %9s %9s %9s %9s %9s %9s %10s %10s %10s %9s %9s\n", "trace", "ops", "final_len", "local_ms",
                "merge_ms", "m_only_ms", "ingest_ms", "encode_ms", "load_ms", "snap_bytes", "load_mem", "mem_bytes", "spans_ms",
                "group_ms");
  }
  for (const auto& f : files) {
    auto t = trace::load(f);
    if (!t.ok()) die(t.status().ToString());
    if (strip) trace::strip_formats(&*t);
    const Row r = bench_trace(*t, runs, with_local);
    // Columns a run did not measure are "-" in the table and left out of the JSON.
    const bool has_local = r.local_ms >= 0, has_ingest = r.ingest_ms >= 0;
    if (json) {
      std::string line = "{\"trace\":\"" + json_escape(r.trace) + "\",\"ops\":" + std::to_string(r.ops) +
                         ",\"final_len\":" + std::to_string(r.final_len);
      if (has_local) line.append(",\"local_ms\":").append(fmt3(r.local_ms));
      line.append(",\"merge_ms\":").append(fmt3(r.merge_ms));
      line.append(",\"merge_only_ms\":").append(fmt3(r.apply_ms));
      if (has_ingest) line.append(",\"ingest_ms\":").append(fmt3(r.ingest_ms));
      if (has_ingest) line.append(",\"group_ms\":").append(fmt3(r.group_ms));
      line.append(",\"encode_ms\":").append(fmt3(r.encode_ms));
      line.append(",\"load_ms\":").append(fmt3(r.load_ms));
      line.append(",\"snapshot_bytes\":").append(std::to_string(r.snapshot_bytes));
      line.append(",\"load_memory_bytes\":").append(std::to_string(r.load_memory_bytes));
      if (has_local) line.append(",\"memory_bytes\":").append(std::to_string(r.memory_bytes));
      if (r.spans_ms >= 0) line.append(",\"spans_ms\":").append(fmt3(r.spans_ms));
      if (r.formats) line.append(",\"formats\":").append(std::to_string(r.formats));
      line.append(",\"runs\":").append(std::to_string(runs)).append("}\n");
      std::fputs(line.c_str(), stdout);
    } else {
      std::printf("%-22s %8llu %9llu %9s %9.2f %9.2f %9s %9.2f %9.2f %10zu %10lld %10s %9s %9s\n", r.trace.c_str(),
                  static_cast<unsigned long long>(r.ops), static_cast<unsigned long long>(r.final_len),
                  has_local ? fmt2(r.local_ms).c_str() : "-", r.merge_ms, r.apply_ms, has_ingest ? fmt2(r.ingest_ms).c_str() : "-",
                  r.encode_ms, r.load_ms, r.snapshot_bytes, static_cast<long long>(r.load_memory_bytes), has_local ? std::to_string(r.memory_bytes).c_str() : "-",
                  r.spans_ms >= 0 ? fmt2(r.spans_ms).c_str() : "-", has_ingest ? fmt2(r.group_ms).c_str() : "-");
    }
    std::fflush(stdout);
  }
  return 0;
}

// ---- tandem-bench branch ---------------------------------------------------------------------
//
// A replica holding a long history merges a concurrent branch: the cost must follow the branch and
// how far back it forked, not the length of the history. The history is a prefix of a sequential
// trace (the first H events); the branch (another replica, B keystrokes typed at one place) forked
// F events before the end.

int cmd_branch(int argc, char** argv) {
  int runs = 7;
  uint64_t fork_back = 1000, branch_len = 100;
  std::string file;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--fork" && i + 1 < argc) {
      fork_back = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--branch" && i + 1 < argc) {
      branch_len = std::max<uint64_t>(1, std::strtoull(argv[++i], nullptr, 10));
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: tandem-bench branch [--runs N] [--fork F] [--branch B] TRACE\n"
          "  Merges a B-keystroke branch that forked F events back into replicas holding the first\n"
          "  1/8, 1/4, 1/2 and all of a sequential trace's events; prints the median merge time.\n");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      die("unknown option " + a + " (see --help)");
    } else {
      file = a;
    }
  }
  if (file.empty()) die("no trace file given (see --help)");
  auto t = trace::load(file);
  if (!t.ok()) die(t.status().ToString());
  if (t->concurrent) die(t->name + " is a concurrent trace; branch takes a sequential one");
  // Events after each transaction, to cut the history at a number of events.
  std::vector<uint64_t> events_after;
  {
    Doc probe("probe");
    for (const auto& txn : t->txns) {
      if (!trace::apply_txn(txn, &probe).ok()) die(t->name + ": replay failed");
      events_after.push_back(probe.num_events());
    }
  }
  const uint64_t total = events_after.empty() ? 0 : events_after.back();
  std::printf("%-12s %10s %8s %8s %10s %10s %10s\n", "trace", "history", "fork", "branch", "merge_us", "walked",
              "replayed");
  for (uint64_t h : {total / 8, total / 4, total / 2, total}) {
    if (h <= fork_back) continue;
    std::vector<double> us;
    Doc::MergeWork work;
    for (int r = 0; r < runs; ++r) {
      Doc main("main");
      size_t k = 0;
      while (k < t->txns.size() && events_after[k] <= h - fork_back) (void)trace::apply_txn(t->txns[k++], &main);
      Doc side("side");
      if (!side.apply(main.ops_since({})).ok()) die("fork failed");
      while (k < t->txns.size() && events_after[k] <= h) (void)trace::apply_txn(t->txns[k++], &main);
      const uint32_t at = side.length() / 2;
      for (uint64_t i = 0; i < branch_len; ++i) (void)side.insert(at + static_cast<uint32_t>(i), "x");
      const crdt::OpBatch batch = side.ops_since(main.version());
      const auto t0 = Clock::now();
      auto merged = main.apply(batch);
      us.push_back(ms_since(t0) * 1000);
      if (!merged.ok()) die("merge failed: " + merged.status().ToString());
      work = main.last_merge_work();
    }
    std::printf("%-12s %10llu %8llu %8llu %10.1f %10llu %10llu\n", t->name.c_str(),
                static_cast<unsigned long long>(h), static_cast<unsigned long long>(fork_back),
                static_cast<unsigned long long>(branch_len), median(us), static_cast<unsigned long long>(work.walked),
                static_cast<unsigned long long>(work.replayed));
  }
  return 0;
}

// ---- tandem-bench store ---------------------------------------------------------------------

struct StoreRow {
  int writers = 0;
  double ops_per_s = 0, commits_per_s = 0, batches_per_commit = 0, p50_ack_ms = 0, p99_ack_ms = 0, bytes_per_op = 0,
         rows_per_commit = 0;
};

// W writers, each a server replica of its own document taking batches of `batch` typed
// characters, with up to `window` batches in flight: the next is appended when one is durable
// (window 1: each waits for the previous; a server's clients do not wait, so its documents have
// many). One driver thread serves them all, as a server's event loop would (a thread per writer
// measures the kernel's scheduler instead).
// pg: a PostgreSQL URI: `nodes` stores (as many Tandem nodes) on that database, the writers
// spread over them, each run on documents of its own; else SQLite in `dir`.
StoreRow bench_writers(const std::string& dir, const std::string& pg, int nodes, int writers, int batch, int window,
                       double seconds, storage::Durability d, std::chrono::microseconds interval) {
  std::vector<std::unique_ptr<tandem::store::DocStore>> stores;
  storage::StoreOptions o;
  std::string tag;
  if (pg.empty()) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    o.path = dir + "/bench.db";
    o.durability = d;
    o.commit_interval = interval;
    auto store = storage::Store::open(o);
    if (!store.ok()) die(store.status().ToString());
    stores.push_back(std::move(*store));
  } else {
    for (int n = 0; n < nodes; ++n) {
      storage::PgOptions po;
      po.conninfo = pg;
      po.commit_interval = interval;
      auto store = storage::PgStore::open(po);
      if (!store.ok()) die(store.status().ToString());
      stores.push_back(std::move(*store));
    }
    tag = std::string(1, '-').append(std::to_string(std::chrono::system_clock::now().time_since_epoch().count()));
  }
  struct Writer {
    Writer(int w, const std::string& tag) : doc("writer" + std::to_string(w)), name("doc" + std::to_string(w) + tag) {}
    Doc doc;
    std::string name;
    std::deque<Clock::time_point> sent;  // of the batches in flight, oldest first
  };
  std::vector<Writer> ws;
  for (int w = 0; w < writers; ++w) ws.emplace_back(w, tag);
  std::mutex m;
  std::condition_variable cv;
  std::vector<int> ready;  // writers whose last batch is durable
  std::vector<double> lat;
  uint64_t ops = 0;
  bool failed = false;
  auto send = [&](int w) {
    Writer& wr = ws[w];
    const crdt::Version v = wr.doc.version();
    if (!wr.doc.insert(wr.doc.length(), std::string(static_cast<size_t>(batch), 'a' + static_cast<char>(w % 26))).ok()) {
      die("insert");
    }
    wr.sent.push_back(Clock::now());
    stores[static_cast<size_t>(w) % stores.size()]->append(wr.name, wr.doc.num_events() - static_cast<uint64_t>(batch), wr.doc.ops_since(v),
                     [&, w](crdt::Status st) {
                       std::lock_guard<std::mutex> lock(m);
                       if (!st.ok() && !failed) std::fprintf(stderr, "tandem-bench: %s\n", st.ToString().c_str());
                       failed = failed || !st.ok();
                       ready.push_back(w);
                       cv.notify_one();
                     });
  };
  auto totals = [&] {
    tandem::store::StoreStats t;
    for (const auto& st : stores) {
      const auto x = st->stats();
      t.commits += x.commits;
      t.batches += x.batches;
      t.rows += x.rows;
    }
    return t;
  };
  const auto s0 = totals();
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (int k = 0; k < window; ++k) {
    for (int w = 0; w < writers; ++w) send(w);
  }
  std::vector<int> batch_ready;
  for (size_t in_flight = static_cast<size_t>(writers) * static_cast<size_t>(window); in_flight > 0;) {
    {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return !ready.empty(); });
      batch_ready.swap(ready);
      if (failed) die("an append failed");
    }
    const auto now = Clock::now();
    for (int w : batch_ready) {
      --in_flight;
      lat.push_back(std::chrono::duration<double, std::milli>(now - ws[w].sent.front()).count());
      ws[w].sent.pop_front();
      ops += static_cast<uint64_t>(batch);
      if (now < end) {
        send(w);
        ++in_flight;
      }
    }
    batch_ready.clear();
  }
  const double elapsed = ms_since(t0) / 1000;
  const auto s1 = totals();
  std::sort(lat.begin(), lat.end());
  StoreRow r;
  r.writers = writers;
  r.ops_per_s = static_cast<double>(ops) / elapsed;
  r.commits_per_s = static_cast<double>(s1.commits - s0.commits) / elapsed;
  r.batches_per_commit =
      static_cast<double>(s1.batches - s0.batches) / std::max<double>(1, static_cast<double>(s1.commits - s0.commits));
  r.rows_per_commit =
      static_cast<double>(s1.rows - s0.rows) / std::max<double>(1, static_cast<double>(s1.commits - s0.commits));
  r.p50_ack_ms = lat.empty() ? 0 : lat[lat.size() / 2];
  r.p99_ack_ms = lat.empty() ? 0 : lat[lat.size() * 99 / 100];
  stores.clear();  // closing checkpoints the WAL into the file
  if (pg.empty()) {
    r.bytes_per_op = static_cast<double>(std::filesystem::file_size(o.path)) / static_cast<double>(std::max<uint64_t>(1, ops));
  }
  return r;
}

int cmd_store(int argc, char** argv) {
  std::vector<int> writer_counts = {1, 10, 100};
  int batch = 10, runs = 3, window = 1;
  auto interval = storage::StoreOptions{}.commit_interval;
  std::string pg;
  int nodes = 1;
  double seconds = 3;
  bool normal = false;
  std::string trace_file, dir = (std::filesystem::temp_directory_path() / "tandem-bench-store").string();
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--writers") {
      writer_counts.clear();
      std::string list = next();
      for (size_t at = 0; at < list.size();) {
        const size_t comma = list.find(',', at);
        writer_counts.push_back(std::atoi(list.substr(at, comma - at).c_str()));
        at = comma == std::string::npos ? list.size() : comma + 1;
      }
    } else if (a == "--batch") {
      batch = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--seconds") {
      seconds = std::atof(next().c_str());
    } else if (a == "--window") {
      window = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--pg") {
      pg = next();
    } else if (a == "--nodes") {
      nodes = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--commit-interval-us") {
      interval = std::chrono::microseconds(std::max(0, std::atoi(next().c_str())));
    } else if (a == "--runs") {
      runs = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--durability") {
      normal = next() == "normal";
    } else if (a == "--trace") {
      trace_file = next();
    } else if (a == "--dir") {
      dir = next();
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: tandem-bench store [--writers 1,10,100] [--batch K] [--window B] [--seconds S] [--runs N]\n"
          "                          [--durability full|normal] [--commit-interval-us U] [--trace FILE] [--dir DIR]\n"
          "                          [--pg postgresql://... [--nodes N]]\n"
          "  Durable append throughput: W writers, each appending batches of K typed characters to its\n"
          "  own document with up to B of them not yet durable (default 1: each waits for the one\n"
          "  before); ops/s, commits/s, batches and log rows per commit and acknowledgement latency,\n"
          "  medians of N runs of S seconds. With --trace: the trace imported\n"
          "  as a document, then its load time from the snapshot and from the whole log, and the bytes\n"
          "  on disk.\n");
      return 0;
    } else {
      die("unknown option " + a + " (see --help)");
    }
  }
  const auto d = normal ? storage::Durability::kNormal : storage::Durability::kFull;
  std::printf("%-8s %12s %12s %14s %12s %10s %10s %12s   (batches of %d ops, %d in flight each, %s, commit interval %lld us, median of %d x %.0f s)\n",
              "writers", "ops/s", "commits/s", "batches/commit", "rows/commit", "ack p50 ms", "ack p99 ms", "bytes/op",
              batch, window, pg.empty() ? (normal ? "SQLite NORMAL" : "SQLite FULL") : std::to_string(nodes).append(" PostgreSQL nodes").c_str(),
              static_cast<long long>(interval.count()), runs, seconds);
  for (int w : writer_counts) {
    std::vector<StoreRow> rs;
    for (int r = 0; r < runs; ++r) rs.push_back(bench_writers(dir, pg, nodes, w, batch, window, seconds, d, interval));
    auto med = [&](double StoreRow::*f) {
      std::vector<double> v;
      for (const auto& x : rs) v.push_back(x.*f);
      return median(v);
    };
    std::printf("%-8d %12.0f %12.0f %14.1f %12.1f %10.2f %10.2f %12.1f\n", w, med(&StoreRow::ops_per_s),
                med(&StoreRow::commits_per_s), med(&StoreRow::batches_per_commit), med(&StoreRow::rows_per_commit),
                med(&StoreRow::p50_ack_ms),
                med(&StoreRow::p99_ack_ms), med(&StoreRow::bytes_per_op));
    std::fflush(stdout);
  }
  if (!trace_file.empty()) {
    auto t = trace::load(trace_file);
    if (!t.ok()) die(t.status().ToString());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    storage::StoreOptions o;
    o.path = dir + "/trace.db";
    o.durability = d;
    {
      auto store = storage::Store::open(o);
      if (!store.ok()) die(store.status().ToString());
      auto replica = history::import_trace(**store, t->name, *t);
      if (!replica.ok()) die(replica.status().ToString());
    }
    auto store = storage::Store::open(o);
    if (!store.ok()) die(store.status().ToString());
    std::vector<double> from_snapshot, from_log;
    for (int r = 0; r < std::max(runs, 5); ++r) {
      auto t0 = Clock::now();
      auto a = (*store)->load(t->name, "reader", nullptr);
      from_snapshot.push_back(ms_since(t0));
      if (!a.ok() || a->text() != t->end_content) die("load from snapshot");
      t0 = Clock::now();
      auto b = tandem::store::replay(**store, t->name);
      from_log.push_back(ms_since(t0));
      if (!b.ok() || b->text() != t->end_content) die("replay of the log");
    }
    auto info = (*store)->info(t->name);
    store->reset();  // bytes on disk: the file after closing, which checkpoints the WAL into it
    const auto file_bytes = std::filesystem::file_size(o.path);
    std::printf("\n%s: %llu ops; load from snapshot %.2f ms, from the whole log %.2f ms (medians)\n",
                t->name.c_str(), static_cast<unsigned long long>(t->num_patches ? info->events : 0), median(from_snapshot),
                median(from_log));
    std::printf("  log %llu bytes in %llu rows, newest snapshot %llu bytes, %u snapshots; database file %llu bytes "
                "(%.2f bytes per op)\n",
                static_cast<unsigned long long>(info->log_bytes), static_cast<unsigned long long>(info->log_rows),
                static_cast<unsigned long long>(info->snapshot_bytes), info->snapshots,
                static_cast<unsigned long long>(file_bytes), static_cast<double>(file_bytes) / static_cast<double>(info->events));
  }
  return 0;
}

}  // namespace

// History reads (issue 26's goals) on a replica holding a trace's whole history as a merge built
// it (its events in the order of the history's encoding): building crdt::History, blame of the
// whole current text, 100 random points of a slider (each: the text there and what changed since
// the point 500 events before, one diff), and the diff of the first and last versions. Then the
// trace imported into a SQLite store (rows of 1024 events, as `tandem import`): the history read
// back from the log (store::read_history, what the HTTP API's history reads start with) and its
// sessions.
int cmd_history(int argc, char** argv) {
  int runs = 5;
  std::vector<std::string> files;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (!a.empty() && a[0] == '-') {
      die("usage: tandem-bench history [--runs N] FILE...");
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) die("usage: tandem-bench history [--runs N] FILE...");
  std::printf("%-22s %9s %9s %9s %10s %10s %9s %11s %11s %9s %11s\n", "trace", "events", "build_ms", "blame_ms",
              "slider_med", "slider_max", "diff_ms", "index_bytes", "doc_bytes", "log_ms", "sessions_ms");
  for (const auto& f : files) {
    auto t = trace::load(f);
    if (!t.ok()) die(t.status().ToString());
    Doc full = replay_or_die(*t);
    auto batch = codec::decode_ops(codec::encode_ops(full.ops_since({})));
    if (!batch.ok()) die(batch.status().ToString());
    Doc doc("server");
    if (!doc.apply(*batch).ok() || doc.text() != t->end_content) die(t->name + ": merge");
    std::vector<double> build, blame, slider_med, slider_max, diff;
    size_t index_bytes = 0;
    for (int r = 0; r < runs; ++r) {
      auto t0 = Clock::now();
      auto h = doc.history();
      build.push_back(ms_since(t0));
      if (!h.ok()) die(h.status().ToString());
      index_bytes = h->heap_bytes();
      const uint64_t n = h->events();
      t0 = Clock::now();
      auto b = h->blame(n);
      blame.push_back(ms_since(t0));
      if (!b.ok() || (!b->empty() && b->back().to != doc.length())) die(t->name + ": blame");
      std::vector<double> points;
      uint64_t seed = 12345 + static_cast<uint64_t>(r);
      for (int k = 0; k < 100; ++k) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        const uint64_t p = (seed >> 11) % (n + 1);
        t0 = Clock::now();
        auto d = h->diff(p > 500 ? p - 500 : 0, p);
        points.push_back(ms_since(t0));
        if (!d.ok()) die(t->name + ": slider");
      }
      slider_med.push_back(median(points));
      slider_max.push_back(*std::max_element(points.begin(), points.end()));
      t0 = Clock::now();
      auto d = h->diff(0, n);
      diff.push_back(ms_since(t0));
      if (!d.ok()) die(t->name + ": diff");
      std::string now;
      for (const auto& run : *d) now += run.text;
      if (now != t->end_content) die(t->name + ": the diff from nothing is not the text");
    }
    // From a store's log.
    const auto dir = std::filesystem::temp_directory_path() / ("tandem-bench-history-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::vector<double> from_log, sessions;
    {
      auto st = storage::Store::open({(dir / "h.db").string()});
      if (!st.ok()) die(st.status().ToString());
      if (!history::import_trace(**st, "doc", *t).ok()) die(t->name + ": import");
      for (int r = 0; r < runs; ++r) {
        auto t0 = Clock::now();
        auto lh = tandem::store::read_history(**st, "doc");
        from_log.push_back(ms_since(t0));
        if (!lh.ok() || *lh->history.text_at(lh->history.events()) != t->end_content) die(t->name + ": read_history");
        t0 = Clock::now();
        auto ss = lh->sessions(300000);
        sessions.push_back(ms_since(t0));
        if (ss.empty()) die(t->name + ": no sessions");
      }
    }
    std::filesystem::remove_all(dir);
    std::printf("%-22s %9llu %9.2f %9.2f %10.2f %10.2f %9.2f %11zu %11zu %9.2f %11.2f\n", t->name.c_str(),
                static_cast<unsigned long long>(doc.num_events()), median(build), median(blame), median(slider_med),
                median(slider_max), median(diff), index_bytes, doc.heap_bytes(), median(from_log), median(sessions));
  }
  return 0;
}

// ---- tandem-bench reopen ----------------------------------------------------------------------
//
// Opening a document whose log has no snapshot to start from: a concurrent trace's transactions,
// each integrated by a server replica and appended as the server appends what it added, the store
// closed (folding its journal into a log row) after every K of them; then SqliteStore::load, the
// median and best of N. What the server pays on the first join after a restart when its last
// snapshot is far behind.
int cmd_reopen(int argc, char** argv) {
  int runs = 9, per_row = 1;
  std::vector<std::string> files;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--per-row" && i + 1 < argc) {
      per_row = std::max(1, std::atoi(argv[++i]));
    } else if (!a.empty() && a[0] == '-') {
      die("usage: tandem-bench reopen [--runs N] [--per-row K] FILE...");
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) die("usage: tandem-bench reopen [--runs N] [--per-row K] FILE...");
  std::printf("%-22s %9s %7s %11s %11s\n", "trace", "events", "rows", "load_ms", "best_ms");
  const auto dir = std::filesystem::temp_directory_path() / ("tandem-bench-reopen-" + std::to_string(::getpid()));
  for (const auto& f : files) {
    auto t = trace::load(f);
    if (!t.ok()) die(t.status().ToString());
    if (!t->concurrent) die(t->name + ": reopen takes concurrent traces (their transactions are the log's batches)");
    std::vector<crdt::OpBatch> batches(t->txns.size());
    auto docs = trace::replay_concurrent(*t, false, [&](uint32_t i, const crdt::OpBatch& b) { batches[i] = b; });
    if (!docs.ok()) die(t->name + ": " + docs.status().ToString());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    storage::StoreOptions o;
    o.path = (dir / "r.db").string();
    auto open = [&] {
      auto store = storage::Store::open(o);
      if (!store.ok()) die(store.status().ToString());
      return std::move(*store);
    };
    auto store = open();
    Doc server("server");
    uint64_t rows = 0;
    for (size_t i = 0; i < batches.size(); ++i) {
      crdt::OpBatch added;
      auto r = server.apply(batches[i], &added);
      if (!r.ok()) die(t->name + ": " + r.status().ToString());
      if (added.empty()) continue;
      store->append("d", server.num_events() - added.events(), added, nullptr);
      if (auto st = store->sync(); !st.ok()) die(st.ToString());
      if ((i + 1) % per_row == 0 || i + 1 == batches.size()) {
        store = open();  // the old one closes first: its journal becomes a log row
        ++rows;
      }
    }
    std::vector<double> ms;
    for (int r = 0; r < runs; ++r) {
      const auto t0 = Clock::now();
      auto d = store->load("d", "reader", nullptr);
      ms.push_back(ms_since(t0));
      if (!d.ok() || d->text() != t->end_content) die(t->name + ": the reopened document does not hold endContent");
    }
    std::printf("%-22s %9llu %7llu %11.2f %11.2f\n", t->name.c_str(), static_cast<unsigned long long>(server.num_events()),
                static_cast<unsigned long long>(rows), median(ms), *std::min_element(ms.begin(), ms.end()));
    store.reset();
    std::filesystem::remove_all(dir);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::printf(
        "usage: tandem-bench trace [--json | --emit-text] [--runs N] [--no-local] FILE...\n"
        "       tandem-bench branch [--runs N] [--fork F] [--branch B] TRACE\n"
        "       tandem-bench store [--writers 1,10,100] [--batch K] [--seconds S] [--trace FILE] ...\n"
        "       tandem-bench history [--runs N] FILE...\n"
        "       tandem-bench reopen [--runs N] [--per-row K] FILE...\n");
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "trace") return cmd_trace(argc - 2, argv + 2);
  if (cmd == "branch") return cmd_branch(argc - 2, argv + 2);
  if (cmd == "store") return cmd_store(argc - 2, argv + 2);
  if (cmd == "history") return cmd_history(argc - 2, argv + 2);
  if (cmd == "reopen") return cmd_reopen(argc - 2, argv + 2);
  die("unknown command '" + cmd + "' (see --help)");
}
