// LogDocStore: the server's persistence (net::DocStore) filled with a storage::LogStore, SQLite's
// or PostgreSQL's. The one place where net and storage meet (DESIGN.md: net includes nothing of
// storage; the program that starts the server hands it a store).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "net/doc_store.h"
#include "history.h"
#include "storage/log_store.h"

namespace tandem::cli {

class LogDocStore : public net::DocStore {
 public:
  // quiet: do not print the store's load warnings (tests).
  explicit LogDocStore(storage::LogStore& store, bool quiet = false) : store_(store), quiet_(quiet) {}
  crdt::Result<crdt::Doc> load(const std::string& doc, const std::string& agent) override {
    std::vector<std::string> warnings;
    auto d = store_.load(doc, agent, &warnings);
    if (!quiet_) {
      for (const auto& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    }
    return d;
  }
  void append(const std::string& doc, uint64_t first, crdt::OpBatch batch, Done done) override {
    store_.append(doc, first, std::move(batch), std::move(done));
  }
  void put_snapshot(const std::string& doc, uint64_t events, std::string bytes, std::string position,
                    Done done) override {
    store_.put_snapshot(doc, events, std::move(bytes), std::move(done), std::move(position));
  }
  crdt::Status flush() override { return store_.sync(); }
  crdt::Result<std::vector<Summary>> list() override {
    auto docs = store_.list();
    if (!docs.ok()) return docs.status();
    std::vector<Summary> out;
    for (const auto& d : *docs) {
      Summary s;
      s.name = d.name;
      s.events = d.events;
      s.bytes = d.log_bytes + d.snapshot_bytes;
      s.updated_ms = d.updated_ms;
      for (const auto& [agent, events] : d.agents) s.version.advance(agent, static_cast<uint32_t>(events));
      out.push_back(std::move(s));
    }
    return out;
  }
  crdt::Result<crdt::Doc> load_past(const std::string& doc, uint64_t at_event, int64_t until_ms) override {
    return history::replay_log(store_, doc, at_event, until_ms);
  }
  void remove(const std::string& doc, Done done) override {
    auto exists = store_.logged_events(doc);
    if (!exists.ok()) {
      done(exists.status());
      return;
    }
    store_.remove_document(doc, std::move(done));
  }
  void watch(const std::string& doc, Remote on_remote) override { store_.watch(doc, std::move(on_remote)); }
  void unwatch(const std::string& doc) override { store_.unwatch(doc); }

 private:
  storage::LogStore& store_;
  bool quiet_;
};

}  // namespace tandem::cli
