// The engine for JavaScript: one replica per object, with its side of the sync protocol
// (sync::ClientSync: the JavaScript client keeps only the WebSocket, timers, storage and UI),
// positions in UTF-16 code units (what JavaScript strings and CodeMirror count), bytes as
// Uint8Array. Errors come back as strings (empty: none) rather than exceptions, so a bad remote
// message cannot leave the JavaScript side half-updated.
#include <emscripten/bind.h>
#include <emscripten/val.h>

#include <memory>
#include <string>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "crdt/split.h"
#include "render/render.h"
#include "sync/client.h"

namespace {

using emscripten::val;
using tandem::crdt::Doc;
using tandem::crdt::Version;
using tandem::sync::ClientEvent;
using tandem::sync::ClientSync;
namespace codec = tandem::crdt::codec;
namespace proto = tandem::proto;

val bytes(const std::string& s) {
  // A copy: the view into wasm memory is invalid once that memory grows.
  return val::global("Uint8Array").new_(emscripten::typed_memory_view(s.size(), reinterpret_cast<const uint8_t*>(s.data())))
      .call<val>("slice");
}

val list(const std::vector<std::string>& messages) {
  val out = val::array();
  for (const auto& m : messages) out.call<void>("push", bytes(m));
  return out;
}

val patches_of(const std::vector<tandem::crdt::Patch>& patches) {
  val list = val::array();
  for (const auto& p : patches) {
    val one = val::array();
    one.call<void>("push", val(p.pos_utf16));
    one.call<void>("push", val(p.deleted_utf16));
    one.call<void>("push", val(p.inserted));
    list.call<void>("push", one);
  }
  return list;
}

class Replica {
 public:
  explicit Replica(const std::string& agent) : sync_(Doc(agent)) {}
  explicit Replica(ClientSync sync) : sync_(std::move(sync)) {}

  // A replica from save()'s bytes, going on as `agent`, a name never used before (sync/client.h
  // says why); null if the bytes do not load. Bytes of an older client (a bare snapshot, with
  // `saved_agent` and its `acked` kept beside it) load too.
  static std::unique_ptr<Replica> load(const std::string& saved, const std::string& agent) {
    auto r = ClientSync::Restore(saved, agent);
    if (!r.ok()) return nullptr;
    return std::make_unique<Replica>(std::move(*r));
  }
  static std::unique_ptr<Replica> load_snapshot(const std::string& snapshot, const std::string& saved_agent, uint32_t acked,
                                                const std::string& agent) {
    auto r = ClientSync::Restore(snapshot, {{saved_agent, acked}}, agent);
    if (!r.ok()) return nullptr;
    return std::make_unique<Replica>(std::move(*r));
  }
  static bool valid_agent(const std::string& agent) { return Doc::ValidateAgent(agent).ok(); }

  std::string agent() const { return sync_.agent(); }
  std::string text() const { return sync_.doc().text(); }
  uint32_t length16() const { return sync_.doc().length_utf16(); }
  uint32_t length() const { return sync_.doc().length(); }

  std::string insert16(uint32_t at16, const std::string& text) {
    auto pos = sync_.doc().pos_from_utf16(at16);
    if (!pos.ok()) return pos.status().ToString();
    auto st = sync_.doc().insert(*pos, text);
    return st.ok() ? "" : st.ToString();
  }
  std::string remove16(uint32_t at16, uint32_t len16) {
    auto from = sync_.doc().pos_from_utf16(at16);
    if (!from.ok()) return from.status().ToString();
    auto to = sync_.doc().pos_from_utf16(at16 + len16);
    if (!to.ok()) return to.status().ToString();
    auto st = sync_.doc().remove(*from, *to - *from);
    return st.ok() ? "" : st.ToString();
  }

  // Rich text (crdt/format.h), in UTF-16 units: "" or the error.
  std::string mark16(uint32_t at16, uint32_t len16, const std::string& name, const std::string& value) {
    return format16(at16, len16, [&](uint32_t pos, uint32_t len) { return sync_.doc().mark(pos, len, name, value); });
  }
  std::string unmark16(uint32_t at16, uint32_t len16, const std::string& name, const std::string& value) {
    return format16(at16, len16, [&](uint32_t pos, uint32_t len) { return sync_.doc().unmark(pos, len, name, value); });
  }
  std::string set_block16(uint32_t at16, const std::string& type, const std::string& value) {
    return format16(at16, 0, [&](uint32_t pos, uint32_t) { return sync_.doc().set_block(pos, type, value); });
  }
  // [[from16, to16, [[name, value], ...]], ...]: the stretches that carry marks.
  val spans16() const {
    val out = val::array();
    for (const auto& s : sync_.doc().spans()) {
      if (s.marks.empty()) continue;
      val marks = val::array();
      for (const auto& m : s.marks) {
        val one = val::array();
        one.call<void>("push", val(m.name));
        one.call<void>("push", val(m.value));
        marks.call<void>("push", one);
      }
      val span = val::array();
      span.call<void>("push", val(to16(s.from)));
      span.call<void>("push", val(to16(s.to)));
      span.call<void>("push", marks);
      out.call<void>("push", span);
    }
    return out;
  }
  // [[at16, type, value], ...]: every block.
  val blocks16() const {
    val out = val::array();
    for (const auto& b : sync_.doc().blocks()) {
      val one = val::array();
      one.call<void>("push", val(to16(b.at)));
      one.call<void>("push", val(b.type));
      one.call<void>("push", val(b.value));
      out.call<void>("push", one);
    }
    return out;
  }
  double format_events() const { return static_cast<double>(sync_.doc().format_events()); }
  // The document as CommonMark or as HTML (crdt/render: what the HTTP API's ?format= answers).
  std::string markdown() const { return tandem::render::to_markdown(tandem::render::read(sync_.doc())); }
  std::string html() const { return tandem::render::to_html(tandem::render::read(sync_.doc())); }

  // false, or where the format events that arrived act: [[from16, to16], ...] (Doc::format_ranges;
  // a block's start as an empty range).
  val formats_since(uint64_t before) const {
    if (sync_.doc().format_events() == before) return val(false);
    val out = val::array();
    for (const auto& [from, to] : sync_.doc().format_ranges(before)) {
      val one = val::array();
      one.call<void>("push", val(to16(from)));
      one.call<void>("push", val(to16(to)));
      out.call<void>("push", one);
    }
    return out;
  }

  // Code points <-> UTF-16, clamped to the document (presence positions come from other texts).
  uint32_t to16(uint32_t pos) const {
    auto r = sync_.doc().utf16_from_pos(std::min(pos, sync_.doc().length()));
    return r.ok() ? *r : sync_.doc().length_utf16();
  }
  uint32_t from16(uint32_t u16) const {
    u16 = std::min(u16, sync_.doc().length_utf16());
    auto r = sync_.doc().pos_from_utf16(u16);
    if (r.ok()) return *r;
    auto back = sync_.doc().pos_from_utf16(u16 - 1);  // inside a surrogate pair: the start of the pair
    return back.ok() ? *back : 0;
  }

  // ---- the protocol (sync::ClientSync) -----------------------------------------------------

  // A connection opened: the HELLO to send.
  val open() { return bytes(sync_.open()); }
  void closed() { sync_.closed(); }
  // One message from the server: {error} (drop the connection), or {kind, ...}: 'welcome'
  // {session, readOnly}, 'change' {patches, formats}, 'ack', 'presence' {session, agent, name, color,
  // anchor, head}, 'leave' {session}, 'error' {code, message}.
  val receive(const std::string& message, double now_ms) {
    val out = val::object();
    const uint64_t formats_before = sync_.doc().format_events();
    auto r = sync_.receive(message, static_cast<int64_t>(now_ms));
    if (!r.ok()) {
      out.set("error", r.status().ToString());
      return out;
    }
    switch (r->kind) {
      case ClientEvent::kWelcome:
        out.set("kind", "welcome");
        out.set("session", val(static_cast<double>(r->session)));
        out.set("readOnly", val(sync_.read_only()));
        break;
      case ClientEvent::kChange:
        out.set("kind", "change");
        out.set("patches", patches_of(r->patches));
        out.set("formats", formats_since(r->replaced ? 0 : formats_before));
        break;
      case ClientEvent::kAck:
        out.set("kind", "ack");
        break;
      case ClientEvent::kPresence: {
        const auto& p = r->presence;
        out.set("kind", "presence");
        out.set("session", val(static_cast<double>(p.session)));
        out.set("agent", p.agent);
        out.set("name", p.presence.name);
        out.set("color", p.presence.color);
        out.set("anchor", p.presence.anchor ? val(*p.presence.anchor) : val::null());
        out.set("head", p.presence.head ? val(*p.presence.head) : val::null());
        break;
      }
      case ClientEvent::kLeave:
        out.set("kind", "leave");
        out.set("session", val(static_cast<double>(r->session)));
        break;
      case ClientEvent::kError:
        out.set("kind", "error");
        out.set("code", val(r->code));
        out.set("message", r->message);
        break;
    }
    return out;
  }
  // Messages to send now (presence, own operations), as Uint8Arrays.
  val outgoing() { return list(sync_.outgoing()); }
  // Own presence; anchor and head in code points, or negative for none.
  void set_presence(const std::string& name, const std::string& color, double anchor, double head) {
    proto::Presence p;
    p.name = name;
    p.color = color;
    if (anchor >= 0) p.anchor = static_cast<uint32_t>(anchor);
    if (head >= 0) p.head = static_cast<uint32_t>(head);
    sync_.set_presence(std::move(p));
  }
  double unsent() const { return static_cast<double>(sync_.unsent()); }
  bool welcomed() const { return sync_.welcomed(); }
  bool read_only() const { return sync_.read_only(); }
  bool synced() const { return sync_.synced(); }
  double session() const { return static_cast<double>(sync_.session()); }
  bool should_retry() const { return sync_.should_retry(); }
  double retry_delay(double now_ms, double jitter) { return static_cast<double>(sync_.retry_delay_ms(static_cast<int64_t>(now_ms), jitter)); }
  void reset_backoff() { sync_.reset_backoff(); }
  // The server's ERROR on this connection: {code, message}, or null.
  val error() const {
    if (!sync_.error()) return val::null();
    val out = val::object();
    out.set("code", val(sync_.error()->first));
    out.set("message", sync_.error()->second);
    return out;
  }

  // ---- the engine alone (tests, benchmarks) --------------------------------------------------

  // The version as the protocol's flat array [agent, next, ...] (sorted by agent).
  val version() const {
    val out = val::array();
    for (const auto& [agent, next] : sync_.doc().version().entries()) {
      out.call<void>("push", val(agent));
      out.call<void>("push", val(next));
    }
    return out;
  }
  uint32_t own_next() const { return sync_.doc().version().next(sync_.doc().agent()); }

  // This replica's own operations from seq `from` on, in encoded batches of at most `max_events`
  // events and about `max_bytes` bytes, with the text of own deleted characters where it is
  // still known (split_batch keeps batches whole otherwise).
  val own_ops_since(uint32_t from, uint32_t max_events, uint32_t max_bytes) const {
    Version peer;
    for (const auto& [agent, next] : sync_.doc().version().entries()) {
      const uint32_t n = agent == sync_.doc().agent() ? std::min(from, next) : next;
      if (n > 0) peer.advance(agent, n);
    }
    val out = val::array();
    auto batch = sync_.doc().ops_since(peer, Doc::DeletedText::kInclude);
    if (batch.empty()) return out;
    for (const auto& part : tandem::crdt::split_batch(std::move(batch), max_events, max_bytes)) {
      out.call<void>("push", bytes(codec::encode_ops(part)));
    }
    return out;
  }

  // Merges an encoded batch. Returns {error} or {patches: [[from16, deleted16, text], ...]},
  // each patch applying to the text left by the previous one.
  val apply(const std::string& encoded) {
    val out = val::object();
    auto batch = codec::decode_batch(encoded);
    if (!batch.ok()) {
      out.set("error", batch.status().ToString());
      return out;
    }
    auto patches = sync_.doc().apply(*batch);
    if (!patches.ok()) {
      out.set("error", patches.status().ToString());
      return out;
    }
    out.set("patches", patches_of(*patches));
    out.set("pending", val(static_cast<double>(sync_.doc().pending_events())));
    return out;
  }

  // The replica and its protocol state, for load().
  val save() const { return bytes(sync_.save()); }

 private:
  // Runs f(pos, len) in code points for a range given in UTF-16 units.
  template <typename F>
  std::string format16(uint32_t at16, uint32_t len16, F f) {
    auto from = sync_.doc().pos_from_utf16(at16);
    if (!from.ok()) return from.status().ToString();
    auto to = sync_.doc().pos_from_utf16(at16 + len16);
    if (!to.ok()) return to.status().ToString();
    auto st = f(*from, *to - *from);
    return st.ok() ? "" : st.ToString();
  }

  ClientSync sync_;
};

}  // namespace

EMSCRIPTEN_BINDINGS(tandem) {
  emscripten::class_<Replica>("Replica")
      .constructor<const std::string&>()
      .class_function("load", &Replica::load)
      .class_function("loadSnapshot", &Replica::load_snapshot)
      .class_function("validAgent", &Replica::valid_agent)
      .function("agent", &Replica::agent)
      .function("text", &Replica::text)
      .function("length16", &Replica::length16)
      .function("length", &Replica::length)
      .function("insert16", &Replica::insert16)
      .function("remove16", &Replica::remove16)
      .function("to16", &Replica::to16)
      .function("mark16", &Replica::mark16)
      .function("unmark16", &Replica::unmark16)
      .function("setBlock16", &Replica::set_block16)
      .function("spans16", &Replica::spans16)
      .function("blocks16", &Replica::blocks16)
      .function("formatEvents", &Replica::format_events)
      .function("markdown", &Replica::markdown)
      .function("html", &Replica::html)
      .function("from16", &Replica::from16)
      .function("version", &Replica::version)
      .function("ownNext", &Replica::own_next)
      .function("ownOpsSince", &Replica::own_ops_since)
      .function("apply", &Replica::apply)
      .function("save", &Replica::save)
      .function("open", &Replica::open)
      .function("closed", &Replica::closed)
      .function("receive", &Replica::receive)
      .function("outgoing", &Replica::outgoing)
      .function("setPresence", &Replica::set_presence)
      .function("unsent", &Replica::unsent)
      .function("welcomed", &Replica::welcomed)
      .function("readOnly", &Replica::read_only)
      .function("synced", &Replica::synced)
      .function("session", &Replica::session)
      .function("shouldRetry", &Replica::should_retry)
      .function("retryDelay", &Replica::retry_delay)
      .function("resetBackoff", &Replica::reset_backoff)
      .function("error", &Replica::error);
}
