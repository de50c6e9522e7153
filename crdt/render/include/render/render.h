// A rich document as HTML or Markdown (CommonMark), for the HTTP API and `tandem export`.
//
// Both are functions of the text, its marks and its blocks (crdt/format.h) and nothing else.
// HTML escapes every character of the text that markup gives meaning to, and every attribute
// value, so no text a user typed becomes markup; hrefs are those the engine accepted (no script
// URLs). Markdown is CommonMark: headings, lists (four spaces per level of depth), block quotes,
// fenced code blocks, emphasis, strong emphasis, code spans and links; underline and strike,
// which CommonMark lacks, are the raw HTML <u> and <s>; comments are left out of Markdown (they are
// <span data-comment="id"> in HTML). Text that Markdown would read as syntax is backslash-escaped.
// Empty paragraphs have no Markdown form and are left out of it.
#pragma once

#include <string>
#include <vector>

#include "crdt/doc.h"
#include "crdt/format.h"

namespace tandem::render {

struct RichText {
  std::string text;
  std::vector<crdt::TextSpan> spans;  // covering the text, in order
  std::vector<crdt::Block> blocks;    // every block, in order
};

RichText read(const crdt::Doc& doc);
std::string to_html(const RichText& doc);
std::string to_markdown(const RichText& doc);

// Edits `doc` (as its own agent) until its text, blocks and marks are `want`'s, keeping what is
// already equal: unchanged lines keep their characters (a line diff, then the changed lines'
// common ends), so that concurrent edits there merge; blocks are retyped and marks set or taken off
// only where they differ. `want.spans` cover its text; `want.blocks` begin at 0 and after each `\n`.
// Refused (the engine's error, and `doc` may be part-way) only for what the engine refuses: a text
// over its limits, a value it does not take.
crdt::Status make_equal(crdt::Doc& doc, const RichText& want);

}  // namespace tandem::render
