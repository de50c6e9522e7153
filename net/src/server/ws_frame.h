// RFC 6455 framing, apart from any socket: the server's WebSocket sessions, the floor relay
// (bench/floor-relay) and the load generator all frame and parse with this.
//
// FrameParser reads frames in place from a caller's buffer: a payload that arrives in one frame
// is handed out as a view of that buffer, unmasked there, without a copy; fragments are gathered
// in the parser. Every rule of RFC 6455 section 5 that a peer can break is checked, and a break
// is reported with the close code to answer with (1002 protocol error, 1007 invalid UTF-8 in a
// text message or close reason, 1009 a message over the limit); after an error the parser stays
// failed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::net::ws {

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes the framing layer uses.
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseInvalidData = 1007;
inline constexpr uint16_t kCloseTooBig = 1009;

inline constexpr size_t kMaxHeaderBytes = 14;
inline constexpr size_t kMaxControlPayload = 125;

// Writes the header of one unfragmented frame (FIN set) carrying `len` payload bytes into `out`
// (room for kMaxHeaderBytes) and returns its size. With `mask` (4 bytes; client to server) the
// mask bit and key are written too; the caller masks the payload (apply_mask).
size_t write_header(uint8_t* out, Opcode op, uint64_t len, const uint8_t* mask = nullptr);
// XORs data with the 4-byte mask, starting at mask byte `offset % 4`.
void apply_mask(char* data, size_t n, const uint8_t mask[4], size_t offset = 0);

// One whole frame, header and payload (unmasked: server to client), ready to write.
std::string frame(Opcode op, std::string_view payload);
// A close frame with `code` and `reason` (cut to fit 125 bytes on a UTF-8 boundary).
std::string close_frame(uint16_t code, std::string_view reason);

// Whether a close code may appear in a close frame (RFC 6455 section 7.4).
bool valid_close_code(uint16_t code);

class FrameParser {
 public:
  enum class Kind {
    kNeedMore,  // no complete frame yet; consumed is 0. need: bytes the next frame needs at least
    kMessage,   // a complete data message: payload, binary
    kPing,      // payload: its application data
    kPong,
    kClose,     // close_code (0: none sent), payload: the reason
    kFragment,  // a data fragment was consumed; the message is not complete yet
    kError,     // close_code: what to close with; error: why
  };
  struct Event {
    Kind kind = Kind::kNeedMore;
    size_t consumed = 0;
    size_t need = 0;
    std::string_view payload;
    bool binary = false;
    uint16_t close_code = 0;
    const char* error = "";
  };

  // from_client: frames must be masked (a server reading) or must not be (a client reading).
  // max_message: the largest data message accepted, after reassembly.
  FrameParser(bool from_client, size_t max_message) : from_client_(from_client), max_message_(max_message) {}

  // Parses the first frame in data[0, n). Payload views point into `data` (unmasked in place)
  // or into the parser's reassembly buffer, and are valid until the next call. The caller drops
  // `consumed` bytes from its buffer. A frame larger than the caller's buffer is reported as
  // kNeedMore with the total it needs, so the caller can grow its buffer (up to the limit).
  Event next(char* data, size_t n);

  bool failed() const { return failed_; }

 private:
  Event fail(uint16_t code, const char* why);

  const bool from_client_;
  const size_t max_message_;
  bool failed_ = false;
  bool in_message_ = false;  // a fragmented data message is being gathered
  bool message_binary_ = false;
  std::string assembled_;
};

// The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key.
std::string accept_key(std::string_view client_key);
// Whether a Sec-WebSocket-Key is well formed: base64 of 16 bytes.
bool valid_client_key(std::string_view key);

}  // namespace tandem::net::ws
