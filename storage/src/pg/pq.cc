#include "pg/pq.h"

#include <charconv>

namespace tandem::storage::pq {

int64_t PgResult::int64(int row, int col) const {
  const std::string_view t = text(row, col);
  int64_t v = 0;
  std::from_chars(t.data(), t.data() + t.size(), v);
  return v;
}

std::string PgResult::bytes(int row, int col) const {
  size_t n = 0;
  unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row, col)), &n);
  if (!raw) return {};
  std::string out(reinterpret_cast<const char*>(raw), n);
  PQfreemem(raw);
  return out;
}

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// libpq's parameter arrays for `params`.
struct Params {
  explicit Params(const std::vector<Param>& params) {
    for (const auto& p : params) {
      values.push_back(p.value.data());
      lengths.push_back(static_cast<int>(p.value.size()));
      formats.push_back(p.binary ? 1 : 0);
    }
  }
  int count() const { return static_cast<int>(values.size()); }
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
};

bool ok(PGresult* r) {
  const auto s = PQresultStatus(r);
  return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

}  // namespace

Result<std::unique_ptr<Conn>> Conn::connect(const std::string& conninfo) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (!c) return Status::IOError("PostgreSQL: out of memory connecting");
  if (PQstatus(c) != CONNECTION_OK) {
    const std::string why = trimmed(PQerrorMessage(c));
    PQfinish(c);
    return Status::IOError("cannot connect to PostgreSQL (" + redact(conninfo) + "): " + why);
  }
  std::unique_ptr<Conn> conn(new Conn(c));
  // Tandem's own settings, whatever the server's defaults: durable commits, quiet notices.
  Status st = conn->exec("SET synchronous_commit = on; SET client_min_messages = warning");
  if (!st.ok()) return st;
  return conn;
}

Conn::~Conn() {
  if (c_) PQfinish(c_);
}

Status Conn::error(const char* what, PGresult* r) const {
  std::string why = r ? trimmed(PQresultErrorMessage(r)) : "";
  if (why.empty()) why = trimmed(PQerrorMessage(c_));
  if (PQstatus(c_) != CONNECTION_OK) return Status::IOError(std::string("PostgreSQL connection lost (") + what + "): " + why);
  return Status::IOError(std::string("PostgreSQL (") + what + "): " + why);
}

Status Conn::exec(const std::string& sql) {
  PGresult* r = PQexec(c_, sql.c_str());
  Status st = ok(r) ? Status::OK() : error("exec", r);
  PQclear(r);
  return st;
}

Result<PgResult> Conn::query(const std::string& sql, const std::vector<Param>& params) {
  Params p(params);
  PGresult* r = PQexecParams(c_, sql.c_str(), p.count(), nullptr, p.values.data(), p.lengths.data(), p.formats.data(), 0);
  if (!ok(r)) {
    Status st = error("query", r);
    PQclear(r);
    return st;
  }
  return PgResult(r);
}

Status Conn::transaction(const std::vector<Statement>& statements) {
  if (PQenterPipelineMode(c_) != 1) return error("pipeline");
  Status first;
  bool sent = true;
  for (const auto& s : statements) {
    Params p(s.params);
    if (PQsendQueryParams(c_, s.sql.c_str(), p.count(), nullptr, p.values.data(), p.lengths.data(), p.formats.data(), 0) != 1) {
      sent = false;
      first = error("send");
      break;
    }
  }
  if (sent && PQpipelineSync(c_) != 1) {
    sent = false;
    first = error("sync");
  }
  if (sent) {
    // Each statement's results end with a null; the sync point ends the pipeline's.
    for (;;) {
      PGresult* r = PQgetResult(c_);
      if (!r) {
        if (!alive()) {
          if (first.ok()) first = error("results");
          break;
        }
        continue;
      }
      const auto status = PQresultStatus(r);
      if (status == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        break;
      }
      if (!ok(r) && status != PGRES_PIPELINE_ABORTED && first.ok()) first = error("transaction", r);
      PQclear(r);
    }
  }
  if (PQexitPipelineMode(c_) != 1 && first.ok()) first = error("pipeline end");
  return first;
}

std::string redact(const std::string& conninfo) {
  // URI: postgresql://user:password@host/...; key/value: password=...
  std::string s = conninfo;
  const size_t scheme = s.find("://");
  if (scheme != std::string::npos) {
    const size_t at = s.find('@', scheme + 3);
    const size_t colon = s.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at) s.replace(colon + 1, at - colon - 1, "***");
  }
  const size_t pw = s.find("password=");
  if (pw != std::string::npos) {
    size_t end = s.find_first_of(" &", pw);
    if (end == std::string::npos) end = s.size();
    s.replace(pw + 9, end - pw - 9, "***");
  }
  return s;
}

}  // namespace tandem::storage::pq
