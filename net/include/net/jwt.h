// JSON Web Tokens (RFC 7519) from the app's own auth server, verified with libjwt.
//
// Accepted: HS256 with a shared secret, RS256 or ES256 (P-256) with a public key from a PEM file
// or a JWKS file (RFC 7517; several keys: the one whose signature verifies). The algorithm in the
// token's header must be one the configured keys are for: "none" and an HS256 token presented
// where only public keys are configured (signed with the public key as an HMAC secret, the
// classic key confusion) are refused before any signature check. Claims checked: `exp` (required),
// `nbf`, `aud` (string or array) and `iss` when configured, `sub` (required: sessions' agents
// must belong to it, see auth.h). The documents come from a claim holding a pattern or an array
// of patterns (auth.h's syntax), the mode from a claim "read" or "write" (absent: read).
//
// Thread-safety: a loaded verifier is immutable; verify() may run on any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"
#include "net/auth.h"

namespace tandem::net {

struct JwtOptions {
  std::string hs256_secret;     // HS256; empty: none
  std::string public_key_file;  // PEM public key (RSA: RS256, EC P-256: ES256); empty: none
  std::string jwks_file;        // a JWKS document of RSA and P-256 keys; empty: none
  std::string audience;         // expected `aud`; empty: not checked
  std::string issuer;           // expected `iss`; empty: not checked
  std::string doc_claim = "doc";    // the documents a token grants
  std::string mode_claim = "mode";  // "read" or "write"
  int64_t leeway_seconds = 0;       // clock skew allowed on exp and nbf

  bool enabled() const { return !hs256_secret.empty() || !public_key_file.empty() || !jwks_file.empty(); }
};

class JwtVerifier {
 public:
  // Reads and checks the key files. Errors: InvalidArgument or IOError naming the file and what
  // is wrong with it (unreadable, not a public key, a key type or curve not supported).
  static crdt::Result<std::shared_ptr<const JwtVerifier>> Load(const JwtOptions& options);

  // The token's grant. Errors, each with its own message: InvalidArgument (malformed, bad
  // signature, algorithm not accepted, missing or bad claims, wrong audience or issuer),
  // OutOfRange (expired, not yet valid).
  crdt::Result<Token> verify(std::string_view token, int64_t now_seconds) const;

  // True for text shaped like a JWT (three dot-separated parts): what tells it from auth.h's tokens.
  static bool looks_like_jwt(std::string_view token);

  struct Key;
  ~JwtVerifier();

 private:
  JwtVerifier() = default;
  JwtOptions opt_;
  std::vector<Key> keys_;
};

}  // namespace tandem::net
