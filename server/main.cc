// recsys_server: serves recsys.v1.Recommender, grpc.health.v1 and reflection over gRPC, and
// Prometheus metrics over HTTP, for one model bundle.
//
//   recsys_server --bundle=bundles --address=127.0.0.1:50051 --metrics_port=9464
//
// SIGTERM or SIGINT: health goes NOT_SERVING, calls in flight get --shutdown_grace to finish,
// then the process exits 0. SIGHUP: check the bundle root for a newer version now (it is also
// checked every --bundle_poll_interval). Start-up errors print one line and exit 1.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "core/torch_model_runner.h"
#include "pipeline/attribution_methods.h"
#include "server/cpu_quota.h"
#include "server/protobuf_log.h"
#include "server/server.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "gRPC listen address (host:port)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain of the gRPC listener (TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: clients must present a certificate it signed (mutual TLS)");
ABSL_FLAG(bool, plaintext, false,
          "Serve gRPC without TLS (required when --tls_cert is not given, so that plaintext is "
          "always a choice)");
ABSL_FLAG(std::string, metrics_host, "127.0.0.1", "Host of the Prometheus /metrics endpoint");
ABSL_FLAG(int, metrics_port, 9464, "Port of the /metrics endpoint (0: any free port; -1: off)");
ABSL_FLAG(std::string, bundle, "bundles",
          "Bundle version directory, or a root of version directories (the greatest is served)");
ABSL_FLAG(std::string, device, "cpu", "Device of the models: cpu or cuda:N (never a fallback)");
ABSL_FLAG(std::string, item_tables,
          recsys::core::ItemTablePrecisionName(recsys::core::kDefaultItemTablePrecision),
          "Precision of the models' item tables on CPU: int8 (a quarter of the memory and read "
          "bandwidth of float; int8 with row and column scales), half or float "
          "(docs/performance.md compares their held-out NDCG)");
ABSL_FLAG(int, workers, 0,
          "Worker threads for Recommend (0: one per CPU of the cgroup quota, see CpuQuota)");
ABSL_FLAG(int, torch_threads, 1,
          "LibTorch intra-op threads per worker; workers x torch_threads should not exceed the "
          "CPU quota (one thread per worker measured best for single requests)");
ABSL_FLAG(int, queue_capacity, 64, "Requests that may wait for a worker before RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_history, 500, "Most history events a request may carry");
ABSL_FLAG(int, max_top_k, 100, "Largest top_k a request may ask for");
ABSL_FLAG(int, max_candidates, 1000, "Most candidate_item_ids a request may carry");
ABSL_FLAG(int, max_exclude, 1000, "Most exclude_item_ids a request may carry");
ABSL_FLAG(int, max_id_bytes, 64, "Longest item id, feature name or value, in bytes");
ABSL_FLAG(int, default_top_k, 10, "top_k when a request leaves it 0");
ABSL_FLAG(int, default_max_attributions, 10, "Attributions per item when a request leaves it 0");
ABSL_FLAG(std::string, explain_method, "replay",
          "Attribution method when a request leaves it unspecified (a wrong name lists the "
          "choices; the proto's AttributionMethod, lower case, without ATTRIBUTION_METHOD_)");
ABSL_FLAG(int, ig_steps, 16, "Integrated Gradients steps when a request leaves them 0");
ABSL_FLAG(int, shap_samples, 128, "KernelSHAP coalitions when a request leaves them 0");
ABSL_FLAG(int, max_samples, 1024,
          "Most KernelSHAP / LIME coalitions a request may ask for (explain.samples)");
ABSL_FLAG(double, explain_degrade_load, 0.5,
          "Request-queue fill (0..1) from which only the exact sources are explained");
ABSL_FLAG(int, max_receive_message_bytes, 4 << 20, "Largest request message, in bytes");
ABSL_FLAG(absl::Duration, bundle_poll_interval, absl::Seconds(10),
          "How often a bundle root is checked for a newer version (0: never; SIGHUP checks at "
          "once)");
ABSL_FLAG(std::string, feedback_log_dir, "",
          "Directory of the feedback log (JSON lines, docs/feedback_log.md); empty: the Feedback "
          "RPC answers UNIMPLEMENTED");
ABSL_FLAG(int64_t, feedback_log_max_bytes, int64_t{64} << 20,
          "Size from which the current feedback log file is rotated, in bytes");
ABSL_FLAG(int, feedback_log_dedup_files, 3,
          "Rotated feedback log files (besides the current one) whose events a retried Feedback "
          "is checked against; bounds the memory of the index (docs/feedback_log.md)");
ABSL_FLAG(double, served_log_sample, 0.0,
          "Share (0..1) of Recommend responses logged to the feedback log as served records, "
          "chosen by a hash of request_id (needs --feedback_log_dir)");
ABSL_FLAG(double, reason_min_share, recsys::explain::kDefaultReasonMinShare,
          "Smallest share of (score - baseline) an attribution must have to be cited as an "
          "item's reason (0: any; see tools/feedback_report.py)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "Time calls in flight get to finish after SIGTERM");

namespace {

// ValidateServerOptions's `message`, which starts with the option at fault, with each option
// named by the flag that sets it ("--shap_samples: ..." for "default_shap_samples: ...").
std::string FlagsNamed(absl::string_view message) {
  // The one message that starts with two options.
  const std::string pair = absl::StrReplaceAll(
      message, {{"tls_cert_file, tls_key_file", "tls_cert_file, --tls_key_file"}});
  return absl::StrCat("--", absl::StrReplaceAll(pair, {{"bundle_path", "bundle"},
                                                       {"default_method", "explain_method"},
                                                       {"default_ig_steps", "ig_steps"},
                                                       {"default_shap_samples", "shap_samples"},
                                                       {"tls_cert_file", "tls_cert"},
                                                       {"tls_key_file", "tls_key"},
                                                       {"tls_client_ca_file", "tls_client_ca"}}));
}

// The server's options from the flags, checked. Errors name the flag.
absl::StatusOr<recsys::server::ServerOptions> OptionsFromFlags(int cpus) {
  recsys::server::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  if (options.tls_cert_file.empty() != absl::GetFlag(FLAGS_plaintext)) {
    return absl::InvalidArgumentError(
        options.tls_cert_file.empty()
            ? "give --tls_cert and --tls_key (and --tls_client_ca for mutual TLS), or "
              "--plaintext to serve gRPC unencrypted"
            : "--plaintext and --tls_cert exclude each other");
  }
  options.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.bundle_path = absl::GetFlag(FLAGS_bundle);
  if (absl::GetFlag(FLAGS_workers) < 0 || absl::GetFlag(FLAGS_torch_threads) < 1) {
    return absl::InvalidArgumentError(
        "need --workers >= 0 (0: one per CPU) and --torch_threads >= 1");
  }
  options.workers = absl::GetFlag(FLAGS_workers) > 0 ? absl::GetFlag(FLAGS_workers) : cpus;
  options.device = absl::GetFlag(FLAGS_device);
  if (absl::Status device = recsys::core::CheckTorchDevice(options.device); !device.ok()) {
    return absl::Status(device.code(), absl::StrCat("--device: ", device.message()));
  }
  absl::StatusOr<recsys::core::ItemTablePrecision> tables =
      recsys::core::ParseItemTablePrecision(absl::GetFlag(FLAGS_item_tables));
  if (!tables.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--item_tables: ", tables.status().message()));
  }
  options.item_tables = *tables;
  options.queue_capacity = absl::GetFlag(FLAGS_queue_capacity);
  options.max_receive_message_bytes = absl::GetFlag(FLAGS_max_receive_message_bytes);
  options.bundle_poll_interval = absl::GetFlag(FLAGS_bundle_poll_interval);
  recsys::pipeline::PipelineOptions& pipeline = options.pipeline;
  pipeline.limits.max_history = absl::GetFlag(FLAGS_max_history);
  pipeline.limits.max_top_k = absl::GetFlag(FLAGS_max_top_k);
  pipeline.limits.max_candidates = absl::GetFlag(FLAGS_max_candidates);
  pipeline.limits.max_exclude = absl::GetFlag(FLAGS_max_exclude);
  pipeline.limits.max_id_bytes = absl::GetFlag(FLAGS_max_id_bytes);
  pipeline.limits.max_samples = absl::GetFlag(FLAGS_max_samples);
  pipeline.default_top_k = absl::GetFlag(FLAGS_default_top_k);
  pipeline.default_max_attributions = absl::GetFlag(FLAGS_default_max_attributions);
  absl::StatusOr<recsys::core::AttributionMethod> method =
      recsys::pipeline::ParseAttributionMethod(absl::GetFlag(FLAGS_explain_method));
  if (!method.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--explain_method: ", method.status().message()));
  }
  pipeline.default_method = *method;
  pipeline.default_ig_steps = absl::GetFlag(FLAGS_ig_steps);
  pipeline.default_shap_samples = absl::GetFlag(FLAGS_shap_samples);
  pipeline.degrade_load = absl::GetFlag(FLAGS_explain_degrade_load);
  pipeline.reason_min_share = absl::GetFlag(FLAGS_reason_min_share);
  options.feedback_log_dir = absl::GetFlag(FLAGS_feedback_log_dir);
  options.feedback_log_max_bytes = absl::GetFlag(FLAGS_feedback_log_max_bytes);
  options.feedback_log_dedup_files = absl::GetFlag(FLAGS_feedback_log_dedup_files);
  options.served_log_sample = absl::GetFlag(FLAGS_served_log_sample);
  if (absl::Status valid = recsys::server::ValidateServerOptions(options); !valid.ok()) {
    return absl::InvalidArgumentError(FlagsNamed(valid.message()));
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Explainable recommendation gRPC server.");
  absl::ParseCommandLine(argc, argv);

  // Block the shutdown signals in every thread; this one waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const int cpus = recsys::server::CpuQuota();
  absl::StatusOr<recsys::server::ServerOptions> options = OptionsFromFlags(cpus);
  if (!options.ok()) {
    std::cerr << "error: " << options.status().message() << "\n";
    return 1;
  }
  // A client can make libprotobuf log one line per request (strings that are not UTF-8).
  recsys::server::LimitProtobufLogging();
  if (absl::Status malloc = recsys::core::KeepFreedMemoryForReuse(); !malloc.ok()) {
    std::cerr << "warning: " << malloc.message() << "; serving with its defaults\n";
  }
  // Thread counts are set once, before any model loads.
  if (absl::Status threads = recsys::core::SetTorchThreads(absl::GetFlag(FLAGS_torch_threads), 1);
      !threads.ok()) {
    std::cerr << "error: " << threads.message() << "\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<recsys::server::RecsysServer>> server =
      recsys::server::RecsysServer::Start(*options);
  if (!server.ok()) {
    std::cerr << "error: " << server.status().ToString() << "\n";
    return 1;
  }
  std::cerr << "recsys_server: serving bundle " << (*server)->bundle_version() << " on port "
            << (*server)->port() << ", metrics on port " << (*server)->metrics_port() << ", "
            << options->workers << " workers (CPU quota " << cpus << ")\n";

  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    (void)(*server)->ReloadNow();  // Logs what it did.
  }
  std::cerr << "recsys_server: signal " << signal_number << ", shutting down\n";
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  (*server)->Wait();
  return 0;
}
