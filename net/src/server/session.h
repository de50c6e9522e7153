// ClientSession: the protocol side of a client's session, apart from its socket. Each message
// the client sends is checked (binary and rate here; shape, agents it owns and limits by
// sync::PeerSync) and handed to the document's room, or answered with ERROR and a close. WsSession (server.cc) runs it on a
// WebSocket; the protocol fuzzer (fuzz/session_fuzz.cc) drives it with no socket at all.
//
// Calls come in order, from the session's I/O thread. An exception thrown while handling a message (a bug, or
// memory exhausted) is logged and closes this session alone, with kInternal.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "room.h"

namespace tandem::net {

class ClientSession : public Session {
 public:
  // subject: the token's subject ("" for an open server), which every agent must belong to;
  // expires: the token's expiry in seconds since 1970 (0: none).
  ClientSession(Server::Impl& srv, std::string doc, std::string subject, int64_t expires);

  // One complete message from the client.
  void on_message(std::string_view frame, bool binary);
  // The connection is gone: leave the room, if joined.
  void leave();
  bool joined() const { return room_ != nullptr; }

 protected:
  // HELLO was accepted; the session is about to join its room.
  virtual void on_joined() {}

  Server::Impl& srv_;
  const std::string doc_;
  const std::string subject_;
  const int64_t expires_;

 private:
  bool take_token();
  void handle(std::string_view frame);
  void on_hello(proto::Hello h);

  std::optional<sync::PeerSync> peer_;  // made at the first message, when read_only is known
  std::shared_ptr<Room> room_;
  double tokens_ = 0;
  Clock::time_point last_refill_;
};

}  // namespace tandem::net
