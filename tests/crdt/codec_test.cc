// The codec: round trips, determinism, and hostile bytes (truncated, bad lengths, unknown tags,
// oversized container headers). Decoders must fail with a clear error, never crash or allocate
// what a header claims.
#include <catch2/catch.hpp>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "crdt/history.h"
#include "crdt/varint.h"
#include "support/random_edits.h"

using tandem::crdt::Doc;
using tandem::crdt::OpBatch;
using tandem::crdt::Status;
using tandem::crdt::Version;
using tandem::testing::Rng;
namespace codec = tandem::crdt::codec;
using Code = Status::Code;

namespace {

// Bytes from a literal that may hold NULs.
template <size_t N>
std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

// Two replicas with concurrent history, so batches carry every kind and explicit parents.
std::pair<Doc, Doc> sample_docs(uint64_t seed) {
  Rng rng(seed);
  Doc a("alice"), b("b\xC3\xB6");
  for (int i = 0; i < 30; ++i) {
    tandem::testing::random_edit(rng, a);
    tandem::testing::random_edit(rng, b);
    if (i % 7 == 0) REQUIRE(a.apply(b.ops_since(a.version())).ok());
    if (i % 11 == 0) REQUIRE(b.apply(a.ops_since(b.version())).ok());
  }
  REQUIRE(a.apply(b.ops_since(a.version())).ok());
  REQUIRE(b.apply(a.ops_since(b.version())).ok());
  return {std::move(a), std::move(b)};
}

}  // namespace

TEST_CASE("codec: op batches round trip exactly", "[codec]") {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto [a, b] = sample_docs(seed);
    for (const OpBatch& batch : {a.ops_since({}), b.ops_since({}), OpBatch{}}) {
      const std::string bytes = codec::encode_ops(batch);
      auto back = codec::decode_ops(bytes);
      REQUIRE(back.ok());
      CHECK(*back == batch);
      CHECK(codec::encode_ops(*back) == bytes);
    }
  }
}

TEST_CASE("codec: versions round trip", "[codec]") {
  Version v;
  v.advance("alice", 3);
  v.advance("\xF0\x9F\x98\x80", 7);
  auto back = codec::decode_version(codec::encode_version(v));
  REQUIRE(back.ok());
  CHECK(*back == v);
  auto empty = codec::decode_version(codec::encode_version({}));
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

TEST_CASE("codec: snapshots round trip and re-encode identically", "[codec][snapshot]") {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto [a, b] = sample_docs(seed);
    const std::string bytes = codec::save(a);
    CHECK(codec::save(b) == bytes);
    auto data = codec::decode_snapshot(bytes);
    REQUIRE(data.ok());
    CHECK(*data == a.to_snapshot());
    auto loaded = codec::load(bytes, "c");
    REQUIRE(loaded.ok());
    CHECK(loaded->text() == a.text());
    CHECK(loaded->version() == a.version());
    CHECK(codec::save(*loaded) == bytes);
    auto direct = codec::load_direct(bytes, "c");
    REQUIRE(direct.ok());
    CHECK(direct->text() == a.text());
    CHECK(direct->version() == a.version());
    CHECK(direct->num_events() == a.num_events());
    CHECK(direct->check_invariants().ok());
    CHECK(direct->to_snapshot() == *data);
  }
  Doc empty("x");
  auto loaded = codec::load(codec::save(empty), "y");
  REQUIRE(loaded.ok());
  CHECK(loaded->text().empty());
}

TEST_CASE("codec: every truncation of valid bytes is an error", "[codec][corruption]") {
  auto [a, b] = sample_docs(3);
  const std::string ops = codec::encode_ops(a.ops_since({}));
  const std::string snap = codec::save(a);
  for (size_t n = 0; n < ops.size(); ++n) {
    auto r = codec::decode_ops(std::string_view(ops).substr(0, n));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kCorruption);
  }
  for (size_t n = 0; n < snap.size(); ++n) {
    auto r = codec::load(std::string_view(snap).substr(0, n), "c");
    REQUIRE_FALSE(r.ok());
  }
}

TEST_CASE("codec: random byte flips never crash", "[codec][corruption]") {
  auto [a, b] = sample_docs(5);
  const std::string ops = codec::encode_ops(a.ops_since({}));
  const std::string snap = codec::save(a);
  Rng rng(99);
  for (int i = 0; i < 3000; ++i) {
    std::string o = ops, s = snap;
    for (int k = 0; k < 3; ++k) {
      o[rng.below(o.size())] = static_cast<char>(rng.below(256));
      s[rng.below(s.size())] = static_cast<char>(rng.below(256));
    }
    auto batch = codec::decode_ops(o);
    if (batch.ok()) {
      Doc d("probe");
      (void)d.apply(*batch);  // may be refused; must not crash or break invariants
      REQUIRE(d.check_invariants().ok());
    }
    auto loaded = codec::load(s, "probe");
    if (loaded.ok()) {
      REQUIRE(loaded->check_invariants().ok());
      Doc d("other");
      (void)loaded->apply(a.ops_since({}));
    }
  }
}

TEST_CASE("codec: a header announcing four billion elements is a size error, not an allocation", "[codec]") {
  // 0xdd = array32 with a 4-byte length; 0xdb = str32; 0xc6 = bin32.
  const std::string huge_array = "\xdd\xff\xff\xff\xff";
  for (auto* decode : {+[](std::string_view b) { return codec::decode_ops(b).status(); },
                       +[](std::string_view b) { return codec::decode_snapshot(b).status(); },
                       +[](std::string_view b) { return codec::decode_version(b).status(); }}) {
    Status st = decode(huge_array);
    CHECK(st.code() == Code::kCorruption);
    CHECK_THAT(st.message(), Catch::Contains("too large"));
    // Inside a valid prefix too: [1, [ ... 4G agents
    st = decode(std::string("\x93\x01\xdd\xff\xff\xff\xff", 7));
    CHECK(st.code() == Code::kCorruption);
    st = decode(std::string("\x93\x01\xdb\xff\xff\xff\xff", 7));
    CHECK(st.code() == Code::kCorruption);
    st = decode(std::string("\x93\x01\xc6\xff\xff\xff\xff", 7));
    CHECK(st.code() == Code::kCorruption);
  }
}

TEST_CASE("codec: characters without text claiming billions of events are refused before any allocation", "[codec]") {
  // Two runs of 40 bytes: 1.7e9 characters sent already deleted, then their deletion. Applied,
  // the replica would hold a byte of each (a fuzzer found it asking for 1.7 GB).
  using tandem::crdt::OpKind;
  OpBatch b;
  b.runs.push_back({"a", 0, {}, OpKind::kInsertDeleted, 0, 1'700'000'000, "", {}});
  b.runs.push_back({"a", 1'700'000'000, {{"a", 1'699'999'999}}, OpKind::kDeleteForward, 0, 1'700'000'000, "", {}});
  const std::string bytes = codec::encode_ops(b);
  CHECK(bytes.size() < 64);
  for (auto* decode : {&codec::decode_ops, &codec::decode_ops_generic, &codec::decode_ops_sequence}) {
    auto r = decode(bytes, {});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kResourceExhausted);
    CHECK_THAT(r.status().message(), Catch::Contains("over 268435456 events"));
    codec::DecodeLimits roomy;
    roomy.max_events = uint64_t{1} << 32;  // the limit is the caller's: the same bytes are well formed
    auto ok = decode(bytes, roomy);
    REQUIRE(ok.ok());
    CHECK(ok->events() == 3'400'000'000u);
  }
  // A sequence of batches counts them all.
  codec::DecodeLimits limits;
  limits.max_events = 5;
  Doc d("a");
  REQUIRE(d.insert(0, "abc").ok());
  const std::string three = codec::encode_ops(d.ops_since({}));
  CHECK(codec::decode_ops_sequence(three + three, limits).ok() == false);
  CHECK(codec::decode_ops_sequence(three, limits).ok());
  // A snapshot's events too.
  REQUIRE(d.remove(0, 3).ok());
  const std::string snap = codec::save(d);
  CHECK(codec::load(snap, "b", limits).status().code() == Code::kResourceExhausted);
  limits.max_events = 6;
  CHECK(codec::load(snap, "b", limits).ok());
}

TEST_CASE("codec: malformed structures get clear errors", "[codec][corruption]") {
  struct Case {
    std::string bytes;
    Code code;
    std::string why;
  };
  const Case cases[] = {
      {"", Code::kCorruption, "empty"},
      {"\xc1", Code::kCorruption, "not msgpack"},                              // reserved tag
      {B("\x93\x01\x90\x90\x00"), Code::kCorruption, "trailing"},                 // extra byte
      {"\x92\x01\x90", Code::kCorruption, "expected [format, agents, runs]"},  // 2 fields
      {"\x93\x03\x90\x90", Code::kNotSupported, "format 3"},                   // future format
      {"\x93\x01\x91\x01\x90", Code::kCorruption, "agent 0: not a string"},
      {"\x93\x01\x91\xa0\x90", Code::kInvalidArgument, "agent name is empty"},
      {B("\x93\x01\x91\xa1\x61\x91\x96\x00\x00\x00\x00\x01\xc0"), Code::kCorruption, "expected 7 fields"},
      {B("\x93\x01\x91\xa1\x61\x91\x97\x05\x00\x00\x00\x01\x90\xa1\x78"), Code::kCorruption, "bad agent index"},
      {B("\x93\x01\x91\xa1\x61\x91\x97\x00\x00\x07\x00\x01\x90\xa1\x78"), Code::kCorruption, "unknown kind"},
      {B("\x93\x01\x91\xa1\x61\x91\x97\x00\x00\x00\x00\x00\x90\xa1\x78"), Code::kCorruption, "bad length"},
      {B("\x93\x01\x91\xa1\x61\x91\x97\x00\x00\x00\x00\x01\xc0\xa1\x78"), Code::kCorruption, "no previous op"},
      {B("\x93\x01\x91\xa1\x61\x91\x97\x00\x00\x00\x00\x01\x91\x00\xa1\x78"), Code::kCorruption, "bad parents"},
      {B("\x93\x01\x91\xa1\x61\x91\x97\x00\x00\x00\x00\x01\x90\xc0"), Code::kCorruption, "insert without text"},
      {B("\x93\x01\x91\xa1\x61\x91\x97\x00\x00\x02\x00\x01\x90\xa1\x78"), Code::kCorruption, "carries none"},
      {B("\x93\x01\x91\xa1\x61\x91\x97\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01\x90\xa1\x78"),
       Code::kCorruption, "bad seq"},
  };
  for (const auto& c : cases) {
    auto r = codec::decode_ops(c.bytes);
    INFO(c.why);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == c.code);
    CHECK_THAT(r.status().message(), Catch::Contains(c.why));
    CHECK(codec::decode_batch(c.bytes).status() == r.status());
  }
  // Maps and deep nesting are not part of the format.
  CHECK(codec::decode_ops("\x81\x01\x02").status().code() == Code::kCorruption);
  CHECK(codec::decode_ops(std::string(64, '\x91') + "\x01").status().code() == Code::kCorruption);
  // Limits are the caller's to choose.
  auto [a, b] = sample_docs(1);
  codec::DecodeLimits small;
  small.max_runs = 2;
  CHECK(codec::decode_ops(codec::encode_ops(a.ops_since({})), small).status().code() == Code::kResourceExhausted);
  small = {};
  small.max_bytes = 10;
  CHECK(codec::decode_ops(codec::encode_ops(a.ops_since({})), small).status().code() == Code::kResourceExhausted);
}

namespace {

// A snapshot both loads refuse, with the same error (the lazy one checks without an op log).
void refused(const tandem::crdt::SnapshotData& bad) {
  auto eager = Doc::from_snapshot(bad, "x");
  auto lazy = Doc::from_snapshot_lazy(bad, "x", "unused", [](std::string_view) -> tandem::crdt::Result<tandem::crdt::SnapshotData> {
    return Status::Internal("not called");
  });
  REQUIRE_FALSE(eager.ok());
  REQUIRE_FALSE(lazy.ok());
  CHECK(lazy.status().ToString() == eager.status().ToString());
  // As bytes: the direct reader refuses them too, and load() names the fault the two steps name.
  const std::string bytes = codec::encode_snapshot(bad);
  auto data = codec::decode_snapshot(bytes);
  const Status two_steps = data.ok() ? Doc::from_snapshot(*data, "x").status() : data.status();
  REQUIRE_FALSE(two_steps.ok());
  auto loaded = codec::load(bytes, "x");
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.status().ToString() == two_steps.ToString());
  CHECK_FALSE(codec::load_direct(bytes, "x").ok());
}

}  // namespace

TEST_CASE("codec: snapshots that lie are refused", "[codec][corruption]") {
  Doc a("a");
  REQUIRE(a.insert(0, "hello").ok());
  REQUIRE(a.remove(1, 2).ok());
  auto data = a.to_snapshot();
  {
    auto bad = data;
    bad.text = "help";  // same length, wrong text is not detectable; longer text is
    bad.text += "!";
    refused(bad);
  }
  {
    auto bad = data;
    bad.text_runs[0].event = 5;  // a delete event shown as text
    refused(bad);
  }
  {
    auto bad = data;
    bad.runs[1].pos = 9;  // a delete past the end
    refused(bad);
  }
  {
    auto bad = data;
    bad.agents.push_back("a");  // twice
    refused(bad);
  }
  {
    auto bad = data;
    bad.runs[0].parents = {3};  // a parent from the future
    bad.runs[0].follows_previous = false;
    refused(bad);
  }
  {
    auto bad = data;  // "hello" typed as two runs that one run would hold: not what Tandem writes
    REQUIRE(bad.runs[0].len == 5);
    bad.runs[0].len = 2;
    tandem::crdt::SnapshotData::Run rest = bad.runs[0];
    rest.len = 3;
    rest.pos = 2;
    rest.follows_previous = true;
    bad.runs.insert(bad.runs.begin() + 1, rest);
    auto loaded = Doc::from_snapshot(bad, "x");
    CHECK(loaded.status().code() == Code::kCorruption);
    CHECK_THAT(loaded.status().message(), Catch::Contains("canonical"));
    refused(bad);
  }
  CHECK(codec::decode_snapshot(B("\x99\x03\x90\x00\xc4\x00\xc4\x00\xc4\x00\xc4\x00\xa0\xc4\x00")).status().code() ==
        Code::kNotSupported);
  CHECK(codec::decode_snapshot(B("\x99\x01\x90\x05\xc4\x00\xc4\x00\xc4\x00\xc4\x00\xa0\xc4\x00")).status().code() ==
        Code::kCorruption);  // five runs, no bytes for them
}

TEST_CASE("codec: a long history's runs load many at a time, and a lie among them is still refused", "[codec][corruption]") {
  // One author, then two taking turns: over a thousand runs, each following the one before, as
  // the direct reader hands them to the loader in groups of 256.
  Rng rng(27);
  Doc a("a"), b("b");
  for (int i = 0; i < 1200; ++i) tandem::testing::random_edit(rng, a, true);
  for (int i = 0; i < 400; ++i) {
    Doc& by = i % 2 ? a : b;
    Doc& other = i % 2 ? b : a;
    tandem::testing::random_edit(rng, by, true);
    REQUIRE(other.apply(by.ops_since(other.version())).ok());
  }
  const auto data = a.to_snapshot();
  REQUIRE(data.runs.size() > 1000);
  size_t turns = 0;
  for (size_t i = 1; i < data.runs.size(); ++i) turns += data.runs[i].follows_previous && data.runs[i].agent != data.runs[i - 1].agent;
  CHECK(turns > 100);  // runs that follow another agent's: the loader's general path takes them
  const std::string bytes = codec::encode_snapshot(data);
  auto loaded = codec::load(bytes, "reader");
  REQUIRE(loaded.ok());
  CHECK(loaded->text() == a.text());
  CHECK(loaded->version() == a.version());
  CHECK(codec::save(*loaded) == bytes);  // its op log, built from the bytes, encodes to them again

  // Lies past the first group of runs, and in the text.
  size_t del = 0, ins = 0;
  for (size_t i = 300; i < data.runs.size() && (!del || !ins); ++i) {
    if (!data.runs[i].follows_previous) continue;
    if (!del && data.runs[i].type == tandem::crdt::SnapshotData::kDeleteForward) del = i;
    if (!ins && data.runs[i].type == tandem::crdt::SnapshotData::kInsert && data.runs[i].len > 1) ins = i;
  }
  REQUIRE(del > 0);
  REQUIRE(ins > 0);
  {
    auto bad = data;
    bad.runs[del].pos = 1u << 30;  // a delete past the end
    refused(bad);
  }
  {
    auto bad = data;
    bad.runs[ins].pos = 1u << 30;  // an insert past the end
    refused(bad);
  }
  {
    auto bad = data;  // an insert run split in two: not canonical
    auto& r = bad.runs[ins];
    tandem::crdt::SnapshotData::Run rest = r;
    r.len = 1;
    rest.len -= 1;
    rest.pos += 1;
    rest.follows_previous = true;
    rest.parents.clear();
    bad.runs.insert(bad.runs.begin() + static_cast<long>(ins) + 1, rest);
    auto eager = Doc::from_snapshot(bad, "x");
    CHECK_THAT(eager.status().message(), Catch::Contains("canonical"));
    refused(bad);
  }
  {
    auto bad = data;  // the first character shown again at the end, in place of the last one
    REQUIRE(bad.text_runs.size() > 2);
    auto& last = bad.text_runs.back();
    if (last.len > 1) {
      last.len -= 1;
      bad.text_runs.push_back({bad.text_runs.front().event, 1});
    } else {
      last.event = bad.text_runs.front().event;
    }
    auto eager = Doc::from_snapshot(bad, "x");
    CHECK_THAT(eager.status().message(), Catch::Contains("twice"));
    refused(bad);
  }
  {
    auto bad = data;  // a delete event shown as text, in place of the last character
    uint32_t deleting = 0;
    for (size_t i = 0; i < del; ++i) deleting += bad.runs[i].len;
    auto& last = bad.text_runs.back();
    if (last.len > 1) {
      last.len -= 1;
      bad.text_runs.push_back({deleting, 1});
    } else {
      last.event = deleting;
    }
    auto eager = Doc::from_snapshot(bad, "x");
    CHECK_THAT(eager.status().message(), Catch::Contains("not inserts"));
    refused(bad);
  }
}

TEST_CASE("codec: a loader told the history is linear refuses a run that names its parents", "[codec][corruption]") {
  using tandem::crdt::SnapshotData;
  using tandem::crdt::SnapshotLoader;
  SnapshotData::Run first{0, 3, SnapshotData::kInsert, 0, false, {}, 0};
  SnapshotData::Run then{0, 1, SnapshotData::kDeleteForward, 0, true, {}, 0};
  SnapshotData::Run last{0, 1, SnapshotData::kInsert, 0, false, {1}, 0};  // after event 1, in the first run
  for (const bool linear : {false, true}) {
    SnapshotLoader load;
    REQUIRE(load.begin("x", {"a"}, 3, linear).ok());
    REQUIRE(load.add(0, first, nullptr).ok());
    REQUIRE(load.add(1, then, nullptr).ok());
    const Status st = load.add(2, last, nullptr);
    if (linear) {
      CHECK(st.code() == Code::kCorruption);
      CHECK_THAT(st.message(), Catch::Contains("said to be linear"));
    } else {
      CHECK(st.ok());  // the loader that keeps the runs' shapes finds event 1's length
    }
  }
  // The typed lane takes what follows the run before by the same agent, and leaves the rest.
  SnapshotLoader load;
  REQUIRE(load.begin("x", {"a", "b"}, 4, true).ok());
  REQUIRE(load.add(0, first, nullptr).ok());
  const SnapshotLoader::TypedRun lane[] = {{0, 0, 2, SnapshotData::kDeleteForward}, {1, 0, 1, SnapshotData::kInsert},
                                           {0, 9, 1, SnapshotData::kInsert}};
  CHECK(load.add_typed(lane, 3) == 1);      // b's run is not the lane's
  CHECK(load.add_typed(lane + 2, 1) == 0);  // nor a's insert past the end of the document
}

TEST_CASE("codec: a varint read without a branch on its length reads what read() reads", "[codec]") {
  using tandem::crdt::codec::VarintReader;
  // Every value of up to three bytes, and every byte pair and truncation around them.
  std::vector<std::string> inputs;
  for (uint64_t v : {0ull, 1ull, 127ull, 128ull, 300ull, 16383ull, 16384ull, 2097151ull, 2097152ull, ~0ull}) {
    std::string b;
    tandem::crdt::codec::put_varint(&b, v);
    for (size_t cut = 0; cut <= b.size(); ++cut) inputs.push_back(b.substr(0, cut));
    inputs.push_back(b + "\x05");
  }
  for (int b0 = 0; b0 < 256; ++b0) {
    for (int b1 : {0x00, 0x01, 0x7f, 0x80, 0xff}) inputs.push_back({static_cast<char>(b0), static_cast<char>(b1)});
  }
  for (const std::string& in : inputs) {
    INFO(in.size());
    VarintReader a(in), b(in);
    for (int i = 0; i < 3; ++i) {
      uint64_t x = 7, y = 7;
      const bool ra = a.read(&x), rb = b.read_short(&y);
      REQUIRE(ra == rb);
      if (!ra) break;
      CHECK(x == y);
      CHECK(a.remaining() == b.remaining());
    }
  }
}

TEST_CASE("codec: the example in FORMAT.md is what the encoder writes", "[codec]") {
  Doc a("a");
  REQUIRE(a.insert(0, "hi").ok());
  REQUIRE(a.remove(1, 1).ok());
  const std::string expect = B(
      "\x93\x01\x91\xa1\x61\x93"
      "\x97\x00\x00\x00\x00\x01\x90\xa1\x68"
      "\x97\x00\x01\x01\x01\x01\xc0\xc0"
      "\x97\x00\x02\x02\x01\x01\xc0\xc0");
  CHECK(codec::encode_ops(a.ops_since({})) == expect);
  Version v;
  v.advance("a", 3);
  CHECK(codec::encode_version(v) == B("\x92\xa1\x61\x03"));
}

TEST_CASE("codec: the direct op-batch reader and the generic msgpack decoder agree", "[codec]") {
  // What the encoder writes, for batches of many shapes.
  tandem::testing::Rng rng(11);
  for (int round = 0; round < 50; ++round) {
    Doc a("alice"), b("bob");
    for (int i = 0; i < 40; ++i) {
      tandem::testing::random_edit(rng, rng.chance(0.5) ? a : b);
      if (rng.chance(0.2)) REQUIRE(a.apply(b.ops_since(a.version())).ok());
    }
    const std::string bytes = codec::encode_ops(a.ops_since({}, Doc::DeletedText::kInclude));
    auto fast = codec::decode_ops(bytes), generic = codec::decode_ops_generic(bytes);
    REQUIRE(fast.ok());
    REQUIRE(generic.ok());
    CHECK(fast->runs == generic->runs);
    // The direct reader takes all of it, its last bytes too (the generic one would be slow).
    auto cols = codec::decode_batch(bytes);
    REQUIRE(cols.ok());
    CHECK(cols->encoded);
    // Cut anywhere: both refuse, with the same words.
    const size_t cut = rng.below(bytes.size());
    auto f2 = codec::decode_ops(bytes.substr(0, cut)), g2 = codec::decode_ops_generic(bytes.substr(0, cut));
    CHECK(!f2.ok());
    CHECK(f2.status() == g2.status());
  }
  // Forms the encoder never writes but msgpack allows (a position as int8, a length as uint64)
  // still decode, through the generic path.
  const std::string other = B("\x93\x01\x91\xa1\x61\x91\x97\x00\x00\x00\xd0\x00\xcf\x00\x00\x00\x00\x00\x00\x00\x01\x90\xa1\x78");
  auto f = codec::decode_ops(other), g = codec::decode_ops_generic(other);
  REQUIRE(g.ok());
  REQUIRE(f.ok());
  CHECK(f->runs == g->runs);
  CHECK(f->runs[0].len == 1);
}

TEST_CASE("codec: op batches decode straight into columns, which merge as the runs do", "[codec]") {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    auto [a, b] = sample_docs(seed);
    const std::string bytes = codec::encode_ops(b.ops_since({}, Doc::DeletedText::kInclude));
    auto runs = codec::decode_ops(bytes);
    auto cols = codec::decode_batch(bytes);
    REQUIRE(runs.ok());
    REQUIRE(cols.ok());
    CHECK(cols->bytes == bytes);  // names and texts are ranges of the received bytes
    CHECK(cols->encoded);         // read by the direct reader
    CHECK(cols->to_op_batch() == *runs);
    CHECK(cols->events() == runs->events());
    Doc x("x"), y("x");
    REQUIRE(x.insert(0, "local").ok());
    REQUIRE(y.insert(0, "local").ok());
    auto px = x.apply(*cols);
    auto py = y.apply(*runs);
    REQUIRE(px.ok());
    REQUIRE(py.ok());
    CHECK(*px == *py);
    CHECK(x.text() == y.text());
    CHECK(x.version() == y.version());
    CHECK(x.check_invariants().ok());
    // A log row of several batches (the store's) reads as one batch of all their runs.
    const std::string two = codec::encode_ops(a.ops_since({})) + bytes;
    auto seq_runs = codec::decode_ops_sequence(two);
    auto seq_cols = codec::decode_batch_sequence(two);
    REQUIRE(seq_cols.ok());
    CHECK(seq_cols->to_op_batch() == *seq_runs);
    CHECK(seq_cols->agents.size() == 2);  // alice and bö, once each
  }
  // Later batches of a row bring agents of their own.
  Doc p("p"), q("q"), r("r");
  REQUIRE(p.insert(0, "one ").ok());
  REQUIRE(q.apply(p.ops_since({})).ok());
  REQUIRE(q.insert(4, "two ").ok());
  REQUIRE(r.apply(q.ops_since({})).ok());
  REQUIRE(r.insert(8, "three").ok());
  const std::string row = codec::encode_ops(p.ops_since({})) + codec::encode_ops(r.ops_since(p.version()));
  auto cols = codec::decode_batch_sequence(row);
  REQUIRE(cols.ok());
  CHECK(cols->to_op_batch() == *codec::decode_ops_sequence(row));
  CHECK(cols->agents.size() == 3);
  Doc fresh("x");
  REQUIRE(fresh.apply(*cols).ok());
  CHECK(fresh.text() == "one two three");
  // A table that names one agent twice: both entries are that agent, so a run depending on its
  // own future through the other entry is refused as the runs' form refuses it.
  const std::string twice = B("\x93\x01\x92\xa1\x61\xa1\x61\x91\x97\x01\x00\x00\x00\x01\x92\x00\x00\xa1\x78");
  cols = codec::decode_batch(twice);
  REQUIRE(cols.ok());
  CHECK(cols->agents.size() == 1);
  Doc x("x"), y("x");
  auto px = x.apply(*cols);
  auto py = y.apply(*codec::decode_ops(twice));
  REQUIRE_FALSE(px.ok());
  CHECK(px.status() == py.status());
  CHECK_THAT(px.status().message(), Catch::Contains("depends on its own future"));
}

TEST_CASE("codec: a Batch whose indices or ranges point nowhere is refused, not read", "[codec]") {
  const std::string good = codec::encode_ops([] {
    Doc a("a");
    REQUIRE(a.insert(0, "hi").ok());
    return a.ops_since({});
  }());
  auto base = codec::decode_batch(good);
  REQUIRE(base.ok());
  auto refused = [](const tandem::crdt::Batch& bad, const char* why) {
    INFO(why);
    Doc d("x");
    auto r = d.apply(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains(why));
    CHECK(d.text().empty());
  };
  auto bad = *base;
  bad.runs[0].agent = 7;
  refused(bad, "names no agent");
  bad = *base;
  bad.runs[0].text.off = 1000;
  refused(bad, "text outside its bytes");
  bad = *base;
  bad.runs[0].nparents = 3;
  refused(bad, "parents outside");
  bad = *base;
  bad.agents[0].len = 500;
  refused(bad, "agent name outside its bytes");
  bad = *base;
  bad.agents.push_back(bad.agents[0]);
  refused(bad, "names an agent twice");
  bad = *base;
  bad.runs[0].format = 0;
  refused(bad, "carries a format but is not a format event");
}

TEST_CASE("codec: load keeps its bytes without the text, and builds the op log from them and the text it holds", "[codec][snapshot]") {
  // Texts whose msgpack string headers take 1, 2, 3 and 5 bytes, with one-, two- and three-byte
  // characters.
  for (const size_t n : {0, 7, 31, 32, 200, 255, 256, 3000, 65535, 65536, 70000}) {
    INFO(n);
    Doc a("a");
    std::string text;
    for (size_t i = 0; text.size() < n; ++i) text += i % 97 == 3 ? "\xc3\xa9" : i % 89 == 5 ? "\xe2\x82\xac" : "x";
    while (text.size() > n) text.pop_back();
    while (!text.empty() && (static_cast<uint8_t>(text.back()) & 0xc0) == 0x80) text.pop_back();
    while (!text.empty() && static_cast<uint8_t>(text.back()) >= 0xc0) text.pop_back();
    if (!text.empty()) REQUIRE(a.insert(0, text).ok());
    if (a.length() > 2) REQUIRE(a.remove(1, 1).ok());
    const std::string bytes = codec::save(a);
    auto loaded = codec::load(bytes, "c");
    REQUIRE(loaded.ok());
    CHECK(loaded->text() == a.text());
    // It keeps the bytes less the text, which is in the replica already.
    auto kept_whole = Doc::from_snapshot_lazy(*codec::decode_snapshot(bytes), "c", bytes,
                                              [](std::string_view b) { return codec::decode_snapshot(b); });
    REQUIRE(kept_whole.ok());
    if (n >= 200) CHECK(kept_whole->heap_bytes() >= loaded->heap_bytes() + a.text().size());
    auto whole = Doc::from_snapshot(*codec::decode_snapshot(bytes), "c");
    REQUIRE(whole.ok());
    REQUIRE(loaded->insert(0, "\xe2\x82\xac!").ok());  // builds the op log
    REQUIRE(whole->insert(0, "\xe2\x82\xac!").ok());
    CHECK(codec::save(*loaded) == codec::save(*whole));
    CHECK(loaded->ops_since({}) == whole->ops_since({}));
    CHECK(loaded->check_invariants().ok());
  }
}

TEST_CASE("codec: a loaded replica builds its op log when first needed, and then behaves as one loaded whole", "[codec][snapshot]") {
  using tandem::crdt::SnapshotData;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    INFO(seed);
    auto [a, b] = sample_docs(seed);
    REQUIRE(a.mark(0, std::min<uint32_t>(3, a.length()), "bold", "true").ok() == (a.length() > 0));
    const std::string bytes = codec::save(a);
    auto data = codec::decode_snapshot(bytes);
    REQUIRE(data.ok());
    auto whole = Doc::from_snapshot(*data, "c");
    REQUIRE(whole.ok());
    // Each kind of call that needs the op log, on a fresh lazy replica: the same answers.
    int decoded = 0;
    auto lazy = [&] {
      auto d = Doc::from_snapshot_lazy(*data, "c", bytes, [&](std::string_view b) {
        ++decoded;
        return codec::decode_snapshot(b);
      });
      REQUIRE(d.ok());
      return std::move(*d);
    };
    {
      Doc d = lazy();
      CHECK(d.text() == a.text());
      CHECK(d.length_utf16() == a.length_utf16());
      CHECK(d.version() == a.version());
      CHECK(d.num_events() == a.num_events());
      CHECK(d.format_events() == a.format_events());
      CHECK(d.format_ranges(d.format_events()).empty());
      CHECK(decoded == 0);  // none of that needed the log
      CHECK(d.heap_bytes() < whole->heap_bytes() + bytes.size());
      CHECK(d.to_snapshot() == *data);
      CHECK(decoded == 1);
      CHECK(d.check_invariants().ok());
      CHECK(decoded == 1);  // built once
    }
    {
      Doc d = lazy();
      auto wr = Doc::from_snapshot(*data, "c");
      REQUIRE(wr.ok());
      Doc& w = *wr;
      auto pd = d.apply(b.ops_since({})), pw = w.apply(b.ops_since({}));
      REQUIRE(pd.ok());
      REQUIRE(pw.ok());
      CHECK(*pd == *pw);
      CHECK(codec::save(d) == codec::save(w));
      CHECK(d.check_invariants().ok());
    }
    {
      Doc d = lazy();
      auto wr = Doc::from_snapshot(*data, "c");
      REQUIRE(wr.ok());
      Doc& w = *wr;
      REQUIRE(d.insert(0, "x").ok());
      REQUIRE(w.insert(0, "x").ok());
      CHECK(d.ops_since(a.version()) == w.ops_since(a.version()));
      CHECK(d.check_invariants().ok());
    }
    {
      Doc d = lazy();
      CHECK(d.ops_since({}) == whole->ops_since({}));
      CHECK(lazy().spans() == whole->spans());
      CHECK(lazy().blocks() == whole->blocks());
      CHECK(lazy().history().ok() == whole->history().ok());
      Doc e = lazy();
      REQUIRE(e.set_block(0, "heading", "1").ok());
      CHECK(e.check_invariants().ok());
    }
  }
}
