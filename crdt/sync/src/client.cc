#include "sync/client.h"

#include <algorithm>

#include "crdt/codec.h"
#include "crdt/split.h"

namespace tandem::sync {

using crdt::Result;
using crdt::Status;

ClientSync::ClientSync(crdt::Doc doc, ClientLimits limits) : doc_(std::move(doc)), limits_(limits) {
  agents_.emplace_back(doc_.agent(), 0);
}

bool ClientSync::Terminal(uint16_t code) {
  switch (code) {
    case proto::kBadMessage:
    case proto::kUnauthorized:
    case proto::kForbidden:
    case proto::kAgentInUse:
    case proto::kDeleted:
    case proto::kTooLarge:
    case proto::kRejected:
    case proto::kUnsupportedVersion:
      return true;
    default:
      return false;
  }
}

uint32_t* ClientSync::acked(const std::string& agent) {
  for (auto& [a, n] : agents_) {
    if (a == agent) return &n;
  }
  return nullptr;
}

uint64_t ClientSync::unsent() const {
  uint64_t n = 0;
  for (const auto& [a, acked] : agents_) {
    const uint32_t own = doc_.version().next(a);
    if (own > acked) n += own - acked;
  }
  return n;
}

bool ClientSync::synced() const {
  return welcomed_ && unsent() == 0 && doc_.version().includes(welcomed_version_);
}

std::string ClientSync::open() {
  welcomed_ = false;
  error_.reset();
  pending_.clear();
  proto::Hello h;
  h.version = protocol_;
  for (const auto& [a, n] : agents_) h.agents.push_back(a);
  h.doc_version = doc_.version();
  return proto::encode(h);
}

void ClientSync::closed() {
  welcomed_ = false;
  pending_.clear();  // the next connection resends whatever the server turns out to lack
}

Result<ClientEvent> ClientSync::receive(std::string_view message, int64_t now_ms) {
  auto msg = proto::decode(message, {limits_.max_message_bytes});
  if (!msg.ok()) return msg.status();
  ClientEvent ev;
  if (auto* w = std::get_if<proto::Welcome>(&*msg)) {
    if (welcomed_) return Status::InvalidArgument("WELCOME twice on one connection");
    on_welcome(*w, now_ms);
    ev.kind = ClientEvent::kWelcome;
    ev.session = w->session;
  } else if (!welcomed_ && !std::holds_alternative<proto::Error>(*msg)) {
    return Status::InvalidArgument("the server's first message is not WELCOME");
  } else if (auto* o = std::get_if<proto::Ops>(&*msg)) {
    return on_ops(*o);
  } else if (auto* sn = std::get_if<proto::Snapshot>(&*msg)) {
    return on_snapshot(*sn);
  } else if (auto* a = std::get_if<proto::Ack>(&*msg)) {
    on_ack(a->batch_id);
    ev.kind = ClientEvent::kAck;
  } else if (auto* p = std::get_if<proto::PresenceUpdate>(&*msg)) {
    ev.kind = ClientEvent::kPresence;
    ev.presence = std::move(*p);
  } else if (auto* l = std::get_if<proto::Leave>(&*msg)) {
    ev.kind = ClientEvent::kLeave;
    ev.session = l->session;
  } else if (auto* e = std::get_if<proto::Error>(&*msg)) {
    // An older server refuses its HELLO: the next connection speaks one version lower (2
    // lacks only SNAPSHOT; 1 lacks formatting, so a replica with formatting stops at 2).
    if (e->code == proto::kUnsupportedVersion && !welcomed_ && protocol_ > proto::kOldestProtocolVersion &&
        (protocol_ > 2 || doc_.format_events() == 0)) {
      --protocol_;
    } else {
      error_.emplace(e->code, e->message);
    }
    ev.kind = ClientEvent::kError;
    ev.code = e->code;
    ev.message = e->message;
  } else {
    return Status::InvalidArgument("a message only clients send");
  }
  return ev;
}

void ClientSync::on_welcome(const proto::Welcome& w, int64_t now_ms) {
  welcomed_ = true;
  error_.reset();
  welcomed_at_ms_ = now_ms;
  session_ = w.session;
  read_only_ = w.read_only;
  // WELCOME carries what the server holds durably: own operations within it are safe, and
  // everything beyond it is sent (again), even what an earlier ACK covered, in case the server
  // lost it since (the server ignores what it already has).
  presence_due_ = true;
  base_ = w.doc_version;
  welcomed_version_ = w.doc_version;
  for (auto& [a, n] : agents_) n = std::max(n, w.doc_version.next(a));
  forget_acknowledged();
  pending_.clear();
}

Result<ClientEvent> ClientSync::on_ops(const proto::Ops& o) {
  auto batch = crdt::codec::decode_batch(o.encoded, {limits_.max_message_bytes, UINT32_MAX, 1u << 16, 1024});
  if (!batch.ok()) return batch.status();
  auto patches = doc_.apply(*batch);
  if (!patches.ok()) return patches.status();
  // The server holds what it sent. Not so for own agents: their events come back only to a
  // restored replica (its saved agent's later edits, from the replica it restored), the server
  // may not have made them durable yet, and only an ACK can say so: they are sent back.
  const crdt::Version reached = crdt::reach(*batch);
  for (const auto& [agent, n] : reached.entries()) {
    if (!acked(agent) && base_.next(agent) < n) base_.advance(agent, n);
  }
  ClientEvent ev;
  ev.kind = ClientEvent::kChange;
  ev.patches = std::move(*patches);
  return ev;
}

Result<ClientEvent> ClientSync::on_snapshot(const proto::Snapshot& s) {
  crdt::codec::DecodeLimits lim;
  lim.max_bytes = limits_.max_message_bytes;
  auto loaded = crdt::codec::load(s.encoded, doc_.agent(), lim);
  if (!loaded.ok()) return loaded.status().WithContext("SNAPSHOT");
  loaded->set_limits(doc_.limits());
  // Whatever this replica holds that the snapshot lacks (what was typed since the HELLO, which
  // said it held nothing) merges into it.
  if (doc_.num_events() > 0) {
    auto mine = loaded->apply(doc_.ops_since(loaded->version(), crdt::Doc::DeletedText::kInclude));
    if (!mine.ok()) return mine.status().WithContext("SNAPSHOT");
  }
  ClientEvent ev;
  ev.kind = ClientEvent::kChange;
  ev.replaced = true;
  crdt::Patch p;
  p.deleted = doc_.length();
  p.deleted_utf16 = doc_.length_utf16();
  p.inserted = loaded->text();
  p.inserted_utf16 = loaded->length_utf16();
  if (p.deleted > 0 || !p.inserted.empty()) ev.patches.push_back(std::move(p));
  doc_ = std::move(*loaded);
  for (const auto& [agent, n] : doc_.version().entries()) {
    if (!acked(agent) && base_.next(agent) < n) base_.advance(agent, n);
  }
  return ev;
}

void ClientSync::on_ack(uint64_t batch_id) {
  auto it = pending_.find(batch_id);
  if (it == pending_.end()) return;
  // Acknowledgements may come out of order; a later batch's durability implies the earlier
  // ones' (its operations depend on theirs).
  for (const auto& [agent, reach] : it->second.entries()) {
    if (uint32_t* n = acked(agent)) *n = std::max(*n, reach);
  }
  pending_.erase(it);
  attempt_ = 0;
  forget_acknowledged();
}

void ClientSync::forget_acknowledged() {
  // Earlier agents drop out of HELLO once all of their edits are safe.
  std::erase_if(agents_, [&](const auto& e) { return e.first != doc_.agent() && e.second >= doc_.version().next(e.first); });
}

std::vector<std::string> ClientSync::outgoing() {
  std::vector<std::string> out;
  if (!welcomed_) return out;
  if (presence_due_ && presence_) out.push_back(proto::encode(*presence_));
  presence_due_ = false;
  if (read_only_) return out;
  bool behind = false;
  for (const auto& [a, n] : agents_) behind = behind || base_.next(a) < doc_.version().next(a);
  if (!behind) return out;
  crdt::OpBatch own;
  crdt::OpBatch all = doc_.ops_since(base_, crdt::Doc::DeletedText::kInclude);
  // Only this replica's own operations: the server refuses anyone else's.
  for (auto& r : all.runs) {
    if (acked(r.agent)) own.runs.push_back(std::move(r));
  }
  for (const auto& [a, n] : agents_) {
    const uint32_t have = doc_.version().next(a);
    if (base_.next(a) < have) base_.advance(a, have);
  }
  for (auto& part : crdt::split_batch(std::move(own), limits_.max_batch_events, limits_.max_batch_bytes)) {
    const uint64_t id = next_batch_++;
    pending_[id] = crdt::reach(part);
    out.push_back(proto::encode(proto::Ops{id, crdt::codec::encode_ops(part)}));
  }
  return out;
}

void ClientSync::set_presence(proto::Presence p) {
  presence_ = std::move(p);
  presence_due_ = true;
}

int64_t ClientSync::retry_delay_ms(int64_t now_ms, double jitter) {
  // A connection that lasted was healthy: start the backoff again from the bottom. One that was
  // closed soon after its WELCOME (the server refused something) keeps backing off.
  if (welcomed_at_ms_ >= 0 && now_ms - welcomed_at_ms_ > kHealthyMs) attempt_ = 0;
  welcomed_at_ms_ = -1;
  const double lo = static_cast<double>(std::max<int64_t>(1, limits_.min_backoff_ms));
  const double hi = std::max(lo, static_cast<double>(limits_.max_backoff_ms));
  const double base = std::min(hi, lo * static_cast<double>(int64_t{1} << std::min(attempt_, 20)));
  ++attempt_;
  return static_cast<int64_t>(base * std::clamp(jitter, 0.5, 1.0));
}

// ---- save and restore -------------------------------------------------------------------------
//
// save()'s bytes, version 2: "TCS" 0x02, the number of agents (u16), then per agent its name's
// length (u16) and bytes and its acknowledged operations (u32), the current agent first; then the
// replica's snapshot (crdt/FORMAT.md). Integers little-endian. Version 1 (one agent: "TCS" 0x01,
// acknowledged (u32), the name's length (u16) and bytes, the snapshot) still restores.

namespace {

constexpr std::string_view kMagic1("TCS\x01", 4), kMagic2("TCS\x02", 4);

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

struct Reader {
  std::string_view in;
  size_t at = 0;
  bool ok = true;
  uint32_t le(int bytes) {
    if (in.size() - at < static_cast<size_t>(bytes)) {
      ok = false;
      return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
    at += bytes;
    return v;
  }
  std::string str(size_t n) {
    if (in.size() - at < n) {
      ok = false;
      return "";
    }
    std::string s(in.substr(at, n));
    at += n;
    return s;
  }
};

}  // namespace

std::string ClientSync::save() const {
  std::string out(kMagic2);
  put_le(out, agents_.size(), 2);
  for (const auto& [a, n] : agents_) {
    put_le(out, a.size(), 2);
    out += a;
    put_le(out, n, 4);
  }
  out += crdt::codec::save(doc_);
  return out;
}

Result<ClientSync> ClientSync::Restore(std::string_view saved, const std::string& agent, ClientLimits limits) {
  Reader r{saved};
  Acked agents;
  if (saved.substr(0, 4) == kMagic1) {
    r.at = 4;
    const uint32_t acked = r.le(4);
    std::string a = r.str(r.le(2));
    agents.emplace_back(std::move(a), acked);
  } else if (saved.substr(0, 4) == kMagic2) {
    r.at = 4;
    const uint32_t n = r.le(2);
    for (uint32_t i = 0; i < n && r.ok; ++i) {
      std::string a = r.str(r.le(2));
      agents.emplace_back(std::move(a), r.le(4));
    }
  } else {
    return Status::Corruption("not a saved client state");
  }
  if (!r.ok) return Status::Corruption("saved client state is cut short");
  return Restore(saved.substr(r.at), std::move(agents), agent, limits);
}

Result<ClientSync> ClientSync::Restore(std::string_view snapshot, Acked agents, const std::string& agent,
                                       ClientLimits limits) {
  TANDEM_RETURN_IF_ERROR(crdt::Doc::ValidateAgent(agent));
  for (const auto& [a, n] : agents) {
    TANDEM_RETURN_IF_ERROR(crdt::Doc::ValidateAgent(a).WithContext("saved client state"));
  }
  auto doc = crdt::codec::load(snapshot, agent);
  if (!doc.ok()) return Status::Corruption("saved client state: " + doc.status().message());
  if (doc->version().next(agent) > 0) {
    return Status::InvalidArgument("agent '" + agent + "' already wrote in this replica: a restored one continues as a new agent");
  }
  ClientSync out(std::move(*doc), limits);
  // An agent acknowledged further than the replica holds (a WELCOME said so before the catch-up
  // came) has nothing unsent either.
  for (auto& [a, n] : agents) {
    if (n < out.doc_.version().next(a) && !out.acked(a)) out.agents_.emplace_back(std::move(a), n);
  }
  if (out.agents_.size() > proto::kMaxAgentsPerSession) {
    return Status::ResourceExhausted("the saved state holds unsent edits of " + std::to_string(out.agents_.size() - 1) +
                                     " agents; a session may write as at most " +
                                     std::to_string(proto::kMaxAgentsPerSession));
  }
  return out;
}

}  // namespace tandem::sync
