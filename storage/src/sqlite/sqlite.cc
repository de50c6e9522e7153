#include "sqlite/sqlite.h"

#include <sqlite3.h>

namespace tandem::storage::sqlite {

Status error(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db && sqlite3_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  msg += " (SQLite code " + std::to_string(rc) + ")";
  switch (rc & 0xFF) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
      return Status::Corruption(msg);
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_ERROR:
      return Status::Internal(msg);
    case SQLITE_CONSTRAINT:
      return Status::InvalidArgument(msg);
    default:  // FULL, IOERR, READONLY, CANTOPEN, PERM, BUSY, LOCKED, NOMEM, ...
      return Status::IOError(msg);
  }
}

// ---- Statement ----

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int i, int64_t v) {
  const int rc = sqlite3_bind_int64(stmt_, i, v);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = error(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind_text(int i, std::string_view v) {
  const int rc = sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = error(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind_blob(int i, std::string_view v) {
  const int rc = sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = error(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind_null(int i) {
  const int rc = sqlite3_bind_null(stmt_, i);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = error(db_, rc, "bind");
  return *this;
}

Result<bool> Statement::step() {
  if (!bind_status_.ok()) return bind_status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return error(db_, rc, sqlite3_sql(stmt_));
}

Status Statement::run() {
  for (;;) {
    auto r = step();
    if (!r.ok()) return r.status();
    if (!*r) return Status::OK();
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_status_ = Status::OK();
}

int64_t Statement::int64(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string_view Statement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string_view();
}

std::string_view Statement::blob(int col) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
  return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string_view();
}

bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

// ---- Database ----

Result<std::unique_ptr<Database>> Database::open(const std::string& path, bool read_only, const std::string& vfs) {
  sqlite3* db = nullptr;
  const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, vfs.empty() ? nullptr : vfs.c_str());
  if (rc != SQLITE_OK) {
    Status st = error(db, rc, "open " + path);
    sqlite3_close(db);
    return st;
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Database>(new Database(db, path));
}

Database::~Database() {
  cache_.clear();  // statements first: sqlite3_close refuses while any is alive
  sqlite3_close(db_);
}

Status Database::exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::OK();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  Status st = error(nullptr, rc, sql);
  return Status(st).WithContext(msg);
}

Result<Statement*> Database::cached(const char* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    it->second->reset();
    return it->second.get();
  }
  auto st = prepare(sql);
  if (!st.ok()) return st.status();
  Statement* raw = st->get();
  cache_.emplace(sql, std::move(*st));
  return raw;
}

Result<std::unique_ptr<Statement>> Database::prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return error(db_, rc, "prepare " + sql);
  return std::make_unique<Statement>(db_, stmt);
}

Result<int64_t> Database::query_int(const std::string& sql) {
  auto st = prepare(sql);
  if (!st.ok()) return st.status();
  auto row = (*st)->step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::Internal("no value from " + sql);
  return (*st)->int64(0);
}

int64_t Database::changes() const { return sqlite3_changes64(db_); }
int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

// ---- Transaction ----

namespace {

// BEGIN, COMMIT and ROLLBACK through cached statements: the writer runs hundreds of
// transactions a second, and parsing the three words again each time was a tenth of its work.
Status run_cached(Database* db, const char* sql) {
  auto st = db->cached(sql);
  if (!st.ok()) return st.status();
  ScopedReset reset(*st);
  return (*st)->run();
}

}  // namespace

Transaction::Transaction(Database* db) : db_(db) {
  begun_ = run_cached(db_, "BEGIN IMMEDIATE");
  open_ = begun_.ok();
}

Transaction::~Transaction() {
  if (open_) rollback();
}

Status Transaction::commit() {
  if (!open_) return begun_.ok() ? Status::Internal("transaction already finished") : begun_;
  Status st = run_cached(db_, "COMMIT");
  if (st.ok()) {
    open_ = false;
  } else {
    rollback();
  }
  return st;
}

void Transaction::rollback() {
  if (!open_) return;
  (void)run_cached(db_, "ROLLBACK");
  open_ = false;
}

}  // namespace tandem::storage::sqlite
