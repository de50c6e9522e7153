#include "net/jwt.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace tandem::net {

using crdt::Result;
using crdt::Status;
using json = nlohmann::json;

struct JwtVerifier::Key {
  jwt_alg_t alg;
  std::string material;  // HS256: the secret; otherwise a PEM public key (what libjwt takes)
  std::string origin;    // for messages: "--jwt-secret", a file, "JWKS key 2 (kid ...)"
};

JwtVerifier::~JwtVerifier() = default;

namespace {

template <class T, void (*F)(T*)>
struct Freer {
  void operator()(T* p) const { F(p); }
};
using BioPtr = std::unique_ptr<BIO, Freer<BIO, BIO_free_all>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Freer<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Freer<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Freer<BIGNUM, BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Freer<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Freer<OSSL_PARAM, OSSL_PARAM_free>>;

void free_jwt(jwt_t* j) { jwt_free(j); }
using JwtPtr = std::unique_ptr<jwt_t, Freer<jwt_t, free_jwt>>;

Result<std::string> read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(std::string("cannot read the ") + what + " '" + path + "'");
  std::stringstream s;
  s << in.rdbuf();
  if (s.str().size() > (1u << 20)) return Status::InvalidArgument(std::string("the ") + what + " '" + path + "' is over 1 MiB");
  return s.str();
}

// The algorithm a public key signs with, or an error naming what it is.
Result<jwt_alg_t> alg_of(EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits(key) < 2048) return Status::InvalidArgument("RSA keys under 2048 bits are not accepted");
      return JWT_ALG_RS256;
    case EVP_PKEY_EC: {
      char group[64] = {0};
      size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1 ||
          std::string_view(group) != "prime256v1") {
        return Status::InvalidArgument(std::string("EC keys must be on P-256 (ES256), not '") + group + "'");
      }
      return JWT_ALG_ES256;
    }
    default:
      return Status::InvalidArgument("only RSA (RS256) and EC P-256 (ES256) public keys are accepted");
  }
}

Result<std::string> to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return Status::Internal("cannot write a PEM key");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// base64url (RFC 4648 section 5, no padding) through OpenSSL's decoder.
Result<std::string> b64url_decode(std::string_view in) {
  std::string s(in);
  for (char& c : s) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
    else if (c == '+' || c == '/' || c == '=') return Status::InvalidArgument("not base64url");
  }
  while (s.size() % 4) s += '=';
  std::string out(s.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(s.data()),
                                static_cast<int>(s.size()));
  if (n < 0) return Status::InvalidArgument("not base64url");
  size_t len = static_cast<size_t>(n);
  for (size_t k = s.size(); k > 0 && s[k - 1] == '='; --k) --len;  // EVP_DecodeBlock counts padding as zero bytes
  out.resize(len);
  return out;
}

Result<std::string> jwk_field(const json& k, const char* name) {
  if (!k.contains(name) || !k[name].is_string()) return Status::InvalidArgument(std::string("no '") + name + "'");
  auto v = b64url_decode(k[name].get<std::string>());
  if (!v.ok()) return Status::InvalidArgument(std::string("'") + name + "' is not base64url");
  if (v->empty()) return Status::InvalidArgument(std::string("'") + name + "' is empty");
  return v;
}

// One JWK (RFC 7518 section 6) as a public key.
Result<PkeyPtr> key_from_jwk(const json& k) {
  if (!k.is_object() || !k.contains("kty") || !k["kty"].is_string()) return Status::InvalidArgument("no 'kty'");
  const std::string kty = k["kty"].get<std::string>();
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  const char* type;
  BnPtr n, e;
  std::string point;
  if (kty == "RSA") {
    auto nb = jwk_field(k, "n");
    if (!nb.ok()) return nb.status();
    auto eb = jwk_field(k, "e");
    if (!eb.ok()) return eb.status();
    n.reset(BN_bin2bn(reinterpret_cast<const unsigned char*>(nb->data()), static_cast<int>(nb->size()), nullptr));
    e.reset(BN_bin2bn(reinterpret_cast<const unsigned char*>(eb->data()), static_cast<int>(eb->size()), nullptr));
    if (!n || !e || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get())) {
      return Status::Internal("cannot build an RSA key");
    }
    type = "RSA";
  } else if (kty == "EC") {
    if (!k.contains("crv") || k["crv"] != "P-256") return Status::InvalidArgument("EC keys must have crv P-256 (ES256)");
    auto x = jwk_field(k, "x");
    if (!x.ok()) return x.status();
    auto y = jwk_field(k, "y");
    if (!y.ok()) return y.status();
    // RFC 7518 6.2.1.2 wants all 32 bytes, but some issuers drop a coordinate's leading zero
    // bytes (PyJWT 2.6, Debian 12's, does): one key in 128 has one. The number is the same.
    if (x->size() > 32 || y->size() > 32 || x->empty() || y->empty()) {
      return Status::InvalidArgument("P-256 coordinates are 32 bytes, not " + std::to_string(std::max(x->size(), y->size())));
    }
    x->insert(0, 32 - x->size(), '\0');
    y->insert(0, 32 - y->size(), '\0');
    point = "\x04" + *x + *y;  // SEC 1 uncompressed point
    if (!OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
      return Status::Internal("cannot build an EC key");
    }
    type = "EC";
  } else {
    return Status::InvalidArgument("key type '" + kty + "' is not supported (RSA or EC)");
  }
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return Status::InvalidArgument("not a valid " + kty + " public key");
  }
  PkeyPtr key(raw);
  if (kty == "EC") {
    // fromdata takes any point; a key off the curve must not load.
    PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) return Status::InvalidArgument("the EC point is not on P-256");
  }
  return key;
}

std::string alg_name(jwt_alg_t a) { return a == JWT_ALG_INVAL ? "unknown" : jwt_alg_str(a); }

int64_t count_dots(std::string_view s) { return std::count(s.begin(), s.end(), '.'); }

}  // namespace

bool JwtVerifier::looks_like_jwt(std::string_view token) { return count_dots(token) == 2; }

Result<std::shared_ptr<const JwtVerifier>> JwtVerifier::Load(const JwtOptions& options) {
  std::shared_ptr<JwtVerifier> v(new JwtVerifier());
  v->opt_ = options;
  if (options.doc_claim.empty() || options.mode_claim.empty()) return Status::InvalidArgument("JWT claim names may not be empty");
  if (options.leeway_seconds < 0 || options.leeway_seconds > 3600) return Status::InvalidArgument("JWT leeway is 0 to 3600 seconds");
  if (!options.hs256_secret.empty()) {
    // RFC 7518 section 3.2: an HS256 key at least as long as the hash.
    if (options.hs256_secret.size() < 32) return Status::InvalidArgument("the HS256 secret must be at least 32 bytes");
    v->keys_.push_back({JWT_ALG_HS256, options.hs256_secret, "the HS256 secret"});
  }
  if (!options.public_key_file.empty()) {
    auto text = read_file(options.public_key_file, "public key file");
    if (!text.ok()) return text.status();
    BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
    PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
      return Status::InvalidArgument("'" + options.public_key_file + "' holds no PEM public key (-----BEGIN PUBLIC KEY-----)");
    }
    auto alg = alg_of(key.get());
    if (!alg.ok()) return alg.status().WithContext("'" + options.public_key_file + "'");
    auto pem = to_pem(key.get());
    if (!pem.ok()) return pem.status();
    v->keys_.push_back({*alg, *pem, "'" + options.public_key_file + "'"});
  }
  if (!options.jwks_file.empty()) {
    auto text = read_file(options.jwks_file, "JWKS file");
    if (!text.ok()) return text.status();
    const json doc = json::parse(*text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
      return Status::InvalidArgument("'" + options.jwks_file + "' is not a JWKS document ({\"keys\": [...]})");
    }
    size_t loaded = 0;
    for (size_t i = 0; i < doc["keys"].size(); ++i) {
      const json& k = doc["keys"][i];
      const std::string where = "'" + options.jwks_file + "' key " + std::to_string(i);
      if (k.is_object() && k.contains("use") && k["use"] != "sig") continue;  // an encryption key
      auto key = key_from_jwk(k);
      if (!key.ok()) return key.status().WithContext(where);
      auto alg = alg_of(key->get());
      if (!alg.ok()) return alg.status().WithContext(where);
      if (k.contains("alg") && k["alg"] != alg_name(*alg)) {
        return Status::InvalidArgument(where + ": its alg " + k["alg"].dump() + " is not " + alg_name(*alg));
      }
      auto pem = to_pem(key->get());
      if (!pem.ok()) return pem.status();
      v->keys_.push_back({*alg, *pem, where});
      ++loaded;
    }
    if (loaded == 0) return Status::InvalidArgument("'" + options.jwks_file + "' holds no signing key");
  }
  if (v->keys_.empty()) return Status::InvalidArgument("no JWT key configured");
  return std::shared_ptr<const JwtVerifier>(std::move(v));
}

Result<Token> JwtVerifier::verify(std::string_view token, int64_t now) const {
  if (token.size() > 8192) return Status::InvalidArgument("token over 8192 bytes");
  if (!looks_like_jwt(token)) return Status::InvalidArgument("malformed token: a JWT has three parts");
  const std::string text(token);

  // The header's algorithm first, without a key: only then is it safe to pick the key to check
  // the signature with (an HS256 token must never be checked against a public key as a secret).
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, text.c_str(), nullptr, 0) != 0) return Status::InvalidArgument("malformed token");
  JwtPtr unverified(raw);
  // (Decoded without a key, libjwt reports the algorithm as none whatever the header says.)
  const char* alg_text = jwt_get_header(unverified.get(), "alg");
  if (!alg_text) return Status::InvalidArgument("malformed token: no alg in its header");
  const jwt_alg_t alg = jwt_str_alg(alg_text);
  if (alg == JWT_ALG_NONE) return Status::InvalidArgument("unsigned token (alg none) refused");
  bool accepted = false;
  for (const Key& k : keys_) accepted = accepted || k.alg == alg;
  if (!accepted) {
    std::string want;
    for (const Key& k : keys_) {
      if (want.find(alg_name(k.alg)) == std::string::npos) want += (want.empty() ? "" : ", ") + alg_name(k.alg);
    }
    return Status::InvalidArgument("token algorithm " + alg_name(alg) + " is not accepted here (" + want + ")");
  }
  JwtPtr verified;
  for (const Key& k : keys_) {
    if (k.alg != alg) continue;
    raw = nullptr;
    if (jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(k.material.data()),
                   static_cast<int>(k.material.size())) == 0) {
      verified.reset(raw);
      if (jwt_get_alg(verified.get()) == alg) break;
      verified.reset();  // cannot happen: the header was read above
    }
  }
  if (!verified) return Status::InvalidArgument("bad token signature");

  char* claims_text = jwt_get_grants_json(verified.get(), nullptr);
  if (!claims_text) return Status::InvalidArgument("token has no claims");
  const json claims = json::parse(claims_text, nullptr, false);
  std::free(claims_text);
  if (claims.is_discarded() || !claims.is_object()) return Status::InvalidArgument("token claims are not a JSON object");

  auto number = [&](const char* name, int64_t* out) -> bool {
    if (!claims.contains(name)) return false;
    const json& v = claims[name];
    if (!v.is_number()) return false;
    *out = v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>();
    return true;
  };
  int64_t exp = 0, nbf = 0;
  if (!claims.contains("exp")) return Status::InvalidArgument("token has no exp claim (tokens must expire)");
  if (!number("exp", &exp)) return Status::InvalidArgument("token exp is not a number");
  if (exp + opt_.leeway_seconds <= now) return Status::OutOfRange("token expired");
  if (claims.contains("nbf")) {
    if (!number("nbf", &nbf)) return Status::InvalidArgument("token nbf is not a number");
    if (nbf - opt_.leeway_seconds > now) return Status::OutOfRange("token not valid yet (nbf)");
  }
  if (!opt_.audience.empty()) {
    bool ok = false;
    if (claims.contains("aud") && claims["aud"].is_string()) ok = claims["aud"] == opt_.audience;
    if (claims.contains("aud") && claims["aud"].is_array()) {
      for (const auto& a : claims["aud"]) ok = ok || a == opt_.audience;
    }
    if (!ok) {
      return Status::InvalidArgument("token audience " + (claims.contains("aud") ? claims["aud"].dump() : std::string("(none)")) +
                                     " is not '" + opt_.audience + "'");
    }
  }
  if (!opt_.issuer.empty() && !(claims.contains("iss") && claims["iss"] == opt_.issuer)) {
    return Status::InvalidArgument("token issuer " + (claims.contains("iss") ? claims["iss"].dump() : std::string("(none)")) +
                                   " is not '" + opt_.issuer + "'");
  }
  Token t;
  if (!claims.contains("sub") || !claims["sub"].is_string() || claims["sub"].get<std::string>().empty()) {
    return Status::InvalidArgument("token has no sub claim (who it is for)");
  }
  t.subject = claims["sub"].get<std::string>();
  if (!claims.contains(opt_.doc_claim)) {
    return Status::InvalidArgument("token has no '" + opt_.doc_claim + "' claim (which documents it grants)");
  }
  const json& docs = claims[opt_.doc_claim];
  auto add_pattern = [&](const json& p) {
    if (!p.is_string() || p.get<std::string>().empty() || p.get<std::string>().size() > 256) return false;
    t.doc_patterns.push_back(p.get<std::string>());
    return true;
  };
  bool docs_ok = docs.is_string() ? add_pattern(docs) : docs.is_array() && !docs.empty() && docs.size() <= 64;
  if (docs.is_array()) {
    for (const auto& p : docs) docs_ok = docs_ok && add_pattern(p);
  }
  if (!docs_ok) {
    return Status::InvalidArgument("token claim '" + opt_.doc_claim + "' must be a document pattern or an array of 1-64 of them");
  }
  if (claims.contains(opt_.mode_claim)) {
    const json& m = claims[opt_.mode_claim];
    if (m != "read" && m != "write") {
      return Status::InvalidArgument("token claim '" + opt_.mode_claim + "' is " + m.dump() + ", not \"read\" or \"write\"");
    }
    t.write = m == "write";
  }
  t.expires = exp;
  return t;
}

}  // namespace tandem::net
