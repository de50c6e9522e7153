#include <catch2/catch.hpp>

#include "crdt/utf8.h"

namespace utf8 = tandem::crdt::utf8;

TEST_CASE("utf8: counts ASCII, 2-, 3- and 4-byte characters", "[utf8]") {
  // a, é (2 bytes), 中 (3), 😀 (4, a surrogate pair in UTF-16), e + combining acute (2 code points).
  const std::string s = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80" "e\xCC\x81";
  auto info = utf8::inspect(s);
  REQUIRE(info.ok());
  CHECK(info->bytes == s.size());
  CHECK(info->code_points == 6);
  CHECK(info->utf16_units == 7);
  CHECK(utf8::count_code_points(s) == 6);
  CHECK(utf8::count_utf16(s) == 7);
  CHECK(utf8::byte_offset(s, 0) == 0);
  CHECK(utf8::byte_offset(s, 1) == 1);
  CHECK(utf8::byte_offset(s, 2) == 3);
  CHECK(utf8::byte_offset(s, 3) == 6);
  CHECK(utf8::byte_offset(s, 4) == 10);
  CHECK(utf8::byte_offset(s, 6) == s.size());
  CHECK(utf8::byte_offset(s, 100) == s.size());
}

TEST_CASE("utf8: long ASCII takes the fast path and stays exact", "[utf8]") {
  std::string s(1000, 'x');
  s += "\xF0\x9F\x98\x80";
  s += std::string(37, 'y');
  auto info = utf8::inspect(s);
  REQUIRE(info.ok());
  CHECK(info->code_points == 1038);
  CHECK(info->utf16_units == 1039);
  CHECK(utf8::byte_offset(s, 1001) == 1004);
}

TEST_CASE("utf8: rejects malformed input with the offset of the bad byte", "[utf8]") {
  struct Case {
    std::string bytes;
    std::string why;
  };
  const Case cases[] = {
      {"ab\x80", "bad lead byte at offset 2"},                   // lone continuation byte
      {"\xC0\xAF", "bad lead byte at offset 0"},                 // overlong 2-byte form
      {"\xE0\x80\xAF", "overlong sequence at offset 0"},         // overlong 3-byte form
      {"\xF0\x80\x80\xAF", "overlong sequence at offset 0"},     // overlong 4-byte form
      {"x\xED\xA0\x80", "surrogate code point at offset 1"},     // U+D800
      {"\xF4\x90\x80\x80", "above U+10FFFF at offset 0"},        // U+110000
      {"\xF5\x80\x80\x80", "bad lead byte at offset 0"},
      {"abc\xE4\xB8", "truncated sequence at offset 3"},
      {"\xE4\x41\xAD", "bad continuation byte at offset 1"},
      {"\xFF", "bad lead byte at offset 0"},
  };
  for (const auto& c : cases) {
    auto r = utf8::inspect(c.bytes);
    INFO(c.why);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == tandem::crdt::Status::Code::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains(c.why));
  }
}

TEST_CASE("utf8: accepts boundary code points", "[utf8]") {
  for (const std::string& s : {std::string("\x00", 1), std::string("\x7F"), std::string("\xC2\x80"),
                              std::string("\xDF\xBF"), std::string("\xE0\xA0\x80"), std::string("\xED\x9F\xBF"),
                              std::string("\xEE\x80\x80"), std::string("\xEF\xBF\xBF"), std::string("\xF0\x90\x80\x80"),
                              std::string("\xF4\x8F\xBF\xBF")}) {
    auto r = utf8::inspect(s);
    CHECK(r.ok());
    CHECK(r->code_points == 1);
  }
}
