// Writes the seed corpora in fuzz/corpus/ (run by hand when the formats change), from the
// release build's libraries:
//   g++ -std=c++20 -DMSGPACK_NO_BOOST -Icrdt/include -Icrdt/codec/include -Inet/include -Itools/trace fuzz/make_seeds.cc \
//     build/tools/trace/libtandem_trace.a build/net/libtandem_net.a build/crdt/libtandem_codec.a \
//     build/crdt/libtandem_crdt.a -lz -lssl -lcrypto -o /tmp/make_seeds
//   /tmp/make_seeds fuzz/corpus ../shared/traces
// Seeds: op batches, versions and snapshots of a short typing session with concurrent edits,
// deletions and non-ASCII text; a recorded client session as protocol frames; UTF-8 samples;
// and from the start of each editing trace, its batch, its snapshot and its edits sent as OPS
// by the sessions of session_fuzz (each seed within libFuzzer's -max_len of 4096 bytes).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "sync/protocol.h"
#include "replay.h"

using namespace tandem;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string frame(const std::string& m) {
  return std::string{static_cast<char>(m.size() >> 8), static_cast<char>(m.size() & 255)} + m;
}

// session_fuzz's framing: [selector][2 length bytes][message].
std::string to(int session, const std::string& m) { return static_cast<char>(session) + frame(m); }

std::string hello(const std::string& agent) {
  proto::Hello h;
  h.version = proto::kProtocolVersion;
  h.agents = {agent};
  return proto::encode(h);
}

// The first txns of a trace replayed into one replica, until `fits` says it is big enough;
// returns the replica and how many txns it took.
template <class Fits>
std::pair<crdt::Doc, size_t> trace_prefix(const trace::Trace& t, Fits fits) {
  crdt::Doc doc("typist");
  size_t n = 0;
  for (const auto& txn : t.txns) {
    if (!fits(doc)) break;
    (void)trace::apply_txn(txn, &doc);
    ++n;
  }
  return {std::move(doc), n};
}

void trace_seeds(const fs::path& out, const std::string& dir) {
  for (const auto& path : trace::list_traces(dir)) {
    auto t = trace::load(path);
    if (!t.ok()) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), t.status().ToString().c_str());
      continue;
    }
    if (t->concurrent) continue;  // replayed here as one typist: the sequential ones suffice
    auto small = [](const crdt::Doc& d) {
      return crdt::codec::encode_ops(d.ops_since({})).size() < 2500 && crdt::codec::save(d).size() < 2500;
    };
    const auto [doc, n] = trace_prefix(*t, small);
    const std::string batch = crdt::codec::encode_ops(doc.ops_since({})), snapshot = crdt::codec::save(doc);
    if (batch.size() > 4096 || snapshot.size() > 4096) continue;  // a first paste too large to seed
    write(out / "codec_fuzz", "trace-" + t->name + "-batch", batch);
    write(out / "batch_fuzz", "trace-" + t->name + "-batch", batch);
    write(out / "codec_fuzz", "trace-" + t->name + "-snapshot", snapshot);
    // The same edits as a client sends them: one OPS per txn from session 0, a cursor now and
    // then, session 2 mirroring them on its own document, the read-only session 1 trying once.
    std::string script = to(0, hello("typist")) + to(1, hello("reader")) + to(2, hello("typist"));
    crdt::Doc replay("typist");
    for (size_t i = 0; i < n && script.size() < 3500; ++i) {
      const auto before = replay.version();
      (void)trace::apply_txn(t->txns[i], &replay);
      const std::string ops = proto::encode(proto::Ops{i + 1, crdt::codec::encode_ops(replay.ops_since(before))});
      script += to(0, ops) + to(2, ops);
      if (i % 8 == 0) {
        proto::Presence p;
        p.name = "Typist";
        p.color = "#36c";
        p.anchor = p.head = static_cast<uint32_t>(i);
        script += to(0, proto::encode(p));
      }
      if (i == 3) script += to(1, ops);
    }
    if (script.size() <= 4096) write(out / "session_fuzz", "trace-" + t->name, script);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path out = argc > 1 ? argv[1] : "fuzz/corpus";
  crdt::Doc a("alice"), b("bob");
  (void)a.insert(0, "Hello world\n");
  (void)b.apply(a.ops_since({}));
  (void)a.insert(5, ", dear");
  (void)b.insert(0, "世界 👋 e\u0301 ");
  (void)b.remove(3, 2);
  const auto from_a = a.ops_since({});
  const auto from_b = b.ops_since(a.version());
  (void)a.apply(from_b);
  (void)b.apply(from_a);
  write(out / "codec_fuzz", "batch-a", crdt::codec::encode_ops(from_a));
  write(out / "batch_fuzz", "batch-a", crdt::codec::encode_ops(from_a));
  write(out / "codec_fuzz", "batch-b", crdt::codec::encode_ops(from_b));
  write(out / "batch_fuzz", "batch-b", crdt::codec::encode_ops(from_b));
  write(out / "codec_fuzz", "batch-omit", crdt::codec::encode_ops(b.ops_since({}, crdt::Doc::DeletedText::kOmit)));
  write(out / "batch_fuzz", "batch-omit", crdt::codec::encode_ops(b.ops_since({}, crdt::Doc::DeletedText::kOmit)));
  write(out / "codec_fuzz", "version", crdt::codec::encode_version(a.version()));
  write(out / "codec_fuzz", "snapshot", crdt::codec::save(a));
  // Rich text (op batch and snapshot format 2): marks, a removal, a comment, a block, a deletion
  // inside a mark.
  crdt::Doc r("rich");
  (void)r.insert(0, "Title\nsome bold text and a link");
  (void)r.mark(11, 4, "bold", "true");
  (void)r.mark(27, 4, "link", "https://e.example/");
  (void)r.mark(0, 5, "comment", "c1");
  (void)r.unmark(11, 2, "bold");
  (void)r.set_block(2, "heading", "2");
  (void)r.remove(12, 3);
  write(out / "codec_fuzz", "batch-rich", crdt::codec::encode_ops(r.ops_since({})));
  write(out / "batch_fuzz", "batch-rich", crdt::codec::encode_ops(r.ops_since({})));
  write(out / "codec_fuzz", "snapshot-rich", crdt::codec::save(r));

  // A client session: HELLO, OPS, PRESENCE, more OPS.
  proto::Hello h;
  h.version = 1;
  h.agents = {"alice"};
  std::string session = frame(proto::encode(h));
  session += frame(proto::encode(proto::Ops{1, crdt::codec::encode_ops(from_a)}));
  proto::Presence p;
  p.name = "Alice";
  p.color = "#c33";
  p.anchor = 3;
  p.head = 5;
  session += frame(proto::encode(p));
  session += frame(proto::encode(proto::Ops{2, crdt::codec::encode_ops(from_b)}));
  write(out / "protocol_fuzz", "session", session);

  // session_fuzz: three sessions join, write, move cursors; one reconnects with its version;
  // the read-only one tries to write; text and garbage arrive.
  std::string multi = to(0, proto::encode(h)) + to(1, hello("bob")) + to(2, hello("carol"));
  multi += to(0, proto::encode(proto::Ops{1, crdt::codec::encode_ops(from_a)}));
  multi += to(0, proto::encode(p)) + to(2, proto::encode(p));
  proto::Hello back = h;
  back.doc_version = a.version();
  multi += to(3, proto::encode(back));
  multi += to(0, proto::encode(proto::Ops{2, crdt::codec::encode_ops(from_b)}));
  multi += to(1, proto::encode(proto::Ops{1, crdt::codec::encode_ops(from_b)}));
  write(out / "session_fuzz", "three-sessions", multi);
  write(out / "session_fuzz", "text-and-garbage", to(4, "hello") + to(0, "\xc1\xc1") + to(2, hello("carol")) + to(2, "\x91\x63"));

  std::string script;
  for (int i = 0; i < 64; ++i) script += static_cast<char>((i * 37 + 11) & 255);
  write(out / "convergence_fuzz", "mixed", script);
  write(out / "convergence_fuzz", "three", std::string("\x01\x00\x00\x01\x03\x00\x04\x01\x00\x03\x01\x04\x00\x00", 14));

  write(out / "utf_fuzz", "mixed", "héllo 👋 世界 e\u0301\n");
  write(out / "utf_fuzz", "bad", std::string("\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80", 9));
  if (argc > 2) trace_seeds(out, argv[2]);
  std::puts("seeds written");
  return 0;
}
