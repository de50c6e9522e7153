#include "crdt/codec.h"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include "crdt/batch.h"

#include "crdt/varint.h"
#include "msgpack_io.h"

namespace tandem::crdt::codec {

namespace {

std::string num(uint64_t v) { return std::to_string(v); }

using mp::as_array;
using mp::as_bin;
using mp::as_str;
using mp::as_u32;
using mp::Packer;
using StringSink = mp::StringSink;

Status unpack_one(std::string_view bytes, size_t depth, const DecodeLimits& limits, msgpack::object_handle* oh,
                  size_t* consumed = nullptr) {
  return mp::unpack_one(bytes, depth, limits.max_bytes, oh, consumed);
}

Status bad_bytes(const std::string& what) { return mp::bad(what); }

Status too_many_events(const char* what, const DecodeLimits& limits) {
  return Status::ResourceExhausted(std::string(what) + " holds over " + num(limits.max_events) + " events");
}

Status read_agents(const msgpack::object& o, const DecodeLimits& limits, std::vector<std::string>* agents) {
  const msgpack::object* items;
  uint32_t n;
  if (!as_array(o, &items, &n)) return bad_bytes("agents: not an array");
  if (n > limits.max_agents) return Status::ResourceExhausted("too many agents: " + num(n));
  agents->reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    std::string_view s;
    if (!as_str(items[i], &s)) return bad_bytes("agent " + num(i) + ": not a string");
    TANDEM_RETURN_IF_ERROR(Doc::ValidateAgent(s).WithContext("agent " + num(i)));
    agents->emplace_back(s);
  }
  return Status::OK();
}

void pack_agents(Packer& pk, const std::vector<std::string>& agents) {
  pk.pack_array(static_cast<uint32_t>(agents.size()));
  for (const auto& a : agents) mp::pack_str(pk, a);
}

// Formats 1 to `newest`; *v gets which.
Status check_format(const msgpack::object& o, uint32_t newest, const char* what, uint32_t* v) {
  if (!as_u32(o, v)) return bad_bytes(std::string(what) + ": format version missing");
  if (*v < 1 || *v > newest) {
    return Status::NotSupported(std::string(what) + " format " + num(*v) + " (this build reads 1 to " + num(newest) + ")");
  }
  return Status::OK();
}

// A format event's fields, in the slot where an insert carries its text: [end, name, value, remove].
void pack_format(Packer& pk, const Format& f) {
  pk.pack_array(4);
  pk.pack_uint32(f.end);
  mp::pack_str(pk, f.name);
  mp::pack_str(pk, f.value);
  if (f.remove) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
}

// Sizes here are checked again by ValidateFormat; these bounds only keep hostile bytes small.
Status read_format(const msgpack::object& o, Format* f) {
  const msgpack::object* items;
  uint32_t n;
  std::string_view name, value;
  if (!as_array(o, &items, &n) || n != 4 || !as_u32(items[0], &f->end) || !as_str(items[1], &name) ||
      !as_str(items[2], &value) || items[3].type != msgpack::type::BOOLEAN) {
    return bad_bytes("format event: expected [end, name, value, remove]");
  }
  if (name.size() > 64 || value.size() > kMaxHrefBytes) return bad_bytes("format event: name or value too long");
  f->name.assign(name);
  f->value.assign(value);
  f->remove = items[3].via.boolean;
  return Status::OK();
}

}  // namespace

// ---- op batches -------------------------------------------------------------------------------

std::string encode_ops(const OpBatch& batch) {
  std::vector<std::string> agents;
  std::unordered_map<std::string, uint32_t> index;
  auto intern = [&](const std::string& a) {
    auto [it, added] = index.emplace(a, static_cast<uint32_t>(agents.size()));
    if (added) agents.push_back(a);
    return it->second;
  };
  for (const auto& r : batch.runs) {
    intern(r.agent);
    for (const auto& p : r.parents) intern(p.agent);
  }
  std::string out;
  out.reserve(batch.runs.size() * 12 + 64);
  StringSink sink{&out};
  Packer pk(sink);
  const bool rich = batch.has_formats();
  pk.pack_array(3);
  pk.pack_uint32(rich ? kOpsFormatRich : kOpsFormat);
  pack_agents(pk, agents);
  pk.pack_array(static_cast<uint32_t>(batch.runs.size()));
  for (const auto& r : batch.runs) {
    pk.pack_array(7);
    const uint32_t agent = index[r.agent];
    pk.pack_uint32(agent);
    pk.pack_uint32(r.seq);
    pk.pack_uint8(static_cast<uint8_t>(r.kind));
    pk.pack_uint32(r.pos);
    pk.pack_uint32(r.len);
    if (r.seq > 0 && r.parents.size() == 1 && r.parents[0].agent == r.agent && r.parents[0].seq + 1 == r.seq) {
      pk.pack_nil();  // the common case: the previous op of the same agent
    } else {
      pk.pack_array(static_cast<uint32_t>(r.parents.size() * 2));
      for (const auto& p : r.parents) {
        pk.pack_uint32(index[p.agent]);
        pk.pack_uint32(p.seq);
      }
    }
    if (r.kind == OpKind::kInsert) {
      pk.pack_str(static_cast<uint32_t>(r.content.size()));
      pk.pack_str_body(r.content.data(), static_cast<uint32_t>(r.content.size()));
    } else if (IsFormat(r.kind)) {
      pack_format(pk, r.format ? *r.format : Format{});
    } else {
      pk.pack_nil();
    }
  }
  return out;
}

namespace {

// Reads the msgpack forms encode_ops writes, straight from the bytes: no object tree, no copy of
// the agent table per run. Any other form, any limit reached and any error make it give up, and
// the generic decoder below (which names the error) decides instead; so what this accepts, the
// generic one accepts too, with the same result (fuzz/codec_fuzz.cc checks that they agree).
class Reader {
 public:
  explicit Reader(std::string_view b) : p_(reinterpret_cast<const uint8_t*>(b.data())), end_(p_ + b.size()) {}
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  // The one-byte forms inline (most of a batch), the others out of line.
  [[gnu::always_inline]] bool array(uint32_t* n) {
    if (p_ < end_ && (*p_ & 0xf0) == 0x90) {
      *n = *p_++ & 0x0f;
      return *n <= left();
    }
    return array_long(n);
  }
  [[gnu::always_inline]] bool u32(uint32_t* v) {
    if (left() >= 5) {  // room for any form: one bounds check
      const uint8_t t = *p_;
      if (t < 0x80) {
        *v = t;
        p_ += 1;
        return true;
      }
      if (t == 0xcd) {
        *v = uint32_t{p_[1]} << 8 | p_[2];
        p_ += 3;
        return true;
      }
      if (t == 0xce) {
        *v = uint32_t{p_[1]} << 24 | uint32_t{p_[2]} << 16 | uint32_t{p_[3]} << 8 | p_[4];
        p_ += 5;
        return true;
      }
    }
    return u32_long(v);
  }
  bool str(std::string_view* s) {
    if (p_ >= end_) return false;
    const uint8_t t = *p_;
    uint32_t n;
    if ((t & 0xe0) == 0xa0) {
      n = t & 0x1f;
      ++p_;
    } else if (t == 0xd9) {
      if (!be(1, 1, &n)) return false;
    } else if (t == 0xda) {
      if (!be(1, 2, &n)) return false;
    } else if (t == 0xdb) {
      if (!be(1, 4, &n)) return false;
    } else {
      return false;
    }
    if (n > left()) return false;
    *s = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  bool nil() {
    if (p_ >= end_ || *p_ != 0xc0) return false;
    ++p_;
    return true;
  }
  bool boolean(bool* b) {
    if (p_ >= end_ || (*p_ != 0xc2 && *p_ != 0xc3)) return false;
    *b = *p_++ == 0xc3;
    return true;
  }

 private:
  [[gnu::noinline]] bool array_long(uint32_t* n) {
    if (p_ >= end_) return false;
    const uint8_t t = *p_;
    if (t == 0xdc) {
      if (!be(1, 2, n)) return false;
    } else if (t == 0xdd) {
      if (!be(1, 4, n)) return false;
    } else {
      return false;
    }
    return *n <= left();  // every element takes a byte at least
  }
  [[gnu::noinline]] bool u32_long(uint32_t* v) {  // every form, near the end too
    if (p_ >= end_) return false;
    const uint8_t t = *p_;
    if (t < 0x80) {
      *v = t;
      ++p_;
      return true;
    }
    if (t == 0xcc) return be(1, 1, v);
    if (t == 0xcd) return be(1, 2, v);
    if (t == 0xce) return be(1, 4, v);
    return false;
  }
  // A big-endian integer of `n` bytes after a `skip`-byte tag.
  bool be(size_t skip, size_t n, uint32_t* v) {
    if (left() < skip + n) return false;
    uint32_t x = 0;
    for (size_t i = 0; i < n; ++i) x = (x << 8) | p_[skip + i];
    p_ += skip + n;
    *v = x;
    return true;
  }
  const uint8_t* p_;
  const uint8_t* end_;
};


// The op batch at the start of `bytes`; with `consumed`, bytes may follow it.
Result<OpBatch> decode_one_batch_generic(std::string_view bytes, const DecodeLimits& limits, size_t* consumed) {
  msgpack::object_handle oh;
  TANDEM_RETURN_IF_ERROR(unpack_one(bytes, 4, limits, &oh, consumed));
  const msgpack::object* top;
  uint32_t ntop;
  if (!as_array(oh.get(), &top, &ntop) || ntop != 3) return bad_bytes("op batch: expected [format, agents, runs]");
  uint32_t format;
  TANDEM_RETURN_IF_ERROR(check_format(top[0], kOpsFormatRich, "op batch", &format));
  const auto max_kind = static_cast<uint32_t>(format == kOpsFormat ? OpKind::kDeleteBackward : OpKind::kBlock);
  std::vector<std::string> agents;
  TANDEM_RETURN_IF_ERROR(read_agents(top[1], limits, &agents));
  const msgpack::object* runs;
  uint32_t nruns;
  if (!as_array(top[2], &runs, &nruns)) return bad_bytes("op batch: runs is not an array");
  if (nruns > limits.max_runs) return Status::ResourceExhausted("op batch has " + num(nruns) + " runs");
  OpBatch batch;
  batch.runs.resize(nruns);
  uint64_t events = 0;
  for (uint32_t i = 0; i < nruns; ++i) {
    OpRun& r = batch.runs[i];
    auto bad = [&](const char* why) { return bad_bytes("op run " + num(i) + ": " + why); };
    const msgpack::object* f;
    uint32_t nf;
    if (!as_array(runs[i], &f, &nf) || nf != 7) return bad("expected 7 fields");
    uint32_t agent, kind;
    if (!as_u32(f[0], &agent) || agent >= agents.size()) return bad("bad agent index");
    if (!as_u32(f[1], &r.seq)) return bad("bad seq");
    if (!as_u32(f[2], &kind) || kind > max_kind) return bad("unknown kind");
    if (!as_u32(f[3], &r.pos)) return bad("bad position");
    if (!as_u32(f[4], &r.len) || r.len == 0) return bad("bad length");
    if ((events += r.len) > limits.max_events) return too_many_events("op batch", limits);
    r.agent = agents[agent];
    r.kind = static_cast<OpKind>(kind);
    if (f[5].type == msgpack::type::NIL) {
      if (r.seq == 0) return bad("no previous op to depend on");
      r.parents.push_back({r.agent, r.seq - 1});
    } else {
      const msgpack::object* p;
      uint32_t np;
      if (!as_array(f[5], &p, &np) || np % 2 != 0) return bad("bad parents");
      if (np / 2 > limits.max_parents) return Status::ResourceExhausted("op run " + num(i) + " has too many parents");
      r.parents.resize(np / 2);
      for (uint32_t k = 0; k < np / 2; ++k) {
        uint32_t pa;
        if (!as_u32(p[2 * k], &pa) || pa >= agents.size() || !as_u32(p[2 * k + 1], &r.parents[k].seq)) {
          return bad("bad parent id");
        }
        r.parents[k].agent = agents[pa];
      }
    }
    if (r.kind == OpKind::kInsert) {
      std::string_view s;
      if (!as_str(f[6], &s)) return bad("insert without text");
      r.content.assign(s);
    } else if (IsFormat(r.kind)) {
      Format fmt;
      if (Status st = read_format(f[6], &fmt); !st.ok()) return st.WithContext("op run " + num(i));
      r.format = std::move(fmt);
    } else if (f[6].type != msgpack::type::NIL) {
      return bad("text on an op that carries none");
    }
  }
  return batch;
}

// The direct reader: the batch's `bytes` are the input, and its agents and texts ranges of them.
// Duplicate names in the agent table share the first one's index (Batch's rule); the run checks
// are Doc::ValidateBatch's, at apply. False for anything it does not take: the generic reader
// then decodes it or says why not.
bool decode_columns_fast(std::string_view bytes, const DecodeLimits& limits, size_t* consumed, Batch* out) {
  if (bytes.empty() || bytes.size() > limits.max_bytes || bytes.size() > UINT32_MAX) return false;
  Reader in(bytes);
  const char* const base = bytes.data();
  auto range = [&](std::string_view s) {
    return Batch::Bytes{static_cast<uint32_t>(s.data() - base), static_cast<uint32_t>(s.size())};
  };
  uint32_t n, format, nagents, nruns;
  if (!in.array(&n) || n != 3 || !in.u32(&format) || (format != kOpsFormat && format != kOpsFormatRich)) return false;
  const auto max_kind = static_cast<uint32_t>(format == kOpsFormat ? OpKind::kDeleteBackward : OpKind::kBlock);
  if (!in.array(&nagents) || nagents > limits.max_agents) return false;
  Batch& b = *out;
  std::vector<uint32_t> alias(nagents);  // table index -> the index of its name's first entry
  std::vector<std::string_view> names(nagents);
  std::unordered_map<std::string_view, uint32_t> seen;
  for (uint32_t i = 0; i < nagents; ++i) {
    if (!in.str(&names[i]) || !Doc::ValidateAgent(names[i]).ok()) return false;
    alias[i] = static_cast<uint32_t>(b.agents.size());
    bool dup = false;
    if (nagents <= 8) {
      for (uint32_t k = 0; k < i; ++k) {
        if (names[k] == names[i]) {
          alias[i] = alias[k];
          dup = true;
          break;
        }
      }
    } else if (auto [it, added] = seen.emplace(names[i], alias[i]); !added) {
      alias[i] = it->second;
      dup = true;
    }
    if (!dup) b.agents.push_back(range(names[i]));
  }
  if (!in.array(&nruns) || nruns > limits.max_runs) return false;
  b.runs.resize(nruns);
  b.parents.reserve(nruns);
  uint64_t events = 0;
  for (Batch::Run& r : b.runs) {
    uint32_t nf, agent, kind;
    if (!in.array(&nf) || nf != 7 || !in.u32(&agent) || agent >= nagents || !in.u32(&r.seq) || !in.u32(&kind) ||
        kind > max_kind || !in.u32(&r.pos) || !in.u32(&r.len) || r.len == 0 || (events += r.len) > limits.max_events) {
      return false;  // the generic reader says why
    }
    r.agent = alias[agent];
    r.kind = static_cast<OpKind>(kind);
    r.parents = static_cast<uint32_t>(b.parents.size());
    if (in.nil()) {
      if (r.seq == 0) return false;
      b.parents.push_back({r.agent, r.seq - 1});
      r.nparents = 1;
    } else {
      uint32_t np;
      if (!in.array(&np) || np % 2 != 0 || np / 2 > limits.max_parents) return false;
      r.nparents = np / 2;
      for (uint32_t k = 0; k < np / 2; ++k) {
        uint32_t pa, seq;
        if (!in.u32(&pa) || pa >= nagents || !in.u32(&seq)) return false;
        b.parents.push_back({alias[pa], seq});
      }
    }
    if (r.kind == OpKind::kInsert) {
      std::string_view text;
      if (!in.str(&text)) return false;
      r.text = range(text);
    } else if (IsFormat(r.kind)) {
      uint32_t nf4;
      std::string_view name, value;
      Format f;
      if (!in.array(&nf4) || nf4 != 4 || !in.u32(&f.end) || !in.str(&name) || !in.str(&value) || !in.boolean(&f.remove) ||
          name.size() > 64 || value.size() > kMaxHrefBytes) {
        return false;
      }
      f.name.assign(name);
      f.value.assign(value);
      r.format = static_cast<uint32_t>(b.formats.size());
      b.formats.push_back(std::move(f));
    } else if (!in.nil()) {
      return false;
    }
  }
  const size_t used = bytes.size() - in.left();
  if (consumed) {
    *consumed = used;
  } else if (in.left() != 0) {
    return false;
  }
  b.bytes.assign(bytes.substr(0, used));
  return true;
}

Result<Batch> decode_one_columns(std::string_view bytes, const DecodeLimits& limits, size_t* consumed) {
  Batch batch;
  if (decode_columns_fast(bytes, limits, consumed, &batch)) {
    // The bytes are the batch's encoding when they are all of it, in the format encode_ops
    // would choose (a plain batch as format 1: what a client of protocol 1 reads).
    batch.encoded = !consumed && (static_cast<uint8_t>(bytes[1]) == kOpsFormat || !batch.formats.empty());
    return batch;
  }
  auto runs = decode_one_batch_generic(bytes, limits, consumed);
  if (!runs.ok()) return runs.status();
  return Batch::from(*runs);
}

// As runs: through the columns, so that one reader serves both forms.
Result<OpBatch> decode_one_batch(std::string_view bytes, const DecodeLimits& limits, size_t* consumed) {
  auto batch = decode_one_columns(bytes, limits, consumed);
  if (!batch.ok()) return batch.status();
  return batch->to_op_batch();
}

}  // namespace

namespace {

void count_agent(EncodedOps* e, std::string_view agent, uint64_t n) {
  for (auto& [name, events] : e->agents) {
    if (name == agent) {
      events += n;
      return;
    }
  }
  e->agents.emplace_back(agent, n);
}

}  // namespace

EncodedOps encode_counted(const OpBatch& batch) {
  EncodedOps e;
  e.bytes = encode_ops(batch);
  for (const auto& r : batch.runs) {
    count_agent(&e, r.agent, r.len);
    e.events += r.len;
  }
  return e;
}

EncodedOps encode_counted(Batch&& batch) {
  if (!batch.encoded) return encode_counted(batch.to_op_batch());
  EncodedOps e;
  std::vector<uint64_t> per_agent(batch.agents.size());
  for (const auto& r : batch.runs) {
    per_agent[r.agent] += r.len;
    e.events += r.len;
  }
  for (size_t i = 0; i < per_agent.size(); ++i) {
    if (per_agent[i]) e.agents.emplace_back(batch.agent(static_cast<uint32_t>(i)), per_agent[i]);
  }
  e.bytes = std::move(batch.bytes);
  batch = Batch{};
  return e;
}

Result<OpBatch> decode_ops(std::string_view bytes, const DecodeLimits& limits) {
  return decode_one_batch(bytes, limits, nullptr);
}

Result<OpBatch> decode_ops_generic(std::string_view bytes, const DecodeLimits& limits) {
  return decode_one_batch_generic(bytes, limits, nullptr);
}

Result<OpBatch> decode_ops_sequence(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.empty()) return Status::Corruption("empty message");
  OpBatch all;
  uint64_t events = 0;
  while (!bytes.empty()) {
    size_t used = 0;
    auto one = decode_one_batch(bytes, limits, &used);
    if (!one.ok()) return one.status();
    if (all.runs.size() + one->runs.size() > limits.max_runs) {
      return Status::ResourceExhausted("op batches with over " + num(limits.max_runs) + " runs");
    }
    if ((events += one->events()) > limits.max_events) return too_many_events("op batches", limits);
    for (auto& r : one->runs) all.runs.push_back(std::move(r));
    bytes.remove_prefix(used);
  }
  return all;
}

Result<Batch> decode_batch(std::string_view bytes, const DecodeLimits& limits) {
  return decode_one_columns(bytes, limits, nullptr);
}

Result<Batch> decode_batch_sequence(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.empty()) return Status::Corruption("empty message");
  size_t used = 0;
  auto all = decode_one_columns(bytes, limits, &used);
  if (!all.ok() || used == bytes.size()) return all;
  // Several batches: each one's ranges and indices move by what the batches before it hold.
  uint64_t events = all->events();
  bytes.remove_prefix(used);
  std::unordered_map<std::string, uint32_t> index;  // every name so far -> its entry
  for (uint32_t k = 0; k < all->agents.size(); ++k) index.emplace(all->agent(k), k);
  while (!bytes.empty()) {
    auto one = decode_one_columns(bytes, limits, &used);
    if (!one.ok()) return one.status();
    if (all->runs.size() + one->runs.size() > limits.max_runs) {
      return Status::ResourceExhausted("op batches with over " + num(limits.max_runs) + " runs");
    }
    if ((events += one->events()) > limits.max_events) return too_many_events("op batches", limits);
    if (all->bytes.size() + one->bytes.size() > UINT32_MAX) return Status::ResourceExhausted("op batches too large");
    const auto shift = static_cast<uint32_t>(all->bytes.size());
    all->bytes.append(one->bytes);
    // The batch's own names are distinct: each is looked up among the names before it.
    std::vector<uint32_t> agent(one->agents.size());
    for (size_t i = 0; i < one->agents.size(); ++i) {
      auto [it, added] = index.try_emplace(std::string(one->agent(static_cast<uint32_t>(i))),
                                           static_cast<uint32_t>(all->agents.size()));
      if (added) all->agents.push_back({shift + one->agents[i].off, one->agents[i].len});
      agent[i] = it->second;
    }
    const auto parents = static_cast<uint32_t>(all->parents.size());
    const auto formats = static_cast<uint32_t>(all->formats.size());
    for (Batch::Run r : one->runs) {
      r.agent = agent[r.agent];
      r.text.off += shift;
      r.parents += parents;
      if (r.format != Batch::kNoFormat) r.format += formats;
      all->runs.push_back(r);
    }
    for (Batch::Parent p : one->parents) all->parents.push_back({agent[p.agent], p.seq});
    for (auto& f : one->formats) all->formats.push_back(std::move(f));
    bytes.remove_prefix(used);
  }
  return all;
}

// ---- versions ---------------------------------------------------------------------------------

std::string encode_version(const Version& version) {
  std::string out;
  StringSink sink{&out};
  Packer pk(sink);
  mp::pack_version(pk, version);
  return out;
}

Result<Version> decode_version(std::string_view bytes, const DecodeLimits& limits) {
  msgpack::object_handle oh;
  TANDEM_RETURN_IF_ERROR(unpack_one(bytes, 1, limits, &oh));
  Version v;
  TANDEM_RETURN_IF_ERROR(mp::read_version(oh.get(), limits.max_agents, &v));
  return v;
}

// ---- snapshots --------------------------------------------------------------------------------
//
// [format, agents, nruns, meta, agent_runs, positions, parents, text, text_runs], where the bin
// columns hold varints (see FORMAT.md):
//   meta:       per run, len << 3 | type << 1 | explicit_parents
//   agent_runs: (agent, number of consecutive runs by it) pairs
//   positions:  per run, zigzag(pos - predicted), predicted from the previous run's end
//   parents:    per run with explicit parents: count, then each as (first event - parent), then
//               len_before when count > 1
//   text_runs:  per run, zigzag(event - end of the previous text run), len

namespace {

uint32_t predict_next(uint8_t type, uint32_t pos, uint32_t len) {
  switch (type) {
    case SnapshotData::kInsert: return pos + len;
    case SnapshotData::kDeleteForward: return pos;
    default: return pos + 1 - len;
  }
}

using mp::pack_bin;

}  // namespace

std::string encode_snapshot(const SnapshotData& data) {
  std::string meta, agent_runs, positions, parents, text_runs;
  meta.reserve(data.runs.size() * 2);
  positions.reserve(data.runs.size() * 2);
  uint32_t predicted = 0;
  uint64_t first_event = 0;
  for (size_t i = 0; i < data.runs.size(); ++i) {
    const auto& r = data.runs[i];
    put_varint(&meta, (uint64_t{r.len} << 3) | (uint64_t{r.type} << 1) | (r.follows_previous ? 0 : 1));
    if (i == 0 || r.agent != data.runs[i - 1].agent) {
      size_t count = 1;
      while (i + count < data.runs.size() && data.runs[i + count].agent == r.agent) ++count;
      put_varint(&agent_runs, r.agent);
      put_varint(&agent_runs, count);
    }
    put_varint(&positions, zigzag(static_cast<int64_t>(r.pos) - static_cast<int64_t>(predicted)));
    predicted = predict_next(r.type, r.pos, r.len);
    if (!r.follows_previous) {
      put_varint(&parents, r.parents.size());
      for (uint32_t p : r.parents) put_varint(&parents, first_event - p);
      if (r.parents.size() > 1) put_varint(&parents, r.len_before);
    }
    first_event += r.len;
  }
  uint64_t prev_end = 0;
  for (const auto& t : data.text_runs) {
    put_varint(&text_runs, zigzag(static_cast<int64_t>(t.event) - static_cast<int64_t>(prev_end)));
    put_varint(&text_runs, t.len);
    prev_end = uint64_t{t.event} + t.len;
  }
  std::string out;
  out.reserve(meta.size() + positions.size() + parents.size() + text_runs.size() + data.text.size() + 64);
  StringSink sink{&out};
  Packer pk(sink);
  const bool rich = !data.formats.empty();
  pk.pack_array(rich ? 10 : 9);
  pk.pack_uint32(rich ? kSnapshotFormatRich : kSnapshotFormat);
  pack_agents(pk, data.agents);
  pk.pack_uint32(static_cast<uint32_t>(data.runs.size()));
  pack_bin(pk, meta);
  pack_bin(pk, agent_runs);
  pack_bin(pk, positions);
  pack_bin(pk, parents);
  pk.pack_str(static_cast<uint32_t>(data.text.size()));
  pk.pack_str_body(data.text.data(), static_cast<uint32_t>(data.text.size()));
  pack_bin(pk, text_runs);
  if (rich) {
    // [table, uses]: each distinct (name, value, remove) once, in order of first use, as
    // [0, name, value, remove]; then per format run a varint pair (table index, end - pos; 0 for a
    // block). A document sets the same few marks over and over.
    std::vector<const Format*> table;
    std::unordered_map<std::string, size_t> index;
    std::string uses, key;
    size_t fi = 0;
    for (const auto& r : data.runs) {
      if (r.type != SnapshotData::kFormat) continue;
      const Format& f = data.formats[fi++];
      key.assign(f.name).append(1, '\0').append(f.value).append(1, f.remove ? '1' : '0');
      auto [it, added] = index.emplace(key, table.size());
      if (added) table.push_back(&f);
      put_varint(&uses, it->second);
      put_varint(&uses, f.end > 0 ? f.end - r.pos : 0);
    }
    pk.pack_array(2);
    pk.pack_array(static_cast<uint32_t>(table.size()));
    for (const Format* f : table) pack_format(pk, Format{0, f->name, f->value, f->remove});
    pack_bin(pk, uses);
  }
  return out;
}

namespace {

// Where read_snapshot is in the columns a run's type, agent and position come from.
struct RunCursor {
  VarintReader meta, agent_runs, positions;
  uint32_t agent;
  uint64_t agent_left;
  uint32_t predicted;
  uint64_t first_event;
};

constexpr size_t kLaneRuns = 256;

// Reads runs at *cur into out[0, room) while each follows the run before, is not a format and
// reads without fault; *cur moves past those only, so that the general reader takes (and, if
// need be, names the fault of) the run it stopped at. Apart, so that its state stays in registers.
[[gnu::noinline]] size_t read_typed_runs(RunCursor* cur, size_t room, size_t nagents, uint64_t max_events,
                                         SnapshotLoader::TypedRun* out) {
  RunCursor c = *cur;
  size_t n = 0;
  while (n < room) {
    const uint8_t *meta_at = c.meta.mark(), *agents_at = c.agent_runs.mark(), *positions_at = c.positions.mark();
    uint64_t m, z, pos;
    uint32_t agent = c.agent;
    uint64_t left = c.agent_left, len = 0;
    uint8_t type = 0;
    const bool taken = [&] {
      if (!c.meta.read_short(&m)) return false;
      len = m >> 3;
      type = static_cast<uint8_t>((m >> 1) & 3);
      if ((m & 1) || type == SnapshotData::kFormat || len == 0 || len > UINT32_MAX) return false;
      if (left == 0 && (!c.agent_runs.read32(&agent) || !c.agent_runs.read(&left) || left == 0 || agent >= nagents)) {
        return false;
      }
      if (!c.positions.read_short(&z) || !add_zigzag(c.predicted, z, UINT32_MAX, &pos)) return false;
      return !(type == SnapshotData::kDeleteBackward && pos + 1 < len) && c.first_event + len <= max_events;
    }();
    if (!taken) {
      c.meta.reset(meta_at), c.agent_runs.reset(agents_at), c.positions.reset(positions_at);
      break;
    }
    c.agent = agent;
    c.agent_left = left - 1;
    c.predicted = predict_next(type, static_cast<uint32_t>(pos), static_cast<uint32_t>(len));
    c.first_event += len;
    out[n++] = {agent, static_cast<uint32_t>(pos), static_cast<uint32_t>(len), type};
  }
  *cur = c;
  return n;
}

// Reads a snapshot's columns in one pass, handing them to `sink` as it goes: sink.begin(agents,
// runs), then sink.add(i, run, format) for each run (format: what a format run sets, else null),
// then sink.finish(text, text_runs). An error from the sink ends the read.
template <class Sink>
Status read_snapshot(std::string_view bytes, const DecodeLimits& limits, Sink& sink) {
  msgpack::object_handle oh;
  TANDEM_RETURN_IF_ERROR(unpack_one(bytes, 4, limits, &oh));
  const msgpack::object* top;
  uint32_t ntop, format;
  if (!as_array(oh.get(), &top, &ntop) || ntop < 1) return bad_bytes("snapshot: expected an array");
  TANDEM_RETURN_IF_ERROR(check_format(top[0], kSnapshotFormatRich, "snapshot", &format));
  if (ntop != (format == kSnapshotFormat ? 9u : 10u)) return bad_bytes("snapshot: wrong number of fields");
  const uint32_t max_type = format == kSnapshotFormat ? SnapshotData::kDeleteBackward : SnapshotData::kFormat;
  std::vector<std::string> agents;
  TANDEM_RETURN_IF_ERROR(read_agents(top[1], limits, &agents));
  const size_t nagents = agents.size();
  uint32_t nruns;
  std::string_view meta_b, agents_b, pos_b, parents_b, text, text_runs_b;
  if (!as_u32(top[2], &nruns)) return bad_bytes("snapshot: bad run count");
  if (!as_bin(top[3], &meta_b) || !as_bin(top[4], &agents_b) || !as_bin(top[5], &pos_b) || !as_bin(top[6], &parents_b) ||
      !as_str(top[7], &text) || !as_bin(top[8], &text_runs_b)) {
    return bad_bytes("snapshot: bad column types");
  }
  // Every run takes at least one byte of `meta`: a count beyond that is a lie, not a reason to allocate.
  if (nruns > meta_b.size()) return bad_bytes("snapshot: run count exceeds its column");
  if (nruns > limits.max_runs) return Status::ResourceExhausted("snapshot has " + num(nruns) + " runs");
  // The formats' table (deduplicated) comes first, so that each format run can take its use.
  std::vector<Format> table;
  std::string_view uses_b;
  if (format == kSnapshotFormatRich) {
    const msgpack::object *pair, *items;
    uint32_t npair, n;
    if (!as_array(top[9], &pair, &npair) || npair != 2 || !as_array(pair[0], &items, &n) || n == 0 ||
        !as_bin(pair[1], &uses_b)) {
      return bad_bytes("snapshot: bad formats");
    }
    table.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      TANDEM_RETURN_IF_ERROR(read_format(items[i], &table[i]).WithContext("snapshot"));
      if (table[i].end != 0) return bad_bytes("snapshot: bad formats");
    }
  }
  // Only the first run's count (0) in the parents column: no run names its parents.
  TANDEM_RETURN_IF_ERROR(sink.begin(std::move(agents), nruns, parents_b.size() <= 1));
  VarintReader parents(parents_b), text_runs(text_runs_b), uses(uses_b);
  RunCursor cur{VarintReader(meta_b), VarintReader(agents_b), VarintReader(pos_b), 0, 0, 0, 0};
  VarintReader &meta = cur.meta, &agent_runs = cur.agent_runs, &positions = cur.positions;
  uint32_t& agent = cur.agent;
  uint64_t& agent_left = cur.agent_left;
  uint32_t& predicted = cur.predicted;
  uint64_t& first_event = cur.first_event;
  SnapshotData::Run r;
  // r as a run of the given fields whose parents, if any, are still to be read.
  auto set_run = [&r](uint8_t type, bool follows, uint32_t len, uint32_t run_agent, uint32_t pos) {
    r.type = type;
    r.follows_previous = follows;
    r.len = len;
    r.agent = run_agent;
    r.pos = pos;
    r.parents.clear();
    r.len_before = 0;
  };
  Format f;
  // Runs that go on from the run before, for a sink that takes them many at a time: read by
  // read_typed_runs into `lane`, handed over together.
  constexpr bool kLane = requires { sink.add_typed(static_cast<const SnapshotLoader::TypedRun*>(nullptr), size_t{0}); };
  SnapshotLoader::TypedRun lane[kLane ? kLaneRuns : 1];
  for (uint32_t i = 0; i < nruns; ++i) {
    if constexpr (kLane) {
      const size_t n = read_typed_runs(&cur, std::min<size_t>(kLaneRuns, nruns - i), nagents, limits.max_events, lane);
      if (n > 0) {
        // Those the lane refuses go through add(), one at a time.
        size_t k = 0;
        while ((k += sink.add_typed(lane + k, n - k)) < n) {
          const SnapshotLoader::TypedRun& t = lane[k];
          set_run(t.type, true, t.len, t.agent, t.pos);
          TANDEM_RETURN_IF_ERROR(sink.add(i + k, r, nullptr));
          ++k;
        }
        i += static_cast<uint32_t>(n) - 1;
        continue;
      }
    }
    auto bad = [&](const char* why) { return bad_bytes("snapshot run " + num(i) + ": " + why); };
    uint64_t m, zpos;
    if (!meta.read(&m)) return bad("truncated meta");
    const uint64_t len = m >> 3;
    const auto type = static_cast<uint8_t>((m >> 1) & 3);
    const bool follows = !(m & 1);
    if (len == 0 || len > UINT32_MAX) return bad("bad length");
    if (type > max_type) return bad("unknown type");
    if (agent_left == 0) {
      if (!agent_runs.read32(&agent) || !agent_runs.read(&agent_left) || agent_left == 0) return bad("bad agent column");
      if (agent >= nagents) return bad("agent index out of range");
    }
    --agent_left;
    if (!positions.read(&zpos)) return bad("truncated positions");
    uint64_t pos;
    if (!add_zigzag(predicted, zpos, UINT32_MAX, &pos)) return bad("position out of range");
    if (type == SnapshotData::kDeleteBackward && pos + 1 < len) return bad("position out of range");
    predicted = predict_next(type, static_cast<uint32_t>(pos), static_cast<uint32_t>(len));
    set_run(type, follows, static_cast<uint32_t>(len), agent, static_cast<uint32_t>(pos));
    if (!r.follows_previous) {
      uint64_t count;
      if (!parents.read(&count)) return bad("truncated parents");
      if (count > limits.max_parents || count > parents.remaining()) return bad("too many parents");
      r.parents.resize(count);
      for (uint64_t k = 0; k < count; ++k) {
        uint64_t delta;
        if (!parents.read(&delta) || delta == 0 || delta > first_event) return bad("bad parent");
        r.parents[k] = static_cast<uint32_t>(first_event - delta);
      }
      if (count > 1 && !parents.read32(&r.len_before)) return bad("truncated length");
    }
    first_event += r.len;
    if (first_event > limits.max_events) return too_many_events("snapshot", limits);
    const Format* fmt = nullptr;
    if (r.type == SnapshotData::kFormat) {
      uint64_t t, delta;
      if (!uses.read(&t) || !uses.read(&delta) || t >= table.size() || r.pos + delta > UINT32_MAX) {
        return bad_bytes("snapshot: bad format use");
      }
      f = table[t];
      f.end = delta > 0 ? r.pos + static_cast<uint32_t>(delta) : 0;
      fmt = &f;
    }
    TANDEM_RETURN_IF_ERROR(sink.add(i, r, fmt));
  }
  if (!meta.done() || !positions.done() || !parents.done() || !agent_runs.done() || agent_left != 0) {
    return bad_bytes("snapshot: trailing column bytes");
  }
  std::vector<SnapshotData::TextRun> runs(text_runs_b.size() / 2);  // each takes two varints at least
  size_t nruns_text = 0;
  uint64_t prev_end = 0;
  while (!text_runs.done()) {
    uint64_t z, len;
    if (!text_runs.read(&z) || !text_runs.read(&len)) return bad_bytes("snapshot: truncated text runs");
    uint64_t ev;
    if (!add_zigzag(prev_end, z, first_event, &ev) || len == 0 || len > first_event - ev) {
      return bad_bytes("snapshot: text run out of range");
    }
    runs[nruns_text++] = {static_cast<uint32_t>(ev), static_cast<uint32_t>(len)};
    prev_end = ev + len;
  }
  runs.resize(nruns_text);
  if (!uses.done()) return bad_bytes("snapshot: trailing format uses");
  return sink.finish(text, std::move(runs));
}

// read_snapshot into a SnapshotData.
struct DataSink {
  SnapshotData data;
  Status begin(std::vector<std::string> agents, size_t runs, bool) {
    data.agents = std::move(agents);
    data.runs.reserve(runs);
    return Status::OK();
  }
  Status add(size_t, const SnapshotData::Run& run, const Format* format) {
    data.runs.push_back(run);
    if (format) data.formats.push_back(*format);
    return Status::OK();
  }
  Status finish(std::string_view text, std::vector<SnapshotData::TextRun> runs) {
    data.text.assign(text);
    data.text_runs = std::move(runs);
    return Status::OK();
  }
};

// What a lazily loaded replica decodes its bytes with when it first needs its op log.
Doc::SnapshotDecoder decoder(const DecodeLimits& limits) {
  return [limits](std::string_view b) { return decode_snapshot(b, limits); };
}

// The snapshot's bytes with its text (a range of them) stored as an empty string: what a lazily
// loaded replica keeps to build its op log from, the text being in the replica already
// (Doc::from_snapshot_lazy): automerge-paper's replica copies and holds 44 KB of 149.
std::string without_text(std::string_view bytes, std::string_view text) {
  const size_t at = static_cast<size_t>(text.data() - bytes.data()), n = text.size();
  // The string's header as encode_snapshot writes it, and an empty string's; any other: all the bytes.
  std::string header, empty;
  StringSink header_sink{&header}, empty_sink{&empty};
  Packer(header_sink).pack_str(static_cast<uint32_t>(n));
  Packer(empty_sink).pack_str(0);
  if (n == 0 || at < header.size() || bytes.substr(at - header.size(), header.size()) != header) return std::string(bytes);
  std::string kept;
  kept.reserve(bytes.size() - n - header.size() + empty.size());
  kept.append(bytes.substr(0, at - header.size())).append(empty).append(bytes.substr(at + n));
  return kept;
}

// read_snapshot into a lazily loaded replica.
struct LoadSink {
  std::string_view agent, bytes;
  DecodeLimits limits;
  SnapshotLoader loader;
  std::optional<Result<Doc>> doc;
  Status begin(std::vector<std::string> agents, size_t runs, bool linear) {
    return loader.begin(agent, std::move(agents), runs, linear);
  }
  Status add(size_t i, const SnapshotData::Run& run, const Format* format) { return loader.add(i, run, format); }
  size_t add_typed(const SnapshotLoader::TypedRun* runs, size_t n) { return loader.add_typed(runs, n); }
  Status finish(std::string_view text, std::vector<SnapshotData::TextRun> runs) {
    doc.emplace(loader.finish(text, runs, without_text(bytes, text), decoder(limits)));
    return doc->ok() ? Status::OK() : doc->status();
  }
};

}  // namespace

Result<SnapshotData> decode_snapshot(std::string_view bytes, const DecodeLimits& limits) {
  DataSink sink;
  TANDEM_RETURN_IF_ERROR(read_snapshot(bytes, limits, sink));
  return std::move(sink.data);
}

Result<Doc> load_direct(std::string_view bytes, std::string_view agent, const DecodeLimits& limits) {
  LoadSink sink{agent, bytes, limits, {}, {}};
  TANDEM_RETURN_IF_ERROR(read_snapshot(bytes, limits, sink));
  return std::move(*sink.doc);
}

std::string save(const Doc& doc) { return encode_snapshot(doc.to_snapshot()); }

Result<Doc> load(std::string_view bytes, std::string_view agent, const DecodeLimits& limits) {
  auto doc = load_direct(bytes, agent, limits);
  if (doc.ok()) return doc;
  // The direct reader stops at the first fault it meets, checks and decoding interleaved; the
  // two steps name the fault from_snapshot names, the same for every reader of these bytes.
  auto data = decode_snapshot(bytes, limits);
  if (!data.ok()) return data.status();
  return Doc::from_snapshot_lazy(*data, agent, std::string(bytes), decoder(limits));
}

}  // namespace tandem::crdt::codec
