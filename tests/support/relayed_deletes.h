// Issue 22's situation, built by hand: replica b relays what it learned, including characters of
// a's that it deleted (sent without their text, OpKind::kInsertDeleted) beside its deletions,
// before a's own batch and b's first insert. A receiver that gets `relay` first must hold it,
// then accept `a_first` (whose arrival wakes a's held runs while b's deletions still wait), then
// `b_first`, and end with `text`.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "crdt/doc.h"

namespace tandem::testing {

struct RelayedDeletes {
  crdt::OpBatch a_first;   // a: "世界" (a:0-1), with its text
  crdt::OpBatch b_first;   // b: "x" (b:0), concurrent with it
  crdt::OpBatch a_second;  // a: "é" typed before it (a:2-3)
  crdt::OpBatch relay;     // b, since its first send: a's 4 events (2 without text), b's 2 deletions
  std::string text;        // what every replica ends with
  crdt::Version version;

  RelayedDeletes() {
    crdt::Doc a("a"), b("b");
    REQUIRE(a.insert(0, "\xE4\xB8\x96\xE7\x95\x8C").ok());
    a_first = a.ops_since({});
    REQUIRE(b.insert(0, "x").ok());
    b_first = b.ops_since({});
    const crdt::Version b_sent = b.version(), a_sent = a.version();
    REQUIRE(a.insert(0, "e\xCC\x81").ok());
    a_second = a.ops_since(a_sent);
    REQUIRE(b.apply(a_first).ok());
    REQUIRE(b.remove(0, 1).ok());
    REQUIRE(b.apply(a_second).ok());
    REQUIRE(b.remove(0, 1).ok());
    relay = b.ops_since(b_sent);
    int unknown = 0;
    for (const auto& r : relay.runs) unknown += r.kind == crdt::OpKind::kInsertDeleted;
    REQUIRE(unknown == 2);
    text = b.text();
    version = b.version();
  }
};

}  // namespace tandem::testing
