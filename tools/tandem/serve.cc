// tandem serve: the sync server on the SQLite store; tandem token: access tokens for it.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli.h"
#include "net/auth.h"
#include "net/server.h"
#include "storage/pg_store.h"
#include "storage/store.h"

namespace tandem::cli {

using crdt::Status;

namespace {

constexpr uint64_t kDayMs = 86400000;

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size() && !s.empty()) {
    const size_t c = s.find(',', at);
    out.push_back(s.substr(at, c == std::string::npos ? std::string::npos : c - at));
    if (c == std::string::npos) break;
    at = c + 1;
  }
  return out;
}

// The editor's files: in the build tree (build/web-editor/dist, for build/tools/tandem/tandem),
// or installed beside the program (<prefix>/share/tandem/web, for <prefix>/bin/tandem).
std::string default_static_dir() {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    const auto bin = std::filesystem::path(exe).parent_path();
    const auto build = bin.parent_path().parent_path();
    for (const auto& p : {build / "web-editor" / "dist", bin.parent_path() / "share" / "tandem" / "web"}) {
      std::error_code ec;
      if (std::filesystem::exists(p / "index.html", ec)) return p.string();
    }
  }
  return {};
}

// A secret kept in a file (not on the command line, where ps shows it): its first line, without
// the newline. False if the file cannot be read.
bool read_secret_line(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::getline(in, *out);
  return true;
}

}  // namespace

int cmd_serve(Args& args) {
  if (args.help()) {
    std::puts(
        "usage: tandem serve [options]\n"
        "  Runs the sync server and the editor: http://HOST:PORT/ (documents), /d/<doc-id> (editor),\n"
        "  ws://HOST:PORT/ws/<doc-id> (docs/protocol.md), /healthz, /metrics. SIGTERM or SIGINT:\n"
        "  stop accepting, close sessions (going away), snapshot open documents, flush, exit 0.\n"
        "\n"
        "  --host H                   listen address (127.0.0.1)\n"
        "  --port N                   port (8080; 0: any free port, printed at start)\n"
        "  --data DIR                 where the database lives: DIR/tandem.db (./data)\n"
        "  --store postgresql://USER:PASS@HOST:PORT/DB\n"
        "                             keep documents in PostgreSQL instead, shared with other\n"
        "                             nodes serving the same documents (docs/scale-out.md); a\n"
        "                             libpq connection URI. --data and --durability do not apply\n"
        "  --drain-ms N               on SIGTERM, fail /healthz and refuse new sessions for N ms\n"
        "                             before closing the open ones (0; a balancer needs a few seconds)\n"
        "  --durability full|normal   full (default): every acknowledged edit survives power loss;\n"
        "                             normal: faster, but the last acknowledged edits before a power\n"
        "                             loss may be lost (a process crash loses nothing)\n"
        "  --commit-interval-ms N     group commit: at most one commit per N ms, so that edits\n"
        "                             arriving together share one fsync (4; 0: commit at once)\n"
        "  --threads N                I/O threads (one per core)\n"
        "  --static DIR               the editor's files (found next to the build by default); DIR\n"
        "                             must hold index.html\n"
        "  --auth-secret-file F       require tokens signed with the secret in F (see tandem token);\n"
        "                             --auth-secret S takes it on the command line, visible in ps.\n"
        "                             Without these or a JWT key the server is open to anyone who\n"
        "                             can reach it\n"
        "  --jwt-secret-file F        accept HS256 JWTs signed with the secret in F (32 bytes or more;\n"
        "                             --jwt-secret S takes it on the command line, visible in ps)\n"
        "  --jwt-public-key F         accept RS256 or ES256 JWTs signed for this PEM public key\n"
        "  --jwt-jwks F               accept RS256/ES256 JWTs signed for a key of this JWKS file\n"
        "  --jwt-audience A           JWTs must name A in aud\n"
        "  --jwt-issuer I             JWTs must name I in iss\n"
        "  --jwt-doc-claim C          the claim with the document pattern(s) a JWT grants (doc)\n"
        "  --jwt-mode-claim C         the claim saying read or write (mode; absent: read)\n"
        "  --jwt-leeway-s N           clock skew allowed on exp and nbf (0)\n"
        "                             (docs/protocol.md: which kind of token to choose)\n"
        "  --metrics-token-file F     /metrics answers only with Authorization: Bearer <the token in F>\n"
        "                             (without it /metrics is open, also on a server with auth)\n"
        "  --webhook-url URL          after a document's changes settle, POST a signed JSON about\n"
        "                             them here (http:// or https://; docs/http-api.md, Webhooks)\n"
        "  --webhook-secret-file F    sign webhooks with the secret in F (X-Tandem-Signature)\n"
        "  --webhook-debounce-ms N    changes settle this long before a POST (2000)\n"
        "  --webhook-timeout-ms N     per attempt (10000)\n"
        "  --webhook-retry-window-s N retry a failing POST with backoff this long (3600)\n"
        "  --allow-origin A,B         accept WebSocket upgrades only from these exact Origins\n"
        "  --tls-cert F --tls-key K   serve https:// and wss:// with this PEM certificate and key\n"
        "  --log-format text|json     (text)\n"
        "  --quiet                    log warnings and errors only\n"
        "limits (defaults in brackets):\n"
        "  --max-frame-bytes N [1048576]     --max-batch-ops N [100000]   --max-doc-chars N [16777216]\n"
        "  --max-held-ops N [100000]         --max-connections N [20000]  --max-connections-per-ip N [256]\n"
        "  --max-messages-per-second N [200] --max-queue-bytes N [8388608]\n"
        "  --handshake-timeout-ms N [10000]  --idle-timeout-ms N [60000]  --room-grace-ms N [10000]\n"
        "  --snapshot-every-ops N [10000]    --snapshot-every-ms N [60000]\n"
        "  --max-broadcast-delay-ms N [100]  when the server runs late, a room of n sessions sends one\n"
        "                                    broadcast per 4n ms at most, capped at N (0: never pace)");
    return 0;
  }
  net::ServerOptions o;
  o.host = args.value("--host", o.host);
  o.port = static_cast<uint16_t>(args.number("--port", o.port, 0, 65535));
  const std::string data = args.value("--data", "./data");
  const std::string store_uri = args.value("--store");
  o.drain = std::chrono::milliseconds(args.number("--drain-ms", 0, 0, kDayMs));
  const std::string durability = args.value("--durability", "full");
  const uint64_t commit_interval_ms = args.number("--commit-interval-ms", 4, 0, 1000);
  o.threads = static_cast<int>(args.number("--threads", 0, 0, 1024));
  o.static_dir = args.value("--static", "");
  const bool auth_secret_given = args.has("--auth-secret");
  o.auth_secret = args.value("--auth-secret");
  const std::string auth_secret_file = args.value("--auth-secret-file");
  const std::string metrics_token_file = args.value("--metrics-token-file");
  o.jwt.hs256_secret = args.value("--jwt-secret");
  const std::string jwt_secret_file = args.value("--jwt-secret-file");
  o.jwt.public_key_file = args.value("--jwt-public-key");
  o.jwt.jwks_file = args.value("--jwt-jwks");
  o.jwt.audience = args.value("--jwt-audience");
  o.jwt.issuer = args.value("--jwt-issuer");
  o.jwt.doc_claim = args.value("--jwt-doc-claim", o.jwt.doc_claim);
  o.jwt.mode_claim = args.value("--jwt-mode-claim", o.jwt.mode_claim);
  o.jwt.leeway_seconds = static_cast<int64_t>(args.number("--jwt-leeway-s", 0, 0, 86400));
  o.webhook.url = args.value("--webhook-url");
  const std::string webhook_secret_file = args.value("--webhook-secret-file");
  o.webhook.debounce = std::chrono::milliseconds(args.number("--webhook-debounce-ms", o.webhook.debounce.count(), 0, kDayMs));
  o.webhook.timeout = std::chrono::milliseconds(args.number("--webhook-timeout-ms", o.webhook.timeout.count(), 1, kDayMs));
  o.webhook.retry_window = std::chrono::seconds(args.number("--webhook-retry-window-s", 3600, 0, 30 * 86400));
  o.allowed_origins = split_commas(args.value("--allow-origin"));
  o.tls_cert = args.value("--tls-cert");
  o.tls_key = args.value("--tls-key");
  const std::string log_format = args.value("--log-format", "text");
  o.log_quiet = args.flag("--quiet");
  o.max_frame_bytes = args.number("--max-frame-bytes", o.max_frame_bytes, 64, uint64_t{1} << 31);
  o.max_batch_events = args.number("--max-batch-ops", o.max_batch_events, 1, INT32_MAX);
  o.max_doc_chars = static_cast<uint32_t>(args.number("--max-doc-chars", o.max_doc_chars, 1, INT32_MAX));
  o.max_held_events = args.number("--max-held-ops", o.max_held_events, 0, INT32_MAX);
  o.max_connections = static_cast<uint32_t>(args.number("--max-connections", o.max_connections, 1, UINT32_MAX));
  o.max_connections_per_ip = static_cast<uint32_t>(args.number("--max-connections-per-ip", o.max_connections_per_ip, 1, UINT32_MAX));
  o.max_messages_per_second = static_cast<uint32_t>(args.number("--max-messages-per-second", o.max_messages_per_second, 1, UINT32_MAX));
  o.max_queue_bytes = args.number("--max-queue-bytes", o.max_queue_bytes, 1024, uint64_t{1} << 40);
  o.handshake_timeout = std::chrono::milliseconds(args.number("--handshake-timeout-ms", o.handshake_timeout.count(), 1, kDayMs));
  o.idle_timeout = std::chrono::milliseconds(args.number("--idle-timeout-ms", o.idle_timeout.count(), 1, kDayMs));
  o.room_grace = std::chrono::milliseconds(args.number("--room-grace-ms", o.room_grace.count(), 0, kDayMs));
  o.snapshot_every_events = args.number("--snapshot-every-ops", o.snapshot_every_events, 1, INT32_MAX);
  o.snapshot_every = std::chrono::milliseconds(args.number("--snapshot-every-ms", o.snapshot_every.count(), 1, kDayMs));
  o.max_broadcast_delay =
      std::chrono::milliseconds(args.number("--max-broadcast-delay-ms", o.max_broadcast_delay.count(), 0, 60000));
  if (!args.ok()) return args.fail();
  if (!args.rest().empty()) return fail("serve takes no positional arguments (see --help)");
  if (durability != "full" && durability != "normal") return fail("--durability is full or normal");
  if (commit_interval_ms > 1000) return fail("--commit-interval-ms is at most 1000");
  if (log_format != "text" && log_format != "json") return fail("--log-format is text or json");
  if (o.tls_cert.empty() != o.tls_key.empty()) return fail("--tls-cert and --tls-key go together");
  if (o.max_messages_per_second == 0 || o.max_frame_bytes < 64) return fail("limits must allow some traffic");
  // An empty secret would leave the server without auth, open to anyone: refused, as are
  // empty secret files.
  if (auth_secret_given && o.auth_secret.empty()) {
    return fail("--auth-secret is empty: give a secret (or --auth-secret-file F), or leave it out for an open server");
  }
  if (args.has("--jwt-secret") && o.jwt.hs256_secret.empty()) {
    return fail("--jwt-secret is empty: give a secret (or --jwt-secret-file F)");
  }
  if (!auth_secret_file.empty()) {
    if (auth_secret_given) return fail("--auth-secret and --auth-secret-file: give one");
    if (!read_secret_line(auth_secret_file, &o.auth_secret)) return fail("cannot read --auth-secret-file " + auth_secret_file);
    if (o.auth_secret.empty()) return fail("--auth-secret-file " + auth_secret_file + " is empty");
  }
  if (!metrics_token_file.empty()) {
    if (!read_secret_line(metrics_token_file, &o.metrics_token)) {
      return fail("cannot read --metrics-token-file " + metrics_token_file);
    }
    if (o.metrics_token.empty()) return fail("--metrics-token-file " + metrics_token_file + " is empty");
  }
  if (!jwt_secret_file.empty()) {
    if (!o.jwt.hs256_secret.empty()) return fail("--jwt-secret and --jwt-secret-file: give one");
    if (!read_secret_line(jwt_secret_file, &o.jwt.hs256_secret)) return fail("cannot read --jwt-secret-file " + jwt_secret_file);
    if (o.jwt.hs256_secret.empty()) return fail("--jwt-secret-file " + jwt_secret_file + " is empty");
  }
  if (!webhook_secret_file.empty()) {
    if (!read_secret_line(webhook_secret_file, &o.webhook.secret)) {
      return fail("cannot read --webhook-secret-file " + webhook_secret_file);
    }
    if (o.webhook.secret.empty()) return fail("--webhook-secret-file " + webhook_secret_file + " is empty");
  }
  if (o.webhook.url.empty() && !webhook_secret_file.empty()) return fail("--webhook-secret-file needs --webhook-url");
  if (auto st = net::ValidateWebhookOptions(o.webhook); !st.ok()) return fail(st.WithContext("--webhook-url"));
  if (!o.jwt.enabled() && (!o.jwt.audience.empty() || !o.jwt.issuer.empty())) {
    return fail("--jwt-audience and --jwt-issuer need a JWT key (--jwt-secret-file, --jwt-public-key or --jwt-jwks)");
  }
  o.log_json = log_format == "json";
  o.handle_signals = true;
  if (!o.static_dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(std::filesystem::path(o.static_dir) / "index.html", ec)) {
      return fail("--static " + o.static_dir + ": no index.html there (the editor's files are built into build/web-editor/dist)");
    }
  } else {
    o.static_dir = default_static_dir();
  }

  std::unique_ptr<store::DocStore> docs;
  std::string where;
  if (!store_uri.empty()) {
    if (store_uri.rfind("postgresql://", 0) != 0 && store_uri.rfind("postgres://", 0) != 0) {
      return fail("--store wants a PostgreSQL URI, postgresql://USER:PASS@HOST:PORT/DB");
    }
    storage::PgOptions po;
    po.conninfo = store_uri;
    po.commit_interval = std::chrono::milliseconds(commit_interval_ms);
    po.log = [](const std::string& line) { std::fprintf(stderr, "tandem: %s\n", line.c_str()); };
    auto pg = storage::PgStore::open(po);
    if (!pg.ok()) return fail(pg.status());
    where = (*pg)->path() + " as node " + (*pg)->node();
    docs = std::move(*pg);
  } else {
    std::error_code ec;
    std::filesystem::create_directories(data, ec);
    if (ec) return fail("cannot create " + data + ": " + ec.message());
    storage::StoreOptions so;
    so.path = (std::filesystem::path(data) / "tandem.db").string();
    so.durability = durability == "full" ? storage::Durability::kFull : storage::Durability::kNormal;
    so.commit_interval = std::chrono::milliseconds(commit_interval_ms);
    auto sqlite = storage::Store::open(so);
    if (!sqlite.ok()) return fail(sqlite.status());
    where = so.path;
    docs = std::move(*sqlite);
  }
  net::Server server(o, docs.get());
  Status st = server.start();
  if (!st.ok()) return fail(st);
  std::printf("tandem: serving %s on %s://%s:%u/ (data in %s)\n",
              o.static_dir.empty() ? "the sync server (no editor: it is not built; run web-editor/build.sh)" : "the editor",
              o.tls_cert.empty() ? "http" : "https", o.host.c_str(), static_cast<unsigned>(server.port()), where.c_str());
  std::fflush(stdout);
  server.run();
  return 0;
}

int cmd_token(Args& args) {
  if (args.help()) {
    std::puts(
        "usage: tandem token --secret S --sub NAME [--doc PATTERN] [--mode read|write] [--ttl SECONDS]\n"
        "  Prints an access token for a server run with --auth-secret S: for user NAME, documents\n"
        "  matching PATTERN (an id, a prefix ending in *, or *; default *), reading or writing\n"
        "  (default write), valid for SECONDS (default 86400). Clients pass it as ?token= or as\n"
        "  Authorization: Bearer. Agents of that user's sessions must be NAME or start with NAME/.");
    return 0;
  }
  net::Token t;
  const std::string secret = args.value("--secret");
  t.subject = args.value("--sub");
  const std::string pattern = args.value("--doc", "*");
  t.doc_patterns = {pattern};
  const std::string mode = args.value("--mode", "write");
  const uint64_t ttl = args.number("--ttl", 86400, 1, 100ull * 365 * 86400);
  if (!args.ok()) return args.fail();
  if (secret.empty() || t.subject.empty()) return fail("token needs --secret and --sub (see --help)");
  if (mode != "read" && mode != "write") return fail("--mode is read or write");
  if (t.subject.find('|') != std::string::npos || pattern.find('|') != std::string::npos) {
    return fail("names and patterns may not contain '|'");
  }
  t.write = mode == "write";
  t.expires = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() +
              static_cast<int64_t>(ttl);
  std::printf("%s\n", net::sign_token(t, secret).c_str());
  return 0;
}

}  // namespace tandem::cli
