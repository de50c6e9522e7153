// The one msgpack layer under the codec (op batches, versions, snapshots) and the sync
// protocol's messages: bounded unpacking, typed reads, packing helpers, and one mapping of each
// failure to one status: bytes over the caller's limit are ResourceExhausted; bytes that are not
// one well-formed msgpack object within the limits, or not of the shape asked for, are
// Corruption (the protocol answers both with 4400, a store reports a damaged row).
// Internal to crdt/codec and crdt/sync; needs msgpack-cxx (MSGPACK_NO_BOOST).
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "crdt/doc.h"
#include "crdt/status.h"
#include "crdt/version.h"

namespace tandem::crdt::mp {

// msgpack::packer writes through this.
struct StringSink {
  std::string* out;
  void write(const char* data, size_t n) { out->append(data, n); }
};
using Packer = msgpack::packer<StringSink>;

inline Status bad(const std::string& what) { return Status::Corruption(what); }

// Objects reference the input buffer instead of copying strings.
inline bool reference_buffer(msgpack::type::object_type, std::size_t, void*) { return true; }

// Unpacks exactly one msgpack object filling all of `bytes` (or, with `consumed`, its first
// object, whose size is stored there), nested at most `depth` deep, with limits that make any
// container header claiming more elements than there are bytes fail before allocation.
inline Status unpack_one(std::string_view bytes, size_t depth, size_t max_bytes, msgpack::object_handle* oh,
                         size_t* consumed = nullptr) {
  if (bytes.size() > max_bytes) {
    return Status::ResourceExhausted("message of " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
                                     std::to_string(max_bytes));
  }
  if (bytes.empty()) return bad("empty message");
  const msgpack::unpack_limit lim(/*array=*/bytes.size(), /*map=*/0, /*str=*/bytes.size(), /*bin=*/bytes.size(),
                                  /*ext=*/0, /*depth=*/depth);
  size_t off = 0;
  try {
    *oh = msgpack::unpack(bytes.data(), bytes.size(), off, reference_buffer, nullptr, lim);
  } catch (const msgpack::size_overflow& e) {
    return bad(std::string("msgpack container too large or too deep: ") + e.what());
  } catch (const msgpack::insufficient_bytes&) {
    return bad("msgpack truncated");
  } catch (const std::exception& e) {
    return bad(std::string("not msgpack: ") + e.what());
  }
  if (consumed) {
    *consumed = off;
    return Status::OK();
  }
  if (off != bytes.size()) return bad("trailing bytes after the msgpack message");
  return Status::OK();
}

// Typed reads of unpacked objects; each returns false on a type or range mismatch.
inline bool as_array(const msgpack::object& o, const msgpack::object** items, uint32_t* n) {
  if (o.type != msgpack::type::ARRAY) return false;
  *items = o.via.array.ptr;
  *n = o.via.array.size;
  return true;
}
inline bool as_u64(const msgpack::object& o, uint64_t* v) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) return false;
  *v = o.via.u64;
  return true;
}
inline bool as_u32(const msgpack::object& o, uint32_t* v) {
  if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 > UINT32_MAX) return false;
  *v = static_cast<uint32_t>(o.via.u64);
  return true;
}
inline bool as_str(const msgpack::object& o, std::string_view* s) {
  if (o.type != msgpack::type::STR) return false;
  *s = std::string_view(o.via.str.ptr, o.via.str.size);
  return true;
}
inline bool as_bin(const msgpack::object& o, std::string_view* s) {
  if (o.type != msgpack::type::BIN) return false;
  *s = std::string_view(o.via.bin.ptr, o.via.bin.size);
  return true;
}

inline void pack_str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}
inline void pack_bin(Packer& pk, std::string_view s) {
  pk.pack_bin(static_cast<uint32_t>(s.size()));
  pk.pack_bin_body(s.data(), static_cast<uint32_t>(s.size()));
}

// A version as the flat array [agent, next, ...], agents sorted (crdt/FORMAT.md, docs/protocol.md).
inline void pack_version(Packer& pk, const Version& v) {
  pk.pack_array(static_cast<uint32_t>(v.entries().size() * 2));
  for (const auto& [agent, next] : v.entries()) {
    pack_str(pk, agent);
    pk.pack_uint32(next);
  }
}
inline Status read_version(const msgpack::object& o, size_t max_agents, Version* v) {
  const msgpack::object* items;
  uint32_t n;
  if (!as_array(o, &items, &n) || n % 2 != 0) return bad("version: expected [agent, next, ...]");
  if (n / 2 > max_agents) return Status::ResourceExhausted("version names too many agents");
  std::string_view prev;
  for (uint32_t i = 0; i < n; i += 2) {
    std::string_view agent;
    uint32_t next;
    if (!as_str(items[i], &agent) || !as_u32(items[i + 1], &next)) return bad("version: bad entry");
    TANDEM_RETURN_IF_ERROR(Doc::ValidateAgent(agent).WithContext("version"));
    if (i > 0 && agent <= prev) return bad("version: agents not sorted or repeated");
    if (next == 0) return bad("version: zero entry");
    prev = agent;
    v->advance(agent, next);
  }
  return Status::OK();
}

}  // namespace tandem::crdt::mp
