#ifndef RECSYS_SERVER_SERVER_H_
#define RECSYS_SERVER_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/model_runner.h"
#include "core/torch_model_runner.h"
#include "pipeline/recommend_pipeline.h"

namespace grpc {
class Server;
}
namespace prometheus {
class Registry;
}

namespace recsys::server {

class BundleHolder;
class FeedbackLog;
class HealthService;
class MetricsEndpoint;
class RecommenderService;
class ServiceMetrics;
class WorkerPool;

struct ServerOptions {
  // gRPC listen address; port 0 picks a free port. Default: 127.0.0.1:50051.
  std::string address = "127.0.0.1:50051";
  // Host of the Prometheus /metrics endpoint. Default: 127.0.0.1.
  std::string metrics_host = "127.0.0.1";
  // Port of the /metrics endpoint; 0 picks a free port, -1 disables it. Default: 9464.
  int metrics_port = 9464;
  // A bundle version directory, or a root holding version directories (the greatest name is
  // served). Required.
  std::string bundle_path;
  // Worker threads for Recommend. Default: 2.
  int workers = 2;
  // Requests that may wait for a worker; beyond that RESOURCE_EXHAUSTED. Default: 64.
  int queue_capacity = 64;
  // Device the bundle's models run on: "cpu" or "cuda:N". Default: cpu.
  std::string device = "cpu";
  // How the models' item tables are held on CPU (core::ItemTablePrecision). Default: int8.
  core::ItemTablePrecision item_tables = core::kDefaultItemTablePrecision;
  // Largest request message accepted. Default: 4 MiB.
  int max_receive_message_bytes = 4 << 20;
  // TLS for the gRPC listener: PEM files of the server's certificate chain and private key; with
  // tls_client_ca_file too, clients must present a certificate signed by that CA (mutual TLS).
  // All empty: plaintext. Default: plaintext (main requires --plaintext to say so).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // How often a bundle root is checked for a newer version (RecsysServer::ReloadNow); 0 turns
  // the watcher off. Not used when bundle_path is a version directory. Default: 10 s.
  absl::Duration bundle_poll_interval = absl::Seconds(10);
  // Loads the bundle's models, at start-up and on reload. Default (empty): LibTorch's
  // TorchScript loader on `device`; tests inject a fake (tests/testutil/fake_model.h).
  core::ModelLoader loader;
  recsys::pipeline::PipelineOptions pipeline;
  // Directory of the feedback log (docs/feedback_log.md), created if missing, opened at Start
  // and closed (everything pending synced) at Shutdown. Empty: Feedback answers UNIMPLEMENTED
  // and no served record is logged. Default: empty.
  std::string feedback_log_dir;
  // Size from which the current feedback log file is rotated. Default: 64 MiB.
  int64_t feedback_log_max_bytes = int64_t{64} << 20;
  // Deduplication window: a retried Feedback event is recognised while its file is the current
  // one or one of this many newest rotated files (FeedbackLogOptions). Default: 3.
  int feedback_log_dedup_files = 3;
  // Share of successful Recommend responses logged to the feedback log as served records, in
  // [0, 1], chosen by a hash of request_id (a retry gets the same answer). Default: 0.
  double served_log_sample = 0.0;
};

// Checks `options` as Start does before anything is loaded: INVALID_ARGUMENT naming the first
// bad field (workers >= 1, queue_capacity >= 0, 1 <= default_top_k <= limits.max_top_k,
// default_max_attributions >= 1, 1 <= default_ig_steps <= limits.max_steps, 2 <=
// default_shap_samples <= limits.max_samples (which is >= 2), reason_min_share in [0, 1], a
// concrete default method, a bundle path, max_receive_message_bytes > 0, a TLS key pair that is
// complete, feedback_log_max_bytes > 0, feedback_log_dedup_files >= 0, 0 <= served_log_sample <= 1
// and, when it is > 0, a feedback_log_dir).
absl::Status ValidateServerOptions(const ServerOptions& options);

// The whole service in one process: gRPC server (Recommender, grpc.health.v1, reflection),
// worker pool and Prometheus endpoint, around one loaded bundle.
//
// Start returns only when the bundle is loaded and warmed up, the feedback log (if any) is open
// and health says SERVING.
// Thread-safe; Shutdown may be called from any thread, once or more.
class RecsysServer {
 public:
  // Errors: ValidateServerOptions's, the bundle does not load (NOT_FOUND, DATA_LOSS, ...), the
  // feedback log cannot be opened (FeedbackLog::Open's), a
  // TLS file cannot be read (INVALID_ARGUMENT), or the gRPC port cannot be bound, including one
  // another process already listens on (UNAVAILABLE; SO_REUSEPORT is off, so a second server
  // on the same address fails instead of silently sharing the traffic).
  static absl::StatusOr<std::unique_ptr<RecsysServer>> Start(const ServerOptions& options);
  ~RecsysServer();

  // Health goes NOT_SERVING, new calls are refused, calls in flight get `grace` to finish; then
  // the feedback log is synced and closed.
  void Shutdown(absl::Duration grace);
  // Blocks until the gRPC server has shut down.
  void Wait();

  // Checks the bundle root now (the watcher does so every bundle_poll_interval). A version
  // directory newer than the one being served is loaded and warmed up off the request path,
  // then swapped in atomically: requests in flight finish on the version they started with,
  // new ones get the new version. OK when nothing is new or the new version now serves. A
  // version that fails to load or warm up is rejected with its error: the old version keeps
  // serving, recsys_bundle_reloads_total{result="rejected"} counts it once, and the same
  // directory is not tried again until its manifest.json changes (until then ReloadNow returns
  // the same error). Thread-safe (calls are serialised).
  absl::Status ReloadNow();

  int port() const { return port_; }
  int metrics_port() const;
  std::string bundle_version() const;

 private:
  RecsysServer();
  void WatchBundles(absl::Duration interval);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<ServiceMetrics> metrics_;
  std::unique_ptr<BundleHolder> bundles_;
  std::unique_ptr<pipeline::RecommendPipeline> pipeline_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<FeedbackLog> feedback_log_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<RecommenderService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  int port_ = 0;
  std::string bundle_root_;
  core::ModelLoader loader_;
  absl::Mutex reload_mu_;
  std::string rejected_ ABSL_GUARDED_BY(reload_mu_);  // Directory and manifest time rejected.
  absl::Status rejected_status_ ABSL_GUARDED_BY(reload_mu_);  // Why.
  absl::Mutex watch_mu_;
  bool stop_watching_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread watcher_;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace recsys::server

#endif  // RECSYS_SERVER_SERVER_H_
