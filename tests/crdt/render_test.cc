// HTML and Markdown of rich documents (crdt/render): what each block and mark becomes, that no
// text a user typed becomes markup, and Markdown's escapes and delimiter placement.
#include <catch2/catch.hpp>

#include "crdt/doc.h"
#include "render/render.h"

using tandem::crdt::Doc;
namespace render = tandem::render;

namespace {

Doc doc_with(const std::string& text) {
  Doc d("a");
  REQUIRE(d.insert(0, text).ok());
  return d;
}

std::string html(const Doc& d) { return render::to_html(render::read(d)); }
std::string md(const Doc& d) { return render::to_markdown(render::read(d)); }

}  // namespace

TEST_CASE("render: blocks as HTML and Markdown", "[render]") {
  Doc d = doc_with("Title\nSome text\nquoted\nmore quoted\none\ntwo\nsub\nthree\nint x;\nreturn x;\nfirst\nsecond\nend");
  REQUIRE(d.set_block(0, "heading", "1").ok());
  REQUIRE(d.set_block(16, "quote").ok());
  REQUIRE(d.set_block(23, "quote").ok());
  REQUIRE(d.set_block(35, "bullet", "0").ok());
  REQUIRE(d.set_block(39, "bullet", "0").ok());
  REQUIRE(d.set_block(43, "bullet", "1").ok());
  REQUIRE(d.set_block(47, "bullet", "0").ok());
  REQUIRE(d.set_block(53, "code", "c").ok());
  REQUIRE(d.set_block(60, "code", "c").ok());
  REQUIRE(d.set_block(70, "ordered", "0").ok());
  REQUIRE(d.set_block(76, "ordered", "0").ok());
  CHECK(html(d) ==
        "<h1>Title</h1>\n<p>Some text</p>\n<blockquote>\n<p>quoted</p>\n<p>more quoted</p>\n</blockquote>\n"
        "<ul>\n<li>one</li>\n<li>two<ul>\n<li>sub</li></ul>\n</li>\n<li>three</li></ul>\n"
        "<pre><code class=\"language-c\">int x;\nreturn x;\n</code></pre>\n"
        "<ol>\n<li>first</li>\n<li>second</li></ol>\n<p>end</p>\n");
  CHECK(md(d) ==
        "# Title\n\nSome text\n\n> quoted\n>\n> more quoted\n\n- one\n- two\n    - sub\n- three\n\n"
        "```c\nint x;\nreturn x;\n```\n\n1. first\n2. second\n\nend\n");
}

TEST_CASE("render: marks nest, and Markdown keeps delimiters against text", "[render]") {
  Doc d = doc_with("plain bold both italic code link end");
  REQUIRE(d.mark(6, 9, "bold", "true").ok());    // "bold both"
  REQUIRE(d.mark(11, 11, "italic", "true").ok()); // "both italic"
  REQUIRE(d.mark(23, 4, "code", "true").ok());
  REQUIRE(d.mark(28, 4, "link", "https://e.example/a").ok());
  REQUIRE(d.mark(0, 5, "comment", "c1").ok());
  CHECK(html(d) ==
        "<p><span data-comment=\"c1\">plain</span> <strong>bold <em>both</em></strong><em> italic</em> <code>code</code> "
        "<a href=\"https://e.example/a\" rel=\"noopener noreferrer nofollow\">link</a> end</p>\n");
  CHECK(md(d) == "plain **bold *both*** *italic* `code` [link](https://e.example/a) end\n");
  // Whitespace at a marked stretch's end goes outside the delimiters.
  Doc w = doc_with("a bold  text");
  REQUIRE(w.mark(2, 6, "bold", "true").ok());  // "bold  "
  CHECK(md(w) == "a **bold**  text\n");
  Doc u = doc_with("under struck");
  REQUIRE(u.mark(0, 5, "underline", "true").ok());
  REQUIRE(u.mark(6, 6, "strike", "true").ok());
  CHECK(md(u) == "<u>under</u> <s>struck</s>\n");
}

TEST_CASE("render: text never becomes markup", "[render]") {
  Doc d = doc_with("<script>alert('x')</script> & \"q\"");
  REQUIRE(d.mark(0, 8, "bold", "true").ok());
  REQUIRE(d.mark(9, 5, "link", "https://e.example/?a=\"b\"&c=<d>").ok());
  CHECK(html(d) ==
        "<p><strong>&lt;script&gt;</strong>a<a href=\"https://e.example/?a=&quot;b&quot;&amp;c=&lt;d&gt;\" "
        "rel=\"noopener noreferrer nofollow\">lert(</a>&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</p>\n");
  // Markdown: syntax characters in text are escaped; intraword underscores and plain
  // punctuation are left alone; leading markers are escaped.
  CHECK(md(doc_with("a *b* [c] `d` <e> &amp; snake_case _x_ Hi! ![i]")) ==
        "a \\*b\\* \\[c\\] \\`d\\` \\<e> \\&amp; snake_case \\_x\\_ Hi! \\!\\[i\\]\n");
  CHECK(md(doc_with("# not a heading\n- not a list\n1. not ordered\n> no quote\n    not code")) ==
        "\\# not a heading\n\n\\- not a list\n\n1\\. not ordered\n\n\\> no quote\n\n&#32;&#32;&#32;&#32;not code\n");
  // A link's href with spaces or parentheses goes in angle brackets; code with backticks gets a
  // longer fence.
  Doc l = doc_with("see here and `tick` code");
  REQUIRE(l.mark(4, 4, "link", "/a b(c)").ok());
  REQUIRE(l.mark(13, 6, "code", "true").ok());
  CHECK(md(l) == "see [here](</a b(c)>) and `` `tick` `` code\n");
}

TEST_CASE("render: a plain document is paragraphs; empty lines have no Markdown", "[render]") {
  Doc d = doc_with("one\n\ntwo");
  CHECK(html(d) == "<p>one</p>\n<p></p>\n<p>two</p>\n");
  CHECK(md(d) == "one\n\ntwo\n");
  CHECK(html(Doc("e")).empty() == false);  // one empty paragraph
  CHECK(md(Doc("e")).empty());
}
