// Markdown in: CommonMark (parsed by cmark, the reference implementation) as a rich document.
//
// What the document can hold is kept: ATX and setext headings, paragraphs, block quotes (every
// block inside becomes a quote block), bullet and ordered lists (depth = nesting, at most 7;
// every paragraph of an item is an item), fenced and indented code (one code block per line, the
// fence's first word as language when the engine takes it), emphasis, strong emphasis, code spans,
// links (those whose href the engine takes; others keep their text) and the raw HTML <u>, <s>
// (to_markdown's underline and strike). What it cannot hold becomes text: images their alt text,
// line breaks a space, other HTML its source as text (so it never becomes markup), thematic
// breaks an empty paragraph.
#pragma once

#include <string_view>

#include "crdt/status.h"
#include "render/render.h"

namespace tandem::render {

// The document of `markdown` (UTF-8, else InvalidArgument).
crdt::Result<RichText> from_markdown(std::string_view markdown);

}  // namespace tandem::render
