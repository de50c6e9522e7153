#include "crdt/doc.h"

#include <algorithm>
#include <cassert>

#include "crdt/utf8.h"
#include "doc_impl.h"
#include "merge.h"

namespace tandem::crdt {


namespace {

constexpr size_t kMaxParents = 1024;

std::string run_name(const OpRun& r) { return "(" + r.agent + ", " + num(r.seq) + ")"; }

// Remembers the last few agent names found valid: the runs of a batch name the same few agents
// over and over, and comparing a name costs less than validating it again. The names are views
// into the batch being checked.
class AgentCheck {
 public:
  Status operator()(std::string_view agent) {
    for (std::string_view v : valid_) {
      if (!v.empty() && v == agent) return Status::OK();
    }
    Status st = Doc::ValidateAgent(agent);
    if (st.ok()) {
      valid_[next_] = agent;
      next_ = (next_ + 1) % 4;
    }
    return st;
  }

 private:
  std::string_view valid_[4];
  int next_ = 0;
};

// Checks what can be checked of a run without the document.
Status validate_run(const OpRun& r, AgentCheck& check_agent) {
  TANDEM_RETURN_IF_ERROR(check_agent(r.agent).WithContext("op run agent"));
  if (r.len == 0) return Status::InvalidArgument("op run " + run_name(r) + " is empty");
  if (r.len > internal::kMaxEvents || uint64_t{r.seq} + r.len > UINT32_MAX) {
    return Status::InvalidArgument("op run " + run_name(r) + " has too many events");
  }
  switch (r.kind) {
    case OpKind::kInsert: {
      auto info = utf8::inspect(r.content);
      if (!info.ok()) return info.status().WithContext("op run " + run_name(r));
      if (info->code_points != r.len) {
        return Status::InvalidArgument("op run " + run_name(r) + " has " + num(r.len) + " events but " +
                                       num(info->code_points) + " characters of text");
      }
      if (uint64_t{r.pos} + r.len > UINT32_MAX) return Status::InvalidArgument("op run position overflows");
      break;
    }
    case OpKind::kInsertDeleted:
    case OpKind::kDeleteForward:
      if (!r.content.empty()) return Status::InvalidArgument("op run " + run_name(r) + " carries text");
      if (r.kind == OpKind::kInsertDeleted && uint64_t{r.pos} + r.len > UINT32_MAX) {
        return Status::InvalidArgument("op run position overflows");
      }
      break;
    case OpKind::kDeleteBackward:
      if (!r.content.empty()) return Status::InvalidArgument("op run " + run_name(r) + " carries text");
      if (r.pos + 1 < r.len) {
        return Status::InvalidArgument("op run " + run_name(r) + " deletes backward past the start");
      }
      break;
    default:
      return Status::InvalidArgument("op run " + run_name(r) + " has an unknown kind");
  }
  if (r.parents.size() > kMaxParents) return Status::InvalidArgument("op run " + run_name(r) + " has too many parents");
  for (const OpId& p : r.parents) {
    TANDEM_RETURN_IF_ERROR(check_agent(p.agent).WithContext("parent agent"));
    if (p.agent == r.agent && p.seq >= r.seq) {
      return Status::InvalidArgument("op run " + run_name(r) + " depends on its own future");
    }
  }
  return Status::OK();
}

OpType type_of(OpKind k) {
  switch (k) {
    case OpKind::kDeleteForward: return internal::kDelFwd;
    case OpKind::kDeleteBackward: return internal::kDelBack;
    default: return internal::kIns;
  }
}

void append_patch(std::vector<Patch>* out, Patch p) {
  if (!out->empty()) {
    Patch& last = out->back();
    if (last.deleted == 0 && p.deleted == 0 &&
        p.pos_utf16 == last.pos_utf16 + last.inserted_utf16 && !p.inserted.empty()) {
      last.inserted += p.inserted;
      last.inserted_utf16 += p.inserted_utf16;
      return;
    }
    if (last.inserted.empty() && p.inserted.empty() && p.pos == last.pos) {
      last.deleted += p.deleted;
      last.deleted_utf16 += p.deleted_utf16;
      return;
    }
  }
  out->push_back(std::move(p));
}

}  // namespace

Status Doc::ValidateBatch(const OpBatch& batch) {
  AgentCheck check_agent;
  for (const OpRun& r : batch.runs) TANDEM_RETURN_IF_ERROR(validate_run(r, check_agent));
  return Status::OK();
}

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

Status Doc::insert(uint32_t pos, std::string_view text) {
  Impl& d = *impl_;
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
  Impl& d = *impl_;
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
  const Impl& d = *impl_;
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
uint64_t Doc::num_events() const { return impl_->log.size(); }
uint64_t Doc::pending_events() const { return impl_->pending_events; }

Doc::MergeWork Doc::last_merge_work() const {
  return {impl_->merge_cache.last_walked, impl_->merge_cache.last_replayed};
}

namespace {

struct Range {
  LV lv, end;
  uint32_t agent, seq;
};

// Appends to `out` the runs of the events in `ranges` (ascending LV ranges, each inside one agent
// span, (agent, seq) of its first event given).
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

}  // namespace

OpBatch Doc::ops_since(const Version& peer, DeletedText deleted) const {
  const Impl& d = *impl_;
  const OpLog& log = d.log;
  // The LV ranges of every agent's ops from the peer's next seq on, in LV (causal) order.
  std::vector<Range> ranges;
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
  std::sort(ranges.begin(), ranges.end(), [](const Range& x, const Range& y) { return x.lv < y.lv; });
  OpBatch out;
  runs_of(d, ranges, deleted, &out);
  return out;
}

Result<std::vector<Patch>> Doc::apply(const OpBatch& batch, OpBatch* added) {
  // Characters sent without their text must be deleted in the same apply. When a batch arrives
  // before what its deletion depends on (out of order), its runs of unknown text are held with
  // it, rather than the batch refused.
  std::string blocker;
  auto patches = apply_attempt(batch, added, {}, &blocker);
  if (!patches.ok() && !blocker.empty()) patches = apply_attempt(batch, added, blocker, nullptr);
  return patches;
}

Result<std::vector<Patch>> Doc::apply_attempt(const OpBatch& batch, OpBatch* added, std::string_view hold_unknown,
                                              std::string* retry_blocker) {
  Impl& d = *impl_;
  if (added) added->runs.clear();
  AgentCheck check_agent;
  for (const OpRun& r : batch.runs) TANDEM_RETURN_IF_ERROR(validate_run(r, check_agent));
  if (batch.runs.empty()) return std::vector<Patch>{};

  OpLog& log = d.log;
  const LV old_size = log.size();
  const size_t old_agents = log.num_agents();
  auto rollback = [&](Status st) -> Status {
    log.truncate(old_size, old_agents);
    d.merge_cache.clear();
    return st;
  };

  // Candidates: the batch's runs, then the held runs that waited for an agent this call advances
  // (woken as it advances). Each failing candidate records the agent it waits for.
  struct Cand {
    const OpRun* run;
    int64_t slot;  // -1: from the batch
    std::string_view blocker;
    bool done = false;
  };
  std::vector<Cand> cand;
  cand.reserve(batch.runs.size());
  for (const OpRun& r : batch.runs) cand.push_back({&r, -1, {}});
  std::vector<uint8_t> woken;  // per held slot, once it is a candidate
  std::vector<std::string_view> woken_agents;
  auto wake = [&](std::string_view agent) {
    if (d.pending_runs == 0) return;
    auto it = d.waiting.find(agent);
    if (it == d.waiting.end()) return;
    if (woken.empty()) woken.assign(d.pending.size(), 0);
    if (std::find(woken_agents.begin(), woken_agents.end(), agent) == woken_agents.end()) woken_agents.push_back(it->first);
    for (uint32_t slot : it->second) {
      if (slot < d.pending.size() && d.pending[slot].len > 0 && !woken[slot] && d.pending_blocker[slot] == agent) {
        woken[slot] = 1;
        cand.push_back({&d.pending[slot], slot, {}});
      }
    }
  };
  std::vector<uint32_t> touched;  // agents that advanced
  std::vector<uint8_t> is_touched;  // by agent index (a batch of a git history names 194 agents)

  Frontier all = d.frontier;
  Frontier parents;
  bool has_unknown = false;
  // Runs of one batch name the same few agents over and over.
  const std::string* cached_name = nullptr;
  uint32_t cached_index = kNoLV;
  auto find_agent = [&](const std::string& name) {
    if (cached_name && cached_index != kNoLV && *cached_name == name) return cached_index;
    cached_name = &name;
    cached_index = log.find_agent(name);
    return cached_index;
  };
  std::string placeholders;  // log.append copies what it needs
  bool progress = true;
  while (progress) {
    progress = false;
    for (size_t i = 0; i < cand.size(); ++i) {  // cand grows as runs are woken
      if (cand[i].done) continue;
      const OpRun& r = *cand[i].run;
      const uint32_t a = find_agent(r.agent);
      const uint32_t next = a == kNoLV ? 0 : log.next_seq(a);
      if (uint64_t{r.seq} + r.len <= next) {  // already held
        cand[i].done = true;
        continue;
      }
      if (r.seq > next) {  // an earlier op of its agent is missing
        cand[i].blocker = r.agent;
        continue;
      }
      const uint32_t skip = next - r.seq;
      parents.clear();
      if (skip > 0) {
        parents.push_back(log.lv_of(a, next - 1));
      } else {
        bool ready = true;
        for (const OpId& p : r.parents) {
          const uint32_t pa = find_agent(p.agent);
          const LV plv = pa == kNoLV ? kNoLV : log.lv_of(pa, p.seq);
          if (plv == kNoLV) {
            cand[i].blocker = p.agent;
            ready = false;
            break;
          }
          parents.push_back(plv);
        }
        if (!ready) continue;
        std::sort(parents.begin(), parents.end());
        parents.erase(std::unique(parents.begin(), parents.end()), parents.end());
      }
      if (r.kind == OpKind::kInsertDeleted && !hold_unknown.empty()) {
        cand[i].blocker = hold_unknown;
        continue;
      }
      const uint32_t n = r.len - skip;
      if (uint64_t{log.size()} + n > internal::kMaxEvents) {
        return rollback(Status::ResourceExhausted("document has too many operations"));
      }
      const uint32_t agent = a != kNoLV ? a : log.intern_agent(r.agent);
      std::string_view content;
      uint32_t pos = r.pos;
      switch (r.kind) {
        case OpKind::kInsert:
          content = std::string_view(r.content).substr(utf8::byte_offset(r.content, skip));
          pos += skip;
          break;
        case OpKind::kInsertDeleted:
          if (placeholders.size() < n) placeholders.assign(n, static_cast<char>(internal::kPlaceholderByte));
          content = std::string_view(placeholders).substr(0, n);
          pos += skip;
          has_unknown = true;
          break;
        case OpKind::kDeleteBackward:
          pos -= skip;
          break;
        case OpKind::kDeleteForward:
          break;
      }
      const LV first = log.size();
      log.append(agent, next, parents, type_of(r.kind), pos, n, content, 0);
      OpLog::advance(&all, parents, first + n - 1);
      cand[i].done = true;
      progress = true;
      if (agent >= is_touched.size()) is_touched.resize(agent + 1, 0);
      if (!is_touched[agent]) {
        is_touched[agent] = 1;
        touched.push_back(agent);
      }
      wake(r.agent);
    }
  }

  uint64_t still_events = d.pending_events;
  int64_t still_runs = d.pending_runs;
  for (const Cand& c : cand) {
    if (c.slot >= 0 && c.done) {
      still_events -= c.run->len;
      --still_runs;
    } else if (c.slot < 0 && !c.done) {
      still_events += c.run->len;
      ++still_runs;
    }
  }
  if (still_events > d.limits.max_pending_events || static_cast<uint64_t>(still_runs) > d.limits.max_pending_runs) {
    return rollback(Status::FailedPrecondition(
        "too many operations waiting for missing dependencies (" + num(still_events) + " events in " +
        num(static_cast<uint64_t>(still_runs)) + " runs; limits " + num(d.limits.max_pending_events) + " and " +
        num(d.limits.max_pending_runs) + ")"));
  }

  std::vector<Patch> patches;
  if (log.size() > old_size) {
    std::vector<internal::XfOp> xf;
    const uint32_t old_len = d.rope.length();
    Status st = internal::transform(&log, d.frontier, all, old_size, old_len, &xf, &d.merge_cache);
    if (!st.ok()) return rollback(st);
    uint64_t new_len = old_len;
    for (const auto& x : xf) new_len = x.insert ? new_len + x.len : new_len - x.len;
    if (new_len > d.limits.max_length) {
      return rollback(Status::ResourceExhausted("document would exceed " + num(d.limits.max_length) +
                                                " characters"));
    }

    // With characters of unknown text in play the batch may turn out invalid after applying it
    // (such characters left visible): then the rope is put back from what each step removed,
    // newest first (the batch's own size, where a copy of the text would cost the document's).
    struct Removed {
      uint32_t pos;
      size_t text_end, runs_end;  // in undo_text, undo_runs
    };
    std::vector<Removed> undo_removed;
    std::string undo_text;
    std::vector<LvRun> undo_runs;
    // Characters inserted without their text must all be removed again: none was visible before.
    uint64_t placeholders_in = 0, placeholders_out = 0;
    const auto count_placeholders = [](std::string_view t) {
      return static_cast<uint64_t>(std::count(t.begin(), t.end(), static_cast<char>(internal::kPlaceholderByte)));
    };
    // With characters of unknown text in play, report one patch for the whole changed region:
    // the edits in between may show text this replica does not have. So too when the replica
    // showed no text: its first sync (or a whole history) is one insert of the result.
    const bool one_patch = has_unknown || old_len == 0;
    uint32_t lo = UINT32_MAX, tail = UINT32_MAX;
    const uint32_t old_u16 = d.rope.length_utf16();
    std::vector<LvRun> removed;  // added to d.deleted at once, after the loop
    for (const auto& x : xf) {
      if (x.insert) {
        const std::string_view content = log.content(x.lv, x.len);
        if (!one_patch) {
          const uint32_t u16 = d.rope.utf16_of(x.pos);
          append_patch(&patches, {x.pos, 0, std::string(content), u16, 0,
                                 static_cast<uint32_t>(utf8::count_utf16(content))});
        } else if (has_unknown && old_len > 0) {
          placeholders_in += count_placeholders(content);
        }
        d.rope.insert(x.pos, content, x.len, x.lv);
        lo = std::min(lo, x.pos);
        tail = std::min(tail, d.rope.length() - (x.pos + x.len));
      } else {
        d.scratch.clear();
        if (has_unknown && old_len > 0) {  // (an empty text is put back by clearing)
          const size_t text_start = undo_text.size();
          d.rope.remove(x.pos, x.len, &undo_text, &d.scratch);
          placeholders_out += count_placeholders(std::string_view(undo_text).substr(text_start));
          undo_runs.insert(undo_runs.end(), d.scratch.begin(), d.scratch.end());
          undo_removed.push_back({x.pos, undo_text.size(), undo_runs.size()});
        } else if (one_patch) {
          d.rope.remove(x.pos, x.len, nullptr, &d.scratch);
        } else {
          const uint32_t u0 = d.rope.utf16_of(x.pos);
          const uint32_t u1 = d.rope.utf16_of(x.pos + x.len);
          d.rope.remove(x.pos, x.len, nullptr, &d.scratch);
          append_patch(&patches, {x.pos, x.len, {}, u0, u1 - u0, 0});
        }
        removed.insert(removed.end(), d.scratch.begin(), d.scratch.end());
        lo = std::min(lo, x.pos);
        tail = std::min(tail, d.rope.length() - x.pos);
      }
    }
    // (Into an empty text, the result is checked instead: it is what the batch made.)
    if (placeholders_in != placeholders_out || (has_unknown && old_len == 0 && d.rope.contains_placeholder())) {
      // Undo, newest first: inserts are removed again, removals put back.
      if (old_len == 0) {
        d.rope.clear();
      } else {
        size_t next_removed = undo_removed.size();
        for (auto it = xf.rbegin(); it != xf.rend(); ++it) {
          if (it->insert) {
            d.rope.remove(it->pos, it->len, nullptr, nullptr);
          } else {
            const Removed& u = undo_removed[--next_removed];
            const size_t text_start = next_removed ? undo_removed[next_removed - 1].text_end : 0;
            const size_t runs_start = next_removed ? undo_removed[next_removed - 1].runs_end : 0;
            const std::vector<LvRun> runs(undo_runs.begin() + static_cast<std::ptrdiff_t>(runs_start),
                                          undo_runs.begin() + static_cast<std::ptrdiff_t>(u.runs_end));
            d.rope.insert_runs(u.pos, std::string_view(undo_text).substr(text_start, u.text_end - text_start), runs);
          }
        }
      }
      if (retry_blocker) {
        for (const Cand& c : cand) {
          if (!c.done) {
            *retry_blocker = std::string(c.blocker);
            break;
          }
        }
      }
      return rollback(Status::InvalidArgument(
          "batch inserts characters without their text (kInsertDeleted) that it does not also delete"));
    }
    d.deleted.add_all(removed);
    if (one_patch) {
      if (!xf.empty()) {
        const uint32_t new_len32 = d.rope.length();
        const uint32_t mid = new_len32 - lo - tail;
        Patch p;
        p.pos = lo;
        p.deleted = old_len - lo - tail;
        p.inserted = d.rope.substr(lo, mid);
        p.pos_utf16 = d.rope.utf16_of(lo);
        const uint32_t tail_u16 = d.rope.length_utf16() - d.rope.utf16_of(lo + mid);
        p.deleted_utf16 = old_u16 - p.pos_utf16 - tail_u16;
        p.inserted_utf16 = static_cast<uint32_t>(utf8::count_utf16(p.inserted));
        if (p.deleted || !p.inserted.empty()) patches.push_back(std::move(p));
      }
    }
  }

  // Commit.
  if (added) {
    std::vector<Range> ranges;
    for (LV lv = old_size; lv < log.size();) {
      const auto& spans = log.agent_spans();
      auto it = std::upper_bound(spans.begin(), spans.end(), lv,
                                 [](LV x, const internal::AgentSpan& s) { return x < s.lv; });
      const LV end = it == spans.end() ? log.size() : it->lv;
      --it;
      ranges.push_back({lv, end, it->agent, it->seq + (lv - it->lv)});
      lv = end;
    }
    runs_of(d, ranges, DeletedText::kInclude, added);
  }
  d.synced_version();
  for (uint32_t a : touched) d.version.advance(log.agent_name(a), log.next_seq(a));
  d.frontier = std::move(all);
  // The held runs: woken ones leave their agents' lists and go where they wait now.
  for (std::string_view a : woken_agents) d.waiting.erase(d.waiting.find(a));
  std::vector<std::pair<std::string, uint32_t>> waits;
  // A blocker may view a name inside a held run, and the loop below moves held runs (clearing
  // slots, growing d.pending): short names live inside the run itself, so take copies first.
  std::vector<std::string> blockers;
  for (size_t i = 0; i < cand.size(); ++i) {
    if (!cand[i].done) {
      if (blockers.empty()) blockers.resize(cand.size());
      blockers[i] = std::string(cand[i].blocker);
    }
  }
  for (size_t i = 0; i < cand.size(); ++i) {
    const Cand& c = cand[i];
    if (c.slot >= 0) {
      const auto slot = static_cast<uint32_t>(c.slot);
      if (c.done) {
        d.pending[slot] = OpRun{};
        d.pending_blocker[slot].clear();
        d.pending_free.push_back(slot);
      } else {
        d.pending_blocker[slot] = std::move(blockers[i]);
        waits.emplace_back(d.pending_blocker[slot], slot);
      }
    } else if (!c.done) {
      uint32_t slot;
      if (!d.pending_free.empty()) {
        slot = d.pending_free.back();
        d.pending_free.pop_back();
        d.pending[slot] = *c.run;
        d.pending_blocker[slot] = std::move(blockers[i]);
      } else {
        slot = static_cast<uint32_t>(d.pending.size());
        d.pending.push_back(*c.run);
        d.pending_blocker.push_back(std::move(blockers[i]));
      }
      waits.emplace_back(d.pending_blocker[slot], slot);
    }
  }
  for (auto& [agent, slot] : waits) d.waiting[std::move(agent)].push_back(slot);
  d.pending_events = still_events;
  d.pending_runs = static_cast<uint32_t>(still_runs);
  if (d.pending_runs == 0) {
    d.pending.clear();
    d.pending_blocker.clear();
    d.pending_free.clear();
    d.waiting.clear();
  }
  return patches;
}

Status Doc::check_invariants() const {
  const Impl& d = *impl_;
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
  size_t n = sizeof(Impl) + d.rope.heap_bytes() + d.log.heap_bytes() + d.frontier.capacity() * sizeof(LV) +
             d.deleted.heap_bytes() + d.scratch.capacity() * sizeof(LvRun);
  n += d.pending.capacity() * sizeof(OpRun) + d.pending_blocker.capacity() * sizeof(std::string);
  for (const auto& r : d.pending) n += r.content.capacity() + r.parents.capacity() * sizeof(OpId);
  for (const auto& [agent, slots] : d.waiting) n += agent.capacity() + slots.capacity() * sizeof(uint32_t) + 32;
  for (const auto& e : d.version.entries()) n += sizeof(e) + e.first.capacity();
  return n;
}

}  // namespace tandem::crdt
