#include "http_api.h"

#include <boost/asio/post.hpp>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <optional>
#include <nlohmann/json.hpp>

#include "crdt/utf8.h"
#include "render/markdown.h"
#include "render/render.h"
#include "store/history_json.h"
#include "store/replay.h"
#include "sync/server.h"

namespace tandem::net {

using crdt::Result;
using crdt::Status;
using json = nlohmann::json;

namespace {

constexpr size_t kMaxEdits = 10000;

using store::iso_time;
using store::parse_time;


json version_json(const crdt::Version& v) {
  json out = json::object();
  for (const auto& [agent, next] : v.entries()) out[agent] = next;
  return out;
}

Result<crdt::Version> version_from(const json& j) {
  if (!j.is_object()) return Status::InvalidArgument("version must be an object of agent: operation count");
  crdt::Version v;
  for (auto it = j.begin(); it != j.end(); ++it) {
    TANDEM_RETURN_IF_ERROR(crdt::Doc::ValidateAgent(it.key()).WithContext("version"));
    if (!it.value().is_number_unsigned() || it.value().get<uint64_t>() > UINT32_MAX) {
      return Status::InvalidArgument("version: '" + it.key() + "' must map to a count of operations");
    }
    if (it.value().get<uint64_t>() > 0) v.advance(it.key(), it.value().get<uint32_t>());
  }
  return v;
}

ApiResponse ok(const json& body) { return {200, body.dump()}; }

// `reply` for a call the room reports on: the first report answers, later ones (a room broken
// while the call waited) are dropped.
std::function<void(ApiResponse)> once(std::function<void(ApiResponse)> reply) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  return [done, reply = std::move(reply)](ApiResponse r) {
    if (!done->exchange(true)) reply(std::move(r));
  };
}

// The reply to a room's report on an HTTP API call (Room::ApiDone): 0 is success, anything
// else a protocol error code, said in HTTP's terms. `make_error`: why the edit could not be built,
// when that was the failure.
ApiResponse api_failure(uint16_t code, const std::string& message, const Status& make_error) {
  if (!make_error.ok()) {
    const bool unknown = make_error.code() == Status::Code::kNotFound;
    return api_error(unknown ? 409 : 422, unknown ? "version_unknown" : "bad_edit", make_error.message());
  }
  switch (code) {
    case proto::kDeleted: return api_error(404, "not_found", message);
    case proto::kAgentInUse: return api_error(409, "agent_in_use", message);
    case proto::kRejected:
      // Positions as of an older version are checked by the document, in its own terms.
      if (message.find("past the end") != std::string::npos) {
        return api_error(422, "bad_edit", "an edit goes past the end of the text as it was at the given version");
      }
      return api_error(422, "rejected", message);
    case proto::kTooLarge: return api_error(413, "too_large", message);
    case proto::kForbidden: return api_error(403, "forbidden", message);
    default: return api_error(code == proto::kInternal ? 503 : 500, "unavailable", message);
  }
}

// Who may do what: an open server lets anyone do anything.
struct Caller {
  bool open = true;
  Token token;
  bool may_read(const std::string& doc) const { return open || token.grants(doc); }
  bool may_write(const std::string& doc) const { return open || (token.write && token.grants(doc)); }
};

void list_docs(Server::Impl& srv, const Caller& caller, const std::function<void(ApiResponse)>& reply) {
  auto docs = srv.store->list();
  if (!docs.ok()) {
    reply(api_error(500, "store_failed", docs.status().message()));
    return;
  }
  json out = json::array();
  for (const auto& d : *docs) {
    if (!caller.may_read(d.name)) continue;
    crdt::Version version;
    for (const auto& [agent, events] : d.agents) version.advance(agent, static_cast<uint32_t>(events));
    out.push_back({{"doc", d.name},
                   {"events", d.events},
                   {"bytes", d.log_bytes + d.snapshot_bytes},
                   {"updated", d.updated_ms ? iso_time(d.updated_ms) : ""},
                   {"updated_ms", d.updated_ms},
                   {"version", version_json(version)}});
  }
  reply(ok({{"documents", out}}));
}

// A block's attribute as the API names it: heading {"level": n}, bullet and ordered {"depth": n},
// code {"language": s}; the others {}.
json block_attrs(const std::string& type, const std::string& value) {
  if (type == "heading") return {{"level", std::stoi(value)}};
  if (type == "bullet" || type == "ordered") return {{"depth", std::stoi(value)}};
  if (type == "code") return {{"language", value}};
  return json::object();
}

// Stretches that carry marks and blocks that are not paragraphs, in code points (the text's
// other stretches are unmarked, its other blocks paragraphs).
void add_formats(const crdt::Doc& d, json* out) {
  json spans = json::array(), blocks = json::array();
  if (d.format_events() > 0) {
    for (const auto& s : d.spans()) {
      if (s.marks.empty()) continue;
      json marks = json::object();
      for (const auto& m : s.marks) {
        if (m.name == "comment") {
          marks["comment"].push_back(m.value);
        } else if (m.name == "link") {
          marks["link"] = m.value;
        } else {
          marks[m.name] = true;
        }
      }
      spans.push_back({{"from", s.from}, {"to", s.to}, {"marks", std::move(marks)}});
    }
    for (const auto& b : d.blocks()) {
      if (b.type != "paragraph") blocks.push_back({{"at", b.at}, {"type", b.type}, {"attrs", block_attrs(b.type, b.value)}});
    }
  }
  (*out)["spans"] = std::move(spans);
  (*out)["blocks"] = std::move(blocks);
}

json doc_json(const std::string& id, const crdt::Doc& d, const std::string& format = "") {
  json out = {{"doc", id},
              {"text", d.text()},
              {"version", version_json(d.version())},
              {"events", d.num_events()},
              {"length", d.length()},
              {"length_utf16", d.length_utf16()}};
  add_formats(d, &out);
  if (format == "markdown") out["markdown"] = render::to_markdown(render::read(d));
  if (format == "html") out["html"] = render::to_html(render::read(d));
  return out;
}

// {"agent": A, "version": {...} (absent: as the document is now), "edits": [{"at": P, "insert": T} |
// {"at": P, "delete": N} | {"at": P, "len": N, "mark": M, "value": V} | {"at": P, "block": B,
// "attrs": {...}}, ...]}: each edit's position is in the text the ones before it left. A mark's
// value: true (false removes it); a link's, its href (false removes); a comment's, {"id": I}
// ({"id": I, "remove": true} removes it). A block edit sets the type of the block holding P.
struct EditRequest {
  std::string agent;
  std::optional<crdt::Version> version;
  struct Edit {
    uint32_t at;
    std::string insert;
    uint32_t remove;
    crdt::OpKind format_kind = crdt::OpKind::kInsert;  // kMark or kBlock for a format edit
    crdt::Format format;                               // (a mark's end, name, value, remove)
  };
  std::vector<Edit> edits;
  bool has_blocks = false;
};

bool is_format(const EditRequest::Edit& e) { return crdt::IsFormat(e.format_kind); }

// The body as JSON, or why it is not (the parser's words, without its exception's name).
Result<json> parse_body(const std::string& body) {
  try {
    json j = json::parse(body);
    if (!j.is_object()) return Status::InvalidArgument("the body must be a JSON object, not " + std::string(j.type_name()));
    return j;
  } catch (const json::parse_error& e) {
    std::string why = e.what();
    const size_t end = why.find("] ");
    if (why.rfind("[json.exception", 0) == 0 && end != std::string::npos) why.erase(0, end + 2);
    return Status::InvalidArgument("the body is not valid JSON: " + why);
  }
}

// What a field holds, for messages: "a string", "a number"...
std::string kind_of(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return "a string";
    case json::value_t::number_integer: return v.get<int64_t>() < 0 ? "a negative number" : "a number too large";
    case json::value_t::number_unsigned: return "a number too large";
    case json::value_t::number_float: return "a number with a fraction";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::null: return "null";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "something else";
  }
}

// A field that must be a whole number up to UINT32_MAX: a message naming what is wrong.
Status whole_number(const json& e, const char* field, const std::string& where, const char* what, uint32_t* out) {
  if (!e.contains(field)) return Status::InvalidArgument(where + ": '" + field + "' (" + what + ") is required");
  const json& v = e[field];
  if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX) {
    return Status::InvalidArgument(where + ": '" + field + "' must be " + what + ", a whole number, not " + kind_of(v));
  }
  *out = v.get<uint32_t>();
  return Status::OK();
}

// A mark or block edit's fields into ed.format (checked by the engine's rules, format.h).
Status parse_format(const json& e, const std::string& where, EditRequest::Edit* ed) {
  crdt::Format& f = ed->format;
  if (e.contains("mark")) {
    ed->format_kind = crdt::OpKind::kMark;
    if (!e["mark"].is_string()) return Status::InvalidArgument(where + ": 'mark' must be a mark's name, not " + kind_of(e["mark"]));
    f.name = e["mark"].get<std::string>();
    uint32_t len = 0;
    TANDEM_RETURN_IF_ERROR(whole_number(e, "len", where, "a count of characters", &len));
    if (len == 0 || uint64_t{ed->at} + len > UINT32_MAX) return Status::InvalidArgument(where + ": 'len' must be 1 or more");
    f.end = ed->at + len;
    if (!e.contains("value")) return Status::InvalidArgument(where + ": 'value' is required");
    const json& v = e["value"];
    if (f.name == "comment") {
      if (!v.is_object() || !v.contains("id") || !v["id"].is_string()) {
        return Status::InvalidArgument(where + ": a comment's 'value' is {\"id\": \"...\"}, not " + kind_of(v));
      }
      f.value = v["id"].get<std::string>();
      if (v.contains("remove")) {
        if (!v["remove"].is_boolean()) return Status::InvalidArgument(where + ": 'remove' must be a boolean");
        f.remove = v["remove"].get<bool>();
      }
    } else if (v.is_boolean() && !v.get<bool>()) {
      f.remove = true;
    } else if (f.name == "link") {
      if (!v.is_string()) return Status::InvalidArgument(where + ": a link's 'value' is its href or false, not " + kind_of(v));
      f.value = v.get<std::string>();
    } else if (v.is_boolean()) {
      f.value = "true";
    } else {
      return Status::InvalidArgument(where + ": '" + f.name.substr(0, 64) + "' takes true or false, not " + kind_of(v));
    }
  } else {
    ed->format_kind = crdt::OpKind::kBlock;
    if (!e["block"].is_string()) return Status::InvalidArgument(where + ": 'block' must be a block type, not " + kind_of(e["block"]));
    f.name = e["block"].get<std::string>();
    const json attrs = e.contains("attrs") ? e["attrs"] : json::object();
    if (!attrs.is_object()) return Status::InvalidArgument(where + ": 'attrs' must be an object, not " + kind_of(attrs));
    const char* key = f.name == "heading" ? "level" : f.name == "bullet" || f.name == "ordered" ? "depth" : f.name == "code" ? "language" : nullptr;
    for (const auto& [k, val] : attrs.items()) {
      if (!key || k != key) return Status::InvalidArgument(where + ": block '" + f.name.substr(0, 64) + "' has no attribute '" + k.substr(0, 64) + "'");
      if (f.name == "code") {
        if (!val.is_string()) return Status::InvalidArgument(where + ": 'language' must be a string, not " + kind_of(val));
        f.value = val.get<std::string>();
      } else {
        if (!val.is_number_unsigned() || val.get<uint64_t>() > 9) {
          return Status::InvalidArgument(where + ": '" + k + "' must be a small whole number, not " + kind_of(val));
        }
        f.value = std::to_string(val.get<uint64_t>());
      }
    }
    if (key && f.name != "code" && f.value.empty()) return Status::InvalidArgument(where + ": block '" + f.name + "' needs 'attrs': {\"" + key + "\": ...}");
  }
  // The engine's rules (names, values, hrefs); a block's position is its block's start, found later.
  return crdt::ValidateFormat(ed->format_kind, ed->format_kind == crdt::OpKind::kMark ? ed->at : 0, f).WithContext(where);
}

Result<EditRequest> parse_edit(const std::string& body) {
  auto parsed = parse_body(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  EditRequest r;
  if (!j.contains("agent")) return Status::InvalidArgument("'agent' (a string) is required");
  if (!j["agent"].is_string()) return Status::InvalidArgument("'agent' must be a string, not " + kind_of(j["agent"]));
  r.agent = j["agent"].get<std::string>();
  TANDEM_RETURN_IF_ERROR(crdt::Doc::ValidateAgent(r.agent).WithContext("agent"));
  if (j.contains("version")) {
    auto v = version_from(j["version"]);
    if (!v.ok()) return v.status();
    r.version = std::move(*v);
  }
  if (!j.contains("edits")) return Status::InvalidArgument("'edits' (an array of edits) is required");
  if (!j["edits"].is_array() || j["edits"].empty()) {
    return Status::InvalidArgument("'edits' must be a non-empty array, not " +
                                   (j["edits"].is_array() ? std::string("an empty one") : kind_of(j["edits"])));
  }
  if (j["edits"].size() > kMaxEdits) return Status::ResourceExhausted("at most " + std::to_string(kMaxEdits) + " edits per request");
  for (size_t i = 0; i < j["edits"].size(); ++i) {
    const json& e = j["edits"][i];
    const std::string where = "edit " + std::to_string(i);
    if (!e.is_object()) return Status::InvalidArgument(where + " must be an object, not " + kind_of(e));
    EditRequest::Edit ed{0, {}, 0, crdt::OpKind::kInsert, {}};
    TANDEM_RETURN_IF_ERROR(whole_number(e, "at", where, "a position in code points", &ed.at));
    const bool ins = e.contains("insert"), del = e.contains("delete"), mark = e.contains("mark"), block = e.contains("block");
    if (ins + del + mark + block != 1) {
      return Status::InvalidArgument(where + ": give one of 'insert' (text), 'delete' (a count), 'mark' or 'block'");
    }
    if (mark || block) {
      TANDEM_RETURN_IF_ERROR(parse_format(e, where, &ed));
      r.has_blocks = r.has_blocks || block;
    } else if (ins) {
      if (!e["insert"].is_string()) return Status::InvalidArgument(where + ": 'insert' must be text, not " + kind_of(e["insert"]));
      ed.insert = e["insert"].get<std::string>();
      if (ed.insert.empty()) return Status::InvalidArgument(where + ": 'insert' must not be empty");
      auto info = crdt::utf8::inspect(ed.insert);
      if (!info.ok()) return info.status().WithContext(where);
    } else {
      TANDEM_RETURN_IF_ERROR(whole_number(e, "delete", where, "a count of characters", &ed.remove));
      if (ed.remove == 0) return Status::InvalidArgument(where + ": 'delete' must be 1 or more");
    }
    r.edits.push_back(std::move(ed));
  }
  return r;
}

// The edits `make` makes, by `agent`, on a copy of the replica, as a batch (empty when it makes
// none); *after is the version they lead to. For edits that depend on the text the edits before
// them left: a block edit names a position inside the block and the event its start, an import
// compares the whole text.
Result<crdt::OpBatch> edit_on_copy(const crdt::Doc& doc, const std::string& agent,
                                   const std::function<Status(crdt::Doc&)>& make, crdt::Version* after) {
  auto copy = crdt::Doc::from_snapshot(doc.to_snapshot(), agent);
  if (!copy.ok()) return copy.status();
  TANDEM_RETURN_IF_ERROR(make(*copy));
  *after = copy->version();
  return copy->ops_since(doc.version());
}

// A request with block edits, as of the current version, made on a copy (edit_on_copy).
Result<crdt::OpBatch> build_on_copy(const EditRequest& r, const crdt::Doc& doc, crdt::Version* after) {
  return edit_on_copy(doc, r.agent, [&r](crdt::Doc& d) {
    for (size_t i = 0; i < r.edits.size(); ++i) {
      const auto& e = r.edits[i];
      const crdt::Format& f = e.format;
      Status st;
      if (e.format_kind == crdt::OpKind::kBlock) {
        st = d.set_block(e.at, f.name, f.value);
      } else if (e.format_kind == crdt::OpKind::kMark) {
        st = f.remove ? d.unmark(e.at, f.end - e.at, f.name, f.value) : d.mark(e.at, f.end - e.at, f.name, f.value);
      } else if (!e.insert.empty()) {
        st = d.insert(e.at, e.insert);
      } else {
        st = d.remove(e.at, e.remove);
      }
      if (!st.ok()) return Status::InvalidArgument("edit " + std::to_string(i) + ": " + st.message());
    }
    return Status::OK();
  }, after);
}

// The batch for `r` as of its version in `doc`: the first edit's parents are the tips of that
// version, each later one follows the one before.
Result<crdt::OpBatch> build_batch(const EditRequest& r, const crdt::Doc& doc, crdt::Version* after) {
  if (r.has_blocks) {
    if (r.version && !(*r.version == doc.version())) {
      return Status::InvalidArgument("block edits are made as of the document's current version: leave out 'version'");
    }
    return build_on_copy(r, doc, after);
  }
  auto parents = doc.frontier_of(r.version ? *r.version : doc.version());
  if (!parents.ok()) return parents.status();
  // As of the current version the positions are checked here, in the request's terms; as of an
  // older one the document checks them (see api_failure).
  if (!r.version || *r.version == doc.version()) {
    uint64_t len = doc.length();
    for (size_t i = 0; i < r.edits.size(); ++i) {
      const auto& e = r.edits[i];
      const std::string where = "edit " + std::to_string(i);
      const std::string text = " the text (" + std::to_string(len) + " characters" + (i ? " after the edits before it)" : ")");
      if (is_format(e)) {
        if (e.format.end > len) {
          return Status::InvalidArgument(where + ": marking up to " + std::to_string(e.format.end) + " goes past the end of" + text);
        }
        continue;
      }
      if (!e.insert.empty() && e.at > len) {
        return Status::InvalidArgument(where + ": 'at' is " + std::to_string(e.at) + ", past the end of" + text);
      }
      if (e.insert.empty() && uint64_t{e.at} + e.remove > len) {
        return Status::InvalidArgument(where + ": deleting " + std::to_string(e.remove) + " at " + std::to_string(e.at) +
                                       " goes past the end of" + text);
      }
      len = e.insert.empty() ? len - e.remove : len + crdt::utf8::count_code_points(e.insert);
    }
  }
  crdt::OpBatch b;
  uint32_t seq = doc.version().next(r.agent);
  std::vector<crdt::OpId> prev = std::move(*parents);
  for (const auto& e : r.edits) {
    crdt::OpRun run;
    run.agent = r.agent;
    run.seq = seq;
    run.parents = std::move(prev);
    run.pos = e.at;
    if (is_format(e)) {
      run.kind = e.format_kind;
      run.len = 1;
      run.format = e.format;
    } else if (!e.insert.empty()) {
      run.kind = crdt::OpKind::kInsert;
      run.len = static_cast<uint32_t>(crdt::utf8::count_code_points(e.insert));
      run.content = e.insert;
    } else {
      run.kind = crdt::OpKind::kDeleteForward;
      run.len = e.remove;
    }
    if (uint64_t{seq} + run.len > UINT32_MAX) return Status::ResourceExhausted("agent '" + r.agent + "' has too many operations");
    seq += run.len;
    prev = {{r.agent, seq - 1}};
    b.runs.push_back(std::move(run));
  }
  TANDEM_RETURN_IF_ERROR(crdt::Doc::ValidateBatch(b));
  *after = doc.version();
  after->advance(r.agent, seq);
  return b;
}

// The reply to an edit that became durable: the document and the version it is at.
json edited(const std::string& id, const crdt::Version& after) {
  return {{"doc", id}, {"version", version_json(after)}, {"events", after.total()}};
}

// Whether the caller may write as `agent` (a token's subject writes as itself or "<subject>/...");
// replies 403 when not.
bool may_write_as(const Caller& caller, const std::string& agent, const std::function<void(ApiResponse)>& reply) {
  if (caller.open || sync::AgentBelongsTo(agent, caller.token.subject)) return true;
  reply(api_error(403, "forbidden", "agent '" + agent + "' is not '" + caller.token.subject + "' or '" + caller.token.subject +
                                        "/...'"));
  return false;
}

// Who an import or a restore writes as: `agent`, or with a token and no agent its subject;
// checked, or a reply saying why not (`required`: what the 400 says when there is none).
std::optional<std::string> writing_agent(const Caller& caller, std::string agent, const char* required,
                                         const std::function<void(ApiResponse)>& reply) {
  if (agent.empty() && !caller.open) agent = caller.token.subject;
  if (agent.empty()) {
    reply(api_error(400, "bad_request", std::string(required) + " is an edit by that agent"));
    return std::nullopt;
  }
  if (auto st = crdt::Doc::ValidateAgent(agent); !st.ok()) {
    reply(api_error(400, "bad_request", "agent: " + st.message()));
    return std::nullopt;
  }
  if (!may_write_as(caller, agent, reply)) return std::nullopt;
  return agent;
}

// The document's room (with a pending_joins count, room.h), or a reply that the server is stopping.
std::shared_ptr<Room> room_or_reply(Server::Impl& srv, const std::string& id, const std::function<void(ApiResponse)>& reply) {
  auto room = srv.room(id);
  if (!room) reply(api_error(503, "unavailable", "server is shutting down"));
  return room;
}

// ---- History reads: /history, /blame, /diff (built from the log, on `blocking`) ----------------

enum class HistoryRead { kSessions, kBlame, kDiff };

// A store's failure to read, as the answer: 404 for no such document, 500 otherwise.
ApiResponse read_failure(const Status& st) {
  return st.code() == Status::Code::kNotFound ? api_error(404, "not_found", st.message())
                                              : api_error(500, "store_failed", st.message());
}

// A point the caller gave that history_point refused: 409 version_unknown (as for an edit's
// version the server does not hold) for a name no version has, 400 otherwise.
ApiResponse bad_point(const Status& st) {
  return st.code() == Status::Code::kNotFound ? api_error(409, "version_unknown", st.message())
                                              : api_error(400, "bad_request", st.message());
}

// What the history reads work from: the document's history (cached) and its named versions.
struct Past {
  std::shared_ptr<const store::LoggedHistory> h;
  std::vector<store::NamedVersion> versions;
  // A point the caller gave (history_point), in the history's numbering.
  Status point(const char* name, const std::string& text, uint64_t* out) const {
    return store::history_point(*h, versions, name, text, out);
  }
};

Result<Past> read_past(Server::Impl& srv, const std::string& id) {
  auto cached = srv.history_cache.get(*srv.store, id);
  if (!cached.ok()) return cached.status();
  auto versions = srv.store->versions(id);
  if (!versions.ok()) return versions.status();
  return Past{std::move(*cached), std::move(*versions)};
}

void history_read(Server::Impl& srv, HistoryRead what, const std::string& id, const std::string& target,
                  const std::function<void(ApiResponse)>& reply) {
  auto past = read_past(srv, id);
  if (!past.ok()) {
    reply(read_failure(past.status()));
    return;
  }
  const std::shared_ptr<const store::LoggedHistory> h = past->h;
  Status why;
  auto point = [&](const char* name, uint64_t dflt, uint64_t* out) {
    const std::string text = query_param(target, name);
    if (text.empty()) {
      *out = dflt;
      return true;
    }
    why = past->point(name, text, out);
    return why.ok();
  };
  const uint64_t end = h->history.events();
  if (what == HistoryRead::kBlame) {
    uint64_t at = end;
    if (!query_param(target, "at").empty() && !query_param(target, "until").empty()) {
      reply(api_error(400, "bad_request", "give 'at' or 'until', not both"));
      return;
    }
    if (!point("at", end, &at) || !point("until", at, &at)) {
      reply(bad_point(why));
      return;
    }
    json out = store::blame_json(*h, at);
    out["doc"] = id;
    reply(ok(out));
    return;
  }
  if (what == HistoryRead::kDiff) {
    uint64_t from = 0, to = end;
    if (!point("from", 0, &from) || !point("to", end, &to)) {
      reply(bad_point(why));
      return;
    }
    json out = store::diff_json(*h, from, to);
    out["doc"] = id;
    reply(ok(out));
    return;
  }
  // Sessions, newest first, a page at a time.
  std::string bad;
  auto number = [&](const char* name, uint64_t dflt, uint64_t lo, uint64_t hi, uint64_t* out) {
    const std::string text = query_param(target, name);
    if (text.empty()) {
      *out = dflt;
      return true;
    }
    if (text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos || std::stoull(text) < lo ||
        std::stoull(text) > hi) {
      bad = "'";
      bad.append(name).append("' is a whole number from ").append(std::to_string(lo)).append(" to ").append(std::to_string(hi));
      return false;
    }
    *out = std::stoull(text);
    return true;
  };
  uint64_t limit = 0, offset = 0, gap_s = 0;
  if (!number("limit", 50, 1, 500, &limit) || !number("offset", 0, 0, UINT64_MAX, &offset) ||
      !number("gap", 300, 1, 86400 * 365, &gap_s)) {
    reply(api_error(400, "bad_request", bad));
    return;
  }
  json out = store::sessions_with_versions(*h, past->versions, static_cast<int64_t>(gap_s) * 1000, limit, offset);
  out["doc"] = id;
  reply(ok(out));
}

// Makes the document's content `want` (text, blocks and marks) as one edit by `agent` on its
// current version, which merges with whatever others type meanwhile (an import, a restore), and
// answers {doc, version, events, changed} once durable; changed is false (and nothing is logged)
// when the document already was `want`.
void make_content(Server::Impl& srv, const std::string& id, const std::string& agent, render::RichText want,
                  const std::function<void(ApiResponse)>& reply) {
  auto room = room_or_reply(srv, id, reply);
  if (!room) return;
  auto after = std::make_shared<crdt::Version>();
  auto make_error = std::make_shared<Status>();
  auto unchanged = std::make_shared<bool>(false);
  auto make = [agent, want = std::move(want), after, make_error, unchanged](const crdt::Doc& doc) -> Result<crdt::OpBatch> {
    auto b = edit_on_copy(doc, agent, [&want](crdt::Doc& d) { return render::make_equal(d, want); }, after.get());
    if (!b.ok()) {
      *make_error = b.status();
    } else if (b->runs.empty()) {
      *unchanged = true;
      return Status::FailedPrecondition("the document already is this content");
    }
    return b;
  };
  room->api_edit(std::move(make), [id, after, make_error, unchanged, reply = once(reply)](uint16_t code, const std::string& message) {
    if (code != 0 && !*unchanged) {
      reply(api_failure(code, message, *make_error));
      return;
    }
    json body = edited(id, *after);
    body["changed"] = !*unchanged;
    reply(ok(std::move(body)));
  });
}

// POST /versions {"name", "agent"?, "at"?}: names the point `at` (a point as the history reads
// take it; default: everything logged now) and answers 201 with the version once durable.
void save_version(Server::Impl& srv, boost::asio::any_io_executor blocking, const Caller& caller, const std::string& id,
                  const std::string& text, const std::function<void(ApiResponse)>& reply) {
  const json body = json::parse(text, nullptr, false);
  if (!body.is_object() || !body.contains("name") || !body["name"].is_string() ||
      (body.contains("agent") && !body["agent"].is_string()) ||
      (body.contains("at") && !body["at"].is_string() && !body["at"].is_number_unsigned())) {
    reply(api_error(400, "bad_request", "the body is {\"name\": NAME, \"agent\": WHO (optional), \"at\": POINT (optional: now)}"));
    return;
  }
  const std::string name = body["name"];
  if (Status st = store::check_version_name(name); !st.ok()) {
    reply(api_error(400, "bad_request", st.message()));
    return;
  }
  std::string agent = body.value("agent", "");
  if (body.contains("agent")) {
    if (auto st = crdt::Doc::ValidateAgent(agent); !st.ok()) {
      reply(api_error(400, "bad_request", "agent: " + st.message()));
      return;
    }
    if (!may_write_as(caller, agent, reply)) return;
  } else if (!caller.open) {
    agent = caller.token.subject;
  }
  std::string at;
  if (body.contains("at")) at = body["at"].is_string() ? body["at"].get<std::string>() : std::to_string(body["at"].get<uint64_t>());
  boost::asio::post(blocking, [&srv, blocking, id, name, agent, at, reply] {
    Result<uint64_t> events = srv.store->logged_events(id);
    if (events.ok() && !at.empty()) {
      auto past = read_past(srv, id);
      uint64_t point = 0;
      if (!past.ok()) {
        events = past.status();
      } else if (Status st = past->point("at", at, &point); !st.ok()) {
        reply(bad_point(st));
        return;
      } else {
        events = store::logged_of(*past->h, point);
      }
    }
    if (!events.ok()) {
      reply(read_failure(events.status()));
      return;
    }
    srv.store->put_version(id, {name, *events, 0, agent}, [&srv, blocking, id, name, reply](Status st) {
      if (st.code() == Status::Code::kAlreadyExists) {
        reply(api_error(409, "name_taken", st.message()));
      } else if (!st.ok()) {
        reply(st.code() == Status::Code::kOutOfRange ? api_error(400, "bad_request", st.message()) : read_failure(st));
      } else {
        // Answered as stored (with the store's time), read off the store's thread.
        boost::asio::post(blocking, [&srv, id, name, reply] {
          auto all = srv.store->versions(id);
          if (!all.ok()) {
            reply(read_failure(all.status()));
            return;
          }
          for (const auto& x : *all) {
            if (x.name != name) continue;
            json out = store::version_json(x);
            out["doc"] = id;
            reply({201, out.dump()});
            return;
          }
          reply(api_error(404, "not_found", "the document was deleted"));
        });
      }
    });
  });
}

}  // namespace

bool valid_doc_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

std::string query_param(std::string_view target, std::string_view key) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view kv = rest.substr(0, amp);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == key) {
      // Percent-decoded, '+' as a space (as browsers' URLSearchParams write it); a '%' not
      // followed by two hex digits stays as it is.
      const std::string_view v = kv.substr(eq + 1);
      std::string out;
      out.reserve(v.size());
      auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) ? (std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c | 0x20) - 'a' + 10) : -1; };
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '+') {
          out.push_back(' ');
        } else if (v[i] == '%' && i + 2 < v.size() && hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
          out.push_back(static_cast<char>(hex(v[i + 1]) * 16 + hex(v[i + 2])));
          i += 2;
        } else {
          out.push_back(v[i]);
        }
      }
      return out;
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return {};
}

ApiResponse api_error(unsigned status, std::string_view code, std::string_view message) {
  // A message may quote what the client sent, which need not be UTF-8.
  return {status, json{{"error", {{"code", code}, {"message", message}}}}.dump(-1, ' ', false, json::error_handler_t::replace)};
}

bool is_api_path(std::string_view path) { return path.rfind("/api/", 0) == 0; }

void handle_api(Server::Impl& srv, boost::asio::any_io_executor blocking, ApiRequest req,
                std::function<void(ApiResponse)> reply) {
  const std::string path = req.target.substr(0, req.target.find('?'));
  Caller caller;
  if (srv.auth_on()) {
    auto t = srv.authorize(req.token);
    if (!t.ok()) {
      reply(api_error(401, "unauthorized", t.status().message()));
      return;
    }
    caller.open = false;
    caller.token = std::move(*t);
  }
  if (path == "/api/docs") {
    if (req.method != "GET") {
      reply(api_error(405, "method_not_allowed", "GET /api/docs lists documents"));
      return;
    }
    boost::asio::post(blocking, [&srv, caller, reply] { list_docs(srv, caller, reply); });
    return;
  }
  std::string id = path.rfind("/api/docs/", 0) == 0 ? path.substr(10) : std::string();
  auto ends_with = [&](std::string_view tail) { return id.size() > tail.size() && id.compare(id.size() - tail.size(), tail.size(), tail) == 0; };
  const bool edits = ends_with("/edits"), import = ends_with("/import"), restore = ends_with("/restore"),
             versions = ends_with("/versions");
  if (edits) id.resize(id.size() - 6);
  if (import) id.resize(id.size() - 7);
  if (restore) id.resize(id.size() - 8);
  if (versions) id.resize(id.size() - 9);
  std::optional<HistoryRead> history;
  for (const auto& [tail, what] : {std::pair{std::string_view("/history"), HistoryRead::kSessions},
                                   std::pair{std::string_view("/blame"), HistoryRead::kBlame},
                                   std::pair{std::string_view("/diff"), HistoryRead::kDiff}}) {
    if (!edits && !import && !restore && !versions && !history && ends_with(tail)) {
      id.resize(id.size() - tail.size());
      history = what;
    }
  }
  if (!valid_doc_id(id)) {
    reply(api_error(404, "not_found",
                    "no such endpoint: /api/docs, /api/docs/<doc-id>, /api/docs/<doc-id>/edits, /api/docs/<doc-id>/import, "
                    "/api/docs/<doc-id>/restore, /api/docs/<doc-id>/versions, "
                    "/api/docs/<doc-id>/history, /api/docs/<doc-id>/blame and /api/docs/<doc-id>/diff "
                    "(doc ids match [A-Za-z0-9._-]{1,128})"));
    return;
  }
  const bool write = req.method != "GET";
  if (write ? !caller.may_write(id) : !caller.may_read(id)) {
    reply(api_error(403, "forbidden",
                    "the token does not grant " + std::string(write ? "writing" : "reading") + " document '" + id + "'"));
    return;
  }
  if (srv.stopping) {
    reply(api_error(503, "unavailable", "server is shutting down"));
    return;
  }

  if (history) {
    if (req.method != "GET") {
      reply(api_error(405, "method_not_allowed", "GET reads a document's history, blame and diffs"));
      return;
    }
    boost::asio::post(blocking, [&srv, what = *history, id, target = req.target, reply] { history_read(srv, what, id, target, reply); });
    return;
  }

  if (versions) {
    if (req.method == "GET") {
      boost::asio::post(blocking, [&srv, id, reply] {
        auto v = srv.store->versions(id);
        if (!v.ok()) {
          reply(read_failure(v.status()));
          return;
        }
        json list = json::array();
        for (const auto& x : *v) list.push_back(store::version_json(x));
        reply(ok({{"doc", id}, {"versions", std::move(list)}}));
      });
    } else if (req.method == "POST") {
      save_version(srv, blocking, caller, id, req.body, reply);
    } else {
      reply(api_error(405, "method_not_allowed", "GET lists a document's named versions, POST {\"name\"} names one"));
    }
    return;
  }

  if (edits) {
    if (req.method != "POST") {
      reply(api_error(405, "method_not_allowed", "POST /api/docs/<doc-id>/edits applies edits"));
      return;
    }
    auto r = parse_edit(req.body);
    if (!r.ok()) {
      const bool big = r.status().code() == Status::Code::kResourceExhausted;
      reply(api_error(big ? 413 : 400, big ? "too_large" : "bad_request", r.status().message()));
      return;
    }
    if (!may_write_as(caller, r->agent, reply)) return;
    auto room = room_or_reply(srv, id, reply);
    if (!room) return;
    auto after = std::make_shared<crdt::Version>();
    auto make_error = std::make_shared<Status>();
    auto make = [edit = std::move(*r), after, make_error](const crdt::Doc& doc) -> Result<crdt::OpBatch> {
      auto b = build_batch(edit, doc, after.get());
      if (!b.ok()) *make_error = b.status();
      return b;
    };
    room->api_edit(std::move(make), [id, after, make_error, reply = once(reply)](uint16_t code, const std::string& message) {
      if (code != 0) {
        reply(api_failure(code, message, *make_error));
      } else {
        reply(ok(edited(id, *after)));
      }
    });
    return;
  }

  if (import) {
    if (req.method != "POST") {
      reply(api_error(405, "method_not_allowed", "POST /api/docs/<doc-id>/import?agent=NAME replaces the document's content"));
      return;
    }
    const std::string type = req.content_type.substr(0, req.content_type.find(';'));
    if (type != "text/markdown") {
      reply(api_error(415, "unsupported_media_type",
                      "an import is Markdown: send it with Content-Type: text/markdown (not '" + type.substr(0, 64) + "')"));
      return;
    }
    const auto agent = writing_agent(caller, query_param(req.target, "agent"), "'agent' (?agent=NAME) is required: the import", reply);
    if (!agent) return;
    auto want = render::from_markdown(req.body);
    if (!want.ok()) {
      reply(api_error(400, "bad_request", want.status().message()));
      return;
    }
    make_content(srv, id, *agent, std::move(*want), reply);
    return;
  }

  if (restore) {
    if (req.method != "POST") {
      reply(api_error(405, "method_not_allowed", "POST /api/docs/<doc-id>/restore {\"agent\", \"to\"} restores a version"));
      return;
    }
    const json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("to") || (body.contains("agent") && !body["agent"].is_string()) ||
        !(body["to"].is_number_unsigned() || body["to"].is_string())) {
      reply(api_error(400, "bad_request", "the body is {\"agent\": NAME, \"to\": N or \"TIME\" or \"VERSION\"}: the version "
                                          "to restore, as a number of logged events, a UTC time or a version's name"));
      return;
    }
    const auto agent = writing_agent(caller, body.value("agent", ""), "'agent' is required: the restore", reply);
    if (!agent) return;
    const json& to = body["to"];
    const std::string to_text = to.is_string() ? to.get<std::string>() : std::to_string(to.get<uint64_t>());
    boost::asio::post(blocking, [&srv, id, agent = *agent, to_text, reply] {
      // The point, as the history reads take it, then its log prefix.
      auto past = read_past(srv, id);
      if (!past.ok()) {
        reply(read_failure(past.status()));
        return;
      }
      uint64_t point = 0;
      if (Status st = past->point("to", to_text, &point); !st.ok()) {
        reply(bad_point(st));
        return;
      }
      auto then = store::replay(*srv.store, id, store::logged_of(*past->h, point), INT64_MAX);
      if (!then.ok()) {
        const auto c = then.status().code();
        reply(c == Status::Code::kNotFound    ? api_error(404, "not_found", then.status().message())
              : c == Status::Code::kOutOfRange ? api_error(400, "bad_request", "'to' is past the end: " + then.status().message())
                                               : api_error(500, "store_failed", then.status().message()));
        return;
      }
      make_content(srv, id, agent, render::read(*then), reply);
    });
    return;
  }

  if (req.method == "DELETE") {
    auto room = room_or_reply(srv, id, reply);
    if (!room) return;
    room->api_delete([&srv, id, reply] {
      auto done = [&srv, id, reply](Status st) {
        srv.history_cache.forget(id);
        if (st.ok()) {
          reply(ok({{"deleted", id}}));
        } else if (st.code() == Status::Code::kNotFound) {
          reply(api_error(404, "not_found", "no document '" + id + "'"));
        } else {
          reply(api_error(500, "store_failed", st.message()));
        }
      };
      srv.store->remove_document(id, std::move(done));
    });
    return;
  }
  if (req.method != "GET") {
    reply(api_error(405, "method_not_allowed", "GET reads a document, DELETE deletes it, POST .../edits edits it"));
    return;
  }
  const std::string at_text = query_param(req.target, "at"), until_text = query_param(req.target, "until");
  const std::string format = query_param(req.target, "format");
  if (!format.empty() && format != "markdown" && format != "html") {
    reply(api_error(400, "bad_request", "'format' is markdown or html (the text, spans and blocks are always there)"));
    return;
  }
  if (!at_text.empty() || !until_text.empty()) {
    uint64_t at = UINT64_MAX;
    int64_t until = INT64_MAX;
    if (!at_text.empty()) {
      if (at_text.size() > 18 || at_text.find_first_not_of("0123456789") != std::string::npos) {
        reply(api_error(400, "bad_request", "'at' is a number of logged events"));
        return;
      }
      at = std::stoull(at_text);
    }
    if (!until_text.empty() && !parse_time(store::colons_decoded(until_text), &until)) {
      reply(api_error(400, "bad_request", "'until' is ms since 1970 or an ISO 8601 UTC time like 2026-11-29T19:30:00Z"));
      return;
    }
    boost::asio::post(blocking, [&srv, id, at, until, format, reply] {
      auto d = store::replay(*srv.store, id, at, until);
      if (!d.ok()) {
        const auto c = d.status().code();
        if (c == Status::Code::kNotFound) {
          reply(api_error(404, "not_found", d.status().message()));
        } else if (c == Status::Code::kOutOfRange) {  // ?at= past the last event
          reply(api_error(400, "bad_request", "'at' is too large: " + d.status().message()));
        } else {
          reply(api_error(500, "store_failed", d.status().message()));
        }
        return;
      }
      reply(ok(doc_json(id, *d, format)));
    });
    return;
  }
  auto room = room_or_reply(srv, id, reply);
  if (!room) return;
  auto answer = once(std::move(reply));
  room->api_read([id, format, answer](const crdt::Doc& d) { answer(ok(doc_json(id, d, format))); },
                 [answer](uint16_t code, const std::string& message) { answer(api_failure(code, message, Status::OK())); });
}

}  // namespace tandem::net
