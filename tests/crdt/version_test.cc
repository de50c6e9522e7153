// Version vectors and Status values.
#include <catch2/catch.hpp>

#include "crdt/status.h"
#include "crdt/version.h"

using tandem::crdt::OpId;
using tandem::crdt::Result;
using tandem::crdt::Status;
using tandem::crdt::Version;

TEST_CASE("version: next, advance, contains", "[version]") {
  Version v;
  CHECK(v.empty());
  CHECK(v.next("a") == 0);
  v.advance("b", 3);
  v.advance("a", 1);
  v.advance("a", 0);  // zero entries are never stored
  CHECK(v.next("a") == 1);
  CHECK(v.next("b") == 3);
  CHECK(v.contains(OpId{"b", 2}));
  CHECK_FALSE(v.contains(OpId{"b", 3}));
  CHECK_FALSE(v.contains(OpId{"c", 0}));
  REQUIRE(v.entries().size() == 2);
  CHECK(v.entries()[0].first == "a");  // sorted by name
  CHECK(v.total() == 4);
  CHECK(v.ToString() == "{a:1, b:3}");
}

TEST_CASE("version: includes and merge", "[version]") {
  Version a, b;
  a.advance("x", 5);
  a.advance("y", 1);
  b.advance("x", 3);
  CHECK(a.includes(b));
  CHECK_FALSE(b.includes(a));
  b.advance("z", 2);
  CHECK_FALSE(a.includes(b));
  a.merge(b);
  CHECK(a.next("x") == 5);
  CHECK(a.next("y") == 1);
  CHECK(a.next("z") == 2);
  CHECK(a.includes(b));
  CHECK(Version().includes(Version()));
}

TEST_CASE("status: codes, messages, context", "[status]") {
  CHECK(Status::OK().ok());
  CHECK(Status::OK().ToString() == "OK");
  const Status st = Status::Corruption("bad varint");
  CHECK_FALSE(st.ok());
  CHECK(st.code() == Status::Code::kCorruption);
  CHECK(st.ToString() == "Corruption: bad varint");
  CHECK(st.WithContext("snapshot").ToString() == "Corruption: snapshot: bad varint");
  CHECK(Status::OK().WithContext("x").ok());
  for (auto code : {Status::Code::kInvalidArgument, Status::Code::kOutOfRange, Status::Code::kResourceExhausted,
                    Status::Code::kNotSupported, Status::Code::kIOError, Status::Code::kInternal}) {
    CHECK(std::string(Status::CodeName(code)).size() > 2);
  }
  Result<int> r = 7;
  CHECK(r.ok());
  CHECK(*r == 7);
  Result<int> e = Status::NotSupported("x");
  CHECK_FALSE(e.ok());
  CHECK(e.status().code() == Status::Code::kNotSupported);
}
