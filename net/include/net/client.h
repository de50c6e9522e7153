// Client: a document on a Tandem server, edited locally, kept in sync in the background: the
// transport (a WebSocket, reconnects, a network thread) around sync::ClientSync, which decides
// everything the protocol does.
//
// Edits apply at once to a local replica and are sent when a connection is up; remote changes
// arrive as patches. The connection is kept alive whatever happens: on any loss it reconnects
// with exponential backoff and jitter, and on every (re)connect the server sends what the client
// lacks and the client resends everything of its own the server does not hold yet (edits made
// offline included). An edit counts as safe once the server has acknowledged it durable.
//
// Threading: every method may be called from any thread. Callbacks run on the client's own
// network thread: keep them short, and do not call wait_synced() from them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crdt/doc.h"
#include "crdt/op.h"
#include "crdt/status.h"
#include "sync/client.h"
#include "sync/protocol.h"

namespace tandem::net {

struct ClientOptions {
  std::string url;    // ws://HOST:PORT/ws/<doc-id> or wss://...
  std::string agent;  // this replica's name; empty: "client-" and 12 random hex digits, or, with a
                      // token, "<its subject>/" and 12 random hex digits
  std::string token;  // when the server requires one
  std::string origin; // sent as the Origin header when set
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{10000};
  std::chrono::milliseconds connect_timeout{5000};
  size_t max_frame_bytes = size_t{256} << 20;  // largest message accepted from the server
  uint64_t max_batch_events = 100000;          // larger sends are split (the server's default limit)
  size_t max_batch_bytes = size_t{512} << 10;  // ... and so are batches whose text passes this
  bool tls_verify = true;                      // wss: check the server's certificate
};

enum class ClientState { kOffline, kConnecting, kConnected };
const char* ClientStateName(ClientState s);

struct PeerPresence {
  uint64_t session = 0;
  std::string agent;
  proto::Presence presence;
};

class Client {
 public:
  explicit Client(ClientOptions options);
  // A client that goes on from what save() returned (possibly in an earlier process): the same
  // replica, and its edits the server had not acknowledged are sent when it connects. It writes
  // as a new agent (options.agent, or a fresh default one): a save may be older than what the
  // client sent before it stopped, and going on as the saved agent could give two edits one id.
  // Errors: Corruption (not save()'s bytes), InvalidArgument (options.agent already wrote in it).
  static crdt::Result<std::unique_ptr<Client>> Restore(ClientOptions options, std::string_view state);
  // Disconnects and stops the network thread.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts connecting (and keeps reconnecting) in the background.
  void start();
  // Closes the connection and stops reconnecting (offline); start() connects again.
  void stop();
  // Drops the current connection as a network failure would; it reconnects after the backoff.
  void drop_connection();

  crdt::Status insert(uint32_t pos, std::string_view text);
  crdt::Status remove(uint32_t pos, uint32_t len);
  // Rich text, as crdt::Doc's calls of the same names (crdt/format.h).
  crdt::Status mark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value);
  crdt::Status unmark(uint32_t pos, uint32_t len, std::string_view name, std::string_view value = {});
  crdt::Status set_block(uint32_t pos, std::string_view type, std::string_view value = {});
  std::vector<crdt::TextSpan> spans() const;
  std::vector<crdt::Block> blocks() const;
  void set_presence(proto::Presence p);

  std::string text() const;
  uint32_t length() const;  // in code points, the unit of insert() and remove() positions
  crdt::Version version() const;
  const std::string& agent() const;
  ClientState state() const;
  // Own operations (events) not yet acknowledged durable by the server.
  uint64_t unacknowledged() const;
  // The server said this session may only read: own edits stay local.
  bool read_only() const;
  // Until connected, caught up with what the server held when it welcomed this connection, and
  // with every own edit acknowledged durable (true); or the timeout, or a refusal for good (see
  // refusal()) (false, at once). Two limits: "caught up" is judged by the WELCOME's version, so
  // after a server lost undurable operations of other clients this may return before those
  // clients resent them; and a read-only session with local edits never syncs (its edits are
  // never sent), so this waits for the whole timeout.
  bool wait_synced(std::chrono::milliseconds timeout);
  // Why the client stopped for good, when the server refused it in a way another try cannot fix
  // (an error code of on_error's list below, with its message; code 0: a bad URL); nullopt
  // while it is connected or still trying. start() or set_token() try again.
  std::optional<std::pair<uint16_t, std::string>> refusal() const;
  // A fresh access token, for the next connections (a short-lived JWT renewed by the app): when
  // connected it reconnects with it at once; when refused for its token (4401, 4403) it tries
  // again. Errors: InvalidArgument when the token is for another subject than this client's
  // agent ("<subject>/..."): open a new client for another user.
  crdt::Status set_token(std::string token);
  // The replica and which of its own edits the server acknowledged, as bytes for Restore(): edits
  // made offline survive the process (save after editing, e.g. when the app goes to background).
  std::string save() const;
  // Until the local replica holds everything in `v`, or the timeout.
  bool wait_for(const crdt::Version& v, std::chrono::milliseconds timeout);

  void on_change(std::function<void(const std::vector<crdt::Patch>&)> f);
  void on_state(std::function<void(ClientState)> f);
  void on_presence(std::function<void(const PeerPresence&)> f);
  void on_leave(std::function<void(uint64_t session)> f);
  // The server's ERROR before it closed the connection. After errors that retrying cannot fix
  // (4400, 4401, 4403, 4409, 4410, 4413, 4422, 4426) the client stays offline until start() or
  // set_token() is called. An upgrade refused with HTTP 400/404 or 401/403 (an older server, or
  // an Origin the server does not allow) is reported (and ends the reconnecting) as 4400 or
  // 4403, with the HTTP status in the message.
  void on_error(std::function<void(uint16_t code, const std::string& message)> f);

  struct Impl;

 private:
  Client(ClientOptions options, std::optional<sync::ClientSync> restored);
  std::shared_ptr<Impl> impl_;
};

}  // namespace tandem::net
