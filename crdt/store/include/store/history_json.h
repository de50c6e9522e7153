// A document's history (store::LoggedHistory) as the JSON the HTTP API answers and `tandem
// blame|diff|history --json` prints (docs/http-api.md, "History"), and the times both read.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "store/replay.h"

namespace tandem::store {

// "2026-11-29T19:30:00.000Z" for ms since 1970.
std::string iso_time(int64_t ms);
// ms since 1970 from digits, or from UTC "YYYY-MM-DD", optionally followed by "THH:MM",
// ":SS", ".fff" and "Z". False for anything else.
bool parse_time(const std::string& s, int64_t* ms);

// A time from a URL's query, where ':' may come as "%3A".
std::string colons_decoded(const std::string& raw);

// A point of the history from a user's text: digits are a count of logged events, a UTC time
// (with its "T") the rows committed by then ("%3A" reads as ":"), anything else the name of one
// of `versions`. Errors, their message naming `name`: OutOfRange past the log's end, NotFound
// for a name no version has, InvalidArgument for a time that does not read as one.
Status history_point(const LoggedHistory& h, const std::vector<NamedVersion>& versions, const std::string& name,
                     const std::string& text, uint64_t* out);
// Why `name` cannot name a version (InvalidArgument), or OK: 1 to 128 bytes of UTF-8 without
// control characters, and not readable as another point (digits, or a time with its "T").
Status check_version_name(const std::string& name);
// {"name", "events", "time", "time_ms", "agent"}.
nlohmann::json version_json(const NamedVersion& v);
// The logged events of the history's point `events`.
uint64_t logged_of(const LoggedHistory& h, uint64_t events);

// {"events", "length", "spans": [{"from", "to", "agent", "time", "time_ms"}]}: the text at `at`,
// each stretch with its author and when its edit became durable.
nlohmann::json blame_json(const LoggedHistory& h, uint64_t at);
// {"from", "to", "runs": [{"kind", "text", "agents"}]}.
nlohmann::json diff_json(const LoggedHistory& h, uint64_t from, uint64_t to);
// {"events", "sessions": [...], "next"}: sessions newest first, `limit` of them after the newest
// `offset`; next: the offset of the following page, or null after the last.
nlohmann::json sessions_json(const LoggedHistory& h, int64_t gap_ms, uint64_t limit, uint64_t offset);
// The same with "versions": every named version (version_json), newest first.
nlohmann::json sessions_with_versions(const LoggedHistory& h, const std::vector<NamedVersion>& versions, int64_t gap_ms,
                                      uint64_t limit, uint64_t offset);

}  // namespace tandem::store
