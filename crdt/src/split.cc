#include "crdt/split.h"

#include <algorithm>

#include "crdt/utf8.h"

namespace tandem::crdt {

std::pair<OpRun, OpRun> cut_run(OpRun run, uint32_t at) {
  OpRun rest = run;
  rest.seq = run.seq + at;
  rest.len = run.len - at;
  rest.parents = {{run.agent, run.seq + at - 1}};
  if (run.kind == OpKind::kInsert) {
    const size_t b = utf8::byte_offset(run.content, at);
    rest.content = run.content.substr(b);
    run.content.resize(b);
    rest.pos = run.pos + at;
  } else if (run.kind == OpKind::kInsertDeleted) {
    rest.pos = run.pos + at;
  } else if (run.kind == OpKind::kDeleteBackward) {
    rest.pos = run.pos - at;
  }
  run.len = at;
  return {std::move(run), std::move(rest)};
}

Version reach(const OpBatch& batch) {
  Version v;
  for (const auto& r : batch.runs) {
    if (r.seq + r.len > v.next(r.agent)) v.advance(r.agent, r.seq + r.len);
  }
  return v;
}

Version reach(const Batch& batch) {
  std::vector<uint32_t> next(batch.agents.size(), 0);
  for (const auto& r : batch.runs) next[r.agent] = std::max(next[r.agent], r.seq + r.len);
  Version v;
  for (uint32_t a = 0; a < next.size(); ++a) {
    if (next[a] > 0) v.advance(batch.agent(a), next[a]);
  }
  return v;
}

OpBatch without_events(const OpBatch& batch, const OpBatch& remove) {
  OpBatch out;
  for (OpRun run : batch.runs) {
    // Cut away every range of `remove` of the same agent, front to back.
    bool dropped = false;
    for (const auto& r : remove.runs) {
      if (r.agent != run.agent || run.len == 0) continue;
      const uint32_t lo = std::max(run.seq, r.seq), hi = std::min(run.seq + run.len, r.seq + r.len);
      if (lo >= hi) continue;
      if (lo > run.seq) {
        const uint32_t at = lo - run.seq;
        auto [before, rest] = cut_run(std::move(run), at);
        out.runs.push_back(std::move(before));
        run = std::move(rest);
      }
      if (hi < run.seq + run.len) {
        const uint32_t at = hi - run.seq;
        run = cut_run(std::move(run), at).second;
      } else {
        dropped = true;
        break;
      }
    }
    if (!dropped && run.len > 0) out.runs.push_back(std::move(run));
  }
  return out;
}

std::vector<OpBatch> split_batch(OpBatch batch, uint64_t max, size_t max_bytes) {
  for (const auto& run : batch.runs) {
    if (run.kind == OpKind::kInsertDeleted) return {std::move(batch)};  // must stay whole
  }
  max = std::max<uint64_t>(max, 1);
  max_bytes = std::max<size_t>(max_bytes, 4096);
  // An encoded run's fields besides its text, at most: fixed fields, and each parent's agent and
  // seq (agent names are written once per batch, so counting them per run overestimates).
  auto overhead = [](const OpRun& r) {
    size_t n = 32 + r.agent.size();
    for (const auto& p : r.parents) n += 10 + p.agent.size();
    return n;
  };
  std::vector<OpBatch> out(1);
  uint64_t in_last = 0;
  size_t bytes_last = 0;
  for (auto& run : batch.runs) {
    while (run.len > 0) {
      const size_t run_overhead = overhead(run);
      if (in_last == max || bytes_last + run_overhead + 4 > max_bytes) {
        out.emplace_back();
        in_last = 0;
        bytes_last = 0;
      }
      uint32_t take = static_cast<uint32_t>(std::min<uint64_t>(run.len, max - in_last));
      if (run.kind == OpKind::kInsert) {
        // As many characters as fit in the bytes left (at least one).
        const size_t room = max_bytes - bytes_last - run_overhead;
        if (run.content.size() > room) {
          const size_t cut = utf8::count_code_points(std::string_view(run.content).substr(0, room));
          take = std::max<uint32_t>(1, std::min<uint32_t>(take, static_cast<uint32_t>(cut > 0 ? cut - 1 : 0)));
        }
      }
      if (take < run.len) {
        // The rest continues from the part's last event.
        auto [part, rest] = cut_run(std::move(run), take);
        bytes_last += run_overhead + part.content.size();
        out.back().runs.push_back(std::move(part));
        in_last += take;
        run = std::move(rest);
      } else {
        bytes_last += run_overhead + run.content.size();
        out.back().runs.push_back(run);
        in_last += take;
        run.len = 0;
      }
    }
  }
  if (out.back().runs.empty()) out.pop_back();
  return out;
}

}  // namespace tandem::crdt
