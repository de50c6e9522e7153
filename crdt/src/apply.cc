// Doc::apply: merging remote operations into a replica.
//
// One call runs rounds. A round appends to the log every run whose dependencies the replica holds
// (the batch's runs and the held runs that the agents it advances may unblock), transforms them
// into edits of the text and applies those. Characters sent without their text (kInsertDeleted)
// must be deleted by the time the round ends; when some stay visible, the round is undone and the
// next one holds their runs back, until none does. A round that fails otherwise fails the call.
#include <algorithm>
#include <iterator>

#include "crdt/batch.h"
#include "crdt/format.h"
#include "crdt/utf8.h"
#include "doc_impl.h"
#include "merge.h"

namespace tandem::crdt {

namespace {

constexpr size_t kMaxParents = 1024;

// A held run of unknown text whose deletion waits for operations not here yet waits under this
// name, which no agent has (names are never empty), and is tried again by every apply: what it
// waits for is its deletion, which may in turn wait for it (a deletion depends on what it deletes).
constexpr std::string_view kUnknownTextWait{};

// Rounds that hold back only the runs whose characters a round left visible. Each round holds
// back more of them, so the rounds end; past this many (a chain of deletions, each depending on
// characters whose own deletion is missing) one more round holds back every run of unknown text.
constexpr int kExactRounds = 4;

std::string run_name(std::string_view agent, uint32_t seq) {
  std::string s = "(";
  s.append(agent).append(", ").append(num(seq)).append(")");
  return s;
}

// Checks what can be checked of a batch without the document: every index and range, every
// agent name once, each run's text (UTF-8 and code points in one pass) and format.
Status validate_batch(const Batch& b) {
  const uint64_t nbytes = b.bytes.size();
  auto in_bytes = [&](Batch::Bytes r) { return uint64_t{r.off} + r.len <= nbytes; };
  for (const Batch::Bytes& a : b.agents) {
    if (!in_bytes(a)) return Status::InvalidArgument("op batch: agent name outside its bytes");
    TANDEM_RETURN_IF_ERROR(Doc::ValidateAgent(b.view(a)).WithContext("op run agent"));
  }
  if (b.agents.size() > 1) {  // a run's own parents are told from others by agent index
    std::vector<std::string_view> names;
    names.reserve(b.agents.size());
    for (const Batch::Bytes& a : b.agents) names.push_back(b.view(a));
    std::sort(names.begin(), names.end());
    if (std::adjacent_find(names.begin(), names.end()) != names.end()) {
      return Status::InvalidArgument("op batch names an agent twice in its table");
    }
  }
  const auto nagents = static_cast<uint32_t>(b.agents.size());
  for (const Batch::Run& r : b.runs) {
    if (r.agent >= nagents) return Status::InvalidArgument("op run names no agent of its batch");
    const std::string_view agent = b.agent(r.agent);
    auto name = [&] { return run_name(agent, r.seq); };
    if (r.len == 0) return Status::InvalidArgument("op run " + name() + " is empty");
    if (r.len > internal::kMaxEvents || uint64_t{r.seq} + r.len > UINT32_MAX) {
      return Status::InvalidArgument("op run " + name() + " has too many events");
    }
    if (!in_bytes(r.text)) return Status::InvalidArgument("op run " + name() + ": text outside its bytes");
    const bool has_text = r.text.len > 0;
    switch (r.kind) {
      case OpKind::kInsert: {
        auto info = utf8::inspect(b.text(r));
        if (!info.ok()) return info.status().WithContext("op run " + name());
        if (info->code_points != r.len) {
          return Status::InvalidArgument("op run " + name() + " has " + num(r.len) + " events but " +
                                         num(info->code_points) + " characters of text");
        }
        if (uint64_t{r.pos} + r.len > UINT32_MAX) return Status::InvalidArgument("op run position overflows");
        break;
      }
      case OpKind::kInsertDeleted:
      case OpKind::kDeleteForward:
        if (has_text) return Status::InvalidArgument("op run " + name() + " carries text");
        if (r.kind == OpKind::kInsertDeleted && uint64_t{r.pos} + r.len > UINT32_MAX) {
          return Status::InvalidArgument("op run position overflows");
        }
        break;
      case OpKind::kDeleteBackward:
        if (has_text) return Status::InvalidArgument("op run " + name() + " carries text");
        if (r.pos + 1 < r.len) {
          return Status::InvalidArgument("op run " + name() + " deletes backward past the start");
        }
        break;
      case OpKind::kMark:
      case OpKind::kBlock:
        if (has_text || r.len != 1) {
          return Status::InvalidArgument("op run " + name() + " is a format event: one event, no text");
        }
        if (r.format >= b.formats.size()) {
          return Status::InvalidArgument("op run " + name() + " is a format event without its format");
        }
        if (Status st = ValidateFormat(r.kind, r.pos, b.formats[r.format]); !st.ok()) {
          return st.WithContext("op run " + name());
        }
        break;
      default:
        return Status::InvalidArgument("op run " + name() + " has an unknown kind");
    }
    if (!IsFormat(r.kind) && r.format != Batch::kNoFormat) {
      return Status::InvalidArgument("op run " + name() + " carries a format but is not a format event");
    }
    if (r.nparents > kMaxParents) return Status::InvalidArgument("op run " + name() + " has too many parents");
    if (uint64_t{r.parents} + r.nparents > b.parents.size()) {
      return Status::InvalidArgument("op run " + name() + ": parents outside the batch's list");
    }
    for (const Batch::Parent& p : b.parents_of(r)) {
      if (p.agent >= nagents) return Status::InvalidArgument("op run " + name() + " names a parent of no agent");
      if (p.agent == r.agent && p.seq >= r.seq) {
        return Status::InvalidArgument("op run " + name() + " depends on its own future");
      }
    }
  }
  return Status::OK();
}

OpType type_of(OpKind k) {
  switch (k) {
    case OpKind::kDeleteForward: return internal::kDelFwd;
    case OpKind::kDeleteBackward: return internal::kDelBack;
    case OpKind::kMark:
    case OpKind::kBlock: return internal::kFmt;
    default: return internal::kIns;
  }
}

bool is_delete(OpKind k) { return k == OpKind::kDeleteForward || k == OpKind::kDeleteBackward; }

void append_patch(std::vector<Patch>* out, Patch p) {
  if (!out->empty()) {
    Patch& last = out->back();
    if (last.deleted == 0 && p.deleted == 0 && p.pos_utf16 == last.pos_utf16 + last.inserted_utf16 &&
        !p.inserted.empty()) {
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

// Runs of unknown text that a round holds back although their dependencies are here.
struct HeldBack {
  std::vector<uint8_t> batch;  // by index in the batch
  std::vector<uint8_t> slot;   // by held slot
  bool all = false;            // every one
};

// One round of Doc::apply. Its steps run in order: integrate, check_held_limits, update_text,
// then commit, or rollback (which may follow any step).
class Round {
 public:
  Round(Doc::Impl& d, const Batch& batch, const HeldBack& held_back)
      : d_(d), log_(d.log), batch_(batch), held_back_(held_back), old_size_(log_.size()),
        old_agents_(log_.num_agents()), old_formats_(log_.num_formats()), all_(d.frontier),
        agent_map_(batch.agents.size(), kNoLV) {}

  Status integrate();
  Status check_held_limits();
  Status check_comments();
  Status update_text(std::vector<Patch>* patches);  // patches: null to report none
  void commit(OpBatch* added, bool* as_received);
  void rollback();

  // After update_text: whether characters of unknown text stayed visible (the text is then put
  // back as it was); whether the batch is to blame (its own such characters, with none of its
  // later deletions held: it did not delete them); and which runs to hold back next round.
  bool unknown_left_visible() const { return !visible_.empty(); }
  bool batch_left_unknown_visible() const;
  void hold_back_visible(HeldBack* held_back) const;

 private:
  // A run to integrate: one of the batch's, or a held run woken by this round.
  struct Cand {
    int64_t slot;              // held slot, or -1 for the batch's run number `index`
    size_t index;
    uint32_t len;              // events
    std::string_view blocker;  // when not done: the agent it waits for
    bool done = false;         // integrated now, or held already
    LV first = 0;              // integrated now: its new events [first, first + n)
    uint32_t n = 0;
  };
  // Rope edits a round may have to undo: what each removal took, newest last.
  struct Removed {
    uint32_t pos;
    size_t text_end, runs_end;  // in undo_text_, undo_runs_
  };

  // A candidate's run, from the batch or held: the batch's parents are agent indices into its
  // table, a held run's are names.
  struct RunView {
    std::string_view agent;
    uint32_t batch_agent;  // index in the batch's table; kNoLV for a held run
    uint32_t seq;
    OpKind kind;
    uint32_t pos;
    uint32_t len;
    std::string_view content;
    const Format* format;
    std::span<const Batch::Parent> batch_parents;
    const std::vector<OpId>* held_parents;
  };
  RunView view(const Cand& c) const;
  bool integrated_as_received() const;

  void wake(std::string_view agent);
  uint32_t find_agent(std::string_view name);
  uint32_t batch_agent(uint32_t i);
  Status try_integrate(size_t i, bool* progress);
  bool find_parents(const RunView& r, uint32_t agent, uint32_t next, std::string_view* blocker);
  bool holds_back(const Cand& c) const;
  void edit_rope(const std::vector<internal::XfOp>& xf, std::vector<Patch>* patches);
  void find_visible_unknown();
  void undo_rope(const std::vector<internal::XfOp>& xf);
  void update_held_runs();

  Doc::Impl& d_;
  OpLog& log_;
  const Batch& batch_;
  const HeldBack& held_back_;
  const LV old_size_;
  const size_t old_agents_;
  const size_t old_formats_;
  std::vector<std::string> new_comments_;  // comment ids this round adds
  Frontier all_;      // the frontier of the whole log as it grows
  Frontier parents_;  // scratch
  std::vector<uint32_t> agent_map_;  // the batch's agents as the log's, kNoLV until found

  std::vector<Cand> cand_;
  std::vector<uint8_t> woken_;  // per held slot, once it is a candidate
  std::vector<std::string_view> woken_agents_;
  std::vector<uint32_t> touched_;     // agents that advanced
  std::vector<uint8_t> is_touched_;   // by agent index (a batch of a git history names 194 agents)
  std::string_view cached_name_;
  uint32_t cached_index_ = kNoLV;
  std::string placeholders_;          // log.append copies what it needs
  std::vector<size_t> unknown_;       // candidates integrated without their text
  uint64_t still_events_ = 0;         // held after this round
  uint32_t still_runs_ = 0;

  uint32_t old_len_ = 0;
  bool one_patch_ = false;
  std::vector<LvRun> removed_;  // characters this round removed from the text
  std::vector<Removed> undo_removed_;
  std::string undo_text_;
  std::vector<LvRun> undo_runs_;
  uint32_t lo_ = UINT32_MAX, tail_ = UINT32_MAX;  // the changed region: from lo_ to tail_ before the end
  std::vector<size_t> visible_;  // candidates whose characters of unknown text stayed visible
};

uint32_t Round::find_agent(std::string_view name) {
  // Held runs name the same few agents over and over.
  if (cached_index_ != kNoLV && cached_name_ == name) return cached_index_;
  cached_name_ = name;
  cached_index_ = log_.find_agent(name);
  return cached_index_;
}

uint32_t Round::batch_agent(uint32_t i) {
  uint32_t& a = agent_map_[i];
  if (a == kNoLV) a = log_.find_agent(batch_.agent(i));
  return a;
}

Round::RunView Round::view(const Cand& c) const {
  if (c.slot < 0) {
    const Batch::Run& r = batch_.runs[c.index];
    return {batch_.agent(r.agent), r.agent, r.seq, r.kind, r.pos, r.len,
            r.kind == OpKind::kInsert ? batch_.text(r) : std::string_view{},
            IsFormat(r.kind) ? &batch_.formats[r.format] : nullptr, batch_.parents_of(r), nullptr};
  }
  const OpRun& r = d_.pending[static_cast<size_t>(c.slot)];
  return {r.agent, kNoLV, r.seq, r.kind, r.pos, r.len, r.content, r.format ? &*r.format : nullptr, {}, &r.parents};
}

// Held runs that waited for `agent` become candidates.
void Round::wake(std::string_view agent) {
  if (d_.pending_runs == 0) return;
  auto it = d_.waiting.find(agent);
  if (it == d_.waiting.end()) return;
  if (woken_.empty()) woken_.assign(d_.pending.size(), 0);
  if (std::find(woken_agents_.begin(), woken_agents_.end(), agent) == woken_agents_.end()) {
    woken_agents_.push_back(it->first);
  }
  for (uint32_t slot : it->second) {
    if (slot < d_.pending.size() && d_.pending[slot].len > 0 && !woken_[slot] && d_.pending_blocker[slot] == agent) {
      woken_[slot] = 1;
      cand_.push_back({slot, 0, d_.pending[slot].len, {}});
    }
  }
}

Status Round::integrate() {
  cand_.resize(batch_.runs.size());
  size_t content = 0;  // at most what the log's text grows by
  for (size_t i = 0; i < cand_.size(); ++i) {
    const Batch::Run& r = batch_.runs[i];
    cand_[i].slot = -1;
    cand_[i].index = i;
    cand_[i].len = r.len;
    content += r.kind == OpKind::kInsert ? r.text.len : r.kind == OpKind::kInsertDeleted ? r.len : 0;
  }
  log_.expect(batch_.runs.size(), content);
  wake(kUnknownTextWait);
  bool progress = true;
  while (progress) {
    progress = false;
    for (size_t i = 0; i < cand_.size(); ++i) {  // cand_ grows as runs are woken
      if (!cand_[i].done) TANDEM_RETURN_IF_ERROR(try_integrate(i, &progress));
    }
  }
  return Status::OK();
}

// The LVs of a run's parents into parents_, or false with the agent it waits for.
bool Round::find_parents(const RunView& r, uint32_t agent, uint32_t next, std::string_view* blocker) {
  parents_.clear();
  if (next > r.seq) {  // its first events are held already: the rest follow the last of them
    parents_.push_back(log_.lv_of(agent, next - 1));
    return true;
  }
  if (r.held_parents) {
    for (const OpId& p : *r.held_parents) {
      const uint32_t pa = find_agent(p.agent);
      const LV plv = pa == kNoLV ? kNoLV : log_.lv_of(pa, p.seq);
      if (plv == kNoLV) {
        *blocker = p.agent;
        return false;
      }
      parents_.push_back(plv);
    }
  } else {
    for (const Batch::Parent& p : r.batch_parents) {
      const uint32_t pa = p.agent == r.batch_agent && agent != kNoLV ? agent : batch_agent(p.agent);
      const LV plv = pa == kNoLV ? kNoLV : log_.lv_of(pa, p.seq);
      if (plv == kNoLV) {
        *blocker = batch_.agent(p.agent);
        return false;
      }
      parents_.push_back(plv);
    }
  }
  if (parents_.size() > 1) {
    std::sort(parents_.begin(), parents_.end());
    parents_.erase(std::unique(parents_.begin(), parents_.end()), parents_.end());
  }
  return true;
}

bool Round::holds_back(const Cand& c) const {
  if (held_back_.all) return true;
  const auto& marks = c.slot < 0 ? held_back_.batch : held_back_.slot;
  const size_t at = c.slot < 0 ? c.index : static_cast<size_t>(c.slot);
  return at < marks.size() && marks[at];
}

Status Round::try_integrate(size_t i, bool* progress) {
  Cand& c = cand_[i];
  const RunView r = view(c);
  const uint32_t a = r.batch_agent != kNoLV ? batch_agent(r.batch_agent) : find_agent(r.agent);
  const uint32_t next = a == kNoLV ? 0 : log_.next_seq(a);
  if (uint64_t{r.seq} + r.len <= next) {  // held already
    c.done = true;
    return Status::OK();
  }
  if (r.seq > next) {  // an earlier op of its agent is missing
    c.blocker = r.agent;
    return Status::OK();
  }
  if (!find_parents(r, a, next, &c.blocker)) return Status::OK();
  if (r.kind == OpKind::kInsertDeleted && holds_back(c)) {
    c.blocker = kUnknownTextWait;
    return Status::OK();
  }
  const uint32_t skip = next - r.seq;
  const uint32_t n = r.len - skip;
  if (uint64_t{log_.size()} + n > internal::kMaxEvents) {
    return Status::ResourceExhausted("document has too many operations");
  }
  uint32_t agent = a;
  if (agent == kNoLV) {
    agent = log_.intern_agent(r.agent);
    if (r.batch_agent != kNoLV) agent_map_[r.batch_agent] = agent;
  }
  std::string_view content;
  uint32_t pos = r.pos;
  switch (r.kind) {
    case OpKind::kInsert:
      content = skip ? r.content.substr(utf8::byte_offset(r.content, skip)) : r.content;
      pos += skip;
      break;
    case OpKind::kInsertDeleted:
      if (placeholders_.size() < n) placeholders_.assign(n, static_cast<char>(internal::kPlaceholderByte));
      content = std::string_view(placeholders_).substr(0, n);
      pos += skip;
      unknown_.push_back(i);
      break;
    case OpKind::kDeleteBackward:
      pos -= skip;
      break;
    case OpKind::kDeleteForward:
    case OpKind::kMark:
    case OpKind::kBlock:
      break;
  }
  const LV first = log_.size();
  if (IsFormat(r.kind)) {
    log_.append_format(agent, next, parents_, pos, *r.format, 0);
  } else {
    log_.append(agent, next, parents_, type_of(r.kind), pos, n, content, 0);
  }
  OpLog::advance(&all_, parents_, first + n - 1);
  c.done = true;
  c.first = first;
  c.n = n;
  *progress = true;
  if (agent >= is_touched_.size()) is_touched_.resize(agent + 1, 0);
  if (!is_touched_[agent]) {
    is_touched_[agent] = 1;
    touched_.push_back(agent);
  }
  if (d_.pending_runs) wake(r.agent);  // (c may move: cand_ grows)
  return Status::OK();
}

// Counts what stays held after this round against DocLimits.
Status Round::check_held_limits() {
  uint64_t events = d_.pending_events;
  int64_t runs = d_.pending_runs;
  for (const Cand& c : cand_) {
    if (c.slot >= 0 && c.done) {
      events -= c.len;
      --runs;
    } else if (c.slot < 0 && !c.done) {
      events += c.len;
      ++runs;
    }
  }
  if (events > d_.limits.max_pending_events || static_cast<uint64_t>(runs) > d_.limits.max_pending_runs) {
    return Status::FailedPrecondition("too many operations waiting for missing dependencies (" + num(events) +
                                      " events in " + num(static_cast<uint64_t>(runs)) + " runs; limits " +
                                      num(d_.limits.max_pending_events) + " and " + num(d_.limits.max_pending_runs) + ")");
  }
  still_events_ = events;
  still_runs_ = static_cast<uint32_t>(runs);
  return Status::OK();
}

Status Round::update_text(std::vector<Patch>* patches) {
  if (log_.size() == old_size_) return Status::OK();
  std::vector<internal::XfOp> xf;
  old_len_ = d_.rope.length();
  TANDEM_RETURN_IF_ERROR(internal::transform(&log_, d_.frontier, all_, old_size_, old_len_, &xf, &d_.merge_cache));
  uint64_t new_len = old_len_;
  for (const auto& x : xf) new_len = x.insert ? new_len + x.len : new_len - x.len;
  if (new_len > d_.limits.max_length) {
    return Status::ResourceExhausted("document would exceed " + num(d_.limits.max_length) + " characters");
  }
  // With characters of unknown text in play, one patch covers the whole changed region: the
  // edits in between may show text this replica does not have. So too when the replica showed
  // no text: its first sync (or a whole history) is one insert of the result.
  one_patch_ = !unknown_.empty() || old_len_ == 0;
  const uint32_t old_u16 = d_.rope.length_utf16();
  edit_rope(xf, patches);
  find_visible_unknown();
  if (!visible_.empty()) {
    undo_rope(xf);
    return Status::OK();
  }
  if (one_patch_ && !xf.empty() && patches) {
    const uint32_t mid = d_.rope.length() - lo_ - tail_;
    Patch p;
    p.pos = lo_;
    p.deleted = old_len_ - lo_ - tail_;
    p.inserted = d_.rope.substr(lo_, mid);
    p.pos_utf16 = d_.rope.utf16_of(lo_);
    const uint32_t tail_u16 = d_.rope.length_utf16() - d_.rope.utf16_of(lo_ + mid);
    p.deleted_utf16 = old_u16 - p.pos_utf16 - tail_u16;
    p.inserted_utf16 = d_.rope.length_utf16() - tail_u16 - p.pos_utf16;
    if (p.deleted || !p.inserted.empty()) patches->push_back(std::move(p));
  }
  return Status::OK();
}

// Applies the transformed edits to the rope, reporting them as patches one by one unless
// one_patch_. With characters of unknown text in play, what each removal takes is kept, so that
// the rope can be put back (at the cost of the batch's size, where a copy of the text would cost
// the document's).
void Round::edit_rope(const std::vector<internal::XfOp>& xf, std::vector<Patch>* patches) {
  const bool keep_undo = !unknown_.empty() && old_len_ > 0;  // (an empty text is put back by clearing)
  size_t removals = 0;
  for (const auto& x : xf) removals += !x.insert;
  removed_.reserve(removed_.size() + removals);  // a removal takes one run or more
  for (const auto& x : xf) {
    if (x.insert) {
      const std::string_view content = log_.content(x.lv, x.len);
      if (!one_patch_ && patches) {
        const uint32_t u16 = d_.rope.utf16_of(x.pos);
        append_patch(patches, {x.pos, 0, std::string(content), u16, 0, static_cast<uint32_t>(utf8::count_utf16(content))});
      }
      d_.rope.insert(x.pos, content, x.len, x.lv);
      lo_ = std::min(lo_, x.pos);
      tail_ = std::min(tail_, d_.rope.length() - (x.pos + x.len));
      continue;
    }
    d_.scratch.clear();
    if (keep_undo) {
      d_.rope.remove(x.pos, x.len, &undo_text_, &d_.scratch);
      undo_runs_.insert(undo_runs_.end(), d_.scratch.begin(), d_.scratch.end());
      undo_removed_.push_back({x.pos, undo_text_.size(), undo_runs_.size()});
    } else if (one_patch_ || !patches) {
      d_.rope.remove(x.pos, x.len, nullptr, &d_.scratch);
    } else {
      const uint32_t u0 = d_.rope.utf16_of(x.pos);
      const uint32_t u1 = d_.rope.utf16_of(x.pos + x.len);
      d_.rope.remove(x.pos, x.len, nullptr, &d_.scratch);
      append_patch(patches, {x.pos, x.len, {}, u0, u1 - u0, 0});
    }
    removed_.insert(removed_.end(), d_.scratch.begin(), d_.scratch.end());
    lo_ = std::min(lo_, x.pos);
    tail_ = std::min(tail_, d_.rope.length() - x.pos);
  }
}

// Characters inserted without their text are new in this round, so only this round can have
// removed them: each such run must lie wholly inside what it removed.
void Round::find_visible_unknown() {
  if (unknown_.empty()) return;
  internal::sort_by_lv_field(&removed_);  // in place: the deleted set, at commit, then finds them sorted
  std::vector<LvRun> gone = removed_;
  internal::join_sorted_runs(&gone);
  // The candidates were integrated one after another, so their first LVs increase: each search
  // gallops forward from where the last ended (at: past the runs starting at or before the
  // last one's first LV). (Out of order, it would start over.)
  auto at = gone.begin();
  LV last = 0;
  for (size_t i : unknown_) {
    const Cand& c = cand_[i];
    if (c.first < last) at = gone.begin();
    last = c.first;
    at = internal::gallop_upper_bound(at, gone.end(), c.first, [](const LvRun& r) { return r.lv; });
    const bool covered = at != gone.begin() && std::prev(at)->lv + std::prev(at)->len >= c.first + c.n;
    if (!covered) visible_.push_back(i);
  }
}

// Puts the rope back as it was before edit_rope, newest edit first.
void Round::undo_rope(const std::vector<internal::XfOp>& xf) {
  if (old_len_ == 0) {
    d_.rope.clear();
    return;
  }
  size_t next_removed = undo_removed_.size();
  for (auto it = xf.rbegin(); it != xf.rend(); ++it) {
    if (it->insert) {
      d_.rope.remove(it->pos, it->len, nullptr, nullptr);
      continue;
    }
    const Removed& u = undo_removed_[--next_removed];
    const size_t text_start = next_removed ? undo_removed_[next_removed - 1].text_end : 0;
    const size_t runs_start = next_removed ? undo_removed_[next_removed - 1].runs_end : 0;
    const std::vector<LvRun> runs(undo_runs_.begin() + static_cast<std::ptrdiff_t>(runs_start),
                                  undo_runs_.begin() + static_cast<std::ptrdiff_t>(u.runs_end));
    d_.rope.insert_runs(u.pos, std::string_view(undo_text_).substr(text_start, u.text_end - text_start), runs);
  }
}

// A batch must delete the characters it sends without their text. When those deletions are
// held, the characters wait with them; a deletion of them comes after them in the batch (it
// depends on them, and a batch lists its runs in an order they can be applied in).
bool Round::batch_left_unknown_visible() const {
  size_t last_held_delete = 0;  // one past its index
  for (size_t i = 0; i < batch_.runs.size(); ++i) {
    if (!cand_[i].done && is_delete(batch_.runs[i].kind)) last_held_delete = i + 1;
  }
  for (size_t i : visible_) {
    if (cand_[i].slot < 0 && cand_[i].index + 1 >= last_held_delete) return true;
  }
  return false;
}

void Round::hold_back_visible(HeldBack* held_back) const {
  for (size_t i : visible_) {
    const Cand& c = cand_[i];
    auto& marks = c.slot < 0 ? held_back->batch : held_back->slot;
    const size_t at = c.slot < 0 ? c.index : static_cast<size_t>(c.slot);
    if (marks.size() <= at) marks.resize(std::max(at + 1, c.slot < 0 ? batch_.runs.size() : d_.pending.size()), 0);
    marks[at] = 1;
  }
}

Status Round::check_comments() {
  for (size_t i = old_formats_; i < log_.num_formats(); ++i) {
    const Format& f = log_.format(i);
    if (f.name != "comment" || d_.comment_ids.count(f.value) ||
        std::find(new_comments_.begin(), new_comments_.end(), f.value) != new_comments_.end()) {
      continue;
    }
    new_comments_.push_back(f.value);
    TANDEM_RETURN_IF_ERROR(d_.check_comments(d_.comment_ids.size() + new_comments_.size(), "document would have"));
  }
  return Status::OK();
}

void Round::rollback() {
  log_.truncate(old_size_, old_agents_);
  d_.merge_cache.clear();
}

// Whether the round integrated the batch exactly, run after run in its order: nothing of it a
// duplicate or held, no held run woken.
bool Round::integrated_as_received() const {
  if (cand_.size() != batch_.runs.size()) return false;
  LV next = old_size_;
  for (const Cand& c : cand_) {
    if (!c.done || c.n != c.len || c.first != next) return false;
    next += c.n;
  }
  return next == log_.size();
}

void Round::commit(OpBatch* added, bool* as_received) {
  d_.deleted.add_all(removed_);
  for (auto& id : new_comments_) d_.comment_ids.insert(std::move(id));
  if (as_received) *as_received = integrated_as_received();
  if (added && !(as_received && *as_received)) {
    std::vector<internal::Range> ranges;
    const auto& spans = log_.agent_spans();
    for (LV lv = old_size_; lv < log_.size();) {
      auto it = std::upper_bound(spans.begin(), spans.end(), lv, [](LV x, const internal::AgentSpan& s) { return x < s.lv; });
      const LV end = it == spans.end() ? log_.size() : it->lv;
      --it;
      ranges.push_back({lv, end, it->agent, it->seq + (lv - it->lv)});
      lv = end;
    }
    internal::runs_of(d_, ranges, Doc::DeletedText::kInclude, added);
  }
  d_.synced_version();
  for (uint32_t a : touched_) d_.version.advance(log_.agent_name(a), log_.next_seq(a));
  d_.frontier = std::move(all_);
  update_held_runs();
}

// Woken runs leave the lists of the agents they waited for; the runs still held go into the lists
// of what they wait for now; the batch's runs not integrated take free slots.
void Round::update_held_runs() {
  if (still_runs_ == 0) {  // nothing stays held (the common case): no list to keep
    d_.pending_events = 0;
    d_.pending_runs = 0;
    d_.pending.clear();
    d_.pending_blocker.clear();
    d_.pending_free.clear();
    d_.waiting.clear();
    return;
  }
  for (std::string_view a : woken_agents_) d_.waiting.erase(d_.waiting.find(a));
  // A blocker may view a name inside a held run, and the loop below moves held runs (clearing
  // slots, growing d_.pending): short names live inside the run itself, so take copies first.
  std::vector<std::string> blockers;
  for (size_t i = 0; i < cand_.size(); ++i) {
    if (!cand_[i].done) {
      if (blockers.empty()) blockers.resize(cand_.size());
      blockers[i] = std::string(cand_[i].blocker);
    }
  }
  std::vector<std::pair<std::string, uint32_t>> waits;
  for (size_t i = 0; i < cand_.size(); ++i) {
    const Cand& c = cand_[i];
    if (c.slot >= 0) {
      const auto slot = static_cast<uint32_t>(c.slot);
      if (c.done) {
        d_.pending[slot] = OpRun{};
        d_.pending_blocker[slot].clear();
        d_.pending_free.push_back(slot);
      } else {
        d_.pending_blocker[slot] = std::move(blockers[i]);
        waits.emplace_back(d_.pending_blocker[slot], slot);
      }
    } else if (!c.done) {
      uint32_t slot;
      if (!d_.pending_free.empty()) {
        slot = d_.pending_free.back();
        d_.pending_free.pop_back();
        d_.pending[slot] = batch_.op_run(c.index);
        d_.pending_blocker[slot] = std::move(blockers[i]);
      } else {
        slot = static_cast<uint32_t>(d_.pending.size());
        d_.pending.push_back(batch_.op_run(c.index));
        d_.pending_blocker.push_back(std::move(blockers[i]));
      }
      waits.emplace_back(d_.pending_blocker[slot], slot);
    }
  }
  for (auto& [agent, slot] : waits) d_.waiting[std::move(agent)].push_back(slot);
  d_.pending_events = still_events_;
  d_.pending_runs = still_runs_;
  if (d_.pending_runs == 0) {
    d_.pending.clear();
    d_.pending_blocker.clear();
    d_.pending_free.clear();
    d_.waiting.clear();
  }
}

}  // namespace

Status Doc::ValidateBatch(const OpBatch& batch) { return validate_batch(Batch::from(batch)); }
Status Doc::ValidateBatch(const Batch& batch) { return validate_batch(batch); }

Result<std::vector<Patch>> Doc::apply(const OpBatch& batch, OpBatch* added) { return apply(Batch::from(batch), added); }

Result<std::vector<Patch>> Doc::apply(const Batch& batch, OpBatch* added, bool* as_received) {
  std::vector<Patch> patches;
  TANDEM_RETURN_IF_ERROR(apply_batch(batch, added, as_received, &patches));
  return patches;
}

Status Doc::integrate(const Batch& batch, OpBatch* added, bool* as_received) {
  return apply_batch(batch, added, as_received, nullptr);
}

namespace {

// How many of `batches`, from the first, can be integrated as one batch taking exactly what
// integrating them one after another takes (0 when not even the first can go with others). A
// batch that integrate() refuses for its own content would refuse the group, which then goes one
// at a time anyway; what must not happen is the group taking a batch that on its own is refused:
// one carrying characters without their text that a later batch deletes, one crossing a limit
// that a later batch brings the document back under (the length, the held operations), or a
// limit only the group's total crosses. So: valid batches without such characters, as long as
// the document's length plus everything they insert, and its held operations plus all of theirs,
// stay within the limits.
size_t joinable(const Doc::Impl& d, std::span<const Batch* const> batches) {
  uint64_t bytes = 0, events = 0, inserted = 0, runs = 0;
  size_t n = 0;
  for (const Batch* b : batches) {
    if (!validate_batch(*b).ok()) break;
    uint64_t e = 0, ins = 0;
    bool unknown = false;
    for (const Batch::Run& r : b->runs) {
      unknown = unknown || r.kind == OpKind::kInsertDeleted;
      e += r.len;
      if (r.kind == OpKind::kInsert) ins += r.len;
    }
    bytes += b->bytes.size();
    events += e;
    inserted += ins;
    runs += b->runs.size();
    if (unknown || bytes >= (uint64_t{1} << 31) || d.rope.length() + inserted > d.limits.max_length ||
        d.log.size() + events > internal::kMaxEvents || d.pending_events + events > d.limits.max_pending_events ||
        d.pending_runs + runs > d.limits.max_pending_runs) {
      break;
    }
    ++n;
  }
  return n >= 2 ? n : 0;
}

}  // namespace

std::vector<Status> Doc::integrate_group(std::span<const Batch* const> batches, OpBatch* added, bool* as_received) {
  std::vector<Status> result(batches.size());
  if (added) added->runs.clear();
  // While every batch so far was taken whole as received, they are not copied into `added`: a
  // caller told *as_received needs nothing more. At the first that was not, they are.
  bool all_whole = !batches.empty();
  size_t whole_so_far = 0;
  OpBatch one;
  // The batches up to `to` were integrated, the last of them as `b` (one batch, or several joined).
  auto taken = [&](size_t to, const Batch& b, bool ok, bool whole) {
    if (all_whole && ok && whole) {
      whole_so_far = to;
      return;
    }
    if (all_whole) {
      all_whole = false;
      for (size_t k = 0; added && k < whole_so_far; ++k) {
        for (size_t r = 0; r < batches[k]->runs.size(); ++r) added->runs.push_back(batches[k]->op_run(r));
      }
    }
    if (!added || !ok) return;
    if (whole) {
      for (size_t r = 0; r < b.runs.size(); ++r) added->runs.push_back(b.op_run(r));
    } else {
      std::move(one.runs.begin(), one.runs.end(), std::back_inserter(added->runs));
    }
  };
  size_t alone_until = 0;  // the batches of a group refused as one go one at a time
  for (size_t i = 0; i < batches.size();) {
    // As many batches as can go as one; else, or when refused as one, the next batch alone (so
    // that only what is at fault is refused).
    if (const size_t n = i < alone_until ? 0 : joinable(full(), batches.subspan(i)); n > 0) {
      const Batch joined = Batch::join(batches.subspan(i, n));
      bool whole = false;
      if (apply_batch(joined, added ? &one : nullptr, &whole, nullptr).ok()) {
        taken(i + n, joined, true, whole);
        i += n;
        continue;
      }
      alone_until = i + n;
    }
    bool whole = false;
    result[i] = apply_batch(*batches[i], added ? &one : nullptr, &whole, nullptr);
    taken(i + 1, *batches[i], result[i].ok(), whole);
    ++i;
  }
  if (as_received) *as_received = all_whole;
  return result;
}

Status Doc::apply_batch(const Batch& batch, OpBatch* added, bool* as_received, std::vector<Patch>* patches) {
  if (added) added->runs.clear();
  if (as_received) *as_received = false;
  TANDEM_RETURN_IF_ERROR(validate_batch(batch));
  if (batch.runs.empty()) return Status::OK();
  HeldBack held_back;
  for (int round = 0;; ++round) {
    Round r(full(), batch, held_back);
    if (patches) patches->clear();
    Status st = r.integrate();
    if (st.ok()) st = r.check_held_limits();
    if (st.ok()) st = r.check_comments();
    if (st.ok()) st = r.update_text(patches);
    if (!st.ok()) {
      r.rollback();
      return st;
    }
    if (!r.unknown_left_visible()) {
      r.commit(added, as_received);
      return Status::OK();
    }
    r.rollback();
    if (r.batch_left_unknown_visible()) {
      return Status::InvalidArgument(
          "batch inserts characters without their text (kInsertDeleted) that it does not also delete");
    }
    if (round + 1 < kExactRounds) {
      r.hold_back_visible(&held_back);
    } else {
      held_back.all = true;
    }
  }
}

}  // namespace tandem::crdt
