#include "store/replay.h"

#include <algorithm>

#include "crdt/codec.h"
#include "crdt/utf8.h"

namespace tandem::store {

namespace codec = crdt::codec;

crdt::Result<crdt::Doc> replay(DocStore& store, const std::string& doc, uint64_t at_event, int64_t until_ms,
                               const Progress& progress, const RowSeen& on_row) {
  auto total = store.logged_events(doc);
  if (!total.ok()) return total.status();
  if (at_event != UINT64_MAX && at_event > *total) {
    return Status::OutOfRange("'" + doc + "' has only " + std::to_string(*total) + " operations, not " +
                              std::to_string(at_event));
  }
  const uint64_t target = std::min(at_event, *total);
  crdt::Doc replica("tandem-replay");
  constexpr uint64_t kSlice = 1 << 16;
  for (uint64_t from = 0; from < target;) {
    auto rows = store.read_log(doc, from, std::min(target, from + kSlice));
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return Status::Corruption("log of '" + doc + "' ends at event " + std::to_string(from));
    for (const auto& row : *rows) {
      if (row.time_ms > until_ms) return replica;
      auto batch = codec::decode_ops_sequence(row.batch);
      if (!batch.ok()) return batch.status().WithContext("log row at event " + std::to_string(row.first_event));
      if (row.end_event > target) *batch = batch_prefix(*batch, target - row.first_event);
      auto r = replica.apply(*batch);
      if (!r.ok()) return r.status().WithContext("log row at event " + std::to_string(row.first_event));
      from = row.end_event;
      if (on_row) on_row(row, *batch, replica);
      if (progress) progress(std::min(from, target), target);
      if (from >= target) break;
    }
  }
  return replica;
}

crdt::Result<LoggedHistory> read_history(DocStore& store, const std::string& doc) {
  std::vector<LoggedHistory::Row> rows;
  auto replica = replay(store, doc, UINT64_MAX, INT64_MAX, {}, [&rows](const LogRow& row, const crdt::OpBatch& b, const crdt::Doc& d) {
    // A log row can join batches of several authors (the store folds what it committed within
    // about a second into one row), so it is cut where the author changes: a session then ends
    // where its author's events end, whatever the fold joined. The parts share the row's time.
    const uint64_t events_before = rows.empty() ? 0 : rows.back().events;
    uint64_t logged = row.first_event;
    for (size_t i = 0; i < b.runs.size();) {
      LoggedHistory::Row r{0, 0, row.time_ms, {}};
      const std::string_view by = author_of(b.runs[i].agent);
      for (; i < b.runs.size() && author_of(b.runs[i].agent) == by; ++i) {
        const auto& run = b.runs[i];
        auto a = std::find_if(r.agents.begin(), r.agents.end(), [&](const auto& x) { return x.name == run.agent; });
        if (a == r.agents.end()) a = r.agents.insert(r.agents.end(), {run.agent});
        (crdt::IsInsert(run.kind) ? a->inserted : crdt::IsFormat(run.kind) ? a->formatted : a->deleted) += run.len;
        logged += run.len;
      }
      // (Events count one for one inside a row, unless it repeats some: then only its end is exact.)
      r.logged_end = i == b.runs.size() ? row.end_event : logged;
      r.events = i == b.runs.size() ? d.num_events() : std::min(d.num_events(), events_before + (logged - row.first_event));
      rows.push_back(std::move(r));
    }
  });
  if (!replica.ok()) return replica.status();
  auto h = replica->history();
  if (!h.ok()) return h.status();
  return LoggedHistory{std::move(*h), std::move(rows)};
}

crdt::Result<uint64_t> LoggedHistory::at_logged(uint64_t n) const {
  if (n > logged()) {
    return Status::OutOfRange("the log has " + std::to_string(logged()) + " events, not " + std::to_string(n));
  }
  // The row holding the n-th logged event; inside a row, events count one for one (a row that
  // repeats events can only be cut at its ends).
  auto it = std::lower_bound(rows.begin(), rows.end(), n, [](const Row& r, uint64_t x) { return r.logged_end < x; });
  if (it == rows.end() || it->logged_end == n) return it == rows.end() ? history.events() : it->events;
  const uint64_t row_first = it == rows.begin() ? 0 : std::prev(it)->logged_end;
  const uint64_t before = it == rows.begin() ? 0 : std::prev(it)->events;
  return std::min(it->events, before + (n - row_first));
}

uint64_t LoggedHistory::until(int64_t ms) const {
  uint64_t events = 0;
  for (const Row& r : rows) {
    if (r.time_ms > ms) break;
    events = r.events;
  }
  return events;
}

int64_t LoggedHistory::time_of(uint64_t event) const {
  auto it = std::upper_bound(rows.begin(), rows.end(), event, [](uint64_t x, const Row& r) { return x < r.events; });
  return it == rows.end() ? (rows.empty() ? 0 : rows.back().time_ms) : it->time_ms;
}

uint64_t LoggedHistory::row_end(uint64_t event) const {
  auto it = std::upper_bound(rows.begin(), rows.end(), event, [](uint64_t x, const Row& r) { return x < r.events; });
  return it == rows.end() ? history.events() : it->events;
}

std::vector<LoggedHistory::Session> LoggedHistory::sessions(int64_t gap_ms) const {
  std::vector<Session> done;
  std::vector<Session> open;  // one per author at most
  uint64_t before = 0;
  for (const Row& r : rows) {
    for (const LoggedHistory::Row::Agent& ra : r.agents) {
      const std::string& agent = ra.name;
      const std::string author(author_of(agent));
      auto it = std::find_if(open.begin(), open.end(), [&](const Session& s) { return s.author == author; });
      if (it != open.end() && r.time_ms - it->last_ms >= gap_ms) {
        done.push_back(std::move(*it));
        open.erase(it);
        it = open.end();
      }
      if (it == open.end()) {
        open.push_back({before, before, author, {}, r.time_ms, r.time_ms, 0, 0, 0});
        it = std::prev(open.end());
      }
      Session& s = *it;
      s.to = r.logged_end;
      s.last_ms = std::max(s.last_ms, r.time_ms);
      if (std::find(s.agents.begin(), s.agents.end(), agent) == s.agents.end()) s.agents.push_back(agent);
      s.inserted += ra.inserted;
      s.deleted += ra.deleted;
      s.formatted += ra.formatted;
    }
    before = r.logged_end;
  }
  for (auto& s : open) done.push_back(std::move(s));
  std::stable_sort(done.begin(), done.end(),
                   [](const Session& a, const Session& b) { return a.to != b.to ? a.to < b.to : a.author < b.author; });
  return done;
}

crdt::Result<std::shared_ptr<const LoggedHistory>> HistoryCache::get(DocStore& store, const std::string& doc) {
  auto logged = store.logged_events(doc);
  if (!logged.ok()) return logged.status();
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    lru_.remove_if([&](const Entry& e) { return now - e.used > idle_; });
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
      if (it->doc == doc && it->history->logged() == *logged) {
        it->used = now;
        lru_.splice(lru_.begin(), lru_, it);
        return lru_.front().history;
      }
    }
  }
  auto h = read_history(store, doc);  // (outside the lock: it reads the whole log)
  if (!h.ok()) return h.status();
  auto shared = std::make_shared<const LoggedHistory>(std::move(*h));
  std::lock_guard<std::mutex> lock(mu_);
  lru_.remove_if([&](const Entry& e) { return e.doc == doc && e.history->logged() <= shared->logged(); });
  lru_.push_front({doc, shared, now});
  while (lru_.size() > max_) lru_.pop_back();
  return shared;
}

void HistoryCache::forget(const std::string& doc) {
  std::lock_guard<std::mutex> lock(mu_);
  lru_.remove_if([&](const Entry& e) { return e.doc == doc; });
}

size_t HistoryCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
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

}  // namespace tandem::store
