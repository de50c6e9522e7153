// ClientSync: the client's half of the sync protocol (docs/protocol.md section 10), with no socket,
// clock or thread. One object per replica: the transport tells it a connection opened or closed
// and hands it each message from the server; it answers with the messages to send and with what
// the application must hear (remote changes, presence, an error). The native client, the C API
// and the WebAssembly engine (so the JavaScript package) all drive this one object.
//
// What it keeps: the replica, the agents it writes as (the current one first; earlier ones whose
// edits are not all acknowledged yet, after a restore), how far the server acknowledged each as
// durable, what the server holds as far as this connection knows, and the batches in flight.
//
// Restore continues under a new agent: a saved state may be older than what the replica sent
// before it stopped, and continuing the saved agent could give two different edits one id. The
// saved agents stay in HELLO until the server acknowledged all of their edits.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crdt/doc.h"
#include "crdt/status.h"
#include "crdt/version.h"
#include "sync/protocol.h"

namespace tandem::sync {

struct ClientLimits {
  uint64_t max_batch_events = 100000;          // larger sends are split (the server's default limit)
  size_t max_batch_bytes = size_t{512} << 10;  // ... and so are batches whose text passes this
  size_t max_message_bytes = size_t{256} << 20;  // largest message accepted from the server
  int64_t min_backoff_ms = 100;    // the first retry's delay, doubled at each failed attempt ...
  int64_t max_backoff_ms = 10000;  // ... up to this
};

// What one message from the server means for the application.
struct ClientEvent {
  enum Kind { kWelcome, kChange, kAck, kPresence, kLeave, kError };
  Kind kind = kAck;
  std::vector<crdt::Patch> patches;  // kChange: in order, each on the text the previous one left
  bool replaced = false;             // kChange: the replica was replaced by a SNAPSHOT (one patch
                                     // replaces the whole text; format events renumbered from 0)
  proto::PresenceUpdate presence;    // kPresence
  uint64_t session = 0;              // kWelcome: this session's; kLeave: the one that left
  uint16_t code = 0;                 // kError, with message: the server closes after it
  std::string message;
};

class ClientSync {
 public:
  explicit ClientSync(crdt::Doc doc, ClientLimits limits = {});
  // A replica from save()'s bytes, continuing as `agent` (a name never used before). Errors:
  // Corruption (not save()'s bytes), InvalidArgument (a bad agent name, or one of the saved ones).
  static crdt::Result<ClientSync> Restore(std::string_view saved, const std::string& agent, ClientLimits limits = {});
  // The same from a snapshot (crdt::codec::save) and, per earlier agent, how many of its
  // operations the server acknowledged: what stores kept before save() existed.
  using Acked = std::vector<std::pair<std::string, uint32_t>>;
  static crdt::Result<ClientSync> Restore(std::string_view snapshot, Acked acked, const std::string& agent,
                                          ClientLimits limits = {});
  // The replica, the agents with edits not yet acknowledged and how far each is: for Restore.
  std::string save() const;

  // Local edits go to the replica directly; outgoing() then has them.
  crdt::Doc& doc() { return doc_; }
  const crdt::Doc& doc() const { return doc_; }
  const std::string& agent() const { return doc_.agent(); }

  // A connection opened: the HELLO to send first.
  std::string open();
  // The connection is gone (or replaced): nothing is in flight any more.
  void closed();
  // One message from the server; `now_ms` is any monotonic clock, for the reconnect backoff.
  // An error means the server broke the protocol: drop the connection (the next one resyncs).
  // After a kWelcome or a kChange, outgoing() may have messages to send.
  crdt::Result<ClientEvent> receive(std::string_view message, int64_t now_ms = 0);
  // The connection was refused before the protocol began (an HTTP error to the upgrade), said
  // as the error the server would have sent: should_retry() judges it like one.
  void refused(uint16_t code, std::string message) { error_.emplace(code, std::move(message)); }
  // Messages to send now: own presence when it changed or the connection is new, then own
  // operations the server has not been sent on this connection, in batches within the limits
  // (nothing before WELCOME; no operations when read-only).
  std::vector<std::string> outgoing();
  // Own presence: kept, and sent by outgoing() now and after every WELCOME.
  void set_presence(proto::Presence p);

  bool welcomed() const { return welcomed_; }
  bool read_only() const { return read_only_; }
  uint64_t session() const { return session_; }
  // Own operations (of every agent this replica writes as) not yet acknowledged durable.
  uint64_t unsent() const;
  // Welcomed, caught up with what the server held when it welcomed this connection, and every
  // own edit acknowledged durable.
  bool synced() const;
  // The agents this replica writes as (the current first) and how far each is acknowledged.
  const std::vector<std::pair<std::string, uint32_t>>& agents() const { return agents_; }
  // The server's ERROR on this connection, if any (cleared by WELCOME).
  const std::optional<std::pair<uint16_t, std::string>>& error() const { return error_; }

  // After the connection closed: whether to try again (the error, if any, is one retrying may
  // fix), and after how long (exponential backoff from the limits' min_backoff_ms to their
  // max_backoff_ms, times `jitter` in [0.5, 1]; a connection that lasted 5 s starts the backoff
  // again). Errors retrying cannot fix (4400, 4401, 4403, 4409, 4410, 4413, 4422, 4426) stop the
  // client until the application acts.
  bool should_retry() const { return !error_ || !Terminal(error_->first); }
  int64_t retry_delay_ms(int64_t now_ms, double jitter);
  // A fresh start (the application asked to connect again): the backoff starts from the bottom.
  void reset_backoff() { attempt_ = 0; }
  static bool Terminal(uint16_t code);
  static constexpr int64_t kHealthyMs = 5000;

 private:
  void on_welcome(const proto::Welcome& w, int64_t now_ms);
  crdt::Result<ClientEvent> on_ops(const proto::Ops& o);
  crdt::Result<ClientEvent> on_snapshot(const proto::Snapshot& s);
  void on_ack(uint64_t batch_id);
  void forget_acknowledged();
  uint32_t* acked(const std::string& agent);

  crdt::Doc doc_;
  ClientLimits limits_;
  std::vector<std::pair<std::string, uint32_t>> agents_;  // agent -> own ops below this are durable
  crdt::Version base_;      // what the server holds, as far as this connection knows
  uint32_t protocol_ = proto::kProtocolVersion;  // the HELLO's version (lower after an older server refused it)
  crdt::Version welcomed_version_;  // what the server held durably when it welcomed us
  std::map<uint64_t, crdt::Version> pending_;  // batch id -> its reach (crdt::reach)
  uint64_t next_batch_ = 1;
  uint64_t session_ = 0;
  bool welcomed_ = false;
  bool read_only_ = false;
  std::optional<proto::Presence> presence_;
  bool presence_due_ = false;
  std::optional<std::pair<uint16_t, std::string>> error_;
  int attempt_ = 0;
  int64_t welcomed_at_ms_ = -1;
};

}  // namespace tandem::sync
