// History (crdt/history.h): every character ever inserted, in document order (the whole-history
// sequence that rich text uses too), each with the event that inserted it (consecutive along a
// run) and the earliest event that deleted it. A character is in the text of point n when it was
// inserted before n and not deleted before n: with the earliest deleter that is one comparison,
// concurrent deletions of one character included. Runs are cut where their deleters stop
// following one pattern (none, or one delete run forward or backward), so that a run holds its
// deleters in two numbers: typing and its deletions take about one run each.
#include "crdt/history.h"

#include <algorithm>

#include "crdt/doc.h"
#include "crdt/utf8.h"
#include "doc_impl.h"
#include "merge.h"
#include "oplog.h"

namespace tandem::crdt {

using internal::AgentSpan;
using internal::kNoLV;
using internal::LV;

struct History::Impl {
  // 12 bytes: on node_nodecc's 194 authors there are 79k runs for 489k characters, and the runs
  // were most of the index. Their text offsets are not kept: every read walks the runs in order
  // and counts them (for_each_run).
  struct Run {
    static constexpr uint32_t kMaxLen = (1u << 28) - 1;
    LV lv;          // its characters are inserted by events lv, lv + 1, ...
    uint32_t bits;  // its length (28 bits), step + 1 (2 bits), ascii, unknown
    LV del;         // character k's earliest deleter: del + step * k, or kNoLV for none
    Run(LV lv_, uint32_t len_, LV del_, int8_t step, bool ascii, bool unknown)
        : lv(lv_),
          bits(len_ | static_cast<uint32_t>(step + 1) << 28 | uint32_t{ascii} << 30 | uint32_t{unknown} << 31),
          del(del_) {}
    uint32_t len() const { return bits & kMaxLen; }
    int8_t step() const { return static_cast<int8_t>((bits >> 28 & 3) - 1); }  // -1, 0 (one character) or +1
    bool ascii() const { return bits >> 30 & 1; }   // one byte per character
    bool unknown() const { return bits >> 31; }     // holds characters whose text this replica never had
    LV deleter(uint32_t k) const {
      return del == kNoLV ? kNoLV : static_cast<LV>(static_cast<int64_t>(del) + int64_t{step()} * k);
    }
  };
  uint64_t events = 0;
  std::vector<std::string> agents;
  std::vector<AgentSpan> agent_spans;  // by LV
  std::vector<Run> runs;               // in document order
  std::string text;                    // every character's UTF-8, in document order

  // The bytes of characters [k0, k1) of run r, whose text starts at byte `at` of `text`.
  std::string_view bytes(const Run& r, size_t at, uint32_t k0, uint32_t k1) const {
    const std::string_view all = std::string_view(text).substr(at);
    if (r.ascii()) return all.substr(k0, k1 - k0);
    const size_t b0 = utf8::byte_offset(all, k0);
    return all.substr(b0, utf8::byte_offset(all.substr(b0), k1 - k0));
  }
  // f(run, the byte its text starts at) for each run in document order.
  template <typename F>
  void for_each_run(F f) const {
    size_t at = 0;
    for (const Run& r : runs) {
      f(r, at);
      at += r.ascii() ? r.len() : utf8::byte_offset(std::string_view(text).substr(at), r.len());
    }
  }
  void append(std::string* out, const Run& r, size_t at, uint32_t k0, uint32_t k1) const {
    const std::string_view b = bytes(r, at, k0, k1);
    if (!r.unknown()) {
      out->append(b);
      return;
    }
    for (char c : b) {
      if (static_cast<unsigned char>(c) == internal::kPlaceholderByte) {
        out->append("\xEF\xBF\xBD");  // U+FFFD
      } else {
        out->push_back(c);
      }
    }
  }
  // The agent span holding lv.
  size_t span_of(LV lv) const {
    auto it = std::upper_bound(agent_spans.begin(), agent_spans.end(), lv,
                               [](LV x, const AgentSpan& s) { return x < s.lv; });
    return static_cast<size_t>(it - agent_spans.begin()) - 1;
  }
  LV span_end(size_t s) const { return s + 1 < agent_spans.size() ? agent_spans[s + 1].lv : static_cast<LV>(events); }
  bool visible(const Run& r, uint32_t k, uint64_t n) const { return r.lv + k < n && r.deleter(k) >= n; }
  // f(run, at, k0, k1) for each stretch of characters [k0, k1) of a run (its text at byte `at`)
  // that are in the text of point n, in document order; `split(run, k)` says where a stretch must
  // end at the latest after k.
  template <typename F, typename Split>
  void for_each_visible(uint64_t n, Split split, F f) const {
    for_each_run([&](const Run& r, size_t at) {
      if (r.lv >= n) return;
      const uint32_t kmax = static_cast<uint32_t>(std::min<uint64_t>(r.len(), n - r.lv));
      for (uint32_t k = 0; k < kmax;) {
        if (!visible(r, k, n)) {
          ++k;
          continue;
        }
        const uint32_t stop = std::min(kmax, split(r, k));
        uint32_t e = k + 1;
        while (e < stop && visible(r, e, n)) ++e;
        f(r, at, k, e);
        k = e;
      }
    });
  }
  Status check(uint64_t n) const {
    if (n <= events) return Status::OK();
    return Status::OutOfRange("point " + std::to_string(n) + " is past the end of the history (" + std::to_string(events) +
                              " events)");
  }
};

const char* DiffKindName(DiffRun::Kind k) {
  switch (k) {
    case DiffRun::kKept: return "kept";
    case DiffRun::kInserted: return "inserted";
    case DiffRun::kDeleted: return "deleted";
  }
  return "?";
}

History::History(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
History::~History() = default;
History::History(History&&) noexcept = default;
History& History::operator=(History&&) noexcept = default;

uint64_t History::events() const { return impl_->events; }

Result<History> Doc::history() const {
  const internal::OpLog& log = full().log;
  internal::Sequence seq(log);
  std::vector<internal::Sequence::Found> found;
  TANDEM_RETURN_IF_ERROR(seq.catch_up(&found));
  auto h = std::make_unique<History::Impl>();
  h->events = log.size();
  for (size_t a = 0; a < log.num_agents(); ++a) h->agents.push_back(log.agent_name(static_cast<uint32_t>(a)));
  h->agent_spans = log.agent_spans();
  // The sequence's runs with their text, and each character's earliest deleter.
  struct Piece {
    LV lv;
    uint32_t len, first, byte;
  };
  std::vector<Piece> pieces;
  std::vector<uint32_t> index(log.size(), kNoLV);  // character (insert event) -> its place in `del`
  uint32_t chars = 0;
  seq.for_each([&](LV lv, uint32_t len, bool) {
    pieces.push_back({lv, len, chars, static_cast<uint32_t>(h->text.size())});
    for (LV x = lv; x < lv + len;) {  // (content() reads inside one op span)
      const internal::OpSpan& op = log.ops()[log.op_index(x)];
      const uint32_t m = std::min<LV>(op.end(), lv + len) - x;
      h->text.append(log.content(x, m));
      x += m;
    }
    for (uint32_t k = 0; k < len; ++k) index[lv + k] = chars + k;
    chars += len;
  });
  std::vector<LV> del(chars, kNoLV);
  seq.for_each_deletion([&](LV first, uint32_t n, LV target, bool fwd) {
    for (uint32_t k = 0; k < n; ++k) {
      LV& d = del[index[fwd ? target + k : target + (n - 1 - k)]];
      d = std::min(d, first + k);
    }
  });
  index = {};
  // Each piece cut where its deleters change pattern.
  for (size_t p = 0; p < pieces.size(); ++p) {
    const Piece& pc = pieces[p];
    const uint32_t bytes_end = p + 1 < pieces.size() ? pieces[p + 1].byte : static_cast<uint32_t>(h->text.size());
    const std::string_view piece_text = std::string_view(h->text).substr(pc.byte, bytes_end - pc.byte);
    const bool ascii = piece_text.size() == pc.len;
    size_t byte = 0;  // in piece_text
    for (uint32_t k = 0; k < pc.len;) {
      const LV d0 = del[pc.first + k];
      const uint32_t most = k + std::min(pc.len - k, History::Impl::Run::kMaxLen);
      int8_t step = 0;
      uint32_t e = k + 1;
      if (d0 == kNoLV) {
        while (e < most && del[pc.first + e] == kNoLV) ++e;
      } else if (e < most && del[pc.first + e] != kNoLV && (del[pc.first + e] == d0 + 1 || del[pc.first + e] + 1 == d0)) {
        step = del[pc.first + e] == d0 + 1 ? 1 : -1;
        while (e < most && del[pc.first + e] != kNoLV &&
               static_cast<int64_t>(del[pc.first + e]) == static_cast<int64_t>(d0) + int64_t{step} * (e - k)) {
          ++e;
        }
      }
      const size_t nbytes = ascii ? e - k : utf8::byte_offset(piece_text.substr(byte), e - k);
      const std::string_view sub = piece_text.substr(byte, nbytes);
      h->runs.emplace_back(pc.lv + k, e - k, d0, step, sub.size() == e - k,
                           sub.find(static_cast<char>(internal::kPlaceholderByte)) != std::string_view::npos);
      byte += nbytes;
      k = e;
    }
  }
  h->runs.shrink_to_fit();
  h->text.shrink_to_fit();
  return History(std::move(h));
}

Result<std::string> History::text_at(uint64_t n) const {
  const Impl& h = *impl_;
  TANDEM_RETURN_IF_ERROR(h.check(n));
  std::string out;
  h.for_each_visible(
      n, [](const Impl::Run& r, uint32_t) { return r.len(); },
      [&](const Impl::Run& r, size_t at, uint32_t k0, uint32_t k1) { h.append(&out, r, at, k0, k1); });
  return out;
}

Result<std::vector<BlameSpan>> History::blame(uint64_t n) const {
  const Impl& h = *impl_;
  TANDEM_RETURN_IF_ERROR(h.check(n));
  std::vector<BlameSpan> out;
  uint32_t pos = 0;
  // Stretches of one agent span each.
  auto span_end = [&h](const Impl::Run& r, uint32_t k) {
    return static_cast<uint32_t>(std::min<uint64_t>(r.len(), h.span_end(h.span_of(r.lv + k)) - r.lv));
  };
  h.for_each_visible(n, span_end, [&](const Impl::Run& r, size_t, uint32_t k0, uint32_t k1) {
    const std::string& agent = h.agents[h.agent_spans[h.span_of(r.lv + k0)].agent];
    BlameSpan* last = out.empty() ? nullptr : &out.back();
    if (last && last->to == pos && last->agent == agent && last->event + (last->to - last->from) == r.lv + k0) {
      last->to += k1 - k0;
    } else {
      out.push_back({pos, pos + (k1 - k0), agent, r.lv + k0});
    }
    pos += k1 - k0;
  });
  return out;
}

Result<std::vector<DiffRun>> History::diff(uint64_t from, uint64_t to) const {
  const Impl& h = *impl_;
  TANDEM_RETURN_IF_ERROR(h.check(from));
  TANDEM_RETURN_IF_ERROR(h.check(to));
  std::vector<DiffRun> out;
  std::vector<uint32_t> who;  // agent indexes of the run being built
  size_t cached = SIZE_MAX;   // the agent span found last
  auto agent_of = [&](LV lv) {
    if (cached == SIZE_MAX || lv < h.agent_spans[cached].lv || lv >= h.span_end(cached)) cached = h.span_of(lv);
    return h.agent_spans[cached].agent;
  };
  auto close = [&] {
    if (out.empty()) return;
    std::sort(who.begin(), who.end());
    who.erase(std::unique(who.begin(), who.end()), who.end());
    for (uint32_t a : who) out.back().agents.push_back(h.agents[a]);
    std::sort(out.back().agents.begin(), out.back().agents.end());
    who.clear();
  };
  h.for_each_run([&](const Impl::Run& r, size_t at) {
    if (r.lv >= std::max(from, to)) return;
    for (uint32_t k = 0; k < r.len();) {
      const bool in_a = h.visible(r, k, from), in_b = h.visible(r, k, to);
      if (!in_a && !in_b) {
        ++k;
        continue;
      }
      const DiffRun::Kind kind = in_a && in_b ? DiffRun::kKept : in_b ? DiffRun::kInserted : DiffRun::kDeleted;
      uint32_t e = k + 1;
      while (e < r.len() && h.visible(r, e, from) == in_a && h.visible(r, e, to) == in_b) ++e;
      if (out.empty() || out.back().kind != kind) {
        close();
        out.push_back({kind, {}, {}});
      }
      h.append(&out.back().text, r, at, k, e);
      // Who made the difference: the event between the two points, its insertion or its deletion.
      const uint64_t lo = std::min(from, to);
      for (uint32_t x = k; x < e; ++x) {
        const LV ins = r.lv + x;
        const uint32_t a = agent_of(kind == DiffRun::kKept || ins >= lo ? ins : r.deleter(x));
        if (who.empty() || who.back() != a) who.push_back(a);
      }
      k = e;
    }
  });
  close();
  return out;
}

size_t History::heap_bytes() const {
  const Impl& h = *impl_;
  size_t n = sizeof(Impl) + h.agent_spans.capacity() * sizeof(AgentSpan) + h.runs.capacity() * sizeof(Impl::Run) +
             h.text.capacity() + h.agents.capacity() * sizeof(std::string);
  for (const auto& a : h.agents) n += a.capacity();
  return n;
}

}  // namespace tandem::crdt
