#include "net/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <vector>

namespace tandem::net {

using crdt::Result;
using crdt::Status;

namespace {

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kB64[(acc >> bits) & 63];
    }
  }
  if (bits) out += kB64[(acc << (6 - bits)) & 63];
  return out;
}

bool unb64url(std::string_view in, std::string* out) {
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '-') v = 62;
    else if (c == '_') v = 63;
    else return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Only the canonical encoding: no dangling character, and the unused low bits of the last one
  // zero. Otherwise several strings decode alike, and a changed token could still verify.
  return bits < 6 && (acc & ((1u << bits) - 1)) == 0;
}

std::string hmac(std::string_view secret, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t at = 0;
  for (;;) {
    const size_t i = s.find(sep, at);
    out.push_back(s.substr(at, i == std::string_view::npos ? std::string_view::npos : i - at));
    if (i == std::string_view::npos) return out;
    at = i + 1;
  }
}

}  // namespace

std::string sign_token(const Token& t, std::string_view secret) {
  const std::string payload =
      b64url("v1|" + t.subject + "|" + t.doc_patterns.at(0) + "|" + (t.write ? "w" : "r") + "|" + std::to_string(t.expires));
  return payload + "." + b64url(hmac(secret, payload));
}

Result<Token> verify_token(std::string_view token, std::string_view secret, int64_t now_seconds) {
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos || token.size() > 4096) return Status::InvalidArgument("malformed token");
  const std::string_view payload = token.substr(0, dot);
  // The signature is compared as text with the canonical encoding of the expected MAC.
  const std::string_view sig = token.substr(dot + 1);
  const std::string want = b64url(hmac(secret, payload));
  if (sig.size() != want.size() || CRYPTO_memcmp(sig.data(), want.data(), want.size()) != 0) {
    return Status::InvalidArgument("bad token signature");
  }
  std::string text;
  if (!unb64url(payload, &text)) return Status::InvalidArgument("malformed token");
  const auto f = split(text, '|');
  if (f.size() != 5 || f[0] != "v1" || f[1].empty() || f[2].empty() || (f[3] != "r" && f[3] != "w") || f[4].empty() ||
      f[4].find_first_not_of("0123456789") != std::string_view::npos || f[4].size() > 18) {
    return Status::InvalidArgument("malformed token payload");
  }
  Token t{std::string(f[1]), {std::string(f[2])}, f[3] == "w", std::stoll(std::string(f[4]))};
  if (t.expires <= now_seconds) return Status::OutOfRange("token expired");
  return t;
}

bool Token::grants(std::string_view doc) const {
  for (const auto& p : doc_patterns) {
    if (pattern_matches(p, doc)) return true;
  }
  return false;
}

bool pattern_matches(std::string_view pattern, std::string_view doc) {
  if (!pattern.empty() && pattern.back() == '*') return doc.substr(0, pattern.size() - 1) == pattern.substr(0, pattern.size() - 1);
  return pattern == doc;
}

bool same_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tandem::net
