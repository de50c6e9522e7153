// JSON Web Tokens minted by an independent implementation (PyJWT, Debian's python3-jwt, with
// keys made by python3-cryptography), checked by the verifier directly and by a server on
// loopback: valid ones open, each kind of bad one is refused with its own error.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "crdt/codec.h"
#include "net/jwt.h"
#include "sync/protocol.h"
#include "support/net_fixtures.h"
#include "support/temp_dir.h"

using namespace tandem::testing;
using tandem::crdt::OpBatch;
using tandem::crdt::OpKind;
using tandem::crdt::OpRun;
using tandem::crdt::Status;
namespace proto = tandem::proto;
using json = nlohmann::json;

namespace {

// Debian's interpreter, where python3-jwt lives (a PATH python3 may be another installation).
const char* kPython = "/usr/bin/python3";

// Makes keys (RSA 2048 x2, EC P-256; PEM and a JWKS of one RSA and the EC key) and mints every
// token the tests use, in one run of Python. The key-confusion token is signed by hand with the
// PEM text as an HMAC secret, since PyJWT rightly refuses to do that.
const char* kMint = R"PY(
import base64, hashlib, hmac, json, sys, time
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

d = sys.argv[1]
now = int(time.time())
def pem_pub(k):
    return k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
eck = ec.generate_private_key(ec.SECP256R1())
# A key whose x has a leading zero byte, which PyJWT 2.6 writes as 31 bytes (one key in 128).
eck0 = ec.generate_private_key(ec.SECP256R1())
while eck0.public_key().public_numbers().x >= 1 << 248:
    eck0 = ec.generate_private_key(ec.SECP256R1())
open(d + "/rsa1.pem", "wb").write(pem_pub(rsa1))
open(d + "/ec.pem", "wb").write(pem_pub(eck))
jwks = {"keys": [
    dict(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa2.public_key())), kid="r2", use="sig", alg="RS256"),
    dict(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(eck.public_key())), kid="e1"),
    dict(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(eck0.public_key())), kid="e0"),
]}
open(d + "/jwks.json", "w").write(json.dumps(jwks))
secret = "0123456789abcdef0123456789abcdef-hs"
open(d + "/secret", "w").write(secret + "\n")

base = {"sub": "alice", "doc": "notes-*", "mode": "write", "aud": "notes-app", "iss": "https://auth.example",
        "iat": now, "exp": now + 600}
def c(**kw):
    out = dict(base)
    for k, v in kw.items():
        if v is None: out.pop(k, None)
        else: out[k] = v
    return out
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def by_hand_hs256(claims, key):
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps(claims).encode())
    s = b64(hmac.new(key, (h + "." + p).encode(), hashlib.sha256).digest())
    return h + "." + p + "." + s

t = {}
t["rs256"] = jwt.encode(c(), rsa1, algorithm="RS256")
t["rs256_jwks"] = jwt.encode(c(sub="bob", doc=["a", "notes-9"]), rsa2, algorithm="RS256", headers={"kid": "r2"})
t["es256_jwks"] = jwt.encode(c(sub="carol"), eck, algorithm="ES256", headers={"kid": "e1"})
t["es256_short_x"] = jwt.encode(c(sub="dave"), eck0, algorithm="ES256", headers={"kid": "e0"})
t["hs256"] = jwt.encode(c(), secret, algorithm="HS256")
t["aud_list"] = jwt.encode(c(aud=["other", "notes-app"]), rsa1, algorithm="RS256")
t["read_only"] = jwt.encode(c(sub="reader", mode="read"), rsa1, algorithm="RS256")
t["no_mode"] = jwt.encode(c(sub="reader", mode=None), rsa1, algorithm="RS256")
t["expired"] = jwt.encode(c(exp=now - 30, iat=now - 600), rsa1, algorithm="RS256")
t["not_yet"] = jwt.encode(c(nbf=now + 300), rsa1, algorithm="RS256")
t["wrong_aud"] = jwt.encode(c(aud="someone-else"), rsa1, algorithm="RS256")
t["wrong_iss"] = jwt.encode(c(iss="https://evil.example"), rsa1, algorithm="RS256")
t["wrong_key"] = jwt.encode(c(), other, algorithm="RS256")
t["alg_none"] = jwt.encode(c(), None, algorithm="none")
t["confusion"] = by_hand_hs256(c(), open(d + "/rsa1.pem", "rb").read())
t["no_exp"] = jwt.encode(c(exp=None), rsa1, algorithm="RS256")
t["no_sub"] = jwt.encode(c(sub=None), rsa1, algorithm="RS256")
t["no_doc"] = jwt.encode(c(doc=None), rsa1, algorithm="RS256")
t["bad_mode"] = jwt.encode(c(mode="admin"), rsa1, algorithm="RS256")
t["hs256_wrong_secret"] = jwt.encode(c(), secret + "x", algorithm="HS256")
t["other_doc"] = jwt.encode(c(doc="secret-plans"), rsa1, algorithm="RS256")
head, payload, sig = t["rs256"].split(".")
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
claims["sub"] = "mallory"
t["tampered"] = head + "." + b64(json.dumps(claims).encode()) + "." + sig
print(json.dumps(t))
)PY";

struct Minted {
  TempDir dir;
  std::map<std::string, std::string> tokens;
  std::string secret;

  Minted() {
    REQUIRE(!dir.path().empty());
    std::ofstream(dir.file("mint.py")) << kMint;
    const std::string cmd = std::string(kPython) + " " + dir.file("mint.py") + " " + dir.path();
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = pclose(p);
    INFO("python3-jwt and python3-cryptography must be installed (scripts/setup.sh); output: " << out);
    REQUIRE(rc == 0);
    const json j = json::parse(out);
    for (auto it = j.begin(); it != j.end(); ++it) tokens[it.key()] = it.value().get<std::string>();
    std::ifstream in(dir.file("secret"));
    std::getline(in, secret);
  }
  const std::string& operator[](const std::string& name) const { return tokens.at(name); }
};

int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

tandem::net::JwtOptions public_key_options(const Minted& m) {
  tandem::net::JwtOptions o;
  o.public_key_file = m.dir.file("rsa1.pem");
  o.jwks_file = m.dir.file("jwks.json");
  o.audience = "notes-app";
  o.issuer = "https://auth.example";
  return o;
}

std::string hello(const std::string& agent) {
  proto::Hello h;
  h.agents = {agent};
  return proto::encode(h);
}

}  // namespace

TEST_CASE("jwt: PyJWT's tokens verify or fail, each failure with its own message", "[net][auth][jwt]") {
  Minted m;
  auto v = tandem::net::JwtVerifier::Load(public_key_options(m));
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  const auto& verifier = **v;

  auto ok = verifier.verify(m["rs256"], now());
  INFO(ok.status().ToString());
  REQUIRE(ok.ok());
  CHECK(ok->subject == "alice");
  CHECK(ok->write);
  CHECK(ok->grants("notes-1"));
  CHECK_FALSE(ok->grants("secret-plans"));
  auto from_jwks = verifier.verify(m["rs256_jwks"], now());
  REQUIRE(from_jwks.ok());
  CHECK(from_jwks->subject == "bob");
  CHECK(from_jwks->grants("a"));
  CHECK(from_jwks->grants("notes-9"));
  CHECK_FALSE(from_jwks->grants("notes-1"));
  auto ec = verifier.verify(m["es256_jwks"], now());
  INFO(ec.status().ToString());
  REQUIRE(ec.ok());
  CHECK(ec->subject == "carol");
  // A JWKS coordinate written without its leading zero byte (as PyJWT writes it) is the same key.
  auto short_x = verifier.verify(m["es256_short_x"], now());
  INFO(short_x.status().ToString());
  REQUIRE(short_x.ok());
  CHECK(short_x->subject == "dave");
  CHECK(verifier.verify(m["aud_list"], now()).ok());
  auto ro = verifier.verify(m["read_only"], now());
  REQUIRE(ro.ok());
  CHECK_FALSE(ro->write);
  auto no_mode = verifier.verify(m["no_mode"], now());
  REQUIRE(no_mode.ok());
  CHECK_FALSE(no_mode->write);  // absent: read

  const std::map<std::string, std::string> refused = {
      {"expired", "expired"},           {"not_yet", "not valid yet"},  {"wrong_aud", "audience"},
      {"wrong_iss", "issuer"},          {"wrong_key", "bad token signature"}, {"alg_none", "alg none"},
      {"confusion", "algorithm HS256 is not accepted"}, {"no_exp", "no exp"}, {"no_sub", "no sub"},
      {"no_doc", "no 'doc' claim"},     {"bad_mode", "not \"read\" or \"write\""},
      {"tampered", "bad token signature"}, {"hs256", "algorithm HS256 is not accepted"},
  };
  std::set<std::string> messages;
  for (const auto& [name, why] : refused) {
    auto r = verifier.verify(m[name], now());
    INFO(name << ": " << r.status().ToString());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains(why));
    messages.insert(r.status().message());
  }
  CHECK(messages.size() == refused.size() - 2);  // tampered and wrong_key, confusion and hs256 share theirs
  CHECK(verifier.verify("not-a-jwt", now()).status().message().find("three parts") != std::string::npos);
  CHECK(verifier.verify("a.b.c", now()).status().message() == "malformed token");
  // The clock: an expired token is fine with enough leeway, and not without.
  auto lenient_options = public_key_options(m);
  lenient_options.leeway_seconds = 120;
  auto lenient = tandem::net::JwtVerifier::Load(lenient_options);
  REQUIRE(lenient.ok());
  CHECK((*lenient)->verify(m["expired"], now()).ok());

  // HS256 with a shared secret; then an RS256 token is the one not accepted.
  tandem::net::JwtOptions hs;
  hs.hs256_secret = m.secret;
  hs.audience = "notes-app";
  auto hv = tandem::net::JwtVerifier::Load(hs);
  REQUIRE(hv.ok());
  CHECK((*hv)->verify(m["hs256"], now()).ok());
  CHECK((*hv)->verify(m["hs256_wrong_secret"], now()).status().message() == "bad token signature");
  CHECK_THAT((*hv)->verify(m["rs256"], now()).status().message(), Catch::Contains("algorithm RS256 is not accepted"));
  CHECK_THAT((*hv)->verify(m["alg_none"], now()).status().message(), Catch::Contains("alg none"));
}

TEST_CASE("jwt: key files that are not keys are refused at load with the file named", "[net][auth][jwt]") {
  Minted m;
  TempDir d;
  auto load = [](tandem::net::JwtOptions o) { return tandem::net::JwtVerifier::Load(o).status(); };
  tandem::net::JwtOptions o;
  o.public_key_file = d.file("missing.pem");
  CHECK_THAT(load(o).message(), Catch::Contains("missing.pem"));
  std::ofstream(d.file("junk.pem")) << "hello";
  o.public_key_file = d.file("junk.pem");
  CHECK_THAT(load(o).message(), Catch::Contains("no PEM public key"));
  o = {};
  o.public_key_file = m.dir.file("ec.pem");
  CHECK(load(o).ok());  // ES256 from a PEM file
  std::ofstream(d.file("jwks.json")) << R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})";
  o = {};
  o.jwks_file = d.file("jwks.json");
  CHECK_THAT(load(o).message(), Catch::Contains("'oct' is not supported"));
  std::ofstream(d.file("jwks2.json")) << R"({"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]})";
  o.jwks_file = d.file("jwks2.json");
  CHECK_THAT(load(o).message(), Catch::Contains("not a valid EC public key"));  // (0, 0) is not on the curve
  std::ofstream(d.file("jwks2.json")) << R"({"keys":[{"kty":"EC","crv":"P-256","x":")" << std::string(44, 'A')
                                      << R"(","y":"AAAA"}]})";
  CHECK_THAT(load(o).message(), Catch::Contains("32 bytes, not 33"));
  std::ofstream(d.file("jwks3.json")) << R"([1,2])";
  o.jwks_file = d.file("jwks3.json");
  CHECK_THAT(load(o).message(), Catch::Contains("not a JWKS document"));
  o = {};
  o.hs256_secret = "short";
  CHECK_THAT(load(o).message(), Catch::Contains("at least 32 bytes"));
  // A server with a bad key file does not start.
  tandem::net::ServerOptions so;
  so.port = 0;
  so.jwt.public_key_file = d.file("junk.pem");
  so.log_silent = true;
  auto store = tandem::store::make_memory_store();
  tandem::net::Server server(so, store.get());
  CHECK_THAT(server.start().message(), Catch::Contains("no PEM public key"));
}

TEST_CASE("jwt: a server takes PyJWT's tokens on the WebSocket and refuses the bad ones", "[net][auth][jwt]") {
  Minted m;
  tandem::net::ServerOptions o;
  o.jwt = public_key_options(m);
  o.auth_secret = "own-format-secret";  // both kinds at once
  ServerFixture s(o);

  for (const char* bad : {"expired", "not_yet", "wrong_aud", "wrong_iss", "wrong_key", "alg_none", "confusion",
                          "tampered", "hs256"}) {
    RawWs raw;
    INFO(bad);
    CHECK(raw.refusal(s.port, "/ws/notes-1?token=" + m[bad]) == tandem::proto::kUnauthorized);
  }
  {
    RawWs raw;
    CHECK(raw.refusal(s.port, "/ws/secret-plans?token=" + m["rs256"]) == tandem::proto::kForbidden);
    RawWs other;
    CHECK(other.refusal(s.port, "/ws/notes-1?token=" + m["other_doc"]) == tandem::proto::kForbidden);
  }
  {
    RawWs raw;  // a read-only token that writes
    REQUIRE(raw.connect(s.port, "/ws/notes-1?token=" + m["read_only"]) == 101);
    raw.send(hello("reader/1"));
    auto w = proto::decode(raw.read().data);
    REQUIRE(w.ok());
    REQUIRE(std::get<proto::Welcome>(*w).read_only);
    OpRun r;
    r.agent = "reader/1";
    r.kind = OpKind::kInsert;
    r.len = 1;
    r.content = "x";
    proto::Ops ops;
    ops.batch_id = 1;
    ops.encoded = tandem::crdt::codec::encode_ops(OpBatch{{r}});
    raw.send(proto::encode(ops));
    CHECK(raw.read_until_closed().first == proto::kForbidden);
  }
  {
    RawWs raw;  // a subject writing as someone else
    REQUIRE(raw.connect(s.port, "/ws/notes-1?token=" + m["rs256"]) == 101);
    raw.send(hello("mallory/1"));
    CHECK(raw.read_until_closed().first == proto::kForbidden);
  }
  // The valid ones work through the native client: RS256 from the PEM, ES256 and RS256 from the
  // JWKS (each a writer of its own), and Tandem's own format beside them.
  std::vector<std::unique_ptr<tandem::net::Client>> clients;
  for (const auto& [token, doc] : std::vector<std::pair<std::string, std::string>>{
           {m["rs256"], "notes-1"}, {m["es256_jwks"], "notes-1"}, {m["rs256_jwks"], "notes-9"}, {m["aud_list"], "notes-1"},
           {tandem::net::sign_token({"dave", {"notes-*"}, true, now() + 600}, "own-format-secret"), "notes-1"}}) {
    tandem::net::ClientOptions co;
    co.url = s.url(doc);
    co.token = token;
    clients.push_back(std::make_unique<tandem::net::Client>(co));
    clients.back()->start();
    REQUIRE(clients.back()->insert(0, "x").ok());
  }
  for (auto& c : clients) {
    INFO(c->agent());
    CHECK(c->wait_synced(5s));
  }
  CHECK(clients[0]->agent().rfind("alice/", 0) == 0);
  CHECK(clients[1]->agent().rfind("carol/", 0) == 0);
}
