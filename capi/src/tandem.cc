// libtandem: the C API (capi/include/tandem/tandem.h) over crdt::Doc, the codec and net::Client.
// Every entry point catches everything: a C caller cannot unwind a C++ exception.
#include "tandem/tandem.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "crdt/history.h"
#include "crdt/utf8.h"
#include "net/client.h"

struct tandem_error {
  tandem_status code;
  std::string message;
};

struct tandem_doc {
  explicit tandem_doc(tandem::crdt::Doc d) : doc(std::move(d)) {}
  tandem::crdt::Doc doc;
  // The history reads' index, built for the replica as it was at `history_events` events (a
  // replica only gains events, so a count tells whether it changed).
  mutable std::unique_ptr<tandem::crdt::History> history;
  mutable uint64_t history_events = 0;
};

struct tandem_client {
  std::unique_ptr<tandem::net::Client> client;
  tandem_client_callbacks callbacks{};
  void* user = nullptr;
  std::string agent;
};

namespace {

using tandem::crdt::Result;
using tandem::crdt::Status;

tandem_status code_of(const Status& st) {
  switch (st.code()) {
    case Status::Code::kOk: return TANDEM_OK;
    case Status::Code::kInvalidArgument: return TANDEM_INVALID_ARGUMENT;
    case Status::Code::kOutOfRange: return TANDEM_OUT_OF_RANGE;
    case Status::Code::kNotFound: return TANDEM_NOT_FOUND;
    case Status::Code::kFailedPrecondition: return TANDEM_FAILED_PRECONDITION;
    case Status::Code::kCorruption: return TANDEM_CORRUPTION;
    case Status::Code::kResourceExhausted: return TANDEM_RESOURCE_EXHAUSTED;
    case Status::Code::kNotSupported: return TANDEM_NOT_SUPPORTED;
    case Status::Code::kIOError: return TANDEM_IO_ERROR;
    case Status::Code::kInternal: return TANDEM_INTERNAL;
    case Status::Code::kAlreadyExists: return TANDEM_ALREADY_EXISTS;
  }
  return TANDEM_INTERNAL;
}

tandem_status fail(tandem_error** err, tandem_status code, std::string message) {
  if (err) *err = new (std::nothrow) tandem_error{code, std::move(message)};
  return code;
}

tandem_status report(tandem_error** err, const Status& st) {
  return st.ok() ? TANDEM_OK : fail(err, code_of(st), st.message());
}

// Runs f, turning what it throws into an error: allocation failures and bugs alike.
template <class F>
tandem_status guarded(tandem_error** err, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(err, TANDEM_RESOURCE_EXHAUSTED, "out of memory");
  } catch (const std::exception& e) {
    return fail(err, TANDEM_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(err, TANDEM_INTERNAL, "internal error");
  }
}

tandem_status null_arg(tandem_error** err, const char* what) {
  return fail(err, TANDEM_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

std::string_view view(const char* text, size_t len) { return len ? std::string_view(text, len) : std::string_view(); }

// Copies into malloc'd memory that the caller frees with tandem_bytes_free / tandem_string_free.
template <class T>
T* copy_out(std::string_view s, bool terminate) {
  T* p = static_cast<T*>(std::malloc(s.size() + (terminate ? 1 : 0) + 1));
  if (!p) throw std::bad_alloc();
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  if (terminate) reinterpret_cast<char*>(p)[s.size()] = 0;
  return p;
}

tandem_status bytes_out(const std::string& bytes, uint8_t** out, size_t* out_len, tandem_error** err) {
  if (!out || !out_len) return null_arg(err, "out");
  *out = copy_out<uint8_t>(bytes, false);
  *out_len = bytes.size();
  return TANDEM_OK;
}

// Code-point offset of a UTF-16 offset in `text` (UTF-8), as Doc::pos_from_utf16 does for a replica.
Result<uint32_t> cp_from_utf16(std::string_view text, uint32_t units) {
  uint32_t cp = 0, u = 0;
  size_t i = 0;
  while (u < units) {
    if (i >= text.size()) return Status::OutOfRange("UTF-16 offset " + std::to_string(units) + " is past the end");
    const size_t n = tandem::crdt::utf8::seq_len(static_cast<unsigned char>(text[i]));
    u += n == 4 ? 2 : 1;
    i += n;
    ++cp;
  }
  if (u != units) return Status::InvalidArgument("UTF-16 offset " + std::to_string(units) + " splits a surrogate pair");
  return cp;
}

// A patch array pointing into `patches` (valid while it lives).
std::vector<tandem_patch> c_patches(const std::vector<tandem::crdt::Patch>& patches) {
  std::vector<tandem_patch> out;
  out.reserve(patches.size());
  for (const auto& p : patches) {
    out.push_back({p.pos, p.deleted, p.inserted.data(), p.inserted.size(), p.pos_utf16, p.deleted_utf16, p.inserted_utf16});
  }
  return out;
}

std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// tandem_doc_formats_json's text.
std::string formats_json(const std::vector<tandem::crdt::TextSpan>& spans, const std::vector<tandem::crdt::Block>& blocks) {
  std::string out = "{\"spans\":[";
  bool first = true;
  for (const auto& s : spans) {
    if (s.marks.empty()) continue;
    if (!first) out += ",";
    first = false;
    out += "{\"from\":" + std::to_string(s.from) + ",\"to\":" + std::to_string(s.to) + ",\"marks\":{";
    std::string comments;
    bool first_mark = true;
    for (const auto& m : s.marks) {
      if (m.name == "comment") {
        if (!comments.empty()) comments += ",";
        comments += json_str(m.value);
        continue;
      }
      if (!first_mark) out += ",";
      first_mark = false;
      out += json_str(m.name);
      out += ":";
      out += m.name == "link" ? json_str(m.value) : std::string("true");
    }
    if (!comments.empty()) {
      if (!first_mark) out += ",";
      out += "\"comment\":[";
      out += comments;
      out += "]";
    }
    out += "}}";
  }
  out += "],\"blocks\":[";
  first = true;
  for (const auto& b : blocks) {
    if (b.type == "paragraph") continue;
    if (!first) out += ",";
    first = false;
    out += "{\"at\":" + std::to_string(b.at) + ",\"type\":" + json_str(b.type) + ",\"value\":" + json_str(b.value) + "}";
  }
  return out + "]}";
}

std::string_view opt(const char* s) { return s ? std::string_view(s) : std::string_view(); }

char* json_out(const std::string& t, size_t* len) {
  if (len) *len = t.size();
  return copy_out<char>(t, true);
}

// A history read's answer (the history built again when the replica changed) as a string the
// caller frees, or NULL with *err.
template <class F>
char* history_read(const tandem_doc* doc, size_t* len, tandem_error** err, F&& read) {
  char* out = nullptr;
  guarded(err, [&] {
    if (!doc) return null_arg(err, "doc");
    if (!doc->history || doc->history_events != doc->doc.num_events()) {
      auto h = doc->doc.history();
      if (!h.ok()) return report(err, h.status());
      doc->history = std::make_unique<tandem::crdt::History>(std::move(*h));
      doc->history_events = doc->doc.num_events();
    }
    tandem::crdt::Result<std::string> r = read(*doc->history);
    if (!r.ok()) return report(err, r.status());
    out = json_out(*r, len);
    return TANDEM_OK;
  });
  return out;
}

}  // namespace

extern "C" {

int tandem_api_version(void) { return TANDEM_API_VERSION; }

tandem_status tandem_error_code(const tandem_error* err) { return err ? err->code : TANDEM_OK; }
const char* tandem_error_message(const tandem_error* err) { return err ? err->message.c_str() : ""; }
void tandem_error_free(tandem_error* err) { delete err; }
void tandem_string_free(char* s) { std::free(s); }
void tandem_bytes_free(uint8_t* b) { std::free(b); }

void tandem_patches_free(tandem_patch* patches, size_t count) {
  if (!patches) return;
  for (size_t i = 0; i < count; ++i) std::free(const_cast<char*>(patches[i].inserted));
  std::free(patches);
}

// ---- tandem_doc ----

tandem_doc* tandem_doc_new(const char* agent, tandem_error** err) {
  tandem_doc* out = nullptr;
  guarded(err, [&] {
    if (!agent) return null_arg(err, "agent");
    if (auto st = tandem::crdt::Doc::ValidateAgent(agent); !st.ok()) return report(err, st);
    out = new tandem_doc(tandem::crdt::Doc(agent));
    return TANDEM_OK;
  });
  return out;
}

void tandem_doc_free(tandem_doc* doc) { delete doc; }

tandem_status tandem_doc_insert(tandem_doc* doc, uint32_t pos, const char* text, size_t text_len, tandem_error** err) {
  return guarded(err, [&] {
    if (!doc || (!text && text_len)) return null_arg(err, doc ? "text" : "doc");
    return report(err, doc->doc.insert(pos, view(text, text_len)));
  });
}

tandem_status tandem_doc_delete(tandem_doc* doc, uint32_t pos, uint32_t len, tandem_error** err) {
  return guarded(err, [&] {
    if (!doc) return null_arg(err, "doc");
    return report(err, doc->doc.remove(pos, len));
  });
}

tandem_status tandem_doc_insert_utf16(tandem_doc* doc, uint32_t pos_utf16, const char* text, size_t text_len,
                                      tandem_error** err) {
  return guarded(err, [&] {
    if (!doc || (!text && text_len)) return null_arg(err, doc ? "text" : "doc");
    auto pos = doc->doc.pos_from_utf16(pos_utf16);
    if (!pos.ok()) return report(err, pos.status());
    return report(err, doc->doc.insert(*pos, view(text, text_len)));
  });
}

tandem_status tandem_doc_delete_utf16(tandem_doc* doc, uint32_t pos_utf16, uint32_t len_utf16, tandem_error** err) {
  return guarded(err, [&] {
    if (!doc) return null_arg(err, "doc");
    if (uint64_t{pos_utf16} + len_utf16 > UINT32_MAX) return fail(err, TANDEM_OUT_OF_RANGE, "range past the end");
    auto from = doc->doc.pos_from_utf16(pos_utf16);
    if (!from.ok()) return report(err, from.status());
    auto to = doc->doc.pos_from_utf16(pos_utf16 + len_utf16);
    if (!to.ok()) return report(err, to.status());
    return report(err, doc->doc.remove(*from, *to - *from));
  });
}

tandem_status tandem_doc_mark(tandem_doc* doc, uint32_t pos, uint32_t len, const char* name, const char* value,
                              tandem_error** err) {
  return guarded(err, [&] {
    if (!doc || !name || !value) return null_arg(err, !doc ? "doc" : !name ? "name" : "value");
    return report(err, doc->doc.mark(pos, len, name, value));
  });
}

tandem_status tandem_doc_unmark(tandem_doc* doc, uint32_t pos, uint32_t len, const char* name, const char* value,
                                tandem_error** err) {
  return guarded(err, [&] {
    if (!doc || !name) return null_arg(err, !doc ? "doc" : "name");
    return report(err, doc->doc.unmark(pos, len, name, opt(value)));
  });
}

tandem_status tandem_doc_set_block(tandem_doc* doc, uint32_t pos, const char* type, const char* value, tandem_error** err) {
  return guarded(err, [&] {
    if (!doc || !type) return null_arg(err, !doc ? "doc" : "type");
    return report(err, doc->doc.set_block(pos, type, opt(value)));
  });
}

char* tandem_doc_formats_json(const tandem_doc* doc, size_t* len) {
  if (!doc) return nullptr;
  try {
    return json_out(formats_json(doc->doc.spans(), doc->doc.blocks()), len);
  } catch (...) {
    return nullptr;
  }
}

uint64_t tandem_doc_events(const tandem_doc* doc) { return doc ? doc->doc.num_events() : 0; }

char* tandem_doc_text_at(const tandem_doc* doc, uint64_t at, size_t* len, tandem_error** err) {
  return history_read(doc, len, err, [&](const tandem::crdt::History& h) { return h.text_at(at); });
}

char* tandem_doc_blame_json(const tandem_doc* doc, uint64_t at, size_t* len, tandem_error** err) {
  return history_read(doc, len, err, [&](const tandem::crdt::History& h) -> tandem::crdt::Result<std::string> {
    auto spans = h.blame(at);
    if (!spans.ok()) return spans.status();
    std::string out = "{\"events\":" + std::to_string(at) + ",\"length\":" +
                      std::to_string(spans->empty() ? 0 : spans->back().to) + ",\"spans\":[";
    for (size_t i = 0; i < spans->size(); ++i) {
      const auto& s = (*spans)[i];
      out += i ? ",{" : "{";
      out += "\"from\":" + std::to_string(s.from) + ",\"to\":" + std::to_string(s.to) + ",\"agent\":" + json_str(s.agent) + "}";
    }
    return out + "]}";
  });
}

char* tandem_doc_diff_json(const tandem_doc* doc, uint64_t from, uint64_t to, size_t* len, tandem_error** err) {
  return history_read(doc, len, err, [&](const tandem::crdt::History& h) -> tandem::crdt::Result<std::string> {
    auto runs = h.diff(from, to);
    if (!runs.ok()) return runs.status();
    std::string out = "{\"from\":" + std::to_string(from) + ",\"to\":" + std::to_string(to) + ",\"runs\":[";
    for (size_t i = 0; i < runs->size(); ++i) {
      const auto& r = (*runs)[i];
      out += i ? ",{" : "{";
      out += "\"kind\":";
      out += json_str(tandem::crdt::DiffKindName(r.kind));
      out += ",\"text\":" + json_str(r.text) + ",\"agents\":[";
      for (size_t k = 0; k < r.agents.size(); ++k) {
        if (k) out += ',';
        out += json_str(r.agents[k]);
      }
      out += "]}";
    }
    return out + "]}";
  });
}

char* tandem_doc_text(const tandem_doc* doc, size_t* len) {
  if (!doc) return nullptr;
  try {
    const std::string t = doc->doc.text();
    if (len) *len = t.size();
    return copy_out<char>(t, true);
  } catch (...) {
    return nullptr;
  }
}

uint32_t tandem_doc_length(const tandem_doc* doc) { return doc ? doc->doc.length() : 0; }
uint32_t tandem_doc_length_utf16(const tandem_doc* doc) { return doc ? doc->doc.length_utf16() : 0; }

tandem_status tandem_doc_version(const tandem_doc* doc, uint8_t** out, size_t* out_len, tandem_error** err) {
  return guarded(err, [&] {
    if (!doc) return null_arg(err, "doc");
    return bytes_out(tandem::crdt::codec::encode_version(doc->doc.version()), out, out_len, err);
  });
}

tandem_status tandem_doc_encode_since(const tandem_doc* doc, const uint8_t* version, size_t version_len, uint8_t** out,
                                      size_t* out_len, tandem_error** err) {
  return guarded(err, [&] {
    if (!doc || (!version && version_len)) return null_arg(err, doc ? "version" : "doc");
    tandem::crdt::Version peer;
    if (version_len) {
      auto v = tandem::crdt::codec::decode_version(view(reinterpret_cast<const char*>(version), version_len));
      if (!v.ok()) return report(err, v.status());
      peer = std::move(*v);
    }
    return bytes_out(tandem::crdt::codec::encode_ops(doc->doc.ops_since(peer)), out, out_len, err);
  });
}

tandem_status tandem_doc_apply(tandem_doc* doc, const uint8_t* ops, size_t ops_len, tandem_patch** patches,
                               size_t* patch_count, tandem_error** err) {
  if (patches) *patches = nullptr;
  if (patch_count) *patch_count = 0;
  return guarded(err, [&] {
    if (!doc || (!ops && ops_len)) return null_arg(err, doc ? "ops" : "doc");
    auto batch = tandem::crdt::codec::decode_batch(view(reinterpret_cast<const char*>(ops), ops_len));
    if (!batch.ok()) return report(err, batch.status());
    auto changes = doc->doc.apply(*batch);
    if (!changes.ok()) return report(err, changes.status());
    if (patches && !changes->empty()) {
      // calloc: a failure half way leaves nulls that tandem_patches_free skips.
      auto* arr = static_cast<tandem_patch*>(std::calloc(changes->size(), sizeof(tandem_patch)));
      if (!arr) throw std::bad_alloc();
      auto c = c_patches(*changes);
      for (size_t i = 0; i < c.size(); ++i) {
        arr[i] = c[i];
        arr[i].inserted = nullptr;
      }
      try {
        for (size_t i = 0; i < c.size(); ++i) arr[i].inserted = copy_out<char>((*changes)[i].inserted, true);
      } catch (...) {
        tandem_patches_free(arr, c.size());
        throw;
      }
      *patches = arr;
      if (patch_count) *patch_count = c.size();
    }
    return TANDEM_OK;
  });
}

tandem_status tandem_doc_save(const tandem_doc* doc, uint8_t** out, size_t* out_len, tandem_error** err) {
  return guarded(err, [&] {
    if (!doc) return null_arg(err, "doc");
    return bytes_out(tandem::crdt::codec::save(doc->doc), out, out_len, err);
  });
}

tandem_doc* tandem_doc_load(const uint8_t* snapshot, size_t len, const char* agent, tandem_error** err) {
  tandem_doc* out = nullptr;
  guarded(err, [&] {
    if (!agent || (!snapshot && len)) return null_arg(err, agent ? "snapshot" : "agent");
    auto d = tandem::crdt::codec::load(view(reinterpret_cast<const char*>(snapshot), len), agent);
    if (!d.ok()) return report(err, d.status());
    out = new tandem_doc(std::move(*d));
    return TANDEM_OK;
  });
  return out;
}

// ---- tandem_client ----

namespace {

// tandem_client_open and tandem_client_restore: `state` is NULL for a new replica.
tandem_client* open_client(const tandem_client_options* options, const uint8_t* state, size_t state_len,
                           const tandem_client_callbacks* callbacks, void* user, tandem_error** err) {
  tandem_client* out = nullptr;
  guarded(err, [&] {
    if (!options || !options->url) return null_arg(err, options ? "options->url" : "options");
    const std::string url = options->url;
    if (url.rfind("ws://", 0) != 0 && url.rfind("wss://", 0) != 0) {
      return fail(err, TANDEM_INVALID_ARGUMENT, "url must be ws://HOST:PORT/ws/<doc-id> or wss://...");
    }
    tandem::net::ClientOptions o;
    o.url = url;
    if (options->agent) {
      o.agent = options->agent;
      if (auto st = tandem::crdt::Doc::ValidateAgent(o.agent); !st.ok()) return report(err, st);
    }
    if (options->token) o.token = options->token;
    if (options->min_backoff_ms) o.min_backoff = std::chrono::milliseconds(options->min_backoff_ms);
    if (options->max_backoff_ms) o.max_backoff = std::chrono::milliseconds(options->max_backoff_ms);
    auto c = std::make_unique<tandem_client>();
    if (callbacks) c->callbacks = *callbacks;
    c->user = user;
    if (state) {
      auto restored = tandem::net::Client::Restore(o, view(reinterpret_cast<const char*>(state), state_len));
      if (!restored.ok()) return report(err, restored.status());
      c->client = std::move(*restored);
    } else {
      c->client = std::make_unique<tandem::net::Client>(o);
    }
    c->agent = c->client->agent();
    tandem_client* self = c.get();
    if (self->callbacks.on_change) {
      self->client->on_change([self](const std::vector<tandem::crdt::Patch>& patches) {
        auto arr = c_patches(patches);
        self->callbacks.on_change(self->user, arr.data(), arr.size());
      });
    }
    if (self->callbacks.on_state) {
      self->client->on_state([self](tandem::net::ClientState s) {
        self->callbacks.on_state(self->user, static_cast<tandem_client_state>(static_cast<int>(s)));
      });
    }
    if (self->callbacks.on_error) {
      self->client->on_error([self](uint16_t code, const std::string& message) {
        self->callbacks.on_error(self->user, code, message.c_str());
      });
    }
    if (self->callbacks.on_presence) {
      self->client->on_presence([self](const tandem::net::PeerPresence& p) {
        self->callbacks.on_presence(self->user, p.session, p.agent.c_str(), p.presence.name.c_str(),
                                    p.presence.anchor ? int64_t{*p.presence.anchor} : -1,
                                    p.presence.head ? int64_t{*p.presence.head} : -1);
      });
    }
    if (self->callbacks.on_leave) {
      self->client->on_leave([self](uint64_t session) { self->callbacks.on_leave(self->user, session); });
    }
    self->client->start();
    out = c.release();
    return TANDEM_OK;
  });
  return out;
}

}  // namespace

tandem_client* tandem_client_open(const tandem_client_options* options, const tandem_client_callbacks* callbacks,
                                  void* user, tandem_error** err) {
  return open_client(options, nullptr, 0, callbacks, user, err);
}

tandem_client* tandem_client_restore(const tandem_client_options* options, const uint8_t* state, size_t state_len,
                                     const tandem_client_callbacks* callbacks, void* user, tandem_error** err) {
  if (!state) {
    null_arg(err, "state");
    return nullptr;
  }
  return open_client(options, state, state_len, callbacks, user, err);
}

tandem_status tandem_client_save(const tandem_client* client, uint8_t** out, size_t* out_len, tandem_error** err) {
  return guarded(err, [&] {
    if (!client || !out || !out_len) return null_arg(err, !client ? "client" : "out");
    const std::string bytes = client->client->save();
    *out = copy_out<uint8_t>(bytes, false);
    *out_len = bytes.size();
    return TANDEM_OK;
  });
}

tandem_status tandem_client_set_token(tandem_client* client, const char* token, tandem_error** err) {
  return guarded(err, [&] {
    if (!client || !token) return null_arg(err, !client ? "client" : "token");
    return report(err, client->client->set_token(token));
  });
}

char* tandem_client_refusal(const tandem_client* client, uint16_t* code) {
  if (!client) return nullptr;
  try {
    auto r = client->client->refusal();
    if (!r) return nullptr;
    if (code) *code = r->first;
    return copy_out<char>(r->second, true);
  } catch (...) {
    return nullptr;
  }
}

void tandem_client_free(tandem_client* client) {
  try {
    delete client;
  } catch (...) {
  }
}

tandem_status tandem_client_insert(tandem_client* client, uint32_t pos, const char* text, size_t text_len,
                                   tandem_error** err) {
  return guarded(err, [&] {
    if (!client || (!text && text_len)) return null_arg(err, client ? "text" : "client");
    return report(err, client->client->insert(pos, view(text, text_len)));
  });
}

tandem_status tandem_client_delete(tandem_client* client, uint32_t pos, uint32_t len, tandem_error** err) {
  return guarded(err, [&] {
    if (!client) return null_arg(err, "client");
    return report(err, client->client->remove(pos, len));
  });
}

tandem_status tandem_client_insert_utf16(tandem_client* client, uint32_t pos_utf16, const char* text, size_t text_len,
                                         tandem_error** err) {
  return guarded(err, [&] {
    if (!client || (!text && text_len)) return null_arg(err, client ? "text" : "client");
    auto pos = cp_from_utf16(client->client->text(), pos_utf16);
    if (!pos.ok()) return report(err, pos.status());
    return report(err, client->client->insert(*pos, view(text, text_len)));
  });
}

tandem_status tandem_client_delete_utf16(tandem_client* client, uint32_t pos_utf16, uint32_t len_utf16,
                                         tandem_error** err) {
  return guarded(err, [&] {
    if (!client) return null_arg(err, "client");
    if (uint64_t{pos_utf16} + len_utf16 > UINT32_MAX) return fail(err, TANDEM_OUT_OF_RANGE, "range past the end");
    const std::string text = client->client->text();
    auto from = cp_from_utf16(text, pos_utf16);
    if (!from.ok()) return report(err, from.status());
    auto to = cp_from_utf16(text, pos_utf16 + len_utf16);
    if (!to.ok()) return report(err, to.status());
    return report(err, client->client->remove(*from, *to - *from));
  });
}

tandem_status tandem_client_mark(tandem_client* client, uint32_t pos, uint32_t len, const char* name, const char* value,
                                 tandem_error** err) {
  return guarded(err, [&] {
    if (!client || !name || !value) return null_arg(err, !client ? "client" : !name ? "name" : "value");
    return report(err, client->client->mark(pos, len, name, value));
  });
}

tandem_status tandem_client_unmark(tandem_client* client, uint32_t pos, uint32_t len, const char* name, const char* value,
                                   tandem_error** err) {
  return guarded(err, [&] {
    if (!client || !name) return null_arg(err, !client ? "client" : "name");
    return report(err, client->client->unmark(pos, len, name, opt(value)));
  });
}

tandem_status tandem_client_set_block(tandem_client* client, uint32_t pos, const char* type, const char* value,
                                      tandem_error** err) {
  return guarded(err, [&] {
    if (!client || !type) return null_arg(err, !client ? "client" : "type");
    return report(err, client->client->set_block(pos, type, opt(value)));
  });
}

char* tandem_client_formats_json(const tandem_client* client, size_t* len) {
  if (!client) return nullptr;
  try {
    return json_out(formats_json(client->client->spans(), client->client->blocks()), len);
  } catch (...) {
    return nullptr;
  }
}

char* tandem_client_text(const tandem_client* client, size_t* len) {
  if (!client) return nullptr;
  try {
    const std::string t = client->client->text();
    if (len) *len = t.size();
    return copy_out<char>(t, true);
  } catch (...) {
    return nullptr;
  }
}

tandem_client_state tandem_client_get_state(const tandem_client* client) {
  return client ? static_cast<tandem_client_state>(static_cast<int>(client->client->state())) : TANDEM_OFFLINE;
}

uint64_t tandem_client_unsent(const tandem_client* client) { return client ? client->client->unacknowledged() : 0; }

const char* tandem_client_agent(const tandem_client* client) { return client ? client->agent.c_str() : ""; }

tandem_status tandem_client_set_presence(tandem_client* client, const char* name, int64_t anchor, int64_t head,
                                         tandem_error** err) {
  return guarded(err, [&] {
    if (!client) return null_arg(err, "client");
    tandem::proto::Presence p;
    if (name) {
      // The server refuses a message with bad UTF-8 and the session with it: check here.
      if (auto st = tandem::crdt::utf8::inspect(name); !st.ok()) return report(err, st.status().WithContext("name"));
      p.name = name;
    }
    if (anchor > UINT32_MAX || head > UINT32_MAX) return fail(err, TANDEM_OUT_OF_RANGE, "selection past 2^32");
    if (anchor >= 0) p.anchor = static_cast<uint32_t>(anchor);
    if (head >= 0) p.head = static_cast<uint32_t>(head);
    client->client->set_presence(std::move(p));
    return TANDEM_OK;
  });
}

int tandem_client_wait_synced(tandem_client* client, uint32_t timeout_ms) {
  if (!client) return 0;
  try {
    return client->client->wait_synced(std::chrono::milliseconds(timeout_ms)) ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

}  // extern "C"
