#include "server/server.h"

#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/bundle.h"
#include "core/torch_model_runner.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/registry.h"
#include "server/feedback_log.h"
#include "server/health_service.h"
#include "server/metrics.h"
#include "server/recommender_service.h"
#include "server/worker_pool.h"

namespace recsys::server {

namespace {

constexpr char kServiceName[] = "recsys.v1.Recommender";

// Runs one real request through the pipeline so that first-call costs (allocations, page
// faults on the index) are paid before the server says SERVING.
absl::Status WarmUp(const pipeline::RecommendPipeline& pipeline, const core::Bundle& bundle) {
  core::RecommendRequest request;
  request.request_id = "warm-up";
  for (core::ItemIndex i = 0; i < std::min<core::ItemIndex>(3, bundle.catalog().size()); ++i) {
    request.history.emplace_back().item_id = bundle.catalog().item(i).id;
  }
  absl::StatusOr<core::RecommendResponse> response;
  try {  // A model that throws must not take the process (or the reload watcher) down.
    response = pipeline.Run(request, bundle, absl::InfiniteFuture());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("warm-up request failed: ", e.what()));
  }
  if (!response.ok()) {
    return absl::InternalError(
        absl::StrCat("warm-up request failed: ", response.status().ToString()));
  }
  return absl::OkStatus();
}

}  // namespace

RecsysServer::RecsysServer() = default;

RecsysServer::~RecsysServer() { Shutdown(absl::ZeroDuration()); }

namespace {

// The gRPC listener's credentials: TLS (mutual when a client CA is given) or plaintext.
// REQUIRES: ValidateServerOptions(options) is OK.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ListenerCredentials(
    const ServerOptions& options) {
  if (options.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  auto read = [](const std::string& path) -> absl::StatusOr<std::string> {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.str().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read"));
    }
    return text.str();
  };
  absl::StatusOr<std::string> cert = read(options.tls_cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = read(options.tls_key_file);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!options.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = read(options.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

absl::Status ValidateServerOptions(const ServerOptions& options) {
  const pipeline::PipelineOptions& p = options.pipeline;
  const pipeline::RequestLimits& limits = p.limits;
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (options.bundle_path.empty()) return bad("bundle_path: required");
  if (options.workers < 1) return bad(absl::StrCat("workers: ", options.workers, " < 1"));
  if (options.queue_capacity < 0) {
    return bad(absl::StrCat("queue_capacity: ", options.queue_capacity, " < 0"));
  }
  if (options.max_receive_message_bytes <= 0) {
    return bad("max_receive_message_bytes: must be > 0");
  }
  if (p.default_top_k < 1 || p.default_top_k > limits.max_top_k) {
    return bad(absl::StrCat("default_top_k: ", p.default_top_k,
                            " is not in [1, max_top_k = ", limits.max_top_k, "]"));
  }
  if (p.default_max_attributions < 1) return bad("default_max_attributions: must be >= 1");
  if (p.default_ig_steps < 1 || p.default_ig_steps > limits.max_steps) {
    return bad(absl::StrCat("default_ig_steps: ", p.default_ig_steps, " is not in [1, ",
                            limits.max_steps, "]"));
  }
  if (limits.max_samples < 2) {
    return bad(absl::StrCat("max_samples: ", limits.max_samples,
                            " < 2 (KernelSHAP and LIME fit at least two coalitions)"));
  }
  if (p.default_shap_samples < 2 || p.default_shap_samples > limits.max_samples) {
    return bad(absl::StrCat("default_shap_samples: ", p.default_shap_samples,
                            " is not in [2, max_samples = ", limits.max_samples, "]"));
  }
  if (!(p.reason_min_share >= 0.0 && p.reason_min_share <= 1.0)) {
    return bad(absl::StrCat("reason_min_share: ", p.reason_min_share, " is not in [0, 1]"));
  }
  if (p.default_method == core::AttributionMethod::kDefault) {
    return bad("default_method: must name a method");
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return bad("tls_cert_file, tls_key_file: TLS needs both a certificate file and a key file");
  }
  if (!options.tls_client_ca_file.empty() && options.tls_cert_file.empty()) {
    return bad("tls_client_ca_file: a TLS client CA needs a server certificate and key");
  }
  if (options.feedback_log_max_bytes <= 0) return bad("feedback_log_max_bytes: must be > 0");
  if (options.feedback_log_dedup_files < 0) return bad("feedback_log_dedup_files: must be >= 0");
  if (!(options.served_log_sample >= 0.0 && options.served_log_sample <= 1.0)) {
    return bad(absl::StrCat("served_log_sample: ", options.served_log_sample, " is not in [0, 1]"));
  }
  if (options.served_log_sample > 0.0 && options.feedback_log_dir.empty()) {
    return bad("served_log_sample: served records need a feedback_log_dir");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RecsysServer>> RecsysServer::Start(const ServerOptions& options) {
  if (absl::Status valid = ValidateServerOptions(options); !valid.ok()) return valid;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ListenerCredentials(options);
  if (!credentials.ok()) return credentials.status();
  const core::ModelLoader loader =
      options.loader ? options.loader : core::TorchScriptLoader(options.device, options.item_tables);
  absl::StatusOr<std::string> dir = core::ResolveBundleDir(options.bundle_path);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<std::shared_ptr<const core::Bundle>> bundle = core::Bundle::Load(*dir, loader);
  if (!bundle.ok()) return bundle.status();

  std::unique_ptr<RecsysServer> s(new RecsysServer());
  s->loader_ = loader;
  s->pipeline_ = std::make_unique<pipeline::RecommendPipeline>(options.pipeline);
  if (absl::Status warm = WarmUp(*s->pipeline_, **bundle); !warm.ok()) return warm;

  s->registry_ = std::make_shared<prometheus::Registry>();
  s->metrics_ = std::make_unique<ServiceMetrics>(*s->registry_);
  s->metrics_->bundle_items.Set((*bundle)->catalog().size());
  s->bundles_ = std::make_unique<BundleHolder>();
  s->bundles_->Set(*std::move(bundle));
  s->pool_ = std::make_unique<WorkerPool>(options.workers, options.queue_capacity);
  s->health_ = std::make_unique<HealthService>();
  s->health_->SetStatus("", grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  s->health_->SetStatus(kServiceName, grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  if (!options.feedback_log_dir.empty()) {
    FeedbackLogOptions log_options;
    log_options.dir = options.feedback_log_dir;
    log_options.max_file_bytes = options.feedback_log_max_bytes;
    log_options.dedup_rotated_files = options.feedback_log_dedup_files;
    ServiceMetrics* metrics = s->metrics_.get();
    log_options.on_commit = [metrics](const FeedbackLogCommit& c) {
      metrics->RecordFeedbackCommit(c);
    };
    absl::StatusOr<std::unique_ptr<FeedbackLog>> log = FeedbackLog::Open(log_options);
    if (!log.ok()) return log.status();
    s->feedback_log_ = *std::move(log);
  }
  s->service_ = std::make_unique<RecommenderService>(
      s->pipeline_.get(), s->bundles_.get(), s->pool_.get(), s->metrics_.get(),
      s->feedback_log_.get(), options.served_log_sample);

  if (options.metrics_port >= 0) {
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
        MetricsEndpoint::Start(options.metrics_host, options.metrics_port, s->registry_);
    if (!endpoint.ok()) return endpoint.status();
    s->metrics_endpoint_ = *std::move(endpoint);
  }

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, *credentials, &s->port_);
  // gRPC turns SO_REUSEPORT on by default: a second server on the same address would start,
  // say "serving" and silently take a share of the first one's calls. Off, binding fails.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.RegisterService(s->health_.get());
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address));
  }
  s->health_->SetStatus("", grpc::health::v1::HealthCheckResponse::SERVING);
  s->health_->SetStatus(kServiceName, grpc::health::v1::HealthCheckResponse::SERVING);
  s->metrics_->bundle_loaded_unix.Set(absl::ToUnixSeconds(absl::Now()));
  s->bundle_root_ = options.bundle_path;
  const bool is_root = *dir != options.bundle_path;  // Else a version directory was named.
  if (is_root && options.bundle_poll_interval > absl::ZeroDuration()) {
    RecsysServer* server = s.get();
    const absl::Duration interval = options.bundle_poll_interval;
    s->watcher_ = std::thread([server, interval] { server->WatchBundles(interval); });
  }
  return s;
}

void RecsysServer::WatchBundles(absl::Duration interval) {
  absl::MutexLock lock(&watch_mu_);
  while (!watch_mu_.AwaitWithTimeout(absl::Condition(&stop_watching_), interval)) {
    watch_mu_.Unlock();
    (void)ReloadNow();  // Logged and counted inside.
    watch_mu_.Lock();
  }
}

absl::Status RecsysServer::ReloadNow() {
  absl::MutexLock lock(&reload_mu_);
  absl::StatusOr<std::string> dir = core::ResolveBundleDir(bundle_root_);
  if (!dir.ok()) return absl::OkStatus();  // The root emptied: keep serving what is loaded.
  std::shared_ptr<const core::Bundle> current = bundles_->Get();
  if (current != nullptr && current->dir() == *dir) return absl::OkStatus();
  std::error_code ec;
  const auto mtime =
      std::filesystem::last_write_time(std::filesystem::path(*dir) / "manifest.json", ec);
  const std::string key = absl::StrCat(*dir, "@", ec ? 0 : mtime.time_since_epoch().count());
  if (key == rejected_) return rejected_status_;  // Not tried again.

  absl::StatusOr<std::shared_ptr<const core::Bundle>> bundle = core::Bundle::Load(*dir, loader_);
  absl::Status status = bundle.status();
  if (bundle.ok()) status = WarmUp(*pipeline_, **bundle);
  const std::string old_version = current == nullptr ? "" : current->manifest().version;
  if (!status.ok()) {
    rejected_ = key;
    rejected_status_ = status;
    metrics_->bundle_rejections.Increment();
    std::cerr << "recsys_server: rejected bundle " << *dir << ": " << status << "; still serving "
              << old_version << "\n";
    return status;
  }
  bundles_->Set(*bundle);
  metrics_->bundle_items.Set((*bundle)->catalog().size());
  metrics_->bundle_loaded_unix.Set(absl::ToUnixSeconds(absl::Now()));
  metrics_->bundle_reloads.Increment();
  std::cerr << "recsys_server: now serving bundle " << (*bundle)->manifest().version << " (was "
            << old_version << ")\n";
  return absl::OkStatus();
}

void RecsysServer::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock watch_lock(&watch_mu_);
    stop_watching_ = true;
  }
  if (watcher_.joinable()) watcher_.join();
  if (health_ != nullptr) health_->Shutdown();
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  // Accepted requests still run (and finish their calls) before the workers exit.
  if (pool_ != nullptr) pool_->Shutdown();
  // The writer finished every Feedback call the server accepted; what the workers logged last
  // (served records) is written and synced now.
  if (feedback_log_ != nullptr) feedback_log_->Close();
  metrics_endpoint_.reset();
}

void RecsysServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

int RecsysServer::metrics_port() const {
  return metrics_endpoint_ == nullptr ? -1 : metrics_endpoint_->port();
}

std::string RecsysServer::bundle_version() const {
  std::shared_ptr<const core::Bundle> bundle = bundles_->Get();
  return bundle == nullptr ? "" : bundle->manifest().version;
}

}  // namespace recsys::server
