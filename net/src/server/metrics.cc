#include "metrics.h"

#include "sync/protocol.h"

namespace tandem::net {

namespace {
const uint16_t kErrorCodes[Metrics::kCodes] = {proto::kBadMessage, proto::kForbidden, proto::kAgentInUse,
                                               proto::kTooLarge,   proto::kRejected,  proto::kUnsupportedVersion,
                                               proto::kRateLimited, proto::kInternal, proto::kTooSlow, 1009};
}  // namespace

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void Histogram::write(std::string* out, const char* name, const char* help) const {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cum += counts_[i].load(std::memory_order_relaxed);
    char le[32];
    std::snprintf(le, sizeof le, "%g", kBounds[i]);
    *out += std::string(name) + "_bucket{le=\"" + le + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_[kBounds.size()].load(std::memory_order_relaxed);
  *out += std::string(name) + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  char sum[48];
  std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(sum_us_.load()) / 1e6);
  *out += std::string(name) + "_sum " + sum + "\n" + name + "_count " + std::to_string(cum) + "\n";
}

void Metrics::count_error(uint16_t code) {
  for (int i = 0; i < kCodes; ++i) {
    if (kErrorCodes[i] == code) {
      errors[i].fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
}

std::string Metrics::text() const {
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help, auto value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " +
           std::to_string(value) + "\n";
  };
  metric("tandem_connections", "gauge", "WebSocket sessions open.", connections.load());
  metric("tandem_connections_total", "counter", "WebSocket sessions opened.", connections_total.load());
  metric("tandem_open_documents", "gauge", "Documents loaded in a room.", open_documents.load());
  metric("tandem_ops_in_total", "counter", "Operations received from clients.", ops_in.load());
  metric("tandem_ops_integrated_total", "counter", "Operations that were new to the server.", ops_integrated.load());
  metric("tandem_remote_ops_total", "counter", "Operations other nodes logged in the shared store, new here.",
         remote_ops.load());
  metric("tandem_ops_out_total", "counter", "Operations sent to clients (once per receiving session).", ops_out.load());
  metric("tandem_bytes_in_total", "counter", "WebSocket payload bytes received.", bytes_in.load());
  metric("tandem_bytes_out_total", "counter", "WebSocket payload bytes sent.", bytes_out.load());
  metric("tandem_http_requests_total", "counter", "HTTP requests, upgrades included.", http_requests.load());
  metric("tandem_api_requests_total", "counter", "HTTP API requests (/api/).", api_requests.load());
  metric("tandem_connections_refused_total", "counter", "Connections refused before the upgrade.", refused.load());
  metric("tandem_queued_bytes", "gauge", "Bytes waiting in sessions' outgoing queues.", queued_bytes.load());
  metric("tandem_session_queue_peak_bytes", "gauge", "The most bytes one session ever had queued.", queue_peak.load());
  metric("tandem_loop_lag_seconds", "gauge", "How late the I/O threads ran the last 10 ms probe.",
         static_cast<double>(loop_lag_us.load()) / 1e6);
  metric("tandem_pacing_broadcasts", "gauge", "1 while an I/O thread is short of time and paces broadcasts.", busy.load() ? 1 : 0);
  metric("tandem_pacing_seconds_per_session", "gauge",
         "Pacing: a room of n sessions broadcasts at most once per n times this (the largest of the I/O threads).",
         static_cast<double>(pace_us.load()) / 1e6);
  metric("tandem_io_thread_utilization", "gauge", "The busiest I/O thread's share of the last 100 ms spent working.",
         static_cast<double>(io_util_permille.load()) / 1000.0);
  out += "# HELP tandem_errors_total Sessions closed with an error, by protocol error code.\n"
         "# TYPE tandem_errors_total counter\n";
  for (int i = 0; i < kCodes; ++i) {
    out += "tandem_errors_total{code=\"" + std::to_string(kErrorCodes[i]) + "\"} " + std::to_string(errors[i].load()) + "\n";
  }
  broadcast_latency.write(&out, "tandem_broadcast_latency_seconds",
                          "From receiving a batch to queueing its operations to every other session.");
  commit_latency.write(&out, "tandem_commit_latency_seconds", "From handing a batch to the store to its being durable.");
  return out;
}

}  // namespace tandem::net
