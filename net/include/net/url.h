// The one parser of the URLs Tandem dials: the native client's ws:// and wss://, the webhook's
// http:// and https://, tandem-load's servers. scheme://host[:port][/path][?query], with a host
// name, an IPv4 address or a [IPv6] address; no user:password@ and no #fragment (neither is
// ever sent). Errors name the URL and what is wrong with it.
#pragma once

#include <string>
#include <string_view>

#include "crdt/status.h"

namespace tandem::net {

struct Url {
  std::string scheme;       // lower case
  bool tls = false;         // https or wss
  std::string host;         // as resolved and verified: an IPv6 literal without its brackets
  std::string port;         // decimal, the scheme's default when the URL has none
  std::string host_header;  // as the Host header carries it
  std::string path;         // origin form ("/hook?x=1"), never empty
  bool ip_literal = false;  // no SNI for an address (RFC 6066 allows names only)
};

enum class UrlKind { kWebSocket, kHttp };

// `what` names the URL in errors ("webhook URL", "server URL").
crdt::Result<Url> ParseUrl(std::string_view url, UrlKind kind, std::string_view what);

}  // namespace tandem::net
