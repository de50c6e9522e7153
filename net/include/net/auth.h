// Access tokens of Tandem's own format (`tandem token`; for JSON Web Tokens from an app's auth
// server, see jwt.h): HMAC-SHA256-signed, carrying who, which documents, read or write, and until when.
//
//   token   = base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))
//   payload = "v1|" subject "|" doc-pattern "|" ("r" | "w") "|" expiry (seconds since 1970)
//
// The subject and pattern may not contain '|'. A pattern is a document id, or a prefix followed by
// '*' ("notes-*"), or "*". With auth on, a session's agents must be the subject or start with
// "<subject>/", so that nobody writes operations in someone else's name.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace tandem::net {

struct Token {
  std::string subject;
  std::vector<std::string> doc_patterns;  // this format carries one; a JWT may carry several
  bool write = false;
  int64_t expires = 0;  // seconds since 1970

  bool grants(std::string_view doc) const;
};

// REQUIRES: t.doc_patterns holds exactly one pattern.
std::string sign_token(const Token& t, std::string_view secret);
// Errors: InvalidArgument (malformed, forged: "bad signature"), OutOfRange (expired).
crdt::Result<Token> verify_token(std::string_view token, std::string_view secret, int64_t now_seconds);
bool pattern_matches(std::string_view pattern, std::string_view doc);
// Whether two secrets are equal, in time that depends on their lengths only.
bool same_secret(std::string_view a, std::string_view b);

}  // namespace tandem::net
