// UTF-8 validation and counting, and the replica's UTF-16 <-> code point conversion, against a
// plain reference decoder written here.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "crdt/doc.h"
#include "crdt/utf8.h"
#include "fuzz_check.h"

using namespace tandem::crdt;

namespace {

using tandem::fuzz::require;

// Decodes well-formed UTF-8 into code points; false on anything else.
bool reference(const std::string& s, std::vector<uint32_t>* out) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<uint8_t>(s[i]);
    size_t len;
    uint32_t cp, min;
    if (b < 0x80) { len = 1; cp = b; min = 0; }
    else if ((b & 0xE0) == 0xC0) { len = 2; cp = b & 0x1F; min = 0x80; }
    else if ((b & 0xF0) == 0xE0) { len = 3; cp = b & 0x0F; min = 0x800; }
    else if ((b & 0xF8) == 0xF0) { len = 4; cp = b & 0x07; min = 0x10000; }
    else return false;
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    out->push_back(cp);
    i += len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  std::vector<uint32_t> cps;
  const bool ok = reference(s, &cps);
  auto info = utf8::inspect(s);
  require(info.ok() == ok);
  if (!ok) {
    Doc d("fuzz");
    require(!d.insert(0, s).ok() && d.length() == 0);  // refused whole
    return 0;
  }
  size_t units = 0;
  for (uint32_t cp : cps) units += cp >= 0x10000 ? 2 : 1;
  require(info->code_points == cps.size() && info->utf16_units == units && info->bytes == s.size());
  require(utf8::count_code_points(s) == cps.size() && utf8::count_utf16(s) == units);
  Doc d("fuzz");
  require(d.insert(0, s).ok());
  require(d.length() == cps.size() && d.length_utf16() == units);
  size_t u16 = 0;
  for (size_t i = 0; i <= cps.size(); ++i) {
    auto to = d.utf16_from_pos(static_cast<uint32_t>(i));
    require(to.ok() && *to == u16);
    auto back = d.pos_from_utf16(static_cast<uint32_t>(u16));
    require(back.ok() && *back == i);
    if (i < cps.size() && cps[i] >= 0x10000) require(!d.pos_from_utf16(static_cast<uint32_t>(u16 + 1)).ok());
    if (i < cps.size()) {
      require(utf8::byte_offset(s, i) <= s.size());
      u16 += cps[i] >= 0x10000 ? 2 : 1;
    }
  }
  require(!d.utf16_from_pos(static_cast<uint32_t>(cps.size() + 1)).ok());
  return 0;
}
