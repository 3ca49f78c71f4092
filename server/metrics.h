#ifndef RECSYS_SERVER_METRICS_H_
#define RECSYS_SERVER_METRICS_H_

#include <array>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "core/types.h"
#include "grpcpp/support/status_code_enum.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/feedback.h"
#include "server/feedback_log.h"

namespace httplib {
class Server;
}

namespace recsys::server {

enum class Rpc { kRecommend = 0, kGetModelInfo = 1, kFeedback = 2 };
inline constexpr int kNumRpcs = 3;
inline constexpr int kNumCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED.

// The service's Prometheus metrics. Every series is created here, at start-up, so the request
// path only increments references (no Family::Add under load).
//
// Thread-safe (prometheus-cpp metrics are).
class ServiceMetrics {
 private:
  prometheus::Family<prometheus::Counter>& reloads_family_;  // Initialised first.

 public:
  explicit ServiceMetrics(prometheus::Registry& registry);

  // Counts one finished RPC and observes its latency.
  void RecordRpc(Rpc rpc, grpc::StatusCode code, double seconds);
  // Observes the stage timings of one Recommend call (unknown stage names are skipped).
  void RecordStages(const std::vector<core::StageTiming>& timings);
  // Counts what the feedback log stored of one Feedback call.
  void RecordFeedback(const FeedbackResult& result);
  // Counts one write of the feedback log's writer thread.
  void RecordFeedbackCommit(const FeedbackLogCommit& commit);

  prometheus::Gauge& queue_depth;          // Requests waiting for a worker.
  prometheus::Gauge& recommend_in_flight;  // Recommend calls received and not yet answered.
  prometheus::Counter& rejected_total;     // Requests refused because the queue was full.
  prometheus::Counter& dropped_total;      // Requests dropped (deadline passed or cancelled).
  prometheus::Gauge& bundle_items;         // Catalogue size of the bundle being served.
  prometheus::Gauge& bundle_loaded_unix;   // When it was loaded.
  prometheus::Counter& bundle_reloads;     // New versions loaded by the watcher.
  prometheus::Counter& bundle_rejections;  // New versions rejected (old one kept).
  prometheus::Counter& served_logged;      // Served records handed to the feedback log.

 private:
  prometheus::Counter& feedback_duplicates_;
  prometheus::Counter& feedback_log_errors_;
  prometheus::Counter& feedback_log_rotations_;
  prometheus::Histogram& feedback_log_sync_;
  std::array<prometheus::Counter*, kNumFeedbackEvents> feedback_events_{};  // [0] unused.

 private:
  std::array<std::array<prometheus::Counter*, kNumCodes>, kNumRpcs> requests_{};
  std::array<prometheus::Histogram*, kNumRpcs> latency_{};
  std::vector<std::pair<std::string, prometheus::Histogram*>> stages_;
};

// Serves the registry's text exposition at GET /metrics on its own port. It uses cpp-httplib
// rather than prometheus-cpp's Exposer, whose civetweb threads have a 100 KiB stack that
// LibTorch's and OpenBLAS's static TLS overflows.
//
// Thread-safe. The destructor stops the server.
class MetricsEndpoint {
 public:
  // Binds host:port (port 0 picks a free one) and serves on a thread of its own.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& host, int port, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsEndpoint();

  int port() const { return port_; }

 private:
  MetricsEndpoint() = default;

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace recsys::server

#endif  // RECSYS_SERVER_METRICS_H_
