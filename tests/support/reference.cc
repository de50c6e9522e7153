#include "reference.h"

#include <algorithm>

#include "crdt/utf8.h"

namespace tandem::testing {

using crdt::OpKind;
using crdt::Status;

size_t Reference::find(const std::string& agent, uint32_t seq) const {
  for (size_t i = 0; i < events_.size(); ++i) {
    if (events_[i].agent == agent && events_[i].seq == seq) return i;
  }
  return kNone;
}

size_t Reference::index_of(size_t ev) const {
  for (size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].ev == ev) return i;
  }
  return kNone;
}

Status Reference::add(const crdt::OpBatch& batch) {
  for (const auto& run : batch.runs) {
    size_t byte = 0;
    for (uint32_t k = 0; k < run.len; ++k) {
      if (find(run.agent, run.seq + k) != kNone) continue;
      std::vector<size_t> parents;
      if (k == 0) {
        for (const auto& p : run.parents) {
          const size_t x = find(p.agent, p.seq);
          if (x == kNone) return Status::InvalidArgument("reference: parent missing");
          parents.push_back(x);
        }
      } else {
        parents.push_back(find(run.agent, run.seq + k - 1));
      }
      std::string ch = "?";
      uint32_t pos = run.pos;
      bool insert = false;
      switch (run.kind) {
        case OpKind::kInsert: {
          const size_t len = crdt::utf8::seq_len(static_cast<unsigned char>(run.content[byte]));
          ch = run.content.substr(byte, len);
          byte += len;
          pos = run.pos + k;
          insert = true;
          break;
        }
        case OpKind::kInsertDeleted:
          pos = run.pos + k;
          insert = true;
          break;
        case OpKind::kDeleteForward:
          break;
        case OpKind::kDeleteBackward:
          pos = run.pos - k;
          break;
        case OpKind::kMark:
        case OpKind::kBlock:
          TANDEM_RETURN_IF_ERROR(add_event(run.agent, run.seq + k, parents, false, pos, ch, &run));
          continue;
      }
      TANDEM_RETURN_IF_ERROR(add_event(run.agent, run.seq + k, parents, insert, pos, ch));
    }
  }
  return Status::OK();
}

Status Reference::add_event(const std::string& agent, uint32_t seq, const std::vector<size_t>& parents, bool insert,
                            uint32_t pos, const std::string& ch, const crdt::OpRun* format) {
  const size_t e = events_.size();
  std::vector<bool> anc(e + 1, false);
  for (size_t p : parents) {
    for (size_t x = 0; x < ancestors_[p].size(); ++x) {
      if (ancestors_[p][x]) anc[x] = true;
    }
  }
  // The document at the parents' version.
  std::vector<size_t> visible;
  for (size_t i = 0; i < items_.size(); ++i) {
    const Item& it = items_[i];
    if (!anc[it.ev]) continue;
    bool deleted = false;
    for (size_t d : it.deleted_by) deleted = deleted || anc[d];
    if (!deleted) visible.push_back(i);
  }
  uint32_t lamport = 0;
  for (size_t p : parents) lamport = std::max(lamport, events_[p].lamport + 1);
  events_.push_back({agent, seq, lamport});
  anc[e] = true;
  ancestors_.push_back(anc);
  if (format) {
    const crdt::Format& f = *format->format;
    auto ev_at = [&](uint64_t p) { return p < visible.size() ? items_[visible[p]].ev : kNone; };
    const bool mark = format->kind == OpKind::kMark;
    if ((mark ? f.end : pos) > visible.size()) return Status::InvalidArgument("reference: format past the end");
    formats_.push_back({e, f, mark, pos > 0 ? ev_at(pos - 1) : kNone, ev_at(pos), f.end > 0 ? ev_at(f.end - 1) : kNone,
                        ev_at(f.end)});
    return Status::OK();
  }
  if (!insert) {
    if (pos >= visible.size()) return Status::InvalidArgument("reference: delete past the end");
    items_[visible[pos]].deleted_by.push_back(e);
    return Status::OK();
  }
  if (pos > visible.size()) return Status::InvalidArgument("reference: insert past the end");
  const size_t ol_idx = pos == 0 ? kNone : visible[pos - 1];
  const size_t left = ol_idx == kNone ? 0 : ol_idx + 1;
  size_t orr = kNone;
  for (size_t i = left; i < items_.size(); ++i) {
    if (anc[items_[i].ev]) {
      orr = items_[i].ev;
      break;
    }
  }
  Item item{e, ol_idx == kNone ? kNone : items_[ol_idx].ev, orr, {}, ch};
  auto pos_of = [&](size_t ev) { return ev == kNone ? items_.size() : index_of(ev); };
  size_t i = left;
  size_t scan_start = left;
  bool scanning = false;
  for (; i < items_.size(); ++i) {
    const Item& o = items_[i];
    if (o.ev == orr) break;
    const size_t o_left = o.ol == kNone ? 0 : index_of(o.ol) + 1;
    if (o_left < left) break;
    if (o_left == left) {
      if (o.orr == orr) {
        const Event& oe = events_[o.ev];
        const int c = agent.compare(oe.agent);
        if (c < 0 || (c == 0 && seq < oe.seq)) break;
        scanning = false;
      } else if (pos_of(o.orr) < pos_of(orr)) {
        if (!scanning) {
          scanning = true;
          scan_start = i;
        }
      } else {
        scanning = false;
      }
    }
  }
  if (scanning) i = scan_start;
  items_.insert(items_.begin() + static_cast<long>(i), item);
  return Status::OK();
}

bool Reference::later(size_t a, size_t b) const {
  const Event& x = events_[a];
  const Event& y = events_[b];
  if (x.lamport != y.lamport) return x.lamport > y.lamport;
  if (x.agent != y.agent) return x.agent > y.agent;
  return x.seq > y.seq;
}

std::vector<crdt::TextSpan> Reference::spans() const {
  std::vector<crdt::TextSpan> out;
  uint32_t pos = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (!items_[i].deleted_by.empty()) continue;
    // Per key, the latest event whose anchors enclose item i.
    std::vector<std::pair<std::string, const FormatEvent*>> win;
    for (const FormatEvent& fe : formats_) {
      if (!fe.mark) continue;
      const bool grows = crdt::MarkGrows(fe.f.name);
      const bool inside = i >= index_of(fe.first) &&
                          (grows ? (fe.next == kNone || i < index_of(fe.next)) : i <= index_of(fe.last));
      if (!inside) continue;
      const std::string key = fe.f.name == "comment" ? fe.f.name + '\0' + fe.f.value : fe.f.name;
      auto it = std::find_if(win.begin(), win.end(), [&](const auto& w) { return w.first == key; });
      if (it == win.end()) {
        win.push_back({key, &fe});
      } else if (later(fe.ev, it->second->ev)) {
        it->second = &fe;
      }
    }
    std::vector<crdt::Mark> marks;
    for (const auto& [key, fe] : win) {
      if (!fe->f.remove) marks.push_back({fe->f.name, fe->f.value});
    }
    std::sort(marks.begin(), marks.end(),
              [](const crdt::Mark& a, const crdt::Mark& b) { return a.name != b.name ? a.name < b.name : a.value < b.value; });
    if (!out.empty() && out.back().marks == marks) {
      out.back().to = pos + 1;
    } else {
      out.push_back({pos, pos + 1, marks});
    }
    ++pos;
  }
  return out;
}

std::vector<crdt::Block> Reference::blocks() const {
  auto block_of = [&](size_t boundary) {  // kNone: the first block
    crdt::Block b;
    const FormatEvent* w = nullptr;
    for (const FormatEvent& fe : formats_) {
      if (!fe.mark && fe.before == boundary && (!w || later(fe.ev, w->ev))) w = &fe;
    }
    if (w) {
      b.type = w->f.name;
      b.value = w->f.value;
    }
    return b;
  };
  std::vector<crdt::Block> out{block_of(kNone)};
  uint32_t pos = 0;
  for (const Item& it : items_) {
    if (!it.deleted_by.empty()) continue;
    ++pos;
    if (it.ch == "\n") {
      out.push_back(block_of(it.ev));
      out.back().at = pos;
    }
  }
  return out;
}

std::string Reference::text() const {
  std::string out;
  for (const Item& it : items_) {
    if (it.deleted_by.empty()) out += it.ch;
  }
  return out;
}

}  // namespace tandem::testing
