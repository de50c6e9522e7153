// A thin layer over libpq: connections and results as RAII objects, errors as Status with the
// server's message, and the pipeline that sends a whole group commit in one round trip.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace tandem::storage::pq {

using crdt::Result;
using crdt::Status;

class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r) {}
  PgResult(PgResult&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  PgResult& operator=(PgResult&& o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  ~PgResult() {
    if (r_) PQclear(r_);
  }
  int rows() const { return PQntuples(r_); }
  bool null(int row, int col) const { return PQgetisnull(r_, row, col); }
  std::string_view text(int row, int col) const {
    return {PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col))};
  }
  int64_t int64(int row, int col) const;
  // A bytea column, decoded from the text format.
  std::string bytes(int row, int col) const;

 private:
  PGresult* r_;
};

// One parameter: text, or binary bytes (bytea).
struct Param {
  std::string value;
  bool binary = false;
  static Param text(std::string v) { return {std::move(v), false}; }
  static Param num(int64_t v) { return {std::to_string(v), false}; }
  static Param bytes(std::string v) { return {std::move(v), true}; }
};

class Conn {
 public:
  // Errors: IOError for a server that cannot be reached or refuses the login, with libpq's reason.
  static Result<std::unique_ptr<Conn>> connect(const std::string& conninfo);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // A statement without parameters (several, separated by ';', run in one implicit transaction).
  Status exec(const std::string& sql);
  Result<PgResult> query(const std::string& sql, const std::vector<Param>& params = {});

  // Sends `statements` in one round trip as one implicit transaction (a pipeline up to its sync
  // point): all commit, or none. Returns the first error.
  struct Statement {
    std::string sql;
    std::vector<Param> params;
  };
  Status transaction(const std::vector<Statement>& statements);

  // False once the connection is gone (the caller reconnects).
  bool alive() const { return PQstatus(c_) == CONNECTION_OK; }
  PGconn* raw() { return c_; }

 private:
  explicit Conn(PGconn* c) : c_(c) {}
  Status error(const char* what, PGresult* r = nullptr) const;
  PGconn* c_;
};

// A connection string or URI with any password removed, for messages.
std::string redact(const std::string& conninfo);

}  // namespace tandem::storage::pq
