// `tandem history`, `tandem blame` and `tandem diff`: a document's past read offline from its log
// (SQLite file or PostgreSQL), as the HTTP API's /history, /blame and /diff answer it (--json
// prints exactly that JSON).
#include <cstdio>
#include <optional>
#include <string>

#include "cli.h"
#include "crdt/utf8.h"
#include "storage/store.h"
#include "store/history_json.h"

namespace tandem::cli {

namespace {

const char kWhere[] =
    "  The database: --db FILE (SQLite) or a PostgreSQL URI, else DIR/tandem.db (default ./data).\n"
    "  Points (--at, --from, --to): a number of logged operations (events, in the order the server\n"
    "  received them), a UTC time like 2026-11-28T17:00:00Z (what was logged by then), or the name\n"
    "  of a saved version.";

// A text on one line: newlines and tabs shown as \n and \t.
std::string one_line(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  return out;
}

// What a command reads: the document's history and its named versions.
struct Read {
  std::optional<store::LoggedHistory> h;
  std::vector<store::NamedVersion> versions;
};

// Opens the store and reads the document's history, or says why not (*code: the exit code).
bool open_history(Args& args, const char* cmd, std::string* doc, Read* out, int* code) {
  *doc = args.value("--doc");
  const auto db = database_of(args, true);
  if (!args.ok()) {
    *code = args.fail();
    return false;
  }
  if (!db.ok()) {
    *code = fail(db.status());
    return false;
  }
  if (doc->empty()) {
    *code = fail(std::string(cmd) + " needs --doc ID (see --help)");
    return false;
  }
  auto st = storage::open_store(*db, true);
  if (!st.ok()) {
    *code = fail(st.status());
    return false;
  }
  auto h = store::read_history(**st, *doc);
  auto v = h.ok() ? (*st)->versions(*doc) : h.status();
  if (!v.ok()) {
    *code = fail(v.status());
    return false;
  }
  out->h.emplace(std::move(*h));
  out->versions = std::move(*v);
  return true;
}

// --json: the HTTP API's answer.
int print_json(nlohmann::json j, const std::string& doc) {
  j["doc"] = doc;
  std::puts(j.dump().c_str());
  return 0;
}

bool point(const Read& r, const std::string& name, const std::string& text, uint64_t dflt, uint64_t* out, int* code) {
  if (text.empty()) {
    *out = dflt;
    return true;
  }
  crdt::Status st = store::history_point(*r.h, r.versions, name, text, out);
  if (st.ok()) return true;
  *code = fail(st.message());
  return false;
}

}  // namespace

int cmd_blame(Args& args) {
  if (args.help()) {
    std::printf(
        "usage: tandem blame [--data DIR | --db FILE|URI] --doc ID [--at POINT] [--json]\n"
        "  Who wrote each stretch of the text (now, or at POINT), and when it became durable: one\n"
        "  line per stretch, its time, its author and its text (newlines as \\n).\n%s\n",
        kWhere);
    return 0;
  }
  const std::string at_text = args.value("--at");
  const bool as_json = args.value("--json") == "1";
  std::string doc;
  Read r;
  int code = 0;
  uint64_t at = 0;
  if (!open_history(args, "blame", &doc, &r, &code) || !point(r, "--at", at_text, r.h->history.events(), &at, &code)) {
    return code;
  }
  const store::LoggedHistory& h = *r.h;
  auto j = store::blame_json(h, at);
  if (as_json) {
    return print_json(std::move(j), doc);
  }
  const std::string text = *h.history.text_at(at);
  size_t byte = 0;
  for (const auto& sp : j["spans"]) {
    const auto n = sp["to"].get<uint64_t>() - sp["from"].get<uint64_t>();
    const size_t len = crdt::utf8::byte_offset(std::string_view(text).substr(byte), n);
    std::printf("%s  %-20s %s\n", sp["time"].get<std::string>().c_str(), sp["agent"].get<std::string>().c_str(),
                one_line(text.substr(byte, len)).c_str());
    byte += len;
  }
  return 0;
}

int cmd_diff(Args& args) {
  if (args.help()) {
    std::printf(
        "usage: tandem diff [--data DIR | --db FILE|URI] --doc ID [--from POINT] [--to POINT] [--json]\n"
        "  The text at --to (default: now) against --from (default: the empty start): kept text as\n"
        "  it is, [-deleted-] and {+inserted+} text marked, then who made the changes.\n%s\n",
        kWhere);
    return 0;
  }
  const std::string from_text = args.value("--from"), to_text = args.value("--to");
  const bool as_json = args.value("--json") == "1";
  std::string doc;
  Read r;
  int code = 0;
  uint64_t from = 0, to = 0;
  if (!open_history(args, "diff", &doc, &r, &code) || !point(r, "--from", from_text, 0, &from, &code) ||
      !point(r, "--to", to_text, r.h->history.events(), &to, &code)) {
    return code;
  }
  const store::LoggedHistory& h = *r.h;
  auto j = store::diff_json(h, from, to);
  if (as_json) {
    return print_json(std::move(j), doc);
  }
  std::string out, who;
  for (const auto& r : j["runs"]) {
    const std::string kind = r["kind"], text = r["text"];
    out += kind == "kept" ? text : kind == "deleted" ? "[-" + text + "-]" : "{+" + text + "+}";
    if (kind == "kept") continue;
    for (const auto& a : r["agents"]) {
      const std::string line = (kind == "deleted" ? "deleted by " : "inserted by ") + a.get<std::string>() + "\n";
      if (who.find(line) == std::string::npos) who += line;
    }
  }
  std::fputs(out.c_str(), stdout);
  if (!out.empty() && out.back() != '\n') std::fputc('\n', stdout);
  std::fputs(who.c_str(), stderr);
  return 0;
}

int cmd_history(Args& args) {
  if (args.help()) {
    std::printf(
        "usage: tandem history [--data DIR | --db FILE|URI] --doc ID [--gap SECONDS] [--limit N] [--json]\n"
        "  The document's sessions, newest first: one author's edits close together in time (the\n"
        "  agent's name up to its first '/'; a pause of --gap seconds, default 300, starts a new one).\n"
        "  Each: its operations (from..to, points for blame and diff), when, who, and how many\n"
        "  characters it inserted and deleted and how many formatting changes it made. Named\n"
        "  versions come first, newest first.\n%s\n",
        kWhere);
    return 0;
  }
  const uint64_t gap = args.number("--gap", 300, 1, 86400ull * 365);
  const uint64_t limit = args.number("--limit", UINT64_MAX, 1);
  const bool as_json = args.value("--json") == "1";
  std::string doc;
  Read r;
  int code = 0;
  if (!open_history(args, "history", &doc, &r, &code)) return code;
  const store::LoggedHistory& h = *r.h;
  auto j = store::sessions_with_versions(h, r.versions, static_cast<int64_t>(gap) * 1000, limit, 0);
  if (as_json) {
    return print_json(std::move(j), doc);
  }
  for (const auto& v : j["versions"]) {
    std::printf("version \"%s\" at %llu  %s  %s\n", v["name"].get<std::string>().c_str(), v["events"].get<unsigned long long>(),
                v["time"].get<std::string>().c_str(), v["agent"].get<std::string>().c_str());
  }
  for (const auto& s : j["sessions"]) {
    std::string agents;
    for (const auto& a : s["agents"]) agents += (agents.empty() ? "" : ", ") + a.get<std::string>();
    std::printf("%llu..%llu  %s - %s  %s (%s)  +%llu -%llu ~%llu\n", s["from"].get<unsigned long long>(),
                s["to"].get<unsigned long long>(), s["first"].get<std::string>().c_str(),
                s["last"].get<std::string>().c_str(), s["author"].get<std::string>().c_str(), agents.c_str(),
                s["inserted"].get<unsigned long long>(), s["deleted"].get<unsigned long long>(),
                s["formatted"].get<unsigned long long>());
  }
  return 0;
}

}  // namespace tandem::cli
