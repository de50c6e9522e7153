// The sync server: HTTP and WebSocket on one port (Boost.Beast), one room per open document.
//
// Clients speak docs/protocol.md on ws://HOST:PORT/ws/<doc-id>. A room loads its document on the
// first open, integrates every batch once, rebroadcasts the new operations to every other session
// at once, appends them to the DocStore, and acknowledges the batch to its author when the store
// says it is durable. Presence is relayed and dropped when a session leaves. A room unloads (after
// a snapshot) when its last session has been gone for the grace period.
//
// Everything a socket sends is validated (protocol.h, crdt/codec.h) and bounded (Options); a bad
// message gets an ERROR and a close, and changes nothing. A session that reads too slowly is
// closed (kTooSlow) rather than buffered without limit.
//
// Also served: GET /healthz, GET /metrics (Prometheus text), and the editor's static files.
//
// Threading: run() runs the I/O threads; stop() may be called from any thread (and is called on
// SIGTERM/SIGINT when handle_signals is set).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crdt/status.h"
#include "store/doc_store.h"
#include "net/jwt.h"
#include "net/webhook.h"

namespace tandem::net {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port (see Server::port())
  int threads = 0;       // 0: one per core
  std::string static_dir;  // the editor's files; empty: none

  // Security.
  std::string auth_secret;                   // auth.h tokens (`tandem token`); empty: not accepted
  JwtOptions jwt;                            // JWTs from the app's auth server (jwt.h); none: not accepted
                                             // neither: open, for local use (logged at start)
  std::vector<std::string> allowed_origins;  // exact matches; empty: any Origin
  std::string metrics_token;                 // /metrics wants "Authorization: Bearer <it>"; empty: open
  std::string tls_cert, tls_key;             // PEM files; both set: wss:// and https://

  // Limits.
  size_t max_frame_bytes = size_t{1} << 20;      // one WebSocket message from a client
  uint64_t max_batch_events = 100000;            // events in one OPS batch
  uint32_t max_doc_chars = 1u << 24;             // visible characters of a document
  uint64_t max_held_events = 100000;             // events held for missing dependencies, per document
  uint32_t max_connections = 20000;
  uint32_t max_connections_per_ip = 256;
  uint32_t max_messages_per_second = 200;        // per session, with a burst of as many
  size_t max_queue_bytes = size_t{8} << 20;      // unsent bytes per session before it is dropped
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds idle_timeout{60000};  // with pings every half of it
  std::chrono::milliseconds room_grace{10000};    // an empty room stays loaded this long

  // Broadcast pacing under load. While an I/O thread is short of CPU (busy more than 80% of the
  // time, its own or its share of the process's), a room on it sends at most one broadcast per
  // (its sessions x a pace that grows by half plus 100 us each probe, and halves below 65%),
  // never more than this apart, so that a large room's fan-out shrinks to what the CPU can carry
  // instead of the backlog growing without bound. A server keeping up broadcasts every batch at
  // the end of the round that read it. 0: never pace.
  std::chrono::milliseconds max_broadcast_delay{100};

  // Change webhooks (webhook.h): after a document's durable changes settle, a signed POST to
  // webhook.url. On stop(), up to webhook_drain for what is due to go out.
  WebhookOptions webhook;
  std::chrono::milliseconds webhook_drain{5000};

  // On stop(): /healthz answers 503 and new WebSockets are refused at once, but sessions are kept
  // this long before they are closed, so that a balancer checking /healthz stops sending new
  // clients here first (the sessions then reconnect through it to other nodes).
  std::chrono::milliseconds drain{0};

  // Snapshots: every N events or T of activity, and when a room unloads.
  uint64_t snapshot_every_events = 10000;
  std::chrono::milliseconds snapshot_every{60000};

  bool log_json = false;
  bool log_quiet = false;  // only warnings and errors
  bool log_silent = false;  // nothing at all (the protocol fuzzer)
  bool handle_signals = false;
};

class Server {
 public:
  // `store` must outlive the server.
  Server(ServerOptions options, store::DocStore* store);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the port. Errors: IOError (address in use, bad certificate, unreadable key file),
  // InvalidArgument (a JWT key file that holds no usable key, a bad webhook URL).
  crdt::Status start();
  uint16_t port() const;
  // Runs the I/O threads until stop() has finished its graceful shutdown.
  void run();
  // Fails /healthz and refuses new sessions, waits ServerOptions::drain, then stops accepting,
  // closes every session with "going away", snapshots open documents, flushes the store.
  // Returns at once; run() returns when it is done.
  void stop();
  // The /metrics text.
  std::string metrics() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::net
