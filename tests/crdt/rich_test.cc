// Marks and blocks (crdt/format.h): the examples of the Peritext paper (Litt, Lim, Kleppmann,
// van Hardenberg, 2022; tests/support/peritext_cases.h, which the client's test replays through a
// server) as pairs of replicas that edit concurrently and then exchange what they lack, both
// orders of delivery; validation; and the bytes of plain documents unchanged.
#include <catch2/catch.hpp>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "support/peritext_cases.h"

using tandem::crdt::Block;
using Code = tandem::crdt::Status::Code;
using tandem::crdt::Doc;
using tandem::crdt::OpKind;
namespace codec = tandem::crdt::codec;

namespace {

std::string render(const Doc& d) { return tandem::testing::render_spans(d.text(), d.spans()); }
std::string render_blocks(const Doc& d) { return tandem::testing::render_blocks(d.blocks()); }

// Two replicas that share `base` (typed by a), then edit concurrently.
struct Pair {
  explicit Pair(const std::string& base) {
    REQUIRE(a.insert(0, base).ok());
    sync_b();
  }
  void sync_b() { REQUIRE(b.apply(a.ops_since(b.version())).ok()); }
  void sync_a() { REQUIRE(a.apply(b.ops_since(a.version())).ok()); }
  // Exchanges everything, and checks that both ends agree (and agree with a third replica that
  // received b's events first).
  std::string merge() {
    Doc c("c");
    REQUIRE(c.apply(b.ops_since({})).ok());
    REQUIRE(c.apply(a.ops_since(c.version())).ok());
    sync_a();
    sync_b();
    const std::string r = render(a);
    CHECK(render(b) == r);
    CHECK(render(c) == r);
    CHECK(render_blocks(b) == render_blocks(a));
    CHECK(render_blocks(c) == render_blocks(a));
    return r;
  }
  Doc a{"a"};
  Doc b{"b"};
};

}  // namespace

TEST_CASE("rich: local marks read back as spans", "[rich]") {
  Doc d("a");
  REQUIRE(d.insert(0, "The fox jumped").ok());
  CHECK(render(d) == "The fox jumped");
  REQUIRE(d.mark(4, 3, "bold", "true").ok());
  CHECK(render(d) == "The {bold:fox} jumped");
  REQUIRE(d.mark(0, 7, "italic", "true").ok());
  CHECK(render(d) == "{italic:The }{bold,italic:fox} jumped");
  REQUIRE(d.unmark(5, 1, "bold").ok());
  CHECK(render(d) == "{italic:The }{bold,italic:f}{italic:o}{bold,italic:x} jumped");
  // Growing marks take text typed at their end; links do not; neither takes text at its start.
  REQUIRE(d.mark(8, 6, "link", "https://example.com/").ok());
  REQUIRE(d.insert(14, "!").ok());
  REQUIRE(d.insert(7, "y").ok());
  CHECK(render(d) == "{italic:The }{bold,italic:f}{italic:o}{bold,italic:xy} {link=https://example.com/:jumped}!");
  REQUIRE(d.insert(0, ">").ok());
  CHECK(render(d).substr(0, 2) == ">{");
  CHECK(d.check_invariants().ok());
}

TEST_CASE("rich: comments overlap, each its own mark", "[rich]") {
  Doc d("a");
  REQUIRE(d.insert(0, "abcdef").ok());
  REQUIRE(d.mark(0, 4, "comment", "c1").ok());
  REQUIRE(d.mark(2, 4, "comment", "c2").ok());
  CHECK(render(d) == "{comment=c1:ab}{comment=c1,comment=c2:cd}{comment=c2:ef}");
  REQUIRE(d.unmark(0, 6, "comment", "c1").ok());
  CHECK(render(d) == "ab{comment=c2:cdef}");
}

TEST_CASE("rich: blocks begin at 0 and after each newline", "[rich]") {
  Doc d("a");
  REQUIRE(d.insert(0, "Title\nbody\nitem").ok());
  CHECK(render_blocks(d) == "0:paragraph 6:paragraph 11:paragraph");
  REQUIRE(d.set_block(2, "heading", "1").ok());
  REQUIRE(d.set_block(13, "bullet", "0").ok());
  CHECK(render_blocks(d) == "0:heading=1 6:paragraph 11:bullet=0");
  // Enter at the end of the heading: the new block is a paragraph, the heading stays.
  REQUIRE(d.insert(5, "\n").ok());
  CHECK(render_blocks(d) == "0:heading=1 6:paragraph 7:paragraph 12:bullet=0");
  // Joining the list item to the block before: it takes that block's type.
  REQUIRE(d.remove(11, 1).ok());
  CHECK(d.text() == "Title\n\nbodyitem");
  CHECK(render_blocks(d) == "0:heading=1 6:paragraph 7:paragraph");
  REQUIRE(d.set_block(0, "paragraph").ok());
  CHECK(render_blocks(d) == "0:paragraph 6:paragraph 7:paragraph");
}

TEST_CASE("rich: bad formats are refused and change nothing", "[rich]") {
  Doc d("a");
  REQUIRE(d.insert(0, "hello").ok());
  const auto events = d.num_events();
  struct Case {
    tandem::crdt::Status st;
    Code code;
    const char* why;
  };
  const Case cases[] = {
      {d.mark(3, 5, "bold", "true"), Code::kOutOfRange, "past the end"},
      {d.mark(2, 0, "bold", "true"), Code::kInvalidArgument, "no characters"},
      {d.mark(0, 2, "blink", "true"), Code::kInvalidArgument, "unknown mark 'blink'"},
      {d.mark(0, 2, "bold", "yes"), Code::kInvalidArgument, "\"true\""},
      {d.mark(0, 2, "link", "javascript:alert(1)"), Code::kInvalidArgument, "scheme 'javascript'"},
      {d.mark(0, 2, "link", "JaVaScRiPt:alert(1)"), Code::kInvalidArgument, "scheme 'javascript'"},
      {d.mark(0, 2, "link", "java\tscript:x"), Code::kInvalidArgument, "control character"},
      {d.mark(0, 2, "link", "data:text/html,x"), Code::kInvalidArgument, "scheme 'data'"},
      {d.mark(0, 2, "link", ""), Code::kInvalidArgument, "href"},
      {d.mark(0, 2, "comment", "has space"), Code::kInvalidArgument, "comment id"},
      {d.set_block(0, "heading", "7"), Code::kInvalidArgument, "1 to 6"},
      {d.set_block(0, "heading", ""), Code::kInvalidArgument, "1 to 6"},
      {d.set_block(0, "bullet", "8"), Code::kInvalidArgument, "0 to 7"},
      {d.set_block(0, "quote", "x"), Code::kInvalidArgument, "no attribute"},
      {d.set_block(0, "code", "<script>"), Code::kInvalidArgument, "language"},
      {d.set_block(0, "table", ""), Code::kInvalidArgument, "unknown block type"},
      {d.set_block(9, "quote", ""), Code::kOutOfRange, "past the end"},
  };
  for (const auto& c : cases) {
    INFO(c.why << ": " << c.st.ToString());
    CHECK(c.st.code() == c.code);
    CHECK_THAT(c.st.message(), Catch::Contains(c.why));
  }
  CHECK(d.num_events() == events);
  CHECK(d.format_events() == 0);
  // Relative links and the usual schemes are fine.
  CHECK(d.mark(0, 1, "link", "/docs/a?b#c").ok());
  CHECK(d.mark(0, 1, "link", "mailto:a@example.com").ok());
  CHECK(d.mark(0, 1, "link", "https://example.com/x:y").ok());
}

TEST_CASE("rich: too many comments are refused, locally and from a peer", "[rich]") {
  Doc d("a");
  d.set_limits({.max_comments = 3});
  REQUIRE(d.insert(0, "abcdef").ok());
  for (const char* id : {"c0", "c1", "c2"}) REQUIRE(d.mark(id[1] - '0', 1, "comment", id).ok());
  REQUIRE(d.mark(4, 1, "comment", "c1").ok());  // an id already used costs nothing
  auto st = d.mark(5, 1, "comment", "c9");
  CHECK(st.code() == Code::kResourceExhausted);
  CHECK_THAT(st.message(), Catch::Contains("more than 3 comments"));

  Doc peer("p");
  REQUIRE(peer.insert(0, "xyz").ok());
  for (const char* id : {"k0", "k1", "k2", "k3", "k4"}) REQUIRE(peer.mark(0, 3, "comment", id).ok());
  Doc small("s");
  small.set_limits({.max_comments = 4});
  const auto before = small.num_events();
  auto r = small.apply(peer.ops_since({}));
  CHECK(r.status().code() == Code::kResourceExhausted);
  CHECK(small.num_events() == before);
  CHECK(small.text().empty());
}

TEST_CASE("rich: a plain document keeps format 1 bytes; marks bring format 2 and load back", "[rich]") {
  Doc d("a");
  REQUIRE(d.insert(0, "plain text\nsecond line").ok());
  const std::string batch = codec::encode_ops(d.ops_since({}));
  const std::string snap = codec::save(d);
  CHECK(static_cast<uint8_t>(batch[1]) == 1);
  CHECK(static_cast<uint8_t>(snap[1]) == 1);
  CHECK(static_cast<uint8_t>(snap[0]) == 0x99);  // nine fields, as before

  REQUIRE(d.mark(0, 5, "bold", "true").ok());
  REQUIRE(d.set_block(12, "heading", "2").ok());
  const std::string rich_batch = codec::encode_ops(d.ops_since({}));
  const std::string rich_snap = codec::save(d);
  CHECK(static_cast<uint8_t>(rich_batch[1]) == 2);
  CHECK(static_cast<uint8_t>(rich_snap[1]) == 2);
  auto decoded = codec::decode_ops(rich_batch);
  REQUIRE(decoded.ok());
  CHECK(*decoded == d.ops_since({}));
  CHECK(*codec::decode_ops_generic(rich_batch) == *decoded);
  Doc e("e");
  REQUIRE(e.apply(*decoded).ok());
  CHECK(render(e) == render(d));
  auto loaded = codec::load_direct(rich_snap, "r");
  REQUIRE(loaded.ok());
  CHECK(render(*loaded) == "{bold:plain} text\nsecond line");
  CHECK(render_blocks(*loaded) == "0:paragraph 11:heading=2");
  CHECK(codec::save(*loaded) == rich_snap);
  // Only the new format carries kinds 4 and 5.
  std::string forged = rich_batch;
  forged[1] = 1;
  CHECK(codec::decode_ops(forged).status().code() == Code::kCorruption);
}

// ---- the Peritext paper's examples, each delivered both ways --------------------------------

TEST_CASE("peritext: the paper's examples, between two replicas and a third", "[rich][peritext]") {
  for (const auto& c : tandem::testing::peritext_cases()) {
    DYNAMIC_SECTION(c.name) {
      Pair p(c.base);
      tandem::testing::EditorOf<Doc> a(p.a), b(p.b);
      if (c.shared) {
        c.shared(a);
        p.sync_b();
      }
      c.on_a(a);
      c.on_b(b);
      CHECK(p.merge() == c.spans);
      if (!c.blocks.empty()) CHECK(render_blocks(p.a) == c.blocks);
    }
  }
}

TEST_CASE("peritext: a comment over deleted text, then over nothing", "[rich][peritext]") {
  Pair p("one two three four");
  REQUIRE(p.a.mark(4, 9, "comment", "c1").ok());  // "two three"
  REQUIRE(p.b.remove(2, 6).ok());                  // "e two "
  CHECK(p.b.text() == "onthree four");
  CHECK(p.merge() == "on{comment=c1:three} four");
  // Deleting all of it leaves the comment on nothing, and no empty stretch.
  REQUIRE(p.a.remove(2, 5).ok());
  p.sync_b();
  CHECK(render(p.b) == "on four");
}

TEST_CASE("rich: format_ranges says where the format events that arrived act", "[rich]") {
  Doc a("alice");
  REQUIRE(a.insert(0, "Hello world\nsecond line").ok());
  Doc b("bob");
  REQUIRE(b.apply(a.ops_since({})).ok());
  const auto base = a.version();
  REQUIRE(a.mark(6, 5, "bold", "true").ok());          // "world": grows, so it acts to the next character
  REQUIRE(a.mark(0, 5, "link", "https://x.y/").ok());  // "Hello": does not grow
  REQUIRE(a.set_block(14, "heading", "2").ok());       // the block "second line", starting at 12
  REQUIRE(a.mark(1, 2, "italic", "true").ok());
  REQUIRE(a.remove(1, 2).ok());                          // ... whose characters go
  const uint64_t before = b.format_events();
  CHECK(before == 0);
  REQUIRE(b.apply(a.ops_since(base)).ok());
  using R = std::vector<std::pair<uint32_t, uint32_t>>;
  // Today's text is "Hlo world\nsecond line": bold [4, 9), link [0, 3), the heading's start at 10.
  CHECK(b.format_ranges(before) == R{{4, 9}, {0, 3}, {10, 10}});
  CHECK(b.format_ranges(3) == R{});  // the italic's characters are all deleted
  CHECK(b.format_ranges(4) == R{});
  CHECK(b.format_ranges(2) == R{{10, 10}});
  CHECK(a.format_ranges(0) == b.format_ranges(0));
}
