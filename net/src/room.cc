#include "room.h"

#include <thread>

#include "crdt/codec.h"
#include "crdt/split.h"
#include "ws_frame.h"

namespace tandem::net {

namespace codec = crdt::codec;
using crdt::Status;

Frame make_frame(std::string_view message) { return std::make_shared<const std::string>(ws::frame(ws::kBinary, message)); }

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

Server::Impl::Impl(ServerOptions o, DocStore* s)
    : opt(std::move(o)),
      store(s),
      log(opt.log_json, opt.log_quiet, opt.log_silent),
      threads([n = opt.threads] {
        std::vector<std::unique_ptr<IoThread>> v;
        const int count = n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        for (int i = 0; i < count; ++i) v.push_back(std::make_unique<IoThread>());
        return v;
      }()),
      ioc(threads.front()->ioc) {}

void IoThread::defer_broadcast(std::shared_ptr<Room> r) {
  to_broadcast_.push_back(std::move(r));
  if (!posted_) {
    posted_ = true;
    boost::asio::post(ioc, [this] { end_of_round(); });
  }
}

void IoThread::defer_write(std::shared_ptr<Session> s) {
  to_write_.push_back(std::move(s));
  if (!posted_) {
    posted_ = true;
    boost::asio::post(ioc, [this] { end_of_round(); });
  }
}

void IoThread::end_of_round() {
  posted_ = false;
  std::vector<std::shared_ptr<Room>> rooms;
  rooms.swap(to_broadcast_);
  for (auto& r : rooms) r->flush();
  std::vector<std::shared_ptr<Session>> sessions;
  sessions.swap(to_write_);
  for (auto& s : sessions) s->write_queued();
  // Keep the capacity for the next round, unless this round queued more.
  rooms.clear();
  sessions.clear();
  if (to_broadcast_.empty()) to_broadcast_.swap(rooms);
  if (to_write_.empty()) to_write_.swap(sessions);
}

IoThread& Server::Impl::thread_for(std::string_view doc) {
  return *threads[std::hash<std::string_view>{}(doc) % threads.size()];
}

std::shared_ptr<Room> Server::Impl::room(const std::string& doc) {
  std::lock_guard<std::mutex> lock(rooms_mu);
  if (stopping) return nullptr;
  auto& r = rooms[doc];
  if (!r) r = std::make_shared<Room>(*this, doc);
  ++r->pending_joins;
  return r;
}

bool Server::Impl::forget(const std::string& doc, Room* room, bool force) {
  std::lock_guard<std::mutex> lock(rooms_mu);
  if (room->pending_joins > 0 && !force) return false;
  auto it = rooms.find(doc);
  if (it != rooms.end() && it->second.get() == room) rooms.erase(it);
  return true;
}

Room::Room(Server::Impl& server, std::string name)
    : srv_(server),
      name_(std::move(name)),
      thread_(server.thread_for(name_)),
      ex_(thread_.ioc.get_executor()),
      grace_(ex_),
      pace_(ex_) {}

template <class F>
void Room::on_thread(F&& f) {
  if (ex_.running_in_this_thread()) {
    f();
  } else {
    boost::asio::post(ex_, std::forward<F>(f));
  }
}

Room::~Room() {
  if (counted_) --srv_.metrics.open_documents;
}

bool Room::ensure_loaded(const std::shared_ptr<Session>& s) {
  if (doc_) return true;
  auto loaded = srv_.store->load(name_, "server");
  if (loaded.ok()) {
    doc_.emplace(std::move(*loaded));
  } else if (loaded.status().code() == Status::Code::kNotFound) {
    doc_.emplace("server");
  } else {
    srv_.log.error("doc.load_failed", {{"doc", name_}, {"error", loaded.status().ToString()}});
    s->close_with(proto::kInternal, "cannot load the document");
    return false;
  }
  crdt::DocLimits limits;
  limits.max_pending_events = srv_.opt.max_held_events;
  limits.max_pending_runs = static_cast<uint32_t>(std::min<uint64_t>(srv_.opt.max_held_events, UINT32_MAX));
  limits.max_length = srv_.opt.max_doc_chars;
  doc_->set_limits(limits);
  logged_ = snapshot_events_ = doc_->num_events();
  durable_ = doc_->version();
  snapshot_time_ = Clock::now();
  // A store shared with other nodes hands over what they append to this document from now on.
  srv_.store->watch(name_, [weak = weak_from_this()](crdt::OpBatch batch, std::string position) {
    if (auto self = weak.lock()) self->remote(std::move(batch), std::move(position));
  });
  watching_ = true;
  counted_ = true;
  ++srv_.metrics.open_documents;
  srv_.log.info("doc.open", {{"doc", name_}, {"events", std::to_string(logged_)}, {"chars", std::to_string(doc_->length())}});
  return true;
}

void Room::join(std::shared_ptr<Session> s, proto::Hello hello) {
  on_thread([self = shared_from_this(), s = std::move(s), hello = std::move(hello)]() mutable {
    {
      std::lock_guard<std::mutex> lock(self->srv_.rooms_mu);
      --self->pending_joins;
    }
    try {
      self->join_now(s, std::move(hello));
    } catch (const std::exception& e) {
      self->contain("join", e, s, false);
    }
  });
}

void Room::join_now(const std::shared_ptr<Session>& s, proto::Hello hello) {
  if (closed_) {
    // Only a broken room closes with joins on their way: the client reconnects.
    s->close_with(proto::kInternal, "the document was closed; reconnect");
    return;
  }
  // Every way out below that leaves the room empty must start the grace timer again (the one
  // that was running may have fired and found this join on its way): else it never unloads.
  struct Refused {
    Room& r;
    bool joined = false;
    ~Refused() {
      if (!joined && r.sessions_.empty() && !r.closed_) r.start_grace_timer();
    }
  } refused{*this};
  if (s->closed) return;  // gone before its turn came: nothing to load or send
  grace_.cancel();
  if (!ensure_loaded(s)) return;
  crdt::Doc& doc = *doc_;
  // A client may hold operations the server lost (a crash before they were durable), but never
  // more than could be held waiting for their dependencies.
  for (const auto& [agent, next] : hello.doc_version.entries()) {
    const uint32_t have = doc.version().next(agent);
    if (next > have && next - have > srv_.opt.max_held_events &&
        std::find(s->agents.begin(), s->agents.end(), agent) == s->agents.end()) {
      s->close_with(proto::kRejected, "version claims " + std::to_string(next - have) + " operations of '" + agent +
                                          "' that this server never had");
      return;
    }
  }
  // An agent belongs to one live session that may write: the newer one wins (a client
  // reconnecting before its old connection was noticed gone), and the older one is told why.
  // Read-only sessions own no agents.
  if (!s->read_only) {
    for (const auto& a : s->agents) {
      auto it = owners_.find(a);
      if (it != owners_.end() && it->second != s->id) {
        for (const auto& other : sessions_) {
          if (other->id == it->second) {
            other->close_with(proto::kAgentInUse, "agent '" + a + "' was taken over by a newer session");
          }
        }
      }
      owners_[a] = s->id;
    }
  }
  sessions_.push_back(s);
  members_.insert(s->id);
  refused.joined = true;
  proto::Welcome w;
  w.session = s->id;
  w.read_only = s->read_only;
  w.doc_version = durable_;  // what is safe: the client resends its own operations beyond it
  s->send(make_frame(proto::encode(w)), 0, true);
  crdt::OpBatch missing = doc.ops_since(hello.doc_version);
  if (!missing.empty()) {
    const uint64_t n = missing.events();
    s->send(make_frame(proto::encode(proto::Ops{0, codec::encode_ops(missing)})), n, true);
  }
  for (const auto& [sid, p] : presence_) {
    s->send(make_frame(proto::encode(proto::PresenceUpdate{sid, p.first, p.second})), 0, true);
  }
  srv_.log.info("session.join", {{"doc", name_},
                                       {"session", std::to_string(s->id)},
                                       {"agent", s->agents.front()},
                                       {"peer", s->peer},
                                       {"read_only", s->read_only ? "true" : "false"},
                                       {"sent", std::to_string(missing.events())}});
}

void Room::ops(std::shared_ptr<Session> s, uint64_t batch_id, crdt::OpBatch batch, Clock::time_point received) {
  on_thread([self = shared_from_this(), s = std::move(s), batch_id, batch = std::move(batch), received]() mutable {
    try {
      self->ops_now(s, batch_id, std::move(batch), received);
    } catch (const std::exception& e) {
      self->contain("ops", e, s, true);
    }
  });
}

void Room::ops_now(const std::shared_ptr<Session>& s, uint64_t batch_id, crdt::OpBatch batch, Clock::time_point received) {
  if (closed_ || !doc_ || !members_.count(s->id)) return;
  crdt::Doc& doc = *doc_;
  const uint64_t n = batch.events();
  srv_.metrics.ops_in += n;
  crdt::OpBatch added;
  auto r = doc.apply(batch, &added);
  if (!r.ok()) {
    // The session checked the batch's form (Doc::ValidateBatch): what is left is the document
    // refusing it (positions, held operations past the bound) or a size limit.
    const auto& st = r.status();
    const uint16_t code = st.code() == Status::Code::kResourceExhausted ? proto::kTooLarge : proto::kRejected;
    srv_.log.warn("ops.refused", {{"doc", name_}, {"session", std::to_string(s->id)}, {"error", st.ToString()}});
    s->close_with(code, st.message());
    return;
  }
  // The acknowledgement waits until every event of the batch is durable (some may be held).
  PendingAck ack{s, batch_id, {}};
  for (const auto& run : batch.runs) {
    bool found = false;
    for (auto& [agent, next] : ack.need) {
      if (agent == run.agent) {
        next = std::max(next, run.seq + run.len);
        found = true;
      }
    }
    if (!found) ack.need.emplace_back(run.agent, run.seq + run.len);
  }
  const uint64_t added_events = added.events();
  if (added_events > 0) {
    srv_.metrics.ops_integrated += added_events;
    log_events(added);
    // The author, when one session owns every agent in what was added (held operations of
    // others may have been released by this batch: then everyone gets the broadcast).
    uint64_t author = s->id;
    for (const auto& run : added.runs) {
      auto o = owners_.find(run.agent);
      if (o == owners_.end() || o->second != s->id) author = 0;
    }
    if (outbox_.empty()) {
      outbox_author_ = author;
      outbox_since_ = received;
    } else if (outbox_author_ != author) {
      outbox_author_ = 0;
    }
    for (auto& run : added.runs) outbox_.runs.push_back(std::move(run));
    schedule_flush();
    maybe_snapshot(false);
  }
  bool durable = true;
  for (const auto& [agent, next] : ack.need) durable = durable && durable_.next(agent) >= next;
  if (durable) {
    s->send(make_frame(proto::encode(proto::Ack{batch_id})), 0);
  } else {
    acks_.push_back(std::move(ack));
  }
}

void Room::log_events(const crdt::OpBatch& events) {
  const uint64_t first = logged_;
  logged_ += events.events();
  const Clock::time_point handed = Clock::now();
  srv_.store->append(name_, first, events, [self = shared_from_this(), v = doc_->version(), handed](Status st) {
    boost::asio::post(self->ex_, [self, st, v, handed] { self->on_durable(st, v, handed); });
  });
}

void Room::contain(const char* where, const std::exception& e, const std::shared_ptr<Session>& s, bool document) {
  srv_.log.error("room.exception", {{"doc", name_}, {"session", std::to_string(s->id)}, {"in", where}, {"error", e.what()}});
  s->close_with(proto::kInternal, "internal error");  // first: a session keeps the first ERROR
  // The replica may be half changed: drop it; every client resyncs from the store.
  if (document && !closed_) break_room(std::string("an exception in ") + where, "internal error; reconnect");
}

void Room::schedule_flush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  const int64_t pace = thread_.pace_us_per_session.load(std::memory_order_relaxed);
  if (pace > 0) {
    // Each broadcast costs a send per session: while the thread is short of time, a room of n
    // sessions broadcasts at most every n * pace (IoThread), so that fan-out shrinks to what
    // the CPU can carry instead of the backlog growing without bound.
    const auto gap = std::min<Clock::duration>(
        srv_.opt.max_broadcast_delay,
        std::chrono::microseconds(pace * static_cast<int64_t>(sessions_.size())));
    if (Clock::now() < last_flush_ + gap) {
      pace_.expires_at(last_flush_ + gap);
      pace_.async_wait([self = shared_from_this()](boost::system::error_code) { self->flush(); });
      return;
    }
  }
  // At the end of the round: batches read in this round of the thread join this broadcast.
  thread_.defer_broadcast(shared_from_this());
}

void Room::flush() {
  flush_posted_ = false;
  last_flush_ = Clock::now();
  if (closed_) return;
  if (!outbox_.empty()) {
    const uint64_t n = outbox_.events();
    const Frame f = make_frame(proto::encode(proto::Ops{0, codec::encode_ops(outbox_)}));
    // One author: everyone else. Several: everyone (an author ignores its own operations).
    send_to_others(outbox_author_, f, n);
    srv_.metrics.broadcast_latency.observe(seconds_since(outbox_since_));
    outbox_.runs.clear();
  }
  for (auto& [session, batch_id] : ready_acks_) {
    if (auto s = session.lock()) s->send(make_frame(proto::encode(proto::Ack{batch_id})), 0);
  }
  ready_acks_.clear();
}

void Room::send_to_others(uint64_t except, const Frame& f, uint64_t ops) {
  for (const auto& s : sessions_) {
    if (s->id != except) s->send(f, ops);
  }
}

void Room::on_durable(Status st, crdt::Version version, Clock::time_point handed) {
  if (closed_) return;
  if (!st.ok()) {
    break_room("the store failed: " + st.ToString(), "the server could not store the document; reconnect");
    return;
  }
  srv_.metrics.commit_latency.observe(seconds_since(handed));
  std::vector<std::string> authors;  // whose operations this commit made durable: the webhook's "agents"
  if (srv_.webhooks) {
    for (const auto& [agent, next] : version.entries()) {
      if (next > durable_.next(agent)) authors.push_back(agent);
    }
  }
  durable_.merge(version);  // merged: operations of other nodes may have made it further already
  if (!authors.empty()) srv_.webhooks->changed(name_, durable_, durable_.total(), authors);
  release_acks();
}

void Room::remote(crdt::OpBatch batch, std::string position) {
  on_thread([self = shared_from_this(), batch = std::move(batch), position = std::move(position)]() mutable {
    try {
      self->remote_now(std::move(batch), std::move(position));
    } catch (const std::exception& e) {
      self->srv_.log.error("room.exception", {{"doc", self->name_}, {"in", "remote"}, {"error", e.what()}});
      if (!self->closed_) self->break_room("an exception in remote", "internal error; reconnect");
    }
  });
}

void Room::remote_now(crdt::OpBatch batch, std::string position) {
  if (closed_ || !doc_) return;
  crdt::OpBatch added;
  auto r = doc_->apply(batch, &added);
  if (!r.ok()) {
    // Another node logged it, so it was valid there: a limit of this node's (held operations,
    // document size) refuses it. Its sessions resync from the store when they reconnect.
    srv_.log.warn("remote.refused", {{"doc", name_}, {"error", r.status().ToString()}});
    return;
  }
  remote_position_ = std::move(position);
  // The batch may have released operations of this node's own clients that were held waiting for
  // it: those are not in the log yet.
  if (added.events() > 0) {
    const crdt::OpBatch ours = crdt::without_events(added, batch);
    if (ours.events() > 0) log_events(ours);
  }
  // What another node logged is durable: acknowledgements waiting for it (a client that sent the
  // same operations to both nodes) can go.
  crdt::Version logged;
  for (const auto& run : batch.runs) {
    if (run.seq + run.len > logged.next(run.agent)) logged.advance(run.agent, run.seq + run.len);
  }
  durable_.merge(logged);
  release_acks();
  if (added.events() == 0) return;
  srv_.metrics.ops_integrated += added.events();
  srv_.metrics.remote_ops += added.events();
  // To every session here (author 0: none of them wrote it).
  if (outbox_.empty()) outbox_since_ = Clock::now();
  outbox_author_ = 0;
  for (auto& run : added.runs) outbox_.runs.push_back(std::move(run));
  schedule_flush();
}

void Room::release_acks() {
  for (auto it = acks_.begin(); it != acks_.end();) {
    bool ok = true;
    for (const auto& [agent, next] : it->need) ok = ok && durable_.next(agent) >= next;
    if (!ok) {
      ++it;
      continue;
    }
    ready_acks_.emplace_back(std::move(it->session), it->batch_id);
    it = acks_.erase(it);
  }
  // Acknowledgements go out with the room's next broadcast: in one write with it to each
  // session, also when broadcasts are paced.
  if (!ready_acks_.empty()) schedule_flush();
}

void Room::maybe_snapshot(bool force) {
  if (!doc_ || logged_ == snapshot_events_) return;
  const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - snapshot_time_);
  if (!force && logged_ - snapshot_events_ < srv_.opt.snapshot_every_events && since < srv_.opt.snapshot_every) return;
  const uint64_t events = logged_;
  srv_.store->put_snapshot(name_, events, codec::save(*doc_), remote_position_, [this_log = &srv_.log, name = name_](Status st) {
    if (!st.ok()) this_log->warn("snapshot.failed", {{"doc", name}, {"error", st.ToString()}});
  });
  snapshot_events_ = events;
  snapshot_time_ = Clock::now();
}

void Room::break_room(const std::string& why, const std::string& to_clients) {
  srv_.log.error("doc.broken", {{"doc", name_}, {"error", why}});
  for (const auto& s : sessions_) s->close_with(proto::kInternal, to_clients);
  close_room(true);
}

bool Room::close_room(bool force) {
  if (closed_) return true;
  if (!srv_.forget(name_, this, force)) return false;  // a join is on its way: stay open
  closed_ = true;
  if (watching_) srv_.store->unwatch(name_);
  watching_ = false;
  // Sessions were closed before; what still listens for an ACK is an HTTP API edit (http_api.cc).
  for (auto& [session, batch_id] : ready_acks_) {
    if (auto s = session.lock()) s->send(make_frame(proto::encode(proto::Ack{batch_id})), 0);
  }
  for (auto& a : acks_) {
    if (auto s = a.session.lock()) s->close_with(proto::kInternal, "the document closed before the edit was stored");
  }
  grace_.cancel();
  pace_.cancel();
  sessions_.clear();
  members_.clear();
  owners_.clear();
  presence_.clear();
  acks_.clear();
  ready_acks_.clear();
  doc_.reset();
  return true;
}

void Room::presence(std::shared_ptr<Session> s, proto::Presence p) {
  on_thread([self = shared_from_this(), s = std::move(s), p = std::move(p)]() mutable {
    if (self->closed_ || !self->members_.count(s->id)) return;
    const Frame f = make_frame(proto::encode(proto::PresenceUpdate{s->id, s->agents.front(), p}));
    self->presence_[s->id] = {s->agents.front(), std::move(p)};
    self->send_to_others(s->id, f, 0);
  });
}

void Room::leave(std::shared_ptr<Session> s) {
  on_thread([self = shared_from_this(), s = std::move(s)] {
    auto it = std::find(self->sessions_.begin(), self->sessions_.end(), s);
    if (it == self->sessions_.end()) return;
    self->sessions_.erase(it);
    self->members_.erase(s->id);
    for (const auto& a : s->agents) {
      auto o = self->owners_.find(a);
      if (o != self->owners_.end() && o->second == s->id) self->owners_.erase(o);
    }
    if (self->presence_.erase(s->id)) {
      self->send_to_others(s->id, make_frame(proto::encode(proto::Leave{s->id})), 0);
    }
    self->srv_.log.info("session.leave", {{"doc", self->name_}, {"session", std::to_string(s->id)}});
    if (self->sessions_.empty()) self->start_grace_timer();
  });
}

void Room::start_grace_timer() {
  grace_.expires_after(srv_.opt.room_grace);
  grace_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closed_ || !self->sessions_.empty()) return;
    self->maybe_snapshot(true);
    if (self->close_room(false)) {
      self->srv_.log.info("doc.close", {{"doc", self->name_}, {"events", std::to_string(self->logged_)}});
    }
  });
}

template <class F>
void Room::api_call(std::shared_ptr<Session> s, F body) {
  on_thread([self = shared_from_this(), s = std::move(s), body = std::move(body)]() mutable {
    {
      std::lock_guard<std::mutex> lock(self->srv_.rooms_mu);
      --self->pending_joins;
    }
    if (self->closed_) {
      s->close_with(proto::kInternal, "the document was closed; try again");
      return;
    }
    self->grace_.cancel();
    try {
      if (self->ensure_loaded(s)) body(*self, s);
    } catch (const std::exception& e) {
      self->contain("an HTTP API call", e, s, true);
    }
    if (self->sessions_.empty() && !self->closed_) self->start_grace_timer();  // nobody else keeps it loaded
  });
}

void Room::api_read(std::shared_ptr<Session> s, std::function<void(const crdt::Doc&)> read) {
  api_call(std::move(s), [read = std::move(read)](Room& r, const std::shared_ptr<Session>& s) {
    if (r.doc_->num_events() == 0) {
      s->close_with(proto::kDeleted, "no document '" + r.name_ + "'");
    } else {
      read(*r.doc_);
    }
  });
}

void Room::api_edit(std::shared_ptr<Session> s, std::function<crdt::Result<crdt::OpBatch>(const crdt::Doc&)> make) {
  api_call(std::move(s), [make = std::move(make)](Room& r, const std::shared_ptr<Session>& s) {
    // Invariant 3: the seqs of an agent a live session writes as are that session's to give.
    if (r.owners_.count(s->agents.front())) {
      s->close_with(proto::kAgentInUse, "agent '" + s->agents.front() + "' is in use by a connected session");
    } else if (auto batch = make(*r.doc_); !batch.ok()) {
      s->close_with(proto::kRejected, batch.status().message());
    } else {
      r.members_.insert(s->id);
      r.ops_now(s, 1, std::move(*batch), Clock::now());
      r.members_.erase(s->id);
    }
  });
}

void Room::api_delete(std::function<void()> done) {
  on_thread([self = shared_from_this(), done = std::move(done)] {
    {
      std::lock_guard<std::mutex> lock(self->srv_.rooms_mu);
      --self->pending_joins;
    }
    if (!self->closed_) {
      self->flush();
      for (const auto& s : self->sessions_) s->close_with(proto::kDeleted, "the document was deleted");
      self->close_room(true);
    }
    done();
  });
}

void Room::shutdown(std::function<void()> done) {
  boost::asio::post(ex_, [self = shared_from_this(), done = std::move(done)] {
    if (!self->closed_) {
      self->flush();
      for (const auto& s : self->sessions_) s->close_plain(1001, "server going away");
      self->maybe_snapshot(true);
      self->close_room(true);
    }
    done();
  });
}

}  // namespace tandem::net
