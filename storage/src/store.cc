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
#include "crdt/utf8.h"
#include "blob.h"
#include "sqlite/sqlite.h"

namespace tandem::storage {

namespace codec = crdt::codec;
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
    if (*version < kSchemaVersion) {
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

struct Item {
  enum Kind { kAppend, kSnapshot, kRemove, kSync } kind;
  std::string doc;
  uint64_t first = 0;
  uint64_t end = 0;
  std::string bytes;    // a snapshot
  crdt::OpBatch batch;  // an append; encoded by the writer, with the appends it joins
  std::vector<std::pair<std::string, uint64_t>> agents;
  Store::Done done;
  // Appends of one document that follow each other in a group share one log row: the first of
  // them holds the index of the last (its row's end), the others are `merged`.
  size_t row_last = 0;
  bool merged = false;
};

}  // namespace

// The end of a document's log: the events it holds.
Result<uint64_t> logged_end(Database& db, int64_t doc) {
  auto q = db.cached("SELECT end_event FROM log WHERE doc = ?1 ORDER BY first_event DESC LIMIT 1");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind(1, doc);
  auto row = (*q)->step();
  if (!row.ok()) return row.status();
  return *row ? static_cast<uint64_t>((*q)->int64(0)) : 0;
}

// Statistics of the log rows from event `from` on (the rows after a checkpoint): events per
// agent added to *agents, and the time of the newest row.
Status count_agents(Database& db, int64_t doc, uint64_t from, std::vector<std::pair<std::string, uint64_t>>* agents,
                    int64_t* newest_ms = nullptr) {
  auto q = db.cached("SELECT time_ms, batch FROM log WHERE doc = ?1 AND first_event >= ?2 ORDER BY first_event");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind(1, doc).bind(2, static_cast<int64_t>(from));
  for (;;) {
    auto row = (*q)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (newest_ms) *newest_ms = std::max(*newest_ms, (*q)->int64(0));
    auto raw = unpack_blob((*q)->blob(1));
    if (!raw.ok()) return raw.status();
    auto batch = codec::decode_ops(*raw);
    if (!batch.ok()) return batch.status();
    for (const auto& r : batch->runs) {
      auto it = std::find_if(agents->begin(), agents->end(), [&](const auto& a) { return a.first == r.agent; });
      if (it == agents->end()) {
        agents->emplace_back(r.agent, r.len);
      } else {
        it->second += r.len;
      }
    }
  }
  return Status::OK();
}

struct Store::Impl {
  StoreOptions options;
  std::unique_ptr<Database> writer_db;  // writer thread only
  std::unique_ptr<Database> reader_db;  // under reader_mu
  std::mutex reader_mu;

  std::mutex mu;
  std::condition_variable cv;
  std::vector<Item> queue;
  bool stopping = false;
  bool writer_idle = false;  // waiting for work (not pacing): only then does enqueue wake it
  std::thread writer;

  // The writer's view of each document it has touched: its row id and how many events its log
  // holds. Appends are checked against it in memory, so that a commit costs one INSERT per
  // document's row and nothing else; it is dropped whenever a commit fails.
  //
  // The documents row's statistics (events, updated_ms) and the agents table are a checkpoint:
  // they describe the log up to documents.events, and readers add the rows after it (a second
  // of edits at most, see kCheckpointEvery). Updating them at every commit cost as much as the
  // log rows themselves.
  struct DocState {
    int64_t id = 0;
    uint64_t events = 0;      // committed
    uint64_t pending = 0;     // including this group's appends
    uint64_t checkpoint = 0;  // documents.events
    bool dirty = false;       // appends since the checkpoint
    bool agents_known = true;  // `agents` holds every event since the checkpoint
    std::chrono::steady_clock::time_point checkpointed;
    std::vector<std::pair<std::string, uint64_t>> agents;  // events per agent since the checkpoint
  };
  static constexpr std::chrono::seconds kCheckpointEvery{1};
  std::unordered_map<std::string, DocState> docs;  // writer thread only
  Status failure_since_sync;                       // writer thread only

  std::atomic<uint64_t> commits{0}, batches{0}, rows{0}, events{0}, failed{0};

  void enqueue(Item item) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu);
      queue.push_back(std::move(item));
      wake = writer_idle;
      writer_idle = false;
    }
    // A pacing writer picks the item up when its interval ends; waking it for every append
    // would cost a context switch each.
    if (wake) cv.notify_one();
  }

  void run_writer();
  void final_checkpoint();
  void commit_group(std::vector<Item>& group);
  // Validation failures are returned in *item_error with OK; SQL failures (which fail the whole
  // commit) as the result.
  // An append writes the row of `rows` (item first).
  Status do_item(Item& item, const std::vector<Item*>& rows, Status* item_error);
  Result<DocState*> doc_state(const std::string& name, bool create);
  // Writes the checkpoint of every document with appends since its own, if it is older than
  // kCheckpointEvery, or `forced` holds its name, or `all`.
  Status flush_docs(const std::vector<std::string>& forced, bool all);
};

Result<Store::Impl::DocState*> Store::Impl::doc_state(const std::string& name, bool create) {
  auto it = docs.find(name);
  if (it != docs.end()) return &it->second;
  Database& db = *writer_db;
  auto q = db.cached("SELECT id, events FROM documents WHERE name = ?1");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind_text(1, name);
  auto row = (*q)->step();
  if (!row.ok()) return row.status();
  DocState st;
  st.checkpointed = std::chrono::steady_clock::now();
  if (*row) {
    st.id = (*q)->int64(0);
    st.checkpoint = static_cast<uint64_t>((*q)->int64(1));
    (*q)->reset();
    auto logged = logged_end(db, st.id);
    if (!logged.ok()) return logged.status();
    st.events = st.pending = *logged;
    // Rows after the checkpoint, from a run that ended without writing it: counted at the next.
    st.agents_known = st.events == st.checkpoint;
    st.dirty = !st.agents_known;
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

Status Store::Impl::do_item(Item& item, const std::vector<Item*>& rows, Status* item_error) {
  Database& db = *writer_db;
  switch (item.kind) {
    case Item::kAppend: {
      // The row of `rows` (this item and the appends merged into it: see commit_group).
      auto ds = doc_state(item.doc, true);
      if (!ds.ok()) return ds.status();
      DocState& d = **ds;
      if (item.first != d.pending) {
        *item_error = Status::InvalidArgument("append to '" + item.doc + "' starts at event " + num(item.first) +
                                              " but its log holds " + num(d.pending) + " events");
        return Status::OK();
      }
      const uint64_t end = rows.back()->end;
      crdt::OpBatch joined;
      for (Item* r : rows) {
        for (auto& run : r->batch.runs) joined.runs.push_back(std::move(run));
      }
      auto ins = db.cached("INSERT INTO log(doc, first_event, end_event, time_ms, batch) VALUES (?1, ?2, ?3, ?4, ?5)");
      if (!ins.ok()) return ins.status();
      sqlite::ScopedReset reset_ins(*ins);
      (*ins)->bind(1, d.id).bind(2, static_cast<int64_t>(item.first)).bind(3, static_cast<int64_t>(end));
      (*ins)->bind(4, now_ms()).bind_blob(5, pack_blob(codec::encode_ops(joined)));
      TANDEM_RETURN_IF_ERROR((*ins)->run());
      d.pending = end;
      d.dirty = true;
      for (Item* r : rows) {
        for (const auto& [agent, n] : r->agents) {
          bool found = false;
          for (auto& a : d.agents) {
            if (a.first == agent) {
              a.second += n;
              found = true;
              break;
            }
          }
          if (!found) d.agents.emplace_back(agent, n);
        }
      }
      return Status::OK();
    }
    case Item::kSnapshot: {
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
    case Item::kRemove: {
      auto ds = doc_state(item.doc, false);
      if (!ds.ok()) return ds.status();
      if (!*ds) {
        *item_error = Status::NotFound("no document '" + item.doc + "'");
        return Status::OK();
      }
      const int64_t id = (**ds).id;
      for (const char* sql : {"DELETE FROM log WHERE doc = ?1", "DELETE FROM snapshots WHERE doc = ?1",
                              "DELETE FROM agents WHERE doc = ?1", "DELETE FROM documents WHERE id = ?1"}) {
        auto st = db.cached(sql);
        if (!st.ok()) return st.status();
        sqlite::ScopedReset reset_st(*st);
        (*st)->bind(1, id);
        TANDEM_RETURN_IF_ERROR((*st)->run());
      }
      docs.erase(item.doc);
      return Status::OK();
    }
    case Item::kSync:
      return Status::OK();
  }
  return Status::Internal("unknown write");
}

// The checkpoints that are due: one UPDATE per document, and its agents' counts.
Status Store::Impl::flush_docs(const std::vector<std::string>& forced, bool all) {
  Database& db = *writer_db;
  const int64_t now = now_ms();
  const auto steady = std::chrono::steady_clock::now();
  for (auto& [name, d] : docs) {
    if (!d.dirty) continue;
    if (!all && steady - d.checkpointed < kCheckpointEvery &&
        std::find(forced.begin(), forced.end(), name) == forced.end()) {
      continue;
    }
    if (!d.agents_known) {
      d.agents.clear();
      TANDEM_RETURN_IF_ERROR(count_agents(db, d.id, d.checkpoint, &d.agents));
      d.agents_known = true;
    }
    auto upd = db.cached("UPDATE documents SET events = ?1, updated_ms = ?2 WHERE id = ?3");
    if (!upd.ok()) return upd.status();
    sqlite::ScopedReset reset_upd(*upd);
    (*upd)->bind(1, static_cast<int64_t>(d.pending)).bind(2, now).bind(3, d.id);
    TANDEM_RETURN_IF_ERROR((*upd)->run());
    for (const auto& [agent, n] : d.agents) {
      auto a = db.cached(
          "INSERT INTO agents(doc, name, events) VALUES (?1, ?2, ?3) "
          "ON CONFLICT(doc, name) DO UPDATE SET events = events + excluded.events");
      if (!a.ok()) return a.status();
      sqlite::ScopedReset reset_a(*a);
      (*a)->bind(1, d.id).bind_text(2, agent).bind(3, static_cast<int64_t>(n));
      TANDEM_RETURN_IF_ERROR((*a)->run());
    }
    d.agents.clear();
    d.checkpoint = d.pending;
    d.checkpointed = steady;
    d.dirty = false;
  }
  return Status::OK();
}

void Store::Impl::commit_group(std::vector<Item>& group) {
  std::vector<Status> results(group.size());
  bool writes = false;
  for (const Item& it : group) writes = writes || it.kind != Item::kSync;
  if (writes) {
    // The per-row cost of the log is most of a commit's: appends of one document that follow
    // each other (each starts where the one before ended, nothing else of that document between
    // them) go into one row. They succeed or fail together, as they would one by one.
    std::unordered_map<std::string_view, size_t> open_row;  // doc -> its row's first item
    for (size_t i = 0; i < group.size(); ++i) {
      Item& it = group[i];
      it.row_last = i;
      it.merged = false;
      auto o = open_row.find(it.doc);
      if (it.kind == Item::kAppend && o != open_row.end() && group[group[o->second].row_last].end == it.first) {
        group[o->second].row_last = i;
        it.merged = true;
      } else if (it.kind == Item::kAppend) {
        open_row[it.doc] = i;
      } else if (o != open_row.end()) {
        open_row.erase(o);
      }
    }
    Database& db = *writer_db;
    sqlite::Transaction txn(&db);
    Status group_error = txn.begun();
    std::vector<Item*> rows;
    for (size_t i = 0; i < group.size() && group_error.ok(); ++i) {
      Item& it = group[i];
      if (it.kind == Item::kSync || it.merged) continue;
      rows.clear();
      if (it.kind == Item::kAppend) {
        for (size_t j = i; j <= it.row_last; ++j) {
          if (group[j].kind == Item::kAppend && group[j].doc == it.doc && (j == i || group[j].merged)) rows.push_back(&group[j]);
        }
      }
      group_error = do_item(it, rows, &results[i]);
      for (size_t k = 1; k < rows.size(); ++k) results[static_cast<size_t>(rows[k] - group.data())] = results[i];
    }
    if (group_error.ok()) {
      std::vector<std::string> forced;  // a snapshot checkpoints its document too
      for (const Item& it : group) {
        if (it.kind == Item::kSnapshot) forced.push_back(it.doc);
      }
      group_error = flush_docs(forced, false);
    }
    if (group_error.ok()) group_error = txn.commit();
    if (!group_error.ok()) {
      txn.rollback();
      docs.clear();  // the view may hold what was just rolled back
      for (size_t i = 0; i < group.size(); ++i) {
        if (group[i].kind != Item::kSync && results[i].ok()) results[i] = group_error;
      }
    } else {
      ++commits;
      for (auto& [name, d] : docs) d.events = d.pending;
    }
  }
  for (size_t i = 0; i < group.size(); ++i) {
    Item& it = group[i];
    if (it.kind == Item::kSync) {
      results[i] = failure_since_sync;
      failure_since_sync = Status::OK();
    } else if (!results[i].ok()) {
      ++failed;
      if (failure_since_sync.ok()) failure_since_sync = results[i];
    } else if (it.kind == Item::kAppend) {
      ++batches;
      if (!it.merged) ++rows;
      events += it.end - it.first;
    }
  }
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i].done) group[i].done(results[i]);
  }
}

void Store::Impl::run_writer() {
  std::vector<Item> group;
  auto last_start = std::chrono::steady_clock::now() - options.commit_interval;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu);
      writer_idle = queue.empty();
      cv.wait(lock, [&] { return stopping || !queue.empty(); });
      writer_idle = false;
      if (queue.empty()) {  // stopping, nothing left: the last checkpoints
        lock.unlock();
        final_checkpoint();
        return;
      }
      // Let more appends join this commit, unless the store is closing.
      cv.wait_until(lock, last_start + options.commit_interval, [&] { return stopping; });
      group.swap(queue);
    }
    last_start = std::chrono::steady_clock::now();
    commit_group(group);
    group.clear();
  }
}

void Store::Impl::final_checkpoint() {
  bool any = false;
  for (const auto& [name, d] : docs) any = any || d.dirty;
  if (!any) return;
  sqlite::Transaction txn(writer_db.get());
  Status st = txn.begun();
  if (st.ok()) st = flush_docs({}, true);
  if (st.ok()) st = txn.commit();
  // A failure here loses nothing: readers count the log after the last checkpoint.
  (void)st;
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (!options.read_only) {
    auto w = open_database(options, true);
    if (!w.ok()) return w.status();
    impl->writer_db = std::move(*w);
  }
  auto r = open_database(options, false);
  if (!r.ok()) return r.status();
  impl->reader_db = std::move(*r);
  std::unique_ptr<Store> store(new Store(std::move(impl)));
  if (!options.read_only) {
    Impl* p = store->impl_.get();
    p->writer = std::thread([p] { p->run_writer(); });
  }
  return store;
}

Store::~Store() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->writer.joinable()) impl_->writer.join();
}

const std::string& Store::path() const { return impl_->options.path; }

Store::Stats Store::stats() const {
  return {impl_->commits.load(), impl_->batches.load(), impl_->rows.load(), impl_->events.load(), impl_->failed.load()};
}

void Store::append(std::string doc, uint64_t first_event, crdt::OpBatch batch, Done done) {
  if (impl_->options.read_only) {
    if (done) done(Status::IOError(impl_->options.path + " is open read-only"));
    return;
  }
  Item it{Item::kAppend, std::move(doc), first_event, first_event + batch.events(), {}, std::move(batch), {}, std::move(done)};
  for (const auto& r : it.batch.runs) {
    if (!it.agents.empty() && it.agents.back().first == r.agent) {
      it.agents.back().second += r.len;
    } else {
      bool found = false;
      for (auto& a : it.agents) {
        if (a.first == r.agent) {
          a.second += r.len;
          found = true;
          break;
        }
      }
      if (!found) it.agents.emplace_back(r.agent, r.len);
    }
  }
  impl_->enqueue(std::move(it));
}

void Store::put_snapshot(std::string doc, uint64_t events, std::string bytes, Done done) {
  if (impl_->options.read_only) {
    if (done) done(Status::IOError(impl_->options.path + " is open read-only"));
    return;
  }
  impl_->enqueue({Item::kSnapshot, std::move(doc), events, 0, std::move(bytes), {}, {}, std::move(done)});
}

void Store::remove_document(std::string doc, Done done) {
  if (impl_->options.read_only) {
    if (done) done(Status::IOError(impl_->options.path + " is open read-only"));
    return;
  }
  impl_->enqueue({Item::kRemove, std::move(doc), 0, 0, {}, {}, {}, std::move(done)});
}

Status Store::sync() {
  if (impl_->options.read_only) return Status::OK();
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  Status result;
  impl_->enqueue({Item::kSync, {}, 0, 0, {}, {}, {}, [&](Status st) {
                    std::lock_guard<std::mutex> lock(m);
                    result = st;
                    done = true;
                    cv.notify_one();
                  }});
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return done; });
  return result;
}

// ---- reads ----

namespace {

// The document's row id and the events its log holds.
Result<std::pair<int64_t, uint64_t>> find_doc(Database& db, std::string_view name) {
  auto q = db.cached("SELECT id FROM documents WHERE name = ?1");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind_text(1, name);
  auto row = (*q)->step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::NotFound("no document '" + std::string(name) + "'");
  const int64_t id = (*q)->int64(0);
  (*q)->reset();
  auto events = logged_end(db, id);
  if (!events.ok()) return events.status();
  return std::make_pair(id, *events);
}

}  // namespace

Result<uint64_t> Store::logged_events(std::string_view doc) {
  std::lock_guard<std::mutex> lock(impl_->reader_mu);
  auto d = find_doc(*impl_->reader_db, doc);
  if (!d.ok()) return d.status();
  return d->second;
}

Result<crdt::Doc> Store::load(std::string_view doc, std::string_view agent, std::vector<std::string>* warnings) {
  std::lock_guard<std::mutex> lock(impl_->reader_mu);
  Database& db = *impl_->reader_db;
  auto snaps = db.cached("SELECT events, data FROM snapshots WHERE doc = ?1 ORDER BY events DESC");
  if (!snaps.ok()) return snaps.status();
  sqlite::ScopedReset reset_snaps(*snaps);
  auto rows = db.cached("SELECT first_event, end_event, batch FROM log WHERE doc = ?1 AND end_event > ?2 ORDER BY first_event");
  if (!rows.ok()) return rows.status();
  // Read everything in one transaction, so that a concurrent commit cannot slip in between; the
  // statements are reset before it ends, whatever path leaves this function.
  TANDEM_RETURN_IF_ERROR(db.exec("BEGIN"));
  struct End {
    Database& db;
    Statement* a;
    Statement* b;
    ~End() {
      a->reset();
      b->reset();
      (void)db.exec("COMMIT");
    }
  } end{db, *snaps, *rows};
  auto d = find_doc(db, doc);
  if (!d.ok()) return d.status();
  std::optional<crdt::Doc> replica;
  uint64_t base = 0;
  (*snaps)->bind(1, d->first);
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
  if (!replica) {
    auto st = crdt::Doc::ValidateAgent(agent);
    if (!st.ok()) return st;
    replica.emplace(agent);
  }
  (*rows)->bind(1, d->first).bind(2, static_cast<int64_t>(base));
  uint64_t at = base;
  for (;;) {
    auto row = (*rows)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const auto first = static_cast<uint64_t>((*rows)->int64(0));
    const auto stop = static_cast<uint64_t>((*rows)->int64(1));
    if (first > at) return Status::Corruption("log of '" + std::string(doc) + "' has a gap at event " + num(at));
    auto raw = unpack_blob((*rows)->blob(2));
    if (!raw.ok()) return raw.status().WithContext("log of '" + std::string(doc) + "' at event " + num(first));
    auto batch = codec::decode_ops(*raw);
    if (!batch.ok()) {
      return batch.status().WithContext("log of '" + std::string(doc) + "' at event " + num(first));
    }
    // A row that starts inside the snapshot: its first events are known and skipped by apply.
    auto applied = replica->apply(*batch);
    if (!applied.ok()) {
      return applied.status().WithContext("log of '" + std::string(doc) + "' at event " + num(first));
    }
    at = stop;
  }
  if (replica->num_events() != d->second) {
    return Status::Corruption("log of '" + std::string(doc) + "' rebuilds " + num(replica->num_events()) +
                              " events; the document records " + num(d->second));
  }
  return std::move(*replica);
}

Result<std::vector<LogRow>> Store::read_log(std::string_view doc, uint64_t from_event, uint64_t to_event) {
  std::lock_guard<std::mutex> lock(impl_->reader_mu);
  Database& db = *impl_->reader_db;
  auto d = find_doc(db, doc);
  if (!d.ok()) return d.status();
  auto q = db.cached(
      "SELECT first_event, end_event, time_ms, batch FROM log WHERE doc = ?1 AND end_event > ?2 AND first_event < ?3 "
      "ORDER BY first_event");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind(1, d->first).bind(2, static_cast<int64_t>(from_event));
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
  return out;
}

Result<std::vector<SnapshotInfo>> Store::snapshots(std::string_view doc) {
  std::lock_guard<std::mutex> lock(impl_->reader_mu);
  Database& db = *impl_->reader_db;
  auto d = find_doc(db, doc);
  if (!d.ok()) return d.status();
  auto q = db.cached("SELECT events, time_ms, length(data) FROM snapshots WHERE doc = ?1 ORDER BY events DESC");
  if (!q.ok()) return q.status();
  sqlite::ScopedReset reset_q(*q);
  (*q)->bind(1, d->first);
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

namespace {

Status fill_info(Database& db, int64_t id, DocInfo* info, bool with_agents) {
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
  // The checkpoint, plus the rows after it.
  const uint64_t checkpoint = info->events;
  auto logged = logged_end(db, id);
  if (!logged.ok()) return logged.status();
  info->events = *logged;
  std::vector<std::pair<std::string, uint64_t>> tail;
  if (*logged > checkpoint) TANDEM_RETURN_IF_ERROR(count_agents(db, id, checkpoint, &tail, &info->updated_ms));
  if (with_agents) {
    auto a = db.cached("SELECT name, events FROM agents WHERE doc = ?1 ORDER BY name");
    if (!a.ok()) return a.status();
    sqlite::ScopedReset reset_a(*a);
    (*a)->bind(1, id);
    for (;;) {
      row = (*a)->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      info->agents.emplace_back(std::string((*a)->text(0)), static_cast<uint64_t>((*a)->int64(1)));
    }
    (*a)->reset();
    for (const auto& [agent, n] : tail) {
      auto it = std::find_if(info->agents.begin(), info->agents.end(), [&](const auto& x) { return x.first == agent; });
      if (it == info->agents.end()) {
        info->agents.emplace_back(agent, n);
      } else {
        it->second += n;
      }
    }
    std::sort(info->agents.begin(), info->agents.end());
  }
  return Status::OK();
}

}  // namespace

namespace {

// One read transaction for what follows (a checkpoint committed in between would be counted
// twice), ended when it goes out of scope.
struct ReadTxn {
  explicit ReadTxn(Database& d) : db(d), begun(d.exec("BEGIN")) {}
  ~ReadTxn() {
    if (begun.ok()) (void)db.exec("COMMIT");
  }
  Database& db;
  Status begun;
};

}  // namespace

Result<std::vector<DocInfo>> Store::list() {
  std::lock_guard<std::mutex> lock(impl_->reader_mu);
  Database& db = *impl_->reader_db;
  ReadTxn txn(db);
  TANDEM_RETURN_IF_ERROR(txn.begun);
  auto q = db.prepare("SELECT id FROM documents ORDER BY name");
  if (!q.ok()) return q.status();
  std::vector<int64_t> ids;
  for (;;) {
    auto row = (*q)->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back((*q)->int64(0));
  }
  std::vector<DocInfo> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) TANDEM_RETURN_IF_ERROR(fill_info(db, ids[i], &out[i], true));
  return out;
}

Result<DocInfo> Store::info(std::string_view doc) {
  std::lock_guard<std::mutex> lock(impl_->reader_mu);
  Database& db = *impl_->reader_db;
  ReadTxn txn(db);
  TANDEM_RETURN_IF_ERROR(txn.begun);
  auto d = find_doc(db, doc);
  if (!d.ok()) return d.status();
  DocInfo info;
  TANDEM_RETURN_IF_ERROR(fill_info(db, d->first, &info, true));
  return info;
}

Result<std::string> Store::integrity_check() {
  std::lock_guard<std::mutex> lock(impl_->reader_mu);
  auto q = impl_->reader_db->prepare("PRAGMA integrity_check");
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

crdt::OpBatch batch_prefix(const crdt::OpBatch& batch, uint64_t events) {
  crdt::OpBatch out;
  for (const auto& r : batch.runs) {
    if (events == 0) break;
    out.runs.push_back(r);
    if (r.len > events) {
      crdt::OpRun& last = out.runs.back();
      last.len = static_cast<uint32_t>(events);
      if (last.kind == crdt::OpKind::kInsert) last.content.resize(crdt::utf8::byte_offset(last.content, events));
    }
    events -= out.runs.back().len;
  }
  return out;
}

}  // namespace tandem::storage
