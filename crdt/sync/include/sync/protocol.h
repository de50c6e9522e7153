// The wire protocol between Tandem clients and the server, version 3 (docs/protocol.md).
// Version 2 is version 1 with op batches of format 2 (marks and blocks) allowed; a server speaks
// all three, and refuses a version-1 client a document that has formatting (kUnsupportedVersion).
// Version 3 adds SNAPSHOT: a client that holds nothing is sent the document as a snapshot
// (crdt::codec::save) instead of its whole history as OPS.
//
// Every WebSocket message is one binary frame holding one msgpack array whose first element is
// the message type. Op batches travel inside OPS as bin, in the engine's own encoding
// (crdt/FORMAT.md). Decoding is as hostile as the engine's: explicit msgpack limits, every field
// type- and range-checked; errors are Status values with the protocol error code to answer with.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "crdt/op.h"
#include "crdt/status.h"
#include "crdt/version.h"

namespace tandem::proto {

inline constexpr uint32_t kProtocolVersion = 3;
inline constexpr uint32_t kOldestProtocolVersion = 1;

enum Type : uint8_t {
  kHello = 1,           // client -> server
  kOps = 2,             // both ways
  kAck = 3,             // server -> client
  kPresence = 4,        // client -> server
  kPresenceUpdate = 5,  // server -> client
  kLeave = 6,           // server -> client
  kSnapshot = 7,        // server -> client (protocol 3), right after WELCOME, instead of OPS
  kWelcome = 10,        // server -> client
  kError = 15,          // server -> client, then a close with the same code
};

// Error codes; each is also the WebSocket close code that follows the ERROR message.
enum ErrorCode : uint16_t {
  kBadMessage = 4400,       // not msgpack, wrong shape, unknown type, a text frame, invalid ops
  kUnauthorized = 4401,     // no token, or one that does not verify or has expired: a new one may do
  kForbidden = 4403,        // ops from a read-only session, or for an agent it does not own; a token
                            // that does not grant the document
  kAgentInUse = 4409,       // sent to a session whose agent a newer session (same agent) took over
  kDeleted = 4410,          // the document was deleted (HTTP API): do not reconnect or resend
  kTooLarge = 4413,         // a batch or the document past its limit
  kRejected = 4422,         // ops the document refuses (positions out of range, held ops past the
                            // bound), or a HELLO version claiming far more than the server ever had
  kUnsupportedVersion = 4426,
  kRateLimited = 4429,
  kInternal = 4500,         // the server could not store the document
  kTooSlow = 4503,          // the client read too slowly: its outgoing queue overflowed
};
const char* ErrorName(uint16_t code);

inline constexpr size_t kMaxAgentsPerSession = 16;
inline constexpr size_t kMaxPresenceText = 64;

struct Hello {
  uint32_t version = kProtocolVersion;
  std::vector<std::string> agents;  // the agents this client writes as; the first is current
  crdt::Version doc_version;        // what the client holds
};

struct Ops {
  uint64_t batch_id = 0;  // client batches: 1, 2, 3, ...; server batches: 0
  std::string encoded;    // crdt::codec::encode_ops
};

struct Ack {
  uint64_t batch_id = 0;
};

struct Presence {
  std::string name;
  std::string color;
  std::optional<uint32_t> anchor;  // selection, in code points of the sender's text; none: no cursor
  std::optional<uint32_t> head;
  bool operator==(const Presence&) const = default;
};

struct PresenceUpdate {
  uint64_t session = 0;
  std::string agent;
  Presence presence;
};

struct Leave {
  uint64_t session = 0;
};

// The whole document, to a client whose HELLO said it holds nothing: it replaces the client's
// empty replica (merging whatever the client typed since its HELLO).
struct Snapshot {
  std::string encoded;  // crdt::codec::save
};

struct Welcome {
  uint32_t version = kProtocolVersion;
  uint64_t session = 0;
  bool read_only = false;
  crdt::Version doc_version;  // what the server holds
};

struct Error {
  uint16_t code = kBadMessage;
  std::string message;
};

using Message = std::variant<Hello, Ops, Ack, Presence, PresenceUpdate, Leave, Snapshot, Welcome, Error>;

struct Limits {
  size_t max_frame_bytes = size_t{1} << 20;
};

// Decodes one frame. Every error is Corruption (answered with kBadMessage), except a frame
// over limits.max_frame_bytes (ResourceExhausted): the codec's mapping (crdt/codec/src/msgpack_io.h).
crdt::Result<Message> decode(std::string_view frame, const Limits& limits = {});

std::string encode(const Hello& m);
std::string encode(const Ops& m);
std::string encode(const Ack& m);
std::string encode(const Presence& m);
std::string encode(const PresenceUpdate& m);
std::string encode(const Leave& m);
std::string encode(const Snapshot& m);
std::string encode(const Welcome& m);
std::string encode(const Error& m);
std::string encode(const Message& m);

}  // namespace tandem::proto
