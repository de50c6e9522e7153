#include "net/url.h"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cctype>

namespace tandem::net {

namespace asio = boost::asio;
using crdt::Status;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

crdt::Result<Url> ParseUrl(std::string_view url_view, UrlKind kind, std::string_view what) {
  const std::string url(url_view);
  auto bad = [&](const std::string& why) { return Status::InvalidArgument(std::string(what) + " \"" + url + "\": " + why); };
  Url result;
  Url* out = &result;
  for (unsigned char c : url) {
    // They would end the request line or a header early.
    if (c <= 0x20 || c == 0x7f) return bad("contains a space or a control character");
  }
  const size_t sep = url.find("://");
  const bool ws = kind == UrlKind::kWebSocket;
  const char* plain = ws ? "ws" : "http";
  const char* secure = ws ? "wss" : "https";
  if (sep == std::string::npos) {
    return bad(std::string("expected ") + plain + "://host[:port]/path or " + secure + "://host[:port]/path");
  }
  const std::string scheme = lower(url.substr(0, sep));
  if (scheme == secure) {
    out->tls = true;
  } else if (scheme != plain) {
    return bad(std::string("the scheme must be ") + plain + " or " + secure + ", not \"" + url.substr(0, sep) + "\"");
  }
  out->scheme = scheme;
  const std::string rest = url.substr(sep + 3);
  const size_t end = rest.find_first_of("/?#");
  const std::string authority = rest.substr(0, end);
  std::string path = end == std::string::npos ? "/" : rest.substr(end);
  if (path.find('#') != std::string::npos) return bad("has a fragment (#...), which is never sent");
  if (path[0] == '?') path.insert(0, "/");
  if (authority.find('@') != std::string::npos) return bad("user:password@ is not supported");
  if (authority.empty()) return bad("has no host");

  std::string host, port;
  bool has_port = false;
  if (authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return bad("has an unterminated [IPv6] host");
    host = authority.substr(1, close - 1);
    const std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("has text after the [IPv6] host");
      port = after.substr(1);
      has_port = true;
    }
    boost::system::error_code ec;
    asio::ip::make_address_v6(host, ec);
    if (ec) return bad("[" + host + "] is not an IPv6 address");
    out->ip_literal = true;
  } else {
    const size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
    for (char c : host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
        return bad("the host \"" + host + "\" may hold only letters, digits, '-', '.' and '_'");
      }
    }
    boost::system::error_code ec;
    asio::ip::make_address_v4(host, ec);
    out->ip_literal = !ec;
  }
  if (host.empty()) return bad("has no host");
  const std::string default_port = out->tls ? "443" : "80";
  if (has_port) {
    if (!all_digits(port) || port.size() > 5 || std::stoul(port) == 0 || std::stoul(port) > 65535) {
      return bad("the port \"" + port + "\" is not a number from 1 to 65535");
    }
    port = std::to_string(std::stoul(port));  // "0080" -> "80"
  } else {
    port = default_port;
  }
  out->host = host;
  out->port = port;
  out->host_header = (out->ip_literal && host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                     (port == default_port ? "" : ":" + port);
  out->path = path;
  return result;
}


}  // namespace tandem::net
