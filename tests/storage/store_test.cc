// The SQLite store against real files in a temporary directory.
#include <sqlite3.h>
#include <sys/mount.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "crdt/codec.h"
#include "storage/store.h"
#include "store/replay.h"
#include "support/random_edits.h"
#include "support/temp_dir.h"

using tandem::crdt::Doc;
using tandem::crdt::OpBatch;
using tandem::crdt::Status;
using tandem::crdt::Version;
using tandem::storage::Store;
using tandem::storage::StoreOptions;
using tandem::testing::Rng;
using tandem::testing::TempDir;
namespace codec = tandem::crdt::codec;
using Code = Status::Code;

namespace {

std::unique_ptr<Store> open_store(const std::string& path, StoreOptions o = {}) {
  o.path = path;
  auto s = Store::open(o);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return std::move(*s);
}

Status append_sync(Store& store, const std::string& doc, uint64_t first, const OpBatch& batch) {
  store.append(doc, first, batch, nullptr);
  return store.sync();
}

// Runs SQL on the file with a connection of its own (to corrupt or age it on purpose).
void raw_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

// A server-side replica whose events are appended as they are integrated.
struct Writer {
  Writer(Store& s, std::string d) : store(s), doc(std::move(d)) {}
  Store& store;
  std::string doc;
  Doc server{"server"};
  Doc client{"client"};
  Version sent;

  Status edit(Rng& rng, int edits) {
    for (int i = 0; i < edits; ++i) tandem::testing::random_edit(rng, client);
    OpBatch added;
    auto r = server.apply(client.ops_since(sent, Doc::DeletedText::kInclude), &added);
    if (!r.ok()) return r.status();
    sent = client.version();
    const uint64_t first = server.num_events() - added.events();
    return append_sync(store, doc, first, added);
  }
};

}  // namespace

TEST_CASE("store: creates, reopens and checks a database", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("t.db");
  {
    auto store = open_store(path);
    auto docs = store->list();
    REQUIRE(docs.ok());
    CHECK(docs->empty());
    CHECK(*store->integrity_check() == "ok");
    CHECK(store->logged_events("nope").status().code() == Code::kNotFound);
  }
  auto again = open_store(path);
  CHECK(again->list()->empty());
}

TEST_CASE("store: a schema 1 database (before the journal) is migrated and keeps its documents", "[storage]") {
  // Schema 1 exactly as the first release created it, holding one document of two log rows.
  TempDir dir;
  const std::string path = dir.file("v1.db");
  Doc doc{"ann"};
  REQUIRE(doc.insert(0, "hello").ok());
  const std::string row1 = tandem::crdt::codec::encode_ops(doc.ops_since(Version{}));
  const Version v = doc.version();
  REQUIRE(doc.insert(5, " world").ok());
  const std::string row2 = tandem::crdt::codec::encode_ops(doc.ops_since(v));
  auto hex = [](const std::string& bytes) {
    std::string out;
    for (unsigned char c : bytes) {
      out += "0123456789abcdef"[c >> 4];
      out += "0123456789abcdef"[c & 15];
    }
    return out;
  };
  raw_sql(path,
          "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;"
          "CREATE TABLE documents (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, events INTEGER NOT NULL DEFAULT 0,"
          "  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
          "CREATE TABLE log (id INTEGER PRIMARY KEY, doc INTEGER NOT NULL, first_event INTEGER NOT NULL,"
          "  end_event INTEGER NOT NULL, time_ms INTEGER NOT NULL, batch BLOB NOT NULL, UNIQUE (doc, first_event));"
          "CREATE TABLE snapshots (id INTEGER PRIMARY KEY, doc INTEGER NOT NULL, events INTEGER NOT NULL,"
          "  time_ms INTEGER NOT NULL, data BLOB NOT NULL, UNIQUE (doc, events));"
          "CREATE TABLE agents (doc INTEGER NOT NULL, name TEXT NOT NULL, events INTEGER NOT NULL,"
          "  PRIMARY KEY (doc, name)) WITHOUT ROWID;"
          "PRAGMA user_version = 1; PRAGMA application_id = 1414415437;"
          "INSERT INTO documents VALUES (1, 'greeting', 11, 1000, 2000);"
          "INSERT INTO log VALUES (1, 1, 0, 5, 1000, X'" + hex(row1) + "');"
          "INSERT INTO log VALUES (2, 1, 5, 11, 2000, X'" + hex(row2) + "');"
          "INSERT INTO agents VALUES (1, 'ann', 11);");
  {
    auto store = open_store(path);
    auto loaded = store->load("greeting", "reader", nullptr);
    REQUIRE(loaded.ok());
    CHECK(loaded->text() == "hello world");
    auto info = store->info("greeting");
    REQUIRE(info.ok());
    CHECK(info->events == 11);
    CHECK(info->agents == std::vector<std::pair<std::string, uint64_t>>{{"ann", 11}});
    // Appends go on through the journal.
    const Version before = doc.version();
    REQUIRE(doc.insert(11, "!").ok());
    REQUIRE(append_sync(*store, "greeting", 11, doc.ops_since(before)).ok());
    CHECK(store->load("greeting", "reader", nullptr)->text() == "hello world!");
  }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == tandem::storage::kSchemaVersion);
  sqlite3_finalize(st);
  sqlite3_close(db);
  CHECK(open_store(path)->load("greeting", "reader", nullptr)->text() == "hello world!");
}

TEST_CASE("store: a schema 2 database (before named versions) opens read-only without names, and read-write gains them", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("v2.db");
  Doc doc{"ann"};
  REQUIRE(doc.insert(0, "hello").ok());
  {
    auto store = open_store(path);
    REQUIRE(append_sync(*store, "greeting", 0, doc.ops_since(Version{})).ok());
  }
  raw_sql(path, "DROP TABLE versions; PRAGMA user_version = 2;");
  {
    StoreOptions o;
    o.read_only = true;
    auto store = open_store(path, o);
    CHECK(store->load("greeting", "r", nullptr)->text() == "hello");
    auto v = store->versions("greeting");
    REQUIRE(v.ok());
    CHECK(v->empty());
  }
  auto store = open_store(path);
  Status named = Status::Internal("no callback");
  store->put_version("greeting", {"hello", 5, 0, "ann"}, [&](Status st) { named = st; });
  REQUIRE(store->sync().ok());
  CHECK(named.ok());
  REQUIRE(store->versions("greeting")->size() == 1);
  CHECK(store->versions("greeting")->front().events == 5);
}

TEST_CASE("store: refuses files that are not Tandem databases, or from a newer Tandem", "[storage]") {
  TempDir dir;
  {
    std::ofstream(dir.file("text.db")) << "this is not a database, just some text that is long enough to fill a header";
    auto s = Store::open({dir.file("text.db")});
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == Code::kCorruption);
    CHECK_THAT(s.status().message(), Catch::Contains("not a Tandem database"));
  }
  {
    raw_sql(dir.file("other.db"), "CREATE TABLE recipes (name TEXT)");
    auto s = Store::open({dir.file("other.db")});
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == Code::kCorruption);
    CHECK_THAT(s.status().message(), Catch::Contains("not a Tandem database (application_id 0x00000000, 1 tables)"));
  }
  {
    open_store(dir.file("future.db"));
    raw_sql(dir.file("future.db"), "PRAGMA user_version = 99");
    auto s = Store::open({dir.file("future.db")});
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == Code::kNotSupported);
    CHECK_THAT(s.status().message(), Catch::Contains("written by a newer Tandem (schema 99"));
  }
}

TEST_CASE("store: appends are checked, ordered, and committed in groups", "[storage]") {
  TempDir dir;
  auto store = open_store(dir.file("t.db"));
  Doc a("a");
  Version v;
  std::vector<OpBatch> batches;
  for (int i = 0; i < 200; ++i) {
    REQUIRE(a.insert(a.length(), "x").ok());
    batches.push_back(a.ops_since(v));
    v = a.version();
  }
  std::atomic<int> acked{0};
  uint64_t first = 0;
  for (const auto& b : batches) {
    store->append("doc", first, b, [&acked](Status st) {
      if (st.ok()) ++acked;
    });
    first += b.events();
  }
  REQUIRE(store->sync().ok());
  CHECK(acked == 200);
  CHECK(*store->logged_events("doc") == 200);
  const auto stats = store->stats();
  CHECK(stats.batches == 200);
  CHECK(stats.commits < 200);  // queued appends share commits
  // ... and consecutive appends of the document share log rows, which still tile its events.
  CHECK(stats.rows < 200);
  auto log_rows = store->read_log("doc", 0, 200);
  REQUIRE(log_rows.ok());
  CHECK(log_rows->size() == stats.rows);
  uint64_t next = 0;
  for (const auto& r : *log_rows) {
    CHECK(r.first_event == next);
    next = r.end_event;
  }
  CHECK(next == 200);
  auto loaded = store->load("doc", "reader", nullptr);
  REQUIRE(loaded.ok());
  CHECK(loaded->text() == a.text());
  // A gap or an overlap is refused and writes nothing; the others in the same group still commit.
  Status gap, dup, good;
  store->append("doc", 250, batches[0], [&](Status st) { gap = st; });
  store->append("doc", 100, batches[0], [&](Status st) { dup = st; });
  REQUIRE(a.insert(0, "y").ok());
  store->append("doc", 200, a.ops_since(v), [&](Status st) { good = st; });
  const Status synced = store->sync();
  CHECK(gap.code() == Code::kInvalidArgument);
  CHECK_THAT(gap.message(), Catch::Contains("starts at event 250 but its log holds 200 events"));
  CHECK(dup.code() == Code::kInvalidArgument);
  CHECK(good.ok());
  CHECK(synced.code() == Code::kInvalidArgument);  // sync reports the first failure since the last sync
  CHECK(store->sync().ok());
  CHECK(*store->logged_events("doc") == 201);
  // The rows that hold events 10 and 11, and no others.
  auto rows = store->read_log("doc", 10, 12);
  REQUIRE(rows.ok());
  REQUIRE(!rows->empty());
  CHECK(rows->front().first_event <= 10);
  CHECK(rows->front().end_event > 10);
  CHECK(rows->back().first_event < 12);
  CHECK(rows->back().end_event >= 12);
}

TEST_CASE("store: load is the newest good snapshot plus the log after it", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("t.db");
  std::string expect;
  {
    auto store = open_store(path);
    Writer w{*store, "notes"};
    Rng rng(7);
    for (int i = 0; i < 30; ++i) {
      REQUIRE(w.edit(rng, 3).ok());
      if (i == 10 || i == 20) {
        store->put_snapshot("notes", w.server.num_events(), codec::save(w.server), nullptr);
        REQUIRE(store->sync().ok());
      }
    }
    expect = codec::save(w.server);
    std::vector<std::string> warnings;
    auto loaded = store->load("notes", "reader", &warnings);
    REQUIRE(loaded.ok());
    CHECK(warnings.empty());
    CHECK(loaded->text() == w.server.text());
    CHECK(codec::save(*loaded) == expect);
    auto snaps = store->snapshots("notes");
    REQUIRE(snaps->size() == 2);
    // A snapshot that covers events the log does not hold yet is refused.
    store->put_snapshot("notes", w.server.num_events() + 5, codec::save(w.server), nullptr);
    CHECK(store->sync().code() == Code::kInvalidArgument);
    // Only the newest keep_snapshots (2) are kept.
    store->put_snapshot("notes", w.server.num_events(), codec::save(w.server), nullptr);
    REQUIRE(store->sync().ok());
    CHECK(store->snapshots("notes")->size() == 2);
  }
  // The newest snapshot garbled on disk: the previous one plus more of the log, with a warning.
  raw_sql(path, "UPDATE snapshots SET data = X'93010203' WHERE events = (SELECT max(events) FROM snapshots)");
  auto store = open_store(path);
  std::vector<std::string> warnings;
  auto loaded = store->load("notes", "reader", &warnings);
  REQUIRE(loaded.ok());
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("unusable"));
  CHECK(codec::save(*loaded) == expect);
  // Every snapshot garbled: the whole log.
  raw_sql(path, "UPDATE snapshots SET data = X'00'");
  warnings.clear();
  loaded = store->load("notes", "reader", &warnings);
  REQUIRE(loaded.ok());
  CHECK(warnings.size() == 2);
  CHECK(codec::save(*loaded) == expect);
  // A garbled log row is an error, not a silent loss.
  raw_sql(path, "UPDATE log SET batch = X'01' WHERE first_event = (SELECT max(first_event) FROM log)");
  loaded = store->load("notes", "reader", &warnings);
  CHECK(loaded.status().code() == Code::kCorruption);
}

TEST_CASE("store: a log of concurrent authors loads in groups, and its first bad row is the one named", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("t.db");
  auto store = open_store(path);
  // Three authors typing concurrently, catching up with each other now and then; the server
  // integrates each one's batch as it comes and logs what it added, a row per batch.
  Doc a("a"), b("b"), c("c"), server("server");
  Doc* authors[] = {&a, &b, &c};
  Rng rng(31);
  std::vector<uint64_t> row_starts;  // of the log's rows: a close folds the journal into a row
  for (int step = 0; step < 300; ++step) {
    if (step % 10 == 0 && step > 0) {
      store.reset();
      store = open_store(path);
      row_starts.push_back(server.num_events());
    }
    Doc& who = *authors[rng.below(3)];
    const Version before = who.version();
    tandem::testing::random_edit(rng, who);
    if (rng.chance(0.2)) {
      Doc& other = *authors[rng.below(3)];
      REQUIRE(other.apply(who.ops_since(other.version())).ok());
    }
    OpBatch added;
    REQUIRE(server.apply(who.ops_since(before), &added).ok());
    if (added.empty()) continue;
    if (row_starts.empty()) row_starts.push_back(0);
    REQUIRE(append_sync(*store, "notes", server.num_events() - added.events(), added).ok());
  }
  // The last ten batches are still entries of the journal, read one by one.
  auto loaded = store->load("notes", "reader", nullptr);
  REQUIRE(loaded.ok());
  CHECK(loaded->text() == server.text());
  CHECK(codec::save(*loaded) == codec::save(server));
  CHECK(loaded->check_invariants().ok());

  // A row whose events the document refuses (a position past the end), and a later row that is
  // not even a batch: the load fails naming the first, as one row at a time would.
  Doc q("q");
  REQUIRE(q.insert(0, "zz").ok());
  OpBatch bad = q.ops_since({});
  bad.runs[0].pos = 1000000;
  auto hex = [](const std::string& bytes) {
    static const char* digits = "0123456789ABCDEF";
    std::string h;
    for (unsigned char ch : bytes) {
      h += digits[ch >> 4];
      h += digits[ch & 15];
    }
    return h;
  };
  REQUIRE(row_starts.size() == 30);
  const uint64_t bad_row = row_starts[10], garbled_row = row_starts[20];
  store.reset();
  raw_sql(path, "UPDATE log SET batch = X'" + hex(codec::encode_ops(bad)) + "' WHERE first_event = " + std::to_string(bad_row));
  raw_sql(path, "UPDATE log SET batch = X'01' WHERE first_event = " + std::to_string(garbled_row));
  store = open_store(path);
  loaded = store->load("notes", "reader", nullptr);
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.status().code() == Code::kInvalidArgument);
  CHECK_THAT(loaded.status().message(), Catch::Contains("at event " + std::to_string(bad_row) + ":"));
}

TEST_CASE("store: documents are listed with their sizes and agents, and deleted", "[storage]") {
  TempDir dir;
  auto store = open_store(dir.file("t.db"));
  Rng rng(3);
  Writer w1{*store, "alpha"}, w2{*store, "beta"};
  for (int i = 0; i < 5; ++i) {
    REQUIRE(w1.edit(rng, 2).ok());
    REQUIRE(w2.edit(rng, 1).ok());
  }
  auto docs = store->list();
  REQUIRE(docs.ok());
  REQUIRE(docs->size() == 2);
  CHECK((*docs)[0].name == "alpha");
  CHECK((*docs)[0].events == w1.server.num_events());
  CHECK((*docs)[0].log_rows == 5);
  CHECK((*docs)[0].log_bytes > 0);
  REQUIRE((*docs)[0].agents.size() == 1);
  CHECK((*docs)[0].agents[0].first == "client");
  CHECK((*docs)[0].agents[0].second == w1.server.num_events());
  CHECK((*docs)[1].updated_ms >= (*docs)[1].created_ms);
  store->remove_document("alpha", nullptr);
  REQUIRE(store->sync().ok());
  CHECK(store->list()->size() == 1);
  CHECK(store->load("alpha", "r", nullptr).status().code() == Code::kNotFound);
  store->remove_document("alpha", nullptr);
  CHECK(store->sync().code() == Code::kNotFound);
}

TEST_CASE("store: statistics are exact with entries in the journal, after a fold and after a restart", "[storage]") {
  // Appends go to the journal, which is folded into the log (and the documents' statistics)
  // about once a second; readers add the journal's entries. Whenever they are read, they must
  // match the log. (After a crash the journal is simply left: crash_test kills real writers.)
  TempDir dir;
  const std::string path = dir.file("t.db");
  Rng rng(11);
  Doc server{"server"};
  Doc a{"ann"}, b{"bob"};
  Version sent_a, sent_b;
  uint64_t logged = 0;
  auto step = [&](Store& store, Doc& client, Version& sent) {
    tandem::testing::random_edit(rng, client);
    OpBatch added;
    REQUIRE(server.apply(client.ops_since(sent, Doc::DeletedText::kInclude), &added).ok());
    sent = client.version();
    REQUIRE(append_sync(store, "notes", logged, added).ok());
    logged = server.num_events();
  };
  auto check = [&](Store& store) {
    auto info = store.info("notes");
    REQUIRE(info.ok());
    CHECK(info->events == server.num_events());
    CHECK(*store.logged_events("notes") == server.num_events());
    std::vector<std::pair<std::string, uint64_t>> want;
    for (const auto& [agent, next] : server.version().entries()) want.emplace_back(agent, next);
    std::sort(want.begin(), want.end());
    CHECK(info->agents == want);
    auto listed = store.list();
    REQUIRE(listed.ok());
    REQUIRE(listed->size() == 1);
    CHECK(listed->front().events == server.num_events());
    CHECK(listed->front().agents == want);
  };
  {
    auto store = open_store(path);
    for (int i = 0; i < 20; ++i) {
      step(*store, i % 3 ? a : b, i % 3 ? sent_a : sent_b);
      check(*store);
    }
  }  // closing folds the journal
  {
    auto store = open_store(path);
    check(*store);
    step(*store, a, sent_a);
    check(*store);
    // A fold a second later, with appends from both agents in the journal before it.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    step(*store, b, sent_b);
    check(*store);
  }
  auto store = open_store(path);
  check(*store);
}

TEST_CASE("store: a log row folded from several authors' batches still ends each one's session where its events end", "[storage][history]") {
  // The fold joins what was committed within about a second into one row, whoever wrote it; the
  // history read from the log must not depend on when the fold ran (seen: the web editor's
  // slider showing "tle\n" as the last change, its session begun two characters into "Title\n").
  TempDir dir;
  const std::string path = dir.file("t.db");
  Doc server{"server"};
  Doc ann{"ann/laptop"}, bob{"bob"};
  uint64_t logged = 0;
  Version sent_ann, sent_bob;
  auto type = [&](Store& store, Doc& client, Version& sent, uint32_t at, const std::string& text) {
    REQUIRE(client.apply(server.ops_since(client.version())).ok());
    REQUIRE(client.insert(at, text).ok());
    OpBatch added;
    REQUIRE(server.apply(client.ops_since(sent), &added).ok());
    sent = client.version();
    REQUIRE(append_sync(store, "notes", logged, added).ok());
    logged = server.num_events();
  };
  {
    auto store = open_store(path);
    type(*store, ann, sent_ann, 0, "first draft\n");   // events 0..12
    type(*store, bob, sent_bob, 12, "second part\n");  // 12..24
    type(*store, ann, sent_ann, 0, "Ti");                // 24..26
    type(*store, ann, sent_ann, 2, "tle\n");            // 26..30
  }  // closing folds the journal: one row
  auto store = open_store(path);
  auto rows = store->read_log("notes", 0, 30);
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 1);
  auto h = tandem::store::read_history(*store, "notes");
  REQUIRE(h.ok());
  CHECK(h->logged() == 30);
  const auto sessions = h->sessions(60000);
  REQUIRE(sessions.size() == 2);
  CHECK(sessions[0].author == "bob");
  CHECK(sessions[0].from == 12);
  CHECK(sessions[0].to == 24);
  CHECK(sessions[0].inserted == 12);
  CHECK(sessions[1].author == "ann");
  CHECK(sessions[1].agents == std::vector<std::string>{"ann/laptop"});
  CHECK(sessions[1].from == 0);
  CHECK(sessions[1].to == 30);
  CHECK(sessions[1].inserted == 18);
  // The points inside the row are exact: the text after bob's part, and after "Ti".
  for (auto [point, text] : {std::pair<uint64_t, std::string>{12, "first draft\n"}, {24, "first draft\nsecond part\n"},
                             {26, "Tifirst draft\nsecond part\n"}}) {
    auto at = h->at_logged(point);
    REQUIRE(at.ok());
    auto then = h->history.text_at(*at);
    REQUIRE(then.ok());
    CHECK(*then == text);
  }
}

TEST_CASE("store: a read-only store reads and refuses writes", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("t.db");
  {
    auto store = open_store(path);
    Rng rng(1);
    Writer w{*store, "d"};
    REQUIRE(w.edit(rng, 4).ok());
  }
  StoreOptions o;
  o.read_only = true;
  auto store = open_store(path, o);
  CHECK(store->load("d", "r", nullptr).ok());
  Status st;
  store->append("d", 0, OpBatch{}, [&](Status s) { st = s; });
  CHECK(st.code() == Code::kIOError);
}

TEST_CASE("store: a full disk fails appends loudly and acknowledges nothing", "[storage]") {
  TempDir dir;
  const std::string path = dir.file("t.db");
  StoreOptions o;
  o.max_pages = 40;  // a 160 KiB disk
  uint64_t acked_events = 0;
  Status failure;
  {
    auto store = open_store(path, o);
    Doc server("server");
    Rng rng(5);
    for (int i = 0; i < 2000 && failure.ok(); ++i) {
      Version v = server.version();
      REQUIRE(server.insert(server.length(), tandem::testing::random_text(rng, 200, true)).ok());
      const OpBatch b = server.ops_since(v);
      store->append("d", server.num_events() - b.events(), b, [&](Status st) {
        if (st.ok()) {
          acked_events += 200;
        } else if (failure.ok()) {
          failure = st;
        }
      });
      (void)store->sync();
    }
    REQUIRE_FALSE(failure.ok());
    CHECK(failure.code() == Code::kIOError);
    CHECK_THAT(failure.message(), Catch::Contains("full"));
  }
  // Reopened without the quota: exactly what was acknowledged is there, and the file is sound.
  auto store = open_store(path);
  CHECK(*store->integrity_check() == "ok");
  CHECK(*store->logged_events("d") == acked_events);
  CHECK(store->load("d", "r", nullptr).ok());
}

TEST_CASE("store: a real full disk (a small tmpfs) fails appends loudly", "[storage][root]") {
  TempDir dir;
  const std::string mnt = dir.file("mnt");
  std::filesystem::create_directory(mnt);
  if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=512k") != 0) {
    WARN("SKIPPED: cannot mount a tmpfs here (needs root); the full-disk case is covered by max_pages");
    return;
  }
  struct Unmount {
    std::string p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  uint64_t acked_events = 0;
  Status failure;
  {
    auto store = open_store(mnt + "/t.db");
    Doc server("server");
    Rng rng(9);
    for (int i = 0; i < 5000 && failure.ok(); ++i) {
      const Version v = server.version();
      REQUIRE(server.insert(server.length(), tandem::testing::random_text(rng, 300, true)).ok());
      const OpBatch b = server.ops_since(v);
      store->append("d", server.num_events() - b.events(), b, [&](Status st) {
        if (st.ok()) {
          acked_events += 300;
        } else if (failure.ok()) {
          failure = st;
        }
      });
      (void)store->sync();
    }
    REQUIRE_FALSE(failure.ok());
    CHECK(failure.code() == Code::kIOError);
    INFO(failure.ToString());
    CHECK((failure.message().find("full") != std::string::npos || failure.message().find("I/O") != std::string::npos));
  }
  // Space again (the WAL may have taken the last of it); everything acknowledged is there.
  REQUIRE(mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT, "size=4m") == 0);
  auto store = open_store(mnt + "/t.db");
  CHECK(*store->integrity_check() == "ok");
  CHECK(*store->logged_events("d") == acked_events);
}
