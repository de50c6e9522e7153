#include "storage/pg_store.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "crdt/codec.h"
#include "pg/pq.h"
#include "tail.h"
#include "writer.h"

namespace tandem::storage {

namespace codec = crdt::codec;
using store::DocInfo;
using store::LogRow;
using store::SnapshotInfo;
using pq::Param;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The schema, in a PostgreSQL schema of its own so that Tandem's tables sit beside an
// application's without touching them. Rows of the log are keyed by (doc, node, node_seq): each
// node numbers its own rows of a document, gap-free and in commit order (pg_store.h).
const char* const kCreate =
    "CREATE SCHEMA IF NOT EXISTS tandem;"
    "CREATE TABLE IF NOT EXISTS tandem.meta (key text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tandem.documents (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,"
    "  created_ms bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tandem.log (id bigserial PRIMARY KEY, doc bigint NOT NULL, node text NOT NULL,"
    "  node_seq bigint NOT NULL, time_ms bigint NOT NULL, events integer NOT NULL, batch bytea NOT NULL,"
    "  UNIQUE (doc, node, node_seq));"
    "CREATE INDEX IF NOT EXISTS log_doc_id ON tandem.log (doc, id);"
    "CREATE TABLE IF NOT EXISTS tandem.heads (doc bigint NOT NULL, node text NOT NULL, node_seq bigint NOT NULL,"
    "  PRIMARY KEY (doc, node));"
    "CREATE TABLE IF NOT EXISTS tandem.snapshots (id bigserial PRIMARY KEY, doc bigint NOT NULL,"
    "  time_ms bigint NOT NULL, events bigint NOT NULL, cursors text NOT NULL, data bytea NOT NULL);"
    "CREATE INDEX IF NOT EXISTS snapshots_doc ON tandem.snapshots (doc, id);"
    "CREATE TABLE IF NOT EXISTS tandem.nodes (node text PRIMARY KEY, started_ms bigint NOT NULL, host text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tandem.versions (doc bigint NOT NULL, name text NOT NULL, events bigint NOT NULL,"
    "  time_ms bigint NOT NULL, agent text NOT NULL, PRIMARY KEY (doc, name));"
    "INSERT INTO tandem.meta VALUES ('application', 'tandem'), ('schema', '1') ON CONFLICT (key) DO NOTHING;";

// Where a reader stands in a document: per node, the last node_seq it has.
using Cursors = std::map<std::string, int64_t>;

std::string encode_cursors(const Cursors& c) {
  std::string out;
  for (const auto& [node, seq] : c) {
    if (!out.empty()) out.push_back(',');
    out.append(node);
    out.push_back(':');
    out.append(std::to_string(seq));
  }
  return out;
}

Cursors decode_cursors(std::string_view s) {
  Cursors c;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    const std::string_view item = s.substr(0, comma);
    const size_t colon = item.rfind(':');
    if (colon != std::string_view::npos) c[std::string(item.substr(0, colon))] = std::atoll(std::string(item.substr(colon + 1)).c_str());
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return c;
}

std::string make_node_name() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::string h;
  for (const char* p = host; *p && h.size() < 40; ++p) h += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '-';
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(rd() & 0xffffff));
  return (h.empty() ? std::string("node") : h) + "-" + std::to_string(getpid()) + "-" + suffix;
}

// One row of the log a commit writes (a Row of the writer's, numbered).
struct PgRow {
  size_t head = 0;  // its first write in the group
  int64_t doc = 0;
  int64_t node_seq = 0;
  int64_t events = 0;
  std::string batch;  // encoded batches, one after the other
};

class Backoff {
 public:
  std::chrono::milliseconds next() {
    const auto d = delay_;
    delay_ = std::min(delay_ * 2, std::chrono::milliseconds(2000));
    return d;
  }
  void reset() { delay_ = std::chrono::milliseconds(50); }

 private:
  std::chrono::milliseconds delay_{50};
};

// A log row read back: the batches it holds and where it stands.
struct ReadRow {
  int64_t id = 0;
  std::string node;
  int64_t node_seq = 0;
  std::string batch;
};

}  // namespace

struct PgImpl {
  PgOptions opt;
  std::string node;
  std::string where;  // the connection without its password

  // The writer's (GroupWriter's thread only).
  std::unique_ptr<pq::Conn> wconn;
  std::unordered_map<std::string, int64_t> doc_ids;  // writer thread only
  std::unordered_map<int64_t, int64_t> next_seq;     // doc id -> this node's next node_seq

  // Readers.
  std::mutex read_mu;
  std::unique_ptr<pq::Conn> rconn;

  // Watched documents and the listener.
  struct Watch {
    store::DocStore::Remote on_remote;
    Cursors cursors;
    int64_t doc_id = 0;
    bool dirty = true;
  };
  std::mutex watch_mu;
  std::unordered_map<std::string, Watch> watches;
  std::unordered_map<std::string, Cursors> loaded;  // where the last load() of a document stopped
  std::thread listener;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};

  void log(const std::string& line) const {
    if (opt.log) opt.log(line);
  }

  Status connect_writer();
  // Commits `group`, retrying while the connection is down (until `writer` closes).
  // A snapshot or removal of a document that does not exist fails alone with NotFound.
  Status commit(std::vector<Write>& group, const std::vector<Row>& rows, std::vector<Status>* results,
                GroupWriter& writer);
  Status try_commit(std::vector<Write>& group, const std::vector<Row>& rows, std::vector<PgRow>& numbered,
                    std::vector<Status>* results, bool* retry);
  // The document's id, creating the document (for an append) or not (0 if there is none).
  Result<int64_t> writer_doc_id(const std::string& name, bool create = true);

  // Readers: `f(conn)` on the read connection, reconnecting once if it was lost.
  template <class F>
  auto read(F&& f) -> decltype(f(std::declval<pq::Conn&>()));

  void run_listener();
  void wake_listener() {
    if (wake_fd >= 0) {
      const uint64_t one = 1;
      (void)::write(wake_fd, &one, sizeof one);
    }
  }
};

namespace {

// The document's id, or NotFound.
Result<int64_t> doc_id(pq::Conn& c, std::string_view name) {
  auto r = c.query("SELECT id FROM tandem.documents WHERE name = $1", {Param::text(std::string(name))});
  if (!r.ok()) return r.status();
  if (r->rows() == 0) return Status::NotFound("no document '" + std::string(name) + "'");
  return r->int64(0, 0);
}

// Rows of `doc` beyond `cursors`, in insertion order (id), with the heads they reach.
Status rows_beyond(pq::Conn& c, int64_t doc, const std::string& skip_node, Cursors* cursors, std::vector<ReadRow>* out) {
  auto heads = c.query("SELECT node, node_seq FROM tandem.heads WHERE doc = $1", {Param::num(doc)});
  if (!heads.ok()) return heads.status();
  for (int i = 0; i < heads->rows(); ++i) {
    const std::string node(heads->text(i, 0));
    const int64_t head = heads->int64(i, 1);
    if (node == skip_node) continue;
    const int64_t have = cursors->count(node) ? (*cursors)[node] : 0;
    if (head <= have) continue;
    auto rows = c.query(
        "SELECT id, node_seq, batch FROM tandem.log WHERE doc = $1 AND node = $2 AND node_seq > $3 AND node_seq <= $4 "
        "ORDER BY node_seq",
        {Param::num(doc), Param::text(node), Param::num(have), Param::num(head)});
    if (!rows.ok()) return rows.status();
    for (int k = 0; k < rows->rows(); ++k) out->push_back({rows->int64(k, 0), node, rows->int64(k, 1), rows->bytes(k, 2)});
  }
  std::sort(out->begin(), out->end(), [](const ReadRow& a, const ReadRow& b) { return a.id < b.id; });
  return Status::OK();
}

// Checks the schema: absent (create it unless read-only), Tandem's of this or an older version
// (fine), newer or foreign (refused, with why).
Status check_schema(pq::Conn& c, const std::string& where, bool read_only) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto q = c.query(
        "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = 'tandem'),"
        " to_regclass('tandem.meta') IS NOT NULL");
    if (!q.ok()) return q.status();
    const bool schema = q->text(0, 0) == "t", meta = q->text(0, 1) == "t";
    if (schema && !meta) {
      return Status::Corruption(where + " has a schema \"tandem\" that Tandem did not create (no tandem.meta); refusing to use it");
    }
    if (meta) {
      auto m = c.query("SELECT key, value FROM tandem.meta");
      if (!m.ok()) return m.status();
      std::string app, version;
      for (int i = 0; i < m->rows(); ++i) {
        if (m->text(i, 0) == "application") app = std::string(m->text(i, 1));
        if (m->text(i, 0) == "schema") version = std::string(m->text(i, 1));
      }
      if (app != "tandem") return Status::Corruption(where + ": tandem.meta does not say application 'tandem'; refusing to use it");
      const int v = std::atoi(version.c_str());
      if (v > kPgSchemaVersion) {
        return Status::NotSupported(where + " was written by a newer Tandem (schema " + version +
                                    "; this build reads schemas up to " + std::to_string(kPgSchemaVersion) + ")");
      }
      if (v < 1) return Status::Corruption(where + ": tandem.meta has no valid schema version ('" + version + "')");
      return Status::OK();
    }
    if (read_only) return Status::NotFound(where + " holds no Tandem data (no schema \"tandem\")");
    // Several nodes may start at once: the lock lets one create at a time, and every statement
    // tolerates finding its object made by another.
    Status st = c.exec("BEGIN");
    if (st.ok()) st = c.exec("SELECT pg_advisory_xact_lock(1414415437)");
    if (st.ok()) {
      auto again = c.query("SELECT to_regclass('tandem.meta') IS NOT NULL");
      st = again.status();
      if (again.ok() && again->text(0, 0) != "t") st = c.exec(kCreate);
    }
    if (st.ok()) st = c.exec("COMMIT");
    if (!st.ok()) {
      (void)c.exec("ROLLBACK");
      return st.WithContext("creating Tandem's schema in " + where);
    }
  }
  return Status::Internal("schema check did not settle");
}

}  // namespace

// ---- opening and closing ----

class PgNode final : public WriterStore<PgStore> {
 public:
  explicit PgNode(std::unique_ptr<PgImpl> impl)
      : WriterStore<PgStore>(impl->where, impl->opt.read_only, impl->opt.commit_interval), impl_(std::move(impl)) {
    writer_.start(this);
    if (!impl_->opt.read_only) {
      PgImpl* p = impl_.get();
      p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      p->listener = std::thread([p] { p->run_listener(); });
    }
  }
  ~PgNode() override {
    writer_.stop();
    impl_->stopping = true;
    impl_->wake_listener();
    if (impl_->listener.joinable()) impl_->listener.join();
    if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
  }

  Result<crdt::Doc> load(std::string_view doc, std::string_view agent, std::vector<std::string>* warnings) override;
  Result<uint64_t> logged_events(std::string_view doc) override;
  // Rows whose batches do not decode, snapshots that do not load, heads behind their rows.
  Result<std::string> integrity_check() override;
  Result<std::vector<LogRow>> read_log(std::string_view doc, uint64_t from_event, uint64_t to_event) override;
  Result<std::vector<SnapshotInfo>> snapshots(std::string_view doc) override;
  Result<std::vector<store::NamedVersion>> versions(std::string_view doc) override;
  Result<DocInfo> info(std::string_view doc) override;
  Result<std::vector<DocInfo>> list() override;
  const std::string& path() const override { return impl_->where; }  // the connection without its password
  void watch(const std::string& doc, Remote on_remote) override;
  void unwatch(const std::string& doc) override;
  const std::string& node() const override { return impl_->node; }

 private:
  Status commit(std::vector<Write>& group, const std::vector<Row>& rows, std::vector<Status>* results) override {
    return impl_->commit(group, rows, results, writer_);
  }
  // What watch() delivered last is the server's to say; otherwise, where the last load() stopped.
  std::string snapshot_position(const std::string& doc, std::string position) override {
    if (!position.empty()) return position;
    std::lock_guard<std::mutex> lock(impl_->watch_mu);
    auto it = impl_->loaded.find(doc);
    return it != impl_->loaded.end() ? encode_cursors(it->second) : std::string();
  }

  std::unique_ptr<PgImpl> impl_;
};

Result<std::unique_ptr<PgStore>> PgStore::open(const PgOptions& options) {
  auto impl = std::make_unique<PgImpl>();
  impl->opt = options;
  impl->where = "PostgreSQL " + pq::redact(options.conninfo);
  impl->node = make_node_name();
  auto c = pq::Conn::connect(options.conninfo);
  if (!c.ok()) return c.status();
  TANDEM_RETURN_IF_ERROR(check_schema(**c, impl->where, options.read_only));
  if (!options.read_only) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    auto reg = (*c)->query("INSERT INTO tandem.nodes (node, started_ms, host) VALUES ($1, $2, $3)",
                           {Param::text(impl->node), Param::num(now_ms()), Param::text(host)});
    if (!reg.ok()) return reg.status();
    impl->wconn = std::move(*c);
    auto r = pq::Conn::connect(options.conninfo);
    if (!r.ok()) return r.status();
    impl->rconn = std::move(*r);
  } else {
    impl->rconn = std::move(*c);
  }
  return std::unique_ptr<PgStore>(new PgNode(std::move(impl)));
}

Status PgImpl::connect_writer() {
  if (wconn && wconn->alive()) return Status::OK();
  wconn.reset();
  auto c = pq::Conn::connect(opt.conninfo);
  if (!c.ok()) return c.status();
  wconn = std::move(*c);
  return Status::OK();
}

Result<int64_t> PgImpl::writer_doc_id(const std::string& name, bool create) {
  auto it = doc_ids.find(name);
  if (it != doc_ids.end()) return it->second;
  if (!create) {
    auto r = wconn->query("SELECT id FROM tandem.documents WHERE name = $1", {Param::text(name)});
    if (!r.ok()) return r.status();
    if (r->rows() == 0) return 0;
  }
  auto r = wconn->query(
      "INSERT INTO tandem.documents (name, created_ms) VALUES ($1, $2) "
      "ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
      {Param::text(name), Param::num(now_ms())});
  if (!r.ok()) return r.status();
  const int64_t id = r->int64(0, 0);
  doc_ids[name] = id;
  // This node's rows of the document start after any it wrote before (none: names are new per
  // process, but a document removed and made again keeps the rule simple).
  auto seq = wconn->query("SELECT coalesce(max(node_seq), 0) FROM tandem.log WHERE doc = $1 AND node = $2",
                          {Param::num(id), Param::text(node)});
  if (!seq.ok()) return seq.status();
  next_seq[id] = seq->int64(0, 0) + 1;
  return id;
}

Status PgImpl::try_commit(std::vector<Write>& group, const std::vector<Row>& rows, std::vector<PgRow>& numbered,
                          std::vector<Status>* results, bool* retry) {
  *retry = false;
  Status st = connect_writer();
  if (!st.ok()) {
    *retry = true;
    return st;
  }
  // Rows are numbered once, on the first try, and kept for the retries: a commit whose outcome was
  // lost with the connection is then retried as the same rows, which the database keeps once.
  if (numbered.empty()) {
    for (size_t i = 0; i < group.size(); ++i) {
      const Write& it = group[i];
      if (it.kind == Write::kSync) continue;
      auto id = writer_doc_id(it.doc, it.kind == Write::kAppend);
      if (!id.ok()) {
        *retry = !wconn->alive();
        return id.status();
      }
      (*results)[i] = *id ? Status::OK() : Status::NotFound("no document '" + it.doc + "'");
    }
    for (const Row& r : rows) {
      const int64_t id = doc_ids[group[r.items[0]].doc];
      PgRow& n = numbered.emplace_back(PgRow{r.items[0], id, next_seq[id]++, 0, {}});
      for (size_t k : r.items) {
        n.events += static_cast<int64_t>(group[k].batch.events);
        n.batch += group[k].batch.bytes;
      }
    }
  }
  std::vector<pq::Conn::Statement> sql;
  const int64_t now = now_ms();
  std::vector<std::string> notify;
  bool removes = false;
  for (size_t i = 0; i < group.size(); ++i) removes = removes || (group[i].kind == Write::kRemove && (*results)[i].ok());
  // Without removals (almost always) the log rows go in as one statement whatever their number:
  // arrays of their numbers and one blob of all their batches, cut apart by the database.
  const bool batched = !removes && !numbered.empty();
  if (batched) {
    std::string docs = "{", seqs = "{", events = "{", offsets = "{", lengths = "{", blob;
    for (size_t k = 0; k < numbered.size(); ++k) {
      const PgRow& r = numbered[k];
      const char* sep = k ? "," : "";
      docs.append(sep).append(std::to_string(r.doc));
      seqs.append(sep).append(std::to_string(r.node_seq));
      events.append(sep).append(std::to_string(r.events));
      offsets.append(sep).append(std::to_string(blob.size()));
      lengths.append(sep).append(std::to_string(r.batch.size()));
      blob += r.batch;
    }
    for (auto* a : {&docs, &seqs, &events, &offsets, &lengths}) a->push_back('}');
    sql.push_back({"INSERT INTO tandem.log (doc, node, node_seq, time_ms, events, batch)"
                   " SELECT d, $2::text, s, $3::bigint, e, substring($8::bytea FROM o::integer + 1 FOR l)"
                   " FROM unnest($1::bigint[], $4::bigint[], $5::integer[], $6::bigint[], $7::integer[]) AS t(d, s, e, o, l)"
                   " ON CONFLICT (doc, node, node_seq) DO NOTHING",
                   {Param::text(docs), Param::text(node), Param::num(now), Param::text(seqs), Param::text(events),
                    Param::text(offsets), Param::text(lengths), Param::bytes(std::move(blob))}});
    sql.push_back({"INSERT INTO tandem.heads (doc, node, node_seq)"
                   " SELECT d, $2::text, max(s) FROM unnest($1::bigint[], $3::bigint[]) AS t(d, s) GROUP BY d"
                   " ON CONFLICT (doc, node) DO UPDATE SET node_seq = GREATEST(tandem.heads.node_seq, excluded.node_seq)",
                   {Param::text(docs), Param::text(node), Param::text(seqs)}});
  }
  size_t next_row = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    Write& it = group[i];
    if (!(*results)[i].ok()) continue;
    if (it.kind == Write::kAppend) {
      if (next_row < numbered.size() && numbered[next_row].head == i) {
        const PgRow& r = numbered[next_row++];
        if (!batched) {
          sql.push_back({"INSERT INTO tandem.log (doc, node, node_seq, time_ms, events, batch) VALUES ($1, $2, $3, $4, $5, $6) "
                         "ON CONFLICT (doc, node, node_seq) DO NOTHING",
                         {Param::num(r.doc), Param::text(node), Param::num(r.node_seq), Param::num(now), Param::num(r.events),
                          Param::bytes(r.batch)}});
          sql.push_back({"INSERT INTO tandem.heads (doc, node, node_seq) VALUES ($1, $2, $3) ON CONFLICT (doc, node) "
                         "DO UPDATE SET node_seq = GREATEST(tandem.heads.node_seq, excluded.node_seq)",
                         {Param::num(r.doc), Param::text(node), Param::num(r.node_seq)}});
        }
        if (std::find(notify.begin(), notify.end(), it.doc) == notify.end()) notify.push_back(it.doc);
      }
    } else if (it.kind == Write::kSnapshot) {
      const int64_t id = doc_ids[it.doc];
      Cursors c = decode_cursors(it.position);
      // This node's rows of the document queued before the snapshot, and no later one: appends
      // queued after it share this commit, and are numbered already.
      int64_t upto = next_seq[id] - 1;  // no row of the document in this commit
      for (const PgRow& r : numbered) {
        if (r.doc != id) continue;
        if (r.head > i) {
          upto = r.node_seq - 1;  // numbers are consecutive: the row before this one
          break;
        }
        upto = r.node_seq;
      }
      c[node] = upto;
      sql.push_back({"INSERT INTO tandem.snapshots (doc, time_ms, events, cursors, data) VALUES ($1, $2, $3, $4, $5)",
                     {Param::num(id), Param::num(now), Param::num(static_cast<int64_t>(it.first)),
                      Param::text(encode_cursors(c)), Param::bytes(it.bytes)}});
      sql.push_back({"DELETE FROM tandem.snapshots WHERE doc = $1 AND id NOT IN "
                     "(SELECT id FROM tandem.snapshots WHERE doc = $1 ORDER BY id DESC LIMIT $2)",
                     {Param::num(id), Param::num(std::max<int64_t>(2, opt.keep_snapshots))}});
    } else if (it.kind == Write::kVersion) {
      // Cannot fail the group: whether it went in is read back after the commit (so a retry
      // after a lost connection finds its own row, not a taken name).
      const store::NamedVersion& v = it.version;
      sql.push_back({"INSERT INTO tandem.versions (doc, name, events, time_ms, agent)"
                     " SELECT $1::bigint, $2::text, $3::bigint, $4::bigint, $5::text"
                     " WHERE $3::bigint <= (SELECT coalesce(sum(events), 0) FROM tandem.log WHERE doc = $1)"
                     " ON CONFLICT (doc, name) DO NOTHING",
                     {Param::num(doc_ids[it.doc]), Param::text(v.name), Param::num(static_cast<int64_t>(v.events)),
                      Param::num(v.time_ms), Param::text(v.agent)}});
    } else if (it.kind == Write::kRemove) {
      const int64_t id = doc_ids[it.doc];
      for (const char* table : {"log", "heads", "snapshots", "versions"}) {
        sql.push_back({std::string("DELETE FROM tandem.") + table + " WHERE doc = $1", {Param::num(id)}});
      }
      sql.push_back({"DELETE FROM tandem.documents WHERE id = $1", {Param::num(id)}});
    }
  }
  // One notification per document, in one statement (the listeners read the heads anyway).
  if (!notify.empty()) {
    std::string names = "{";
    for (size_t k = 0; k < notify.size(); ++k) {
      if (k) names.push_back(',');
      names.push_back('"');
      for (char ch : notify[k]) {
        if (ch == '"' || ch == '\\') names.push_back('\\');
        names.push_back(ch);
      }
      names.push_back('"');
    }
    names.push_back('}');
    sql.push_back({"SELECT pg_notify('tandem', d) FROM unnest($1::text[]) AS t(d)", {Param::text(names)}});
  }
  if (sql.empty()) return Status::OK();
  st = wconn->transaction(sql);
  if (!st.ok()) {
    *retry = !wconn->alive();
    return st;
  }
  for (size_t i = 0; i < group.size(); ++i) {
    const Write& it = group[i];
    if (it.kind != Write::kVersion || !(*results)[i].ok()) continue;
    const store::NamedVersion& v = it.version;
    const int64_t id = doc_ids[it.doc];
    auto r = wconn->query("SELECT events, time_ms, agent, (SELECT coalesce(sum(events), 0) FROM tandem.log WHERE doc = $1)"
                          " FROM (SELECT 1) AS one LEFT JOIN tandem.versions ON doc = $1 AND name = $2",
                          {Param::num(id), Param::text(v.name)});
    if (!r.ok()) {
      *retry = !wconn->alive();
      return r.status();
    }
    if (r->null(0, 0)) {
      (*results)[i] = store::version_past_log(it.doc, v.events, static_cast<uint64_t>(r->int64(0, 3)));
    } else if (static_cast<uint64_t>(r->int64(0, 0)) != v.events || r->int64(0, 1) != v.time_ms || r->text(0, 2) != v.agent) {
      (*results)[i] = store::version_name_taken(it.doc, v.name);
    }
  }
  return Status::OK();
}

Status PgImpl::commit(std::vector<Write>& group, const std::vector<Row>& rows, std::vector<Status>* results,
                      GroupWriter& writer) {
  std::vector<PgRow> numbered;
  Backoff backoff;
  bool reported = false;
  Status st;
  for (;;) {
    bool retry = false;
    st = try_commit(group, rows, numbered, results, &retry);
    if (st.ok() || !retry) break;
    // The connection is gone: keep everything, reconnect, try again. Nothing is acknowledged
    // meanwhile; sessions go on.
    if (!reported) {
      log("store.disconnected: " + st.ToString() + "; retrying with backoff");
      reported = true;
    }
    wconn.reset();
    if (writer.closing()) {
      st = st.WithContext("the store is closing");
      break;
    }
    writer.pause_until(std::chrono::steady_clock::now() + backoff.next());
  }
  if (reported && st.ok()) log("store.reconnected: " + where);
  if (!st.ok()) {
    // A real error (not the connection): forget what the rows were numbered, and the ids.
    doc_ids.clear();
    next_seq.clear();
    return st;
  }
  for (const Write& it : group) {
    if (it.kind == Write::kRemove) doc_ids.erase(it.doc);  // (also one that was not there: harmless)
  }
  return Status::OK();
}

// ---- watching other nodes ----

void PgNode::watch(const std::string& doc, Remote on_remote) {
  if (impl_->opt.read_only) return;
  {
    std::lock_guard<std::mutex> lock(impl_->watch_mu);
    PgImpl::Watch& w = impl_->watches[doc];
    w.on_remote = std::move(on_remote);
    auto it = impl_->loaded.find(doc);
    w.cursors = it != impl_->loaded.end() ? it->second : Cursors{};
    w.doc_id = 0;
    w.dirty = true;
  }
  impl_->wake_listener();
}

void PgNode::unwatch(const std::string& doc) {
  std::lock_guard<std::mutex> lock(impl_->watch_mu);
  impl_->watches.erase(doc);
  impl_->loaded.erase(doc);
}

void PgImpl::run_listener() {
  std::unique_ptr<pq::Conn> c;
  Backoff backoff;
  bool reported = false;
  auto next_poll = std::chrono::steady_clock::now();
  while (!stopping) {
    if (!c || !c->alive()) {
      c.reset();
      auto conn = pq::Conn::connect(opt.conninfo);
      Status st = conn.ok() ? (*conn)->exec("LISTEN tandem") : conn.status();
      if (!st.ok()) {
        if (!reported) log("store.listener_disconnected: " + st.ToString() + "; retrying with backoff");
        reported = true;
        pollfd p{wake_fd, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(backoff.next().count()));
        uint64_t drained;
        (void)::read(wake_fd, &drained, sizeof drained);
        continue;
      }
      if (reported) log("store.listener_reconnected: " + where);
      reported = false;
      backoff.reset();
      c = std::move(*conn);
      // Whatever was notified while disconnected: look at every watched document.
      std::lock_guard<std::mutex> lock(watch_mu);
      for (auto& [name, w] : watches) w.dirty = true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_poll) {
      std::lock_guard<std::mutex> lock(watch_mu);
      for (auto& [name, w] : watches) w.dirty = true;
      next_poll = now + opt.poll_every;
    }
    // Deliver what is new in dirty documents.
    std::vector<std::string> dirty;
    {
      std::lock_guard<std::mutex> lock(watch_mu);
      for (auto& [name, w] : watches) {
        if (w.dirty) dirty.push_back(name);
      }
    }
    for (const auto& name : dirty) {
      Cursors cursors;
      int64_t id = 0;
      {
        std::lock_guard<std::mutex> lock(watch_mu);
        auto it = watches.find(name);
        if (it == watches.end()) continue;
        it->second.dirty = false;
        cursors = it->second.cursors;
        id = it->second.doc_id;
      }
      if (id == 0) {
        auto found = doc_id(*c, name);
        if (!found.ok()) continue;  // not created yet: nothing to deliver
        id = *found;
      }
      std::vector<ReadRow> rows;
      Status st = rows_beyond(*c, id, node, &cursors, &rows);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(watch_mu);
        if (auto it = watches.find(name); it != watches.end()) it->second.dirty = true;
        break;  // the connection is checked at the top
      }
      for (auto& row : rows) {
        auto batch = codec::decode_ops_sequence(row.batch);
        if (!batch.ok()) {
          log("store.bad_row: document '" + name + "' node " + row.node + " row " + std::to_string(row.node_seq) + ": " +
              batch.status().ToString());
          continue;
        }
        store::DocStore::Remote deliver;
        std::string position;
        {
          std::lock_guard<std::mutex> lock(watch_mu);
          auto it = watches.find(name);
          if (it == watches.end()) break;
          Cursors& cur = it->second.cursors;
          cur[row.node] = std::max(cur[row.node], row.node_seq);
          it->second.doc_id = id;
          position = encode_cursors(cur);
          deliver = it->second.on_remote;
        }
        if (deliver) deliver(std::move(*batch), std::move(position));
      }
    }
    // Wait for a notification, a new watch, or the next poll.
    pollfd fds[2] = {{PQsocket(c->raw()), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_poll - std::chrono::steady_clock::now());
    ::poll(fds, 2, static_cast<int>(std::clamp<int64_t>(wait.count(), 0, 1000)));
    if (fds[1].revents & POLLIN) {
      uint64_t drained;
      (void)::read(wake_fd, &drained, sizeof drained);
    }
    if (PQconsumeInput(c->raw()) != 1) continue;  // lost: reconnect at the top
    while (PGnotify* n = PQnotifies(c->raw())) {
      {
        std::lock_guard<std::mutex> lock(watch_mu);
        if (auto it = watches.find(n->extra); it != watches.end()) it->second.dirty = true;
      }
      PQfreemem(n);
    }
  }
}

// ---- reads ----

template <class F>
auto PgImpl::read(F&& f) -> decltype(f(std::declval<pq::Conn&>())) {
  std::lock_guard<std::mutex> lock(read_mu);
  for (int attempt = 0;; ++attempt) {
    if (!rconn || !rconn->alive()) {
      rconn.reset();
      auto c = pq::Conn::connect(opt.conninfo);
      if (!c.ok()) return c.status();
      rconn = std::move(*c);
    }
    auto r = f(*rconn);
    if (r.ok() || rconn->alive() || attempt > 0) return r;
    // The connection was lost under the read: once more on a new one.
  }
}

Result<crdt::Doc> PgNode::load(std::string_view doc, std::string_view agent, std::vector<std::string>* warnings) {
  Cursors reached;
  auto d = impl_->read([&](pq::Conn& c) -> Result<crdt::Doc> {
    // One snapshot of the database for all that follows.
    TANDEM_RETURN_IF_ERROR(c.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    struct End {
      pq::Conn& c;
      ~End() { (void)c.exec("COMMIT"); }
    } end{c};
    auto id = doc_id(c, doc);
    if (!id.ok()) return id.status();
    auto snaps = c.query("SELECT events, cursors, data FROM tandem.snapshots WHERE doc = $1 ORDER BY id DESC", {Param::num(*id)});
    if (!snaps.ok()) return snaps.status();
    std::optional<crdt::Doc> replica;
    Cursors cursors;
    for (int i = 0; i < snaps->rows() && !replica; ++i) {
      auto loaded = codec::load(snaps->bytes(i, 2), agent);
      if (loaded.ok()) {
        replica.emplace(std::move(*loaded));
        cursors = decode_cursors(snaps->text(i, 1));
      } else if (warnings) {
        warnings->push_back("snapshot of '" + std::string(doc) + "' is unusable (" + loaded.status().ToString() +
                            "); using an older one and more of the log");
      }
    }
    if (!replica) {
      auto st = crdt::Doc::ValidateAgent(agent);
      if (!st.ok()) return st;
      replica.emplace(agent);
    }
    std::vector<ReadRow> rows;
    TANDEM_RETURN_IF_ERROR(rows_beyond(c, *id, "", &cursors, &rows));
    TailReplay tail(&*replica);
    for (const auto& row : rows) {
      TANDEM_RETURN_IF_ERROR(tail.add(row.batch, "log of '" + std::string(doc) + "' (node " + row.node + ", row " +
                                                     std::to_string(row.node_seq) + ")"));
      cursors[row.node] = std::max(cursors[row.node], row.node_seq);
    }
    TANDEM_RETURN_IF_ERROR(tail.finish());
    reached = cursors;
    return std::move(*replica);
  });
  if (d.ok()) {
    std::lock_guard<std::mutex> lock(impl_->watch_mu);
    impl_->loaded[std::string(doc)] = std::move(reached);
  }
  return d;
}

Result<uint64_t> PgNode::logged_events(std::string_view doc) {
  return impl_->read([&](pq::Conn& c) -> Result<uint64_t> {
    auto id = doc_id(c, doc);
    if (!id.ok()) return id.status();
    auto r = c.query("SELECT coalesce(sum(events), 0) FROM tandem.log WHERE doc = $1", {Param::num(*id)});
    if (!r.ok()) return r.status();
    return static_cast<uint64_t>(r->int64(0, 0));
  });
}

Result<std::vector<LogRow>> PgNode::read_log(std::string_view doc, uint64_t from_event, uint64_t to_event) {
  return impl_->read([&](pq::Conn& c) -> Result<std::vector<LogRow>> {
    auto id = doc_id(c, doc);
    if (!id.ok()) return id.status();
    auto r = c.query("SELECT time_ms, events, batch FROM tandem.log WHERE doc = $1 ORDER BY id", {Param::num(*id)});
    if (!r.ok()) return r.status();
    std::vector<LogRow> out;
    uint64_t at = 0;
    for (int i = 0; i < r->rows() && at < to_event; ++i) {
      const uint64_t n = static_cast<uint64_t>(r->int64(i, 1));
      if (at + n > from_event) out.push_back({at, at + n, r->int64(i, 0), r->bytes(i, 2)});
      at += n;
    }
    return out;
  });
}

Result<std::vector<SnapshotInfo>> PgNode::snapshots(std::string_view doc) {
  return impl_->read([&](pq::Conn& c) -> Result<std::vector<SnapshotInfo>> {
    auto id = doc_id(c, doc);
    if (!id.ok()) return id.status();
    auto r = c.query("SELECT events, time_ms, length(data) FROM tandem.snapshots WHERE doc = $1 ORDER BY id DESC",
                     {Param::num(*id)});
    if (!r.ok()) return r.status();
    std::vector<SnapshotInfo> out;
    for (int i = 0; i < r->rows(); ++i) {
      out.push_back({static_cast<uint64_t>(r->int64(i, 0)), r->int64(i, 1), static_cast<uint64_t>(r->int64(i, 2))});
    }
    return out;
  });
}

Result<std::vector<store::NamedVersion>> PgNode::versions(std::string_view doc) {
  return impl_->read([&](pq::Conn& c) -> Result<std::vector<store::NamedVersion>> {
    auto id = doc_id(c, doc);
    if (!id.ok()) return id.status();
    auto r = c.query("SELECT name, events, time_ms, agent FROM tandem.versions WHERE doc = $1 ORDER BY time_ms DESC, events DESC",
                     {Param::num(*id)});
    if (!r.ok()) return r.status();
    std::vector<store::NamedVersion> out;
    for (int i = 0; i < r->rows(); ++i) {
      out.push_back({std::string(r->text(i, 0)), static_cast<uint64_t>(r->int64(i, 1)), r->int64(i, 2), std::string(r->text(i, 3))});
    }
    return out;
  });
}

namespace {

const char* const kInfoSql =
    "SELECT d.name, d.created_ms,"
    " coalesce(l.events, 0), coalesce(l.rows, 0), coalesce(l.bytes, 0), coalesce(l.updated, d.created_ms),"
    " coalesce(s.n, 0), coalesce(s.bytes, 0), coalesce(s.events, 0), coalesce(s.time, 0)"
    " FROM tandem.documents d"
    " LEFT JOIN LATERAL (SELECT sum(events) AS events, count(*) AS rows, sum(length(batch)) AS bytes,"
    "   max(time_ms) AS updated FROM tandem.log WHERE doc = d.id) l ON true"
    " LEFT JOIN LATERAL (SELECT count(*) AS n,"
    "   (SELECT length(data) FROM tandem.snapshots WHERE doc = d.id ORDER BY id DESC LIMIT 1) AS bytes,"
    "   (SELECT events FROM tandem.snapshots WHERE doc = d.id ORDER BY id DESC LIMIT 1) AS events,"
    "   (SELECT time_ms FROM tandem.snapshots WHERE doc = d.id ORDER BY id DESC LIMIT 1) AS time"
    "   FROM tandem.snapshots WHERE doc = d.id) s ON true";

DocInfo info_of(const pq::PgResult& r, int i) {
  DocInfo d;
  d.name = std::string(r.text(i, 0));
  d.created_ms = r.int64(i, 1);
  d.events = static_cast<uint64_t>(r.int64(i, 2));
  d.log_rows = static_cast<uint64_t>(r.int64(i, 3));
  d.log_bytes = static_cast<uint64_t>(r.int64(i, 4));
  d.updated_ms = r.int64(i, 5);
  d.snapshots = static_cast<uint32_t>(r.int64(i, 6));
  d.snapshot_bytes = static_cast<uint64_t>(r.int64(i, 7));
  d.snapshot_events = static_cast<uint64_t>(r.int64(i, 8));
  d.snapshot_ms = r.int64(i, 9);
  return d;
}

}  // namespace

Result<std::vector<DocInfo>> PgNode::list() {
  return impl_->read([&](pq::Conn& c) -> Result<std::vector<DocInfo>> {
    auto r = c.query(std::string(kInfoSql) + " ORDER BY d.name");
    if (!r.ok()) return r.status();
    std::vector<DocInfo> out;
    for (int i = 0; i < r->rows(); ++i) out.push_back(info_of(*r, i));
    return out;
  });
}

Result<DocInfo> PgNode::info(std::string_view doc) {
  auto info = impl_->read([&](pq::Conn& c) -> Result<DocInfo> {
    auto r = c.query(std::string(kInfoSql) + " WHERE d.name = $1", {Param::text(std::string(doc))});
    if (!r.ok()) return r.status();
    if (r->rows() == 0) return Status::NotFound("no document '" + std::string(doc) + "'");
    return info_of(*r, 0);
  });
  if (!info.ok()) return info;
  // Per-agent counts from the document itself: the log may hold an operation twice.
  auto replica = load(doc, "tandem-info", nullptr);
  if (!replica.ok()) return replica.status();
  for (const auto& [agent, next] : replica->version().entries()) info->agents.emplace_back(agent, next);
  return info;
}

Result<std::string> PgNode::integrity_check() {
  auto docs = list();
  if (!docs.ok()) return docs.status();
  std::vector<std::string> problems;
  for (const auto& d : *docs) {
    auto replica = load(d.name, "tandem-check", nullptr);
    if (!replica.ok()) problems.push_back(d.name + ": " + replica.status().ToString());
  }
  auto heads = impl_->read([&](pq::Conn& c) -> Result<pq::PgResult> {
    return c.query(
        "SELECT d.name, h.node FROM tandem.heads h JOIN tandem.documents d ON d.id = h.doc"
        " WHERE h.node_seq <> (SELECT coalesce(max(node_seq), 0) FROM tandem.log l WHERE l.doc = h.doc AND l.node = h.node)");
  });
  if (!heads.ok()) return heads.status();
  for (int i = 0; i < heads->rows(); ++i) {
    std::string line(heads->text(i, 0));
    line.append(": head of node ").append(heads->text(i, 1)).append(" does not match its rows");
    problems.push_back(std::move(line));
  }
  if (problems.empty()) return std::string("ok");
  std::string out;
  for (const auto& p : problems) {
    if (!out.empty()) out.push_back('\n');
    out.append(p);
  }
  return out;
}

}  // namespace tandem::storage
