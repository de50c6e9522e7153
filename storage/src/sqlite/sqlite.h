// RAII over the SQLite C API: Database, Statement, Transaction.
//
// Every failing call returns a Status carrying sqlite3_errmsg and the result code, mapped to a
// Status code: Corruption for a damaged or foreign file, IOError for everything the operating
// system or the disk refused (full, read-only, locked), Internal for misuse.
//
// Not thread-safe: a Database and its Statements belong to one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "crdt/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tandem::storage::sqlite {

using crdt::Result;
using crdt::Status;

// The Status for result code `rc` of an operation described by `what` on `db` (may be null).
Status error(sqlite3* db, int rc, std::string_view what);

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binding, 1-based as in SQLite. Text and blobs are copied.
  Statement& bind(int i, int64_t v);
  Statement& bind_text(int i, std::string_view v);
  Statement& bind_blob(int i, std::string_view v);
  Statement& bind_null(int i);

  // One step: true with a row, false when done.
  Result<bool> step();
  // Steps to the end (for statements without rows).
  Status run();
  void reset();

  int64_t int64(int col) const;
  std::string_view text(int col) const;
  std::string_view blob(int col) const;
  bool is_null(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  Status bind_status_;  // the first bind error, reported by step()
};

class Database {
 public:
  // read_only: SQLITE_OPEN_READONLY, else read-write, creating the file if it is missing.
  // vfs: a registered SQLite VFS name, or empty for the default.
  static Result<std::unique_ptr<Database>> open(const std::string& path, bool read_only, const std::string& vfs = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  Status exec(const std::string& sql);
  // A prepared statement for `sql`, cached by its text and reset, ready to bind.
  Result<Statement*> cached(const char* sql);
  // A one-off statement.
  Result<std::unique_ptr<Statement>> prepare(const std::string& sql);
  // Runs a single-value query (a PRAGMA, a count) and returns the integer.
  Result<int64_t> query_int(const std::string& sql);
  int64_t changes() const;
  int64_t last_insert_rowid() const;
  sqlite3* raw() { return db_; }
  const std::string& path() const { return path_; }

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
  std::unordered_map<std::string, std::unique_ptr<Statement>> cache_;
};

// Resets a (cached) statement when the scope ends. A statement left mid-result keeps its
// connection in a read transaction, and everything read on it later would see old data.
class ScopedReset {
 public:
  explicit ScopedReset(Statement* s) : s_(s) {}
  ~ScopedReset() { s_->reset(); }
  ScopedReset(const ScopedReset&) = delete;
  ScopedReset& operator=(const ScopedReset&) = delete;

 private:
  Statement* s_;
};

// BEGIN IMMEDIATE on construction (begun() says whether it took), ROLLBACK on destruction unless
// committed.
class Transaction {
 public:
  explicit Transaction(Database* db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  const Status& begun() const { return begun_; }
  Status commit();
  void rollback();

 private:
  Database* db_;
  Status begun_;
  bool open_ = false;
};

}  // namespace tandem::storage::sqlite
