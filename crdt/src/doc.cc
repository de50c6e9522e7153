#include "crdt/doc.h"

#include <algorithm>
#include <cassert>

#include "crdt/utf8.h"
#include "doc_impl.h"
#include "merge.h"

namespace tandem::crdt {


Doc::Doc(std::string_view agent) : impl_(std::make_unique<Impl>()) {
  assert(ValidateAgent(agent).ok());
  impl_->agent_name = std::string(agent);
}

Doc::Doc(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Doc::~Doc() = default;
Doc::Doc(Doc&&) noexcept = default;
Doc& Doc::operator=(Doc&&) noexcept = default;

Status Doc::ValidateAgent(std::string_view agent) {
  if (agent.empty()) return Status::InvalidArgument("agent name is empty");
  if (agent.size() > kMaxAgentBytes) {
    return Status::InvalidArgument("agent name is longer than " + num(kMaxAgentBytes) + " bytes");
  }
  auto info = utf8::inspect(agent);
  if (!info.ok()) return info.status().WithContext("agent name");
  return Status::OK();
}

const std::string& Doc::agent() const { return impl_->agent_name; }
void Doc::set_limits(const DocLimits& limits) { impl_->limits = limits; }
const DocLimits& Doc::limits() const { return impl_->limits; }

Status Doc::insert(uint32_t pos, std::string_view text) {
  Impl& d = full();
  auto info = utf8::inspect(text);
  if (!info.ok()) return info.status();
  const uint64_t n = info->code_points;
  if (n == 0) return Status::OK();
  const uint32_t len = d.rope.length();
  if (pos > len) {
    return Status::OutOfRange("insert at " + num(pos) + " is past the end of the document (length " +
                              num(len) + ")");
  }
  if (len + n > d.limits.max_length) {
    return Status::ResourceExhausted("document would exceed " + num(d.limits.max_length) + " characters");
  }
  const uint32_t agent = d.local_agent();
  const uint32_t seq = d.log.next_seq(agent);
  if (d.log.size() + n > internal::kMaxEvents || seq + n > UINT32_MAX) {
    return Status::ResourceExhausted("document has too many operations");
  }
  const LV lv = d.log.size();
  d.log.append(agent, seq, d.frontier, internal::kIns, pos, static_cast<uint32_t>(n), text, len);
  d.rope.insert(pos, text, static_cast<uint32_t>(n), lv);
  d.frontier.assign(1, lv + static_cast<uint32_t>(n) - 1);
  d.version_stale = true;
  return Status::OK();
}

Status Doc::remove(uint32_t pos, uint32_t n) {
  Impl& d = full();
  const uint32_t len = d.rope.length();
  if (uint64_t{pos} + n > len) {
    return Status::OutOfRange("delete of [" + num(pos) + ", " + num(uint64_t{pos} + n) +
                              ") is past the end of the document (length " + num(len) + ")");
  }
  if (n == 0) return Status::OK();
  const uint32_t agent = d.local_agent();
  const uint32_t seq = d.log.next_seq(agent);
  if (d.log.size() + uint64_t{n} > internal::kMaxEvents || uint64_t{seq} + n > UINT32_MAX) {
    return Status::ResourceExhausted("document has too many operations");
  }
  const LV lv = d.log.size();
  d.log.append(agent, seq, d.frontier, internal::kDelFwd, pos, n, {}, len);
  d.scratch.clear();
  d.rope.remove(pos, n, nullptr, &d.scratch);
  for (const LvRun& r : d.scratch) d.deleted.add(r.lv, r.len);
  d.frontier.assign(1, lv + n - 1);
  d.version_stale = true;
  return Status::OK();
}

std::string Doc::text() const { return impl_->rope.text(); }

std::string Doc::slice(uint32_t pos, uint32_t len) const {
  const uint32_t total = impl_->rope.length();
  if (pos >= total) return {};
  return impl_->rope.substr(pos, std::min(len, total - pos));
}

uint32_t Doc::length() const { return impl_->rope.length(); }
uint32_t Doc::length_utf16() const { return impl_->rope.length_utf16(); }
size_t Doc::length_bytes() const { return impl_->rope.bytes(); }

Result<uint32_t> Doc::utf16_from_pos(uint32_t pos) const {
  if (pos > impl_->rope.length()) {
    return Status::OutOfRange("position " + num(pos) + " is past the end (length " +
                              num(impl_->rope.length()) + ")");
  }
  return impl_->rope.utf16_of(pos);
}

Result<uint32_t> Doc::pos_from_utf16(uint32_t utf16) const {
  if (utf16 > impl_->rope.length_utf16()) {
    return Status::OutOfRange("UTF-16 offset " + num(utf16) + " is past the end (length " +
                              num(impl_->rope.length_utf16()) + ")");
  }
  bool inside = false;
  const uint32_t pos = impl_->rope.pos_of_utf16(utf16, &inside);
  if (inside) return Status::InvalidArgument("UTF-16 offset " + num(utf16) + " splits a surrogate pair");
  return pos;
}

const Version& Doc::version() const { return impl_->synced_version(); }

Result<std::vector<OpId>> Doc::frontier_of(const Version& v) const {
  const Impl& d = full();
  const OpLog& log = d.log;
  if (!d.synced_version().includes(v)) return Status::NotFound("this replica does not hold all of version " + v.ToString());
  Frontier tips;
  if (v == d.synced_version()) {
    tips = d.frontier;
  } else {
    Frontier last;  // each agent's last event in v
    for (const auto& [agent, next] : v.entries()) last.push_back(log.lv_of(log.find_agent(agent), next - 1));
    std::sort(last.begin(), last.end(), std::greater<>());
    std::vector<Span> only_tips, only_last;
    for (LV lv : last) {
      // Newest first: an event already in the history of the tips chosen is not a tip.
      if (!tips.empty()) {
        log.diff(tips, Frontier{lv}, &only_tips, &only_last);
        if (only_last.empty()) continue;
      }
      tips.push_back(lv);
    }
    std::sort(tips.begin(), tips.end());
    // v must be a whole history: the tips' history holds exactly v's events.
    log.diff(tips, Frontier{}, &only_tips, &only_last);
    uint64_t events = 0;
    for (const Span& sp : only_tips) events += sp.end - sp.start;
    if (events != v.total()) {
      return Status::InvalidArgument("version " + v.ToString() +
                                     " is not one the document had: it leaves out operations its operations depend on");
    }
  }
  std::vector<OpId> out;
  for (LV lv : tips) {
    const auto id = log.id_of(lv);
    out.push_back(OpId{log.agent_name(id.agent), id.seq});
  }
  return out;
}
uint64_t Doc::num_events() const { return impl_->deferred ? impl_->deferred->events : impl_->log.size(); }
uint64_t Doc::pending_events() const { return impl_->pending_events; }

Doc::MergeWork Doc::last_merge_work() const {
  return {impl_->merge_cache.last_walked, impl_->merge_cache.last_replayed};
}

namespace internal {

void runs_of(const Doc::Impl& d, const std::vector<Range>& ranges, Doc::DeletedText deleted, OpBatch* out) {
  const OpLog& log = d.log;
  auto id_of = [&](LV lv) {
    const auto id = log.id_of(lv);
    return OpId{log.agent_name(id.agent), id.seq};
  };
  for (const Range& rg : ranges) {
    const std::string& agent = log.agent_name(rg.agent);
    for (LV lv = rg.lv; lv < rg.end;) {
      const OpSpan& op = log.ops()[log.op_index(lv)];
      const auto& g = log.graph()[log.graph_index(lv)];
      const LV end = std::min({rg.end, op.end(), g.end});
      OpRun run;
      run.agent = agent;
      run.seq = rg.seq + (lv - rg.lv);
      if (lv == g.start) {
        for (LV p : g.parents) run.parents.push_back(id_of(p));
      } else {
        run.parents.push_back(id_of(lv - 1));
      }
      run.pos = op.pos_at(lv - op.lv);
      run.len = end - lv;
      if (op.type == internal::kFmt) {
        run.format = log.format_of(op);
        run.kind = run.format->end > 0 ? OpKind::kMark : OpKind::kBlock;
        out->runs.push_back(std::move(run));
        lv = end;
        continue;
      }
      if (op.type != internal::kIns) {
        run.kind = op.type == internal::kDelFwd ? OpKind::kDeleteForward : OpKind::kDeleteBackward;
        out->runs.push_back(std::move(run));
        lv = end;
        continue;
      }
      // Stretches with text carry it; the others are sent as kInsertDeleted.
      auto emit = [&](LV a, LV b, bool without_text) {
        OpRun part = run;
        if (a != lv) {
          part.parents.assign(1, id_of(a - 1));
          part.seq = run.seq + (a - lv);
          part.pos = op.pos_at(a - op.lv);
        }
        part.len = b - a;
        part.kind = without_text ? OpKind::kInsertDeleted : OpKind::kInsert;
        if (!without_text) part.content = std::string(log.content(a, part.len));
        out->runs.push_back(std::move(part));
      };
      if (deleted == Doc::DeletedText::kOmit) {
        d.deleted.partition(lv, end, emit);
      } else {
        // The arena holds the text of every insert, except placeholders for what never arrived.
        const std::string_view text = log.content(lv, end - lv);
        LV a = lv;
        bool unknown = !text.empty() && static_cast<unsigned char>(text[0]) == internal::kPlaceholderByte;
        size_t byte = 0;
        for (LV at = lv; at < end; ++at) {
          const bool u = static_cast<unsigned char>(text[byte]) == internal::kPlaceholderByte;
          if (u != unknown) {
            emit(a, at, unknown);
            a = at;
            unknown = u;
          }
          byte += utf8::seq_len(static_cast<unsigned char>(text[byte]));
        }
        emit(a, end, unknown);
      }
      lv = end;
    }
  }
}

}  // namespace internal

OpBatch Doc::ops_since(const Version& peer, DeletedText deleted) const {
  const Impl& d = full();
  const OpLog& log = d.log;
  // The LV ranges of every agent's ops from the peer's next seq on, in LV (causal) order.
  std::vector<internal::Range> ranges;
  for (uint32_t a = 0; a < log.num_agents(); ++a) {
    const uint32_t from = peer.next(log.agent_name(a));
    const auto& spans = log.seq_spans(a);
    auto it = std::upper_bound(spans.begin(), spans.end(), from,
                               [](uint32_t s, const internal::SeqSpan& e) { return s < e.seq; });
    if (it != spans.begin() && std::prev(it)->seq + std::prev(it)->len > from) --it;
    for (; it != spans.end(); ++it) {
      const uint32_t skip = from > it->seq ? from - it->seq : 0;
      ranges.push_back({it->lv + skip, it->lv + it->len, a, it->seq + skip});
    }
  }
  std::sort(ranges.begin(), ranges.end(), [](const internal::Range& x, const internal::Range& y) { return x.lv < y.lv; });
  OpBatch out;
  internal::runs_of(d, ranges, deleted, &out);
  return out;
}

Status Doc::check_invariants() const {
  const Impl& d = full();
  TANDEM_RETURN_IF_ERROR(d.rope.check());
  TANDEM_RETURN_IF_ERROR(d.log.check());
  const OpLog& log = d.log;
  for (size_t i = 0; i < d.frontier.size(); ++i) {
    if (d.frontier[i] >= log.size() || (i && d.frontier[i] <= d.frontier[i - 1])) {
      return Status::Internal("frontier is not sorted or points past the log");
    }
  }
  if (log.size() > 0 && d.frontier.empty()) return Status::Internal("frontier is empty");
  if (d.frontier.size() == 1 && log.len_after(d.frontier[0]) != d.rope.length()) {
    return Status::Internal("text length " + num(d.rope.length()) + " differs from the log's " +
                            num(log.len_after(d.frontier[0])));
  }
  Version v;
  for (uint32_t a = 0; a < log.num_agents(); ++a) v.advance(log.agent_name(a), log.next_seq(a));
  if (!(v == d.synced_version())) return Status::Internal("version " + d.version.ToString() + " differs from the log's");
  // Every visible character is a distinct insert event.
  std::vector<LvRun> runs;
  d.rope.for_each_chunk([&](std::string_view, const LvRun* r, size_t n) { runs.insert(runs.end(), r, r + n); });
  std::sort(runs.begin(), runs.end(), [](const LvRun& a, const LvRun& b) { return a.lv < b.lv; });
  for (size_t i = 0; i < runs.size(); ++i) {
    if (i && runs[i].lv < runs[i - 1].lv + runs[i - 1].len) return Status::Internal("a character shows twice");
    if (uint64_t{runs[i].lv} + runs[i].len > log.size()) return Status::Internal("a character has no event");
    for (LV lv = runs[i].lv; lv < runs[i].lv + runs[i].len;) {
      const OpSpan& op = log.ops()[log.op_index(lv)];
      if (op.type != internal::kIns) return Status::Internal("a visible character is a delete event");
      lv = op.end();
    }
  }
  // ... and every other inserted character is in the deleted set, which holds nothing else.
  internal::LvSet expect;
  size_t vi = 0;
  for (const OpSpan& op : log.ops()) {
    if (op.type != internal::kIns) continue;
    LV at = op.lv;
    while (at < op.end()) {
      while (vi < runs.size() && runs[vi].lv + runs[vi].len <= at) ++vi;
      if (vi < runs.size() && runs[vi].lv <= at) {
        at = std::min(op.end(), runs[vi].lv + runs[vi].len);
      } else {
        const LV stop = vi < runs.size() ? std::min(op.end(), runs[vi].lv) : op.end();
        expect.add(at, stop - at);
        at = stop;
      }
    }
  }
  if (!(expect == d.deleted)) return Status::Internal("deleted set differs from the text");
  uint64_t pending = 0;
  uint32_t held_runs = 0, listed = 0;
  for (const auto& r : d.pending) {
    pending += r.len;
    held_runs += r.len > 0 ? 1 : 0;
  }
  if (pending != d.pending_events || held_runs != d.pending_runs) return Status::Internal("held event count");
  if (d.pending.size() != d.pending_blocker.size() || d.pending.size() != held_runs + d.pending_free.size()) {
    return Status::Internal("held run slots");
  }
  for (const auto& [agent, slots] : d.waiting) {
    for (uint32_t slot : slots) {
      if (slot >= d.pending.size() || d.pending[slot].len == 0 || d.pending_blocker[slot] != agent) {
        return Status::Internal("held run listed under the wrong agent");
      }
      ++listed;
    }
  }
  if (listed != held_runs) return Status::Internal("held runs not listed once each");
  return Status::OK();
}

size_t Doc::heap_bytes() const {
  const Impl& d = *impl_;
  size_t n = d.deferred ? sizeof(Impl::Deferred) + d.deferred->bytes.capacity() : 0;
  for (const auto& c : d.comment_ids) n += c.capacity() + 32;
  n += sizeof(Impl) + d.rope.heap_bytes() + d.log.heap_bytes() + d.frontier.capacity() * sizeof(LV) +
             d.deleted.heap_bytes() + d.scratch.capacity() * sizeof(LvRun);
  n += d.pending.capacity() * sizeof(OpRun) + d.pending_blocker.capacity() * sizeof(std::string);
  for (const auto& r : d.pending) n += r.content.capacity() + r.parents.capacity() * sizeof(OpId);
  if (d.rich) n += d.rich->heap_bytes();
  for (const auto& [agent, slots] : d.waiting) n += agent.capacity() + slots.capacity() * sizeof(uint32_t) + 32;
  for (const auto& e : d.version.entries()) n += sizeof(e) + e.first.capacity();
  return n;
}

}  // namespace tandem::crdt
