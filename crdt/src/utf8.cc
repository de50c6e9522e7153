#include "crdt/utf8.h"

#include <cstring>
#include <string>

namespace tandem::crdt::utf8 {

namespace {

bool all_ascii8(const unsigned char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return (w & 0x8080808080808080ULL) == 0;
}

// Whether every byte is below 0x80: text that is well-formed, a code point (and a UTF-16 unit) a
// byte. Most typing is; this pass costs a fraction of the counting one.
bool all_ascii(const unsigned char* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (!all_ascii8(p + i)) return false;
  }
  unsigned char high = 0;
  for (; i < n; ++i) high |= p[i];
  return high < 0x80;
}

}  // namespace

Result<TextInfo> inspect(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  if (all_ascii(p, n)) return TextInfo{n, n, n};
  TextInfo info;
  info.bytes = n;
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n && all_ascii8(p + i)) {
      i += 8;
      info.code_points += 8;
      info.utf16_units += 8;
      continue;
    }
    unsigned char b = p[i];
    if (b < 0x80) {
      ++i;
      ++info.code_points;
      ++info.utf16_units;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
      cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      cp = b & 0x07;
    } else {
      return Status::InvalidArgument("invalid UTF-8: bad lead byte at offset " + std::to_string(i));
    }
    if (i + len > n) {
      return Status::InvalidArgument("invalid UTF-8: truncated sequence at offset " + std::to_string(i));
    }
    for (size_t k = 1; k < len; ++k) {
      unsigned char c = p[i + k];
      if ((c & 0xC0) != 0x80) {
        return Status::InvalidArgument("invalid UTF-8: bad continuation byte at offset " +
                                       std::to_string(i + k));
      }
      cp = (cp << 6) | (c & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return Status::InvalidArgument("invalid UTF-8: overlong sequence at offset " + std::to_string(i));
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      return Status::InvalidArgument("invalid UTF-8: surrogate code point at offset " + std::to_string(i));
    }
    if (cp > 0x10FFFF) {
      return Status::InvalidArgument("invalid UTF-8: code point above U+10FFFF at offset " +
                                     std::to_string(i));
    }
    i += len;
    ++info.code_points;
    info.utf16_units += len == 4 ? 2 : 1;
  }
  return info;
}

size_t count_code_points(std::string_view text) {
  size_t count = 0;
  for (unsigned char c : text) count += (c & 0xC0) != 0x80;
  return count;
}

size_t count_utf16(std::string_view text) {
  size_t count = 0;
  for (unsigned char c : text) count += ((c & 0xC0) != 0x80) + (c >= 0xF0 && c < 0xF8);
  return count;
}

size_t byte_offset(std::string_view text, size_t cp) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (cp > 0 && i < n) {
    if (cp >= 8 && i + 8 <= n && all_ascii8(p + i)) {
      i += 8;
      cp -= 8;
      continue;
    }
    i += seq_len(p[i]);
    --cp;
  }
  return i < n ? i : n;
}

}  // namespace tandem::crdt::utf8
