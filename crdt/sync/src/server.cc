#include "sync/server.h"

#include <algorithm>

#include "crdt/codec.h"
#include "crdt/split.h"

namespace tandem::sync {

using crdt::Status;

bool AgentBelongsTo(std::string_view agent, std::string_view subject) {
  return agent == subject || (agent.size() > subject.size() + 1 && agent.substr(0, subject.size()) == subject &&
                              agent[subject.size()] == '/');
}

// ---- PeerSync ---------------------------------------------------------------------------------

PeerSync::PeerSync(std::string subject, bool read_only, ServerLimits limits)
    : subject_(std::move(subject)), read_only_(read_only), limits_(limits) {}

PeerSync::Inbound PeerSync::receive(std::string_view message) {
  auto msg = proto::decode(message, {limits_.max_message_bytes});
  if (!msg.ok()) return Refusal{proto::kBadMessage, msg.status().message()};
  if (auto* h = std::get_if<proto::Hello>(&*msg)) return on_hello(std::move(*h));
  if (!joined_) return Refusal{proto::kBadMessage, "the first message must be HELLO"};
  if (auto* o = std::get_if<proto::Ops>(&*msg)) return on_ops(std::move(*o));
  if (auto* p = std::get_if<proto::Presence>(&*msg)) return std::move(*p);
  return Refusal{proto::kBadMessage, "clients may send HELLO, OPS and PRESENCE only"};
}

PeerSync::Inbound PeerSync::on_hello(proto::Hello h) {
  if (joined_) return Refusal{proto::kBadMessage, "HELLO twice"};
  if (h.version < proto::kOldestProtocolVersion || h.version > proto::kProtocolVersion) {
    return Refusal{proto::kUnsupportedVersion, "protocol version " + std::to_string(h.version) +
                                                   " is not supported; this server speaks " +
                                                   std::to_string(proto::kOldestProtocolVersion) + " to " +
                                                   std::to_string(proto::kProtocolVersion)};
  }
  protocol_ = h.version;
  if (!subject_.empty()) {
    for (const auto& a : h.agents) {
      if (!AgentBelongsTo(a, subject_)) {
        return Refusal{proto::kForbidden, "agent '" + a + "' is not '" + subject_ + "' or '" + subject_ + "/...'"};
      }
    }
  }
  joined_ = true;
  agents_ = h.agents;
  return h;
}

PeerSync::Inbound PeerSync::on_ops(proto::Ops o) {
  if (read_only_) return Refusal{proto::kForbidden, "this session is read-only"};
  crdt::codec::DecodeLimits lim;
  lim.max_bytes = limits_.max_message_bytes;
  lim.max_runs = static_cast<uint32_t>(std::min<uint64_t>(limits_.max_batch_events, UINT32_MAX));
  lim.max_events = limits_.max_batch_events;
  auto batch = crdt::codec::decode_batch(o.encoded, lim);
  if (!batch.ok()) {
    const uint16_t code = batch.status().code() == Status::Code::kResourceExhausted ? proto::kTooLarge : proto::kBadMessage;
    return Refusal{code, batch.status().message()};
  }
  if (Status form = crdt::Doc::ValidateBatch(*batch); !form.ok()) return Refusal{proto::kBadMessage, form.message()};
  // Runs name agents by their index in the batch's table: each is looked up once.
  std::vector<int8_t> owned(batch->agents.size(), -1);
  for (const auto& r : batch->runs) {
    int8_t& own = owned[r.agent];
    const std::string_view agent = batch->agent(r.agent);
    if (own < 0) own = std::find(agents_.begin(), agents_.end(), agent) != agents_.end();
    if (!own) {
      return Refusal{proto::kForbidden, "operations by agent '" + std::string(agent) + "', which this session does not own"};
    }
  }
  return Batch{o.batch_id, std::move(*batch)};
}

// ---- DocSync ----------------------------------------------------------------------------------

DocSync::DocSync(crdt::Doc doc, ServerLimits limits) : doc_(std::move(doc)), limits_(limits), durable_(doc_.version()) {}

namespace {

Refusal outdated_client() {
  return Refusal{proto::kUnsupportedVersion,
                 "this document has formatting, which protocol 1 cannot carry: update the client"};
}

}  // namespace

std::variant<DocSync::Joined, Refusal> DocSync::join(uint64_t peer, std::vector<std::string> agents, bool read_only,
                                                     const crdt::Version& have, uint32_t protocol) {
  if (protocol < 2 && doc_.format_events() > 0) return outdated_client();
  // A client may hold operations the server lost (a crash before they were durable), but never
  // more than could be held waiting for their dependencies.
  for (const auto& [agent, next] : have.entries()) {
    const uint32_t held = doc_.version().next(agent);
    if (next > held && next - held > limits_.max_held_events &&
        std::find(agents.begin(), agents.end(), agent) == agents.end()) {
      return Refusal{proto::kRejected, "version claims " + std::to_string(next - held) + " operations of '" + agent +
                                           "' that this server never had"};
    }
  }
  Joined out;
  // An agent belongs to one member that may write: the newer one wins (a client reconnecting
  // before its old connection was noticed gone), and the older one is told why. Read-only
  // members own no agents.
  if (!read_only) {
    for (const auto& a : agents) {
      auto it = owners_.find(a);
      if (it != owners_.end() && it->second != peer) out.displaced.emplace_back(it->second, a);
      owners_[a] = peer;
    }
  }
  members_[peer] = Member{std::move(agents), read_only, protocol};
  proto::Welcome w;
  w.version = std::min(protocol, proto::kProtocolVersion);
  w.session = peer;
  w.read_only = read_only;
  w.doc_version = durable_;  // what is safe: the client resends its own operations beyond it
  out.messages.push_back(proto::encode(w));
  if (protocol >= 3 && have.empty() && doc_.num_events() > 0) {
    // A replica that holds nothing loads the document instead of merging its whole history.
    out.sent_events = doc_.num_events();
    out.messages.push_back(snapshot_message());
  } else if (crdt::OpBatch missing = doc_.ops_since(have); !missing.empty()) {
    out.sent_events = missing.events();
    out.messages.push_back(proto::encode(proto::Ops{0, crdt::codec::encode_ops(missing)}));
  }
  for (const auto& [sid, p] : presence_) {
    out.messages.push_back(proto::encode(proto::PresenceUpdate{sid, p.first, p.second}));
  }
  return out;
}

const std::string& DocSync::snapshot_message() {
  // Every change to the replica adds events, so the count says whether the cached one is stale.
  if (snapshot_events_ != doc_.num_events()) {
    snapshot_ = proto::encode(proto::Snapshot{crdt::codec::save(doc_)});
    snapshot_events_ = doc_.num_events();
  }
  return snapshot_;
}

std::optional<std::string> DocSync::leave(uint64_t peer) {
  auto m = members_.find(peer);
  if (m == members_.end()) return std::nullopt;
  for (const auto& a : m->second.agents) {
    auto o = owners_.find(a);
    if (o != owners_.end() && o->second == peer) owners_.erase(o);
  }
  members_.erase(m);
  std::erase_if(acks_, [&](const PendingAck& a) { return a.peer == peer; });
  std::erase_if(ready_, [&](const auto& r) { return r.first == peer; });
  for (auto& o : outbox_) {
    if (o.author == peer) o.author = 0;
  }
  if (presence_.erase(peer) == 0) return std::nullopt;
  return proto::encode(proto::Leave{peer});
}

std::optional<std::string> DocSync::presence(uint64_t peer, proto::Presence p) {
  auto m = members_.find(peer);
  if (m == members_.end()) return std::nullopt;
  const std::string& agent = m->second.agents.front();
  std::string msg = proto::encode(proto::PresenceUpdate{peer, agent, p});
  presence_[peer] = {agent, std::move(p)};
  return msg;
}

std::variant<DocSync::Applied, Refusal> DocSync::apply(uint64_t peer, Batch batch) {
  if (!members_.count(peer)) return Applied{};  // left while its batch was on the way
  return integrate(peer, std::move(batch));
}

std::variant<DocSync::Applied, Refusal> DocSync::edit(uint64_t peer, crdt::OpBatch ops) {
  for (const auto& r : ops.runs) {
    if (owners_.count(r.agent)) return Refusal{proto::kAgentInUse, "agent '" + r.agent + "' is in use by a connected session"};
  }
  return integrate(peer, Batch{1, crdt::Batch::from(ops)});
}

namespace {

// Whether every event of `added` is in `batch` (runs of one agent cover a range of seqs each).
bool carried(const crdt::Batch& batch, const crdt::OpBatch& added) {
  for (const auto& a : added.runs) {
    uint32_t from = a.seq;
    const uint32_t to = a.seq + a.len;
    // Batches are short lists of runs, in order: one pass per added run finds its cover.
    for (const auto& b : batch.runs) {
      if (b.seq <= from && from < b.seq + b.len && batch.agent(b.agent) == a.agent) from = b.seq + b.len;
      if (from >= to) break;
    }
    if (from < to) return false;
  }
  return true;
}

}  // namespace

std::variant<DocSync::Applied, Refusal> DocSync::integrate(uint64_t peer, Batch batch) {
  Applied out;
  crdt::OpBatch added;
  bool whole = false;
  const Status st = doc_.integrate(batch.ops, &added, &whole);  // a server shows no text: no patches
  if (!st.ok()) {
    // The peer's half checked the batch's form (Doc::ValidateBatch): what is left is the
    // document refusing it (positions, held operations past the bound) or a size limit.
    return Refusal{st.code() == Status::Code::kResourceExhausted ? proto::kTooLarge : proto::kRejected, st.message()};
  }
  // The acknowledgement waits until every event of the batch is durable (some may be held).
  PendingAck ack{peer, batch.id, crdt::reach(batch.ops)};
  if (whole) {
    const bool rich = !batch.ops.formats.empty();
    out.added = crdt::codec::encode_counted(std::move(batch.ops));
    send_out(out.added, peer, rich);
  } else if (!added.empty()) {
    // The author, when everything added came in its batch: it holds all of it. Operations held
    // until now that this batch released may not be its own (or be its agent's from another
    // replica: a restored client writes as a new agent and lists the saved one, whose later
    // edits it may lack): then everyone gets the broadcast.
    const uint64_t author = carried(batch.ops, added) ? peer : 0;
    out.added = crdt::codec::encode_counted(added);
    send_out(out.added, author, added.has_formats());
  }
  if (durable_.includes(ack.need)) {
    out.ack = proto::encode(proto::Ack{batch.id});
  } else {
    acks_.push_back(std::move(ack));
  }
  return out;
}

void DocSync::send_out(const crdt::codec::EncodedOps& ops, uint64_t author, bool rich) {
  outbox_.push_back({ops.bytes, ops.events, author, rich});
}

crdt::Result<crdt::OpBatch> DocSync::remote(const crdt::OpBatch& ops) {
  crdt::OpBatch added;
  TANDEM_RETURN_IF_ERROR(doc_.integrate(crdt::Batch::from(ops), &added));
  // The batch may have released operations of this node's own clients that were held waiting
  // for it: those are not in the log yet.
  crdt::OpBatch ours;
  if (!added.empty()) ours = crdt::without_events(added, ops);
  // What another node logged is durable: acknowledgements waiting for it (a client that sent
  // the same operations to both nodes) can go.
  durable_.merge(crdt::reach(ops));
  release_acks();
  if (!added.empty()) {
    send_out(crdt::codec::encode_counted(added), 0, added.has_formats());  // none of the members wrote it
  }
  return ours;
}

void DocSync::durable(const crdt::Version& version, std::vector<std::string>* authors) {
  if (authors) {
    for (const auto& [agent, next] : version.entries()) {
      if (next > durable_.next(agent)) authors->push_back(agent);
    }
  }
  durable_.merge(version);  // merged: operations of other nodes may have made it further already
  release_acks();
}

void DocSync::release_acks() {
  for (auto it = acks_.begin(); it != acks_.end();) {
    if (!durable_.includes(it->need)) {
      ++it;
      continue;
    }
    ready_.emplace_back(it->peer, it->batch_id);
    it = acks_.erase(it);
  }
}

std::optional<DocSync::Broadcast> DocSync::take_broadcast() {
  if (outbox_.empty()) return std::nullopt;
  Broadcast b;
  bool rich = false;
  for (auto& o : outbox_) {
    b.messages.push_back({proto::encode(proto::Ops{0, std::move(o.ops)}), o.events, o.author});
    rich = rich || o.rich;
  }
  if (rich) {
    for (const auto& [peer, m] : members_) {
      if (m.protocol < 2) b.outdated.push_back(peer);
    }
    b.outdated_why = outdated_client();
  }
  outbox_.clear();
  return b;
}

std::vector<std::pair<uint64_t, std::string>> DocSync::take_acks() {
  std::vector<std::pair<uint64_t, std::string>> out;
  out.reserve(ready_.size());
  for (const auto& [peer, id] : ready_) out.emplace_back(peer, proto::encode(proto::Ack{id}));
  ready_.clear();
  return out;
}

std::vector<uint64_t> DocSync::waiting() const {
  std::vector<uint64_t> out;
  for (const auto& a : acks_) out.push_back(a.peer);
  return out;
}

}  // namespace tandem::sync
