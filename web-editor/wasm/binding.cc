// The engine for JavaScript: one replica (crdt::Doc) per object, positions in UTF-16 code units
// (what JavaScript strings and CodeMirror count), bytes as Uint8Array. Errors come back as
// strings (empty: none) rather than exceptions, so a bad remote message cannot leave the
// JavaScript side half-updated.
#include <emscripten/bind.h>
#include <emscripten/val.h>

#include <memory>
#include <string>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "crdt/split.h"

namespace {

using emscripten::val;
using tandem::crdt::Doc;
using tandem::crdt::Version;
namespace codec = tandem::crdt::codec;

val bytes(const std::string& s) {
  // A copy: the view into wasm memory is invalid once that memory grows.
  return val::global("Uint8Array").new_(emscripten::typed_memory_view(s.size(), reinterpret_cast<const uint8_t*>(s.data())))
      .call<val>("slice");
}

class Replica {
 public:
  explicit Replica(const std::string& agent) : doc_(agent) {}
  explicit Replica(Doc doc) : doc_(std::move(doc)) {}

  // A replica from save()'s bytes, continuing as `agent`; null if the bytes do not load.
  static std::unique_ptr<Replica> load(const std::string& snapshot, const std::string& agent) {
    if (!Doc::ValidateAgent(agent).ok()) return nullptr;
    auto d = codec::load(snapshot, agent);
    if (!d.ok()) return nullptr;
    return std::make_unique<Replica>(std::move(*d));
  }
  static bool valid_agent(const std::string& agent) { return Doc::ValidateAgent(agent).ok(); }

  std::string agent() const { return doc_.agent(); }
  std::string text() const { return doc_.text(); }
  uint32_t length16() const { return doc_.length_utf16(); }
  uint32_t length() const { return doc_.length(); }

  std::string insert16(uint32_t at16, const std::string& text) {
    auto pos = doc_.pos_from_utf16(at16);
    if (!pos.ok()) return pos.status().ToString();
    auto st = doc_.insert(*pos, text);
    return st.ok() ? "" : st.ToString();
  }
  std::string remove16(uint32_t at16, uint32_t len16) {
    auto from = doc_.pos_from_utf16(at16);
    if (!from.ok()) return from.status().ToString();
    auto to = doc_.pos_from_utf16(at16 + len16);
    if (!to.ok()) return to.status().ToString();
    auto st = doc_.remove(*from, *to - *from);
    return st.ok() ? "" : st.ToString();
  }

  // Code points <-> UTF-16, clamped to the document (presence positions come from other texts).
  uint32_t to16(uint32_t pos) const {
    auto r = doc_.utf16_from_pos(std::min(pos, doc_.length()));
    return r.ok() ? *r : doc_.length_utf16();
  }
  uint32_t from16(uint32_t u16) const {
    u16 = std::min(u16, doc_.length_utf16());
    auto r = doc_.pos_from_utf16(u16);
    if (r.ok()) return *r;
    auto back = doc_.pos_from_utf16(u16 - 1);  // inside a surrogate pair: the start of the pair
    return back.ok() ? *back : 0;
  }

  // The version as the protocol's flat array [agent, next, ...] (sorted by agent).
  val version() const {
    val out = val::array();
    for (const auto& [agent, next] : doc_.version().entries()) {
      out.call<void>("push", val(agent));
      out.call<void>("push", val(next));
    }
    return out;
  }
  uint32_t own_next() const { return doc_.version().next(doc_.agent()); }

  // This replica's own operations from seq `from` on, in encoded batches of at most `max_events`
  // events and about `max_bytes` bytes, with the text of own deleted characters where it is
  // still known (split_batch keeps batches whole otherwise).
  val own_ops_since(uint32_t from, uint32_t max_events, uint32_t max_bytes) const {
    Version peer;
    for (const auto& [agent, next] : doc_.version().entries()) {
      const uint32_t n = agent == doc_.agent() ? std::min(from, next) : next;
      if (n > 0) peer.advance(agent, n);
    }
    val out = val::array();
    auto batch = doc_.ops_since(peer, Doc::DeletedText::kInclude);
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
    auto batch = codec::decode_ops(encoded);
    if (!batch.ok()) {
      out.set("error", batch.status().ToString());
      return out;
    }
    auto patches = doc_.apply(*batch);
    if (!patches.ok()) {
      out.set("error", patches.status().ToString());
      return out;
    }
    val list = val::array();
    for (const auto& p : *patches) {
      val one = val::array();
      one.call<void>("push", val(p.pos_utf16));
      one.call<void>("push", val(p.deleted_utf16));
      one.call<void>("push", val(p.inserted));
      list.call<void>("push", one);
    }
    out.set("patches", list);
    out.set("pending", val(static_cast<double>(doc_.pending_events())));
    return out;
  }

  val save() const { return bytes(codec::save(doc_)); }

 private:
  Doc doc_;
};

}  // namespace

EMSCRIPTEN_BINDINGS(tandem) {
  emscripten::class_<Replica>("Replica")
      .constructor<const std::string&>()
      .class_function("load", &Replica::load)
      .class_function("validAgent", &Replica::valid_agent)
      .function("agent", &Replica::agent)
      .function("text", &Replica::text)
      .function("length16", &Replica::length16)
      .function("length", &Replica::length)
      .function("insert16", &Replica::insert16)
      .function("remove16", &Replica::remove16)
      .function("to16", &Replica::to16)
      .function("from16", &Replica::from16)
      .function("version", &Replica::version)
      .function("ownNext", &Replica::own_next)
      .function("ownOpsSince", &Replica::own_ops_since)
      .function("apply", &Replica::apply)
      .function("save", &Replica::save);
}
