#include "crdt/version.h"

#include <algorithm>
#include <cassert>

namespace tandem::crdt {

namespace {
auto find_entry(const std::vector<std::pair<std::string, uint32_t>>& v, std::string_view agent) {
  return std::lower_bound(v.begin(), v.end(), agent,
                          [](const auto& e, std::string_view a) { return std::string_view(e.first) < a; });
}
}  // namespace

uint32_t Version::next(std::string_view agent) const {
  auto it = find_entry(entries_, agent);
  return it != entries_.end() && it->first == agent ? it->second : 0;
}

void Version::advance(std::string_view agent, uint32_t next) {
  if (next == 0) return;
  auto it = find_entry(entries_, agent);
  if (it != entries_.end() && it->first == agent) {
    assert(next >= it->second);
    entries_[it - entries_.begin()].second = next;
  } else {
    entries_.insert(entries_.begin() + (it - entries_.begin()), {std::string(agent), next});
  }
}

bool Version::includes(const Version& other) const {
  for (const auto& [agent, n] : other.entries_) {
    if (next(agent) < n) return false;
  }
  return true;
}

void Version::merge(const Version& other) {
  for (const auto& [agent, n] : other.entries_) {
    if (next(agent) < n) advance(agent, n);
  }
}

uint64_t Version::total() const {
  uint64_t t = 0;
  for (const auto& e : entries_) t += e.second;
  return t;
}

std::string Version::ToString() const {
  std::string out = "{";
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (i) out += ", ";
    out += entries_[i].first;
    out += ":";
    out += std::to_string(entries_[i].second);
  }
  out += "}";
  return out;
}

}  // namespace tandem::crdt
