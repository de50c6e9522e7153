#include "render/markdown.h"

#include <cmark.h>

#include <algorithm>
#include <memory>

#include "crdt/format.h"
#include "crdt/utf8.h"

namespace tandem::render {
namespace {

using crdt::Block;
using crdt::Mark;
using crdt::Status;

constexpr uint32_t kMaxDepth = 7;

struct NodeFree {
  void operator()(cmark_node* n) const { cmark_node_free(n); }
};
struct IterFree {
  void operator()(cmark_iter* i) const { cmark_iter_free(i); }
};

// Builds the text, its covering spans and its blocks as the walk goes.
class Builder {
 public:
  void begin_block(std::string type, std::string value) {
    if (!out_.blocks.empty()) put("\n", {});
    out_.blocks.push_back(Block{cp_, std::move(type), std::move(value)});
  }
  // Text in the current block; a `\n` (inside inline HTML) would begin a block, so it is a space.
  void text(std::string_view s) {
    if (s.find('\n') == std::string_view::npos) {
      put(s, marks_);
      return;
    }
    std::string t(s);
    std::replace(t.begin(), t.end(), '\n', ' ');
    put(t, marks_);
  }
  void push(Mark m) { marks_.push_back(std::move(m)); }
  // An inline container's mark: on when the walk enters it, off when it leaves.
  void span(bool enter, Mark m) {
    if (enter) {
      push(std::move(m));
    } else {
      pop(m.name);
    }
  }
  void pop(std::string_view name) {
    for (size_t i = marks_.size(); i-- > 0;) {
      if (marks_[i].name == name) {
        marks_.erase(marks_.begin() + static_cast<long>(i));
        return;
      }
    }
  }
  bool has(std::string_view name) const {
    return std::any_of(marks_.begin(), marks_.end(), [&](const Mark& m) { return m.name == name; });
  }
  RichText finish() {
    if (out_.blocks.empty()) out_.blocks.push_back(Block{});
    return std::move(out_);
  }

 private:
  void put(std::string_view s, std::vector<Mark> marks) {
    if (s.empty()) return;
    const auto n = static_cast<uint32_t>(crdt::utf8::count_code_points(s));
    std::sort(marks.begin(), marks.end(), [](const Mark& a, const Mark& b) { return a.name != b.name ? a.name < b.name : a.value < b.value; });
    marks.erase(std::unique(marks.begin(), marks.end()), marks.end());
    out_.text.append(s);
    if (!out_.spans.empty() && out_.spans.back().marks == marks && out_.spans.back().to == cp_) {
      out_.spans.back().to += n;
    } else {
      out_.spans.push_back({cp_, cp_ + n, std::move(marks)});
    }
    cp_ += n;
  }

  RichText out_;
  uint32_t cp_ = 0;
  std::vector<Mark> marks_;
};

bool good_href(const std::string& href) {
  crdt::Format f{1, "link", href, false};
  return crdt::ValidateFormat(crdt::OpKind::kMark, 0, f).ok();
}

std::string language_of(const char* info) {
  std::string_view s = info ? info : "";
  s = s.substr(0, s.find_first_of(" \t"));
  crdt::Format f{0, "code", std::string(s), false};
  return crdt::ValidateFormat(crdt::OpKind::kBlock, 0, f).ok() ? std::string(s) : std::string();
}

// Each line of `s` (without a final newline) as its own block of `type`.
void lines_as_blocks(Builder& b, std::string_view s, const std::string& type, const std::string& value) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  for (;;) {
    const size_t e = s.find('\n');
    b.begin_block(type, value);
    b.text(s.substr(0, e));
    if (e == std::string_view::npos) break;
    s.remove_prefix(e + 1);
  }
}

}  // namespace

crdt::Result<RichText> from_markdown(std::string_view markdown) {
  TANDEM_RETURN_IF_ERROR(crdt::utf8::inspect(markdown).status().WithContext("Markdown"));
  std::unique_ptr<cmark_node, NodeFree> root(cmark_parse_document(markdown.data(), markdown.size(), CMARK_OPT_DEFAULT));
  if (!root) return Status::Internal("the Markdown parser failed");
  std::unique_ptr<cmark_iter, IterFree> it(cmark_iter_new(root.get()));
  Builder b;
  int quotes = 0;
  std::vector<cmark_list_type> lists;  // the lists around the walk, outermost first
  cmark_event_type ev;
  while ((ev = cmark_iter_next(it.get())) != CMARK_EVENT_DONE) {
    cmark_node* n = cmark_iter_get_node(it.get());
    const bool enter = ev == CMARK_EVENT_ENTER;
    const char* lit = cmark_node_get_literal(n);
    const std::string_view literal = lit ? lit : "";
    switch (cmark_node_get_type(n)) {
      case CMARK_NODE_BLOCK_QUOTE: quotes += enter ? 1 : -1; break;
      case CMARK_NODE_LIST:
        if (enter) {
          lists.push_back(cmark_node_get_list_type(n));
        } else {
          lists.pop_back();
        }
        break;
      case CMARK_NODE_ITEM:
        if (enter && cmark_node_first_child(n) == nullptr) {  // an empty item
          const auto depth = static_cast<uint32_t>(std::min<size_t>(lists.size() - 1, kMaxDepth));
          b.begin_block(lists.back() == CMARK_ORDERED_LIST ? "ordered" : "bullet", std::to_string(depth));
        }
        break;
      case CMARK_NODE_PARAGRAPH:
        if (!enter) break;
        if (quotes > 0) {
          b.begin_block("quote", "");
        } else if (!lists.empty()) {
          const auto depth = static_cast<uint32_t>(std::min<size_t>(lists.size() - 1, kMaxDepth));
          b.begin_block(lists.back() == CMARK_ORDERED_LIST ? "ordered" : "bullet", std::to_string(depth));
        } else {
          b.begin_block("paragraph", "");
        }
        break;
      case CMARK_NODE_HEADING:
        if (enter) b.begin_block("heading", std::to_string(std::clamp(cmark_node_get_heading_level(n), 1, 6)));
        break;
      case CMARK_NODE_CODE_BLOCK: lines_as_blocks(b, literal, "code", language_of(cmark_node_get_fence_info(n))); break;
      case CMARK_NODE_HTML_BLOCK: lines_as_blocks(b, literal, quotes > 0 ? "quote" : "paragraph", ""); break;
      case CMARK_NODE_THEMATIC_BREAK: b.begin_block("paragraph", ""); break;
      case CMARK_NODE_TEXT: b.text(literal); break;
      case CMARK_NODE_SOFTBREAK:
      case CMARK_NODE_LINEBREAK: b.text(" "); break;
      case CMARK_NODE_CODE:
        b.push({"code", "true"});
        b.text(literal);
        b.pop("code");
        break;
      case CMARK_NODE_EMPH: b.span(enter, {"italic", "true"}); break;
      case CMARK_NODE_STRONG: b.span(enter, {"bold", "true"}); break;
      case CMARK_NODE_LINK: {
        const char* url = cmark_node_get_url(n);
        const std::string href = url ? url : "";
        if (good_href(href)) b.span(enter, {"link", href});
        break;
      }
      case CMARK_NODE_HTML_INLINE:
        // to_markdown writes underline and strike as these; any other HTML stays text.
        if (literal == "<u>" || literal == "<ins>") {
          b.push({"underline", "true"});
        } else if (literal == "</u>" || literal == "</ins>") {
          b.pop("underline");
        } else if (literal == "<s>" || literal == "<del>" || literal == "<strike>") {
          b.push({"strike", "true"});
        } else if (literal == "</s>" || literal == "</del>" || literal == "</strike>") {
          b.pop("strike");
        } else {
          b.text(literal);
        }
        break;
      default: break;  // the document, list items, images (their alt text is their children)
    }
  }
  return b.finish();
}

}  // namespace tandem::render
