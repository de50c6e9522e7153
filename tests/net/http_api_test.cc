// The HTTP API (docs/http-api.md) on a server on loopback, beside real WebSocket editors: edits
// as of a version merge with concurrent typing, reach the editors at once, and are answered only
// once durable; reads now and in the past; deletes close the editors for good; every bad request
// gets a JSON error with its own code.
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "net/auth.h"
#include "support/net_fixtures.h"
#include "support/wrap_store.h"
#include "support/temp_dir.h"

using namespace tandem::testing;
using tandem::crdt::Status;
using json = nlohmann::json;
namespace http = boost::beast::http;

namespace {

json parse(const std::pair<int, std::string>& r) {
  INFO("HTTP " << r.first << ": " << r.second);
  auto j = json::parse(r.second, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

std::string error_code(const std::pair<int, std::string>& r) {
  auto j = parse(r);
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["message"].get<std::string>().size() > 5);
  return j["error"]["code"].get<std::string>();
}

bool eventually(const std::function<bool()>& f, std::chrono::milliseconds limit = 5000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!f()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace

TEST_CASE("http api: an edit as of an old version merges with typing since, reaches editors, waits for durability",
          "[net][http-api]") {
  TempDir dir;
  auto sqlite = tandem::storage::Store::open({dir.file("t.db")});
  REQUIRE(sqlite.ok());
  GateStore gate(**sqlite);
  ServerFixture s({}, &gate);
  auto editor = make_client(s.url("notes"), "editor");
  REQUIRE(editor->insert(0, "hello world").ok());
  REQUIRE(editor->wait_synced(5s));

  // The backend reads the document ...
  auto read = parse(http_get(s.port, "/api/docs/notes"));
  CHECK(read["text"] == "hello world");
  CHECK(read["version"] == json{{"editor", 11}});
  // ... the editor keeps typing ...
  REQUIRE(editor->insert(0, ">> ").ok());
  REQUIRE(editor->insert(14, "!").ok());
  REQUIRE(editor->wait_synced(5s));
  // ... and the backend's edit, made against what it read, lands where it meant it to.
  gate.set_open(false);
  json edit = {{"agent", "backend"},
               {"version", read["version"]},
               {"edits", json::array({{{"at", 6}, {"delete", 5}}, {{"at", 6}, {"insert", "there"}}})}};
  std::pair<int, std::string> answer;
  std::thread poster([&] { answer = http_request(s.port, http::verb::post, "/api/docs/notes/edits", edit.dump()); });
  // Every editor has it at once; the answer waits for the store.
  CHECK(eventually([&] { return editor->text() == ">> hello there!"; }));
  std::this_thread::sleep_for(200ms);
  CHECK(answer.first == 0);  // no answer yet
  CHECK(gate.held() > 0);
  gate.set_open(true);
  poster.join();
  REQUIRE(answer.first == 200);
  auto done = parse(answer);
  CHECK(done["version"] == json{{"backend", 10}, {"editor", 15}});
  auto now = parse(http_get(s.port, "/api/docs/notes"));
  CHECK(now["text"] == ">> hello there!");
  CHECK(now["version"] == done["version"]);
  // Without a version: as the document is now.
  REQUIRE(http_request(s.port, http::verb::post, "/api/docs/notes/edits",
                       R"({"agent":"backend","edits":[{"at":0,"delete":3}]})").first == 200);
  CHECK(eventually([&] { return editor->text() == "hello there!"; }));

  // The past, rebuilt from the log: after 11 events, and before anything was written.
  auto past = parse(http_get(s.port, "/api/docs/notes?at=11"));
  CHECK(past["text"] == "hello world");
  auto before = parse(http_get(s.port, "/api/docs/notes?until=2001-01-01T00:00:00Z"));
  CHECK(before["text"] == "");
  // The list.
  auto list = parse(http_get(s.port, "/api/docs"));
  REQUIRE(list["documents"].size() == 1);
  CHECK(list["documents"][0]["doc"] == "notes");
  CHECK(list["documents"][0]["events"] == 28);
  CHECK(list["documents"][0]["version"] == json{{"backend", 13}, {"editor", 15}});
  CHECK(list["documents"][0]["bytes"].get<uint64_t>() > 0);
}

TEST_CASE("http api: bad requests get JSON errors with their own codes, and change nothing", "[net][http-api]") {
  tandem::net::ServerOptions o;
  o.max_frame_bytes = 4096;
  ServerFixture s(o);
  auto editor = make_client(s.url("doc"), "editor");
  REQUIRE(editor->insert(0, "abc").ok());
  REQUIRE(editor->wait_synced(5s));
  auto post = [&](const std::string& body) { return http_request(s.port, http::verb::post, "/api/docs/doc/edits", body); };

  CHECK(error_code(post("not json")) == "bad_request");
  CHECK(error_code(post(R"({"edits":[{"at":0,"insert":"x"}]})")) == "bad_request");  // no agent
  CHECK(error_code(post(R"({"agent":"b","edits":[]})")) == "bad_request");
  CHECK(error_code(post(R"({"agent":"b","edits":[{"at":0}]})")) == "bad_request");
  CHECK(error_code(post(R"({"agent":"b","edits":[{"at":0,"insert":"x","delete":1}]})")) == "bad_request");
  CHECK(error_code(post("{\"agent\":\"b\",\"edits\":[{\"at\":0,\"insert\":\"\xff\"}]}")) == "bad_request");  // not UTF-8
  CHECK(error_code(post(R"({"agent":"b","edits":[{"at":9,"insert":"x"}]})")) == "bad_edit");  // past the end
  CHECK(error_code(post(R"({"agent":"b","version":{"nobody":4},"edits":[{"at":0,"insert":"x"}]})")) ==
        "version_unknown");
  CHECK(error_code(post(R"({"agent":"editor","edits":[{"at":0,"insert":"x"}]})")) == "agent_in_use");
  auto big = post(R"({"agent":"b","edits":[{"at":0,"insert":")" + std::string(5000, 'x') + R"("}]})");
  CHECK(big.first == 413);
  CHECK(error_code(big) == "too_large");
  CHECK(error_code(http_get(s.port, "/api/docs/never-written")) == "not_found");
  CHECK(error_code(http_get(s.port, "/api/docs/bad%20id")) == "not_found");
  CHECK(error_code(http_request(s.port, http::verb::put, "/api/docs/doc", "")) == "method_not_allowed");
  CHECK(error_code(http_get(s.port, "/api/docs/doc?at=x")) == "bad_request");
  CHECK(error_code(http_get(s.port, "/api/docs/doc?until=yesterday")) == "bad_request");
  CHECK(error_code(http_get(s.port, "/api/docs/doc?at=999")) == "bad_request");
  // The memory store rebuilds history too.
  CHECK(parse(http_get(s.port, "/api/docs/doc?at=1"))["events"] == 1);
  std::this_thread::sleep_for(100ms);
  CHECK(editor->text() == "abc");
  CHECK(parse(http_get(s.port, "/api/docs/doc"))["text"] == "abc");
}

// Each bad request says what is wrong in the API's own terms (fields, edits, versions), not the
// parser's or the engine's.
TEST_CASE("http api: error messages name the field, the edit and the limit", "[net][http-api]") {
  TempDir dir;
  auto sqlite = tandem::storage::Store::open({dir.file("t.db")});
  REQUIRE(sqlite.ok());
  ServerFixture s({}, sqlite->get());
  auto editor = make_client(s.url("doc"), "editor");
  REQUIRE(editor->insert(0, "abc").ok());
  REQUIRE(editor->wait_synced(5s));
  auto post = [&](const std::string& body) { return http_request(s.port, http::verb::post, "/api/docs/doc/edits", body); };
  auto says = [&](const std::pair<int, std::string>& r, int status, const std::string& code, const std::string& message) {
    INFO("HTTP " << r.first << ": " << r.second);
    CHECK(r.first == status);
    CHECK(error_code(r) == code);
    CHECK(parse(r)["error"]["message"].get<std::string>() == message);
  };
  says(post(R"({"agent":"b","edits":[{"at":"0","insert":"x"}]})"), 400, "bad_request",
       "edit 0: 'at' must be a position in code points, a whole number, not a string");
  says(post(R"({"agent":"b","edits":[{"at":-1,"insert":"x"}]})"), 400, "bad_request",
       "edit 0: 'at' must be a position in code points, a whole number, not a negative number");
  says(post(R"({"agent":"b","edits":[{"insert":"x"}]})"), 400, "bad_request",
       "edit 0: 'at' (a position in code points) is required");
  says(post(R"({"agent":7,"edits":[{"at":0,"insert":"x"}]})"), 400, "bad_request", "'agent' must be a string, not a number too large");
  says(post(R"({"agent":"b","edits":{"at":0}})"), 400, "bad_request", "'edits' must be a non-empty array, not an object");
  says(post(R"({"agent":"b","edits":[{"at":0,"delete":"2"}]})"), 400, "bad_request",
       "edit 0: 'delete' must be a count of characters, a whole number, not a string");
  says(post(R"([1, 2])"), 400, "bad_request", "the body must be a JSON object, not array");
  auto truncated = post(R"({"agent":"b","edits":[{"at":0,)");
  CHECK(truncated.first == 400);
  CHECK_THAT(parse(truncated)["error"]["message"].get<std::string>(), Catch::StartsWith("the body is not valid JSON: "));
  CHECK_THAT(parse(truncated)["error"]["message"].get<std::string>(), !Catch::Contains("json.exception"));
  // Positions past the end, as of now: which edit, and how long the text was.
  says(post(R"({"agent":"b","edits":[{"at":2,"delete":5}]})"), 422, "bad_edit",
       "edit 0: deleting 5 at 2 goes past the end of the text (3 characters)");
  says(post(R"({"agent":"b","edits":[{"at":3,"insert":"xy"},{"at":6,"insert":"z"}]})"), 422, "bad_edit",
       "edit 1: 'at' is 6, past the end of the text (5 characters after the edits before it)");
  // ... and as of an older version (the text was "a" then: the editor typed one character at a time).
  says(post(R"({"agent":"b","version":{"editor":1},"edits":[{"at":0,"delete":2}]})"), 422, "bad_edit",
       "an edit goes past the end of the text as it was at the given version");
  // Reading past the last event.
  says(http_get(s.port, "/api/docs/doc?at=99999"), 400, "bad_request", "'at' is too large: 'doc' has only 3 operations, not 99999");
  CHECK(parse(http_get(s.port, "/api/docs/doc?at=3"))["text"] == "abc");
  std::this_thread::sleep_for(100ms);
  CHECK(editor->text() == "abc");
}

TEST_CASE("http api: the same tokens as the WebSocket decide who may list, read, write and delete", "[net][http-api][auth]") {
  tandem::net::ServerOptions o;
  o.auth_secret = "k";
  ServerFixture s(o);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string writer = tandem::net::sign_token({"app", {"notes-*"}, true, now + 600}, "k");
  const std::string reader = tandem::net::sign_token({"viewer", {"notes-1"}, false, now + 600}, "k");
  const std::string expired = tandem::net::sign_token({"app", {"*"}, true, now - 1}, "k");
  auto post = [&](const std::string& doc, const std::string& agent, const std::string& token) {
    return http_request(s.port, http::verb::post, "/api/docs/" + doc + "/edits",
                        R"({"agent":")" + agent + R"(","edits":[{"at":0,"insert":"x"}]})", token);
  };
  CHECK(error_code(post("notes-1", "app", "")) == "unauthorized");
  CHECK(error_code(post("notes-1", "app", expired)) == "unauthorized");
  CHECK(error_code(post("notes-1", "app", "garbage.token")) == "unauthorized");
  CHECK(post("notes-1", "app/backend", writer).first == 200);
  CHECK(post("notes-2", "app", writer).first == 200);
  CHECK(error_code(post("notes-1", "mallory", writer)) == "forbidden");     // not the subject's agent
  CHECK(error_code(post("secret", "app", writer)) == "forbidden");          // not in the pattern
  CHECK(error_code(post("notes-1", "viewer", reader)) == "forbidden");      // read-only
  // A read-only token reads history but does not restore.
  CHECK(http_request(s.port, http::verb::get, "/api/docs/notes-1/blame", "", reader).first == 200);
  CHECK(error_code(http_request(s.port, http::verb::post, "/api/docs/notes-1/restore", R"({"agent":"viewer","to":0})",
                                reader)) == "forbidden");
  // Nor names a version; a writer's name is saved as its subject's.
  CHECK(error_code(http_request(s.port, http::verb::post, "/api/docs/notes-1/versions", R"({"name":"v1"})", reader)) ==
        "forbidden");
  auto saved = http_request(s.port, http::verb::post, "/api/docs/notes-1/versions", R"({"name":"v1"})", writer);
  CHECK(saved.first == 201);
  CHECK(parse(saved)["agent"] == "app");
  CHECK(error_code(http_request(s.port, http::verb::post, "/api/docs/notes-1/versions", R"({"name":"v2","agent":"mallory"})",
                                writer)) == "forbidden");
  CHECK(parse(http_request(s.port, http::verb::get, "/api/docs/notes-1/versions", "", reader))["versions"].size() == 1);
  CHECK(http_request(s.port, http::verb::get, "/api/docs/notes-1", "", reader).first == 200);
  CHECK(error_code(http_request(s.port, http::verb::get, "/api/docs/notes-2", "", reader)) == "forbidden");
  CHECK(error_code(http_request(s.port, http::verb::delete_, "/api/docs/notes-1", "", reader)) == "forbidden");
  // ?token= works as on the WebSocket; a list shows only what the token grants.
  auto all = parse(http_get(s.port, "/api/docs?token=" + writer));
  CHECK(all["documents"].size() == 2);
  auto mine = parse(http_request(s.port, http::verb::get, "/api/docs", "", reader));
  REQUIRE(mine["documents"].size() == 1);
  CHECK(mine["documents"][0]["doc"] == "notes-1");
}

TEST_CASE("http api: deleting a document closes its editors for good and removes it from the store", "[net][http-api]") {
  TempDir dir;
  auto sqlite = tandem::storage::Store::open({dir.file("t.db")});
  REQUIRE(sqlite.ok());
  ServerFixture s({}, sqlite->get());
  auto editor = make_client(s.url("gone"), "editor");
  auto other = make_client(s.url("kept"), "other");
  std::atomic<uint16_t> error{0};
  editor->on_error([&](uint16_t code, const std::string&) { error = code; });
  REQUIRE(editor->insert(0, "draft").ok());
  REQUIRE(other->insert(0, "keep me").ok());
  REQUIRE(editor->wait_synced(5s));
  REQUIRE(other->wait_synced(5s));
  auto del = http_request(s.port, http::verb::delete_, "/api/docs/gone", "");
  REQUIRE(del.first == 200);
  CHECK(parse(del)["deleted"] == "gone");
  CHECK(eventually([&] { return error == tandem::proto::kDeleted; }));
  CHECK(eventually([&] { return editor->state() == tandem::net::ClientState::kOffline; }));
  std::this_thread::sleep_for(500ms);  // longer than its backoff: it does not come back
  CHECK(editor->state() == tandem::net::ClientState::kOffline);
  CHECK(error_code(http_get(s.port, "/api/docs/gone")) == "not_found");
  CHECK(error_code(http_request(s.port, http::verb::delete_, "/api/docs/gone", "")) == "not_found");
  auto list = parse(http_get(s.port, "/api/docs"));
  REQUIRE(list["documents"].size() == 1);
  CHECK(list["documents"][0]["doc"] == "kept");
  CHECK((*sqlite)->logged_events("gone").status().code() == Status::Code::kNotFound);
  CHECK(other->state() == tandem::net::ClientState::kConnected);
  CHECK(parse(http_get(s.port, "/api/docs/kept"))["text"] == "keep me");
}

// Rich text through the HTTP API (docs/http-api.md): marks and blocks in, spans and blocks out,
// editors of protocol 2 receive them, and a client of protocol 1 is closed with 4426 instead of
// being sent what it cannot read, then refused at HELLO.
TEST_CASE("http api: marks and blocks in, spans and blocks out; protocol-1 clients refused", "[net][http-api][rich]") {
  namespace proto = tandem::proto;
  ServerFixture s;
  auto editor = make_client(s.url("doc"), "editor");
  REQUIRE(editor->insert(0, "Hello world\nsecond line").ok());
  REQUIRE(editor->wait_synced(5s));
  auto hello_v1 = [](const std::string& agent) {
    proto::Hello h;
    h.version = 1;
    h.agents = {agent};
    return proto::encode(h);
  };
  RawWs old;
  REQUIRE(old.connect(s.port, "/ws/doc") == 101);
  old.send(hello_v1("old"));
  {
    auto f = old.read(5s);
    REQUIRE_FALSE(f.closed);
    auto m = proto::decode(f.data);
    REQUIRE(m.ok());
    REQUIRE(std::holds_alternative<proto::Welcome>(*m));
    CHECK(std::get<proto::Welcome>(*m).version == 1);
  }
  auto post = [&](const std::string& body) { return http_request(s.port, http::verb::post, "/api/docs/doc/edits", body); };
  auto done = post(R"({"agent":"api","edits":[
      {"at":0,"len":5,"mark":"bold","value":true},
      {"at":0,"len":11,"mark":"comment","value":{"id":"c1"}},
      {"at":6,"len":5,"mark":"link","value":"https://x.example/"},
      {"at":15,"block":"heading","attrs":{"level":2}}]})");
  INFO(done.second);
  REQUIRE(done.first == 200);
  // The old client is closed rather than sent formatting.
  auto [error, close] = old.read_until_closed(5s);
  CHECK(error == proto::kUnsupportedVersion);
  CHECK(close == proto::kUnsupportedVersion);
  RawWs late;
  REQUIRE(late.connect(s.port, "/ws/doc") == 101);
  late.send(hello_v1("late"));
  CHECK(late.read_until_closed(5s).first == proto::kUnsupportedVersion);

  auto doc = parse(http_get(s.port, "/api/docs/doc"));
  CHECK(doc["text"] == "Hello world\nsecond line");
  CHECK(doc["spans"] == json::parse(R"([
      {"from":0,"to":5,"marks":{"bold":true,"comment":["c1"]}},
      {"from":5,"to":6,"marks":{"comment":["c1"]}},
      {"from":6,"to":11,"marks":{"comment":["c1"],"link":"https://x.example/"}}])"));
  CHECK(doc["blocks"] == json::parse(R"([{"at":12,"type":"heading","attrs":{"level":2}}])"));
  CHECK(parse(http_get(s.port, "/api/docs/doc?format=markdown"))["markdown"] ==
        "**Hello** [world](https://x.example/)\n\n## second line\n");
  CHECK(parse(http_get(s.port, "/api/docs/doc?format=html"))["html"] ==
        "<p><span data-comment=\"c1\"><strong>Hello</strong> <a href=\"https://x.example/\" rel=\"noopener noreferrer "
        "nofollow\">world</a></span></p>\n<h2>second line</h2>\n");
  CHECK(error_code(http_get(s.port, "/api/docs/doc?format=pdf")) == "bad_request");
  // The editor (protocol 2) has them too, and its typing at the bold's end is bold.
  REQUIRE(eventually([&] { return editor->text() == "Hello world\nsecond line"; }));
  REQUIRE(editor->insert(5, "!").ok());
  REQUIRE(editor->wait_synced(5s));
  REQUIRE(eventually([&] { return parse(http_get(s.port, "/api/docs/doc"))["text"] == "Hello! world\nsecond line"; }));
  CHECK(parse(http_get(s.port, "/api/docs/doc"))["spans"][0]["to"] == 6);
  // Removing: false, and a comment's remove.
  REQUIRE(post(R"({"agent":"api","edits":[{"at":0,"len":6,"mark":"bold","value":false},
      {"at":0,"len":12,"mark":"comment","value":{"id":"c1","remove":true}}]})").first == 200);
  CHECK(parse(http_get(s.port, "/api/docs/doc"))["spans"] ==
        json::parse(R"([{"from":7,"to":12,"marks":{"link":"https://x.example/"}}])"));

  // Hostile formats: a clear error each, nothing changed.
  const auto events = parse(http_get(s.port, "/api/docs/doc"))["events"];
  auto says = [&](const std::string& body, int status, const std::string& part) {
    auto r = post(body);
    INFO(body << " -> HTTP " << r.first << ": " << r.second);
    CHECK(r.first == status);
    CHECK_THAT(parse(r)["error"]["message"].get<std::string>(), Catch::Contains(part));
  };
  says(R"({"agent":"api","edits":[{"at":0,"len":2,"mark":"blink","value":true}]})", 400, "unknown mark 'blink'");
  says(R"x({"agent":"api","edits":[{"at":0,"len":2,"mark":"link","value":"javascript:alert(1)"}]})x", 400, "scheme 'javascript'");
  says(R"({"agent":"api","edits":[{"at":0,"len":2,"mark":"bold","value":"yes"}]})", 400, "takes true or false");
  says(R"({"agent":"api","edits":[{"at":0,"len":0,"mark":"bold","value":true}]})", 400, "'len' must be 1 or more");
  says(R"({"agent":"api","edits":[{"at":20,"len":9,"mark":"bold","value":true}]})", 422, "goes past the end");
  says(R"({"agent":"api","edits":[{"at":0,"block":"heading","attrs":{"level":9}}]})", 400, "heading level must be 1 to 6");
  says(R"({"agent":"api","edits":[{"at":0,"block":"heading","attrs":{"level":"2"}}]})", 400, "'level' must be a small whole number");
  says(R"({"agent":"api","edits":[{"at":0,"block":"quote","attrs":{"level":2}}]})", 400, "has no attribute 'level'");
  says(R"({"agent":"api","edits":[{"at":0,"block":"table"}]})", 400, "unknown block type 'table'");
  says(R"({"agent":"api","edits":[{"at":99,"block":"quote"}]})", 422, "past the end");
  says(R"({"agent":"api","version":{"editor":3},"edits":[{"at":0,"block":"quote"}]})", 422, "current version");
  CHECK(parse(http_get(s.port, "/api/docs/doc"))["events"] == events);
}

TEST_CASE("http api: a Markdown import replaces the content as one edit that merges with an editor's typing",
          "[net][http-api][rich][markdown]") {
  ServerFixture s;
  auto import = [&](const std::string& doc, const std::string& md, const std::string& query = "?agent=backend",
                    const std::string& type = "text/markdown; charset=utf-8") {
    return http_request(s.port, http::verb::post, "/api/docs/" + doc + "/import" + query, md, "",
                        {{http::field::content_type, type}});
  };
  // A new document.
  auto r = import("plan", "# Plan\n\nFirst *point*.\n\nSecond point.\n\n- a\n- b\n");
  INFO(r.second);
  REQUIRE(r.first == 200);
  CHECK(parse(r)["changed"] == true);
  CHECK(parse(http_get(s.port, "/api/docs/plan?format=markdown"))["markdown"] ==
        "# Plan\n\nFirst *point*.\n\nSecond point.\n\n- a\n- b\n");

  // An editor types in the first paragraph (offline, so that it is concurrent) while the backend
  // imports a version that changes the second: both survive.
  auto editor = make_client(s.url("plan"), "editor");
  REQUIRE(editor->wait_synced(5s));
  editor->stop();
  const auto text = editor->text();
  const uint32_t at = static_cast<uint32_t>(text.find("First")) + 5;
  REQUIRE(editor->insert(at, " and best").ok());
  r = import("plan", "# Plan\n\nFirst *point*.\n\nSecond point, **revised**.\n\n- a\n- b\n");
  REQUIRE(r.first == 200);
  editor->start();
  REQUIRE(editor->wait_synced(5s));
  const std::string want = "# Plan\n\nFirst and best *point*.\n\nSecond point, **revised**.\n\n- a\n- b\n";
  REQUIRE(eventually([&] { return parse(http_get(s.port, "/api/docs/plan?format=markdown"))["markdown"] == want; }));
  REQUIRE(eventually([&] { return editor->text() == parse(http_get(s.port, "/api/docs/plan"))["text"]; }));

  // The same Markdown again: nothing changes.
  const auto events = parse(http_get(s.port, "/api/docs/plan"))["events"];
  r = import("plan", want);
  REQUIRE(r.first == 200);
  CHECK(parse(r)["changed"] == false);
  CHECK(parse(http_get(s.port, "/api/docs/plan"))["events"] == events);

  // Bad requests: a clear error each, nothing changed.
  CHECK(import("plan", "x", "?agent=backend", "application/json").first == 415);
  CHECK(error_code(import("plan", "x", "?agent=backend", "")) == "unsupported_media_type");
  CHECK(error_code(import("plan", "x", "")) == "bad_request");           // no agent
  CHECK(error_code(import("plan", "x", "?agent=")) == "bad_request");
  CHECK(error_code(import("plan", "a\xff", "?agent=backend")) == "bad_request");  // not UTF-8
  CHECK(error_code(import("plan", "x", "?agent=editor")) == "agent_in_use");
  CHECK(error_code(http_request(s.port, http::verb::get, "/api/docs/plan/import", "")) == "method_not_allowed");
  CHECK(parse(http_get(s.port, "/api/docs/plan"))["events"] == events);
  // A script link keeps its text, without the link.
  r = import("other", "[click](javascript:alert(1))\n");
  REQUIRE(r.first == 200);
  CHECK(parse(http_get(s.port, "/api/docs/other"))["text"] == "click");
  CHECK(parse(http_get(s.port, "/api/docs/other"))["spans"].empty());
}

TEST_CASE("http api: history, blame and diff read the log: who wrote what, and when", "[net][http-api][history]") {
  TempDir dir;
  auto sqlite = tandem::storage::Store::open({dir.file("t.db")});
  REQUIRE(sqlite.ok());
  ServerFixture s({}, sqlite->get());
  auto ann = make_client(s.url("notes"), "ann");
  REQUIRE(ann->insert(0, "hello world").ok());  // logged events 0..10
  REQUIRE(ann->wait_synced(5s));
  auto bob = make_client(s.url("notes"), "bob/phone");
  REQUIRE(bob->wait_for(ann->version(), 5s));
  REQUIRE(bob->remove(0, 6).ok());  // "world": 11..16
  REQUIRE(bob->wait_synced(5s));
  REQUIRE(ann->wait_for(bob->version(), 5s));
  REQUIRE(ann->insert(5, "!").ok());  // "world!": 17
  REQUIRE(ann->wait_synced(5s));

  // Blame: each character's author, and when its edit became durable.
  auto who = [](const json& blame) {
    std::string out;
    uint64_t at = 0;
    for (const auto& sp : blame["spans"]) {
      CHECK(sp["from"] == at);
      CHECK(sp["time"].get<std::string>().size() == 24);
      CHECK(sp["time_ms"].get<int64_t>() > 1700000000000);
      at = sp["to"].get<uint64_t>();
      out += std::string(at - sp["from"].get<uint64_t>(), sp["agent"].get<std::string>()[0]);
    }
    CHECK(blame["length"] == at);
    return out;
  };
  auto now = parse(http_get(s.port, "/api/docs/notes/blame"));
  CHECK(now["events"] == 18);
  CHECK(who(now) == "aaaaaa");
  auto then = parse(http_get(s.port, "/api/docs/notes/blame?at=11"));
  CHECK(who(then) == "aaaaaaaaaaa");
  CHECK(parse(http_get(s.port, "/api/docs/notes/blame?until=2001-01-01T00%3A00%3A00Z"))["spans"].empty());

  // Diff: what changed between two points, and who changed it.
  auto d = parse(http_get(s.port, "/api/docs/notes/diff?from=11&to=18"));
  CHECK(d["from"] == 11);
  CHECK(d["to"] == 18);
  CHECK(d["runs"] == json::parse(R"([{"kind":"deleted","text":"hello ","agents":["bob/phone"]},
                                     {"kind":"kept","text":"world","agents":["ann"]},
                                     {"kind":"inserted","text":"!","agents":["ann"]}])"));
  auto all = parse(http_get(s.port, "/api/docs/notes/diff?from=0"));
  CHECK(all["runs"] == json::parse(R"([{"kind":"inserted","text":"world!","agents":["ann"]}])"));
  auto same = parse(http_get(s.port, "/api/docs/notes/diff?from=18&to=18"));
  CHECK(same["runs"] == json::parse(R"([{"kind":"kept","text":"world!","agents":["ann"]}])"));

  // Sessions, newest first, a page at a time: ann's edits close together are one session
  // around bob's.
  auto h = parse(http_get(s.port, "/api/docs/notes/history"));
  CHECK(h["events"] == 18);
  REQUIRE(h["sessions"].size() == 2);
  CHECK(h["sessions"][0]["author"] == "ann");
  CHECK(h["sessions"][0]["from"] == 0);
  CHECK(h["sessions"][0]["to"] == 18);
  CHECK(h["sessions"][0]["inserted"] == 12);
  CHECK(h["sessions"][1]["author"] == "bob");
  CHECK(h["sessions"][1]["agents"] == json{"bob/phone"});
  CHECK(h["sessions"][1]["from"] == 11);
  CHECK(h["sessions"][1]["to"] == 17);
  CHECK(h["sessions"][1]["deleted"] == 6);
  CHECK(h["next"].is_null());
  auto page = parse(http_get(s.port, "/api/docs/notes/history?limit=1"));
  REQUIRE(page["sessions"].size() == 1);
  CHECK(page["next"] == 1);
  auto rest = parse(http_get(s.port, "/api/docs/notes/history?limit=1&offset=1"));
  REQUIRE(rest["sessions"].size() == 1);
  CHECK(rest["sessions"][0]["author"] == "bob");
  CHECK(rest["next"].is_null());

  // Read again after more typing: the history read before (kept for the next reads) is not
  // served once the log grew.
  REQUIRE(bob->wait_for(ann->version(), 5s));
  REQUIRE(bob->insert(6, "?").ok());
  REQUIRE(bob->wait_synced(5s));
  CHECK(who(parse(http_get(s.port, "/api/docs/notes/blame"))) == "aaaaaab");
  CHECK(parse(http_get(s.port, "/api/docs/notes/history"))["sessions"][0]["author"] == "bob");

  // Bad input: a clear error, nothing else.
  CHECK(error_code(http_get(s.port, "/api/docs/notes/blame?at=20")) == "bad_request");
  CHECK(error_code(http_get(s.port, "/api/docs/notes/blame?at=3&until=2001-01-01T00:00:00Z")) == "bad_request");
  CHECK(error_code(http_get(s.port, "/api/docs/notes/diff?from=yesterday")) == "version_unknown");
  CHECK(error_code(http_get(s.port, "/api/docs/notes/diff?from=2026-13-45T00:00:00Z")) == "bad_request");
  CHECK(error_code(http_get(s.port, "/api/docs/notes/history?limit=0")) == "bad_request");
  CHECK(error_code(http_get(s.port, "/api/docs/nothing-here/blame")) == "not_found");
  CHECK(error_code(http_request(s.port, http::verb::post, "/api/docs/notes/diff", "{}")) == "method_not_allowed");
  CHECK(parse(http_get(s.port, "/api/docs/notes"))["events"] == 19);
}

TEST_CASE("http api: restoring a version is one edit that merges with an editor's offline typing", "[net][http-api][history]") {
  TempDir dir;
  auto sqlite = tandem::storage::Store::open({dir.file("t.db")});
  REQUIRE(sqlite.ok());
  ServerFixture s({}, sqlite->get());
  auto bob = make_client(s.url("notes"), "bob");
  REQUIRE(bob->insert(0, "first draft").ok());  // 11 events
  REQUIRE(bob->wait_synced(5s));
  REQUIRE(bob->insert(11, " v2").ok());
  REQUIRE(bob->remove(0, 6).ok());  // "draft v2"
  REQUIRE(bob->wait_synced(5s));
  // Bob goes offline and keeps typing while the backend restores the first draft.
  bob->stop();
  REQUIRE(bob->insert(0, ">").ok());
  auto restore = [&](const std::string& body) {
    return http_request(s.port, http::verb::post, "/api/docs/notes/restore", body);
  };
  auto r = parse(restore(R"({"agent": "restorer", "to": 11})"));
  CHECK(r["changed"] == true);
  CHECK(parse(http_get(s.port, "/api/docs/notes"))["text"] == "first draft");
  bob->start();
  REQUIRE(bob->wait_synced(5s));
  CHECK(eventually([&] { return bob->text() == ">first draft"; }));
  CHECK(parse(http_get(s.port, "/api/docs/notes"))["text"] == ">first draft");
  // The restore is one session of its own author; the history keeps everything before it.
  auto h = parse(http_get(s.port, "/api/docs/notes/history"));
  bool seen = false;
  for (const auto& session : h["sessions"]) seen = seen || session["agents"] == json{"restorer"};
  CHECK(seen);
  CHECK(parse(http_get(s.port, "/api/docs/notes?at=14"))["text"] == "first draft v2");
  // Restoring what the document already is changes nothing; a time works as a point.
  const uint64_t events = parse(http_get(s.port, "/api/docs/notes"))["events"];
  auto same = parse(restore(R"({"agent": "restorer", "to": )" + std::to_string(events) + "}"));
  CHECK(same["changed"] == false);
  CHECK(parse(http_get(s.port, "/api/docs/notes"))["events"] == events);
  auto empty = parse(restore(R"({"agent": "restorer", "to": "2001-01-01T00:00:00Z"})"));
  CHECK(empty["changed"] == true);
  CHECK(parse(http_get(s.port, "/api/docs/notes"))["text"] == "");
  // Bad input: a clear error, nothing changed.
  const uint64_t now = parse(http_get(s.port, "/api/docs/notes"))["events"];
  CHECK(error_code(restore(R"({"agent": "restorer", "to": 100000})")) == "bad_request");
  CHECK(error_code(restore(R"({"agent": "restorer", "to": "yesterday"})")) == "version_unknown");
  CHECK(error_code(restore(R"({"agent": "restorer", "to": -1})")) == "bad_request");
  CHECK(error_code(restore(R"({"agent": "restorer"})")) == "bad_request");
  CHECK(error_code(restore(R"({"to": 3})")) == "bad_request");
  CHECK(error_code(restore("not json")) == "bad_request");
  CHECK(error_code(http_request(s.port, http::verb::post, "/api/docs/nothing/restore", R"({"agent":"r","to":0})")) ==
        "not_found");
  CHECK(parse(http_get(s.port, "/api/docs/notes"))["events"] == now);
}

TEST_CASE("http api: named versions are saved, listed, and taken wherever a point is", "[net][http-api][history]") {
  TempDir dir;
  auto sqlite = tandem::storage::Store::open({dir.file("t.db")});
  REQUIRE(sqlite.ok());
  ServerFixture s({}, sqlite->get());
  auto ann = make_client(s.url("notes"), "ann");
  REQUIRE(ann->insert(0, "first draft").ok());  // 11 events
  REQUIRE(ann->wait_synced(5s));
  auto save = [&](const std::string& body) { return http_request(s.port, http::verb::post, "/api/docs/notes/versions", body); };
  // Now (everything logged), by a named agent; and an earlier point given as a number.
  auto v1 = save(R"({"name": "sent to the client", "agent": "ann"})");
  REQUIRE(v1.first == 201);
  CHECK(parse(v1)["events"] == 11);
  CHECK(parse(v1)["agent"] == "ann");
  CHECK(parse(v1)["time"].get<std::string>().size() == 24);
  CHECK(save(R"({"name": "first word", "at": 5})").first == 201);
  REQUIRE(ann->remove(0, 6).ok());
  REQUIRE(ann->insert(5, " two").ok());  // "draft two"
  REQUIRE(ann->wait_synced(5s));

  // Listed newest first, here and with the sessions.
  auto list = parse(http_get(s.port, "/api/docs/notes/versions"));
  REQUIRE(list["versions"].size() == 2);
  CHECK(list["versions"][0]["name"] == "first word");
  CHECK(list["versions"][0]["events"] == 5);
  CHECK(list["versions"][0]["agent"] == "");
  CHECK(list["versions"][1]["name"] == "sent to the client");
  CHECK(parse(http_get(s.port, "/api/docs/notes/history"))["versions"] == list["versions"]);

  // A name is a point: blame, diff (its spaces as %20 or +), restore.
  CHECK(parse(http_get(s.port, "/api/docs/notes/blame?at=first%20word"))["length"] == 5);
  auto d = parse(http_get(s.port, "/api/docs/notes/diff?from=sent+to+the+client"));
  CHECK(d["from"] == 11);
  CHECK(d["runs"] == json::parse(R"([{"kind":"deleted","text":"first ","agents":["ann"]},
                                     {"kind":"kept","text":"draft","agents":["ann"]},
                                     {"kind":"inserted","text":" two","agents":["ann"]}])"));
  auto r = parse(http_request(s.port, http::verb::post, "/api/docs/notes/restore", R"({"agent": "bob", "to": "sent to the client"})"));
  CHECK(r["changed"] == true);
  CHECK(parse(http_get(s.port, "/api/docs/notes"))["text"] == "first draft");
  // A version of a version's name: the point it names.
  CHECK(parse(save(R"({"name": "again", "at": "first word"})"))["events"] == 5);

  // Bad input: a clear error, nothing saved.
  const size_t n = parse(http_get(s.port, "/api/docs/notes/versions"))["versions"].size();
  CHECK(error_code(save(R"({"name": "first word"})")) == "name_taken");
  CHECK(error_code(save(R"({"name": "12"})")) == "bad_request");                     // reads as a point
  CHECK(error_code(save(R"({"name": "2026-12-07T10:00:00Z"})")) == "bad_request");   // so does a time
  CHECK(error_code(save(R"({"name": ""})")) == "bad_request");
  CHECK(error_code(save(R"({"name": "a\nb"})")) == "bad_request");
  CHECK(error_code(save(R"({"name": ")" + std::string(129, 'x') + R"("})")) == "bad_request");
  CHECK(error_code(save(R"({"name": "later", "at": 1000})")) == "bad_request");
  CHECK(error_code(save(R"({"name": "later", "at": "no such version"})")) == "version_unknown");
  CHECK(error_code(save(R"({"name": "later", "agent": ""})")) == "bad_request");
  CHECK(error_code(save(R"({"title": "x"})")) == "bad_request");
  CHECK(error_code(save("not json")) == "bad_request");
  CHECK(error_code(http_get(s.port, "/api/docs/notes/blame?at=no%20such%20version")) == "version_unknown");
  CHECK(error_code(http_request(s.port, http::verb::post, "/api/docs/nothing/versions", R"({"name":"x"})")) == "not_found");
  CHECK(error_code(http_get(s.port, "/api/docs/nothing/versions")) == "not_found");
  CHECK(error_code(http_request(s.port, http::verb::delete_, "/api/docs/notes/versions", "")) == "method_not_allowed");
  CHECK(parse(http_get(s.port, "/api/docs/notes/versions"))["versions"].size() == n);

  // Deleting the document deletes its names.
  REQUIRE(http_request(s.port, http::verb::delete_, "/api/docs/notes", "").first == 200);
  CHECK(error_code(http_get(s.port, "/api/docs/notes/versions")) == "not_found");
}
