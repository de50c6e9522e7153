#include "session.h"

#include <algorithm>
#include <exception>


namespace tandem::net {

using crdt::Status;

ClientSession::ClientSession(Server::Impl& srv, std::string doc, std::string subject, int64_t expires)
    : srv_(srv), doc_(std::move(doc)), subject_(std::move(subject)), expires_(expires) {
  tokens_ = srv_.opt.max_messages_per_second;
  last_refill_ = Clock::now();
}

void ClientSession::on_message(std::string_view frame, bool binary) {
  if (!binary) {
    close_with(proto::kBadMessage, "text frames are not part of the protocol; send binary msgpack");
    return;
  }
  if (!take_token()) {
    close_with(proto::kRateLimited, "more than " + std::to_string(srv_.opt.max_messages_per_second) +
                                        " messages per second");
    return;
  }
  try {
    handle(frame);
  } catch (const std::exception& e) {
    srv_.log.error("session.exception", {{"doc", doc_}, {"session", std::to_string(id)}, {"error", e.what()}});
    close_with(proto::kInternal, "internal error");
  }
}

void ClientSession::leave() {
  if (room_) room_->leave(shared_from_this());
}

bool ClientSession::take_token() {
  const auto now = Clock::now();
  const double rate = srv_.opt.max_messages_per_second;
  tokens_ = std::min(rate, tokens_ + rate * std::chrono::duration<double>(now - last_refill_).count());
  last_refill_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

void ClientSession::handle(std::string_view frame) {
  if (!peer_) {
    sync::ServerLimits lim;
    lim.max_message_bytes = srv_.opt.max_frame_bytes;
    lim.max_batch_events = srv_.opt.max_batch_events;
    lim.max_held_events = srv_.opt.max_held_events;
    peer_.emplace(subject_, read_only, lim);
  }
  const auto received = Clock::now();
  auto in = peer_->receive(frame);
  if (auto* no = std::get_if<sync::Refusal>(&in)) {
    close_with(no->code, std::move(no->message));
  } else if (auto* h = std::get_if<proto::Hello>(&in)) {
    on_hello(std::move(*h));
  } else if (auto* b = std::get_if<sync::Batch>(&in)) {
    room_->ops(shared_from_this(), std::move(*b), received);
  } else if (auto* p = std::get_if<proto::Presence>(&in)) {
    room_->presence(shared_from_this(), std::move(*p));
  }
}

void ClientSession::on_hello(proto::Hello h) {
  id = srv_.next_session++;
  agents = h.agents;
  on_joined();
  room_ = srv_.room(doc_);
  if (!room_) {
    close_plain(1001, "server going away");
    return;
  }
  room_->join(shared_from_this(), std::move(h));
}

}  // namespace tandem::net
