// The process the crash test kills: a server-side replica taking batches from simulated clients
// and appending them to a store, printing each acknowledgement the moment it arrives.
//
//   crash_child DB RUN SEED SNAPSHOTS
//
// Output, one line per durable batch: "ACK first end agent:seq+len ...". Continues the document
// found in DB, if any (the test restarts it on the same file after every kill).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "crdt/codec.h"
#include "storage/store.h"
#include "support/random_edits.h"

using tandem::crdt::Doc;
using tandem::crdt::OpBatch;
using tandem::crdt::Status;
using tandem::crdt::Version;
namespace codec = tandem::crdt::codec;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: crash_child DB RUN SEED SNAPSHOTS\n");
    return 2;
  }
  const std::string db = argv[1], run = argv[2];
  tandem::testing::Rng rng(std::strtoull(argv[3], nullptr, 10));
  const bool snapshots = std::atoi(argv[4]) != 0;
  tandem::storage::StoreOptions o;
  o.path = db;
  auto store = tandem::storage::Store::open(o);
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 1;
  }
  Doc server("server");
  if (auto loaded = (*store)->load("crash", "server", nullptr); loaded.ok()) {
    server = std::move(*loaded);
  } else if (loaded.status().code() != Status::Code::kNotFound) {
    std::fprintf(stderr, "load: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  std::vector<Doc> clients;
  std::vector<Version> sent;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back("r" + run + "c" + std::to_string(i));
    if (!clients.back().apply(server.ops_since({})).ok()) return 1;
    sent.push_back(clients.back().version());
  }
  std::mutex out_mu;
  for (uint64_t step = 0;; ++step) {
    const size_t c = rng.below(clients.size());
    const int edits = 1 + static_cast<int>(rng.below(4));
    for (int e = 0; e < edits; ++e) tandem::testing::random_edit(rng, clients[c]);
    OpBatch added;
    auto r = server.apply(clients[c].ops_since(sent[c], Doc::DeletedText::kInclude), &added);
    if (!r.ok()) {
      std::fprintf(stderr, "apply: %s\n", r.status().ToString().c_str());
      return 1;
    }
    sent[c] = clients[c].version();
    if (added.empty()) continue;
    const uint64_t first = server.num_events() - added.events();
    std::string line = "ACK " + std::to_string(first) + " " + std::to_string(server.num_events());
    for (const auto& run_ : added.runs) {
      line += " " + run_.agent + ":" + std::to_string(run_.seq) + "+" + std::to_string(run_.len);
    }
    line += "\n";
    (*store)->append("crash", first, std::move(added), [line, &out_mu](Status st) {
      if (!st.ok()) {
        std::fprintf(stderr, "append: %s\n", st.ToString().c_str());
        std::_Exit(1);
      }
      std::lock_guard<std::mutex> lock(out_mu);
      // write(2), not stdio: the line must be in the pipe before anything else happens.
      ssize_t n = ::write(1, line.data(), line.size());
      (void)n;
    });
    if (snapshots && rng.below(8) == 0) {
      (*store)->put_snapshot("crash", server.num_events(), codec::save(server), nullptr);
    }
    if (rng.below(5) == 0) {
      for (size_t k = 0; k < clients.size(); ++k) (void)clients[k].apply(server.ops_since(clients[k].version()));
    }
    if (step % 64 == 63) (void)(*store)->sync();  // bound the queue
  }
}
