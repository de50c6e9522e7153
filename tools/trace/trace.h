// Editing traces in the josephg/editing-traces JSON format (see ../shared/traces/FORMAT.md):
// sequential traces (txns applied in order) and concurrent ones (txns with agents and parents).
// Files may be gzip-compressed. Positions are Unicode code points.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "crdt/status.h"

namespace tandem::trace {

struct Patch {
  uint32_t pos = 0;
  uint32_t del = 0;
  std::string ins;  // UTF-8
};

// Rich traces (bench/traces/README.md): a mark on [from, to), or the type of the block holding
// `from`, in the engine's terms (crdt/format.h): value "true", an href, a comment id, a level...
struct Format {
  bool mark = true;
  uint32_t from = 0;
  uint32_t to = 0;
  std::string name;
  std::string value;
  bool remove = false;
};

struct Txn {
  uint32_t agent = 0;
  std::vector<uint32_t> parents;  // indexes of earlier txns (concurrent traces only)
  std::vector<Patch> patches;
  std::vector<Format> formats;    // applied after the patches
};

struct Trace {
  std::string name;  // file name without directories and extensions
  bool concurrent = false;
  uint32_t num_agents = 1;
  std::string end_content;
  std::vector<Txn> txns;
  uint64_t num_patches = 0;
  uint64_t num_formats = 0;
};

// The same trace without its formatting (a rich trace's plain twin).
void strip_formats(Trace* t);

// Reads and validates a trace file (gzip or plain JSON).
crdt::Result<Trace> load(const std::string& path);

// The folder holding the shared traces: $TANDEM_TRACES, else ../shared/traces next to the source
// tree. Empty if neither exists.
std::string traces_dir();
// Every *.json.gz / *.json file in `dir` and its concurrent/ subfolder, sorted.
std::vector<std::string> list_traces(const std::string& dir);

}  // namespace tandem::trace
