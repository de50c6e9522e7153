// The HTTP API for an app's backend (docs/http-api.md): list documents, read one (now or as it
// was), its history (sessions, blame, diffs), apply an edit as a named agent as of a version,
// import Markdown, delete one. JSON in and out; errors as
// {"error": {"code", "message"}}; the same tokens as the WebSocket (auth.h, jwt.h).
//
// Reads and edits of the current document go through its room, on the room's thread, so that an
// edit reaches every connected editor at once and is answered only when the store says it is
// durable. Listing, rebuilding past versions and history read the store, which may block: they
// run on `blocking`, never on an I/O thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <string>

#include "room.h"

namespace tandem::net {

struct ApiRequest {
  std::string method;  // GET, POST, DELETE
  std::string target;  // path and query
  std::string body;
  std::string token;   // ?token= or Authorization: Bearer
  std::string content_type;
};

struct ApiResponse {
  unsigned status = 200;
  std::string body;  // JSON
};

// Document ids: [A-Za-z0-9._-]{1,128}.
bool valid_doc_id(std::string_view id);
// The value of `key` in the target's query, percent-decoded ("+" as a space), or "".
std::string query_param(std::string_view target, std::string_view key);
// True for the paths handle_api answers.
bool is_api_path(std::string_view path);
// Answers `req` through `reply`, exactly once, from any thread.
void handle_api(Server::Impl& srv, boost::asio::any_io_executor blocking, ApiRequest req,
                std::function<void(ApiResponse)> reply);
// An error body: {"error": {"code": code, "message": message}}.
ApiResponse api_error(unsigned status, std::string_view code, std::string_view message);

}  // namespace tandem::net
