// Load generator for a running server on loopback. Replays real held-out requests (customers'
// purchases before --cutoff, the way tools/faithfulness.cc builds them) in one of two modes:
//
//   closed: --concurrency callers, each sending its next request when the last one returns
//           (measures saturation throughput);
//   open:   requests sent at a fixed --rate whatever happens to earlier ones, latency measured
//           from each request's intended send time, so queueing in the client or the server is
//           never hidden (coordinated omission);
//   inprocess: like closed, but each caller runs the server's request pipeline
//           (pipeline::RecommendPipeline::Run on the already converted request) in this process
//           on --bundle, with no gRPC or proto conversion: the in-process cost that gRPC's
//           overhead is measured against;
//   health: like closed, but each call is grpc.health.v1.Health/Check, which the server answers
//           on gRPC's own thread: the floor of one round trip, with no work and no hand-off.
//
//   recsys_loadgen --address=127.0.0.1:50051 --mode=open --rate=200 --duration=20s
//
// Prints one JSON object: the settings, requests, errors by gRPC code, achieved QPS and
// latency percentiles in milliseconds (after --warmup, which is not counted).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/bundle.h"
#include "core/torch_model_runner.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "pipeline/recommend_pipeline.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/proto_convert.h"
#include "tools/heldout.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "Server address (loopback)");
ABSL_FLAG(std::string, mode, "closed",
          "closed (concurrency), open (fixed rate), inprocess (concurrency, no server) or "
          "health (concurrency, empty health checks)");
ABSL_FLAG(std::string, bundle, "bundles", "inprocess: bundle version or bundles root");
ABSL_FLAG(int, concurrency, 8, "closed, inprocess, health: concurrent callers");
ABSL_FLAG(double, rate, 100, "open: requests per second");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(20), "Measured time");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(3), "Time before measuring");
ABSL_FLAG(std::string, method, "",
          "explain.method for every request: none, gradient_x_input, integrated_gradients, "
          "occlusion, kernel_shap, cf_exact; empty: the server's default");
ABSL_FLAG(int, top_k, 10, "top_k of every request");
ABSL_FLAG(std::string, input, "data/online-retail-ii/online_retail_ii.csv.gz",
          "Purchase data whose held-out customers are replayed");
ABSL_FLAG(std::string, cutoff, "2011-11-09", "Histories are the purchases before this date");
ABSL_FLAG(int, max_history, 50, "Most recent purchases sent as the history");
ABSL_FLAG(std::string, label, "", "Free text copied into the JSON output");

namespace {

namespace v1 = recsys::v1;

// Latencies and outcomes of the measured window. Thread-safe.
class Recorder {
 public:
  Recorder(absl::Time measure_from, absl::Time measure_to) : from_(measure_from), to_(measure_to) {}

  // `intended`: when the request was meant to go out; `done`: when its answer came.
  void Record(absl::Time intended, absl::Time done, grpc::StatusCode code) {
    if (intended < from_ || intended >= to_) return;
    absl::MutexLock lock(&mu_);
    ++codes_[code];
    if (code == grpc::StatusCode::OK)
      latencies_ms_.push_back(absl::ToDoubleMilliseconds(done - intended));
  }

  std::string Json(const std::string& settings) {
    absl::MutexLock lock(&mu_);
    std::sort(latencies_ms_.begin(), latencies_ms_.end());
    auto pct = [&](double p) {
      if (latencies_ms_.empty()) return 0.0;
      const size_t i = std::min(latencies_ms_.size() - 1,
                                static_cast<size_t>(std::ceil(p * latencies_ms_.size())) - 1);
      return latencies_ms_[i];
    };
    int64_t total = 0;
    std::string codes;
    for (const auto& [code, n] : codes_) {
      total += n;
      absl::StrAppend(&codes, codes.empty() ? "" : ", ", "\"", code, "\": ", n);
    }
    const double seconds = absl::ToDoubleSeconds(to_ - from_);
    return absl::StrFormat(
        "{%s, \"requests\": %d, \"codes\": {%s}, \"qps\": %.1f, \"ok_qps\": %.1f, "
        "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
        "\"max_ms\": %.3f}",
        settings, total, codes, total / seconds, latencies_ms_.size() / seconds, pct(0.5), pct(0.9),
        pct(0.99), pct(0.999), latencies_ms_.empty() ? 0.0 : latencies_ms_.back());
  }

 private:
  const absl::Time from_, to_;
  absl::Mutex mu_;
  std::map<int, int64_t> codes_ ABSL_GUARDED_BY(mu_);
  std::vector<double> latencies_ms_ ABSL_GUARDED_BY(mu_);
};

// One asynchronous call of the open loop; deletes itself when it completes.
struct Call {
  grpc::ClientContext context;
  v1::RecommendResponse response;
  absl::Time intended;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Closed- and open-loop load generator for recsys_server.");
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  absl::StatusOr<v1::AttributionMethod> method = v1::ATTRIBUTION_METHOD_UNSPECIFIED;
  if (!absl::GetFlag(FLAGS_method).empty()) {
    method = recsys::tools::ProtoMethodNamed(absl::GetFlag(FLAGS_method));
  }
  if ((mode != "closed" && mode != "open" && mode != "inprocess" && mode != "health") ||
      !method.ok()) {
    std::cerr << "error: --mode is closed, open, inprocess or health; --method: "
              << method.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<std::vector<v1::RecommendRequest>> requests = recsys::tools::HeldOutRequests(
      absl::GetFlag(FLAGS_input), absl::GetFlag(FLAGS_cutoff), absl::GetFlag(FLAGS_max_history));
  if (!requests.ok()) {
    std::cerr << "error: --input or --cutoff: " << requests.status() << "\n";
    return 1;
  }
  for (v1::RecommendRequest& r : *requests) {
    r.set_top_k(absl::GetFlag(FLAGS_top_k));
    if (*method != v1::ATTRIBUTION_METHOD_UNSPECIFIED) r.mutable_explain()->set_method(*method);
  }

  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_address), grpc::InsecureChannelCredentials());
  auto stub = v1::Recommender::NewStub(channel);
  const absl::Time start = absl::Now();
  const absl::Time measure_from = start + absl::GetFlag(FLAGS_warmup);
  const absl::Time end = measure_from + absl::GetFlag(FLAGS_duration);
  Recorder recorder(measure_from, end);
  std::string settings = absl::StrFormat(
      "\"label\": \"%s\", \"mode\": \"%s\", \"method\": \"%s\", \"top_k\": %d, "
      "\"duration_s\": %.1f",
      absl::GetFlag(FLAGS_label), mode,
      absl::GetFlag(FLAGS_method).empty() ? "default" : absl::GetFlag(FLAGS_method),
      absl::GetFlag(FLAGS_top_k), absl::ToDoubleSeconds(end - measure_from));

  if (mode != "open") {
    absl::StrAppend(&settings, ", \"concurrency\": ", absl::GetFlag(FLAGS_concurrency));
    // One call of request n; returns its status code.
    std::function<grpc::StatusCode(size_t)> call = [&](size_t n) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::RecommendResponse response;
      return stub->Recommend(&context, (*requests)[n], &response).error_code();
    };
    std::shared_ptr<const recsys::core::Bundle> bundle;
    std::vector<recsys::core::RecommendRequest> domain;
    recsys::pipeline::RecommendPipeline pipeline{recsys::pipeline::PipelineOptions()};
    if (mode == "inprocess") {
      // As recsys_server's workers, set before the models load.
      for (absl::Status s :
           {recsys::core::KeepFreedMemoryForReuse(), recsys::core::SetTorchThreads(1, 1)}) {
        if (!s.ok()) {
          std::cerr << "error: " << s << "\n";
          return 1;
        }
      }
      absl::StatusOr<std::string> dir = recsys::core::ResolveBundleDir(absl::GetFlag(FLAGS_bundle));
      absl::StatusOr<std::shared_ptr<const recsys::core::Bundle>> loaded =
          dir.ok() ? recsys::core::Bundle::Load(*dir, recsys::core::TorchScriptLoader("cpu"))
                   : dir.status();
      if (!loaded.ok()) {
        std::cerr << "error: --bundle: " << loaded.status() << "\n";
        return 1;
      }
      bundle = *loaded;
      for (const v1::RecommendRequest& r : *requests) domain.push_back(recsys::server::ToDomain(r));
      call = [&](size_t n) {
        return recsys::server::ToGrpcStatus(
                   pipeline.Run(domain[n], *bundle, absl::Now() + absl::Seconds(10)).status())
            .error_code();
      };
    }
    auto health = grpc::health::v1::Health::NewStub(channel);
    if (mode == "health") {
      call = [&](size_t) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        grpc::health::v1::HealthCheckRequest request;
        grpc::health::v1::HealthCheckResponse response;
        return health->Check(&context, request, &response).error_code();
      };
    }
    std::vector<std::thread> callers;
    for (int t = 0; t < absl::GetFlag(FLAGS_concurrency); ++t) {
      callers.emplace_back([&, t] {
        for (size_t n = t; absl::Now() < end; n += absl::GetFlag(FLAGS_concurrency)) {
          const absl::Time sent = absl::Now();
          const grpc::StatusCode code = call(n % requests->size());
          recorder.Record(sent, absl::Now(), code);
        }
      });
    }
    for (std::thread& t : callers) t.join();
  } else {
    const double rate = absl::GetFlag(FLAGS_rate);
    absl::StrAppend(&settings, absl::StrFormat(", \"rate\": %.1f", rate));
    std::atomic<int64_t> in_flight{0};
    for (int64_t n = 0;; ++n) {
      const absl::Time intended = start + absl::Seconds(n / rate);
      if (intended >= end) break;
      const absl::Time now = absl::Now();
      if (intended > now) absl::SleepFor(intended - now);
      auto* call = new Call();
      call->intended = intended;
      call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      ++in_flight;
      stub->async()->Recommend(&call->context, &(*requests)[n % requests->size()], &call->response,
                               [&recorder, &in_flight, call](grpc::Status status) {
                                 recorder.Record(call->intended, absl::Now(), status.error_code());
                                 delete call;
                                 --in_flight;
                               });
    }
    while (in_flight > 0) absl::SleepFor(absl::Milliseconds(5));
  }
  std::cout << recorder.Json(settings) << "\n";
  return 0;
}
