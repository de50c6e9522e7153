// The `tandem` command line, run as a real process on a real database file.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <algorithm>
#include <fstream>
#include <vector>

#include "support/temp_dir.h"

using tandem::testing::TempDir;

namespace {

struct Run {
  int code;
  std::string out;
};

// Runs `tandem ARGS` with the shell, capturing stdout (stderr joins it with 2>&1 when asked).
Run run_tandem(const std::string& args) {
  const std::string cmd = std::string(TANDEM_BIN) + " " + args;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST_CASE("cli: import, replay, export and inspect a document", "[cli]") {
  TempDir dir;
  // A small trace: type "hello world", delete "world", type "there".
  const std::string trace = dir.file("t.json");
  std::ofstream(trace) << R"({"startContent":"","endContent":"hello there","txns":[
      {"time":"2026-01-01T00:00:00Z","patches":[[0,0,"hello world"]]},
      {"time":"2026-01-01T00:00:01Z","patches":[[6,5,""]]},
      {"time":"2026-01-01T00:00:02Z","patches":[[6,0,"there"]]}]})";
  const std::string db = dir.file("data/t.db");
  auto r = run_tandem("import --db " + db + " --doc notes --row-events 4 " + trace);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("21 operations, 11 characters"));

  CHECK(run_tandem("replay --db " + db + " --doc notes").out == "hello there");
  CHECK(run_tandem("replay --db " + db + " --doc notes --at-op 5").out == "hello");
  CHECK(run_tandem("replay --db " + db + " --doc notes --at-op 13").out == "hello rld");  // 2 of 5 deletes done
  CHECK(run_tandem("replay --db " + db + " --doc notes --at-op 0").out.empty());
  const std::string out = dir.file("out.txt");
  REQUIRE(run_tandem("replay --db " + db + " --doc notes --at-op 11 --out " + out).code == 0);
  std::ifstream f(out);
  CHECK(std::string((std::istreambuf_iterator<char>(f)), {}) == "hello world");

  CHECK(run_tandem("export --db " + db + " --doc notes").out == "hello there");
  const std::string json = run_tandem("export --db " + db + " --doc notes --format json").out;
  CHECK_THAT(json, Catch::StartsWith("{\"id\":[\"tandem-import\",0],\"parents\":[],\"time\":\""));
  CHECK_THAT(json, Catch::Contains("\"inserted\":\"hello world\"}"));
  CHECK_THAT(json, Catch::Contains("\"deleted\":5,\"direction\":\"forward\""));
  CHECK_THAT(json, Catch::Contains("\"inserted\":\"there\"}"));

  r = run_tandem("inspect --db " + db);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("operations   21 in"));
  CHECK_THAT(r.out, Catch::Contains("written by   1 agent: tandem-import (21 operations)"));
  CHECK_THAT(r.out, Catch::Contains("integrity_check: ok"));
  r = run_tandem("inspect --db " + db + " --doc notes");
  CHECK_THAT(r.out, Catch::Contains("text         11 characters"));

  // A rich trace (bench/traces/README.md): its formatting is imported and exported.
  const std::string rich = dir.file("rich.json");
  std::ofstream(rich) << R"({"endContent":"Title\nsome bold <b>text</b>","txns":[
      {"patches":[[0,0,"Title\nsome bold <b>text</b>"]]},
      {"patches":[],"marks":[[11,15,"bold",true],[16,27,"link","https://e.example/"]]},
      {"patches":[],"blocks":[[2,"heading",{"level":1}]]}]})";
  REQUIRE(run_tandem("import --db " + db + " --doc rich " + rich).code == 0);
  CHECK(run_tandem("export --db " + db + " --doc rich --format markdown").out ==
        "# Title\n\nsome **bold** [\\<b>text\\</b>](https://e.example/)\n");
  CHECK(run_tandem("export --db " + db + " --doc rich --format html").out ==
        "<h1>Title</h1>\n<p>some <strong>bold</strong> <a href=\"https://e.example/\" rel=\"noopener noreferrer nofollow\">"
        "&lt;b&gt;text&lt;/b&gt;</a></p>\n");
  CHECK_THAT(run_tandem("export --db " + db + " --doc rich --format json").out,
             Catch::Contains("\"pos\":11,\"mark\":\"bold\",\"value\":\"true\",\"end\":15,\"remove\":false}"));
  CHECK(run_tandem("export --db " + db + " --doc rich --format pdf").code != 0);
}

TEST_CASE("cli: bad input gets a clear error and a non-zero exit", "[cli]") {
  TempDir dir;
  const std::string db = dir.file("t.db");
  auto r = run_tandem("replay --db " + db + " --doc x 2>&1");
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("no database at"));
  r = run_tandem("replay --db " + db + " --doc x --frobnicate 3 2>&1");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("unknown option --frobnicate"));
  r = run_tandem("replay --db " + db + " --doc x --at-op many 2>&1");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("wants a whole number"));
  r = run_tandem("launch 2>&1");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("unknown command 'launch'"));
  CHECK(run_tandem("--help").code == 0);
  for (const char* cmd : {"import", "replay", "export", "inspect"}) {
    r = run_tandem(std::string(cmd) + " --help");
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains(std::string("usage: tandem ") + cmd));
  }
  // Not a database.
  std::ofstream(dir.file("junk.db")) << std::string(200, 'x');
  r = run_tandem("inspect --db " + dir.file("junk.db") + " 2>&1");
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("not a Tandem database"));
  // A trace that does not parse, and a document that exists already.
  std::ofstream(dir.file("bad.json")) << "{\"txns\": 3}";
  r = run_tandem("import --db " + db + " --doc d " + dir.file("bad.json") + " 2>&1");
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("missing endContent or txns"));
  // Secrets in files: unreadable or empty ones stop the server before it listens (an empty JWT
  // secret would leave it open to anyone).
  std::ofstream(dir.file("empty.secret")).flush();
  r = run_tandem("serve --port 0 --data " + dir.path() + " --jwt-secret-file " + dir.file("empty.secret") + " 2>&1");
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("--jwt-secret-file " + dir.file("empty.secret") + " is empty"));
  r = run_tandem("serve --port 0 --data " + dir.path() + " --jwt-secret-file " + dir.file("nope") + " 2>&1");
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("cannot read --jwt-secret-file"));
  r = run_tandem("serve --port 0 --data " + dir.path() + " --webhook-url http://127.0.0.1:9/h --webhook-secret-file " +
                 dir.file("empty.secret") + " 2>&1");
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("is empty"));
  r = run_tandem("serve --port 0 --data " + dir.path() + " --webhook-url ftp://x 2>&1");
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("the scheme must be http or https"));
}

TEST_CASE("cli: the offline commands find the server's database, and speak plainly", "[cli]") {
  TempDir dir;
  // Keystrokes one at a time, each its own log row (as the editor sends them).
  const std::string trace = dir.file("keys.json");
  std::ofstream(trace) << R"({"startContent":"","endContent":"hey","txns":[
      {"time":"2026-01-01T00:00:00Z","patches":[[0,0,"h"]]},
      {"time":"2026-01-01T00:00:01Z","patches":[[1,0,"e"]]},
      {"time":"2026-01-01T00:00:02Z","patches":[[2,0,"y"]]},
      {"time":"2026-01-01T00:00:03Z","patches":[[2,1,""]]},
      {"time":"2026-01-01T00:00:04Z","patches":[[1,1,""]]},
      {"time":"2026-01-01T00:00:05Z","patches":[[1,0,"ey"]]}]})";
  // --data DIR: DIR/tandem.db, where `tandem serve --data DIR` keeps it.
  auto r = run_tandem("import --data " + dir.file("data") + " --doc keys --row-events 1 " + trace);
  REQUIRE(r.code == 0);
  CHECK(run_tandem("replay --data " + dir.file("data") + " --doc keys").out == "hey");  // a pipe: exactly the text
  CHECK(run_tandem("replay --db " + dir.file("data/tandem.db") + " --doc keys").out == "hey");
  // Neither: ./data/tandem.db, as `tandem serve` with no flags.
  CHECK(run_tandem("export --doc keys --data " + dir.file("data")).out == "hey");
  r = run_tandem("--help >/dev/null; cd " + dir.path() + " && " + TANDEM_BIN + " export --doc keys");
  CHECK(r.code == 0);
  CHECK(r.out == "hey");
  r = run_tandem("--help >/dev/null; cd " + dir.file("data") + " && " + TANDEM_BIN + " inspect 2>&1");
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("no database at ./data/tandem.db (give --data DIR"));
  r = run_tandem("replay --data " + dir.file("data") + " --db x.db --doc keys 2>&1");
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("give --db FILE or --data DIR, not both"));
  // The history as runs: the three keystrokes join, so do the two Backspaces.
  const std::string json = run_tandem("export --data " + dir.file("data") + " --doc keys --format json").out;
  CHECK(std::count(json.begin(), json.end(), '\n') == 3);
  CHECK_THAT(json, Catch::Contains("\",\"until\":\""));
  CHECK_THAT(json, Catch::Contains("\"inserted\":\"hey\"}"));
  CHECK_THAT(json, Catch::Contains("\"deleted\":2,\"direction\":\"backward\""));
  CHECK_THAT(json, Catch::Contains("\"inserted\":\"ey\"}"));
  // Errors say what is wrong in words, without the engine's code names.
  for (const std::string& bad : {std::string("replay --data ") + dir.file("data") + " --doc nothing-here 2>&1",
                                 std::string("replay --data ") + dir.file("data") + " --doc keys --at-time soon 2>&1",
                                 std::string("export --data ") + dir.file("data") + " --doc nothing-here 2>&1"}) {
    r = run_tandem(bad);
    INFO(bad << " -> " << r.out);
    CHECK(r.code != 0);
    CHECK_THAT(r.out, Catch::StartsWith("tandem: "));
    for (const char* code : {"InvalidArgument", "OutOfRange", "NotFound", "Internal", "IOError", "FailedPrecondition"}) {
      CHECK_THAT(r.out, !Catch::Contains(code));
    }
  }
}

TEST_CASE("cli: serve refuses nonsense flags before it listens", "[cli]") {
  TempDir dir;
  const std::string data = " --data " + dir.path();
  struct Case {
    std::string args;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"--port 99999", 2, "option --port wants a whole number from 0 to 65535, not '99999'"},
      {"--port -1", 2, "option --port wants a whole number"},
      {"--max-connections 0", 2, "option --max-connections wants a whole number from 1"},
      {"--max-doc-chars 99999999999", 2, "option --max-doc-chars wants a whole number from 1 to 2147483647"},
      // --quiet is a switch: it does not take --data as its value (the port error shows that
      // everything after it was read as meant); "--quiet 1" keeps working.
      {"--quiet --port 70000", 2, "option --port wants"},
      {"--quiet 1 --port 70000", 2, "option --port wants"},
      {"--quiet maybe", 1, "serve takes no positional arguments"},
      {"--quiet=maybe", 2, "option --quiet is on or off"},
      {"--auth-secret ''", 1, "--auth-secret is empty"},
      {"--jwt-secret ''", 1, "--jwt-secret is empty"},
      {"--auth-secret-file " + dir.file("empty"), 1, "--auth-secret-file " + dir.file("empty") + " is empty"},
      {"--auth-secret-file " + dir.file("missing"), 1, "cannot read --auth-secret-file"},
      {"--auth-secret s --auth-secret-file " + dir.file("secret"), 1, "give one"},
      {"--metrics-token-file " + dir.file("empty"), 1, "--metrics-token-file " + dir.file("empty") + " is empty"},
      {"--static /nonexistent", 1, "--static /nonexistent: no index.html there"},
  };
  std::ofstream(dir.file("empty")).flush();
  std::ofstream(dir.file("secret")) << "s3cret\n";
  for (const auto& c : cases) {
    auto r = run_tandem("serve" + data + " " + c.args + " 2>&1");
    INFO("serve " << c.args << " -> " << r.out);
    CHECK(r.code == c.code);
    CHECK_THAT(r.out, Catch::Contains(c.says));
  }
  // The help: one option per line where they were run together.
  const std::string help = run_tandem("serve --help").out;
  for (const char* line : {"\n  --drain-ms N ", "\n  --durability full|normal ", "\n  --jwt-audience A ", "\n  --jwt-issuer I ",
                           "\n  --auth-secret-file F ", "\n  --metrics-token-file F ", "\n  --quiet "}) {
    CHECK_THAT(help, Catch::Contains(line));
  }
}

TEST_CASE("cli: history, blame and diff of a document, read offline from its log", "[cli][history]") {
  TempDir dir;
  // Two agents: ann types, bob deletes a word, ann types again.
  const std::string trace = dir.file("c.json");
  std::ofstream(trace) << R"({"kind":"concurrent","endContent":"hello there","numAgents":2,"txns":[
      {"agent":0,"parents":[],"numChildren":1,"time":"2026-01-01T00:00:00Z","patches":[[0,0,"hello world"]]},
      {"agent":1,"parents":[0],"numChildren":1,"time":"2026-01-01T00:00:01Z","patches":[[6,5,""]]},
      {"agent":0,"parents":[1],"numChildren":0,"time":"2026-01-01T00:00:02Z","patches":[[6,0,"there"]]}]})";
  const std::string db = dir.file("data/c.db");
  REQUIRE(run_tandem("import --db " + db + " --doc notes --row-events 4 " + trace).code == 0);

  auto blame = run_tandem("blame --db " + db + " --doc notes");
  REQUIRE(blame.code == 0);
  // (One stretch: the import logged it all at one time, and a stretch is an author's at one time.)
  CHECK_THAT(blame.out, Catch::EndsWith("agent0               hello there\n"));
  CHECK(run_tandem("blame --db " + db + " --doc notes --at 11 --json").out.find("\"length\":11") != std::string::npos);

  auto diff = run_tandem("diff --db " + db + " --doc notes --from 11 2>&1");
  REQUIRE(diff.code == 0);
  CHECK_THAT(diff.out, Catch::Contains("hello {+there+}[-world-]\n"));  // (the two at one place: in the sequence's order)
  CHECK_THAT(diff.out, Catch::Contains("deleted by agent1"));
  CHECK_THAT(diff.out, Catch::Contains("inserted by agent0"));
  CHECK(run_tandem("diff --db " + db + " --doc notes --from 21 --to 21").out == "hello there\n");

  auto history = run_tandem("history --db " + db + " --doc notes");
  REQUIRE(history.code == 0);
  CHECK_THAT(history.out, Catch::Contains("agent0 (agent0)  +16 -0 ~0"));
  CHECK_THAT(history.out, Catch::Contains("agent1 (agent1)  +0 -5 ~0"));
  const std::string json = run_tandem("history --db " + db + " --doc notes --json --limit 1").out;
  CHECK_THAT(json, Catch::Contains("\"next\":1"));

  // Bad input: a clear error and a non-zero exit.
  auto past = run_tandem("blame --db " + db + " --doc notes --at 22 2>&1");
  CHECK(past.code != 0);
  CHECK_THAT(past.out, Catch::Contains("past the end"));
  auto when = run_tandem("diff --db " + db + " --doc notes --from yesterday 2>&1");
  CHECK(when.code != 0);
  CHECK_THAT(when.out, Catch::Contains("UTC time"));
  CHECK(run_tandem("history --db " + db + " --doc nothing 2>&1").code != 0);
  CHECK(run_tandem("blame --db " + db + " 2>&1").code != 0);
}
