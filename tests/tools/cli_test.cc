// The `tandem` command line, run as a real process on a real database file.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

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
  CHECK_THAT(r.out, Catch::Contains("tandem-import (21)"));
  CHECK_THAT(r.out, Catch::Contains("integrity_check: ok"));
  r = run_tandem("inspect --db " + db + " --doc notes");
  CHECK_THAT(r.out, Catch::Contains("text         11 characters"));
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
  CHECK_THAT(r.out, Catch::Contains("wants a number"));
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
