#include "ws_frame.h"

#include <openssl/evp.h>

#include <cstring>

#include "crdt/utf8.h"

namespace tandem::net::ws {

size_t write_header(uint8_t* out, Opcode op, uint64_t len, const uint8_t* mask) {
  size_t n = 0;
  out[n++] = static_cast<uint8_t>(0x80 | op);
  const uint8_t mask_bit = mask ? 0x80 : 0;
  if (len < 126) {
    out[n++] = static_cast<uint8_t>(mask_bit | len);
  } else if (len <= 0xFFFF) {
    out[n++] = static_cast<uint8_t>(mask_bit | 126);
    out[n++] = static_cast<uint8_t>(len >> 8);
    out[n++] = static_cast<uint8_t>(len);
  } else {
    out[n++] = static_cast<uint8_t>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out[n++] = static_cast<uint8_t>(len >> shift);
  }
  if (mask) {
    std::memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

void apply_mask(char* data, size_t n, const uint8_t mask[4], size_t offset) {
  size_t i = 0;
  // Align to the mask, then eight bytes at a time.
  for (; i < n && (offset + i) % 4 != 0; ++i) data[i] = static_cast<char>(data[i] ^ mask[(offset + i) % 4]);
  uint64_t wide;
  uint8_t m8[8] = {mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]};
  std::memcpy(&wide, m8, 8);
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, data + i, 8);
    v ^= wide;
    std::memcpy(data + i, &v, 8);
  }
  for (; i < n; ++i) data[i] = static_cast<char>(data[i] ^ mask[(offset + i) % 4]);
}

std::string frame(Opcode op, std::string_view payload) {
  uint8_t header[kMaxHeaderBytes];
  const size_t h = write_header(header, op, payload.size());
  std::string out;
  out.reserve(h + payload.size());
  out.append(reinterpret_cast<const char*>(header), h);
  out.append(payload);
  return out;
}

std::string close_frame(uint16_t code, std::string_view reason) {
  size_t n = std::min(reason.size(), kMaxControlPayload - 2);
  while (n > 0 && n < reason.size() && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason.substr(0, n));
  return frame(kClose, payload);
}

bool valid_close_code(uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008: case 1009: case 1010: case 1011:
      return true;
    default:
      return false;
  }
}

FrameParser::Event FrameParser::fail(uint16_t code, const char* why) {
  failed_ = true;
  Event e;
  e.kind = Kind::kError;
  e.close_code = code;
  e.error = why;
  return e;
}

FrameParser::Event FrameParser::next(char* data, size_t n) {
  Event e;
  if (failed_) return fail(kCloseProtocolError, "the connection already failed");
  if (!in_message_ && !assembled_.empty()) assembled_.clear();  // the last message was handed out
  if (n < 2) {
    e.need = 2;
    return e;
  }
  const auto* b = reinterpret_cast<const uint8_t*>(data);
  const bool fin = b[0] & 0x80;
  const uint8_t op = b[0] & 0x0F;
  const bool masked = b[1] & 0x80;
  uint64_t len = b[1] & 0x7F;
  if (b[0] & 0x70) return fail(kCloseProtocolError, "reserved bits set");
  const bool control = op & 0x8;
  if (op != kContinuation && op != kText && op != kBinary && op != kClose && op != kPing && op != kPong) {
    return fail(kCloseProtocolError, "unknown opcode");
  }
  if (control && !fin) return fail(kCloseProtocolError, "fragmented control frame");
  if (control && len > kMaxControlPayload) return fail(kCloseProtocolError, "control frame over 125 bytes");
  if (from_client_ && !masked) return fail(kCloseProtocolError, "unmasked client frame");
  if (!from_client_ && masked) return fail(kCloseProtocolError, "masked server frame");
  size_t header = 2;
  if (len == 126) {
    if (n < 4) {
      e.need = 4;
      return e;
    }
    len = (uint64_t{b[2]} << 8) | b[3];
    if (len < 126) return fail(kCloseProtocolError, "frame length not minimally encoded");
    header = 4;
  } else if (len == 127) {
    if (n < 10) {
      e.need = 10;
      return e;
    }
    len = 0;
    for (int i = 2; i < 10; ++i) len = (len << 8) | b[i];
    if (len >> 63) return fail(kCloseProtocolError, "frame length with the top bit set");
    if (len <= 0xFFFF) return fail(kCloseProtocolError, "frame length not minimally encoded");
    header = 10;
  }
  const uint8_t* mask = nullptr;
  if (masked) {
    mask = b + header;
    header += 4;
  }
  if (!control) {
    if (op == kContinuation && !in_message_) return fail(kCloseProtocolError, "continuation with nothing to continue");
    if (op != kContinuation && in_message_) return fail(kCloseProtocolError, "a new message inside a fragmented one");
    const uint64_t so_far = in_message_ ? assembled_.size() : 0;
    if (len > max_message_ || so_far + len > max_message_) return fail(kCloseTooBig, "message over the size limit");
  }
  if (n < header || n - header < len) {
    e.need = header + static_cast<size_t>(len);
    return e;
  }
  char* payload = data + header;
  if (mask) {
    uint8_t key[4];
    std::memcpy(key, mask, 4);
    apply_mask(payload, static_cast<size_t>(len), key);
  }
  e.consumed = header + static_cast<size_t>(len);
  const std::string_view view(payload, static_cast<size_t>(len));
  if (control) {
    if (op == kPing) {
      e.kind = Kind::kPing;
      e.payload = view;
    } else if (op == kPong) {
      e.kind = Kind::kPong;
      e.payload = view;
    } else {
      if (len == 1) return fail(kCloseProtocolError, "close frame with a 1-byte payload");
      if (len >= 2) {
        e.close_code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]));
        if (!valid_close_code(e.close_code)) return fail(kCloseProtocolError, "invalid close code");
        e.payload = view.substr(2);
        if (!crdt::utf8::inspect(e.payload).ok()) return fail(kCloseInvalidData, "close reason is not UTF-8");
      }
      e.kind = Kind::kClose;
    }
    return e;
  }
  if (fin && !in_message_) {
    if (op == kText && !crdt::utf8::inspect(view).ok()) return fail(kCloseInvalidData, "text message is not UTF-8");
    e.kind = Kind::kMessage;
    e.binary = op == kBinary;
    e.payload = view;
    return e;
  }
  if (op != kContinuation) {
    in_message_ = true;
    message_binary_ = op == kBinary;
  }
  assembled_.append(view);
  if (!fin) {
    e.kind = Kind::kFragment;
    return e;
  }
  in_message_ = false;
  if (!message_binary_ && !crdt::utf8::inspect(assembled_).ok()) return fail(kCloseInvalidData, "text message is not UTF-8");
  e.kind = Kind::kMessage;
  e.binary = message_binary_;
  e.payload = assembled_;
  return e;
}

std::string accept_key(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in(client_key);
  in.append(kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_Digest(in.data(), in.size(), digest, &digest_len, EVP_sha1(), nullptr);
  unsigned char out[64];
  const int n = EVP_EncodeBlock(out, digest, static_cast<int>(digest_len));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

bool valid_client_key(std::string_view key) {
  // 16 bytes in base64: 22 characters and "==".
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  unsigned char out[32];
  return EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(key.data()), 24) == 18;
}

}  // namespace tandem::net::ws
