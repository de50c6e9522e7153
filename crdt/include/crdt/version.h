// Version: what a replica has seen, as a version vector.
//
// Every operation has an id (agent, seq); each agent numbers its operations 0, 1, 2, ... and a
// replica only ever holds a prefix of each agent's operations (operations wait until the ones
// before them have arrived). So "what I have" is, per agent, how many of its operations I hold:
// `next(agent)`, the seq of the first one I lack. Agents absent from the vector have 0.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::crdt {

// Agent names are 1..kMaxAgentBytes bytes of UTF-8 (checked where they enter: Doc and the codec).
inline constexpr size_t kMaxAgentBytes = 64;

struct OpId {
  std::string agent;
  uint32_t seq = 0;
  bool operator==(const OpId&) const = default;
  // Spelled out: the libc++ of the WebAssembly toolchain has no <=> for std::string.
  bool operator<(const OpId& o) const { return agent != o.agent ? agent < o.agent : seq < o.seq; }
};

class Version {
 public:
  Version() = default;

  // Number of operations of `agent` held (the next seq expected from it).
  uint32_t next(std::string_view agent) const;
  // REQUIRES: next is not smaller than the current value (versions only grow).
  void advance(std::string_view agent, uint32_t next);
  bool contains(const OpId& id) const { return id.seq < next(id.agent); }
  // True if every operation in `other` is also in this version.
  bool includes(const Version& other) const;
  // Pointwise maximum.
  void merge(const Version& other);
  bool empty() const { return entries_.empty(); }
  // Sorted by agent name, no zero entries.
  const std::vector<std::pair<std::string, uint32_t>>& entries() const { return entries_; }
  // Total number of operations covered.
  uint64_t total() const;
  std::string ToString() const;

  bool operator==(const Version&) const = default;

 private:
  std::vector<std::pair<std::string, uint32_t>> entries_;
};

}  // namespace tandem::crdt
