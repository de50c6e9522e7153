// Client: a document on a Tandem server, edited locally, kept in sync in the background.
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
#include <vector>

#include "crdt/doc.h"
#include "crdt/op.h"
#include "crdt/status.h"
#include "net/protocol.h"

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
  // with every own edit acknowledged durable; or the timeout. Two limits: "caught up" is judged
  // by the WELCOME's version, so after a server lost undurable operations of other clients this
  // may return before those clients resent them; and a read-only session with local edits never
  // syncs (its edits are never sent), so this waits for the whole timeout.
  bool wait_synced(std::chrono::milliseconds timeout);
  // Until the local replica holds everything in `v`, or the timeout.
  bool wait_for(const crdt::Version& v, std::chrono::milliseconds timeout);

  void on_change(std::function<void(const std::vector<crdt::Patch>&)> f);
  void on_state(std::function<void(ClientState)> f);
  void on_presence(std::function<void(const PeerPresence&)> f);
  void on_leave(std::function<void(uint64_t session)> f);
  // The server's ERROR before it closed the connection. After errors that retrying cannot fix
  // (4400, 4403, 4409, 4413, 4422, 4426) the client stays offline until start() is called again.
  // An upgrade refused with HTTP 400/404 or 401/403 is reported (and ends the reconnecting) as
  // 4400 or 4403, with the HTTP status in the message.
  void on_error(std::function<void(uint16_t code, const std::string& message)> f);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace tandem::net
