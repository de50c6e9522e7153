#include "crdt/format.h"

#include <algorithm>

#include "crdt/utf8.h"

namespace tandem::crdt {

namespace {

bool one_of(std::string_view s, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

bool all_in(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

// An href must not run script when a page shows it: only these schemes, or none (a relative
// URL). Browsers ignore tabs and newlines inside a scheme and leading spaces, so those are
// refused outright rather than reasoned about.
Status check_href(std::string_view href) {
  if (href.empty() || href.size() > kMaxHrefBytes) {
    return Status::InvalidArgument("link href must be 1 to " + std::to_string(kMaxHrefBytes) + " bytes");
  }
  TANDEM_RETURN_IF_ERROR(utf8::inspect(href).status().WithContext("link href"));
  for (unsigned char c : href) {
    if (c < 0x20 || c == 0x7F) return Status::InvalidArgument("link href holds a control character");
  }
  if (href.front() == ' ') return Status::InvalidArgument("link href starts with a space");
  const size_t colon = href.find(':');
  const size_t stop = href.find_first_of("/?#");
  if (colon == std::string_view::npos || (stop != std::string_view::npos && stop < colon)) return Status::OK();
  std::string scheme(href.substr(0, colon));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!one_of(scheme, {"http", "https", "mailto", "tel", "ftp"})) {
    return Status::InvalidArgument("link href scheme '" + scheme + "' is not allowed (http, https, mailto, tel, ftp)");
  }
  return Status::OK();
}

}  // namespace

bool MarkGrows(std::string_view name) { return name != "link" && name != "comment"; }

Status ValidateFormat(OpKind kind, uint32_t pos, const Format& f) {
  if (kind == OpKind::kMark) {
    if (f.end <= pos) return Status::InvalidArgument("mark covers no characters");
    if (one_of(f.name, {"bold", "italic", "underline", "strike", "code"})) {
      if (f.remove ? !f.value.empty() : f.value != "true") {
        return Status::InvalidArgument("mark '" + f.name + "' takes the value \"true\" (nothing to remove it)");
      }
      return Status::OK();
    }
    if (f.name == "link") {
      if (f.remove) {
        return f.value.empty() ? Status::OK() : Status::InvalidArgument("removing a link takes no value");
      }
      return check_href(f.value);
    }
    if (f.name == "comment") {
      if (f.value.empty() || f.value.size() > kMaxCommentIdBytes || !all_in(f.value, "_-.:")) {
        return Status::InvalidArgument("comment id must be 1 to " + std::to_string(kMaxCommentIdBytes) +
                                       " bytes of [A-Za-z0-9_.:-]");
      }
      return Status::OK();
    }
    return Status::InvalidArgument("unknown mark '" + f.name.substr(0, 64) +
                                   "' (bold, italic, underline, strike, code, link, comment)");
  }
  if (kind != OpKind::kBlock) return Status::InvalidArgument("not a format event");
  if (f.end != 0 || f.remove) return Status::InvalidArgument("a block event has no end and removes nothing");
  const std::string& v = f.value;
  if (f.name == "paragraph" || f.name == "quote") {
    if (!v.empty()) return Status::InvalidArgument("block '" + f.name + "' takes no attribute");
  } else if (f.name == "heading") {
    if (v.size() != 1 || v[0] < '1' || v[0] > '6') return Status::InvalidArgument("heading level must be 1 to 6");
  } else if (f.name == "bullet" || f.name == "ordered") {
    if (v.size() != 1 || v[0] < '0' || v[0] > '7') return Status::InvalidArgument("list depth must be 0 to 7");
  } else if (f.name == "code") {
    if (v.size() > kMaxLanguageBytes || !all_in(v, "+#_.-")) {
      return Status::InvalidArgument("code block language must be at most " + std::to_string(kMaxLanguageBytes) +
                                     " bytes of [A-Za-z0-9+#_.-]");
    }
  } else {
    return Status::InvalidArgument("unknown block type '" + f.name.substr(0, 64) +
                                   "' (paragraph, heading, bullet, ordered, quote, code)");
  }
  return Status::OK();
}

}  // namespace tandem::crdt
