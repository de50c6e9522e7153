// Counters, gauges and histograms, written out in the Prometheus text format. Lock-free to update.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace tandem::net {

class Histogram {
 public:
  // Seconds; buckets from 100 us to 10 s.
  static constexpr std::array<double, 12> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                     0.01,   0.025,   0.05,   0.1,   1.0,    10.0};
  void observe(double seconds);
  void write(std::string* out, const char* name, const char* help) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_us_{0};
};

struct Metrics {
  std::atomic<int64_t> connections{0};        // WebSocket sessions open
  std::atomic<uint64_t> connections_total{0};
  std::atomic<int64_t> open_documents{0};
  std::atomic<uint64_t> ops_in{0};            // events received in OPS (before deduplication)
  std::atomic<uint64_t> ops_integrated{0};    // events that were new
  std::atomic<uint64_t> ops_out{0};           // events sent to sessions (one per session)
  std::atomic<uint64_t> remote_ops{0};        // events other nodes logged, integrated here
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> http_requests{0};
  std::atomic<uint64_t> api_requests{0};  // of them, to /api/
  std::atomic<uint64_t> refused{0};           // connections refused before the upgrade
  std::atomic<int64_t> queued_bytes{0};       // unsent bytes in all sessions' queues
  std::atomic<uint64_t> queue_peak{0};        // the most one session ever had queued
  std::atomic<int64_t> loop_lag_us{0};        // how late the last lag probe ran
  std::atomic<bool> busy{false};              // some I/O thread paces broadcasts
  std::atomic<int64_t> pace_us{0};            // the largest pacing per session of the I/O threads
  std::atomic<int64_t> io_util_permille{0};   // the busiest I/O thread's share of its time working
  static constexpr int kCodes = 10;
  std::array<std::atomic<uint64_t>, kCodes> errors{};  // by protocol error code (see code_index)
  Histogram broadcast_latency;  // batch received -> its frames queued to every other session
  Histogram commit_latency;     // batch handed to the store -> durable

  void count_error(uint16_t code);
  std::string text() const;
};

}  // namespace tandem::net
