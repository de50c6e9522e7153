// Writes the seed corpora in fuzz/corpus/ (run by hand when the formats change):
//   clang++-14 -std=c++20 ... make_seeds.cc <library objects> -o make_seeds && ./make_seeds fuzz/corpus
// Seeds: op batches, versions and snapshots of a short typing session with concurrent edits,
// deletions and non-ASCII text; a recorded client session as protocol frames; UTF-8 samples.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "net/protocol.h"

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
  write(out / "codec_fuzz", "batch-b", crdt::codec::encode_ops(from_b));
  write(out / "codec_fuzz", "batch-omit", crdt::codec::encode_ops(b.ops_since({}, crdt::Doc::DeletedText::kOmit)));
  write(out / "codec_fuzz", "version", crdt::codec::encode_version(a.version()));
  write(out / "codec_fuzz", "snapshot", crdt::codec::save(a));

  // A client session: HELLO, OPS, PRESENCE, more OPS.
  net::proto::Hello h;
  h.version = 1;
  h.agents = {"alice"};
  std::string session = frame(net::proto::encode(h));
  session += frame(net::proto::encode(net::proto::Ops{1, crdt::codec::encode_ops(from_a)}));
  net::proto::Presence p;
  p.name = "Alice";
  p.color = "#c33";
  p.anchor = 3;
  p.head = 5;
  session += frame(net::proto::encode(p));
  session += frame(net::proto::encode(net::proto::Ops{2, crdt::codec::encode_ops(from_b)}));
  write(out / "protocol_fuzz", "session", session);

  std::string script;
  for (int i = 0; i < 64; ++i) script += static_cast<char>((i * 37 + 11) & 255);
  write(out / "convergence_fuzz", "mixed", script);
  write(out / "convergence_fuzz", "three", std::string("\x01\x00\x00\x01\x03\x00\x04\x01\x00\x03\x01\x04\x00\x00", 14));

  write(out / "utf_fuzz", "mixed", "héllo 👋 世界 e\u0301\n");
  write(out / "utf_fuzz", "bad", std::string("\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80", 9));
  std::puts("seeds written");
  return 0;
}
