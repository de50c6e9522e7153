// Internals of the server shared by its translation units: the session interface a room talks to,
// and the room itself. See server.h for the behaviour; here are the invariants.
//
// Room invariants (all state touched only on the room's I/O thread), beside sync::DocSync's:
//  1. Every integrated event has been handed to the store, in integration order: logged_ equals
//     the document's event count.
//  2. The store's reports of durability reach sync_ in the order of the appends.
//  3. Once closed_, the room accepts nothing: joins are sent back to the server for a new room.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "crdt/doc.h"
#include "store/replay.h"
#include "log.h"
#include "metrics.h"
#include "net/auth.h"
#include "net/jwt.h"
#include "sync/protocol.h"
#include "sync/server.h"
#include "net/server.h"

namespace tandem::net {

using Clock = std::chrono::steady_clock;
// One whole WebSocket frame (header and payload) as it goes on the wire, shared by every session
// it is sent to: a server's frames are not masked, so the bytes are the same for all of them.
using Frame = std::shared_ptr<const std::string>;
// A binary frame holding one protocol message (proto::encode).
Frame make_frame(std::string_view message);

// What a room needs of a WebSocket session. send() and close_with() may be called from any
// thread; the rest is fixed before the session joins.
class Session : public std::enable_shared_from_this<Session> {
 public:
  virtual ~Session() = default;
  // Queues a frame; `ops` counts the operations in it (metrics). `catch_up` frames (the WELCOME
  // and what a joining client lacks) are never counted against the queue limit, nor are their
  // bytes counted in the backlog the limit is checked on: a client must be able to open a
  // document of any size. Nothing is queued once the session is closing.
  virtual void send(Frame frame, uint64_t ops, bool catch_up = false) = 0;
  // Sends ERROR {code, message} and closes with that code.
  virtual void close_with(uint16_t code, std::string message) = 0;
  // Closes with a plain WebSocket close code (1001 going away).
  virtual void close_plain(uint16_t code, std::string reason) = 0;
  // Writes what is queued; called by its I/O thread at the end of the round (IoThread::defer_write).
  virtual void write_queued() {}

  // Set by close_with, close_plain and the end of the connection, from any thread: a room skips
  // a session that is already on its way out instead of sending it a document.
  std::atomic<bool> closed{false};

  uint64_t id = 0;
  std::vector<std::string> agents;  // bound at HELLO
  bool read_only = false;
  std::string peer;                 // address, for logs
};

class Room;

// One I/O thread's share of the server: its own io_context (run by that thread alone, so what
// runs on it needs no strand), and whether it is running late (rooms on it pace broadcasts).
struct IoThread {
  boost::asio::io_context ioc{1};
  std::atomic<bool> busy{false};       // pacing: pace_us_per_session > 0
  std::atomic<int64_t> lag_us{0};
  // Broadcast pacing (ServerOptions::max_broadcast_delay): while this thread is busy, a room of
  // n sessions broadcasts at most once per n * pace_us_per_session. Set by the thread's probe
  // (server.cc, LagProbe::adjust) from its CPU use, its own or its share of the process's,
  // whichever is larger: above 80% it grows by half plus 100 us (up to max_broadcast_delay),
  // below 65% it halves, then drops to nothing. Only this thread writes it (the metrics read it
  // from the others).
  std::atomic<int64_t> pace_us_per_session{0};

  // The end of a round, on this thread: once the handlers already waiting have run, the rooms
  // given to defer_broadcast broadcast what they integrated, then the sessions given to
  // defer_write write everything queued for them, each in one system call. One posted handler
  // does both, so that a round costs one more look at epoll, not one per room and session.
  void defer_broadcast(std::shared_ptr<Room> r);
  void defer_write(std::shared_ptr<Session> s);

 private:
  void end_of_round();
  std::vector<std::shared_ptr<Room>> to_broadcast_;
  std::vector<std::shared_ptr<Session>> to_write_;
  bool posted_ = false;
};

class Room : public std::enable_shared_from_this<Room> {
  friend struct IoThread;
 public:
  Room(Server::Impl& server, std::string name);
  ~Room();

  // All of these run on the room's thread: at once when called there (a session of this
  // document on a plain socket), else posted.
  void join(std::shared_ptr<Session> s, proto::Hello hello);
  void ops(std::shared_ptr<Session> s, sync::Batch batch, Clock::time_point received);
  void presence(std::shared_ptr<Session> s, proto::Presence p);
  // Operations another node appended (DocStore::watch), durable already, and the store's
  // position after them: integrated and broadcast to every session here, never appended.
  void remote(crdt::OpBatch batch, std::string position);
  void leave(std::shared_ptr<Session> s);
  // The HTTP API (http_api.cc). `done(0, "")` reports success, `done(code, message)` a failure
  // with the protocol's code (kInternal: the store; kDeleted: no such document; kAgentInUse: a
  // live session writes as the agent; kRejected, kTooLarge: the document refuses the edit).
  // Like join(), each expects a pending_joins count taken by Server::Impl::room().
  using ApiDone = std::function<void(uint16_t code, std::string message)>;
  // Reads the document on the room's thread.
  void api_read(std::function<void(const crdt::Doc&)> read, ApiDone done);
  // Applies the batch `make` builds from the document as this room holds it, as a peer of its
  // own (sync::DocSync::edit): broadcast to every session; done once durable.
  void api_edit(std::function<crdt::Result<crdt::OpBatch>(const crdt::Doc&)> make, ApiDone done);
  // Closes every session with kDeleted and the room (the store removes the data); then done().
  void api_delete(std::function<void()> done);
  // Server shutdown: close every session (going away), snapshot, close the room; then done().
  void shutdown(std::function<void()> done);

  const std::string& name() const { return name_; }

 private:
  // Runs f on the room's thread: now if this is it, else posted.
  template <class F>
  void on_thread(F&& f);
  // The frame of the HTTP API's calls: on the room's thread, with the document loaded, then the
  // grace timer again if no session keeps the room. body(Room&).
  template <class F>
  void api_call(ApiDone fail, F body);
  // The bodies of join() and ops(), on the room's thread.
  void join_now(const std::shared_ptr<Session>& s, proto::Hello hello);
  void ops_now(const std::shared_ptr<Session>& s, sync::Batch batch, Clock::time_point received);
  // What sync_->apply or edit added: counted, logged, and broadcast at the end of the round
  // (`was_pending`: a broadcast was pending before it, since an earlier time).
  void applied(sync::DocSync::Applied& a, bool was_pending, Clock::time_point received);
  // An exception escaped a handler (a bug, memory exhausted): `s`'s session ends with kInternal,
  // and when the document may be half changed, the room closes too (its clients resync).
  void contain(const char* where, const std::exception& e, const std::shared_ptr<Session>& s, bool document);
  // Loads the document if it is not; false (and `fail` told why) when the store cannot.
  bool ensure_loaded(const std::function<void(uint16_t, std::string)>& fail);
  void schedule_flush();
  void flush();
  void send_acks();
  void on_durable(crdt::Status st, crdt::Version version, Clock::time_point handed);
  void remote_now(crdt::OpBatch batch, std::string position);
  // Hands integrated events to the store (invariant 1), and on_durable when they are durable.
  void log_events(crdt::codec::EncodedOps events);
  void maybe_snapshot(bool force);
  // Closes every session with kInternal and `to_clients`, and the room (the next HELLO reloads).
  void break_room(const std::string& why, const std::string& to_clients);
  bool close_room(bool force);
  void start_grace_timer();
  void send_to_others(uint64_t except, const Frame& f, uint64_t ops);

  Server::Impl& srv_;
  std::string name_;
  IoThread& thread_;
  boost::asio::io_context::executor_type ex_;  // thread_'s: every member below is touched only there
  boost::asio::steady_timer grace_;
  boost::asio::steady_timer pace_;  // a paced broadcast (see ServerOptions::max_broadcast_delay)
  Clock::time_point last_flush_;
  std::optional<sync::DocSync> sync_;  // the document and its protocol state, once loaded
  std::vector<std::shared_ptr<Session>> sessions_;
  std::unordered_map<uint64_t, std::shared_ptr<Session>> by_id_;  // sessions_, by id
  std::unordered_map<uint64_t, ApiDone> api_edits_;  // HTTP API edits waiting to be durable, by peer id
  std::string remote_position_;  // of the last remote batch integrated: what snapshots cover
  bool watching_ = false;
  uint64_t logged_ = 0;
  uint64_t appending_ = 0;  // appends handed to the store and not yet reported back
  uint64_t snapshot_events_ = 0;  // events covered by the last snapshot
  Clock::time_point snapshot_time_;
  Clock::time_point outbox_since_;  // when the broadcast now pending began
  bool flush_posted_ = false;
  bool closed_ = false;
  bool counted_ = false;          // in metrics.open_documents

 public:
  // Joins on their way (taken in Server::Impl::room() under rooms_mu): the room does not unload
  // while any is pending, so that no session is left holding a closed room.
  size_t pending_joins = 0;  // under Server::Impl::rooms_mu
};

// Server::Impl members the room uses.
//
// Threading: a document belongs to one I/O thread (a hash of its name), and so do its room and
// the plain-TCP sessions that open it (their sockets move to that thread at the upgrade). An
// edit is read, merged, broadcast and acknowledged on that thread, with no lock and no handoff;
// only TLS sessions, which cannot move, post across. Documents spread over the threads.
struct Server::Impl {
  // Destroyed in reverse: the listener (net) and the rooms go while the I/O threads' contexts
  // still exist, and sessions destroyed with those contexts' pending handlers still find the
  // metrics and connection counts.
  ServerOptions opt;
  store::DocStore* store;
  Logger log;
  Metrics metrics;
  struct Connections {
    std::mutex mu;
    uint32_t sessions = 0;  // WebSocket sessions, counted from the upgrade
    std::unordered_map<std::string, uint32_t> per_ip;
  } conns;
  std::vector<std::unique_ptr<IoThread>> threads;
  boost::asio::io_context& ioc;  // threads[0]'s: the listener, signals and shutdown run there
  std::mutex rooms_mu;
  std::unordered_map<std::string, std::shared_ptr<Room>> rooms;
  std::atomic<uint64_t> next_session{1};
  std::atomic<bool> stopping{false};
  std::shared_ptr<const JwtVerifier> jwt;  // set by start() when ServerOptions::jwt is
  store::HistoryCache history_cache;        // for the HTTP API's history reads
  // Told of each commit that made operations durable: the document, its durable version and
  // event count, and whose operations the commit made durable. Set by start() when webhooks are
  // configured (server.cc keeps them: a room needs no webhook code); empty otherwise, and rooms
  // then do not collect the agents.
  std::function<void(const std::string& doc, const crdt::Version& durable, uint64_t events,
                     const std::vector<std::string>& agents)>
      on_durable;

  bool auth_on() const { return jwt || !opt.auth_secret.empty(); }
  // The grant a token carries: a JWT when JWTs are configured, else (or when it is not shaped like
  // one) Tandem's own format. Errors: the verifier's, or a missing token.
  crdt::Result<Token> authorize(std::string_view token) const;

  Impl(ServerOptions o, store::DocStore* s);

  // The I/O thread that owns `doc`.
  IoThread& thread_for(std::string_view doc);

  // The room for `doc`, created if needed.
  // nullptr once the server is stopping: no room opens after the shutdown collected them.
  std::shared_ptr<Room> room(const std::string& doc);
  // Called by a room that wants to close: true (and the room is forgotten, so that the next join
  // makes a new one) unless joins are on their way to it, or `force`.
  bool forget(const std::string& doc, Room* room, bool force);

  // The rest of the server (listener, sessions) lives in server.cc.
  // Set by Server (server.cc, where Net is complete, as is its deleter); absent when sessions
  // and rooms run without a network (the protocol fuzzer).
  struct Net;
  std::unique_ptr<Net, void (*)(Net*)> net{nullptr, nullptr};
};

}  // namespace tandem::net
