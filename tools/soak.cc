// A bounded soak test against a running server on loopback: closed-loop callers replay real
// customers' histories (with new shoppers, KernelSHAP requests and deliberately bad requests
// mixed in) for --duration, while the server's resident memory is sampled from /proc.
//
//   recsys_soak --address=127.0.0.1:50051 --pid=$(pidof recsys_server) --duration=3m
//
// Prints a Markdown report; exits 1 on any unexpected error (anything but the INVALID_ARGUMENT
// the bad requests must get).
#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
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
#include "core/retail_data.h"
#include "grpcpp/grpcpp.h"
#include "recsys/v1/recommender.grpc.pb.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "Server address (loopback)");
ABSL_FLAG(int, pid, 0, "Server process id, for its resident memory (0: not sampled)");
ABSL_FLAG(absl::Duration, duration, absl::Minutes(3), "How long to run");
ABSL_FLAG(int, callers, 4, "Concurrent closed-loop callers");
ABSL_FLAG(std::string, input, "data/online-retail-ii/online_retail_ii_small.csv.gz",
          "Purchase data whose customers' histories are replayed");

namespace {

namespace v1 = recsys::v1;

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int c = static_cast<int>(code);
  return c >= 0 && c < 17 ? kNames[c] : "?";
}

// Resident memory of `pid` in MiB, or -1.
double RssMib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Bounded soak test of a running recsys_server.");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<recsys::core::RetailData> data =
      recsys::core::ReadRetailCsv(absl::GetFlag(FLAGS_input), {});
  if (!data.ok()) {
    std::cerr << "error: " << data.status() << "\n";
    return 1;
  }
  // One request per customer: their last 20 purchases and country.
  std::vector<v1::RecommendRequest> requests;
  for (const recsys::core::CustomerHistory& c : data->customers) {
    v1::RecommendRequest r;
    const size_t first = c.purchases.size() > 20 ? c.purchases.size() - 20 : 0;
    for (size_t i = first; i < c.purchases.size(); ++i) {
      v1::HistoryEvent* e = r.add_history();
      e->set_item_id(data->catalog.item(c.purchases[i].item).id);
      e->mutable_timestamp()->set_seconds(c.purchases[i].time);
      e->set_quantity(c.purchases[i].quantity);
      e->set_price(c.purchases[i].price);
    }
    r.mutable_context()->set_country(c.country);
    requests.push_back(std::move(r));
  }

  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_address), grpc::InsecureChannelCredentials());
  const int pid = absl::GetFlag(FLAGS_pid);
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::GetFlag(FLAGS_duration);
  std::atomic<int64_t> sent{0};
  absl::Mutex mu;
  std::map<std::string, int64_t> outcomes;  // "OK", "INVALID_ARGUMENT (expected)", ...
  int64_t unexpected = 0;
  std::vector<std::thread> callers;
  for (int t = 0; t < absl::GetFlag(FLAGS_callers); ++t) {
    callers.emplace_back([&, t] {
      auto stub = v1::Recommender::NewStub(channel);
      for (int64_t n = t; absl::Now() < end; n += absl::GetFlag(FLAGS_callers)) {
        v1::RecommendRequest request = requests[n % requests.size()];
        bool bad = false;
        if (n % 13 == 0) {
          request.set_top_k(5000);  // Must be INVALID_ARGUMENT.
          bad = true;
        } else if (n % 7 == 0) {
          request.clear_history();  // A new shopper.
        } else if (n % 10 == 0) {
          request.mutable_explain()->set_method(v1::ATTRIBUTION_METHOD_KERNEL_SHAP);
        }
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        v1::RecommendResponse response;
        const grpc::Status status = stub->Recommend(&context, request, &response);
        ++sent;
        const bool expected = bad ? status.error_code() == grpc::StatusCode::INVALID_ARGUMENT
                                  : status.ok() && response.items_size() > 0;
        absl::MutexLock lock(&mu);
        ++outcomes[absl::StrCat(CodeName(status.error_code()), bad ? " (bad request)" : "")];
        if (!expected) ++unexpected;
      }
    });
  }
  // Memory: after a short warm-up, then every 10 s.
  absl::SleepFor(std::min(absl::Seconds(5), absl::GetFlag(FLAGS_duration) / 4));
  const double rss_start = pid > 0 ? RssMib(pid) : -1;
  const int64_t sent_start = sent;
  double rss_max = rss_start;
  while (absl::Now() < end) {
    absl::SleepFor(std::min(absl::Seconds(10), end - absl::Now()));
    const double rss = pid > 0 ? RssMib(pid) : -1;
    rss_max = std::max(rss_max, rss);
    std::cerr << absl::StrFormat("%4.0f s: %d requests, RSS %.1f MiB\n",
                                 absl::ToDoubleSeconds(absl::Now() - start), sent.load(), rss);
  }
  for (std::thread& t : callers) t.join();
  const double rss_end = pid > 0 ? RssMib(pid) : -1;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);

  std::cout << absl::StrFormat(
      "| duration | callers | requests | QPS | unexpected errors | RSS after warm-up | RSS at end "
      "| RSS max | growth per 100k requests after warm-up |\n"
      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
      "| %.0f s | %d | %d | %.0f | %d | %.1f MiB | %.1f MiB | %.1f MiB | %.2f MiB |\n\n",
      seconds, absl::GetFlag(FLAGS_callers), sent.load(), sent / seconds, unexpected, rss_start,
      rss_end, rss_max,
      sent > sent_start ? (rss_end - rss_start) / (sent - sent_start) * 1e5 : 0.0);
  std::cout << "| gRPC status code | calls |\n|---|---:|\n";
  for (const auto& [code, n] : outcomes) std::cout << "| " << code << " | " << n << " |\n";
  return unexpected == 0 ? 0 : 1;
}
