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

Server::Impl::Impl(ServerOptions o, store::DocStore* s)
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

bool Room::ensure_loaded(const std::function<void(uint16_t, std::string)>& fail) {
  if (sync_) return true;
  std::vector<std::string> warnings;
  auto loaded = srv_.store->load(name_, "server", &warnings);
  for (const auto& w : warnings) srv_.log.warn("doc.load_warning", {{"doc", name_}, {"warning", w}});
  std::optional<crdt::Doc> doc;
  if (loaded.ok()) {
    doc.emplace(std::move(*loaded));
  } else if (loaded.status().code() == Status::Code::kNotFound) {
    doc.emplace("server");
  } else {
    srv_.log.error("doc.load_failed", {{"doc", name_}, {"error", loaded.status().ToString()}});
    fail(proto::kInternal, "cannot load the document");
    return false;
  }
  crdt::DocLimits limits;
  limits.max_pending_events = srv_.opt.max_held_events;
  limits.max_pending_runs = static_cast<uint32_t>(std::min<uint64_t>(srv_.opt.max_held_events, UINT32_MAX));
  limits.max_length = srv_.opt.max_doc_chars;
  doc->set_limits(limits);
  sync::ServerLimits sl;
  sl.max_message_bytes = srv_.opt.max_frame_bytes;
  sl.max_batch_events = srv_.opt.max_batch_events;
  sl.max_held_events = srv_.opt.max_held_events;
  sync_.emplace(std::move(*doc), sl);
  logged_ = snapshot_events_ = sync_->doc().num_events();
  snapshot_time_ = Clock::now();
  // A store shared with other nodes hands over what they append to this document from now on.
  srv_.store->watch(name_, [weak = weak_from_this()](crdt::OpBatch batch, std::string position) {
    if (auto self = weak.lock()) self->remote(std::move(batch), std::move(position));
  });
  watching_ = true;
  counted_ = true;
  ++srv_.metrics.open_documents;
  srv_.log.info("doc.open", {{"doc", name_}, {"events", std::to_string(logged_)}, {"chars", std::to_string(sync_->doc().length())}});
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
  if (!ensure_loaded([&s](uint16_t code, std::string m) { s->close_with(code, std::move(m)); })) return;
  auto r = sync_->join(s->id, s->agents, s->read_only, hello.doc_version, hello.version);
  if (auto* no = std::get_if<sync::Refusal>(&r)) {
    s->close_with(no->code, no->message);
    return;
  }
  auto& joined = std::get<sync::DocSync::Joined>(r);
  for (const auto& [other, agent] : joined.displaced) {
    if (auto it = by_id_.find(other); it != by_id_.end()) {
      it->second->close_with(proto::kAgentInUse, "agent '" + agent + "' was taken over by a newer session");
    }
  }
  sessions_.push_back(s);
  by_id_[s->id] = s;
  refused.joined = true;
  // WELCOME, what the client lacks, the others' presence: catch-up, never counted against the queue.
  for (size_t i = 0; i < joined.messages.size(); ++i) {
    s->send(make_frame(joined.messages[i]), i == 1 ? joined.sent_events : 0, true);
  }
  srv_.log.info("session.join", {{"doc", name_},
                                 {"session", std::to_string(s->id)},
                                 {"agent", s->agents.front()},
                                 {"peer", s->peer},
                                 {"read_only", s->read_only ? "true" : "false"},
                                 {"sent", std::to_string(joined.sent_events)}});
}

void Room::ops(std::shared_ptr<Session> s, sync::Batch batch, Clock::time_point received) {
  on_thread([self = shared_from_this(), s = std::move(s), batch = std::move(batch), received]() mutable {
    try {
      self->ops_now(s, std::move(batch), received);
    } catch (const std::exception& e) {
      self->contain("ops", e, s, true);
    }
  });
}

void Room::ops_now(const std::shared_ptr<Session>& s, sync::Batch batch, Clock::time_point received) {
  if (closed_ || !sync_) return;
  srv_.metrics.ops_in += batch.ops.events();
  const bool was_pending = sync_->broadcast_pending();
  auto r = sync_->apply(s->id, std::move(batch));
  if (auto* no = std::get_if<sync::Refusal>(&r)) {
    srv_.log.warn("ops.refused", {{"doc", name_}, {"session", std::to_string(s->id)}, {"error", no->message}});
    s->close_with(no->code, no->message);
    return;
  }
  auto& a = std::get<sync::DocSync::Applied>(r);
  applied(a, was_pending, received);
  if (a.ack) s->send(make_frame(*a.ack), 0);
}

void Room::applied(sync::DocSync::Applied& a, bool was_pending, Clock::time_point received) {
  const uint64_t added = a.added.events;
  if (added == 0) return;
  srv_.metrics.ops_integrated += added;
  log_events(std::move(a.added));
  if (!was_pending) outbox_since_ = received;
  schedule_flush();
  maybe_snapshot(false);
}

void Room::log_events(crdt::codec::EncodedOps events) {
  const uint64_t first = logged_;
  logged_ += events.events;
  ++appending_;
  const Clock::time_point handed = Clock::now();
  srv_.store->append(name_, first, std::move(events), [self = shared_from_this(), v = sync_->doc().version(), handed](Status st) {
    boost::asio::post(self->ex_, [self, st, v, handed] { self->on_durable(st, v, handed); });
  });
}

void Room::contain(const char* where, const std::exception& e, const std::shared_ptr<Session>& s, bool document) {
  srv_.log.error("room.exception", {{"doc", name_}, {"session", std::to_string(s ? s->id : 0)}, {"in", where}, {"error", e.what()}});
  if (s) s->close_with(proto::kInternal, "internal error");  // first: a session keeps the first ERROR
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
  if (closed_ || !sync_) return;
  if (auto b = sync_->take_broadcast()) {
    for (uint64_t peer : b->outdated) {
      if (auto s = by_id_.find(peer); s != by_id_.end()) s->second->close_with(b->outdated_why.code, b->outdated_why.message);
    }
    for (const auto& m : b->messages) send_to_others(m.author, make_frame(m.message), m.events);
    srv_.metrics.broadcast_latency.observe(seconds_since(outbox_since_));
  }
  send_acks();
}

void Room::send_acks() {
  for (auto& [peer, ack] : sync_->take_acks()) {
    if (auto s = by_id_.find(peer); s != by_id_.end()) {
      s->second->send(make_frame(ack), 0);
    } else if (auto w = api_edits_.find(peer); w != api_edits_.end()) {
      auto done = std::move(w->second);
      api_edits_.erase(w);
      done(0, "");
    }
  }
}

void Room::send_to_others(uint64_t except, const Frame& f, uint64_t ops) {
  for (const auto& s : sessions_) {
    if (s->id != except && !s->closed) s->send(f, ops);
  }
}

void Room::on_durable(Status st, crdt::Version version, Clock::time_point handed) {
  --appending_;
  if (closed_) return;
  if (!st.ok()) {
    break_room("the store failed: " + st.ToString(), "the server could not store the document; reconnect");
    return;
  }
  srv_.metrics.commit_latency.observe(seconds_since(handed));
  std::vector<std::string> authors;  // whose operations this commit made durable: the webhook's "agents"
  sync_->durable(version, srv_.on_durable ? &authors : nullptr);
  if (!authors.empty()) srv_.on_durable(name_, sync_->durable(), sync_->durable().total(), authors);
  // Acknowledgements go out with the room's next broadcast: in one write with it to each
  // session, also when broadcasts are paced.
  if (sync_->acks_ready()) schedule_flush();
}

void Room::remote(crdt::OpBatch batch, std::string position) {
  on_thread([self = shared_from_this(), batch = std::move(batch), position = std::move(position)]() mutable {
    try {
      self->remote_now(std::move(batch), std::move(position));
    } catch (const std::exception& e) {
      self->contain("remote", e, nullptr, true);
    }
  });
}

void Room::remote_now(crdt::OpBatch batch, std::string position) {
  if (closed_ || !sync_) return;
  const uint64_t before = sync_->doc().num_events();
  const bool was_pending = sync_->broadcast_pending();
  auto ours = sync_->remote(batch);
  if (!ours.ok()) {
    // Another node logged it, so it was valid there: a limit of this node's (held operations,
    // document size) refuses it. Its sessions resync from the store when they reconnect.
    srv_.log.warn("remote.refused", {{"doc", name_}, {"error", ours.status().ToString()}});
    return;
  }
  remote_position_ = std::move(position);
  if (ours->events() > 0) log_events(crdt::codec::encode_counted(*ours));
  const uint64_t added = sync_->doc().num_events() - before;
  if (added > 0) {
    srv_.metrics.ops_integrated += added;
    srv_.metrics.remote_ops += added;
    if (!was_pending) outbox_since_ = Clock::now();
  }
  if (added > 0 || sync_->acks_ready()) schedule_flush();
}

void Room::maybe_snapshot(bool force) {
  if (!sync_ || logged_ == snapshot_events_) return;
  const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - snapshot_time_);
  if (!force && logged_ - snapshot_events_ < srv_.opt.snapshot_every_events && since < srv_.opt.snapshot_every) return;
  const uint64_t events = logged_;
  srv_.store->put_snapshot(
      name_, events, codec::save(sync_->doc()),
      [this_log = &srv_.log, name = name_](Status st) {
        if (!st.ok()) this_log->warn("snapshot.failed", {{"doc", name}, {"error", st.ToString()}});
      },
      remote_position_);
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
  // Sessions were closed before; what still waits for an acknowledgement is an HTTP API edit.
  if (sync_) {
    send_acks();
    for (uint64_t peer : sync_->waiting()) {
      if (auto w = api_edits_.find(peer); w != api_edits_.end()) w->second(proto::kInternal, "the document closed before the edit was stored");
    }
  }
  api_edits_.clear();
  grace_.cancel();
  pace_.cancel();
  sessions_.clear();
  by_id_.clear();
  sync_.reset();
  return true;
}

void Room::presence(std::shared_ptr<Session> s, proto::Presence p) {
  on_thread([self = shared_from_this(), s = std::move(s), p = std::move(p)]() mutable {
    if (self->closed_ || !self->sync_) return;
    if (auto msg = self->sync_->presence(s->id, std::move(p))) self->send_to_others(s->id, make_frame(*msg), 0);
  });
}

void Room::leave(std::shared_ptr<Session> s) {
  on_thread([self = shared_from_this(), s = std::move(s)] {
    auto it = std::find(self->sessions_.begin(), self->sessions_.end(), s);
    if (it == self->sessions_.end()) return;
    self->sessions_.erase(it);
    self->by_id_.erase(s->id);
    if (self->sync_) {
      if (auto msg = self->sync_->leave(s->id)) self->send_to_others(s->id, make_frame(*msg), 0);
    }
    self->srv_.log.info("session.leave", {{"doc", self->name_}, {"session", std::to_string(s->id)}});
    if (self->sessions_.empty()) self->start_grace_timer();
  });
}

void Room::start_grace_timer() {
  grace_.expires_after(srv_.opt.room_grace);
  grace_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closed_ || !self->sessions_.empty()) return;
    // Not while appends are on their way: the room reopened would load the log without them (and
    // a shared store does not hand a node its own rows), then hold whatever depends on them.
    if (self->appending_ > 0) return self->start_grace_timer();
    self->maybe_snapshot(true);
    if (self->close_room(false)) {
      self->srv_.log.info("doc.close", {{"doc", self->name_}, {"events", std::to_string(self->logged_)}});
    }
  });
}

template <class F>
void Room::api_call(ApiDone fail, F body) {
  on_thread([self = shared_from_this(), fail = std::move(fail), body = std::move(body)]() mutable {
    {
      std::lock_guard<std::mutex> lock(self->srv_.rooms_mu);
      --self->pending_joins;
    }
    if (self->closed_) {
      fail(proto::kInternal, "the document was closed; try again");
      return;
    }
    self->grace_.cancel();
    try {
      if (self->ensure_loaded(fail)) body(*self);
    } catch (const std::exception& e) {
      self->contain("an HTTP API call", e, nullptr, true);
      fail(proto::kInternal, "internal error");
    }
    if (self->sessions_.empty() && !self->closed_) self->start_grace_timer();  // nobody else keeps it loaded
  });
}

void Room::api_read(std::function<void(const crdt::Doc&)> read, ApiDone done) {
  api_call(done, [read = std::move(read), done](Room& r) {
    if (r.sync_->doc().num_events() == 0) {
      done(proto::kDeleted, "no document '" + r.name_ + "'");
    } else {
      read(r.sync_->doc());
    }
  });
}

void Room::api_edit(std::function<crdt::Result<crdt::OpBatch>(const crdt::Doc&)> make, ApiDone done) {
  api_call(done, [make = std::move(make), done](Room& r) {
    auto batch = make(r.sync_->doc());
    if (!batch.ok()) {
      done(proto::kRejected, batch.status().message());
      return;
    }
    const uint64_t peer = r.srv_.next_session++;
    const uint64_t events = batch->events();
    const bool was_pending = r.sync_->broadcast_pending();
    auto a = r.sync_->edit(peer, std::move(*batch));
    if (auto* no = std::get_if<sync::Refusal>(&a)) {
      done(no->code, no->message);
      return;
    }
    r.srv_.metrics.ops_in += events;
    auto& applied = std::get<sync::DocSync::Applied>(a);
    r.applied(applied, was_pending, Clock::now());
    if (applied.ack) {
      done(0, "");
    } else {
      r.api_edits_[peer] = done;
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
