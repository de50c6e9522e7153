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
#include <optional>
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

// f(word, mask) for each word of `bits` that [lv, lv + len) (len > 0) touches, with the mask of
// the range's bits in it; false from f stops the walk (and is returned).
template <class F>
[[gnu::always_inline]] inline bool each_word(std::vector<uint64_t>& bits, LV lv, uint32_t len, F&& f) {
  const LV last = lv + len - 1;
  const uint64_t head = ~uint64_t{0} << (lv % 64), tail = ~uint64_t{0} >> (63 - last % 64);
  const size_t w0 = lv / 64, w1 = last / 64;
  if (w0 == w1) return f(bits[w0], head & tail);
  if (!f(bits[w0], head)) return false;
  for (size_t w = w0 + 1; w < w1; ++w) {
    if (!f(bits[w], ~uint64_t{0})) return false;
  }
  return f(bits[w1], tail);
}

// A run of `type` at `pos`, `n` events long, fits a document of `lb` characters before it (`fmt`:
// the format a format run sets).
[[gnu::always_inline]] inline bool run_fits(uint8_t type, uint64_t pos, uint64_t n, uint64_t lb, const Format* fmt) {
  return type == SnapshotData::kInsert          ? pos <= lb && lb + n <= UINT32_MAX
         : type == SnapshotData::kDeleteForward ? pos + n <= lb
         : type == SnapshotData::kFormat        ? std::max<uint64_t>(pos, fmt->end) <= lb
                                                 : pos < lb && pos + 1 >= n;
}

// What a snapshot's checks need of an op log, keeping only the runs' shapes: a lazy load checks
// against this (as OpLog::append_span would append) and then drops it. Per run it keeps what
// len_after() needs, 12 bytes where an OpSpan takes 24, and nothing when the history is linear
// (a long history's records do not stay in the cache: writing them was 8% of automerge-paper's
// load); and a bit per event, set for inserts, for the text's checks.
class RunShapes {
 public:
  LV size() const { return end_; }
  const OpSpan& last_op() const { return last_; }
  const std::vector<internal::GraphEntry>& graph() const { return graph_; }
  // linear: no run will name its parents, so len_after() is asked only of the last run's events
  // and the runs' shapes need not be kept.
  void reserve_runs(size_t runs, bool linear) {
    keep_ = !linear;
    if (keep_) shapes_.reserve(runs);
  }
  // len_after() can answer for lv.
  bool knows(LV lv) const { return keep_ || (lv >= last_.lv && lv < end_); }
  // Every insert run, for each_insert().
  bool kept() const { return keep_; }
  uint32_t len_after(LV lv) const {
    if (!keep_) return last_.len_after(lv - last_.lv);
    auto it = std::upper_bound(shapes_.begin(), shapes_.end(), lv, [](LV x, const Shape& o) { return x < o.lv; });
    --it;
    return OpSpan{it->lv, 0, 0, it->len_before, 0, it->type}.len_after(lv - it->lv);
  }
  // Insert events: bit lv % 64 of word lv / 64.
  std::vector<uint64_t>& inserted() {
    if (inserted_.size() <= end_ / 64) inserted_.resize(end_ / 64 + 1);
    return inserted_;
  }
  // f(lv, len) for each insert run, in order.
  template <class F>
  void each_insert(F&& f) const {
    for (size_t i = 0; i < shapes_.size(); ++i) {
      if (shapes_[i].type == internal::kIns) f(shapes_[i].lv, (i + 1 < shapes_.size() ? shapes_[i + 1].lv : end_) - shapes_[i].lv);
    }
  }
  uint32_t intern_agent(std::string_view) {
    next_seq_.push_back(0);
    return static_cast<uint32_t>(next_seq_.size() - 1);
  }
  uint32_t next_seq(uint32_t agent) const { return next_seq_[agent]; }
  // append_span for a run whose only parent is the event before it, by the agent of the run
  // before (RunChecker's common run, and append_span's linear case).
  [[gnu::always_inline]] OpLog::SpanResult append_next(uint32_t agent, OpType type, uint32_t pos, uint32_t len,
                                                        uint32_t len_before) {
    uint32_t& seq = next_seq_[agent];
    if (uint64_t{seq} + len > UINT32_MAX) return OpLog::SpanResult::kSeqOverflow;
    if (type == internal::kDelBack && len == 1) type = internal::kDelFwd;
    bool to_back = false;
    if (internal::extend_by(last_, type, pos, len, &to_back) > 0) return OpLog::SpanResult::kContinues;
    seq += len;
    graph_.back().end += len;
    push(type, pos, len, len_before);
    return OpLog::SpanResult::kOk;
  }
  // append_next for runs[0, n) while each is by `run_agent` (the runs' own index of the log's
  // `agent`) and passes the checks RunChecker makes of a typed run (not a format, not empty,
  // positions within the document before it); says how many it appended. The state it changes
  // is held in locals meanwhile.
  size_t append_typed(uint32_t run_agent, uint32_t agent, const SnapshotLoader::TypedRun* runs, size_t n) {
    OpSpan last = last_;
    uint64_t doc_len = last.len_after(last.len - 1);  // after the last run
    LV end = end_;
    uint32_t seq = next_seq_[agent];
    size_t k = 0;
    for (; k < n; ++k) {
      const SnapshotLoader::TypedRun r = runs[k];
      auto type = static_cast<OpType>(r.type);
      if (r.agent != run_agent || r.type >= SnapshotData::kFormat || r.len == 0 || uint64_t{end} + r.len > internal::kMaxEvents ||
          !run_fits(r.type, r.pos, r.len, doc_len, nullptr) || uint64_t{seq} + r.len > UINT32_MAX) {
        break;
      }
      if (type == internal::kDelBack && r.len == 1) type = internal::kDelFwd;
      bool to_back = false;
      if (internal::extend_by(last, type, r.pos, r.len, &to_back) > 0) break;
      last.lv = end, last.len = r.len, last.pos = r.pos, last.len_before = static_cast<uint32_t>(doc_len);
      last.type = static_cast<uint8_t>(type);
      if (keep_) shapes_.push_back({end, static_cast<uint32_t>(doc_len), static_cast<uint8_t>(type)});
      if (type == internal::kIns) {
        mark_inserted(end, r.len);
        doc_len += r.len;
      } else {
        doc_len -= r.len;
      }
      seq += r.len;
      end += r.len;
    }
    if (k > 0) {
      graph_.back().end += end - end_;
      next_seq_[agent] = seq;
      last_ = last;
      end_ = end;
    }
    return k;
  }
  uint32_t agents() const { return static_cast<uint32_t>(next_seq_.size()); }
  void attach_format(const Format&) {}
  OpLog::SpanResult append_span(uint32_t agent, const Frontier& parents, OpType type, uint32_t pos, uint32_t len,
                                uint32_t len_before) {
    const LV lv = end_;
    const bool linear = parents.size() == 1 && parents[0] + 1 == lv;
    // A snapshot's agent takes its seqs in order, so its events continue the last agent span
    // exactly when the run before is its own.
    if (linear && last_agent_ == agent) return append_next(agent, type, pos, len, len_before);
    uint32_t& seq = next_seq_[agent];
    if (uint64_t{seq} + len > UINT32_MAX) return OpLog::SpanResult::kSeqOverflow;
    if (type == internal::kDelBack && len == 1) type = internal::kDelFwd;
    last_agent_ = agent;
    seq += len;
    if (linear) {
      graph_.back().end += len;
    } else {
      graph_.push_back({lv, lv + len, parents});
    }
    push(type, pos, len, len_before);
    return OpLog::SpanResult::kOk;
  }

 private:
  [[gnu::always_inline]] void push(OpType type, uint32_t pos, uint32_t len, uint32_t len_before) {
    last_ = {end_, len, pos, len_before, 0, static_cast<uint8_t>(type)};
    if (keep_) shapes_.push_back({end_, len_before, static_cast<uint8_t>(type)});
    if (type == internal::kIns) mark_inserted(end_, len);
    end_ += len;
  }
  [[gnu::always_inline]] void mark_inserted(LV lv, uint32_t len) {
    const size_t words = (lv + len) / 64 + 1;
    if (words > inserted_.size()) [[unlikely]] grow_inserted(words);
    each_word(inserted_, lv, len, [](uint64_t& w, uint64_t m) { return w |= m, true; });
  }
  [[gnu::noinline]] void grow_inserted(size_t words) {
    inserted_.resize(std::max<size_t>({words, inserted_.size() * 2, 1024}));
  }

  OpSpan last_{};
  bool keep_ = true;
  struct Shape {
    LV lv;
    uint32_t len_before;
    uint8_t type;
  };
  std::vector<Shape> shapes_;
  std::vector<uint64_t> inserted_;
  std::vector<internal::GraphEntry> graph_;
  std::vector<uint32_t> next_seq_;
  uint32_t last_agent_ = internal::kNoLV;
  LV end_ = 0;
};

const OpSpan& last_op(const OpLog& log) { return log.ops().back(); }
const OpSpan& last_op(const RunShapes& log) { return log.last_op(); }

template <class F>
void each_insert(const OpLog& log, F&& f) {
  for (const OpSpan& op : log.ops()) {
    if (op.type == internal::kIns) f(op.lv, op.len);
  }
}
template <class F>
void each_insert(const RunShapes& log, F&& f) {
  log.each_insert(f);
}

// The runs' checks (positions against the document length at their parents, maximal runs,
// agents in order of appearance, formats), made one run at a time as a decoder reads them, each
// checked run appended to `log`; then d's frontier.
template <class Log>
class RunChecker {
 public:
  RunChecker(Log& log, Doc::Impl& d) : log_(log), d_(d) {}

  // First: the snapshot's agents, which must outlive the checker.
  Status agents(const std::vector<std::string>& names) {
    std::unordered_set<std::string_view> seen;
    for (const auto& a : names) {
      TANDEM_RETURN_IF_ERROR(Doc::ValidateAgent(a).WithContext("snapshot agent"));
      if (!seen.insert(a).second) return Status::Corruption("snapshot names agent '" + a + "' twice");
    }
    names_ = &names;
    interned_.assign(names.size(), internal::kNoLV);
    return Status::OK();
  }

  // Run i, and the format it sets if it is a format run (else null).
  Status add(size_t i, const SnapshotData::Run& r, const Format* fmt) {
    if (const std::optional<uint32_t> lb = typed(r)) {
      const uint32_t len_before = *lb;
      const auto type = static_cast<internal::OpType>(r.type);
      if constexpr (requires { log_.append_next(0, type, 0, 0, 0); }) {
        return appended(i, r, nullptr, log_.append_next(interned_[r.agent], type, r.pos, r.len, len_before));
      } else {
        parents_.assign(1, log_.size() - 1);
        return appended(i, r, nullptr, log_.append_span(interned_[r.agent], parents_, type, r.pos, r.len, len_before));
      }
    }
    return add_any(i, r, fmt);
  }

  // add() for the common runs (see typed()) given as their fields: takes runs from the front of
  // `runs` while each is one and passes add()'s checks, and says how many it took; what it does
  // not take, add() must.
  size_t add_typed(const SnapshotLoader::TypedRun* runs, size_t n)
    requires requires(Log& l) { l.append_typed(0, 0, runs, n); }
  {
    return n > 0 && runs[0].agent == prev_agent_ ? log_.append_typed(prev_agent_, interned_[prev_agent_], runs, n) : 0;
  }

  // Format runs added so far.
  size_t formats() const { return formats_; }

  // Last: the comment limit and the frontier (the last events of graph entries that no entry
  // names as a parent).
  Status finish() {
    TANDEM_RETURN_IF_ERROR(d_.check_comments(d_.comment_ids.size(), "snapshot has"));
    std::vector<LV> named;
    for (const auto& g : log_.graph()) named.insert(named.end(), g.parents.begin(), g.parents.end());
    std::sort(named.begin(), named.end());
    for (const auto& g : log_.graph()) {
      if (!std::binary_search(named.begin(), named.end(), g.end - 1)) d_.frontier.push_back(g.end - 1);
    }
    std::sort(d_.frontier.begin(), d_.frontier.end());
    return Status::OK();
  }

 private:
  // Run r's position and length fit a document of `len_before` characters at its parents
  // (`fmt`: the format a format run sets).
  [[gnu::always_inline]] static bool fits(const SnapshotData::Run& r, uint64_t len_before, const Format* fmt) {
    return run_fits(r.type, r.pos, r.len, len_before, fmt);
  }

  // Most runs are typing or deleting by the agent of the run before, right after it: these pass
  // add_any's checks up to the append in a few comparisons, and give the document's length
  // before the run. Nothing when the run is not one of them or fails a check (add_any then says
  // which).
  std::optional<uint32_t> typed(const SnapshotData::Run& r) const {
    if (!r.follows_previous || r.agent != prev_agent_ || r.type >= SnapshotData::kFormat || r.len == 0 ||
        !r.parents.empty()) {
      return std::nullopt;
    }
    const LV lv = log_.size();  // > 0: a run came before
    if (uint64_t{lv} + r.len > internal::kMaxEvents) return std::nullopt;
    const OpSpan& last = last_op(log_);
    const uint32_t len_before = last.len_after(last.len - 1);
    if (!fits(r, len_before, nullptr)) return std::nullopt;
    return len_before;
  }

  Status appended(size_t i, const SnapshotData::Run& r, const Format* fmt, OpLog::SpanResult result) {
    if (result == OpLog::SpanResult::kOk) [[likely]] {
      if (fmt) log_.attach_format(*fmt);
      prev_agent_ = r.agent;
      return Status::OK();
    }
    return refused(i, result);
  }

  [[gnu::noinline]] Status refused(size_t i, OpLog::SpanResult result) const {
    switch (result) {
      case OpLog::SpanResult::kOk:
        break;
      case OpLog::SpanResult::kSeqOverflow:
        return Status::Corruption("snapshot run " + num(i) + ": too many events for one agent");
      case OpLog::SpanResult::kContinues:
        break;
    }
    // A run that extends the one before is not maximal: the bytes were not written by Tandem.
    return Status::Corruption("snapshot runs are not in canonical form");
  }

  Status add_any(size_t i, const SnapshotData::Run& r, const Format* fmt) {
    const LV lv = log_.size();
    auto bad = [&](const std::string& why) { return Status::Corruption("snapshot run " + num(i) + ": " + why); };
    if (r.agent >= names_->size()) return bad("agent index out of range");
    if (r.agent > agents_seen_) return bad("agents out of order");
    if (r.agent == agents_seen_) ++agents_seen_;
    if (r.len == 0) return bad("empty run");
    if (uint64_t{lv} + r.len > internal::kMaxEvents) return Status::Corruption("snapshot has too many events");
    if (r.type > SnapshotData::kFormat) return bad("unknown type");
    if (r.type == SnapshotData::kFormat) {
      if (r.len != 1 || fmt == nullptr) return bad("format run without its format");
      ++formats_;
      const OpKind kind = fmt->end > 0 ? OpKind::kMark : OpKind::kBlock;
      if (Status st = ValidateFormat(kind, r.pos, *fmt); !st.ok()) return st.WithContext("snapshot run " + num(i));
      if (fmt->name == "comment") d_.comment_ids.insert(fmt->value);
    }
    parents_.clear();
    uint32_t len_before = 0;
    if (r.follows_previous) {
      if (lv == 0 || !r.parents.empty()) return bad("bad parents");
      parents_.push_back(lv - 1);
      len_before = last_op(log_).len_after(last_op(log_).len - 1);  // the event before is the last one
    } else {
      for (size_t k = 0; k < r.parents.size(); ++k) {
        if (r.parents[k] >= lv || (k && r.parents[k] <= r.parents[k - 1])) return bad("bad parents");
      }
      parents_.assign(r.parents.begin(), r.parents.end());
      if constexpr (requires { log_.knows(0); }) {
        if (!parents_.empty() && !log_.knows(parents_[0])) return bad("names its parents in a history said to be linear");
      }
      if (parents_.size() == 1) len_before = log_.len_after(parents_[0]);
      if (parents_.size() > 1) len_before = r.len_before;
    }
    if (!fits(r, len_before, fmt)) return bad("position out of range");
    uint32_t& a = interned_[r.agent];
    if (a == internal::kNoLV) a = log_.intern_agent((*names_)[r.agent]);
    return appended(i, r, fmt, log_.append_span(a, parents_, static_cast<internal::OpType>(r.type), r.pos, r.len, len_before));
  }

  Log& log_;
  Doc::Impl& d_;
  const std::vector<std::string>* names_ = nullptr;
  std::vector<uint32_t> interned_;  // snapshot agent -> log agent
  size_t agents_seen_ = 0;
  size_t formats_ = 0;
  uint32_t prev_agent_ = UINT32_MAX;  // of the run before: its snapshot agent index
  Frontier parents_;
};

// A SnapshotData's runs, in order, to `sink` (a RunChecker or a SnapshotLoader).
template <class Sink>
Status add_runs(const SnapshotData& data, Sink& sink) {
  if (data.events() > internal::kMaxEvents) return Status::Corruption("snapshot has too many events");
  size_t formats = 0;
  for (size_t i = 0; i < data.runs.size(); ++i) {
    const bool is_format = data.runs[i].type == SnapshotData::kFormat && formats < data.formats.size();
    TANDEM_RETURN_IF_ERROR(sink.add(i, data.runs[i], is_format ? &data.formats[formats++] : nullptr));
  }
  if (formats != data.formats.size()) return Status::Corruption("snapshot has formats no run uses");
  return Status::OK();
}

// A stretch of the visible text: insert events [lv, lv + len), from byte `byte` of the text.
struct Vis {
  LV lv;
  uint32_t len;
  size_t byte;
};

// True when the text runs name distinct events, all of them inserts (`inserted`: a bit per
// event, set for inserts; each text run clears the bits it shows). It cannot say which fault it
// met; the sorted walk of check_text can, and is taken only then.
bool shows_fresh_inserts(const std::vector<SnapshotData::TextRun>& text_runs, std::vector<uint64_t>& inserted) {
  for (const auto& t : text_runs) {
    const bool fresh = each_word(inserted, t.event, t.len, [](uint64_t& w, uint64_t m) {
      if ((w & m) != m) return false;
      w &= ~m;
      return true;
    });
    if (!fresh) return false;
  }
  return true;
}

// The text's checks: the text runs cover the text exactly, name distinct events of the log, all
// of them inserts, and the text's length is the history's when it has one latest event. Gives
// the text runs in text order (*runs). With `arena`, also builds the log's text (visible
// characters from the snapshot's text, placeholders for the rest, whose events go to d.deleted)
// as OpLog::replace_arena takes it. With `inserted` (the log's insert events as bits; a lazy load,
// which needs only the verdict), the bits give it without sorting the text runs.
template <class Log>
Status check_text(std::string_view text, const std::vector<SnapshotData::TextRun>& text_runs, const Log& log,
                  Doc::Impl& d, std::vector<LvRun>* runs,
                  std::string* arena, std::vector<uint32_t>* offsets, std::vector<uint64_t>* inserted) {
  auto info = utf8::inspect(text);
  if (!info.ok()) return info.status().WithContext("snapshot text");
  const size_t code_points = info->code_points;
  uint64_t covered = 0;
  const bool one_byte = code_points == text.size();  // then code points are bytes
  runs->reserve(text_runs.size());
  for (const auto& t : text_runs) {
    if (t.len == 0 || uint64_t{t.event} + t.len > log.size()) return Status::Corruption("snapshot text run out of range");
    if (covered + t.len > code_points) return Status::Corruption("snapshot text runs exceed the text");
    covered += t.len;
    runs->push_back({t.event, t.len});
  }
  if (covered != code_points) return Status::Corruption("snapshot text runs do not cover the text");
  if (d.frontier.size() == 1 && log.len_after(d.frontier[0]) != covered) {
    return Status::Corruption("snapshot text length " + num(covered) + " does not match its history (" +
                              num(log.len_after(d.frontier[0])) + ")");
  }
  if (inserted && shows_fresh_inserts(text_runs, *inserted)) return Status::OK();
  if constexpr (requires { log.kept(); }) {
    if (!log.kept()) return Status::Corruption("snapshot text does not match its history");
  }

  std::vector<Vis> vis;
  vis.reserve(text_runs.size());
  std::string_view rest(text);
  size_t byte = 0;
  for (const auto& t : text_runs) {
    const size_t b = one_byte ? t.len : utf8::byte_offset(rest, t.len);
    vis.push_back({t.event, t.len, byte});
    byte += b;
    rest = rest.substr(b);
  }
  internal::sort_by_lv_field(&vis);
  for (size_t k = 1; k < vis.size(); ++k) {
    if (vis[k].lv < vis[k - 1].lv + vis[k - 1].len) return Status::Corruption("snapshot shows a character twice");
  }

  if (arena) arena->reserve(text.size() + (log.size() - covered));
  size_t vi = 0;
  uint64_t vis_chars = 0;  // visible characters found inside insert events
  each_insert(log, [&](const LV lv, const uint32_t len) {
    const LV op_end = lv + len;
    if (arena) offsets->push_back(static_cast<uint32_t>(arena->size()));
    LV at = lv;
    while (at < op_end) {
      while (vi < vis.size() && vis[vi].lv + vis[vi].len <= at) ++vi;
      if (vi < vis.size() && vis[vi].lv <= at) {
        const Vis& v = vis[vi];
        const LV stop = std::min(op_end, v.lv + v.len);
        if (arena) {
          std::string_view piece = text.substr(v.byte);
          const size_t b0 = one_byte ? at - v.lv : utf8::byte_offset(piece, at - v.lv);
          const size_t b1 = one_byte ? stop - v.lv : utf8::byte_offset(piece, stop - v.lv);
          arena->append(piece.substr(b0, b1 - b0));
        }
        vis_chars += stop - at;
        at = stop;
      } else {
        const LV stop = vi < vis.size() ? std::min(op_end, vis[vi].lv) : op_end;
        if (arena) {
          arena->append(stop - at, static_cast<char>(internal::kPlaceholderByte));
          d.deleted.add(at, stop - at);
        }
        at = stop;
      }
    }
  });
  // Every visible character must be an insert event.
  if (vis_chars != covered) return Status::Corruption("snapshot text shows characters that are not inserts");
  if (inserted) return Status::Corruption("snapshot text does not match its history");  // the bits found a fault this walk did not
  return Status::OK();
}

}  // namespace

Result<Doc> Doc::from_snapshot(const SnapshotData& data, std::string_view agent) {
  TANDEM_RETURN_IF_ERROR(ValidateAgent(agent));
  auto impl = std::make_unique<Impl>();
  impl->agent_name = std::string(agent);
  Impl& d = *impl;
  OpLog& log = d.log;
  RunChecker<OpLog> check(log, d);
  TANDEM_RETURN_IF_ERROR(check.agents(data.agents));
  log.reserve_runs(data.runs.size());
  TANDEM_RETURN_IF_ERROR(add_runs(data, check));
  TANDEM_RETURN_IF_ERROR(check.finish());
  std::vector<LvRun> runs;
  std::string arena;
  std::vector<uint32_t> offsets;
  TANDEM_RETURN_IF_ERROR(check_text(data.text, data.text_runs, log, d, &runs, &arena, &offsets, nullptr));
  log.replace_arena(std::move(arena), offsets);
  d.rope.build(data.text, runs);
  for (uint32_t a = 0; a < log.num_agents(); ++a) d.version.advance(log.agent_name(a), log.next_seq(a));
  return Doc(std::move(impl));
}

Result<Doc> Doc::from_snapshot_lazy(const SnapshotData& data, std::string_view agent, std::string encoded,
                                    SnapshotDecoder decode) {
  SnapshotLoader load;
  TANDEM_RETURN_IF_ERROR(load.begin(agent, data.agents, data.runs.size(), false));
  TANDEM_RETURN_IF_ERROR(add_runs(data, load));
  return load.finish(data.text, data.text_runs, std::move(encoded), std::move(decode));
}

struct SnapshotLoader::State {
  std::unique_ptr<Doc::Impl> impl = std::make_unique<Doc::Impl>();
  std::vector<std::string> agents;
  RunShapes shapes;
  RunChecker<RunShapes> check{shapes, *impl};
};

SnapshotLoader::SnapshotLoader() = default;
SnapshotLoader::~SnapshotLoader() = default;

Status SnapshotLoader::begin(std::string_view agent, std::vector<std::string> agents, size_t runs, bool linear) {
  TANDEM_RETURN_IF_ERROR(Doc::ValidateAgent(agent));
  s_ = std::make_unique<State>();
  s_->impl->agent_name = std::string(agent);
  s_->agents = std::move(agents);
  TANDEM_RETURN_IF_ERROR(s_->check.agents(s_->agents));
  s_->shapes.reserve_runs(runs, linear);
  return Status::OK();
}

Status SnapshotLoader::add(size_t i, const SnapshotData::Run& run, const Format* format) {
  return s_->check.add(i, run, format);
}

size_t SnapshotLoader::add_typed(const TypedRun* runs, size_t n) { return s_->check.add_typed(runs, n); }

Result<Doc> SnapshotLoader::finish(std::string_view text, const std::vector<SnapshotData::TextRun>& text_runs,
                                   std::string encoded, Doc::SnapshotDecoder decode) {
  State& s = *s_;
  Doc::Impl& d = *s.impl;
  TANDEM_RETURN_IF_ERROR(s.check.finish());
  std::vector<LvRun> runs;
  TANDEM_RETURN_IF_ERROR(check_text(text, text_runs, s.shapes, d, &runs, nullptr, nullptr, &s.shapes.inserted()));
  d.rope.build(text, runs);
  // Agents are interned in order of first use, which is their order in the snapshot.
  for (uint32_t a = 0; a < s.shapes.agents(); ++a) d.version.advance(s.agents[a], s.shapes.next_seq(a));
  d.deferred = std::make_unique<Doc::Impl::Deferred>(
      Doc::Impl::Deferred{std::move(encoded), std::move(decode), s.shapes.size(), s.check.formats()});
  return Doc(std::move(s.impl));
}

Doc::Impl& Doc::build_deferred() const {
  Impl& d = *impl_;
  // The bytes passed every check when they were loaded, so neither step can fail here.
  const auto def = std::move(d.deferred);
  auto data = def->decode(def->bytes);
  // Bytes kept without their text (codec::load's) mean the text is the replica's own: nothing
  // changes the rope before the op log is built.
  if (data.ok() && data->text.empty()) data->text = d.rope.text();
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
