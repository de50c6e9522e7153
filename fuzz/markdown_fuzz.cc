// Markdown in (render::from_markdown over cmark), as the HTTP API's import takes it from anyone:
// any bytes are refused or read; what is read becomes a document whose text and blocks are what
// was read (render::make_equal), renders back to Markdown, and that Markdown reads again.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "crdt/doc.h"
#include "render/markdown.h"
#include "render/render.h"
#include "fuzz_check.h"

using namespace tandem;

namespace {

using tandem::fuzz::require;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string md(reinterpret_cast<const char*>(data), size);
  auto want = render::from_markdown(md);
  if (!want.ok()) return 0;
  // Blocks begin at 0 and after each `\n`; spans cover the text.
  require(!want->blocks.empty() && want->blocks[0].at == 0);
  uint32_t covered = 0;
  for (const auto& s : want->spans) {
    require(s.from == covered && s.to > s.from);
    covered = s.to;
  }
  crdt::Doc doc("importer");
  require(render::make_equal(doc, *want).ok());
  const render::RichText got = render::read(doc);
  require(got.text == want->text);
  require(got.blocks == want->blocks);
  // Marks: those the reader gave, where the text shows them (a `\n`'s marks are nobody's).
  require(render::from_markdown(render::to_markdown(got)).ok());
  // Making it equal again changes nothing.
  const auto before = doc.version();
  require(render::make_equal(doc, got).ok());
  require(doc.version() == before);
  return 0;
}
