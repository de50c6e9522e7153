#include "writer.h"

#include <string_view>
#include <unordered_map>

namespace tandem::storage {

void GroupWriter::start(Backend* backend) {
  backend_ = backend;
  if (!read_only_) thread_ = std::thread([this] { run(); });
}

void GroupWriter::stop() {
  inbox_.stop();
  if (thread_.joinable()) thread_.join();
}

void GroupWriter::push(Write w) {
  if (read_only_ && w.kind != Write::kSync) {
    if (w.done) w.done(Status::IOError(where_ + " is open read-only"));
    return;
  }
  inbox_.push(std::move(w));
}

Status GroupWriter::sync() {
  if (read_only_) return Status::OK();
  return wait_for_writer<Status>([&](store::DocStore::Done done) {
    inbox_.push({Write::kSync, {}, 0, 0, {}, {}, {}, std::move(done)});
  });
}

store::StoreStats GroupWriter::stats() const {
  return {commits_.load(), batches_.load(), rows_.load(), events_.load(), failed_.load()};
}

void GroupWriter::run() {
  yield_to_io_threads();
  std::vector<Write> group;
  auto last_start = std::chrono::steady_clock::now() - interval_;
  for (;;) {
    if (inbox_.empty()) {
      if (auto due = backend_->idle_due()) {
        inbox_.wait(*due);
      } else {
        inbox_.wait();
      }
    }
    if (inbox_.empty()) {
      backend_->idle();
      if (inbox_.stopping()) return;
      continue;
    }
    // Let more writes join this commit, unless the store is closing.
    if (!inbox_.stopping()) inbox_.pause_until(last_start + interval_);
    inbox_.take(&group);
    last_start = std::chrono::steady_clock::now();
    commit(group);
    group.clear();
  }
}

void GroupWriter::commit(std::vector<Write>& group) {
  std::vector<Status> results(group.size());
  std::vector<Row> rows;
  bool writes = false;
  {
    std::unordered_map<std::string_view, size_t> open;  // doc -> its row still open to appends
    for (size_t i = 0; i < group.size(); ++i) {
      Write& w = group[i];
      writes = writes || w.kind != Write::kSync;
      if (w.kind == Write::kAppend) {
        auto o = open.find(w.doc);
        if (o != open.end() && group[rows[o->second].items.back()].end == w.first) {
          rows[o->second].items.push_back(i);
        } else {
          rows.push_back({{i}});
          open[w.doc] = rows.size() - 1;
        }
        w.row = open[w.doc];
      } else if (w.kind != Write::kSync) {
        open.erase(w.doc);
      }
    }
  }
  if (writes) {
    Status st = backend_->commit(group, rows, &results);
    for (const Row& r : rows) {
      for (size_t k = 1; k < r.items.size(); ++k) results[r.items[k]] = results[r.items[0]];
    }
    if (!st.ok()) {
      for (size_t i = 0; i < group.size(); ++i) {
        if (group[i].kind != Write::kSync && results[i].ok()) results[i] = st;
      }
    } else {
      ++commits_;
      for (const Row& r : rows) rows_ += results[r.items[0]].ok() ? 1 : 0;
    }
  }
  for (size_t i = 0; i < group.size(); ++i) {
    const Write& w = group[i];
    if (w.kind == Write::kSync) {
      results[i] = failure_since_sync_;
      failure_since_sync_ = Status::OK();
    } else if (!results[i].ok() && !store::is_refused_version(w.kind == Write::kVersion, results[i])) {
      ++failed_;
      if (failure_since_sync_.ok()) failure_since_sync_ = results[i];
    } else if (w.kind == Write::kAppend) {
      ++batches_;
      events_ += w.end - w.first;
    }
  }
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i].done) group[i].done(results[i]);
  }
}

}  // namespace tandem::storage
