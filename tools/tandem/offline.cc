// The offline subcommands: import, replay, export, inspect. They work on a database file alone
// (a running server may have it open: SQLite's WAL lets them read while it writes).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "render/render.h"
#include "cli.h"
#include "crdt/codec.h"
#include "crdt/doc.h"
#include "history.h"
#include "storage/store.h"
#include "store/history_json.h"
#include "trace.h"

namespace tandem::cli {

namespace codec = crdt::codec;
using crdt::Doc;
using crdt::OpBatch;
using crdt::Status;
using store::iso_time;
using store::parse_time;

namespace {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// A progress bar on stderr, only when it is a terminal and the work is long.
class ProgressBar {
 public:
  explicit ProgressBar(const char* what) : what_(what), on_(isatty(2)) {}
  void update(uint64_t done, uint64_t total) {
    if (!on_ || total < 10000 || (done - shown_ < total / 200 && done != total)) return;
    shown_ = done;
    const int width = 40;
    const int filled = static_cast<int>(width * done / total);
    std::fprintf(stderr, "\r%s [%.*s%*s] %llu/%llu", what_, filled, "########################################",
                 width - filled, "", static_cast<unsigned long long>(done), static_cast<unsigned long long>(total));
    if (done == total) std::fprintf(stderr, "\n");
  }

 private:
  const char* what_;
  bool on_;
  uint64_t shown_ = 0;
};

// The text exactly; on a terminal, a newline after a text that lacks one (else the shell's prompt
// would follow its last line).
void write_text(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (isatty(1) && (text.empty() || text.back() != '\n')) std::fputc('\n', stdout);
}

// Whether run `r` continues `p` (what one agent typed or deleted in one go): its next events,
// depending on p's last one only, of the same kind, where p's last one leaves the cursor.
bool continues(const crdt::OpRun& p, const crdt::OpRun& r) {
  // One deleted character is as much a Backspace as a Delete: the first Backspace of several.
  const bool first_backspace = p.kind == crdt::OpKind::kDeleteForward && p.len == 1 && r.kind == crdt::OpKind::kDeleteBackward;
  if (r.agent != p.agent || (r.kind != p.kind && !first_backspace) || r.seq != p.seq + p.len) return false;
  if (!(r.parents.size() == 1 && r.parents[0].agent == p.agent && r.parents[0].seq + 1 == r.seq)) return false;
  switch (r.kind) {
    case crdt::OpKind::kInsert:
    case crdt::OpKind::kInsertDeleted: return r.pos == p.pos + p.len;
    case crdt::OpKind::kDeleteForward: return r.pos == p.pos;
    case crdt::OpKind::kDeleteBackward: return p.pos >= p.len && r.pos == p.pos - p.len;  // (also after first_backspace)
    case crdt::OpKind::kMark:
    case crdt::OpKind::kBlock: return false;  // one event each
  }
  return false;
}

// Who wrote a document: by person (an agent "bob/phone" writes for bob, the subject of its
// token; one without '/' stands for itself), with their operations; every agent when `all`.
void print_agents(const std::vector<std::pair<std::string, uint64_t>>& agents, bool all) {
  struct Person {
    size_t agents = 0;
    uint64_t events = 0;
  };
  std::map<std::string, Person> people;
  for (const auto& [agent, events] : agents) {
    Person& p = people[std::string(tandem::store::author_of(agent))];
    ++p.agents;
    p.events += events;
  }
  std::vector<std::pair<std::string, Person>> by_events(people.begin(), people.end());
  std::stable_sort(by_events.begin(), by_events.end(), [](const auto& a, const auto& b) { return a.second.events > b.second.events; });
  std::printf("  written by   %zu agent%s:", agents.size(), agents.size() == 1 ? "" : "s");
  for (size_t i = 0; i < by_events.size() && i < 8; ++i) {
    const auto& [who, p] = by_events[i];
    std::printf("%s %s (%llu operation%s%s)", i ? "," : "", who.c_str(), static_cast<unsigned long long>(p.events),
                p.events == 1 ? "" : "s", p.agents > 1 ? (", " + std::to_string(p.agents) + " agents").c_str() : "");
  }
  std::printf("%s\n", by_events.size() > 8 ? ", ..." : "");
  if (!all) return;
  for (const auto& [agent, events] : agents) {
    std::printf("  agent        %s: %llu operation%s\n", agent.c_str(), static_cast<unsigned long long>(events),
                events == 1 ? "" : "s");
  }
}


}  // namespace

Result<std::string> database_of(Args& args, bool must_exist) {
  const std::string db = args.value("--db"), data = args.value("--data");
  if (!db.empty() && !data.empty()) return Status::InvalidArgument("give --db FILE or --data DIR, not both");
  if (!db.empty()) {
    if (must_exist && db.find("://") == std::string::npos && !std::filesystem::exists(db)) {
      return Status::NotFound("no database at " + db);
    }
    return db;
  }
  const std::string path = (std::filesystem::path(data.empty() ? "./data" : data) / "tandem.db").string();
  if (must_exist && !std::filesystem::exists(path)) {
    return Status::NotFound("no database at " + path +
                            " (give --data DIR, where tandem serve --data DIR keeps it, or --db FILE|URI)");
  }
  return path;
}

int cmd_import(Args& args) {
  if (args.help()) {
    std::puts(
        "usage: tandem import [--data DIR | --db FILE|URI] --doc ID TRACE.json[.gz] [--row-events N]\n"
        "  Loads an editing trace (the josephg/editing-traces format, as in ../shared/traces) as the\n"
        "  history of a new document: a server-side replica integrates every transaction in trace\n"
        "  order, its operations go to the log (N events per log row at most, default 1024), and\n"
        "  snapshots are taken by the default policy.\n"
        "  The database: --db FILE (SQLite) or a PostgreSQL URI, else DIR/tandem.db (default ./data,\n"
        "  where tandem serve keeps it).");
    return 0;
  }
  const std::string doc = args.value("--doc");
  history::ImportOptions options;
  options.row_events = std::max<uint64_t>(1, args.number("--row-events", options.row_events));
  const auto files = args.rest();
  const auto db = database_of(args, false);
  if (!args.ok()) return args.fail();
  if (!db.ok()) return fail(db.status());
  if (doc.empty() || files.size() != 1) return fail("import needs --doc ID and one trace file (see --help)");
  auto t = trace::load(files[0]);
  if (!t.ok()) return fail(t.status());
  if (db->find("://") == std::string::npos) {
    std::error_code ec;
    const auto dir = std::filesystem::path(*db).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (ec) return fail("cannot create " + dir.string() + ": " + ec.message());
  }
  auto store = storage::open_store(*db, false);
  if (!store.ok()) return fail(store.status());
  ProgressBar bar("importing");
  auto replica = history::import_trace(**store, doc, *t, options, [&bar](uint64_t d, uint64_t n) { bar.update(d, n); });
  if (!replica.ok()) return fail(replica.status());
  if (replica->text() != t->end_content) return fail("the replayed trace does not reach its endContent");
  std::printf("imported %s as '%s': %llu operations, %u characters\n", t->name.c_str(), doc.c_str(),
              static_cast<unsigned long long>(replica->num_events()), replica->length());
  return 0;
}

int cmd_replay(Args& args) {
  if (args.help()) {
    std::puts(
        "usage: tandem replay [--data DIR | --db FILE|URI] --doc ID [--at-op N | --at-time T] [--out FILE]\n"
        "  Rebuilds the document from its log alone (no snapshot) as it was after its first N\n"
        "  operations (events, in the order the server received them), or with what was logged up\n"
        "  to time T (milliseconds since 1970, or UTC like 2026-11-28T17:00:00), and prints the\n"
        "  text or writes it to FILE. Without --at-op or --at-time: the whole log. On a terminal a\n"
        "  newline follows a text that does not end with one; a file or a pipe gets the text exactly.\n"
        "  The database: --db FILE (SQLite) or a PostgreSQL URI, else DIR/tandem.db (default ./data).");
    return 0;
  }
  const std::string doc = args.value("--doc"), out = args.value("--out");
  const std::string at_time = args.value("--at-time");
  const uint64_t at_op = args.number("--at-op", UINT64_MAX);
  const auto db = database_of(args, true);
  if (!args.ok()) return args.fail();
  if (!db.ok()) return fail(db.status());
  if (doc.empty()) return fail("replay needs --doc ID (see --help)");
  int64_t until_ms = INT64_MAX;
  if (!at_time.empty() && !parse_time(at_time, &until_ms)) return fail("cannot read the time '" + at_time + "'");
  if (!at_time.empty() && at_op != UINT64_MAX) return fail("give --at-op or --at-time, not both");
  auto store = storage::open_store(*db, true);
  if (!store.ok()) return fail(store.status());
  ProgressBar bar("replaying");
  auto replica = tandem::store::replay(**store, doc, at_op, until_ms, [&bar](uint64_t d, uint64_t n) { bar.update(d, n); });
  if (!replica.ok()) return fail(replica.status());
  const std::string text = replica->text();
  if (out.empty()) {
    write_text(text);
  } else {
    std::ofstream f(out, std::ios::binary);
    f << text;
    if (!f) return fail("cannot write " + out);
  }
  return 0;
}

int cmd_export(Args& args) {
  if (args.help()) {
    std::puts(
        "usage: tandem export [--data DIR | --db FILE|URI] --doc ID [--format text|markdown|html|json]\n"
        "  text: the current text (from the newest snapshot and the log after it); on a terminal a\n"
        "    newline follows a text that does not end with one.\n"
        "  markdown, html: the current document with its formatting (headings, lists, quotes, code,\n"
        "    bold, italic, links...): CommonMark, or HTML in which no typed text is markup.\n"
        "    Formatting that Markdown lacks: underline and strike as <u> and <s>; comments left out.\n"
        "  json: the history, one operation run per line, in the order the server received them:\n"
        "    {\"id\":[agent,seq],\"parents\":[[agent,seq],...],\"time\":ISO-8601,\"until\":ISO-8601,\n"
        "     \"pos\":N,\"deleted\":N,\"direction\":\"forward\"|\"backward\",\"inserted\":TEXT or null}\n"
        "  A run is what one agent typed or deleted in one go (consecutive keystrokes join, also\n"
        "  when they were logged one by one; time and until: when its first and last were logged).\n"
        "  Inserts put TEXT at pos (null, with \"length\": the text was never received, only that it\n"
        "  was deleted); deletes remove N characters at pos (forward) or before and at pos\n"
        "  (backward, as Backspace).\n"
        "  The database: --db FILE (SQLite) or a PostgreSQL URI, else DIR/tandem.db (default ./data).");
    return 0;
  }
  const std::string doc = args.value("--doc"), format = args.value("--format", "text");
  const auto db = database_of(args, true);
  if (!args.ok()) return args.fail();
  if (!db.ok()) return fail(db.status());
  if (doc.empty()) return fail("export needs --doc ID (see --help)");
  if (format != "text" && format != "json" && format != "markdown" && format != "html") {
    return fail("--format is text, markdown, html or json");
  }
  auto store = storage::open_store(*db, true);
  if (!store.ok()) return fail(store.status());
  if (format != "json") {
    std::vector<std::string> warnings;
    auto replica = (*store)->load(doc, "tandem-export", &warnings);
    for (const auto& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    if (!replica.ok()) return fail(replica.status());
    if (format == "text") {
      write_text(replica->text());
    } else {
      const auto rich = render::read(*replica);
      write_text(format == "markdown" ? render::to_markdown(rich) : render::to_html(rich));
    }
    return 0;
  }
  auto rows = (*store)->read_log(doc, 0, UINT64_MAX);
  if (!rows.ok()) return fail(rows.status());
  // Runs joined where one continues another of its agent's (keystrokes logged one by one).
  struct Entry {
    crdt::OpRun run;
    int64_t first_ms, last_ms;
  };
  std::vector<Entry> entries;
  std::map<std::string, size_t> open;  // agent -> its entry that may go on
  for (const auto& row : *rows) {
    auto batch = codec::decode_ops_sequence(row.batch);
    if (!batch.ok()) return fail(batch.status().WithContext("log row at event " + std::to_string(row.first_event)));
    for (auto& r : batch->runs) {
      auto it = open.find(r.agent);
      if (it != open.end() && continues(entries[it->second].run, r)) {
        Entry& e = entries[it->second];
        e.run.kind = r.kind;
        e.run.len += r.len;
        e.run.content += r.content;
        e.last_ms = row.time_ms;
        continue;
      }
      open[r.agent] = entries.size();
      entries.push_back({std::move(r), row.time_ms, row.time_ms});
    }
  }
  auto append_id = [](std::string* out, const std::string& agent, uint32_t seq) {
    out->append("[");
    out->append(json_string(agent));
    out->append(",");
    out->append(std::to_string(seq));
    out->append("]");
  };
  for (const Entry& e : entries) {
    const crdt::OpRun& r = e.run;
    std::string line = "{\"id\":";
    append_id(&line, r.agent, r.seq);
    line += ",\"parents\":[";
    for (size_t i = 0; i < r.parents.size(); ++i) {
      if (i) line += ",";
      append_id(&line, r.parents[i].agent, r.parents[i].seq);
    }
    line += "],\"time\":" + json_string(iso_time(e.first_ms)) + ",\"until\":" + json_string(iso_time(e.last_ms));
    line += ",\"pos\":" + std::to_string(r.pos);
    if (crdt::IsFormat(r.kind)) {
      const crdt::Format& f = *r.format;
      line += r.kind == crdt::OpKind::kMark ? ",\"mark\":" : ",\"block\":";
      line += json_string(f.name) + ",\"value\":" + json_string(f.value);
      if (r.kind == crdt::OpKind::kMark) line += ",\"end\":" + std::to_string(f.end) + ",\"remove\":" + (f.remove ? "true" : "false");
      line += "}\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
      continue;
    }
    const bool ins = crdt::IsInsert(r.kind);
    line += ",\"deleted\":" + std::to_string(ins ? 0 : r.len);
    if (!ins) line += std::string(",\"direction\":\"") + (r.kind == crdt::OpKind::kDeleteForward ? "forward" : "backward") + "\"";
    line += ",\"inserted\":";
    line += r.kind == crdt::OpKind::kInsert ? json_string(r.content) : ins ? "null" : "\"\"";
    if (r.kind == crdt::OpKind::kInsertDeleted) line += ",\"length\":" + std::to_string(r.len);
    line += "}\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  return 0;
}

int cmd_inspect(Args& args) {
  if (args.help()) {
    std::puts(
        "usage: tandem inspect [--data DIR | --db FILE|URI] [--doc ID]\n"
        "  The documents in a database: operations, log rows and bytes, snapshots and their age,\n"
        "  agents, last change; with --doc, one document in detail (its text length too). Then\n"
        "  the database's check (SQLite's PRAGMA integrity_check; for PostgreSQL, every document\n"
        "  loaded and every node's head matched with its rows).\n"
        "  The database: --db FILE (SQLite) or a PostgreSQL URI shared by several servers\n"
        "  (postgresql://USER:PASS@HOST:PORT/DB), else DIR/tandem.db (default ./data).");
    return 0;
  }
  const std::string doc = args.value("--doc");
  const auto db = database_of(args, true);
  if (!args.ok()) return args.fail();
  if (!db.ok()) return fail(db.status());
  auto store = storage::open_store(*db, true);
  if (!store.ok()) return fail(store.status());
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auto age = [now](int64_t ms) {
    const int64_t s = (now - ms) / 1000;
    return s < 120 ? std::to_string(s) + " s" : s < 7200 ? std::to_string(s / 60) + " min" : std::to_string(s / 3600) + " h";
  };
  std::vector<tandem::store::DocInfo> docs;
  if (doc.empty()) {
    auto all = (*store)->list();
    if (!all.ok()) return fail(all.status());
    docs = std::move(*all);
  } else {
    auto one = (*store)->info(doc);
    if (!one.ok()) return fail(one.status());
    docs.push_back(std::move(*one));
  }
  std::printf("%s: %zu document%s\n", db->c_str(), docs.size(), docs.size() == 1 ? "" : "s");
  for (const auto& d : docs) {
    std::printf("\n%s\n  operations   %llu in %llu log rows, %llu bytes\n", d.name.c_str(),
                static_cast<unsigned long long>(d.events), static_cast<unsigned long long>(d.log_rows),
                static_cast<unsigned long long>(d.log_bytes));
    if (d.snapshots) {
      std::printf("  snapshots    %u, newest covers %llu operations, %llu bytes, %s old\n", d.snapshots,
                  static_cast<unsigned long long>(d.snapshot_events), static_cast<unsigned long long>(d.snapshot_bytes),
                  age(d.snapshot_ms).c_str());
    } else {
      std::printf("  snapshots    none\n");
    }
    std::printf("  created      %s\n  last change  %s (%s ago)\n", iso_time(d.created_ms).c_str(),
                iso_time(d.updated_ms).c_str(), age(d.updated_ms).c_str());
    print_agents(d.agents, !doc.empty());
    if (!doc.empty()) {
      std::vector<std::string> warnings;
      auto replica = (*store)->load(d.name, "tandem-inspect", &warnings);
      for (const auto& w : warnings) std::printf("  warning      %s\n", w.c_str());
      if (replica.ok()) {
        std::printf("  text         %u characters, %zu bytes\n", replica->length(), replica->length_bytes());
      } else {
        std::printf("  text         cannot be loaded: %s\n", replica.status().message().c_str());
      }
      auto snaps = (*store)->snapshots(d.name);
      if (snaps.ok()) {
        for (const auto& s : *snaps) {
          std::printf("  snapshot     at %llu operations, %llu bytes, %s\n", static_cast<unsigned long long>(s.events),
                      static_cast<unsigned long long>(s.bytes), iso_time(s.time_ms).c_str());
        }
      }
    }
  }
  auto check = (*store)->integrity_check();
  if (!check.ok()) return fail(check.status());
  std::printf("\nintegrity_check: %s\n", check->c_str());
  return *check == "ok" ? 0 : 1;
}

}  // namespace tandem::cli
