// UTF-8 helpers shared by the engine and its callers.
//
// Text is UTF-8 everywhere Tandem stores or sends it; positions are counted in Unicode scalar
// values (code points). JavaScript editors count UTF-16 code units, so the conversions here are
// exact for astral characters (emoji: 1 code point, 2 UTF-16 units, 4 bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "crdt/status.h"

namespace tandem::crdt::utf8 {

struct TextInfo {
  size_t bytes = 0;
  size_t code_points = 0;
  size_t utf16_units = 0;
};

// Checks that `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above
// U+10FFFF, no truncated sequence) and counts it. The error names the first bad byte offset.
Result<TextInfo> inspect(std::string_view text);

// The following REQUIRE well-formed UTF-8 (checked by inspect or produced by Tandem).
size_t count_code_points(std::string_view text);
size_t count_utf16(std::string_view text);
// Byte offset of code point `cp`; REQUIRES cp <= count_code_points(text).
size_t byte_offset(std::string_view text, size_t cp);

// Length in bytes of the sequence starting with lead byte `b` (1 for continuation bytes, so
// that scanning never stalls on bytes Tandem uses as placeholders).
inline size_t seq_len(unsigned char b) {
  if (b < 0xC0) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  if (b < 0xF8) return 4;
  return 1;
}

}  // namespace tandem::crdt::utf8
