// The wire format did not move with the protocol's code: the byte examples of docs/protocol.md
// section 12 (what clients and servers of before the sync core sent, and what the JavaScript
// client's own test checks against) are what the encoders write, decode to the same messages, and
// are what the sync core's two halves send and take.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "sync/client.h"
#include "sync/protocol.h"
#include "sync/server.h"

namespace {

namespace proto = tandem::proto;
using tandem::crdt::Doc;

std::string hex(const std::string& spaced) {
  std::string out;
  std::istringstream in(spaced);
  std::string byte;
  while (in >> byte) out.push_back(static_cast<char>(std::stoi(byte, nullptr, 16)));
  return out;
}

std::string show(const std::string& bytes) {
  std::string out;
  char buf[4];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x ", c);
    out += buf;
  }
  return out;
}

// Section 12.1: alice types "hi" into an empty document.
const std::string kBatch = hex("93 01 91 a5 61 6c 69 63 65 91 97 00 00 00 00 02 90 a2 68 69");

tandem::crdt::Version alice2() {
  tandem::crdt::Version v;
  v.advance("alice", 2);
  return v;
}

}  // namespace

TEST_CASE("wire: the byte examples of docs/protocol.md section 12 are what the encoders write and read", "[sync][wire]") {
  Doc d("alice");
  REQUIRE(d.insert(0, "hi").ok());
  CHECK(show(tandem::crdt::codec::encode_ops(d.ops_since({}))) == show(kBatch));

  proto::Presence p{"Alice", "#e91e63", 2, 2};
  proto::Presence none{"Alice", "#e91e63", std::nullopt, std::nullopt};
  const std::vector<std::pair<proto::Message, std::string>> examples = {
      {proto::Hello{1, {"alice"}, alice2()}, "94 01 01 91 a5 61 6c 69 63 65 92 a5 61 6c 69 63 65 02"},
      {proto::Hello{1, {"bob"}, {}}, "94 01 01 91 a3 62 6f 62 90"},
      {proto::Welcome{1, 7, false, {}}, "95 0a 01 07 c2 90"},
      {proto::Welcome{1, 8, true, alice2()}, "95 0a 01 08 c3 92 a5 61 6c 69 63 65 02"},
      {proto::Ops{1, kBatch}, "93 02 01 c4 14 93 01 91 a5 61 6c 69 63 65 91 97 00 00 00 00 02 90 a2 68 69"},
      {proto::Ack{1}, "92 03 01"},
      {proto::Ack{300}, "92 03 cd 01 2c"},
      {p, "95 04 a5 41 6c 69 63 65 a7 23 65 39 31 65 36 33 02 02"},
      {none, "95 04 a5 41 6c 69 63 65 a7 23 65 39 31 65 36 33 c0 c0"},
      {proto::PresenceUpdate{7, "alice", p},
       "97 05 07 a5 61 6c 69 63 65 a5 41 6c 69 63 65 a7 23 65 39 31 65 36 33 02 02"},
      {proto::Leave{7}, "92 06 07"},
      {proto::Snapshot{tandem::crdt::codec::save(d)}, "92 07 c4 1e 99 01 91 a5 61 6c 69 63 65 01 c4 01 11 c4 02 00 01 c4 01 00 c4 01 00 a2 68 69 c4 02 00 02"},
      {proto::Error{4403, "this session is read-only"},
       "93 0f cd 11 33 b9 74 68 69 73 20 73 65 73 73 69 6f 6e 20 69 73 20 72 65 61 64 2d 6f 6e 6c 79"},
  };
  for (const auto& [message, bytes] : examples) {
    const std::string want = hex(bytes);
    INFO(bytes);
    CHECK(show(proto::encode(message)) == show(want));
    auto back = proto::decode(want);
    REQUIRE(back.ok());
    CHECK(back->index() == message.index());
    CHECK(show(proto::encode(*back)) == show(want));
  }
}

TEST_CASE("wire: the sync core's halves send and take the documented bytes", "[sync][wire]") {
  // A client: its HELLO is section 12.2's, of protocol 3; the documented WELCOME and ACK are taken.
  Doc d("alice");
  REQUIRE(d.insert(0, "hi").ok());
  tandem::sync::ClientSync client(std::move(d));
  CHECK(show(client.open()) == show(hex("94 01 03 91 a5 61 6c 69 63 65 92 a5 61 6c 69 63 65 02")));
  auto w = client.receive(hex("95 0a 01 07 c2 90"));
  REQUIRE(w.ok());
  CHECK(w->kind == tandem::sync::ClientEvent::kWelcome);
  CHECK(w->session == 7);
  auto out = client.outgoing();
  REQUIRE(out.size() == 1);  // the batch of 12.4, as batch 1
  CHECK(show(out[0]) == show(hex("93 02 01 c4 14 93 01 91 a5 61 6c 69 63 65 91 97 00 00 00 00 02 90 a2 68 69")));
  CHECK(client.unsent() == 2);
  REQUIRE(client.receive(hex("92 03 01")).ok());
  CHECK(client.unsent() == 0);

  // A server: the documented HELLO and OPS are taken, and answered with the documented WELCOME
  // (a durable version of alice's 2) and ACK.
  tandem::sync::PeerSync peer("", false, {});
  auto hello = peer.receive(hex("94 01 01 91 a5 61 6c 69 63 65 92 a5 61 6c 69 63 65 02"));
  REQUIRE(std::holds_alternative<proto::Hello>(hello));
  Doc server_doc("server");
  REQUIRE(server_doc.apply(*tandem::crdt::codec::decode_ops(kBatch)).ok());
  tandem::sync::DocSync doc(std::move(server_doc), {});
  auto joined = doc.join(8, std::get<proto::Hello>(hello).agents, true, std::get<proto::Hello>(hello).doc_version,
                         std::get<proto::Hello>(hello).version);
  REQUIRE(std::holds_alternative<tandem::sync::DocSync::Joined>(joined));
  const auto& j = std::get<tandem::sync::DocSync::Joined>(joined);
  REQUIRE(j.messages.size() == 1);  // nothing to catch up on
  CHECK(show(j.messages[0]) == show(hex("95 0a 01 08 c3 92 a5 61 6c 69 63 65 02")));
  tandem::sync::PeerSync writer("", false, {});
  REQUIRE(std::holds_alternative<proto::Hello>(writer.receive(hex("94 01 01 91 a3 62 6f 62 90"))));
  auto ops = writer.receive(hex("93 02 01 c4 14 93 01 91 a5 61 6c 69 63 65 91 97 00 00 00 00 02 90 a2 68 69"));
  // bob may not send alice's operations: the documented refusal.
  REQUIRE(std::holds_alternative<tandem::sync::Refusal>(ops));
  CHECK(std::get<tandem::sync::Refusal>(ops).code == proto::kForbidden);
}

TEST_CASE("wire: protocol 2 carries formatting; a protocol-1 client is refused a document that has it", "[sync][wire][rich]") {
  namespace sync = tandem::sync;
  Doc server_doc("server");
  REQUIRE(server_doc.insert(0, "plain").ok());
  sync::DocSync doc(std::move(server_doc), {});
  // A version-1 client (section 12.2's HELLO) joins a plain document as before.
  sync::PeerSync old_peer("", false, {});
  auto old_hello = old_peer.receive(hex("94 01 01 91 a3 62 6f 62 90"));
  REQUIRE(std::holds_alternative<proto::Hello>(old_hello));
  CHECK(old_peer.protocol() == 1);
  const auto& oh = std::get<proto::Hello>(old_hello);
  auto j1 = doc.join(1, oh.agents, false, oh.doc_version, oh.version);
  REQUIRE(std::holds_alternative<sync::DocSync::Joined>(j1));
  CHECK(static_cast<uint8_t>(std::get<sync::DocSync::Joined>(j1).messages[0][2]) == 1);  // WELCOME in its version
  // A version-2 client makes a word bold: the broadcast names the old client, to be closed.
  Doc alice("alice");
  REQUIRE(alice.apply(doc.doc().ops_since({})).ok());
  const auto have = alice.version();
  REQUIRE(alice.mark(0, 5, "bold", "true").ok());
  auto j2 = doc.join(2, {"alice"}, false, have, 2);
  REQUIRE(std::holds_alternative<sync::DocSync::Joined>(j2));
  auto applied = doc.apply(2, sync::Batch{1, tandem::crdt::Batch::from(alice.ops_since(have))});
  REQUIRE(std::holds_alternative<sync::DocSync::Applied>(applied));
  auto b = doc.take_broadcast();
  REQUIRE(b);
  CHECK(b->outdated == std::vector<uint64_t>{1});
  CHECK(b->outdated_why.code == proto::kUnsupportedVersion);
  CHECK_THAT(b->outdated_why.message, Catch::Contains("formatting"));
  // From now on a version-1 client is refused at once; a version-2 one is welcome.
  auto j3 = doc.join(3, {"carol"}, false, {}, 1);
  REQUIRE(std::holds_alternative<sync::Refusal>(j3));
  CHECK(std::get<sync::Refusal>(j3).code == proto::kUnsupportedVersion);
  CHECK(std::holds_alternative<sync::DocSync::Joined>(doc.join(4, {"dave"}, false, {}, 2)));
  // Versions outside 1..3 are refused by the session.
  sync::PeerSync future("", false, {});
  auto r = future.receive(proto::encode(proto::Hello{4, {"eve"}, {}}));
  REQUIRE(std::holds_alternative<sync::Refusal>(r));
  CHECK(std::get<sync::Refusal>(r).code == proto::kUnsupportedVersion);
}

TEST_CASE("wire: a client whose HELLO an older server refuses speaks one version lower next time; 1 only if its replica is plain", "[sync][wire][rich]") {
  Doc d("alice");
  REQUIRE(d.insert(0, "hi").ok());
  tandem::sync::ClientSync client(std::move(d));
  CHECK(static_cast<uint8_t>(client.open()[2]) == 3);
  // What a server of protocol 2 answers.
  REQUIRE(client.receive(proto::encode(proto::Error{4426, "protocol version 3 is not supported; this server speaks 1 to 2"})).ok());
  client.closed();
  CHECK(client.should_retry());
  CHECK(static_cast<uint8_t>(client.open()[2]) == 2);
  // What a server of before protocol 2 answered.
  REQUIRE(client.receive(proto::encode(proto::Error{4426, "protocol version 2 is not supported; this server speaks 1"})).ok());
  client.closed();
  CHECK(client.should_retry());
  CHECK(static_cast<uint8_t>(client.open()[2]) == 1);
  // A replica with formatting steps down to 2, not to 1: the refusal of 2 stands.
  Doc r("bob");
  REQUIRE(r.insert(0, "hi").ok());
  REQUIRE(r.mark(0, 2, "bold", "true").ok());
  tandem::sync::ClientSync rich(std::move(r));
  (void)rich.open();
  REQUIRE(rich.receive(proto::encode(proto::Error{4426, "protocol version 3 is not supported; this server speaks 1 to 2"})).ok());
  rich.closed();
  CHECK(rich.should_retry());
  CHECK(static_cast<uint8_t>(rich.open()[2]) == 2);
  REQUIRE(rich.receive(proto::encode(proto::Error{4426, "protocol version 2 is not supported; this server speaks 1"})).ok());
  rich.closed();
  CHECK_FALSE(rich.should_retry());
}

namespace {

// The messages a DocSync sends a peer joining with `have` in protocol `protocol`.
std::vector<std::string> join_messages(tandem::sync::DocSync& doc, uint64_t peer, const std::string& agent,
                                       const tandem::crdt::Version& have, uint32_t protocol) {
  auto j = doc.join(peer, {agent}, false, have, protocol);
  REQUIRE(std::holds_alternative<tandem::sync::DocSync::Joined>(j));
  return std::get<tandem::sync::DocSync::Joined>(j).messages;
}

uint8_t type_of(const std::string& message) { return static_cast<uint8_t>(message[1]); }

}  // namespace

TEST_CASE("wire: a protocol-3 client that holds nothing is sent a SNAPSHOT; others the OPS they lack", "[sync][wire]") {
  namespace sync = tandem::sync;
  Doc server_doc("server");
  REQUIRE(server_doc.insert(0, "hello world").ok());
  REQUIRE(server_doc.remove(0, 6).ok());
  REQUIRE(server_doc.mark(0, 5, "bold", "true").ok());
  sync::DocSync doc(std::move(server_doc), {});

  // An empty replica of protocol 3: WELCOME, then SNAPSHOT (the document as save() writes it).
  auto m = join_messages(doc, 1, "new", {}, 3);
  REQUIRE(m.size() == 2);
  CHECK(type_of(m[0]) == proto::kWelcome);
  REQUIRE(type_of(m[1]) == proto::kSnapshot);
  auto snap = proto::decode(m[1]);
  REQUIRE(snap.ok());
  CHECK(std::get<proto::Snapshot>(*snap).encoded == tandem::crdt::codec::save(doc.doc()));
  // The same bytes to the next joiner while nothing changed; the new state after a change.
  CHECK(join_messages(doc, 2, "new2", {}, 3)[1] == m[1]);
  // Protocol 2 (and 1) and a replica that holds something get OPS as before.
  CHECK(type_of(join_messages(doc, 3, "old", {}, 2)[1]) == proto::kOps);
  Doc partial("partial");
  auto first = doc.doc().ops_since({});
  REQUIRE(partial.apply(first).ok());
  const auto have = partial.version();
  REQUIRE(partial.insert(0, "x").ok());
  CHECK(join_messages(doc, 4, "partial", have, 3).size() == 1);  // nothing it lacks
  REQUIRE(std::holds_alternative<sync::DocSync::Applied>(doc.apply(4, sync::Batch{1, tandem::crdt::Batch::from(partial.ops_since(have))})));
  auto again = join_messages(doc, 5, "new3", {}, 3);
  REQUIRE(type_of(again[1]) == proto::kSnapshot);
  CHECK(again[1] == proto::encode(proto::Snapshot{tandem::crdt::codec::save(doc.doc())}));
  CHECK(again[1] != m[1]);
  CHECK(type_of(join_messages(doc, 6, "behind", have, 3)[1]) == proto::kOps);
  // An empty document has nothing to send.
  sync::DocSync empty(Doc("server"), {});
  CHECK(join_messages(empty, 1, "new", {}, 3).size() == 1);
}

TEST_CASE("wire: a client loads the SNAPSHOT, merges what it typed since its HELLO, and sends only that", "[sync][wire]") {
  namespace sync = tandem::sync;
  Doc server_doc("server");
  REQUIRE(server_doc.insert(0, "héllo wörld").ok());
  REQUIRE(server_doc.remove(5, 6).ok());
  REQUIRE(server_doc.mark(0, 2, "bold", "true").ok());
  sync::DocSync doc(std::move(server_doc), {});

  for (bool typed : {false, true}) {
    INFO(typed);
    sync::ClientSync client(Doc(typed ? "typist" : "reader"));
    tandem::crdt::DocLimits lim;
    lim.max_length = 1000;
    client.doc().set_limits(lim);
    sync::PeerSync peer("", false, {});
    auto hello = peer.receive(client.open());
    REQUIRE(std::holds_alternative<proto::Hello>(hello));
    const auto& h = std::get<proto::Hello>(hello);
    auto m = join_messages(doc, typed ? 11 : 10, h.agents[0], h.doc_version, h.version);
    REQUIRE(m.size() == 2);
    // Typed while the answer was on its way (the editor shows an empty document meanwhile).
    if (typed) REQUIRE(client.doc().insert(0, "¡").ok());
    REQUIRE(client.receive(m[0]).ok());
    auto ev = client.receive(m[1]);
    REQUIRE(ev.ok());
    CHECK(ev->kind == sync::ClientEvent::kChange);
    CHECK(ev->replaced);
    REQUIRE(ev->patches.size() == 1);
    CHECK(ev->patches[0].pos == 0);
    CHECK(ev->patches[0].deleted == (typed ? 1u : 0u));
    CHECK(ev->patches[0].inserted == client.doc().text());
    CHECK(ev->patches[0].inserted_utf16 == client.doc().length_utf16());
    // As a replica merging the server's history and the typing would have it.
    Doc merged("x");
    REQUIRE(merged.apply(doc.doc().ops_since({})).ok());
    if (typed) REQUIRE(merged.apply(client.doc().ops_since(doc.doc().version())).ok());
    CHECK(client.doc().text() == merged.text());
    CHECK(client.doc().text().size() == (typed ? 8u : 6u));  // "héllo" and "¡" where the merge puts it
    CHECK(client.doc().format_events() == 1);
    CHECK(client.doc().spans() == merged.spans());
    CHECK(client.doc().limits().max_length == 1000);
    CHECK(client.doc().agent() == h.agents[0]);
    CHECK(client.doc().version().includes(doc.doc().version()));
    CHECK(client.synced() == !typed);
    // Only its own typing goes out, and the server takes it.
    auto out = client.outgoing();
    REQUIRE(out.size() == (typed ? 1u : 0u));
    if (typed) {
      auto batch = peer.receive(out[0]);
      REQUIRE(std::holds_alternative<sync::Batch>(batch));
      auto& b = std::get<sync::Batch>(batch);
      CHECK(b.ops.events() == 1);
      REQUIRE(std::holds_alternative<sync::DocSync::Applied>(doc.apply(11, std::move(b))));
      CHECK(doc.doc().text() == client.doc().text());
    }
  }

  // A SNAPSHOT that does not load is an error (the connection is dropped), and changes nothing.
  sync::ClientSync client(Doc("c"));
  (void)client.open();
  REQUIRE(client.receive(join_messages(doc, 20, "c", {}, 3)[0]).ok());
  REQUIRE(client.doc().insert(0, "mine").ok());
  auto bad = client.receive(proto::encode(proto::Snapshot{"\x93\x01"}));
  CHECK_FALSE(bad.ok());
  CHECK(client.doc().text() == "mine");
  // Nor before WELCOME.
  sync::ClientSync early(Doc("e"));
  (void)early.open();
  CHECK_FALSE(early.receive(proto::encode(proto::Snapshot{tandem::crdt::codec::save(doc.doc())})).ok());
}

TEST_CASE("wire: a batch integrated whole is logged and broadcast as its author's bytes; one partly known, as what was new", "[sync][wire]") {
  namespace sync = tandem::sync;
  namespace codec = tandem::crdt::codec;
  sync::DocSync doc(Doc("server"), {});
  auto member = [&](uint64_t id, const std::string& agent) {
    sync::PeerSync peer("", false, {});
    REQUIRE(std::holds_alternative<proto::Hello>(peer.receive(proto::encode(proto::Hello{3, {agent}, {}}))));
    REQUIRE(std::holds_alternative<sync::DocSync::Joined>(doc.join(id, {agent}, false, {})));
    return peer;
  };
  auto alice = member(1, "alice");
  auto bob = member(2, "bob");
  // 12.1's batch with "alice" named twice in its table (decoders take either entry as the same
  // agent): bytes encode_ops would not write, so any re-encoding would show.
  const std::string odd = hex("93 01 92 a5 61 6c 69 63 65 a5 61 6c 69 63 65 91 97 01 00 00 00 02 90 a2 68 69");
  CHECK(odd != codec::encode_ops(*codec::decode_ops(odd)));
  auto in = alice.receive(proto::encode(proto::Ops{1, odd}));
  REQUIRE(std::holds_alternative<sync::Batch>(in));
  auto r = doc.apply(1, std::move(std::get<sync::Batch>(in)));
  REQUIRE(std::holds_alternative<sync::DocSync::Applied>(r));
  const auto& a = std::get<sync::DocSync::Applied>(r);
  CHECK(show(a.added.bytes) == show(odd));
  CHECK(a.added.events == 2);
  CHECK(a.added.agents == std::vector<std::pair<std::string, uint64_t>>{{"alice", 2}});
  auto b = doc.take_broadcast();
  REQUIRE(b);
  REQUIRE(b->messages.size() == 1);
  CHECK(show(b->messages[0].message) == show(proto::encode(proto::Ops{0, odd})));
  CHECK(b->messages[0].author == 1);
  CHECK(b->messages[0].events == 2);

  // bob's client sends "yo", then (as after a reconnect) "yo!" again whole: only "!" is new.
  Doc bd("bob");
  REQUIRE(bd.apply(doc.doc().ops_since({})).ok());
  const auto base = bd.version();
  REQUIRE(bd.insert(2, "yo").ok());
  const std::string yo = codec::encode_ops(bd.ops_since(base));
  REQUIRE(bd.insert(4, "!").ok());
  const std::string again = codec::encode_ops(bd.ops_since(base));
  for (const auto& [id, bytes] : {std::pair<uint64_t, std::string>{1, yo}, {2, again}}) {
    auto m = bob.receive(proto::encode(proto::Ops{id, bytes}));
    REQUIRE(std::holds_alternative<sync::Batch>(m));
    REQUIRE(std::holds_alternative<sync::DocSync::Applied>(doc.apply(2, std::move(std::get<sync::Batch>(m)))));
  }
  b = doc.take_broadcast();
  REQUIRE(b);
  REQUIRE(b->messages.size() == 2);  // one per batch, in order
  CHECK(show(b->messages[0].message) == show(proto::encode(proto::Ops{0, yo})));
  auto second = proto::decode(b->messages[1].message);
  REQUIRE(second.ok());
  auto ops = codec::decode_ops(std::get<proto::Ops>(*second).encoded);
  REQUIRE(ops.ok());
  REQUIRE(ops->runs.size() == 1);
  CHECK(ops->runs[0].agent == "bob");
  CHECK(ops->runs[0].seq == 2);
  CHECK(ops->runs[0].content == "!");
  CHECK(b->messages[1].author == 2);
  CHECK(doc.doc().text() == "hiyo!");
}

TEST_CASE("sync: a client's retries back off between the limits it was given", "[sync]") {
  using tandem::sync::ClientLimits;
  using tandem::sync::ClientSync;
  auto delays = [](ClientLimits limits, double jitter) {
    ClientSync c(Doc("a"), limits);
    std::vector<int64_t> out;
    for (int i = 0; i < 10; ++i) out.push_back(c.retry_delay_ms(1000 * i, jitter));
    return out;
  };
  CHECK(delays({}, 1.0) == std::vector<int64_t>{100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000});
  ClientLimits quick;
  quick.min_backoff_ms = 20;
  quick.max_backoff_ms = 300;
  CHECK(delays(quick, 1.0) == std::vector<int64_t>{20, 40, 80, 160, 300, 300, 300, 300, 300, 300});
  CHECK(delays(quick, 0.5) == std::vector<int64_t>{10, 20, 40, 80, 150, 150, 150, 150, 150, 150});
  // Limits out of order or zero still give a delay of at least a millisecond that does not grow past the floor.
  ClientLimits odd;
  odd.min_backoff_ms = 0;
  odd.max_backoff_ms = 0;
  CHECK(delays(odd, 1.0) == std::vector<int64_t>(10, 1));
  // A fresh start begins from the bottom again.
  ClientSync c(Doc("a"), quick);
  for (int i = 0; i < 5; ++i) c.retry_delay_ms(0, 1.0);
  c.reset_backoff();
  CHECK(c.retry_delay_ms(0, 1.0) == 20);
}
