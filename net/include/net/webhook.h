// Webhooks: after a document's changes settle, POST a small signed JSON about it to one URL.
//
// These are state notifications, not an event log: a POST says "document D is now at version V
// (N events), changed by these agents since the last notification that got through, last at T".
// The receiver reads the document itself if it needs the content. So changes to one document
// coalesce (memory stays bounded by the number of documents with undelivered changes), and a
// receiver only ever needs the newest notification of each document.
//
// Guarantees (and what they do not cover):
//  1. Debounce: each change restarts its document's timer; when `debounce` passes without one,
//     one delivery is due. Changes that arrive while that delivery waits for a slot or for its
//     next retry join it (no new debounce): the next attempt carries the newest state.
//  2. Retry: anything but a 2xx answer within `timeout` (refused, reset, timed out, 4xx, 5xx) is
//     retried after first_retry, then twice as long each time up to max_retry, each plus up to
//     10% jitter, for `retry_window` after the newest change the delivery carries settled. A
//     change that joins a delivery counts as settled when the next attempt takes it, so it
//     extends the window: the payload is the newest state, and dropping it because an older
//     change waited long would lose a change the receiver could still have had. A last attempt
//     falls on the window's end, so a receiver that comes back within the window gets the
//     delivery. Past it the delivery is dropped, logged and counted.
//  3. Delivery id (body "delivery", header X-Tandem-Delivery) names one payload: every retry of
//     the same payload carries the same id, so a receiver may discard duplicates by id. A change
//     that joins a delivery after an attempt was made changes the payload, so it gets a new id
//     (a receiver that saw the older attempt must not discard the newer state as a duplicate).
//  4. At least once, not exactly once: a receiver that answered after the timeout, or whose 2xx
//     was lost, sees the same delivery again. Notifications of one document are never in flight
//     at the same time, but a dropped one is not sent again (the next change brings a new one).
//  5. Stopping (the destructor) sends nothing more: what is not yet delivered is logged as dropped.
//
// Signature (when a secret is set): X-Tandem-Signature: sha256=<hex HMAC-SHA256(secret,
// X-Tandem-Timestamp + "." + body)>. The timestamp (unix seconds of the attempt) is signed too so
// that a receiver can refuse an old request replayed to it.
//
// Threading: changed(), drain() and stats() may be called from any thread. Delivery runs on the
// object's own thread and io_context, so a slow or dead receiver never holds an editing thread;
// `log` is called on that thread. The destructor must not run concurrently with other calls.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"
#include "crdt/version.h"

namespace tandem::net {

struct WebhookOptions {
  std::string url;                  // http://host[:port]/path or https://...; empty: no webhooks
  std::string secret;               // HMAC-SHA256 key for the X-Tandem-Signature header; empty: unsigned
  std::chrono::milliseconds debounce{2000};      // a document's changes settle this long before one POST
  std::chrono::milliseconds timeout{10000};      // per attempt (connect + send + response)
  std::chrono::milliseconds first_retry{1000};   // backoff doubles from here ...
  std::chrono::milliseconds max_retry{60000};    // ... up to this
  std::chrono::milliseconds retry_window{3600000};  // a change not delivered this long after it settled is dropped (logged)
  size_t max_in_flight = 4;          // concurrent POSTs
};

// Parses and checks the options (URL scheme/host/port/path, durations, max_in_flight). An empty
// url is valid (no webhooks). Errors: InvalidArgument naming what is wrong.
crdt::Status ValidateWebhookOptions(const WebhookOptions&);

class Webhooks {
 public:
  // event: a short stable name ("webhook.delivered", "webhook.failed", "webhook.dropped");
  // detail: "doc=... delivery=... ..."; warning: something was lost or is failing.
  using LogFn = std::function<void(std::string_view event, std::string detail, bool warning)>;

  // Starts its own thread (its own io_context): delivery never runs on, or waits for, an editing
  // thread. Errors: InvalidArgument from ValidateWebhookOptions. With an empty url no thread is
  // started and changed() does nothing. An empty `log` logs nothing (stats() still counts).
  static crdt::Result<std::unique_ptr<Webhooks>> Start(WebhookOptions o, LogFn log = {});
  ~Webhooks();  // stops (pending deliveries not yet sent are logged as dropped)
  Webhooks(const Webhooks&) = delete;
  Webhooks& operator=(const Webhooks&) = delete;

  // Thread-safe, O(1)-ish, never blocks on the network: `doc`'s changes by `agents` are durable;
  // the document is now at `version` (agent -> next seq) holding `events` events in all.
  // Calls may arrive out of order from several threads: versions are merged (pointwise maximum)
  // and the largest `events` is kept, so a late call never moves a document backwards.
  void changed(const std::string& doc, const crdt::Version& version, uint64_t events, const std::vector<std::string>& agents);

  // Waits up to `limit` until nothing is pending or in flight (tests, shutdown). True if drained.
  bool drain(std::chrono::milliseconds limit);

  struct Stats {
    uint64_t delivered = 0;  // deliveries answered 2xx
    uint64_t attempts = 0;   // POSTs started
    uint64_t failures = 0;   // attempts that did not get a 2xx
    uint64_t dropped = 0;    // deliveries given up (window passed, or stopped before delivery)
    uint64_t pending = 0;    // documents with changes not yet delivered (settling, queued, in flight, retrying)
  };
  Stats stats() const;

  struct Impl;

 private:
  explicit Webhooks(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;  // null: no url, nothing to do
};

}  // namespace tandem::net
