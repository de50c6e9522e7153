// Doc <-> SnapshotData.
//
// A snapshot must be the same bytes on every replica that holds the same operations, although
// each replica numbered them (LVs) in its own arrival order. So the events are renumbered in a
// canonical topological order, and the runs are rebuilt by appending the events in that order to
// a fresh OpLog, whose run-length merging is a function of the event sequence alone. When the
// history is a single chain (the common case) arrival order is the only topological order and
// the live log is used as it is.

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <queue>
#include <unordered_set>

#include "crdt/doc.h"
#include "crdt/utf8.h"
#include "doc_impl.h"

namespace tandem::crdt {


namespace {

// Kahn's algorithm over the event graph plus each agent's own sequence, always taking the ready
// event with the smallest (agent name, seq). Returns the LV ranges of `log` in that order.
std::vector<Span> canonical_order(const OpLog& log) {
  std::vector<LV> cuts;
  for (const auto& g : log.graph()) cuts.push_back(g.start);
  for (const auto& a : log.agent_spans()) cuts.push_back(a.lv);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  const size_t nseg = cuts.size();
  cuts.push_back(log.size());
  auto seg_of = [&](LV lv) {
    return static_cast<uint32_t>(std::upper_bound(cuts.begin(), cuts.end() - 1, lv) - cuts.begin() - 1);
  };

  struct Seg {
    LV next;
    uint32_t waiting = 0;
    size_t released = 0;
    std::vector<std::pair<LV, uint32_t>> waiters;  // (event of ours, segment waiting for it)
  };
  std::vector<Seg> segs(nseg);
  Frontier deps;
  for (uint32_t s = 0; s < nseg; ++s) {
    segs[s].next = cuts[s];
    log.parents_of(cuts[s], &deps);
    const auto id = log.id_of(cuts[s]);
    if (id.seq > 0) deps.push_back(log.lv_of(id.agent, id.seq - 1));
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
    for (LV d : deps) {
      segs[seg_of(d)].waiters.push_back({d, s});
      ++segs[s].waiting;
    }
  }
  for (auto& s : segs) std::sort(s.waiters.begin(), s.waiters.end());

  auto key_less = [&](uint32_t a, uint32_t b) {  // true if a's next event comes before b's
    const auto ia = log.id_of(segs[a].next), ib = log.id_of(segs[b].next);
    const int c = log.agent_name(ia.agent).compare(log.agent_name(ib.agent));
    return c != 0 ? c < 0 : ia.seq < ib.seq;
  };
  auto heap_cmp = [&](uint32_t a, uint32_t b) { return key_less(b, a); };
  std::priority_queue<uint32_t, std::vector<uint32_t>, decltype(heap_cmp)> ready(heap_cmp);
  for (uint32_t s = 0; s < nseg; ++s) {
    if (segs[s].waiting == 0) ready.push(s);
  }
  std::vector<Span> order;
  while (!ready.empty()) {
    const uint32_t s = ready.top();
    ready.pop();
    Seg& seg = segs[s];
    LV stop = cuts[s + 1];
    if (seg.released < seg.waiters.size()) stop = std::min(stop, seg.waiters[seg.released].first + 1);
    if (!order.empty() && order.back().end == seg.next) {
      order.back().end = stop;
    } else {
      order.push_back({seg.next, stop});
    }
    seg.next = stop;
    while (seg.released < seg.waiters.size() && seg.waiters[seg.released].first < stop) {
      const uint32_t t = seg.waiters[seg.released++].second;
      if (--segs[t].waiting == 0) ready.push(t);
    }
    if (seg.next < cuts[s + 1]) ready.push(s);
  }
  return order;
}

struct Piece {
  LV old_start;
  LV new_start;
  uint32_t len;
};

LV map_lv(const std::vector<Piece>& by_old, LV lv) {
  auto it = std::upper_bound(by_old.begin(), by_old.end(), lv, [](LV x, const Piece& p) { return x < p.old_start; });
  --it;
  return it->new_start + (lv - it->old_start);
}

void push_text_run(std::vector<SnapshotData::TextRun>* out, LV lv, uint32_t len) {
  if (!out->empty() && out->back().event + out->back().len == lv) {
    out->back().len += len;
  } else {
    out->push_back({lv, len});
  }
}

}  // namespace

SnapshotData Doc::to_snapshot() const {
  const Impl& d = full();
  SnapshotData out;
  const OpLog* src = &d.log;
  OpLog canon;
  std::vector<Piece> by_old;  // empty when the numbering is unchanged

  if (d.log.graph().size() > 1) {
    const std::vector<Span> order = canonical_order(d.log);
    LV next = 0;
    for (const Span& s : order) {
      by_old.push_back({s.start, next, s.end - s.start});
      next += s.end - s.start;
    }
    std::sort(by_old.begin(), by_old.end(), [](const Piece& a, const Piece& b) { return a.old_start < b.old_start; });
    canon.set_track_content(false);
    Frontier parents;
    for (const Span& s : order) {
      for (LV lv = s.start; lv < s.end;) {
        const OpSpan& op = d.log.ops()[d.log.op_index(lv)];
        const LV stop = std::min(s.end, op.end());
        d.log.parents_of(lv, &parents);
        for (LV& p : parents) p = map_lv(by_old, p);
        std::sort(parents.begin(), parents.end());
        const auto id = d.log.id_of(lv);
        const uint32_t agent = canon.intern_agent(d.log.agent_name(id.agent));
        const uint32_t k = lv - op.lv;
        if (op.type == internal::kFmt) {
          canon.append_format(agent, id.seq, parents, op.pos, d.log.format_of(op), op.len_before);
        } else {
          canon.append(agent, id.seq, parents, static_cast<internal::OpType>(op.type), op.pos_at(k), stop - lv, {},
                       k == 0 ? op.len_before : op.len_after(k - 1));
        }
        lv = stop;
      }
    }
    src = &canon;
  }

  // Agents by first appearance.
  std::vector<uint32_t> agent_map(src->num_agents(), UINT32_MAX);
  for (const auto& a : src->agent_spans()) {
    if (agent_map[a.agent] == UINT32_MAX) {
      agent_map[a.agent] = static_cast<uint32_t>(out.agents.size());
      out.agents.push_back(src->agent_name(a.agent));
    }
  }
  out.runs.reserve(src->ops().size());
  for (const OpSpan& op : src->ops()) {
    const auto& g = src->graph()[src->graph_index(op.lv)];
    SnapshotData::Run r;
    r.agent = agent_map[src->id_of(op.lv).agent];
    r.len = op.len;
    r.type = op.type;
    r.pos = op.pos;
    r.follows_previous = op.lv != g.start;
    if (op.type == internal::kFmt) out.formats.push_back(src->format_of(op));
    if (!r.follows_previous) {
      r.parents = g.parents;
      if (r.parents.size() > 1) r.len_before = op.len_before;
    }
    out.runs.push_back(std::move(r));
  }

  out.text.reserve(d.rope.bytes());
  d.rope.for_each_chunk([&](std::string_view text, const LvRun* runs, size_t n) {
    out.text.append(text);
    for (size_t i = 0; i < n; ++i) {
      if (by_old.empty()) {
        push_text_run(&out.text_runs, runs[i].lv, runs[i].len);
        continue;
      }
      // A run of consecutive LVs may have been cut into several canonical pieces.
      LV lv = runs[i].lv;
      const LV end = runs[i].lv + runs[i].len;
      while (lv < end) {
        auto it = std::upper_bound(by_old.begin(), by_old.end(), lv,
                                   [](LV x, const Piece& p) { return x < p.old_start; });
        --it;
        const LV stop = std::min<LV>(end, it->old_start + it->len);
        push_text_run(&out.text_runs, it->new_start + (lv - it->old_start), stop - lv);
        lv = stop;
      }
    }
  });
  return out;
}

namespace {

// What a snapshot's checks need of an op log, keeping only the runs' shapes: a lazy load checks
// against this (as OpLog::append_span would append) and then drops it.
class RunShapes {
 public:
  LV size() const { return end_; }
  const std::vector<OpSpan>& ops() const { return ops_; }
  const std::vector<internal::GraphEntry>& graph() const { return graph_; }
  void reserve_runs(size_t runs) { ops_.reserve(runs); }
  uint32_t len_after(LV lv) const {
    auto it = std::upper_bound(ops_.begin(), ops_.end(), lv, [](LV x, const OpSpan& o) { return x < o.lv; });
    --it;
    return it->len_after(lv - it->lv);
  }
  uint32_t intern_agent(std::string_view) {
    next_seq_.push_back(0);
    return static_cast<uint32_t>(next_seq_.size() - 1);
  }
  uint32_t next_seq(uint32_t agent) const { return next_seq_[agent]; }
  uint32_t agents() const { return static_cast<uint32_t>(next_seq_.size()); }
  void attach_format(const Format&) {}
  OpLog::SpanResult append_span(uint32_t agent, const Frontier& parents, OpType type, uint32_t pos, uint32_t len,
                                uint32_t len_before) {
    const LV lv = end_;
    uint32_t& seq = next_seq_[agent];
    if (uint64_t{seq} + len > UINT32_MAX) return OpLog::SpanResult::kSeqOverflow;
    if (type == internal::kDelBack && len == 1) type = internal::kDelFwd;
    const bool linear = parents.size() == 1 && parents[0] + 1 == lv;
    // A snapshot's agent takes its seqs in order, so its events continue the last agent span
    // exactly when the run before is its own.
    bool to_back = false;
    if (linear && last_agent_ == agent && internal::extend_by(ops_.back(), type, pos, len, &to_back) > 0) {
      return OpLog::SpanResult::kContinues;
    }
    last_agent_ = agent;
    seq += len;
    if (linear) {
      graph_.back().end += len;
    } else {
      graph_.push_back({lv, lv + len, parents});
    }
    ops_.push_back({lv, len, pos, len_before, 0, static_cast<uint8_t>(type)});
    end_ += len;
    return OpLog::SpanResult::kOk;
  }

 private:
  std::vector<OpSpan> ops_;
  std::vector<internal::GraphEntry> graph_;
  std::vector<uint32_t> next_seq_;
  uint32_t last_agent_ = internal::kNoLV;
  LV end_ = 0;
};

// The runs' checks (positions against the document length at their parents, maximal runs,
// agents in order of appearance, formats), appending them to `log`; then d's frontier.
template <class Log>
Status check_runs(const SnapshotData& data, Log& log, Doc::Impl& d) {
  std::unordered_set<std::string> seen;
  for (const auto& a : data.agents) {
    TANDEM_RETURN_IF_ERROR(Doc::ValidateAgent(a).WithContext("snapshot agent"));
    if (!seen.insert(a).second) return Status::Corruption("snapshot names agent '" + a + "' twice");
  }
  if (data.events() > internal::kMaxEvents) return Status::Corruption("snapshot has too many events");

  log.reserve_runs(data.runs.size());
  size_t agents_seen = 0;
  std::vector<uint32_t> interned(data.agents.size(), internal::kNoLV);  // snapshot agent -> log agent
  Frontier parents;
  size_t formats_used = 0;
  for (size_t i = 0; i < data.runs.size(); ++i) {
    const SnapshotData::Run& r = data.runs[i];
    const LV lv = log.size();
    auto bad = [&](const std::string& why) { return Status::Corruption("snapshot run " + num(i) + ": " + why); };
    if (r.agent >= data.agents.size()) return bad("agent index out of range");
    if (r.agent > agents_seen) return bad("agents out of order");
    if (r.agent == agents_seen) ++agents_seen;
    if (r.len == 0) return bad("empty run");
    if (r.type > SnapshotData::kFormat) return bad("unknown type");
    const Format* fmt = nullptr;
    if (r.type == SnapshotData::kFormat) {
      if (r.len != 1 || formats_used >= data.formats.size()) return bad("format run without its format");
      fmt = &data.formats[formats_used++];
      const OpKind kind = fmt->end > 0 ? OpKind::kMark : OpKind::kBlock;
      if (Status st = ValidateFormat(kind, r.pos, *fmt); !st.ok()) return st.WithContext("snapshot run " + num(i));
      if (fmt->name == "comment") d.comment_ids.insert(fmt->value);
    }
    parents.clear();
    uint32_t len_before = 0;
    if (r.follows_previous) {
      if (lv == 0 || !r.parents.empty()) return bad("bad parents");
      parents.push_back(lv - 1);
      len_before = log.ops().back().len_after(log.ops().back().len - 1);  // the event before is the last one
    } else {
      for (size_t k = 0; k < r.parents.size(); ++k) {
        if (r.parents[k] >= lv || (k && r.parents[k] <= r.parents[k - 1])) return bad("bad parents");
      }
      parents.assign(r.parents.begin(), r.parents.end());
      if (parents.size() == 1) len_before = log.len_after(parents[0]);
      if (parents.size() > 1) len_before = r.len_before;
    }
    const uint64_t pos = r.pos, n = r.len, lb = len_before;
    const bool ok = r.type == SnapshotData::kInsert          ? pos <= lb && lb + n <= UINT32_MAX
                    : r.type == SnapshotData::kDeleteForward ? pos + n <= lb
                    : r.type == SnapshotData::kFormat        ? std::max<uint64_t>(pos, fmt->end) <= lb
                                                              : pos < lb && pos + 1 >= n;
    if (!ok) return bad("position out of range");
    uint32_t& a = interned[r.agent];
    if (a == internal::kNoLV) a = log.intern_agent(data.agents[r.agent]);
    switch (log.append_span(a, parents, static_cast<internal::OpType>(r.type), r.pos, r.len, len_before)) {
      case OpLog::SpanResult::kOk:
        if (fmt) log.attach_format(*fmt);
        break;
      case OpLog::SpanResult::kSeqOverflow:
        return bad("too many events for one agent");
      case OpLog::SpanResult::kContinues:
        // A run that extends the one before is not maximal: the bytes were not written by Tandem.
        return Status::Corruption("snapshot runs are not in canonical form");
    }
  }

  if (formats_used != data.formats.size()) return Status::Corruption("snapshot has formats no run uses");
  TANDEM_RETURN_IF_ERROR(d.check_comments(d.comment_ids.size(), "snapshot has"));

  // The frontier: last events of graph entries that no entry names as a parent.
  std::vector<LV> named;
  for (const auto& g : log.graph()) named.insert(named.end(), g.parents.begin(), g.parents.end());
  std::sort(named.begin(), named.end());
  for (const auto& g : log.graph()) {
    if (!std::binary_search(named.begin(), named.end(), g.end - 1)) d.frontier.push_back(g.end - 1);
  }
  std::sort(d.frontier.begin(), d.frontier.end());
  return Status::OK();
}

// A stretch of the visible text: insert events [lv, lv + len), from byte `byte` of the text.
struct Vis {
  LV lv;
  uint32_t len;
  size_t byte;
};

// The text's checks: the text runs cover the text exactly, name distinct events of the log, all
// of them inserts, and the text's length is the history's when it has one latest event. Gives
// the text runs in text order (*runs) and in event order (*vis). With `arena`, also builds the
// log's text (visible characters from the snapshot's text, placeholders for the rest, whose
// events go to d.deleted) as OpLog::replace_arena takes it.
template <class Log>
Status check_text(const SnapshotData& data, const Log& log, Doc::Impl& d, std::vector<LvRun>* runs,
                  std::string* arena, std::vector<uint32_t>* offsets) {
  auto info = utf8::inspect(data.text);
  if (!info.ok()) return info.status().WithContext("snapshot text");
  uint64_t covered = 0;
  const bool one_byte = info->code_points == data.text.size();  // then code points are bytes
  std::vector<Vis> vis;
  vis.reserve(data.text_runs.size());
  runs->reserve(data.text_runs.size());
  std::string_view rest(data.text);
  size_t byte = 0;
  for (const auto& t : data.text_runs) {
    if (t.len == 0 || uint64_t{t.event} + t.len > log.size()) return Status::Corruption("snapshot text run out of range");
    if (covered + t.len > info->code_points) return Status::Corruption("snapshot text runs exceed the text");
    covered += t.len;
    const size_t b = one_byte ? t.len : utf8::byte_offset(rest, t.len);
    vis.push_back({t.event, t.len, byte});
    runs->push_back({t.event, t.len});
    byte += b;
    rest = rest.substr(b);
  }
  if (covered != info->code_points) return Status::Corruption("snapshot text runs do not cover the text");
  if (d.frontier.size() == 1 && log.len_after(d.frontier[0]) != covered) {
    return Status::Corruption("snapshot text length " + num(covered) + " does not match its history (" +
                              num(log.len_after(d.frontier[0])) + ")");
  }
  internal::sort_by_lv_field(&vis);
  for (size_t k = 1; k < vis.size(); ++k) {
    if (vis[k].lv < vis[k - 1].lv + vis[k - 1].len) return Status::Corruption("snapshot shows a character twice");
  }

  if (arena) arena->reserve(data.text.size() + (log.size() - covered));
  size_t vi = 0;
  uint64_t vis_chars = 0;  // visible characters found inside insert events
  for (const OpSpan& op : log.ops()) {
    if (op.type != internal::kIns) continue;
    if (arena) offsets->push_back(static_cast<uint32_t>(arena->size()));
    LV at = op.lv;
    while (at < op.end()) {
      while (vi < vis.size() && vis[vi].lv + vis[vi].len <= at) ++vi;
      if (vi < vis.size() && vis[vi].lv <= at) {
        const Vis& v = vis[vi];
        const LV stop = std::min(op.end(), v.lv + v.len);
        if (arena) {
          std::string_view piece = std::string_view(data.text).substr(v.byte);
          const size_t b0 = one_byte ? at - v.lv : utf8::byte_offset(piece, at - v.lv);
          const size_t b1 = one_byte ? stop - v.lv : utf8::byte_offset(piece, stop - v.lv);
          arena->append(piece.substr(b0, b1 - b0));
        }
        vis_chars += stop - at;
        at = stop;
      } else {
        const LV stop = vi < vis.size() ? std::min(op.end(), vis[vi].lv) : op.end();
        if (arena) {
          arena->append(stop - at, static_cast<char>(internal::kPlaceholderByte));
          d.deleted.add(at, stop - at);
        }
        at = stop;
      }
    }
  }
  // Every visible character must be an insert event.
  if (vis_chars != covered) return Status::Corruption("snapshot text shows characters that are not inserts");
  return Status::OK();
}

}  // namespace

Result<Doc> Doc::from_snapshot(const SnapshotData& data, std::string_view agent) {
  TANDEM_RETURN_IF_ERROR(ValidateAgent(agent));
  auto impl = std::make_unique<Impl>();
  impl->agent_name = std::string(agent);
  Impl& d = *impl;
  OpLog& log = d.log;
  TANDEM_RETURN_IF_ERROR(check_runs(data, log, d));
  std::vector<LvRun> runs;
  std::string arena;
  std::vector<uint32_t> offsets;
  TANDEM_RETURN_IF_ERROR(check_text(data, log, d, &runs, &arena, &offsets));
  log.replace_arena(std::move(arena), offsets);
  d.rope.build(data.text, runs);
  for (uint32_t a = 0; a < log.num_agents(); ++a) d.version.advance(log.agent_name(a), log.next_seq(a));
  return Doc(std::move(impl));
}

Result<Doc> Doc::from_snapshot_lazy(const SnapshotData& data, std::string_view agent, std::string encoded,
                                    SnapshotDecoder decode) {
  TANDEM_RETURN_IF_ERROR(ValidateAgent(agent));
  auto impl = std::make_unique<Impl>();
  impl->agent_name = std::string(agent);
  Impl& d = *impl;
  RunShapes shapes;
  TANDEM_RETURN_IF_ERROR(check_runs(data, shapes, d));
  std::vector<LvRun> runs;
  TANDEM_RETURN_IF_ERROR(check_text(data, shapes, d, &runs, nullptr, nullptr));
  d.rope.build(data.text, runs);
  // Agents are interned in order of first use, which is their order in the snapshot.
  for (uint32_t a = 0; a < shapes.agents(); ++a) d.version.advance(data.agents[a], shapes.next_seq(a));
  d.deferred = std::make_unique<Impl::Deferred>(Impl::Deferred{std::move(encoded), std::move(decode), shapes.size(), data.formats.size()});
  return Doc(std::move(impl));
}

Doc::Impl& Doc::build_deferred() const {
  Impl& d = *impl_;
  // The bytes passed every check when they were loaded, so neither step can fail here.
  const auto def = std::move(d.deferred);
  auto data = def->decode(def->bytes);
  Result<Doc> built = data.ok() ? from_snapshot(*data, d.agent_name) : Result<Doc>(data.status());
  if (!built.ok()) {
    std::fprintf(stderr, "tandem: a lazily loaded snapshot no longer loads: %s\n", built.status().ToString().c_str());
    std::abort();
  }
  // Text, version, frontier and comment ids are the same as the lazy load's: only what it left
  // out moves over.
  d.log = std::move(built->impl_->log);
  d.deleted = std::move(built->impl_->deleted);
  return d;
}

}  // namespace tandem::crdt
