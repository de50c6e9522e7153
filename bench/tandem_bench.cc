// tandem-bench: benchmarks of the engine on editing traces.
//
//   tandem-bench trace [--json | --emit-text] [--runs N] FILE...
//
// Per trace: (a) replaying the edits as local ops (concurrent traces: one replica per agent,
// merging as the trace's causal graph says, then everything merged), (b) merging the whole
// encoded history into an empty replica (decode included), (c) encoding a snapshot, (d) loading
// it (decode, rebuild, and one read of the text); medians of N runs. Plus the snapshot size and
// the heap the replica holds after (a), measured by counting every allocation of this process.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "replay.h"
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
  double local_ms = 0, merge_ms = 0, encode_ms = 0, load_ms = 0;
  size_t snapshot_bytes = 0;
  int64_t memory_bytes = 0;
};

Doc replay_or_die(const trace::Trace& t) {
  auto doc = trace::replay(t);
  if (!doc.ok()) die(t.name + ": " + doc.status().ToString());
  return std::move(*doc);
}

Row bench_trace(const trace::Trace& t, int runs) {
  Row row;
  row.trace = t.name;
  row.ops = t.num_patches;
  std::vector<double> local, merge, encode, load;

  // Heap held by the replica after (a): allocations made by the replay that are still live.
  {
    const int64_t before = g_live_bytes.load();
    Doc doc = replay_or_die(t);
    if (!doc.check_invariants().ok()) die(t.name + ": invariants");
    row.memory_bytes = g_live_bytes.load() - before;
    if (doc.text() != t.end_content) die(t.name + ": replay does not reach endContent");
    row.final_len = doc.length();
  }
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    Doc doc = replay_or_die(t);
    local.push_back(ms_since(t0));

    const std::string history = codec::encode_ops(doc.ops_since({}));
    t0 = Clock::now();
    auto batch = codec::decode_ops(history);
    if (!batch.ok()) die(t.name + ": " + batch.status().ToString());
    Doc fresh("server");
    auto patches = fresh.apply(*batch);
    merge.push_back(ms_since(t0));
    if (!patches.ok()) die(t.name + ": merge: " + patches.status().ToString());
    if (fresh.text() != t.end_content) die(t.name + ": merged replica does not reach endContent");

    t0 = Clock::now();
    const std::string snap = codec::save(doc);
    encode.push_back(ms_since(t0));
    row.snapshot_bytes = snap.size();

    t0 = Clock::now();
    auto loaded = codec::load(snap, "reader");
    if (!loaded.ok()) die(t.name + ": load: " + loaded.status().ToString());
    const std::string text = loaded->text();
    load.push_back(ms_since(t0));
    if (text != t.end_content) die(t.name + ": loaded snapshot does not hold endContent");
  }
  row.local_ms = median(local);
  row.merge_ms = median(merge);
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

int cmd_trace(int argc, char** argv) {
  bool json = false, emit = false;
  int runs = 5;
  std::vector<std::string> files;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--emit-text") {
      emit = true;
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: tandem-bench trace [--json | --emit-text] [--runs N] FILE...\n"
          "  Benchmarks the engine on editing traces (josephg/editing-traces format, .json or .json.gz).\n"
          "  --json       one JSON object per trace per line\n"
          "  --emit-text  print only the final text of the (single) trace\n"
          "  --runs N     runs per measurement; the median is reported (default 5)\n");
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
    std::printf("%-22s %8s %9s %9s %9s %9s %9s %10s %10s\n", "trace", "ops", "final_len", "local_ms", "merge_ms",
                "encode_ms", "load_ms", "snap_bytes", "mem_bytes");
  }
  for (const auto& f : files) {
    auto t = trace::load(f);
    if (!t.ok()) die(t.status().ToString());
    const Row r = bench_trace(*t, runs);
    if (json) {
      std::printf(
          "{\"trace\":\"%s\",\"ops\":%llu,\"final_len\":%llu,\"local_ms\":%.3f,\"merge_ms\":%.3f,\"encode_ms\":%.3f,"
          "\"load_ms\":%.3f,\"snapshot_bytes\":%zu,\"memory_bytes\":%lld,\"runs\":%d}\n",
          json_escape(r.trace).c_str(), static_cast<unsigned long long>(r.ops),
          static_cast<unsigned long long>(r.final_len), r.local_ms, r.merge_ms, r.encode_ms, r.load_ms,
          r.snapshot_bytes, static_cast<long long>(r.memory_bytes), runs);
    } else {
      std::printf("%-22s %8llu %9llu %9.2f %9.2f %9.2f %9.2f %10zu %10lld\n", r.trace.c_str(),
                  static_cast<unsigned long long>(r.ops), static_cast<unsigned long long>(r.final_len), r.local_ms,
                  r.merge_ms, r.encode_ms, r.load_ms, r.snapshot_bytes, static_cast<long long>(r.memory_bytes));
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::printf("usage: tandem-bench trace [--json | --emit-text] [--runs N] FILE...\n");
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "trace") return cmd_trace(argc - 2, argv + 2);
  die("unknown command '" + cmd + "' (see --help)");
}
