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

using Event = RichState::Event;

// Whether a wins over b (the later in the order every replica computes).
bool later(const OpLog& log, const Event& a, const Event& b) {
  if (a.lamport != b.lamport) return a.lamport > b.lamport;
  if (a.agent != b.agent) return log.agent_name(a.agent) > log.agent_name(b.agent);
  return a.seq > b.seq;
}

// Marks' keys in the order marks sort (by name, then a comment's id), as small numbers: the
// sweep keeps its state in arrays by key.
uint32_t key_id(RichState& rs, const Format& f) {
  std::string key = f.name == "comment" ? "comment\n" + f.value : f.name;
  auto [it, added] = rs.key_of.try_emplace(std::move(key), static_cast<uint32_t>(rs.keys.size()));
  if (added) rs.keys.push_back(it->first);
  return it->second;
}

// The events' anchors turned into positions of today's text, cached until the log changes: each
// anchor is looked up in the sequence (its position, or where it would be if deleted), so a read
// costs the number of format events, not the length of the history.
const RichState::Read& resolve(const Doc::Impl& d) {
  RichState& rs = rich_of(d);
  const OpLog& log = d.log;
  if (rs.read.at == log.size()) return rs.read;
  for (size_t i = rs.events.size(); i < rs.found.size(); ++i) {
    const Sequence::Found& fd = rs.found[i];
    const internal::OpSpan& op = log.ops()[log.op_index(fd.lv)];
    const Format& f = log.format_of(op);
    const auto id = log.id_of(fd.lv);
    rs.events.push_back({op.content, lamport_of(log, &rs.lamport, fd.lv), id.agent, id.seq, f.end > 0 ? key_id(rs, f) : 0,
                         f.end > 0});
  }
  RichState::Read& out = rs.read;
  out.toggles.clear();
  out.block_at.clear();
  out.range.assign(rs.found.size(), {1, 0});  // none
  const uint32_t len = d.rope.length();
  for (size_t i = 0; i < rs.found.size(); ++i) {
    const Sequence::Found& fd = rs.found[i];
    const Event& e = rs.events[i];
    const auto ev = static_cast<uint32_t>(i);
    if (e.mark) {
      const uint32_t start = rs.seq.where(fd.first).pos;
      uint32_t end = len;  // a growing mark with nothing after it: the end of the document, wherever it is now
      if (!MarkGrows(log.format(e.format).name)) {
        const auto w = rs.seq.where(fd.last);
        end = w.deleted ? w.pos : w.pos + 1;
      } else if (fd.next != kNoLV) {
        end = rs.seq.where(fd.next).pos;
      }
      out.toggles.emplace_back(start, ev, true);
      out.toggles.emplace_back(end, ev, false);
      out.range[i] = {start, end};
    } else if (fd.before == kNoLV) {
      out.block_at.emplace_back(0, ev);
      out.range[i] = {0, 0};
    } else if (const auto w = rs.seq.where(fd.before); !w.deleted && d.rope.substr(w.pos, 1) == "\n") {
      out.block_at.emplace_back(w.pos + 1, ev);
      out.range[i] = {w.pos + 1, w.pos + 1};
    }
  }
  // By position, starts first: a mark whose characters are all deleted starts and ends at one.
  std::sort(out.toggles.begin(), out.toggles.end(), [](const auto& a, const auto& b) {
    return std::get<0>(a) != std::get<0>(b) ? std::get<0>(a) < std::get<0>(b) : std::get<2>(a) > std::get<2>(b);
  });
  std::sort(out.block_at.begin(), out.block_at.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : later(log, rs.events[b.second], rs.events[a.second]);
  });
  out.at = log.size();
  return out;
}

}  // namespace

uint64_t Doc::format_events() const { return impl_->deferred ? impl_->deferred->formats : impl_->log.num_formats(); }

std::vector<std::pair<uint32_t, uint32_t>> Doc::format_ranges(uint64_t first) const {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  if (first >= format_events()) return out;
  const Impl& d = full();
  const RichState::Read& r = resolve(d);
  for (size_t i = first; i < r.range.size(); ++i) {
    const auto [from, to] = r.range[i];
    if (from < to || (from == to && !d.rich->events[i].mark)) out.emplace_back(from, to);
  }
  return out;
}

std::vector<TextSpan> Doc::spans() const {
  const Impl& d = full();
  const uint32_t len = d.rope.length();
  std::vector<TextSpan> out;
  if (len == 0) return out;
  if (d.log.num_formats() == 0) {
    out.push_back({0, len, {}});
    return out;
  }
  const RichState::Read& r = resolve(d);
  const RichState& rs = *d.rich;
  const OpLog& log = d.log;
  // Per key, the mark events whose anchors enclose the sweep's position, and the winner's value
  // (-1: none). Only the keys toggled at a position are decided again there.
  std::vector<std::vector<uint32_t>> active(rs.keys.size());
  std::vector<int64_t> winner(rs.keys.size(), -1);  // the winning event, when it sets the mark
  std::vector<uint32_t> touched;
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
  // The marks in force, sorted by (name, value): keys sort that way, except that a comment's key
  // holds its id where its mark holds the same id as value.
  std::vector<uint32_t> order(rs.keys.size()), rank(rs.keys.size());
  for (uint32_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return rs.keys[a] < rs.keys[b]; });
  for (uint32_t k = 0; k < order.size(); ++k) rank[order[k]] = k;
  std::vector<uint32_t> live;  // the ranks of the keys with a winner, sorted (few at any position)
  size_t i = 0;
  while (i < r.toggles.size()) {
    const uint32_t at = std::get<0>(r.toggles[i]);
    emit(std::min(at, len));
    touched.clear();
    for (; i < r.toggles.size() && std::get<0>(r.toggles[i]) == at; ++i) {
      const auto [pos, ev, start] = r.toggles[i];
      const uint32_t key = rs.events[ev].key;
      touched.push_back(key);
      auto& list = active[key];
      if (start) {
        list.push_back(ev);
      } else {
        list.erase(std::find(list.begin(), list.end(), ev));
      }
    }
    bool changed = false;
    for (uint32_t key : touched) {
      const Event* win = nullptr;
      uint32_t win_ev = 0;
      for (uint32_t ev : active[key]) {
        if (!win || later(log, rs.events[ev], *win)) {
          win = &rs.events[ev];
          win_ev = ev;
        }
      }
      const int64_t now = !win || log.format(win->format).remove ? -1 : static_cast<int64_t>(win_ev);
      const int64_t was = winner[key];
      if (now == was) continue;
      if (now < 0 || was < 0 || log.format(rs.events[static_cast<size_t>(now)].format).value !=
                                     log.format(rs.events[static_cast<size_t>(was)].format).value) {
        changed = true;
      }
      if ((now < 0) != (was < 0)) {
        const auto it = std::lower_bound(live.begin(), live.end(), rank[key]);
        if (now < 0) {
          live.erase(it);
        } else {
          live.insert(it, rank[key]);
        }
      }
      winner[key] = now;
    }
    if (changed) {
      current.clear();
      for (uint32_t r : live) {
        const Format& f = log.format(rs.events[static_cast<size_t>(winner[order[r]])].format);
        current.push_back(Mark{f.name, f.value});
      }
    }
  }
  emit(len);
  return out;
}

std::vector<Block> Doc::blocks() const {
  const Impl& d = full();
  std::vector<Block> out{Block{}};
  const std::string text = d.rope.text();
  uint32_t cp = 0;
  for (size_t b = 0; b < text.size(); b += utf8::seq_len(static_cast<unsigned char>(text[b]))) {
    ++cp;
    if (text[b] == '\n') out.push_back({cp, "paragraph", {}});
  }
  if (d.log.num_formats() == 0) return out;
  const RichState::Read& r = resolve(d);
  // block_at is sorted by position, the winner last at each.
  size_t k = 0;
  for (const auto& [at, ev] : r.block_at) {
    while (k < out.size() && out[k].at < at) ++k;
    if (k < out.size() && out[k].at == at) {
      const Format& f = d.log.format(d.rich->events[ev].format);
      out[k].type = f.name;
      out[k].value = f.value;
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
  if (new_comment) TANDEM_RETURN_IF_ERROR(d.check_comments(d.comment_ids.size() + 1, "document would have"));
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
  return append_format(full(), OpKind::kMark, pos, Format{pos + len, std::string(name), std::string(value), false});
}

Status Doc::unmark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value) {
  if (uint64_t{pos} + len > UINT32_MAX) return Status::OutOfRange("mark range overflows");
  return append_format(full(), OpKind::kMark, pos, Format{pos + len, std::string(name), std::string(value), true});
}

Status Doc::set_block(uint32_t pos, std::string_view type, std::string_view value) {
  const Impl& d = full();
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
  return append_format(full(), OpKind::kBlock, start, Format{0, std::string(type), std::string(value), false});
}

}  // namespace tandem::crdt
