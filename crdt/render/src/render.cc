#include "render/render.h"

#include <algorithm>

#include "crdt/utf8.h"

namespace tandem::render {

using crdt::Block;
using crdt::Mark;

namespace {

// Outer to inner: a link may hold emphasis and code; code holds nothing (Markdown reads no syntax
// inside a code span).
int rank(const Mark& m) {
  static const char* const kOrder[] = {"comment", "link", "bold", "italic", "underline", "strike", "code"};
  for (int i = 0; i < 7; ++i) {
    if (m.name == kOrder[i]) return i;
  }
  return 7;
}

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_punct(char c) { return c > 32 && c < 127 && !is_alnum(c); }

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// A stretch of one block's text with its marks (sorted outer to inner, those the format shows).
struct Piece {
  std::string text;
  std::vector<Mark> marks;
};

// The blocks with their text and pieces.
struct Line {
  const Block* block;
  std::string text;
  std::vector<Piece> pieces;
};

std::vector<Line> lines_of(const RichText& doc, bool markdown) {
  // Byte offset of every block's start; code points counted once through the text.
  std::vector<Line> out;
  std::vector<size_t> byte_of_cp;
  byte_of_cp.reserve(doc.text.size() + 1);
  for (size_t b = 0; b < doc.text.size(); b += crdt::utf8::seq_len(static_cast<unsigned char>(doc.text[b]))) {
    byte_of_cp.push_back(b);
  }
  const auto ncp = static_cast<uint32_t>(byte_of_cp.size());
  byte_of_cp.push_back(doc.text.size());
  size_t s = 0;
  for (size_t i = 0; i < doc.blocks.size(); ++i) {
    const uint32_t from = std::min(doc.blocks[i].at, ncp);
    const uint32_t to = i + 1 < doc.blocks.size() ? std::min(doc.blocks[i + 1].at - 1, ncp) : ncp;  // without its `\n`
    Line line{&doc.blocks[i], doc.text.substr(byte_of_cp[from], byte_of_cp[to] - byte_of_cp[from]), {}};
    while (s < doc.spans.size() && doc.spans[s].to <= from) ++s;
    for (size_t k = s; k < doc.spans.size() && doc.spans[k].from < to; ++k) {
      const uint32_t a = std::max(from, doc.spans[k].from), b = std::min(to, doc.spans[k].to);
      if (a >= b) continue;
      Piece p{doc.text.substr(byte_of_cp[a], byte_of_cp[b] - byte_of_cp[a]), {}};
      for (const Mark& m : doc.spans[k].marks) {
        if (markdown && m.name == "comment") continue;
        p.marks.push_back(m);
      }
      std::stable_sort(p.marks.begin(), p.marks.end(), [](const Mark& x, const Mark& y) { return rank(x) < rank(y); });
      if (!line.pieces.empty() && line.pieces.back().marks == p.marks) {
        line.pieces.back().text += p.text;
      } else {
        line.pieces.push_back(std::move(p));
      }
    }
    out.push_back(std::move(line));
  }
  return out;
}

// ---- HTML -------------------------------------------------------------------------------------

std::string html_open(const Mark& m) {
  if (m.name == "bold") return "<strong>";
  if (m.name == "italic") return "<em>";
  if (m.name == "underline") return "<u>";
  if (m.name == "strike") return "<s>";
  if (m.name == "code") return "<code>";
  if (m.name == "link") return "<a href=\"" + html_escape(m.value) + "\" rel=\"noopener noreferrer nofollow\">";
  return "<span data-comment=\"" + html_escape(m.value) + "\">";
}

std::string html_close(const Mark& m) {
  if (m.name == "bold") return "</strong>";
  if (m.name == "italic") return "</em>";
  if (m.name == "underline") return "</u>";
  if (m.name == "strike") return "</s>";
  if (m.name == "code") return "</code>";
  if (m.name == "link") return "</a>";
  return "</span>";
}

// The inline content of a line: marks opened and closed as a stack, outer ones kept open across
// pieces that share them.
std::string html_inline(const Line& line) {
  std::string out;
  std::vector<Mark> open;
  for (const Piece& p : line.pieces) {
    size_t keep = 0;
    while (keep < open.size() && keep < p.marks.size() && open[keep] == p.marks[keep]) ++keep;
    while (open.size() > keep) {
      out += html_close(open.back());
      open.pop_back();
    }
    for (size_t k = keep; k < p.marks.size(); ++k) {
      out += html_open(p.marks[k]);
      open.push_back(p.marks[k]);
    }
    out += html_escape(p.text);
  }
  while (!open.empty()) {
    out += html_close(open.back());
    open.pop_back();
  }
  return out;
}

// ---- Markdown ---------------------------------------------------------------------------------

// Text outside code spans, with what Markdown would read as syntax escaped. `line_start`: the
// text begins its line (block markers, list numbers, indentation matter there).
std::string md_escape(std::string_view s, bool line_start) {
  std::string out;
  size_t i = 0;
  if (line_start) {
    // Leading spaces would make an indented code block or be dropped.
    while (i < s.size() && s[i] == ' ') {
      out += "&#32;";
      ++i;
    }
    if (i < s.size() && (s[i] == '#' || s[i] == '+' || s[i] == '-' || s[i] == '=' || s[i] == '>')) {
      out += '\\';
    } else {
      size_t d = i;
      while (d < s.size() && d - i < 9 && s[d] >= '0' && s[d] <= '9') ++d;
      if (d > i && d < s.size() && (s[d] == '.' || s[d] == ')')) {
        out.append(s.substr(i, d - i));
        out += '\\';
        i = d;
      }
    }
  }
  for (; i < s.size(); ++i) {
    const char c = s[i];
    const char prev = i > 0 ? s[i - 1] : ' ', next = i + 1 < s.size() ? s[i + 1] : ' ';
    bool esc = false;
    switch (c) {
      case '\\': esc = is_punct(next) || i + 1 == s.size(); break;
      case '*':
      case '`':
      case '[':
      case ']': esc = true; break;
      case '_': esc = !(is_alnum(prev) && is_alnum(next)); break;
      case '<': esc = is_alnum(next) || next == '/' || next == '!' || next == '?'; break;
      case '&': esc = is_alnum(next) || next == '#'; break;
      case '!': esc = next == '['; break;
      default: break;
    }
    if (esc) out += '\\';
    out += c;
  }
  return out;
}

std::string md_open(const Mark& m) {
  if (m.name == "bold") return "**";
  if (m.name == "italic") return "*";
  if (m.name == "underline") return "<u>";
  if (m.name == "strike") return "<s>";
  if (m.name == "link") return "[";
  return "";  // code: written with its content
}

std::string md_close(const Mark& m) {
  if (m.name == "bold") return "**";
  if (m.name == "italic") return "*";
  if (m.name == "underline") return "</u>";
  if (m.name == "strike") return "</s>";
  if (m.name == "link") {
    const bool angle = m.value.find_first_of(" ()<>") != std::string::npos;
    std::string href;
    for (char c : m.value) {
      if (angle && (c == '<' || c == '>')) href += '\\';
      href += c;
    }
    return angle ? "](<" + href + ">)" : "](" + href + ")";
  }
  return "";
}

// A code span holding `text` exactly: a fence longer than any run of backticks inside, and a
// space of padding on each side when the text begins or ends with a backtick or a space.
std::string md_code(std::string_view text) {
  size_t longest = 0, run = 0;
  for (char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(longest + 1, '`');
  const bool pad = !text.empty() && (text.front() == '`' || text.back() == '`' ||
                                     (text.front() == ' ' && text.back() == ' ' && text.find_first_not_of(' ') != std::string_view::npos));
  return fence + (pad ? " " : "") + std::string(text) + (pad ? " " : "") + fence;
}

// Emphasis delimiters must touch text, not whitespace: whitespace at the edges of a marked stretch
// goes outside its delimiters (the space is then unmarked, which nobody sees).
std::string md_inline(const Line& line) {
  std::string out;
  std::vector<Mark> open;
  std::string held;  // whitespace that ended the last piece, written after any closing delimiters
  bool at_start = true;
  auto close_to = [&](size_t keep) {
    while (open.size() > keep) {
      out += md_close(open.back());
      open.pop_back();
    }
  };
  for (size_t i = 0; i < line.pieces.size(); ++i) {
    const Piece& p = line.pieces[i];
    std::vector<Mark> want;
    for (const Mark& m : p.marks) {
      if (m.name != "code") want.push_back(m);
    }
    const bool code = want.size() != p.marks.size();
    const size_t first = p.text.find_first_not_of(" \t");
    size_t keep = 0;
    while (keep < open.size() && keep < want.size() && open[keep] == want[keep]) ++keep;
    if (first == std::string::npos && !code) {
      // Only whitespace: no delimiter opens around it.
      close_to(keep);
      out += held;
      held = p.text;
      continue;
    }
    close_to(keep);
    out += held;
    held.clear();
    std::string_view body = p.text;
    if (keep < want.size() && !code) {
      out += md_escape(body.substr(0, first), at_start && out.empty());
      body.remove_prefix(first);
    }
    for (size_t k = keep; k < want.size(); ++k) {
      out += md_open(want[k]);
      open.push_back(want[k]);
    }
    if (code) {
      out += md_code(body);
    } else {
      const size_t last = body.find_last_not_of(" \t");
      const bool closing_next = i + 1 == line.pieces.size() || !(line.pieces[i + 1].marks == p.marks);
      const size_t cut = closing_next && !open.empty() ? last + 1 : body.size();
      out += md_escape(body.substr(0, cut), at_start && out.empty());
      held = std::string(body.substr(cut));
    }
    at_start = false;
  }
  close_to(0);
  out += held;
  return out;
}

}  // namespace

RichText read(const crdt::Doc& doc) { return {doc.text(), doc.spans(), doc.blocks()}; }

std::string to_html(const RichText& doc) {
  const std::vector<Line> lines = lines_of(doc, false);
  std::string out;
  std::vector<std::string> lists;  // open lists, outermost first, each with an open <li>
  auto close_lists = [&](size_t keep) {
    while (lists.size() > keep) {
      out += "</li></" + lists.back() + ">\n";
      lists.pop_back();
    }
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const Line& l = lines[i];
    const std::string& type = l.block->type;
    if (type == "bullet" || type == "ordered") {
      const std::string tag = type == "bullet" ? "ul" : "ol";
      const size_t depth = static_cast<size_t>(l.block->value[0] - '0');
      close_lists(depth + 1);
      if (lists.size() == depth + 1 && lists.back() != tag) close_lists(depth);
      if (lists.size() == depth + 1) {
        out += "</li>\n<li>";
      } else {
        while (lists.size() < depth + 1) {
          out += "<" + tag + ">\n<li>";
          lists.push_back(tag);
        }
      }
      out += html_inline(l);
      continue;
    }
    close_lists(0);
    if (type == "heading") {
      const std::string n = l.block->value;
      out += "<h" + n + ">" + html_inline(l) + "</h" + n + ">\n";
    } else if (type == "quote") {
      const bool first = i == 0 || lines[i - 1].block->type != "quote";
      const bool last = i + 1 == lines.size() || lines[i + 1].block->type != "quote";
      out += (first ? "<blockquote>\n" : "") + std::string("<p>") + html_inline(l) + "</p>\n" + (last ? "</blockquote>\n" : "");
    } else if (type == "code") {
      const bool first = i == 0 || lines[i - 1].block->type != "code" || lines[i - 1].block->value != l.block->value;
      const bool last = i + 1 == lines.size() || lines[i + 1].block->type != "code" || lines[i + 1].block->value != l.block->value;
      if (first) {
        out += l.block->value.empty() ? "<pre><code>" : "<pre><code class=\"language-" + html_escape(l.block->value) + "\">";
      }
      out += html_escape(l.text) + "\n";
      if (last) out += "</code></pre>\n";
    } else {
      out += "<p>" + html_inline(l) + "</p>\n";
    }
  }
  close_lists(0);
  return out;
}

std::string to_markdown(const RichText& doc) {
  const std::vector<Line> lines = lines_of(doc, true);
  std::string out;
  std::string prev;           // the previous block's kind, for the blank lines between blocks
  std::vector<uint32_t> numbers;  // ordered lists: the next number per depth
  for (size_t i = 0; i < lines.size(); ++i) {
    const Line& l = lines[i];
    const std::string& type = l.block->type;
    if (type == "paragraph" && l.text.empty()) continue;  // no Markdown form
    const bool list = type == "bullet" || type == "ordered";
    if (!out.empty()) out += list && (prev == "bullet" || prev == "ordered") ? "" : "\n";
    if (!list) numbers.clear();
    if (type == "heading") {
      out += std::string(static_cast<size_t>(l.block->value[0] - '0'), '#') + " " + md_inline(l) + "\n";
    } else if (type == "quote") {
      if (prev == "quote") out.insert(out.size() - 1, ">");  // the blank line between two quoted paragraphs
      out += "> " + md_inline(l) + "\n";
    } else if (type == "code") {
      const bool first = prev != "code" || lines[i - 1].block->value != l.block->value;
      const bool last = i + 1 == lines.size() || lines[i + 1].block->type != "code" || lines[i + 1].block->value != l.block->value;
      if (!first) out.pop_back();  // no blank line inside one fenced block
      size_t longest = 2, run = 0;
      for (size_t k = i; k < lines.size() && lines[k].block->type == "code"; ++k) {
        for (char c : lines[k].text) {
          run = c == '`' ? run + 1 : 0;
          longest = std::max(longest, run);
        }
      }
      if (first) out += std::string(longest + 1, '`') + l.block->value + "\n";
      out += l.text + "\n";
      if (last) out += std::string(longest + 1, '`') + "\n";
    } else if (list) {
      const size_t depth = static_cast<size_t>(l.block->value[0] - '0');
      numbers.resize(depth + 1, 1);
      std::string marker = "- ";
      if (type == "ordered") {
        marker = std::to_string(numbers[depth]++) + ". ";
      } else {
        numbers[depth] = 1;
      }
      out += std::string(4 * depth, ' ') + marker + md_inline(l) + "\n";
    } else {
      out += md_inline(l) + "\n";
    }
    prev = type;
  }
  return out;
}

}  // namespace tandem::render
