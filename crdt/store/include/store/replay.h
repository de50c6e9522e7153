// Rebuilding past versions of a document from its log alone, through any DocStore.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "crdt/doc.h"
#include "crdt/history.h"
#include "crdt/op.h"
#include "store/doc_store.h"

namespace tandem::store {

// Progress callback: (done, total).
using Progress = std::function<void(uint64_t, uint64_t)>;

// `doc` as it was after its first `at_event` logged events (OutOfRange past the end) and with
// only the rows committed at or before `until_ms`; UINT64_MAX and INT64_MAX: unbounded. Reads the
// log in slices, so a long history is never in memory at once. NotFound for no such document.
// `on_row` sees each row taken, decoded, with the replica after it.
using RowSeen = std::function<void(const LogRow&, const crdt::OpBatch&, const crdt::Doc&)>;
crdt::Result<crdt::Doc> replay(DocStore& store, const std::string& doc, uint64_t at_event = UINT64_MAX,
                               int64_t until_ms = INT64_MAX, const Progress& progress = {}, const RowSeen& on_row = {});

// Whom an agent writes for: its name up to its first '/' (a person's editors and apps, "bob/phone",
// write for "bob"; a name without '/' stands for itself).
inline std::string_view author_of(std::string_view agent) { return agent.substr(0, agent.find('/')); }

// A document's whole history as its log holds it (crdt::History over a replica that took the log
// in order), with when each logged row became durable: a point of the log (a count of logged
// events, or a time) is a point of the history.
struct LoggedHistory {
  struct Row {
    uint64_t logged_end;  // logged events up to the end of this row
    uint64_t events;      // the replica's events after it (fewer when rows repeat events)
    int64_t time_ms;
    struct Agent {
      std::string name;
      uint64_t inserted = 0, deleted = 0, formatted = 0;  // its events of each kind in the row
    };
    std::vector<Agent> agents;  // whose events it holds
  };
  // One author's edits close together in time: consecutive rows of that author (the agent's name
  // up to its first '/': a person's editors and apps) with less than the gap between them.
  struct Session {
    uint64_t from = 0, to = 0;  // logged events before its first row and after its last
    std::string author;
    std::vector<std::string> agents;
    int64_t first_ms = 0, last_ms = 0;
    uint64_t inserted = 0, deleted = 0, formatted = 0;
  };
  crdt::History history;
  std::vector<Row> rows;  // in log order

  uint64_t logged() const { return rows.empty() ? 0 : rows.back().logged_end; }
  // The history's point after the first `logged` logged events (OutOfRange past the log's end).
  crdt::Result<uint64_t> at_logged(uint64_t logged) const;
  // The point after the rows committed at or before `ms` (as replay's until_ms).
  uint64_t until(int64_t ms) const;
  // When the replica's event `event` became durable: its row's time.
  int64_t time_of(uint64_t event) const;
  // The first replica event of the row after the one holding `event` (the history's end for the
  // last row): where times change.
  uint64_t row_end(uint64_t event) const;
  // Every session, oldest first by its last row (then by author).
  std::vector<Session> sessions(int64_t gap_ms) const;
};
crdt::Result<LoggedHistory> read_history(DocStore& store, const std::string& doc);

// The histories read last, kept while their documents' logs do not grow: someone going through a
// document's past (blame, then a slider's points, then a diff) has the log read once. At most
// `max_docs` documents; one unused for `idle` is dropped at the next call. Thread-safe; the
// histories it hands out are read-only and may be read from any thread at once.
class HistoryCache {
 public:
  explicit HistoryCache(size_t max_docs = 4, std::chrono::milliseconds idle = std::chrono::seconds(60))
      : max_(max_docs), idle_(idle) {}
  // The document's history as its log holds it now: read_history's errors.
  crdt::Result<std::shared_ptr<const LoggedHistory>> get(DocStore& store, const std::string& doc);
  // Drops the document's history (when the document is deleted: a new one of the same name and
  // as many events must not get it).
  void forget(const std::string& doc);
  size_t size() const;

 private:
  struct Entry {
    std::string doc;
    std::shared_ptr<const LoggedHistory> history;
    std::chrono::steady_clock::time_point used;
  };
  const size_t max_;
  const std::chrono::milliseconds idle_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
};

// The first `events` events of a batch (a prefix of a causally ordered batch is causally closed).
crdt::OpBatch batch_prefix(const crdt::OpBatch& batch, uint64_t events);

}  // namespace tandem::store
