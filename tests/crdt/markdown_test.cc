// Markdown in (render::from_markdown, cmark) and making a document equal to another
// (render::make_equal): what the editor can express survives Markdown -> document -> Markdown
// unchanged, on examples drawn from the CommonMark spec's sections for the constructs it supports;
// other spellings come out in the one form to_markdown writes; an import keeps unchanged lines, so
// that a concurrent edit there merges; bad input is refused or kept as text.
#include <catch2/catch.hpp>

#include "crdt/doc.h"
#include "render/markdown.h"
#include "render/render.h"

using tandem::crdt::Doc;
namespace render = tandem::render;

namespace {

// Markdown -> a new document (as agent `who`) -> Markdown.
std::string through(const std::string& md, Doc* out = nullptr) {
  auto want = render::from_markdown(md);
  REQUIRE(want.ok());
  Doc d("importer");
  REQUIRE(render::make_equal(d, *want).ok());
  const render::RichText got = render::read(d);
  CHECK(got.text == want->text);
  CHECK(got.blocks == want->blocks);
  if (out) *out = std::move(d);
  return render::to_markdown(got);
}

}  // namespace

TEST_CASE("markdown: what the editor expresses survives a round trip unchanged", "[markdown]") {
  // Each from a CommonMark spec section (0.30), in the form to_markdown writes.
  const char* const kExamples[] = {
      // 4.2 ATX headings
      "# foo\n\n## foo\n\n### foo\n\n#### foo\n\n##### foo\n\n###### foo\n",
      // 4.8 paragraphs, 6.2 emphasis and strong emphasis
      "aaa\n\nbbb\n",
      "*foo bar*\n",
      "**foo bar**\n",
      "***strong emph***\n",
      "foo*bar*\n",
      // 6.1 code spans
      "`foo`\n",
      "``foo ` bar``\n",
      "`` `foo` ``\n",
      // 6.3 links
      "[link](/uri)\n",
      "[link](https://example.com/a?b=c#d)\n",
      "[link **foo** `#`](/uri)\n",
      "[a](<b)c>)\n",
      "[mail](mailto:someone@example.com)\n",
      // 5.1 block quotes
      "> Foo\n",
      "> bar\n>\n> baz\n",
      // 5.2 list items, 5.3 lists
      "- foo\n- bar\n- baz\n",
      "1. foo\n2. bar\n3. baz\n",
      "- foo\n    - bar\n        - baz\n- boo\n",
      "- a\n1. b\n2. c\n",
      // 4.5 fenced code blocks
      "```\n<\n >\n```\n",
      "```ruby\ndef foo(x)\n  return 3\nend\n```\n",
      "````\naaa\n```\n````\n",
      // 2.4 backslash escapes, and HTML kept as text
      "\\*not emphasized\\*\n",
      "\\# not a heading\n",
      "1\\. not a list\n",
      "a \\<b> \\&amp; c\n",
      // underline and strike, as raw HTML (CommonMark has neither)
      "<u>under</u> and <s>struck</s>\n",
      // everything together
      "# Title\n\nSome **bold** and *it* with `code` and a [link](https://x.org).\n\n- one\n    - two\n\n> q\n\n```js\nx()\n```\n",
  };
  for (const char* md : kExamples) {
    INFO(md);
    CHECK(through(md) == md);
  }
}

TEST_CASE("markdown: other spellings come out in to_markdown's form, and again unchanged", "[markdown]") {
  const std::pair<const char*, const char*> kCases[] = {
      {"Foo *bar*\n=========\n", "# Foo *bar*\n"},                      // 4.3 setext heading
      {"Foo\n---\n", "## Foo\n"},
      {"* a\n* b\n", "- a\n- b\n"},                                     // other bullet markers
      {"+ a\n", "- a\n"},
      {"1) a\n2) b\n", "1. a\n2. b\n"},
      {"3. a\n4. b\n", "1. a\n2. b\n"},                                 // a start number is not kept
      {"__strong__ _em_\n", "**strong** *em*\n"},
      {"    indented code\n", "```\nindented code\n```\n"},              // 4.4 indented code
      {"~~~ python\nx\n~~~\n", "```python\nx\n```\n"},
      {"a  \nb\n", "a b\n"},                                            // a hard line break is a space
      {"a\nb\n", "a b\n"},                                              // so is a soft one
      {"> a\nlazy\n", "> a lazy\n"},                                    // 5.1 laziness
      {"![alt *text*](/img.png)\n", "alt *text*\n"},                    // an image is its alt text
      {"<div>\nhi\n</div>\n", "\\<div>\n\nhi\n\n\\</div>\n"},           // HTML is text, never markup
      {"a <span>b</span>\n", "a \\<span>b\\</span>\n"},
      {"***\n\nafter\n", "after\n"},                                    // a thematic break: an empty paragraph
      {"- a\n\n  second paragraph\n", "- a\n- second paragraph\n"},     // each paragraph of an item is an item
      {"*foo **bar** baz*\n", "*foo* ***bar*** *baz*\n"},            // bold outside italic where both hold
      {"> # Foo\n", "# Foo\n"},                                        // a heading in a quote stays a heading
      {"- a\n\n1. b\n", "- a\n1. b\n"},
      {"```\n```\n", "```\n\n```\n"},                                 // an empty fence: one empty code line
  };
  for (const auto& [in, out] : kCases) {
    INFO(in);
    const std::string once = through(in);
    CHECK(once == out);
    CHECK(through(once) == once);
  }
}

TEST_CASE("markdown: links the engine refuses keep their text; limits hold; bad UTF-8 is refused", "[markdown]") {
  auto r = render::from_markdown("[click](javascript:alert(1)) and [ok](http://a.b)\n");
  REQUIRE(r.ok());
  CHECK(r->text == "click and ok");
  REQUIRE(r->spans.size() == 2);
  CHECK(r->spans[0].marks.empty());
  CHECK(r->spans[1].marks == std::vector<tandem::crdt::Mark>{{"link", "http://a.b"}});

  // Lists nested 50 deep: depth stops at 7.
  std::string deep;
  for (int i = 0; i < 50; ++i) deep += std::string(static_cast<size_t>(2 * i), ' ') + "- item\n";
  r = render::from_markdown(deep);
  REQUIRE(r.ok());
  REQUIRE(r->blocks.size() == 50);
  CHECK(r->blocks.back().value == "7");
  Doc d("x");
  CHECK(render::make_equal(d, *r).ok());

  // Quotes nested 10,000 deep: one quoted paragraph, and no deep recursion anywhere.
  r = render::from_markdown(std::string(10000, '>') + " deep\n");
  REQUIRE(r.ok());
  CHECK(r->text == "deep");
  CHECK(r->blocks.at(0).type == "quote");

  auto bad = render::from_markdown(std::string("a\xff b"));
  REQUIRE(!bad.ok());
  CHECK(bad.status().message().find("Markdown") != std::string::npos);

  // A fence language the engine does not take is dropped, the code kept.
  r = render::from_markdown("```no spaces allowed?!\nx\n```\n");
  REQUIRE(r.ok());
  CHECK(r->blocks.at(0).type == "code");
  CHECK(r->blocks.at(0).value == "no");
  r = render::from_markdown("```<script>\nx\n```\n");
  REQUIRE(r.ok());
  CHECK(r->blocks.at(0).value.empty());
}

TEST_CASE("markdown: an import keeps unchanged lines, so a concurrent edit in them merges", "[markdown]") {
  Doc alice("alice");
  Doc start("importer");
  through("# Plan\n\nFirst point.\n\nSecond point.\n\nThird point.\n", &start);
  REQUIRE(alice.apply(start.ops_since({})).ok());
  auto loaded = Doc::from_snapshot(alice.to_snapshot(), "bob");
  REQUIRE(loaded.ok());
  Doc bob = std::move(*loaded);
  const auto base = alice.version();

  // Alice types in the third paragraph while Bob imports a version that changes the second.
  const uint32_t third = static_cast<uint32_t>(alice.text().find("Third")) + 5;
  REQUIRE(alice.insert(third, " and final").ok());
  auto want = render::from_markdown("# Plan\n\nFirst point.\n\nSecond point, **revised**.\n\nThird point.\n");
  REQUIRE(want.ok());
  REQUIRE(render::make_equal(bob, *want).ok());
  // Only the changed line moved: Bob's edit is the inserted ", revised" and its bold.
  const auto bobs = bob.ops_since(base);
  uint32_t inserted = 0, deleted = 0;
  for (const auto& run : bobs.runs) {
    if (run.kind == tandem::crdt::OpKind::kInsert) inserted += run.len;
    if (run.kind == tandem::crdt::OpKind::kDeleteForward || run.kind == tandem::crdt::OpKind::kDeleteBackward) deleted += run.len;
  }
  CHECK(inserted == 9);
  CHECK(deleted == 0);

  REQUIRE(alice.apply(bobs).ok());
  REQUIRE(bob.apply(alice.ops_since(base)).ok());
  CHECK(alice.text() == bob.text());
  CHECK(render::to_markdown(render::read(alice)) ==
        "# Plan\n\nFirst point.\n\nSecond point, **revised**.\n\nThird and final point.\n");
  CHECK(render::to_markdown(render::read(bob)) == render::to_markdown(render::read(alice)));

  // Importing what it already is changes nothing.
  const auto before = bob.version();
  REQUIRE(render::make_equal(bob, render::read(bob)).ok());
  CHECK(bob.version() == before);
}

TEST_CASE("markdown: make_equal retypes blocks and sets or takes off marks only where they differ", "[markdown]") {
  Doc d("a");
  REQUIRE(d.insert(0, "one two three\nnext").ok());
  REQUIRE(d.mark(0, 3, "bold", "true").ok());
  REQUIRE(d.mark(4, 3, "link", "https://a.b").ok());
  REQUIRE(d.mark(8, 5, "comment", "c1").ok());
  REQUIRE(d.set_block(14, "heading", "2").ok());
  const uint64_t events = d.version().total();
  render::RichText want = render::read(d);
  // Italic instead of bold on "one"; the link's href changes; the comment stays; a quote below.
  want.spans = {{0, 3, {{"italic", "true"}}}, {3, 4, {}}, {4, 7, {{"link", "https://c.d"}}}, {7, 8, {}},
                {8, 13, {{"comment", "c1"}}}, {13, 18, {}}};
  want.blocks[1] = {14, "quote", ""};
  REQUIRE(render::make_equal(d, want).ok());
  CHECK(render::read(d).spans == want.spans);
  CHECK(render::read(d).blocks == want.blocks);
  CHECK(d.version().total() == events + 4);  // unbold, italic, the new href, the block
}
