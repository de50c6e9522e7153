#include "reference.h"

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
      }
      TANDEM_RETURN_IF_ERROR(add_event(run.agent, run.seq + k, parents, insert, pos, ch));
    }
  }
  return Status::OK();
}

Status Reference::add_event(const std::string& agent, uint32_t seq, const std::vector<size_t>& parents, bool insert,
                            uint32_t pos, const std::string& ch) {
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
  events_.push_back({agent, seq});
  anc[e] = true;
  ancestors_.push_back(anc);
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

std::string Reference::text() const {
  std::string out;
  for (const Item& it : items_) {
    if (it.deleted_by.empty()) out += it.ch;
  }
  return out;
}

}  // namespace tandem::testing
