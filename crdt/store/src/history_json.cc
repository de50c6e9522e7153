#include "store/history_json.h"

#include <cctype>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "crdt/utf8.h"

namespace tandem::store {

using json = nlohmann::json;

namespace {

json time_fields(json j, const char* key, int64_t ms) {
  j[key] = iso_time(ms);
  j[std::string(key) + "_ms"] = ms;
  return j;
}

// Reads `n` digits at s[*at] into *v.
bool digits(const std::string& s, size_t* at, int n, int* v) {
  if (*at + static_cast<size_t>(n) > s.size()) return false;
  *v = 0;
  for (int i = 0; i < n; ++i) {
    const char c = s[*at + static_cast<size_t>(i)];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    *v = *v * 10 + (c - '0');
  }
  *at += static_cast<size_t>(n);
  return true;
}

bool take(const std::string& s, size_t* at, char c) {
  if (*at < s.size() && s[*at] == c) {
    ++*at;
    return true;
  }
  return false;
}

}  // namespace

std::string iso_time(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler can imagine in each field
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

bool parse_time(const std::string& s, int64_t* ms) {
  if (!s.empty() && s.size() <= 15 && s.find_first_not_of("0123456789") == std::string::npos) {
    *ms = std::stoll(s);
    return true;
  }
  std::tm tm{};
  int frac = 0;
  size_t at = 0;
  if (!digits(s, &at, 4, &tm.tm_year) || !take(s, &at, '-') || !digits(s, &at, 2, &tm.tm_mon) || !take(s, &at, '-') ||
      !digits(s, &at, 2, &tm.tm_mday)) {
    return false;
  }
  if (take(s, &at, 'T')) {
    if (!digits(s, &at, 2, &tm.tm_hour) || !take(s, &at, ':') || !digits(s, &at, 2, &tm.tm_min)) return false;
    if (take(s, &at, ':')) {
      if (!digits(s, &at, 2, &tm.tm_sec)) return false;
      if (take(s, &at, '.') && !digits(s, &at, 3, &frac)) return false;
    }
  }
  take(s, &at, 'Z');
  if (at != s.size() || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60) {
    return false;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *ms = static_cast<int64_t>(timegm(&tm)) * 1000 + frac;
  return true;
}

std::string colons_decoded(const std::string& raw) {
  std::string text;
  for (size_t i = 0; i < raw.size();) {
    const bool colon = raw.compare(i, 3, "%3A") == 0;
    text.push_back(colon ? ':' : raw[i]);
    i += colon ? 3 : 1;
  }
  return text;
}

namespace {

bool all_digits(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }
// A time, by its form: digits and a "T" (what parse_time reads, or a mistyped one).
bool time_like(const std::string& s) {
  return s.size() >= 10 && std::isdigit(static_cast<unsigned char>(s[0])) && s.find('T') != std::string::npos &&
         s.find_first_not_of("0123456789-T:.Z") == std::string::npos;
}

}  // namespace

Status history_point(const LoggedHistory& h, const std::vector<NamedVersion>& versions, const std::string& name,
                     const std::string& raw, uint64_t* out) {
  // (A stream: GCC 12 warns falsely on "'" + std::string here.)
  auto said = [&](std::string_view what) {
    std::ostringstream m;
    m << "'" << name << "' " << what;
    return m.str();
  };
  for (const auto& v : versions) {
    if (v.name == raw) {
      auto e = h.at_logged(v.events);
      if (!e.ok()) return Status::OutOfRange(said("names a version past the end: " + e.status().message()));
      *out = *e;
      return Status::OK();
    }
  }
  const std::string text = colons_decoded(raw);
  if (all_digits(text)) {
    auto e = text.size() <= 18 ? h.at_logged(std::stoull(text)) : Result<uint64_t>(Status::OutOfRange("too large"));
    if (!e.ok()) return Status::OutOfRange(said("is past the end: " + e.status().message()));
    *out = *e;
    return Status::OK();
  }
  int64_t ms = 0;
  if (time_like(text)) {
    if (!parse_time(text, &ms)) return Status::InvalidArgument(said("is not a UTC time like 2026-11-29T19:30:00Z"));
    *out = h.until(ms);
    return Status::OK();
  }
  return Status::NotFound(said("is no version's name (nor a number of logged events, nor a UTC time like 2026-11-29T19:30:00Z)"));
}

Status check_version_name(const std::string& name) {
  if (name.empty() || name.size() > 128) return Status::InvalidArgument("a version's name is 1 to 128 bytes");
  if (!crdt::utf8::inspect(name).ok()) return Status::InvalidArgument("a version's name is UTF-8");
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return Status::InvalidArgument("a version's name has no control characters");
  }
  if (all_digits(name) || time_like(colons_decoded(name))) {
    return Status::InvalidArgument("a version's name must not read as a number of events or a time: '" + name + "'");
  }
  return Status::OK();
}

json version_json(const NamedVersion& v) {
  return time_fields({{"name", v.name}, {"events", v.events}, {"agent", v.agent}}, "time", v.time_ms);
}

uint64_t logged_of(const LoggedHistory& h, uint64_t events) {
  for (const auto& r : h.rows) {
    if (r.events >= events) return r.logged_end - (r.events - events);
  }
  return h.logged();
}

json blame_json(const LoggedHistory& h, uint64_t at) {
  auto blame = h.history.blame(at);
  json spans = json::array();
  uint32_t length = 0;
  for (const auto& b : blame.ok() ? *blame : std::vector<crdt::BlameSpan>{}) {
    // A span of consecutive events can cross rows, and so times.
    for (uint32_t from = b.from; from < b.to;) {
      const uint64_t event = b.event + (from - b.from);
      const uint32_t to = static_cast<uint32_t>(std::min<uint64_t>(b.to, from + (h.row_end(event) - event)));
      const int64_t t = h.time_of(event);
      if (!spans.empty() && spans.back()["to"] == from && spans.back()["agent"] == b.agent && spans.back()["time_ms"] == t) {
        spans.back()["to"] = to;
      } else {
        spans.push_back(time_fields({{"from", from}, {"to", to}, {"agent", b.agent}}, "time", t));
      }
      from = to;
    }
    length = b.to;
  }
  return {{"events", logged_of(h, at)}, {"length", length}, {"spans", std::move(spans)}};
}

json diff_json(const LoggedHistory& h, uint64_t from, uint64_t to) {
  json runs = json::array();
  auto d = h.history.diff(from, to);
  for (const auto& r : d.ok() ? *d : std::vector<crdt::DiffRun>{}) {
    runs.push_back({{"kind", crdt::DiffKindName(r.kind)}, {"text", r.text}, {"agents", r.agents}});
  }
  return {{"from", logged_of(h, from)}, {"to", logged_of(h, to)}, {"runs", std::move(runs)}};
}

json sessions_json(const LoggedHistory& h, int64_t gap_ms, uint64_t limit, uint64_t offset) {
  const auto sessions = h.sessions(gap_ms);
  json list = json::array();
  const uint64_t n = sessions.size();
  const json next = offset < n && n - offset > limit ? json(offset + limit) : json(nullptr);
  for (auto it = sessions.rbegin() + static_cast<std::ptrdiff_t>(std::min(offset, n)); it != sessions.rend(); ++it) {
    if (list.size() == limit) break;
    json s = {{"from", it->from}, {"to", it->to}, {"author", it->author}, {"agents", it->agents},
              {"inserted", it->inserted}, {"deleted", it->deleted}, {"formatted", it->formatted}};
    s = time_fields(std::move(s), "first", it->first_ms);
    list.push_back(time_fields(std::move(s), "last", it->last_ms));
  }
  return {{"events", h.logged()}, {"sessions", std::move(list)}, {"next", next}};
}

json sessions_with_versions(const LoggedHistory& h, const std::vector<NamedVersion>& versions, int64_t gap_ms,
                            uint64_t limit, uint64_t offset) {
  json out = sessions_json(h, gap_ms, limit, offset);
  json list = json::array();
  for (const auto& v : versions) list.push_back(version_json(v));
  out["versions"] = std::move(list);
  return out;
}

}  // namespace tandem::store
