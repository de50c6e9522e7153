// The server's half of the sync protocol (docs/protocol.md), with no socket, clock or thread.
//
// PeerSync checks what one client sends (its session's half: HELLO first and once, the protocol
// version, agents of the token's subject, operations only of its own agents and within the
// limits) and says what it asks of the document, or why the session must close. DocSync is the
// document's half, one per open document: who is here and which agents they own, what a joining
// peer lacks, which batch to apply, what to broadcast and to whom, and which acknowledgements are
// due once the store made events durable. The server's rooms drive both; so do the HTTP API's
// edits (a peer of their own) and the simulation test (tests/sim).
//
// DocSync invariants:
//  1. durable() is the document's version after the last append the store reported durable
//     (merged with what other nodes logged); a batch is acknowledged once it includes every
//     event of the batch, and never before.
//  2. An agent is owned by at most one member that may write; a newer one takes it over.
//  3. Everything apply() and remote() added to the replica is broadcast once, to every member
//     but its author (the one member owning all of it), by take_broadcast().
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "crdt/op.h"
#include "crdt/version.h"
#include "sync/protocol.h"

namespace tandem::sync {

// Why a session must end: the ERROR's code (also the close code) and message.
struct Refusal {
  uint16_t code = proto::kBadMessage;
  std::string message;
};

struct ServerLimits {
  size_t max_message_bytes = size_t{1} << 20;
  uint64_t max_batch_events = 100000;
  uint64_t max_held_events = uint64_t{1} << 20;  // how far a HELLO may claim past what the server has
};

// With auth on: may a session of `subject` write as `agent`? (the subject, or "<subject>/...")
bool AgentBelongsTo(std::string_view agent, std::string_view subject);

struct Batch {
  uint64_t id = 0;
  crdt::Batch ops;  // as received: the columns codec::decode_batch read
};

class PeerSync {
 public:
  // subject: the token's ("" on an open server); read_only: what the token grants.
  PeerSync(std::string subject, bool read_only, ServerLimits limits);
  // One message from the client: what it asks of the document, or why the session must close.
  using Inbound = std::variant<proto::Hello, Batch, proto::Presence, Refusal>;
  Inbound receive(std::string_view message);

  bool joined() const { return joined_; }
  uint32_t protocol() const { return protocol_; }  // the HELLO's version
  bool read_only() const { return read_only_; }
  const std::vector<std::string>& agents() const { return agents_; }  // bound by HELLO

 private:
  Inbound on_hello(proto::Hello h);
  Inbound on_ops(proto::Ops o);

  std::string subject_;
  bool read_only_;
  ServerLimits limits_;
  bool joined_ = false;
  uint32_t protocol_ = proto::kProtocolVersion;
  std::vector<std::string> agents_;
};

class DocSync {
 public:
  // A document as the store loaded it: all of it is durable.
  DocSync(crdt::Doc doc, ServerLimits limits);

  crdt::Doc& doc() { return doc_; }
  const crdt::Doc& doc() const { return doc_; }
  const crdt::Version& durable() const { return durable_; }
  bool member(uint64_t peer) const { return members_.count(peer) > 0; }
  size_t members() const { return members_.size(); }

  struct Joined {
    // To the joining peer, in order: WELCOME, then what it lacks (SNAPSHOT to a protocol-3 peer
    // that holds nothing, else OPS, or neither), then PRESENCE_UPDATE...
    std::vector<std::string> messages;
    uint64_t sent_events = 0;           // operations in the OPS or the SNAPSHOT
    std::vector<std::pair<uint64_t, std::string>> displaced;  // members whose agent it took over
  };
  // `peer` (a new id) joins as `agents` holding `have`, speaking protocol `protocol` (a
  // version-1 peer is refused a document with formatting, which it could not read).
  std::variant<Joined, Refusal> join(uint64_t peer, std::vector<std::string> agents, bool read_only, const crdt::Version& have,
                                     uint32_t protocol = proto::kProtocolVersion);
  // Its agents, presence and awaited acknowledgements are forgotten; a LEAVE for the others if
  // it had a presence.
  std::optional<std::string> leave(uint64_t peer);
  // PRESENCE_UPDATE for the others (nullopt when `peer` is not a member).
  std::optional<std::string> presence(uint64_t peer, proto::Presence p);

  struct Applied {
    // What the batch added, to hand to the store, in this order (then durable()): the batch's
    // own bytes when it was integrated whole as received, else the events added, encoded.
    crdt::codec::EncodedOps added;
    std::optional<std::string> ack;   // ACK to send now: every event of the batch is durable already
  };
  // A member's batch (PeerSync checked its form). A refusal: the document does not take it (its
  // positions, the held-operations bound, its size); the session ends.
  std::variant<Applied, Refusal> apply(uint64_t peer, Batch batch);
  // An edit of the HTTP API, as batch 1 of a peer that never joins: refused (kAgentInUse) while
  // a member writes as its agent. The ACK comes from durable() like anyone's.
  std::variant<Applied, Refusal> edit(uint64_t peer, crdt::OpBatch ops);
  // Operations another node logged (durable already). Returns this node's own held operations
  // the batch released, which are not in the log yet: to hand to the store.
  crdt::Result<crdt::OpBatch> remote(const crdt::OpBatch& ops);
  // The store made everything up to `version` durable. `authors`, when given, receives the agents
  // whose operations this made durable.
  void durable(const crdt::Version& version, std::vector<std::string>* authors = nullptr);

  struct Broadcast {
    struct Ops {
      std::string message;   // OPS
      uint64_t events = 0;
      uint64_t author = 0;   // the member it must not go to (0: it goes to everyone)
    };
    // One OPS per batch added, in order: a batch integrated whole goes out as its author sent
    // it, with nothing encoded again.
    std::vector<Ops> messages;
    // Members of protocol 1 that this broadcast's formatting would reach: to close with the
    // refusal instead of sending it to them (their leave() follows the close).
    std::vector<uint64_t> outdated;
    Refusal outdated_why;
  };
  // What was added since the last call, once.
  std::optional<Broadcast> take_broadcast();
  bool broadcast_pending() const { return !outbox_.empty(); }
  // Acknowledgements now due: (peer, ACK message). leave() dropped those of the peer leaving.
  std::vector<std::pair<uint64_t, std::string>> take_acks();
  bool acks_ready() const { return !ready_.empty(); }
  // Peers still waiting for an acknowledgement (a document closing tells them it failed).
  std::vector<uint64_t> waiting() const;

 private:
  struct Member {
    std::vector<std::string> agents;
    bool read_only = false;
    uint32_t protocol = proto::kProtocolVersion;
  };
  struct PendingAck {
    uint64_t peer;
    uint64_t batch_id;
    crdt::Version need;  // crdt::reach of the batch
  };
  std::variant<Applied, Refusal> integrate(uint64_t peer, Batch batch);
  void release_acks();
  // SNAPSHOT of the replica as it is, encoded once per state of it (joins come in waves).
  const std::string& snapshot_message();

  crdt::Doc doc_;
  ServerLimits limits_;
  crdt::Version durable_;
  std::unordered_map<uint64_t, Member> members_;
  std::unordered_map<std::string, uint64_t> owners_;  // agent -> member
  std::map<uint64_t, std::pair<std::string, proto::Presence>> presence_;
  std::deque<PendingAck> acks_;
  std::vector<std::pair<uint64_t, uint64_t>> ready_;  // peer, batch id
  struct Outgoing {
    std::string ops;  // encoded operations
    uint64_t events = 0;
    uint64_t author = 0;
    bool rich = false;
  };
  void send_out(const crdt::codec::EncodedOps& ops, uint64_t author, bool rich);
  std::vector<Outgoing> outbox_;
  std::string snapshot_;
  uint64_t snapshot_events_ = UINT64_MAX;
};

}  // namespace tandem::sync
