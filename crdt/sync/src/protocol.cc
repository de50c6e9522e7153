#include "sync/protocol.h"

#include "msgpack_io.h"

#include "crdt/doc.h"
#include "crdt/utf8.h"

namespace tandem::proto {

using crdt::Result;
using crdt::Status;

const char* ErrorName(uint16_t code) {
  switch (code) {
    case kBadMessage: return "bad message";
    case kUnauthorized: return "unauthorized";
    case kForbidden: return "forbidden";
    case kAgentInUse: return "agent in use";
    case kDeleted: return "document deleted";
    case kTooLarge: return "too large";
    case kRejected: return "rejected";
    case kUnsupportedVersion: return "unsupported protocol version";
    case kRateLimited: return "rate limited";
    case kInternal: return "internal error";
    case kTooSlow: return "too slow";
  }
  return "error";
}

namespace {

using crdt::mp::as_str;
using crdt::mp::as_u32;
using crdt::mp::as_u64;
using crdt::mp::pack_str;
using crdt::mp::pack_version;
using crdt::mp::Packer;
using Sink = crdt::mp::StringSink;

Status bad(const std::string& why) { return crdt::mp::bad(why); }

void pack_opt(Packer& pk, const std::optional<uint32_t>& v) {
  if (v) {
    pk.pack_uint32(*v);
  } else {
    pk.pack_nil();
  }
}

// A version in a message names as many agents as its frame has room for.
Status read_version(const msgpack::object& o, crdt::Version* v) {
  return crdt::mp::read_version(o, SIZE_MAX, v);
}

Status read_text(const msgpack::object& o, const char* what, std::string* out) {
  std::string_view s;
  if (!as_str(o, &s)) return bad(std::string(what) + ": not a string");
  if (s.size() > kMaxPresenceText) return bad(std::string(what) + ": longer than 64 bytes");
  auto info = crdt::utf8::inspect(s);
  if (!info.ok()) return info.status().WithContext(what);
  out->assign(s);
  return Status::OK();
}

Status read_opt(const msgpack::object& o, std::optional<uint32_t>* v) {
  if (o.type == msgpack::type::NIL) {
    v->reset();
    return Status::OK();
  }
  uint32_t x;
  if (!as_u32(o, &x)) return bad("presence: bad position");
  *v = x;
  return Status::OK();
}

Status read_presence(const msgpack::object* f, Presence* p) {
  TANDEM_RETURN_IF_ERROR(read_text(f[0], "presence name", &p->name));
  TANDEM_RETURN_IF_ERROR(read_text(f[1], "presence color", &p->color));
  TANDEM_RETURN_IF_ERROR(read_opt(f[2], &p->anchor));
  return read_opt(f[3], &p->head);
}

}  // namespace

Result<Message> decode(std::string_view frame, const Limits& limits) {
  msgpack::object_handle oh;
  TANDEM_RETURN_IF_ERROR(crdt::mp::unpack_one(frame, 3, limits.max_frame_bytes, &oh));
  const msgpack::object& top = oh.get();
  if (top.type != msgpack::type::ARRAY || top.via.array.size == 0) return bad("a message is an array [type, ...]");
  const msgpack::object* f = top.via.array.ptr;
  const uint32_t n = top.via.array.size;
  uint32_t type;
  if (!as_u32(f[0], &type)) return bad("message type is not a number");
  auto want = [&](uint32_t fields, const char* name) -> Status {
    return n == fields ? Status::OK() : bad(std::string(name) + ": expected " + std::to_string(fields - 1) + " fields");
  };
  switch (type) {
    case kHello: {
      TANDEM_RETURN_IF_ERROR(want(4, "HELLO"));
      Hello m;
      if (!as_u32(f[1], &m.version)) return bad("HELLO: bad protocol version");
      if (f[2].type != msgpack::type::ARRAY || f[2].via.array.size == 0 ||
          f[2].via.array.size > kMaxAgentsPerSession) {
        return bad("HELLO: agents must be an array of 1 to 16 names");
      }
      for (uint32_t i = 0; i < f[2].via.array.size; ++i) {
        std::string_view a;
        if (!as_str(f[2].via.array.ptr[i], &a)) return bad("HELLO: agent is not a string");
        TANDEM_RETURN_IF_ERROR(crdt::Doc::ValidateAgent(a).WithContext("HELLO"));
        m.agents.emplace_back(a);
      }
      TANDEM_RETURN_IF_ERROR(read_version(f[3], &m.doc_version).WithContext("HELLO"));
      return Message(std::move(m));
    }
    case kOps: {
      TANDEM_RETURN_IF_ERROR(want(3, "OPS"));
      Ops m;
      if (!as_u64(f[1], &m.batch_id)) return bad("OPS: bad batch id");
      if (f[2].type != msgpack::type::BIN) return bad("OPS: ops must be bin");
      m.encoded.assign(f[2].via.bin.ptr, f[2].via.bin.size);
      return Message(std::move(m));
    }
    case kAck: {
      TANDEM_RETURN_IF_ERROR(want(2, "ACK"));
      Ack m;
      if (!as_u64(f[1], &m.batch_id)) return bad("ACK: bad batch id");
      return Message(m);
    }
    case kPresence: {
      TANDEM_RETURN_IF_ERROR(want(5, "PRESENCE"));
      Presence m;
      TANDEM_RETURN_IF_ERROR(read_presence(f + 1, &m));
      return Message(std::move(m));
    }
    case kPresenceUpdate: {
      TANDEM_RETURN_IF_ERROR(want(7, "PRESENCE_UPDATE"));
      PresenceUpdate m;
      std::string_view agent;
      if (!as_u64(f[1], &m.session) || !as_str(f[2], &agent)) return bad("PRESENCE_UPDATE: bad session or agent");
      m.agent.assign(agent);
      TANDEM_RETURN_IF_ERROR(read_presence(f + 3, &m.presence));
      return Message(std::move(m));
    }
    case kLeave: {
      TANDEM_RETURN_IF_ERROR(want(2, "LEAVE"));
      Leave m;
      if (!as_u64(f[1], &m.session)) return bad("LEAVE: bad session");
      return Message(m);
    }
    case kSnapshot: {
      TANDEM_RETURN_IF_ERROR(want(2, "SNAPSHOT"));
      if (f[1].type != msgpack::type::BIN) return bad("SNAPSHOT: the snapshot must be bin");
      Snapshot m;
      m.encoded.assign(f[1].via.bin.ptr, f[1].via.bin.size);
      return Message(std::move(m));
    }
    case kWelcome: {
      TANDEM_RETURN_IF_ERROR(want(5, "WELCOME"));
      Welcome m;
      if (!as_u32(f[1], &m.version) || !as_u64(f[2], &m.session) || f[3].type != msgpack::type::BOOLEAN) {
        return bad("WELCOME: bad fields");
      }
      m.read_only = f[3].via.boolean;
      TANDEM_RETURN_IF_ERROR(read_version(f[4], &m.doc_version).WithContext("WELCOME"));
      return Message(std::move(m));
    }
    case kError: {
      TANDEM_RETURN_IF_ERROR(want(3, "ERROR"));
      Error m;
      uint32_t code;
      std::string_view msg;
      if (!as_u32(f[1], &code) || code > 0xFFFF || !as_str(f[2], &msg)) return bad("ERROR: bad fields");
      m.code = static_cast<uint16_t>(code);
      m.message.assign(msg);
      return Message(std::move(m));
    }
    default:
      return bad("unknown message type " + std::to_string(type));
  }
}

std::string encode(const Hello& m) {
  std::string out;
  Sink s{&out};
  Packer pk(s);
  pk.pack_array(4);
  pk.pack_uint8(kHello);
  pk.pack_uint32(m.version);
  pk.pack_array(static_cast<uint32_t>(m.agents.size()));
  for (const auto& a : m.agents) pack_str(pk, a);
  pack_version(pk, m.doc_version);
  return out;
}

std::string encode(const Ops& m) {
  std::string out;
  out.reserve(m.encoded.size() + 16);
  Sink s{&out};
  Packer pk(s);
  pk.pack_array(3);
  pk.pack_uint8(kOps);
  pk.pack_uint64(m.batch_id);
  pk.pack_bin(static_cast<uint32_t>(m.encoded.size()));
  pk.pack_bin_body(m.encoded.data(), static_cast<uint32_t>(m.encoded.size()));
  return out;
}

std::string encode(const Ack& m) {
  std::string out;
  Sink s{&out};
  Packer pk(s);
  pk.pack_array(2);
  pk.pack_uint8(kAck);
  pk.pack_uint64(m.batch_id);
  return out;
}

std::string encode(const Presence& m) {
  std::string out;
  Sink s{&out};
  Packer pk(s);
  pk.pack_array(5);
  pk.pack_uint8(kPresence);
  pack_str(pk, m.name);
  pack_str(pk, m.color);
  pack_opt(pk, m.anchor);
  pack_opt(pk, m.head);
  return out;
}

std::string encode(const PresenceUpdate& m) {
  std::string out;
  Sink s{&out};
  Packer pk(s);
  pk.pack_array(7);
  pk.pack_uint8(kPresenceUpdate);
  pk.pack_uint64(m.session);
  pack_str(pk, m.agent);
  pack_str(pk, m.presence.name);
  pack_str(pk, m.presence.color);
  pack_opt(pk, m.presence.anchor);
  pack_opt(pk, m.presence.head);
  return out;
}

std::string encode(const Leave& m) {
  std::string out;
  Sink s{&out};
  Packer pk(s);
  pk.pack_array(2);
  pk.pack_uint8(kLeave);
  pk.pack_uint64(m.session);
  return out;
}

std::string encode(const Snapshot& m) {
  std::string out;
  out.reserve(m.encoded.size() + 8);
  Sink s{&out};
  Packer pk(s);
  pk.pack_array(2);
  pk.pack_uint8(kSnapshot);
  pk.pack_bin(static_cast<uint32_t>(m.encoded.size()));
  pk.pack_bin_body(m.encoded.data(), static_cast<uint32_t>(m.encoded.size()));
  return out;
}

std::string encode(const Welcome& m) {
  std::string out;
  Sink s{&out};
  Packer pk(s);
  pk.pack_array(5);
  pk.pack_uint8(kWelcome);
  pk.pack_uint32(m.version);
  pk.pack_uint64(m.session);
  if (m.read_only) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
  pack_version(pk, m.doc_version);
  return out;
}

std::string encode(const Error& m) {
  std::string out;
  Sink s{&out};
  Packer pk(s);
  pk.pack_array(3);
  pk.pack_uint8(kError);
  pk.pack_uint16(m.code);
  pack_str(pk, m.message);
  return out;
}

std::string encode(const Message& m) {
  return std::visit([](const auto& x) { return encode(x); }, m);
}

}  // namespace tandem::proto
