#include "oplog.h"

#include <algorithm>
#include <cassert>
#include <queue>

#include "crdt/utf8.h"
#include "lv_set.h"

namespace tandem::crdt::internal {

namespace {
template <typename V, typename F>
size_t index_of_last(const V& v, LV lv, F key) {
  // Index of the last element whose key is <= lv. REQUIRES v non-empty and key(v[0]) <= lv.
  auto it = std::upper_bound(v.begin(), v.end(), lv, [&](LV x, const auto& e) { return x < key(e); });
  assert(it != v.begin());
  return static_cast<size_t>(it - v.begin()) - 1;
}

// As index_of_last for entries that tile the LVs, trying first the entry found last (*hint), then
// the ones after it in steps that double (a scan in LV order skips a few entries at a time: a
// merge's inserts between its deletes), and the one before (a merge retreats backwards): a merge
// asks for the same few entries many times in a row.
template <typename V, typename Start, typename End>
size_t index_near(const V& v, LV lv, size_t* hint, Start start, End end) {
  const size_t h = *hint;
  if (h < v.size()) {
    if (lv >= start(v[h])) {
      if (lv < end(v[h])) return h;
      if (h + 1 < v.size() && lv < end(v[h + 1])) return *hint = h + 1;
      if (h + 2 < v.size()) {  // entries up to h + 2 start at or before lv: the entries tile
        const auto it = gallop_upper_bound(v.begin() + static_cast<std::ptrdiff_t>(h + 3), v.end(), lv, start);
        return *hint = static_cast<size_t>(it - v.begin()) - 1;
      }
    } else if (h > 0 && lv >= start(v[h - 1])) {
      return *hint = h - 1;
    }
  }
  return *hint = index_of_last(v, lv, start);
}

}  // namespace

uint32_t OpLog::find_agent(std::string_view name) const {
  auto it = agent_index_.find(name);
  return it == agent_index_.end() ? kNoLV : it->second;
}

uint32_t OpLog::intern_agent(std::string_view name) {
  uint32_t a = find_agent(name);
  if (a != kNoLV) return a;
  a = static_cast<uint32_t>(agents_.size());
  agents_.push_back({std::string(name), {}});
  agent_index_.emplace(std::string(name), a);
  return a;
}

uint32_t OpLog::next_seq(uint32_t agent) const {
  const auto& sp = agents_[agent].spans;
  return sp.empty() ? 0 : sp.back().seq + sp.back().len;
}

LV OpLog::lv_of(uint32_t agent, uint32_t seq) const {
  const auto& sp = agents_[agent].spans;
  if (!sp.empty() && seq >= sp.back().seq) {  // most parents are an agent's latest events
    return seq < sp.back().seq + sp.back().len ? sp.back().lv + (seq - sp.back().seq) : kNoLV;
  }
  auto it = std::upper_bound(sp.begin(), sp.end(), seq, [](uint32_t s, const SeqSpan& e) { return s < e.seq; });
  if (it == sp.begin()) return kNoLV;
  --it;
  return seq < it->seq + it->len ? it->lv + (seq - it->seq) : kNoLV;
}

AgentSpan OpLog::id_of(LV lv) const {
  const AgentSpan& s = agent_spans_[index_of_last(agent_spans_, lv, [](const AgentSpan& e) { return e.lv; })];
  return {lv, s.agent, s.seq + (lv - s.lv)};
}

size_t OpLog::graph_index(LV lv) const {
  return index_near(graph_, lv, &graph_hint_, [](const GraphEntry& e) { return e.start; },
                    [](const GraphEntry& e) { return e.end; });
}

size_t OpLog::op_index(LV lv) const {
  return index_near(ops_, lv, &op_hint_, [](const OpSpan& e) { return e.lv; }, [](const OpSpan& e) { return e.end(); });
}

void OpLog::parents_of(LV lv, Frontier* out) const {
  const GraphEntry& g = graph_[graph_index(lv)];
  if (lv == g.start) {
    *out = g.parents;
  } else {
    out->assign(1, lv - 1);
  }
}

uint32_t OpLog::len_after(LV lv) const {
  const OpSpan& op = ops_[op_index(lv)];
  return op.len_after(lv - op.lv);
}

std::string_view OpLog::content(LV lv, uint32_t n) const {
  const OpSpan& op = ops_[op_index(lv)];
  assert(op.type == kIns && lv + n <= op.end());
  std::string_view rest = std::string_view(arena_).substr(op.content);
  const size_t b0 = op.one_byte ? lv - op.lv : utf8::byte_offset(rest, lv - op.lv);
  rest = rest.substr(b0);
  return rest.substr(0, op.one_byte ? n : utf8::byte_offset(rest, n));
}


void OpLog::append(uint32_t agent, uint32_t seq, const Frontier& parents, OpType type, uint32_t pos,
                   uint32_t len, std::string_view content, uint32_t len_before) {
  assert(len > 0 && seq == next_seq(agent));
  const LV lv = end_;
  const bool linear = parents.size() == 1 && parents[0] + 1 == lv;
  if (type == kDelBack && len == 1) type = kDelFwd;

  // Fast path: the same agent continuing its own typing or deleting (most local edits).
  if (linear && !ops_.empty()) {
    OpSpan& last = ops_.back();
    const AgentSpan& as = agent_spans_.back();
    // (A one-event delete arrives as forward; one position left of a backward run continues it.)
    if (as.agent == agent && as.seq + (lv - as.lv) == seq &&
        type != kFmt && ((type == kIns && last.type == kIns && pos == last.pos + last.len) ||
         (type == kDelFwd && last.type == kDelFwd && pos == last.pos) ||
         (type != kIns && last.type == kDelBack && (type == kDelBack || len == 1) && pos == last.pos - last.len))) {
      last.len += len;
      agents_[agent].spans.back().len += len;
      graph_.back().end += len;
      if (type == kIns) last.one_byte = last.one_byte && track_content_ && content.size() == len;
      if (type == kIns && track_content_) {
        if (content.size() == 1) {
          arena_.push_back(content[0]);
        } else {
          arena_.append(content);
        }
      }
      end_ += len;
      return;
    }
  }

  bool agent_continues = false;
  if (!agent_spans_.empty()) {
    const AgentSpan& last = agent_spans_.back();
    agent_continues = last.agent == agent && last.seq + (lv - last.lv) == seq;
  }
  if (!agent_continues) agent_spans_.push_back({lv, agent, seq});

  auto& sp = agents_[agent].spans;
  if (!sp.empty() && sp.back().seq + sp.back().len == seq && sp.back().lv + sp.back().len == lv) {
    sp.back().len += len;
  } else {
    sp.push_back({seq, lv, len});
  }

  if (linear && !graph_.empty()) {
    assert(graph_.back().end == lv);
    graph_.back().end += len;
  } else {
    graph_.push_back({lv, lv + len, parents});
  }

  // Op spans merge greedily, event by event, so that the spans are the same however the events
  // were grouped on arrival (snapshots depend on it): `take` leading events extend the last span.
  uint32_t take = 0;
  if (linear && agent_continues && !ops_.empty()) {
    OpSpan& last = ops_.back();
    bool to_back = false;
    take = extend_by(last, type, pos, len, &to_back);
    if (to_back) last.type = kDelBack;
    last.len += take;
  }
  if (take > 0 && type == kIns) ops_.back().one_byte = ops_.back().one_byte && track_content_ && content.size() == len;
  if (take > 0 && type == kIns && track_content_) arena_.append(content);
  if (take < len) {
    const uint32_t rest = len - take;
    const uint32_t rest_pos = type == kIns ? pos + take : type == kDelFwd ? pos : pos - take;
    const uint32_t rest_len_before = type == kIns ? len_before + take : len_before - take;
    OpType rest_type = type == kDelBack && rest == 1 ? kDelFwd : type;
    ops_.push_back({lv + take, rest, rest_pos, take ? rest_len_before : len_before,
                    type == kIns ? static_cast<uint32_t>(arena_.size()) : 0, static_cast<uint8_t>(rest_type)});
    ops_.back().one_byte = type == kIns && track_content_ && content.size() == len;
    if (type == kIns && track_content_) arena_.append(content);
  }
  end_ += len;
}

void OpLog::append_format(uint32_t agent, uint32_t seq, const Frontier& parents, uint32_t pos, Format format,
                          uint32_t len_before) {
  append(agent, seq, parents, kFmt, pos, 1, {}, len_before);
  attach_format(std::move(format));
}

void OpLog::attach_format(Format format) {
  assert(!ops_.empty() && ops_.back().type == kFmt && ops_.back().len == 1);
  ops_.back().content = static_cast<uint32_t>(formats_.size());
  formats_.push_back(std::move(format));
}

OpLog::SpanResult OpLog::append_span(uint32_t agent, const Frontier& parents, OpType type, uint32_t pos, uint32_t len,
                                     uint32_t len_before) {
  const LV lv = end_;
  auto& sp = agents_[agent].spans;
  const uint32_t seq = sp.empty() ? 0 : sp.back().seq + sp.back().len;
  if (uint64_t{seq} + len > UINT32_MAX) return SpanResult::kSeqOverflow;
  if (type == kDelBack && len == 1) type = kDelFwd;
  const bool linear = parents.size() == 1 && parents[0] + 1 == lv;
  const bool agent_continues = !agent_spans_.empty() && agent_spans_.back().agent == agent &&
                               agent_spans_.back().seq + (lv - agent_spans_.back().lv) == seq;
  bool to_back = false;
  if (linear && agent_continues && extend_by(ops_.back(), type, pos, len, &to_back) > 0) return SpanResult::kContinues;

  if (!agent_continues) agent_spans_.push_back({lv, agent, seq});
  if (!sp.empty() && sp.back().lv + sp.back().len == lv) {
    sp.back().len += len;
  } else {
    sp.push_back({seq, lv, len});
  }
  if (linear) {
    graph_.back().end += len;
  } else {
    graph_.push_back({lv, lv + len, parents});
  }
  ops_.push_back({lv, len, pos, len_before, 0, static_cast<uint8_t>(type)});
  end_ += len;
  return SpanResult::kOk;
}

void OpLog::truncate(LV end, size_t num_agents) {
  if (end < end_) {
    while (!agent_spans_.empty() && agent_spans_.back().lv >= end) agent_spans_.pop_back();
    for (auto& a : agents_) {
      auto& sp = a.spans;
      while (!sp.empty() && sp.back().lv >= end) sp.pop_back();
      if (!sp.empty() && sp.back().lv + sp.back().len > end) sp.back().len = end - sp.back().lv;
    }
    while (!graph_.empty() && graph_.back().start >= end) graph_.pop_back();
    if (!graph_.empty() && graph_.back().end > end) graph_.back().end = end;
    while (!ops_.empty() && ops_.back().lv >= end) ops_.pop_back();
    if (!ops_.empty() && ops_.back().end() > end) ops_.back().len = end - ops_.back().lv;
    // A one-event delete is always recorded as forward (see append).
    if (!ops_.empty() && ops_.back().len == 1 && ops_.back().type == kDelBack) ops_.back().type = kDelFwd;
    size_t formats_end = 0;
    for (size_t i = ops_.size(); i-- > 0;) {
      if (ops_[i].type == kFmt) {
        formats_end = ops_[i].content + 1;
        break;
      }
    }
    formats_.resize(formats_end);
    size_t arena_end = 0;
    for (size_t i = ops_.size(); i-- > 0;) {
      if (ops_[i].type == kIns) {
        std::string_view rest = std::string_view(arena_).substr(ops_[i].content);
        arena_end = ops_[i].content + utf8::byte_offset(rest, ops_[i].len);
        break;
      }
    }
    arena_.resize(arena_end);
    end_ = end;
  }
  while (agents_.size() > num_agents) {
    agent_index_.erase(agents_.back().name);
    agents_.pop_back();
  }
}

void OpLog::replace_arena(std::string arena, const std::vector<uint32_t>& offsets) {
  arena_ = std::move(arena);
  size_t i = 0;
  for (auto& op : ops_) {
    if (op.type != kIns) continue;
    op.content = offsets[i];
    const size_t bytes = (i + 1 < offsets.size() ? offsets[i + 1] : arena_.size()) - offsets[i];
    op.one_byte = bytes == op.len;
    ++i;
  }
}

void OpLog::advance(Frontier* f, const Frontier& parents, LV last) {
  if (f->size() == 1 && parents.size() == 1 && (*f)[0] == parents[0]) {  // a linear history
    (*f)[0] = last;
    return;
  }
  if (!parents.empty()) {
    auto out = f->begin();
    for (auto it = f->begin(); it != f->end(); ++it) {
      if (!std::binary_search(parents.begin(), parents.end(), *it)) *out++ = *it;
    }
    f->erase(out, f->end());
  }
  f->insert(std::upper_bound(f->begin(), f->end(), last), last);
}

namespace {

enum Flag : uint8_t { kA = 1, kB = 2, kShared = 3 };
constexpr int64_t kRoot = -1;

struct QItem {
  int64_t lv;
  uint8_t flag;
  bool operator<(const QItem& o) const { return lv < o.lv; }
};

}  // namespace

bool OpLog::find_conflicting(const Frontier& a, const Frontier& b, LV* common, std::vector<Span>* zone,
                             uint64_t max_events) const {
  zone->clear();
  uint64_t events = 0;
  std::priority_queue<QItem> q;
  if (a.empty()) q.push({kRoot, kA});
  for (LV x : a) q.push({x, kA});
  if (b.empty()) q.push({kRoot, kB});
  for (LV x : b) q.push({x, kB});
  *common = kNoLV;
  while (!q.empty()) {
    QItem top = q.top();
    q.pop();
    uint8_t flag = top.flag;
    while (!q.empty() && q.top().lv == top.lv) {
      flag |= q.top().flag;
      q.pop();
    }
    if (q.empty() && flag == kShared) {
      *common = top.lv == kRoot ? kNoLV : static_cast<LV>(top.lv);
      break;
    }
    if (top.lv == kRoot) break;  // unreachable: both sides reach the root
    const LV lv = static_cast<LV>(top.lv);
    const GraphEntry& g = graph_[graph_index(lv)];
    LV lower = g.start;
    if (!q.empty() && q.top().lv >= static_cast<int64_t>(g.start)) lower = static_cast<LV>(q.top().lv) + 1;
    events += lv + 1 - lower;
    if (events > max_events) return false;
    if (!zone->empty() && zone->back().start == lv + 1) {
      zone->back().start = lower;
    } else {
      zone->push_back({lower, lv + 1});
    }
    if (lower > g.start) {
      q.push({lower - 1, flag});
    } else if (g.parents.empty()) {
      q.push({kRoot, flag});
    } else {
      for (LV p : g.parents) q.push({p, flag});
    }
  }
  std::reverse(zone->begin(), zone->end());
  return true;
}

void OpLog::diff(const Frontier& a, const Frontier& b, std::vector<Span>* only_a, std::vector<Span>* only_b) const {
  only_a->clear();
  only_b->clear();
  std::priority_queue<QItem> q;
  size_t unshared = 0;
  auto push = [&](int64_t lv, uint8_t flag) {
    q.push({lv, flag});
    if (flag != kShared) ++unshared;
  };
  for (LV x : a) push(x, kA);
  for (LV x : b) push(x, kB);
  while (unshared > 0) {
    QItem top = q.top();
    q.pop();
    if (top.flag != kShared) --unshared;
    uint8_t flag = top.flag;
    while (!q.empty() && q.top().lv == top.lv) {
      if (q.top().flag != kShared) --unshared;
      flag |= q.top().flag;
      q.pop();
    }
    if (top.lv == kRoot) continue;
    const LV lv = static_cast<LV>(top.lv);
    const GraphEntry& g = graph_[graph_index(lv)];
    LV lower = g.start;
    if (!q.empty() && q.top().lv >= static_cast<int64_t>(g.start)) lower = static_cast<LV>(q.top().lv) + 1;
    if (flag != kShared) {
      auto* out = flag == kA ? only_a : only_b;
      if (!out->empty() && out->back().start == lv + 1) {
        out->back().start = lower;
      } else {
        out->push_back({lower, lv + 1});
      }
    }
    if (lower > g.start) {
      push(lower - 1, flag);
    } else {
      for (LV p : g.parents) push(p, flag);
    }
  }
  std::reverse(only_a->begin(), only_a->end());
  std::reverse(only_b->begin(), only_b->end());
}

Status OpLog::check() const {
  LV at = 0;
  for (const auto& g : graph_) {
    if (g.start != at || g.end <= g.start) return Status::Internal("oplog: graph entries do not tile");
    for (size_t i = 0; i < g.parents.size(); ++i) {
      if (g.parents[i] >= g.start) return Status::Internal("oplog: parent after child");
      if (i && g.parents[i] <= g.parents[i - 1]) return Status::Internal("oplog: parents unsorted");
    }
    at = g.end;
  }
  if (at != end_) return Status::Internal("oplog: graph does not cover all events");
  at = 0;
  for (const auto& op : ops_) {
    if (op.lv != at || op.len == 0) return Status::Internal("oplog: op spans do not tile");
    const GraphEntry& g = graph_[graph_index(op.lv)];
    if (op.end() > g.end) return Status::Internal("oplog: op span crosses a graph entry");
    if (op.type == kFmt && (op.len != 1 || op.content >= formats_.size())) {
      return Status::Internal("oplog: bad format span");
    }
    at = op.end();
  }
  if (at != end_) return Status::Internal("oplog: ops do not cover all events");
  for (size_t i = 0; i < agent_spans_.size(); ++i) {
    if (i == 0 ? agent_spans_[i].lv != 0 : agent_spans_[i].lv <= agent_spans_[i - 1].lv) {
      return Status::Internal("oplog: agent spans out of order");
    }
  }
  for (uint32_t a = 0; a < agents_.size(); ++a) {
    uint32_t seq = 0;
    for (const auto& s : agents_[a].spans) {
      if (s.seq != seq || s.len == 0) return Status::Internal("oplog: agent seqs have a gap");
      for (uint32_t k : {0u, s.len - 1}) {
        AgentSpan id = id_of(s.lv + k);
        if (id.agent != a || id.seq != s.seq + k) return Status::Internal("oplog: agent maps disagree");
      }
      seq += s.len;
    }
  }
  return Status::OK();
}

size_t OpLog::heap_bytes() const {
  size_t n = agents_.capacity() * sizeof(Agent) + agent_spans_.capacity() * sizeof(AgentSpan) +
             graph_.capacity() * sizeof(GraphEntry) + ops_.capacity() * sizeof(OpSpan) + arena_.capacity() +
             formats_.capacity() * sizeof(Format);
  for (const auto& f : formats_) n += f.name.capacity() + f.value.capacity();
  for (const auto& a : agents_) n += a.spans.capacity() * sizeof(SeqSpan) + a.name.capacity();
  for (const auto& g : graph_) n += g.parents.capacity() * sizeof(LV);
  n += agent_index_.size() * (sizeof(std::string) + 32) + agent_index_.bucket_count() * sizeof(void*);
  return n;
}

}  // namespace tandem::crdt::internal
