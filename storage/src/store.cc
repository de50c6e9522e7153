#include "storage/store.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "crdt/codec.h"
#include "crdt/varint.h"
#include "crdt/utf8.h"
#include "blob.h"
#include "tail.h"
#include "sqlite/sqlite.h"
#include "writer.h"

namespace tandem::storage {

namespace codec = crdt::codec;
using store::DocInfo;
using store::LogRow;
using store::SnapshotInfo;
using sqlite::Database;
using sqlite::Statement;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string num(uint64_t v) { return std::to_string(v); }

// Schema migrations: kMigrations[v] takes a database from schema v to v + 1.
const char* const kMigrations[] = {
    // v0 -> v1
    "CREATE TABLE documents ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  events INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    // A rowid table: rows of a few hundred bytes to kilobytes pack into its pages far better
    // than into a WITHOUT ROWID b-tree (measured: half of such pages were left empty).
    "CREATE TABLE log ("
    "  id INTEGER PRIMARY KEY,"
    "  doc INTEGER NOT NULL,"
    "  first_event INTEGER NOT NULL,"
    "  end_event INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  batch BLOB NOT NULL,"
    "  UNIQUE (doc, first_event));"
    "CREATE TABLE snapshots ("
    "  id INTEGER PRIMARY KEY,"
    "  doc INTEGER NOT NULL,"
    "  events INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  UNIQUE (doc, events));"
    "CREATE TABLE agents ("
    "  doc INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  events INTEGER NOT NULL,"
    "  PRIMARY KEY (doc, name)) WITHOUT ROWID;",
    // v1 -> v2: the journal (see "the journal" below); its rows are appends not yet in the log.
    "CREATE TABLE journal ("
    "  id INTEGER PRIMARY KEY,"
    "  data BLOB NOT NULL);",
    // v2 -> v3: named versions (DocStore::put_version). Read-only opening takes schema 2 too:
    // such a file has no names.
    "CREATE TABLE versions ("
    "  doc INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  events INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  agent TEXT NOT NULL,"
    "  PRIMARY KEY (doc, name)) WITHOUT ROWID;",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion);

char hex_digit(int v) { return "0123456789abcdef"[v & 15]; }

std::string hex32(int64_t v) {
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) s += hex_digit(static_cast<int>(v >> shift));
  return s;
}

// Opens the file and brings its schema up to date (unless read-only).
Result<std::unique_ptr<Database>> open_database(const StoreOptions& o, bool migrate) {
  auto db = Database::open(o.path, o.read_only, o.vfs);
  if (!db.ok()) return db.status();
  Database& d = **db;
  TANDEM_RETURN_IF_ERROR(d.exec("PRAGMA busy_timeout = 10000"));
  auto app = d.query_int("PRAGMA application_id");
  if (!app.ok()) {
    if (app.status().code() == Status::Code::kCorruption) {
      return Status::Corruption(o.path + " is not a Tandem database (not even an SQLite file)");
    }
    return app.status();
  }
  auto version = d.query_int("PRAGMA user_version");
  if (!version.ok()) return version.status();
  auto tables = d.query_int("SELECT count(*) FROM sqlite_schema");
  if (!tables.ok()) return tables.status();
  if (*app != kApplicationId && !(*app == 0 && *version == 0 && *tables == 0)) {
    return Status::Corruption(o.path + " is not a Tandem database (application_id " + hex32(*app) + ", " +
                              num(static_cast<uint64_t>(*tables)) + " tables)");
  }
  if (*version > kSchemaVersion) {
    return Status::NotSupported(o.path + " was written by a newer Tandem (schema " + num(static_cast<uint64_t>(*version)) +
                                "; this build reads schemas up to " + num(kSchemaVersion) + ")");
  }
  if (o.read_only) {
    if (*version < kSchemaVersion - 1) {
      return Status::NotSupported(o.path + " needs a schema upgrade (" + num(static_cast<uint64_t>(*version)) + " to " +
                                  num(kSchemaVersion) + "); open it read-write once");
    }
    return db;
  }
  if (migrate && *version == 0 && *tables == 0) {
    // Pages freed by pruned snapshots go back to the file system (see incremental_vacuum); this
    // must be chosen before the file is initialised, which switching to WAL does.
    TANDEM_RETURN_IF_ERROR(d.exec("PRAGMA auto_vacuum = INCREMENTAL"));
  }
  // WAL: readers never block the writer, and a commit appends to one file.
  auto mode = d.prepare("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  auto row = (*mode)->step();
  if (!row.ok()) return row.status();
  if (!*row || (*mode)->text(0) != "wal") return Status::IOError(o.path + ": cannot switch to WAL mode");
  // The switch reports "wal" before it has rewritten the file's header; a failure to do that
  // (a write or sync error) only shows on the next step.
  auto end = (*mode)->step();
  if (!end.ok()) return end.status().WithContext(o.path + ": cannot switch to WAL mode");
  mode->reset();
  // FULL syncs the WAL at every commit: an acknowledged batch survives power loss. NORMAL syncs
  // only at checkpoints, trading the last commits before a power loss for throughput.
  TANDEM_RETURN_IF_ERROR(d.exec(o.durability == Durability::kFull ? "PRAGMA synchronous = FULL"
                                                                   : "PRAGMA synchronous = NORMAL"));
  // Checkpoint (copy the WAL into the file, and sync it) every 4,000 pages (16 MB) rather than
  // SQLite's 1,000: under many small commits the checkpoints were most of the writer's time.
  TANDEM_RETURN_IF_ERROR(d.exec("PRAGMA wal_autocheckpoint = 4000"));
  if (o.max_pages) TANDEM_RETURN_IF_ERROR(d.exec("PRAGMA max_page_count = " + num(o.max_pages)));
  if (migrate && *version < kSchemaVersion) {
    sqlite::Transaction txn(&d);
    TANDEM_RETURN_IF_ERROR(txn.begun());
    for (int64_t v = *version; v < kSchemaVersion; ++v) {
      TANDEM_RETURN_IF_ERROR(d.exec(kMigrations[v]).WithContext("migrating " + o.path + " to schema " + num(v + 1)));
    }
    TANDEM_RETURN_IF_ERROR(d.exec("PRAGMA user_version = " + num(kSchemaVersion)));
    TANDEM_RETURN_IF_ERROR(d.exec("PRAGMA application_id = " + std::to_string(kApplicationId)));
    TANDEM_RETURN_IF_ERROR(txn.commit());
  }
  return db;
}

using AgentCounts = std::vector<std::pair<std::string, uint64_t>>;

void add_agent(AgentCounts* counts, std::string_view agent, uint64_t n) {
  for (auto& [name, events] : *counts) {
    if (name == agent) {
      events += n;
      return;
    }
  }
  counts->emplace_back(agent, n);
}

}  // namespace

// ---- the journal ----
//
// A commit writes one journal row holding every append of its group (for all documents), so
// that its cost does not grow with the number of documents it touches: with a row per document
// in the log table, each document's index page was written at every commit, and a commit
// touching a few dozen documents wrote a few dozen pages. About once a second (and at snapshots,
// removals and close) the writer folds the journal into the log: one log row per document for
// all its entries, one update of its statistics, and the journal rows deleted, in one commit.
// Readers see the log plus the journal's entries for the document, in one read transaction.
//
// A journal row is pack_blob of entries, each: doc id, first event, end event, time (ms), batch
// length, all LEB128, then the encoded batch.

struct JournalEntry {
  int64_t doc = 0;
  uint64_t first = 0;
  uint64_t end = 0;
  int64_t time_ms = 0;
  std::string batch;   // one or more codec::encode_ops outputs, one after the other
  AgentCounts agents;  // events per agent in the batch
};

namespace {

using codec::put_varint;

std::string encode_journal(const std::vector<JournalEntry>& entries) {
  std::string raw;
  for (const auto& e : entries) {
    put_varint(&raw, static_cast<uint64_t>(e.doc));
    put_varint(&raw, e.first);
    put_varint(&raw, e.end);
    put_varint(&raw, static_cast<uint64_t>(e.time_ms));
    put_varint(&raw, e.batch.size());
    raw.append(e.batch);
  }
  // Not compressed: a journal row lives a second, and is read back rarely.
  return raw;
}

// Appends the entries of one stored journal row (of document `only`, or all when it is 0) to
// *out; with `count_agents`, each entry's agents too (its batch decoded).
Status decode_journal(std::string_view in, int64_t only, bool count_agents, std::vector<JournalEntry>* out) {
  while (!in.empty()) {
    uint64_t doc, first, end, time, len;
    codec::VarintReader r(in);
    if (!r.read(&doc) || !r.read(&first) || !r.read(&end) || !r.read(&time) || !r.read(&len) || len > r.remaining() ||
        end < first) {
      return Status::Corruption("journal row is malformed");
    }
    in = r.rest();
    const std::string_view batch = in.substr(0, len);
    in.remove_prefix(len);
    if (only != 0 && static_cast<int64_t>(doc) != only) continue;
    JournalEntry e{static_cast<int64_t>(doc), first, end, static_cast<int64_t>(time), std::string(batch), {}};
    if (count_agents) {
      auto ops = codec::decode_ops_sequence(batch);  // (an entry joins the batches of its row's appends)
      if (!ops.ok()) return ops.status().WithContext("journal entry");
      for (const auto& r : ops->runs) add_agent(&e.agents, r.agent, r.len);
    }
    out->push_back(std::move(e));
  }
  return Status::OK();
}

// Every journal entry (of document `only`, or all when it is 0), oldest first.
Status read_journal(Database& db, int64_t only, bool count_agents, std::vector<JournalEntry>* out, int64_t* last_id = nullptr) {
  auto q = db.cached("SELECT id, data FROM journal ORDER BY id");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  for (;;) {
    auto row = (*q)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (last_id) *last_id = (*q)->int64(0);
    TANDEM_RETURN_IF_ERROR(decode_journal((*q)->blob(1), only, count_agents, out));
  }
  return Status::OK();
}

// The end of a document's log table (without the journal).
Result<uint64_t> log_table_end(Database& db, int64_t doc) {
  auto q = db.cached("SELECT end_event FROM log WHERE doc = ?1 ORDER BY first_event DESC LIMIT 1");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind(1, doc);
  auto row = (*q)->step();
  if (!row.ok()) return row.status();
  return *row ? static_cast<uint64_t>((*q)->int64(0)) : 0;
}

}  // namespace

class SqliteStore final : public WriterStore<Store> {
 public:
  SqliteStore(const StoreOptions& o, std::unique_ptr<Database> writer, std::unique_ptr<Database> reader)
      : WriterStore<Store>(o.path, o.read_only, o.commit_interval),
        options(o),
        writer_db(std::move(writer)),
        reader_db(std::move(reader)) {
    writer_.start(this);
  }
  // Commits everything queued and folds the journal, then closes.
  ~SqliteStore() override { writer_.stop(); }

  Result<crdt::Doc> load(std::string_view doc, std::string_view agent, std::vector<std::string>* warnings) override;
  Result<uint64_t> logged_events(std::string_view doc) override;
  Result<std::vector<LogRow>> read_log(std::string_view doc, uint64_t from_event, uint64_t to_event) override;
  Result<std::vector<SnapshotInfo>> snapshots(std::string_view doc) override;
  Result<std::vector<store::NamedVersion>> versions(std::string_view doc) override;
  Result<std::vector<DocInfo>> list() override;
  Result<DocInfo> info(std::string_view doc) override;
  // PRAGMA integrity_check.
  Result<std::string> integrity_check() override;
  const std::string& path() const override { return options.path; }

 private:
  Status commit(std::vector<Write>& group, const std::vector<Row>& rows, std::vector<Status>* results) override;
  // An idle writer folds the journal once it is due, so that readers find it short; and on closing.
  std::optional<std::chrono::steady_clock::time_point> idle_due() override {
    if (!journal.empty() && !journal_stale) return journal_since + kFoldEvery;
    return std::nullopt;
  }
  void idle() override;

  const StoreOptions options;
  std::unique_ptr<Database> writer_db;  // writer thread only
  std::unique_ptr<Database> reader_db;  // under reader_mu
  std::mutex reader_mu;

  // The writer's view of each document it has touched: its row id and how many events its log
  // and the journal hold. Appends are checked against it in memory; it is dropped whenever a
  // commit fails.
  struct DocState {
    int64_t id = 0;
    uint64_t events = 0;   // committed
    uint64_t pending = 0;  // including this group's appends
  };
  std::unordered_map<std::string, DocState> docs;  // writer thread only

  // The journal's entries, as in its table (writer thread only; reloaded after a failed commit).
  std::vector<JournalEntry> journal;
  size_t journal_bytes = 0;
  std::chrono::steady_clock::time_point journal_since;  // when its oldest entry was written
  bool journal_stale = true;
  static constexpr std::chrono::seconds kFoldEvery{1};
  static constexpr size_t kFoldBytes = size_t{4} << 20;

  // Validation failures are returned in *item_error with OK; SQL failures (which fail the whole
  // commit) as the result. An append writes its row's entry (`row`: the row's writes) to *entries.
  Status do_item(Write& item, const std::vector<Write*>& row, std::vector<JournalEntry>* entries, Status* item_error);
  Result<DocState*> doc_state(const std::string& name, bool create);
  Status load_journal();
  // Moves the journal's entries and `entries` into the log table, one row per document (per run
  // of consecutive entries), updates those documents' statistics, and empties the journal table.
  Status fold(std::vector<JournalEntry>& entries);
  bool folded_ = false;  // by the transaction being built
};

Status SqliteStore::load_journal() {
  journal.clear();
  journal_bytes = 0;
  TANDEM_RETURN_IF_ERROR(read_journal(*writer_db, 0, true, &journal));
  for (const auto& e : journal) journal_bytes += e.batch.size();
  journal_since = std::chrono::steady_clock::now();
  journal_stale = false;
  return Status::OK();
}

Result<SqliteStore::DocState*> SqliteStore::doc_state(const std::string& name, bool create) {
  auto it = docs.find(name);
  if (it != docs.end()) return &it->second;
  Database& db = *writer_db;
  auto q = db.cached("SELECT id FROM documents WHERE name = ?1");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind_text(1, name);
  auto row = (*q)->step();
  if (!row.ok()) return row.status();
  DocState st;
  if (*row) {
    st.id = (*q)->int64(0);
    (*q)->reset();
    auto logged = log_table_end(db, st.id);
    if (!logged.ok()) return logged.status();
    st.events = *logged;
    for (const auto& e : journal) {
      if (e.doc == st.id) st.events = std::max(st.events, e.end);
    }
    st.pending = st.events;
  } else {
    if (!create) return nullptr;
    auto ins = db.cached("INSERT INTO documents(name, events, created_ms, updated_ms) VALUES (?1, 0, ?2, ?2)");
    if (!ins.ok()) return ins.status();
    sqlite::ScopedReset reset_ins(*ins);
    (*ins)->bind_text(1, name).bind(2, now_ms());
    TANDEM_RETURN_IF_ERROR((*ins)->run());
    st.id = db.last_insert_rowid();
  }
  return &docs.emplace(name, std::move(st)).first->second;
}

Status SqliteStore::do_item(Write& item, const std::vector<Write*>& rows, std::vector<JournalEntry>* entries,
                            Status* item_error) {
  Database& db = *writer_db;
  switch (item.kind) {
    case Write::kAppend: {
      auto ds = doc_state(item.doc, true);
      if (!ds.ok()) return ds.status();
      DocState& d = **ds;
      if (item.first != d.pending) {
        *item_error = Status::InvalidArgument("append to '" + item.doc + "' starts at event " + num(item.first) +
                                              " but its log holds " + num(d.pending) + " events");
        return Status::OK();
      }
      JournalEntry e;
      e.doc = d.id;
      e.first = item.first;
      e.end = rows.back()->end;
      e.time_ms = now_ms();
      // The batches one after the other, as given (codec::decode_ops_sequence reads them).
      for (Write* r : rows) {
        for (const auto& [agent, n] : r->batch.agents) add_agent(&e.agents, agent, n);
        e.batch.append(r->batch.bytes);
      }
      d.pending = e.end;
      entries->push_back(std::move(e));
      return Status::OK();
    }
    case Write::kSnapshot: {
      auto ds = doc_state(item.doc, false);
      if (!ds.ok()) return ds.status();
      if (!*ds) {
        *item_error = Status::NotFound("no document '" + item.doc + "'");
        return Status::OK();
      }
      DocState& d = **ds;
      if (item.first > d.pending) {
        *item_error = Status::InvalidArgument("snapshot of '" + item.doc + "' covers " + num(item.first) +
                                              " events but its log holds " + num(d.pending));
        return Status::OK();
      }
      auto ins = db.cached("INSERT OR REPLACE INTO snapshots(doc, events, time_ms, data) VALUES (?1, ?2, ?3, ?4)");
      if (!ins.ok()) return ins.status();
      sqlite::ScopedReset reset_ins(*ins);
      (*ins)->bind(1, d.id).bind(2, static_cast<int64_t>(item.first)).bind(3, now_ms()).bind_blob(4, pack_blob(item.bytes));
      TANDEM_RETURN_IF_ERROR((*ins)->run());
      auto prune = db.cached(
          "DELETE FROM snapshots WHERE doc = ?1 AND events NOT IN "
          "(SELECT events FROM snapshots WHERE doc = ?1 ORDER BY events DESC LIMIT ?2)");
      if (!prune.ok()) return prune.status();
      sqlite::ScopedReset reset_prune(*prune);
      (*prune)->bind(1, d.id).bind(2, std::max<int64_t>(2, options.keep_snapshots));
      TANDEM_RETURN_IF_ERROR((*prune)->run());
      // Give the pruned snapshot's pages back (a few dozen: cheap in the commit).
      return db.exec("PRAGMA incremental_vacuum");
    }
    case Write::kRemove: {
      auto ds = doc_state(item.doc, false);
      if (!ds.ok()) return ds.status();
      if (!*ds) {
        *item_error = Status::NotFound("no document '" + item.doc + "'");
        return Status::OK();
      }
      // Its entries leave the journal first (fold), then everything of it goes.
      TANDEM_RETURN_IF_ERROR(fold(*entries));
      const int64_t id = (**ds).id;
      for (const char* sql : {"DELETE FROM log WHERE doc = ?1", "DELETE FROM snapshots WHERE doc = ?1",
                              "DELETE FROM agents WHERE doc = ?1", "DELETE FROM versions WHERE doc = ?1",
                              "DELETE FROM documents WHERE id = ?1"}) {
        auto st = db.cached(sql);
        if (!st.ok()) return st.status();
        sqlite::ScopedReset reset_st(*st);
        (*st)->bind(1, id);
        TANDEM_RETURN_IF_ERROR((*st)->run());
      }
      docs.erase(item.doc);
      return Status::OK();
    }
    case Write::kVersion: {
      auto ds = doc_state(item.doc, false);
      if (!ds.ok()) return ds.status();
      if (!*ds) {
        *item_error = Status::NotFound("no document '" + item.doc + "'");
        return Status::OK();
      }
      const store::NamedVersion& v = item.version;
      if (v.events > (**ds).pending) {
        *item_error = store::version_past_log(item.doc, v.events, (**ds).pending);
        return Status::OK();
      }
      auto ins = db.cached(
          "INSERT INTO versions(doc, name, events, time_ms, agent) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING");
      if (!ins.ok()) return ins.status();
      sqlite::ScopedReset reset_ins(*ins);
      (*ins)->bind(1, (**ds).id).bind_text(2, v.name).bind(3, static_cast<int64_t>(v.events)).bind(4, v.time_ms).bind_text(5, v.agent);
      TANDEM_RETURN_IF_ERROR((*ins)->run());
      if (db.changes() == 0) *item_error = store::version_name_taken(item.doc, v.name);
      return Status::OK();
    }
    case Write::kSync:
      return Status::OK();
  }
  return Status::Internal("unknown write");
}

Status SqliteStore::fold(std::vector<JournalEntry>& entries) {
  Database& db = *writer_db;
  // The journal (older) then this group's entries: per document, in order.
  std::vector<JournalEntry*> all;
  for (auto& e : journal) all.push_back(&e);
  for (auto& e : entries) all.push_back(&e);
  if (all.empty()) return Status::OK();
  std::stable_sort(all.begin(), all.end(), [](const JournalEntry* a, const JournalEntry* b) { return a->doc < b->doc; });
  const int64_t now = now_ms();
  for (size_t i = 0; i < all.size();) {
    const int64_t doc = all[i]->doc;
    size_t j = i;
    AgentCounts agents;
    int64_t newest = 0;
    while (j < all.size() && all[j]->doc == doc) {
      // A run of entries that follow each other becomes one log row: their encoded batches one
      // after the other (codec::decode_ops_sequence reads them), so that folding decodes nothing.
      size_t k = j;
      std::string joined;
      while (k < all.size() && all[k]->doc == doc && (k == j || all[k]->first == all[k - 1]->end)) {
        joined.append(all[k]->batch);
        for (const auto& [agent, n] : all[k]->agents) add_agent(&agents, agent, n);
        newest = std::max(newest, all[k]->time_ms);
        ++k;
      }
      auto ins = db.cached("INSERT INTO log(doc, first_event, end_event, time_ms, batch) VALUES (?1, ?2, ?3, ?4, ?5)");
      if (!ins.ok()) return ins.status();
      sqlite::ScopedReset reset_ins(*ins);
      (*ins)->bind(1, doc).bind(2, static_cast<int64_t>(all[j]->first)).bind(3, static_cast<int64_t>(all[k - 1]->end));
      (*ins)->bind(4, all[k - 1]->time_ms).bind_blob(5, pack_blob(joined));
      TANDEM_RETURN_IF_ERROR((*ins)->run());
      j = k;
    }
    auto upd = db.cached("UPDATE documents SET events = ?1, updated_ms = ?2 WHERE id = ?3");
    if (!upd.ok()) return upd.status();
    sqlite::ScopedReset reset_upd(*upd);
    (*upd)->bind(1, static_cast<int64_t>(all[j - 1]->end)).bind(2, newest ? newest : now).bind(3, doc);
    TANDEM_RETURN_IF_ERROR((*upd)->run());
    for (const auto& [agent, n] : agents) {
      auto a = db.cached(
          "INSERT INTO agents(doc, name, events) VALUES (?1, ?2, ?3) "
          "ON CONFLICT(doc, name) DO UPDATE SET events = events + excluded.events");
      if (!a.ok()) return a.status();
      sqlite::ScopedReset reset_a(*a);
      (*a)->bind(1, doc).bind_text(2, agent).bind(3, static_cast<int64_t>(n));
      TANDEM_RETURN_IF_ERROR((*a)->run());
    }
    i = j;
  }
  TANDEM_RETURN_IF_ERROR(db.exec("DELETE FROM journal"));
  // Both are in the log now; the caller forgets the journal once this commit succeeds.
  entries.clear();
  folded_ = true;
  return Status::OK();
}

Status SqliteStore::commit(std::vector<Write>& group, const std::vector<Row>& rows, std::vector<Status>* results) {
  Database& db = *writer_db;
  sqlite::Transaction txn(&db);
  Status group_error = txn.begun();
  folded_ = false;
  if (group_error.ok() && journal_stale) group_error = load_journal();
  std::vector<JournalEntry> entries;  // this group's
  std::vector<Write*> row;
  for (size_t i = 0; i < group.size() && group_error.ok(); ++i) {
    Write& it = group[i];
    if (it.kind == Write::kSync) continue;
    row.clear();
    if (it.kind == Write::kAppend) {
      if (rows[it.row].items[0] != i) continue;  // written with its row's head
      for (size_t k : rows[it.row].items) row.push_back(&group[k]);
    }
    group_error = do_item(it, row, &entries, &(*results)[i]);
  }
  size_t entry_bytes = 0;
  for (const auto& e : entries) entry_bytes += e.batch.size();
  const bool fold_now = group_error.ok() && (!journal.empty() || !entries.empty()) &&
                        ((!journal.empty() && std::chrono::steady_clock::now() - journal_since >= kFoldEvery) ||
                         journal_bytes + entry_bytes >= kFoldBytes);
  if (group_error.ok() && fold_now) {
    group_error = fold(entries);
  } else if (group_error.ok() && !entries.empty()) {
    auto ins = db.cached("INSERT INTO journal(data) VALUES (?1)");
    group_error = ins.status();
    if (ins.ok()) {
      sqlite::ScopedReset reset_ins(*ins);
      (*ins)->bind_blob(1, encode_journal(entries));
      group_error = (*ins)->run();
    }
  }
  if (group_error.ok()) group_error = txn.commit();
  if (!group_error.ok()) {
    txn.rollback();
    docs.clear();  // the view may hold what was just rolled back
    journal_stale = true;
    return group_error;
  }
  for (auto& [name, d] : docs) d.events = d.pending;
  if (folded_) {
    journal.clear();
    journal_bytes = 0;
  }
  if (!entries.empty()) {
    if (journal.empty()) journal_since = std::chrono::steady_clock::now();
    for (auto& e : entries) {
      journal_bytes += e.batch.size();
      journal.push_back(std::move(e));
    }
  }
  return Status::OK();
}

void SqliteStore::idle() {
  if (journal.empty() && !journal_stale) return;
  sqlite::Transaction txn(writer_db.get());
  Status st = txn.begun();
  folded_ = false;
  if (st.ok() && journal_stale) st = load_journal();
  std::vector<JournalEntry> none;
  if (st.ok() && !journal.empty()) st = fold(none);
  if (st.ok()) st = txn.commit();
  if (st.ok()) {
    journal.clear();
    journal_bytes = 0;
    journal_stale = false;
  } else {
    // Nothing is lost: the journal stays, and readers and the next writer read it.
    txn.rollback();
    journal_stale = true;
  }
}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  std::unique_ptr<Database> writer;
  if (!options.read_only) {
    auto w = open_database(options, true);
    if (!w.ok()) return w.status();
    writer = std::move(*w);
  }
  auto r = open_database(options, false);
  if (!r.ok()) return r.status();
  return std::unique_ptr<Store>(new SqliteStore(options, std::move(writer), std::move(*r)));
}

// ---- reads ----
//
// A document's log is its log table's rows plus its journal entries (see "the journal"), read in
// one transaction so that a fold committed in between is seen whole or not at all.

namespace {

// One read transaction, ended when it goes out of scope.
struct ReadTxn {
  explicit ReadTxn(Database& d) : db(d), begun(d.exec("BEGIN")) {}
  ~ReadTxn() {
    if (begun.ok()) (void)db.exec("COMMIT");
  }
  Database& db;
  Status begun;
};

struct Found {
  int64_t id = 0;
  uint64_t events = 0;                // in the log table and the journal
  std::vector<JournalEntry> journal;  // the document's entries
};

// The document's row id, its journal entries and the events its log holds.
Result<Found> find_doc(Database& db, std::string_view name, bool count_agents = false) {
  auto q = db.cached("SELECT id FROM documents WHERE name = ?1");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind_text(1, name);
  auto row = (*q)->step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::NotFound("no document '" + std::string(name) + "'");
  Found f;
  f.id = (*q)->int64(0);
  (*q)->reset();
  auto events = log_table_end(db, f.id);
  if (!events.ok()) return events.status();
  f.events = *events;
  TANDEM_RETURN_IF_ERROR(read_journal(db, f.id, count_agents, &f.journal));
  for (const auto& e : f.journal) f.events = std::max(f.events, e.end);
  return f;
}

}  // namespace

Result<uint64_t> SqliteStore::logged_events(std::string_view doc) {
  std::lock_guard<std::mutex> lock(reader_mu);
  ReadTxn txn(*reader_db);
  TANDEM_RETURN_IF_ERROR(txn.begun);
  auto d = find_doc(*reader_db, doc);
  if (!d.ok()) return d.status();
  return d->events;
}

Result<crdt::Doc> SqliteStore::load(std::string_view doc, std::string_view agent, std::vector<std::string>* warnings) {
  std::lock_guard<std::mutex> lock(reader_mu);
  Database& db = *reader_db;
  // The transaction first: it ends after the statements below are reset, whatever the way out.
  ReadTxn txn(db);
  TANDEM_RETURN_IF_ERROR(txn.begun);
  auto snaps = db.cached("SELECT events, data FROM snapshots WHERE doc = ?1 ORDER BY events DESC");
  if (!snaps.ok()) return snaps.status();
  sqlite::ScopedReset reset_snaps(*snaps);
  auto rows = db.cached("SELECT first_event, end_event, batch FROM log WHERE doc = ?1 AND end_event > ?2 ORDER BY first_event");
  if (!rows.ok()) return rows.status();
  sqlite::ScopedReset reset_rows(*rows);
  auto d = find_doc(db, doc);
  if (!d.ok()) return d.status();
  std::optional<crdt::Doc> replica;
  uint64_t base = 0;
  (*snaps)->bind(1, d->id);
  for (;;) {
    auto row = (*snaps)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const auto events = static_cast<uint64_t>((*snaps)->int64(0));
    auto bytes = unpack_blob((*snaps)->blob(1));
    auto loaded = bytes.ok() ? codec::load(*bytes, agent) : Result<crdt::Doc>(bytes.status());
    if (loaded.ok() && loaded->num_events() == events) {
      replica.emplace(std::move(*loaded));
      base = events;
      break;
    }
    if (warnings) {
      warnings->push_back("snapshot of '" + std::string(doc) + "' at event " + num(events) + " is unusable (" +
                          (loaded.ok() ? "wrong event count" : loaded.status().ToString()) +
                          "); using an older one and more of the log");
    }
  }
  (*snaps)->reset();
  if (!replica) {
    auto st = crdt::Doc::ValidateAgent(agent);
    if (!st.ok()) return st;
    replica.emplace(agent);
  }
  uint64_t at = base;
  TailReplay tail(&*replica);
  // One log row or journal entry: its events from `at` on.
  auto apply = [&](uint64_t first, uint64_t stop, std::string_view raw) -> Status {
    if (stop <= at) return Status::OK();
    if (first > at) {
      TANDEM_RETURN_IF_ERROR(tail.finish());  // a row before the gap at fault is named first
      return Status::Corruption("log of '" + std::string(doc) + "' has a gap at event " + num(at));
    }
    // A row that starts inside the snapshot: its first events are known and skipped.
    TANDEM_RETURN_IF_ERROR(tail.add(raw, "log of '" + std::string(doc) + "' at event " + num(first)));
    at = stop;
    return Status::OK();
  };
  (*rows)->bind(1, d->id).bind(2, static_cast<int64_t>(base));
  for (;;) {
    auto row = (*rows)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const auto first = static_cast<uint64_t>((*rows)->int64(0));
    const auto stop = static_cast<uint64_t>((*rows)->int64(1));
    auto raw = unpack_blob((*rows)->blob(2));
    if (!raw.ok()) {
      TANDEM_RETURN_IF_ERROR(tail.finish());  // a row before this one at fault is named first
      return raw.status().WithContext("log of '" + std::string(doc) + "' at event " + num(first));
    }
    TANDEM_RETURN_IF_ERROR(apply(first, stop, *raw));
  }
  (*rows)->reset();
  for (const auto& e : d->journal) TANDEM_RETURN_IF_ERROR(apply(e.first, e.end, e.batch));
  TANDEM_RETURN_IF_ERROR(tail.finish());
  if (replica->num_events() != d->events) {
    return Status::Corruption("log of '" + std::string(doc) + "' rebuilds " + num(replica->num_events()) +
                              " events; the document records " + num(d->events));
  }
  return std::move(*replica);
}

Result<std::vector<LogRow>> SqliteStore::read_log(std::string_view doc, uint64_t from_event, uint64_t to_event) {
  std::lock_guard<std::mutex> lock(reader_mu);
  Database& db = *reader_db;
  ReadTxn txn(db);
  TANDEM_RETURN_IF_ERROR(txn.begun);
  auto q = db.cached(
      "SELECT first_event, end_event, time_ms, batch FROM log WHERE doc = ?1 AND end_event > ?2 AND first_event < ?3 "
      "ORDER BY first_event");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  auto d = find_doc(db, doc);
  if (!d.ok()) return d.status();
  (*q)->bind(1, d->id).bind(2, static_cast<int64_t>(from_event));
  (*q)->bind(3, static_cast<int64_t>(std::min<uint64_t>(to_event, INT64_MAX)));
  std::vector<LogRow> out;
  for (;;) {
    auto row = (*q)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto raw = unpack_blob((*q)->blob(3));
    if (!raw.ok()) return raw.status().WithContext("log of '" + std::string(doc) + "'");
    out.push_back({static_cast<uint64_t>((*q)->int64(0)), static_cast<uint64_t>((*q)->int64(1)), (*q)->int64(2),
                   std::move(*raw)});
  }
  (*q)->reset();
  for (auto& e : d->journal) {
    if (e.end > from_event && e.first < to_event) out.push_back({e.first, e.end, e.time_ms, std::move(e.batch)});
  }
  return out;
}

Result<std::vector<SnapshotInfo>> SqliteStore::snapshots(std::string_view doc) {
  std::lock_guard<std::mutex> lock(reader_mu);
  Database& db = *reader_db;
  ReadTxn txn(db);
  TANDEM_RETURN_IF_ERROR(txn.begun);
  auto d = find_doc(db, doc);
  if (!d.ok()) return d.status();
  auto q = db.cached("SELECT events, time_ms, length(data) FROM snapshots WHERE doc = ?1 ORDER BY events DESC");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind(1, d->id);
  std::vector<SnapshotInfo> out;
  for (;;) {
    auto row = (*q)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({static_cast<uint64_t>((*q)->int64(0)), (*q)->int64(1), static_cast<uint64_t>((*q)->int64(2))});
  }
  (*q)->reset();
  return out;
}

Result<std::vector<store::NamedVersion>> SqliteStore::versions(std::string_view doc) {
  std::lock_guard<std::mutex> lock(reader_mu);
  Database& db = *reader_db;
  ReadTxn txn(db);
  TANDEM_RETURN_IF_ERROR(txn.begun);
  auto d = find_doc(db, doc);
  if (!d.ok()) return d.status();
  std::vector<store::NamedVersion> out;
  auto has = db.query_int("SELECT count(*) FROM sqlite_schema WHERE name = 'versions'");
  if (!has.ok()) return has.status();
  if (*has == 0) return out;  // schema 2, opened read-only
  auto q = db.cached("SELECT name, events, time_ms, agent FROM versions WHERE doc = ?1 ORDER BY time_ms DESC, events DESC");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind(1, d->id);
  for (;;) {
    auto row = (*q)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({std::string((*q)->text(0)), static_cast<uint64_t>((*q)->int64(1)), (*q)->int64(2), std::string((*q)->text(3))});
  }
  return out;
}

namespace {

// The documents row and the agents table describe the log table; `journal` (the document's
// entries, with their agents) adds the rest.
Status fill_info(Database& db, int64_t id, const std::vector<JournalEntry>& journal, DocInfo* info, bool with_agents) {
  auto q = db.cached(
      "SELECT name, events, created_ms, updated_ms,"
      " (SELECT count(*) FROM log WHERE doc = d.id), (SELECT coalesce(sum(length(batch)), 0) FROM log WHERE doc = d.id),"
      " (SELECT count(*) FROM snapshots WHERE doc = d.id) FROM documents d WHERE id = ?1");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind(1, id);
  auto row = (*q)->step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::NotFound("document vanished");
  info->name = std::string((*q)->text(0));
  info->events = static_cast<uint64_t>((*q)->int64(1));
  info->created_ms = (*q)->int64(2);
  info->updated_ms = (*q)->int64(3);
  info->log_rows = static_cast<uint64_t>((*q)->int64(4));
  info->log_bytes = static_cast<uint64_t>((*q)->int64(5));
  info->snapshots = static_cast<uint32_t>((*q)->int64(6));
  (*q)->reset();
  for (const auto& e : journal) {
    info->events = std::max(info->events, e.end);
    info->updated_ms = std::max(info->updated_ms, e.time_ms);
    ++info->log_rows;
    info->log_bytes += e.batch.size();
  }
  auto s = db.cached("SELECT events, time_ms, length(data) FROM snapshots WHERE doc = ?1 ORDER BY events DESC LIMIT 1");
  if (!s.ok()) return s.status();
  sqlite::ScopedReset reset_s(*s);
  (*s)->bind(1, id);
  row = (*s)->step();
  if (!row.ok()) return row.status();
  if (*row) {
    info->snapshot_events = static_cast<uint64_t>((*s)->int64(0));
    info->snapshot_ms = (*s)->int64(1);
    info->snapshot_bytes = static_cast<uint64_t>((*s)->int64(2));
  }
  (*s)->reset();
  if (with_agents) {
    auto a = db.cached("SELECT name, events FROM agents WHERE doc = ?1 ORDER BY name");
    if (!a.ok()) return a.status();
    sqlite::ScopedReset reset_a(*a);
    (*a)->bind(1, id);
    AgentCounts agents;
    for (;;) {
      row = (*a)->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      agents.emplace_back(std::string((*a)->text(0)), static_cast<uint64_t>((*a)->int64(1)));
    }
    (*a)->reset();
    for (const auto& e : journal) {
      for (const auto& [agent, n] : e.agents) add_agent(&agents, agent, n);
    }
    std::sort(agents.begin(), agents.end());
    info->agents = std::move(agents);
  }
  return Status::OK();
}

}  // namespace

Result<std::vector<DocInfo>> SqliteStore::list() {
  std::lock_guard<std::mutex> lock(reader_mu);
  Database& db = *reader_db;
  ReadTxn txn(db);
  TANDEM_RETURN_IF_ERROR(txn.begun);
  std::vector<JournalEntry> journal;
  TANDEM_RETURN_IF_ERROR(read_journal(db, 0, true, &journal));
  std::unordered_map<int64_t, std::vector<JournalEntry>> by_doc;
  for (auto& e : journal) by_doc[e.doc].push_back(std::move(e));
  auto q = db.prepare("SELECT id FROM documents ORDER BY name");
  if (!q.ok()) return q.status();
  std::vector<int64_t> ids;
  for (;;) {
    auto row = (*q)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back((*q)->int64(0));
  }
  q->reset();
  std::vector<DocInfo> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) TANDEM_RETURN_IF_ERROR(fill_info(db, ids[i], by_doc[ids[i]], &out[i], true));
  return out;
}

Result<DocInfo> SqliteStore::info(std::string_view doc) {
  std::lock_guard<std::mutex> lock(reader_mu);
  Database& db = *reader_db;
  ReadTxn txn(db);
  TANDEM_RETURN_IF_ERROR(txn.begun);
  auto d = find_doc(db, doc, true);
  if (!d.ok()) return d.status();
  DocInfo info;
  TANDEM_RETURN_IF_ERROR(fill_info(db, d->id, d->journal, &info, true));
  return info;
}

Result<std::string> SqliteStore::integrity_check() {
  std::lock_guard<std::mutex> lock(reader_mu);
  auto q = reader_db->prepare("PRAGMA integrity_check");
  if (!q.ok()) return q.status();
  std::string out;
  for (;;) {
    auto row = (*q)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (!out.empty()) out += "\n";
    out += (*q)->text(0);
  }
  return out;
}

}  // namespace tandem::storage
