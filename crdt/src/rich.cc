// Doc's rich text: local mark and block events, and reading marks and blocks (format.h).
//
// A format event is logged with positions, like every event. Reading ties it to characters: the
// whole-history Sequence (merge.h) replays the log once, lazily, and reports for each format event
// which characters sat at its positions in the version it was made in. A read then walks the
// sequence in document order, deleted characters included, turning each event's anchors into
// positions of today's text, and sweeps them to find every stretch's winning marks.

#include <algorithm>
#include <map>

#include "crdt/utf8.h"
#include "doc_impl.h"

namespace tandem::crdt {

namespace {

using internal::Sequence;

RichState& rich_of(const Doc::Impl& d) {
  if (d.rich && d.rich->seq.end() > d.log.size()) d.rich.reset();
  if (!d.rich) d.rich = std::make_unique<RichState>(d.log);
  const Status st = d.rich->seq.catch_up(&d.rich->found);
  // Every event was checked when it was merged; a failure here is a bug, not bad input.
  (void)st;
  return *d.rich;
}

uint32_t lamport_of(const OpLog& log, std::vector<uint32_t>* lam, LV lv) {
  const size_t gi = log.graph_index(lv);
  while (lam->size() <= gi) {
    const auto& g = log.graph()[lam->size()];
    uint32_t l = 0;
    for (LV p : g.parents) {
      const size_t pi = log.graph_index(p);
      l = std::max(l, (*lam)[pi] + (p - log.graph()[pi].start) + 1);
    }
    lam->push_back(l);
  }
  return (*lam)[gi] + (lv - log.graph()[gi].start);
}

// A format event as reads see it.
struct Event {
  const Format* f;
  bool mark;
  uint32_t lamport;
  std::string_view agent;
  uint32_t seq;
  std::string key;  // marks: the name (a comment: name and id); blocks: unused
};

// Whether a wins over b (the later in the order every replica computes).
bool later(const Event& a, const Event& b) {
  if (a.lamport != b.lamport) return a.lamport > b.lamport;
  if (a.agent != b.agent) return a.agent > b.agent;
  return a.seq > b.seq;
}

// Where an anchor is: just before or just after character lv.
struct Anchor {
  LV lv;
  bool after;
  uint32_t event;
  bool start;  // a mark's start (else its end, or a block's boundary)
};

struct Resolved {
  std::vector<Event> events;
  // (position in today's text, event, start?) for marks; (position just after the boundary, event)
  // for blocks, only where the boundary still shows.
  std::vector<std::tuple<uint32_t, uint32_t, bool>> toggles;
  std::vector<std::pair<uint32_t, uint32_t>> block_at;
};

Resolved resolve(const Doc::Impl& d) {
  Resolved out;
  if (d.log.num_formats() == 0) return out;
  RichState& rs = rich_of(d);
  const OpLog& log = d.log;
  const uint32_t len = d.rope.length();
  std::vector<Anchor> anchors;
  for (const Sequence::Found& fd : rs.found) {
    const internal::OpSpan& op = log.ops()[log.op_index(fd.lv)];
    const Format& f = log.format_of(op);
    const auto id = log.id_of(fd.lv);
    Event e{&f, f.end > 0, lamport_of(log, &rs.lamport, fd.lv), log.agent_name(id.agent), id.seq, {}};
    const auto i = static_cast<uint32_t>(out.events.size());
    if (e.mark) {
      e.key = f.name == "comment" ? f.name + '\0' + f.value : f.name;
      anchors.push_back({fd.first, false, i, true});
      if (!MarkGrows(f.name)) {
        anchors.push_back({fd.last, true, i, false});
      } else if (fd.next == kNoLV) {
        out.toggles.emplace_back(len, i, false);  // the end of the document, wherever it is now
      } else {
        anchors.push_back({fd.next, false, i, false});
      }
    } else if (fd.before == kNoLV) {
      out.block_at.emplace_back(0, i);
    } else {
      anchors.push_back({fd.before, true, i, false});
    }
    out.events.push_back(std::move(e));
  }
  std::sort(anchors.begin(), anchors.end(), [](const Anchor& a, const Anchor& b) { return a.lv < b.lv; });
  uint32_t vis = 0;
  rs.seq.for_each([&](LV lv, uint32_t n, bool del) {
    auto it = std::lower_bound(anchors.begin(), anchors.end(), lv, [](const Anchor& a, LV x) { return a.lv < x; });
    for (; it != anchors.end() && it->lv < lv + n; ++it) {
      const uint32_t before = del ? vis : vis + (it->lv - lv);
      const Event& e = out.events[it->event];
      if (e.mark) {
        out.toggles.emplace_back(it->after && !del ? before + 1 : before, it->event, it->start);
      } else if (!del && d.rope.substr(before, 1) == "\n") {
        out.block_at.emplace_back(before + 1, it->event);
      }
    }
    if (!del) vis += n;
  });
  return out;
}

}  // namespace

uint64_t Doc::format_events() const { return impl_->log.num_formats(); }

std::vector<TextSpan> Doc::spans() const {
  const Impl& d = *impl_;
  const uint32_t len = d.rope.length();
  std::vector<TextSpan> out;
  if (len == 0) return out;
  Resolved r = resolve(d);
  // By position, starts first: a mark whose characters are all deleted starts and ends at one.
  std::sort(r.toggles.begin(), r.toggles.end(), [](const auto& a, const auto& b) {
    return std::get<0>(a) != std::get<0>(b) ? std::get<0>(a) < std::get<0>(b) : std::get<2>(a) > std::get<2>(b);
  });
  // Per key, the mark events whose anchors enclose the sweep's position, and the winners' marks
  // (keys sort as marks do: by name, then a comment's id). Only the keys toggled at a position
  // are decided again there.
  std::map<std::string, std::vector<uint32_t>> active;
  std::map<std::string, Mark> winners;
  std::vector<std::string_view> touched;
  std::vector<Mark> current;
  uint32_t from = 0;
  auto emit = [&](uint32_t to) {
    if (to <= from) return;
    if (!out.empty() && out.back().marks == current) {
      out.back().to = to;
    } else {
      out.push_back({from, to, current});
    }
    from = to;
  };
  size_t i = 0;
  while (i < r.toggles.size()) {
    const uint32_t at = std::get<0>(r.toggles[i]);
    emit(std::min(at, len));
    touched.clear();
    for (; i < r.toggles.size() && std::get<0>(r.toggles[i]) == at; ++i) {
      const auto [pos, ev, start] = r.toggles[i];
      const std::string& key = r.events[ev].key;
      touched.push_back(key);
      auto& list = active[key];
      if (start) {
        list.push_back(ev);
      } else {
        list.erase(std::find(list.begin(), list.end(), ev));
        if (list.empty()) active.erase(key);
      }
    }
    bool changed = false;
    for (std::string_view key : touched) {
      auto a = active.find(std::string(key));
      const Event* win = nullptr;
      if (a != active.end()) {
        for (uint32_t ev : a->second) {
          if (!win || later(r.events[ev], *win)) win = &r.events[ev];
        }
      }
      auto w = winners.find(std::string(key));
      if (!win || win->f->remove) {
        if (w != winners.end()) {
          winners.erase(w);
          changed = true;
        }
      } else if (w == winners.end() || w->second.value != win->f->value) {
        winners[std::string(key)] = Mark{win->f->name, win->f->value};
        changed = true;
      }
    }
    if (changed) {
      current.clear();
      for (const auto& [key, m] : winners) current.push_back(m);
    }
  }
  emit(len);
  return out;
}

std::vector<Block> Doc::blocks() const {
  const Impl& d = *impl_;
  Resolved r = resolve(d);
  std::sort(r.block_at.begin(), r.block_at.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : later(r.events[b.second], r.events[a.second]);
  });
  std::vector<Block> out{Block{}};
  const std::string text = d.rope.text();
  uint32_t cp = 0;
  for (size_t b = 0; b < text.size(); b += utf8::seq_len(static_cast<unsigned char>(text[b]))) {
    ++cp;
    if (text[b] == '\n') out.push_back({cp, "paragraph", {}});
  }
  // block_at is sorted by position, the winner last at each.
  size_t k = 0;
  for (const auto& [at, ev] : r.block_at) {
    while (k < out.size() && out[k].at < at) ++k;
    if (k < out.size() && out[k].at == at) {
      out[k].type = r.events[ev].f->name;
      out[k].value = r.events[ev].f->value;
    }
  }
  return out;
}

namespace {

Status append_format(Doc::Impl& d, OpKind kind, uint32_t pos, Format f) {
  TANDEM_RETURN_IF_ERROR(ValidateFormat(kind, pos, f));
  const uint32_t len = d.rope.length();
  const uint32_t last = kind == OpKind::kMark ? f.end : pos;
  if (last > len) {
    return Status::OutOfRange("format up to " + num(last) + " is past the end of the document (length " + num(len) + ")");
  }
  const bool new_comment = f.name == "comment" && !d.comment_ids.count(f.value);
  if (new_comment && d.comment_ids.size() >= d.limits.max_comments) {
    return Status::ResourceExhausted("document would have more than " + num(d.limits.max_comments) + " comments");
  }
  const uint32_t agent = d.local_agent();
  const uint32_t seq = d.log.next_seq(agent);
  if (d.log.size() + 1 > internal::kMaxEvents || seq == UINT32_MAX) {
    return Status::ResourceExhausted("document has too many operations");
  }
  if (new_comment) d.comment_ids.insert(f.value);
  const LV lv = d.log.size();
  d.log.append_format(agent, seq, d.frontier, pos, std::move(f), len);
  d.frontier.assign(1, lv);
  d.version_stale = true;
  return Status::OK();
}

}  // namespace

Status Doc::mark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value) {
  if (uint64_t{pos} + len > UINT32_MAX) return Status::OutOfRange("mark range overflows");
  return append_format(*impl_, OpKind::kMark, pos, Format{pos + len, std::string(name), std::string(value), false});
}

Status Doc::unmark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value) {
  if (uint64_t{pos} + len > UINT32_MAX) return Status::OutOfRange("mark range overflows");
  return append_format(*impl_, OpKind::kMark, pos, Format{pos + len, std::string(name), std::string(value), true});
}

Status Doc::set_block(uint32_t pos, std::string_view type, std::string_view value) {
  const Impl& d = *impl_;
  if (pos > d.rope.length()) {
    return Status::OutOfRange("block at " + num(pos) + " is past the end of the document (length " +
                              num(d.rope.length()) + ")");
  }
  // The block holding pos begins just after the last `\n` before it.
  uint32_t start = pos;
  while (start > 0) {
    const uint32_t from = start > 256 ? start - 256 : 0;
    const std::string piece = d.rope.substr(from, start - from);
    const size_t nl = piece.rfind('\n');
    if (nl != std::string::npos) {
      start = from + static_cast<uint32_t>(utf8::count_code_points(std::string_view(piece).substr(0, nl))) + 1;
      break;
    }
    start = from;
  }
  return append_format(*impl_, OpKind::kBlock, start, Format{0, std::string(type), std::string(value), false});
}

}  // namespace tandem::crdt
