#include "session.h"

#include <algorithm>
#include <exception>

#include "crdt/codec.h"
#include "net/auth.h"

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
  proto::Limits lim;
  lim.max_frame_bytes = srv_.opt.max_frame_bytes;
  auto msg = proto::decode(frame, lim);
  if (!msg.ok()) {
    close_with(proto::kBadMessage, msg.status().message());
    return;
  }
  if (auto* h = std::get_if<proto::Hello>(&*msg)) {
    on_hello(std::move(*h));
  } else if (!room_) {
    close_with(proto::kBadMessage, "the first message must be HELLO");
  } else if (auto* o = std::get_if<proto::Ops>(&*msg)) {
    on_ops(std::move(*o));
  } else if (auto* p = std::get_if<proto::Presence>(&*msg)) {
    room_->presence(shared_from_this(), std::move(*p));
  } else {
    close_with(proto::kBadMessage, "clients may send HELLO, OPS and PRESENCE only");
  }
}

void ClientSession::on_hello(proto::Hello h) {
  if (room_) {
    close_with(proto::kBadMessage, "HELLO twice");
    return;
  }
  if (h.version != proto::kProtocolVersion) {
    close_with(proto::kUnsupportedVersion, "protocol version " + std::to_string(h.version) + " is not supported; this server speaks " +
                                               std::to_string(proto::kProtocolVersion));
    return;
  }
  if (!subject_.empty()) {
    for (const auto& a : h.agents) {
      if (!agent_belongs_to(a, subject_)) {
        close_with(proto::kForbidden, "agent '" + a + "' is not '" + subject_ + "' or '" + subject_ + "/...'");
        return;
      }
    }
  }
  id = srv_.next_session++;
  agents = std::move(h.agents);
  on_joined();
  room_ = srv_.room(doc_);
  if (!room_) {
    close_plain(1001, "server going away");
    return;
  }
  room_->join(shared_from_this(), std::move(h));
}

void ClientSession::on_ops(proto::Ops o) {
  const auto received = Clock::now();
  if (read_only) {
    close_with(proto::kForbidden, "this session is read-only");
    return;
  }
  crdt::codec::DecodeLimits lim;
  lim.max_bytes = srv_.opt.max_frame_bytes;
  lim.max_runs = static_cast<uint32_t>(std::min<uint64_t>(srv_.opt.max_batch_events, UINT32_MAX));
  auto batch = crdt::codec::decode_ops(o.encoded, lim);
  if (!batch.ok()) {
    const uint16_t code = batch.status().code() == Status::Code::kResourceExhausted ? proto::kTooLarge : proto::kBadMessage;
    close_with(code, batch.status().message());
    return;
  }
  if (Status form = crdt::Doc::ValidateBatch(*batch); !form.ok()) {
    close_with(proto::kBadMessage, form.message());
    return;
  }
  if (batch->events() > srv_.opt.max_batch_events) {
    close_with(proto::kTooLarge, "a batch of " + std::to_string(batch->events()) + " operations (limit " +
                                     std::to_string(srv_.opt.max_batch_events) + ")");
    return;
  }
  for (const auto& r : batch->runs) {
    if (std::find(agents.begin(), agents.end(), r.agent) == agents.end()) {
      close_with(proto::kForbidden, "operations by agent '" + r.agent + "', which this session does not own");
      return;
    }
  }
  room_->ops(shared_from_this(), o.batch_id, std::move(*batch), received);
}

}  // namespace tandem::net
