#include "render/render.h"

#include <algorithm>
#include <map>

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

// ---- making a document equal to another ------------------------------------------------------

namespace tandem::render {
namespace {

using crdt::Status;

struct LineTable {
  std::vector<std::string_view> line;
  std::vector<size_t> byte;   // where each line begins
  std::vector<uint32_t> cp;   // ... in code points
  uint32_t total_cp = 0;
};

LineTable lines_in(std::string_view t) {
  LineTable out;
  size_t b = 0;
  uint32_t cp = 0;
  for (;;) {
    const size_t e = t.find('\n', b);
    const std::string_view l = t.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
    out.line.push_back(l);
    out.byte.push_back(b);
    out.cp.push_back(cp);
    cp += static_cast<uint32_t>(crdt::utf8::count_code_points(l));
    if (e == std::string_view::npos) break;
    ++cp;
    b = e + 1;
  }
  out.total_cp = cp;
  return out;
}

struct Hunk {
  size_t a1, a2, b1, b2;  // lines [a1, a2) of the old text became [b1, b2) of the new
};

// Myers' O((N+M)D) diff of two line lists; past `max_d` differences, one hunk over everything
// between the common first and last lines (a worse diff, never a wrong one).
std::vector<Hunk> diff_lines(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b) {
  size_t pre = 0;
  while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ++pre;
  size_t suf = 0;
  while (suf < a.size() - pre && suf < b.size() - pre && a[a.size() - 1 - suf] == b[b.size() - 1 - suf]) ++suf;
  const long n = static_cast<long>(a.size() - pre - suf), m = static_cast<long>(b.size() - pre - suf);
  if (n == 0 && m == 0) return {};
  auto A = [&](long i) { return a[pre + static_cast<size_t>(i)]; };
  auto B = [&](long j) { return b[pre + static_cast<size_t>(j)]; };
  constexpr long kMaxD = 1000;
  const long max_d = std::min(n + m, kMaxD);
  std::vector<long> v(static_cast<size_t>(2 * max_d + 3), 0);
  const long off = max_d + 1;
  std::vector<std::vector<long>> trace;
  long found = -1;
  for (long d = 0; d <= max_d && found < 0; ++d) {
    trace.emplace_back(v.begin() + (off - d - 1), v.begin() + (off + d + 2));
    for (long k = -d; k <= d; k += 2) {
      long x = (k == -d || (k != d && v[static_cast<size_t>(off + k - 1)] < v[static_cast<size_t>(off + k + 1)]))
                   ? v[static_cast<size_t>(off + k + 1)]
                   : v[static_cast<size_t>(off + k - 1)] + 1;
      long y = x - k;
      while (x < n && y < m && A(x) == B(y)) {
        ++x;
        ++y;
      }
      v[static_cast<size_t>(off + k)] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
  }
  if (found < 0) return {{pre, pre + static_cast<size_t>(n), pre, pre + static_cast<size_t>(m)}};
  // Back from (n, m): the matched diagonals, last first.
  std::vector<std::pair<long, long>> snakes;  // (x, y) of each matched line
  long x = n, y = m;
  for (long d = found; d > 0; --d) {
    const std::vector<long>& pv = trace[static_cast<size_t>(d)];  // v before step d: index k + d + 1
    auto at = [&](long k) { return pv[static_cast<size_t>(k + d + 1)]; };
    const long k = x - y;
    const bool down = k == -d || (k != d && at(k - 1) < at(k + 1));
    const long pk = down ? k + 1 : k - 1;
    const long px = at(pk), py = px - pk;
    const long sx = down ? px : px + 1;  // where the snake of step d began
    while (x > sx && y > sx - k) {
      snakes.emplace_back(--x, --y);
    }
    x = px;
    y = py;
  }
  while (x > 0 && y > 0) snakes.emplace_back(--x, --y);
  std::reverse(snakes.begin(), snakes.end());
  std::vector<Hunk> out;
  long ia = 0, ib = 0;
  auto emit = [&](long ea, long eb) {
    if (ea > ia || eb > ib) {
      out.push_back({pre + static_cast<size_t>(ia), pre + static_cast<size_t>(ea), pre + static_cast<size_t>(ib), pre + static_cast<size_t>(eb)});
    }
  };
  for (const auto& [sx, sy] : snakes) {
    emit(sx, sy);
    ia = sx + 1;
    ib = sy + 1;
  }
  emit(n, m);
  return out;
}

bool continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Replaces old[from, to) (bytes of the old text, at code point `at`) by `next`, touching only the
// middle that differs.
Status replace_middle(crdt::Doc& doc, uint32_t at, std::string_view old, std::string_view next) {
  size_t p = 0;
  while (p < old.size() && p < next.size() && old[p] == next[p]) ++p;
  while (p > 0 && ((p < old.size() && continuation(old[p])) || (p < next.size() && continuation(next[p])))) --p;
  size_t s = 0;
  while (s < old.size() - p && s < next.size() - p && old[old.size() - 1 - s] == next[next.size() - 1 - s]) ++s;
  while (s > 0 && ((old.size() - s < old.size() && continuation(old[old.size() - s])) ||
                   (next.size() - s < next.size() && continuation(next[next.size() - s])))) {
    --s;
  }
  const uint32_t pos = at + static_cast<uint32_t>(crdt::utf8::count_code_points(old.substr(0, p)));
  const std::string_view gone = old.substr(p, old.size() - p - s);
  const std::string_view put = next.substr(p, next.size() - p - s);
  if (!gone.empty()) TANDEM_RETURN_IF_ERROR(doc.remove(pos, static_cast<uint32_t>(crdt::utf8::count_code_points(gone))));
  if (!put.empty()) TANDEM_RETURN_IF_ERROR(doc.insert(pos, put));
  return Status::OK();
}

std::string joined(const std::vector<std::string_view>& lines, size_t from, size_t to, bool newline_after) {
  std::string s;
  for (size_t i = from; i < to; ++i) {
    s.append(lines[i]);
    if (newline_after || i + 1 < to) s += '\n';
  }
  return s;
}

Status make_text_equal(crdt::Doc& doc, std::string_view want) {
  const std::string have = doc.text();
  if (have == want) return Status::OK();
  const LineTable a = lines_in(have), b = lines_in(want);
  const std::vector<Hunk> hunks = diff_lines(a.line, b.line);
  const size_t na = a.line.size();
  for (auto h = hunks.rbegin(); h != hunks.rend(); ++h) {
    if (h->a2 < na) {
      // Whole lines, each with its `\n`.
      const std::string_view old = std::string_view(have).substr(a.byte[h->a1], a.byte[h->a2] - a.byte[h->a1]);
      TANDEM_RETURN_IF_ERROR(replace_middle(doc, a.cp[h->a1], old, joined(b.line, h->b1, h->b2, true)));
    } else if (h->a1 > 0) {
      // To the end: the `\n` before the first line instead of one after the last (a1 may be na:
      // lines added at the end, after the last `\n`-less line).
      const size_t from = h->a1 < na ? a.byte[h->a1] - 1 : have.size();
      const uint32_t at = h->a1 < na ? a.cp[h->a1] - 1 : a.total_cp;
      std::string next(1, '\n');
      next.append(joined(b.line, h->b1, h->b2, false));
      TANDEM_RETURN_IF_ERROR(replace_middle(doc, at, std::string_view(have).substr(from),
                                            h->b2 > h->b1 ? std::string_view(next) : std::string_view()));
    } else {
      TANDEM_RETURN_IF_ERROR(replace_middle(doc, 0, have, want));
    }
  }
  return Status::OK();
}

// The value of each mark (a comment: its id, keyed by id) in a span's list.
using MarkMap = std::map<std::string, std::string>;
MarkMap mark_map(const std::vector<Mark>& marks) {
  MarkMap out;
  for (const Mark& m : marks) out[m.name == "comment" ? "comment\n" + m.value : m.name] = m.value;
  return out;
}

struct Cursor {
  const std::vector<crdt::TextSpan>& spans;
  size_t i = 0;
  MarkMap at(uint32_t pos) {
    while (i < spans.size() && spans[i].to <= pos) ++i;
    return i < spans.size() && spans[i].from <= pos ? mark_map(spans[i].marks) : MarkMap{};
  }
};

Status make_marks_equal(crdt::Doc& doc, const RichText& want) {
  const std::vector<crdt::TextSpan> have = doc.spans();
  std::vector<uint32_t> cuts{0, doc.length()};
  for (const auto& s : have) cuts.insert(cuts.end(), {s.from, s.to});
  for (const auto& s : want.spans) cuts.insert(cuts.end(), {s.from, s.to});
  std::vector<bool> newline;  // per code point: a block boundary, whose marks nobody sees
  for (size_t b = 0; b < want.text.size(); b += crdt::utf8::seq_len(static_cast<unsigned char>(want.text[b]))) {
    newline.push_back(want.text[b] == '\n');
    if (want.text[b] == '\n') cuts.insert(cuts.end(), {static_cast<uint32_t>(newline.size() - 1), static_cast<uint32_t>(newline.size())});
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  struct Run {
    uint32_t from, to;
    bool set;
    std::string value;
  };
  std::map<std::string, Run> runs;
  auto flush = [&](const std::string& key) -> Status {
    auto r = runs.find(key);
    if (r == runs.end()) return Status::OK();
    const bool comment = key.rfind("comment\n", 0) == 0;
    const std::string name = comment ? "comment" : key;
    const Run run = r->second;
    runs.erase(r);
    return run.set ? doc.mark(run.from, run.to - run.from, name, run.value)
                   : doc.unmark(run.from, run.to - run.from, name, comment ? run.value : std::string());
  };
  auto flush_all = [&]() -> Status {
    while (!runs.empty()) TANDEM_RETURN_IF_ERROR(flush(runs.begin()->first));
    return Status::OK();
  };
  Cursor hc{have}, wc{want.spans};
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    const uint32_t from = cuts[c], to = cuts[c + 1];
    if (from >= to || from >= newline.size()) continue;
    if (newline[from]) {
      TANDEM_RETURN_IF_ERROR(flush_all());
      continue;
    }
    const MarkMap h = hc.at(from), w = wc.at(from);
    std::vector<std::string> keys;
    for (const auto& [k, v] : h) keys.push_back(k);
    for (const auto& [k, v] : w) keys.push_back(k);
    for (const auto& [k, r] : runs) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const std::string& k : keys) {
      auto hv = h.find(k), wv = w.find(k);
      const bool same = (hv == h.end()) == (wv == w.end()) && (hv == h.end() || hv->second == wv->second);
      if (same) {
        TANDEM_RETURN_IF_ERROR(flush(k));
        continue;
      }
      const bool set = wv != w.end();
      const std::string value = set ? wv->second : hv->second;
      auto r = runs.find(k);
      if (r != runs.end() && r->second.to == from && r->second.set == set && r->second.value == value) {
        r->second.to = to;
        continue;
      }
      TANDEM_RETURN_IF_ERROR(flush(k));
      runs[k] = Run{from, to, set, value};
    }
  }
  return flush_all();
}

}  // namespace

Status make_equal(crdt::Doc& doc, const RichText& want) {
  TANDEM_RETURN_IF_ERROR(make_text_equal(doc, want.text));
  const std::vector<Block> have = doc.blocks();
  if (have.size() != want.blocks.size()) {
    return Status::InvalidArgument("the wanted document has " + std::to_string(want.blocks.size()) + " blocks for " +
                                   std::to_string(have.size()) + " lines");
  }
  for (size_t i = 0; i < have.size(); ++i) {
    if (have[i].type != want.blocks[i].type || have[i].value != want.blocks[i].value) {
      TANDEM_RETURN_IF_ERROR(doc.set_block(have[i].at, want.blocks[i].type, want.blocks[i].value));
    }
  }
  return make_marks_equal(doc, want);
}

}  // namespace tandem::render
