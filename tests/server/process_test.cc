// The real recsys_server binary as a process: SIGTERM drains the calls in flight and exits 0;
// a second server on an address already served exits non-zero saying why; request limits are
// set by their flags, and a bad flag value exits non-zero naming the flag.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/process_fixtures.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using testing::Eventually;
using ::testing::HasSubstr;
using testing::NumberAfter;
using testing::ReadFile;
using testing::Retail;
using testing::SpawnServer;

TEST(ServerProcessTest, SigtermDrainsTheCallsInFlightAndExitsZero) {
  ASSERT_TRUE(Retail().status.ok()) << Retail().status;
  const std::string log = testing::MakeTempDir("sigterm") + "/stderr.log";
  const pid_t pid = SpawnServer(
      {"--bundle=" + Retail().root, "--address=127.0.0.1:0", "--plaintext", "--metrics_port=0",
       "--workers=1", "--queue_capacity=256", "--shutdown_grace=30s"},
      log);
  ASSERT_GT(pid, 0);
  const int port = NumberAfter(log, " on port ");
  const int metrics_port = NumberAfter(log, "metrics on port ");
  if (port == 0 || metrics_port <= 0) kill(pid, SIGKILL);
  ASSERT_GT(port, 0) << "the server did not start; see " << log;
  ASSERT_GT(metrics_port, 0) << log;

  // Slow requests (KernelSHAP over a long history, one worker) fill the queue.
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  v1::RecommendRequest request = testing::RealCustomerRequest(testing::kServerMaxHistory);
  request.mutable_explain()->set_method(v1::ATTRIBUTION_METHOD_KERNEL_SHAP);
  request.mutable_explain()->set_samples(1024);
  request.set_top_k(100);
  constexpr int kCalls = 120;
  std::atomic<int> ok{0}, done{0};
  absl::Mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      v1::RecommendResponse response;
      const grpc::Status status =
          v1::Recommender::NewStub(channel)->Recommend(&context, request, &response);
      if (status.ok() && response.items_size() > 0) {
        ++ok;
      } else {
        absl::MutexLock lock(&mu);
        failures.push_back(status.ok()
                               ? "OK with no items"
                               : absl::StrCat(status.error_code(), ": ", status.error_message()));
      }
      ++done;
    });
  }
  // SIGTERM once the server has received every call: each is answered, or on the server
  // (running or queued). A call still on its way when the listener closes was never received,
  // and the queue depth alone cannot tell it from the running one.
  httplib::Client metrics("127.0.0.1", metrics_port);
  const bool all_received = Eventually([&] {
    const int answered = done;
    httplib::Result r = metrics.Get("/metrics");
    const std::optional<double> on_server =
        r ? testing::Sample(r->body, "recsys_recommend_in_flight") : std::nullopt;
    // At least one call running and one queued, and none still on its way.
    return on_server.has_value() && *on_server >= 2 && *on_server + answered >= kCalls;
  });
  const int done_before_term = done;
  kill(pid, SIGTERM);
  for (std::thread& t : callers) t.join();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(all_received) << "the calls did not all reach the server";
  EXPECT_LT(done_before_term, kCalls) << "nothing was in flight: make the requests slower";
  // Every received call finished, none was cut off.
  EXPECT_EQ(ok, kCalls) << "first failure: " << (failures.empty() ? "" : failures.front());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  // Gone: a new call is refused.
  grpc::ClientContext late;
  late.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::RecommendResponse out;
  EXPECT_FALSE(v1::Recommender::NewStub(channel)->Recommend(&late, request, &out).ok());
}

// Whether `pid` exits by itself within a minute (its wait status in `status`); if not it is
// killed, so that no test leaves a server behind.
bool ExitsWithinAMinute(pid_t pid, int* status) {
  const bool exited =
      Eventually([&] { return waitpid(pid, status, WNOHANG) == pid; }, absl::Seconds(60));
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, status, 0);
  }
  return exited;
}

TEST(ServerProcessTest, ASecondServerOnAnAddressInUseExitsNonZeroSayingSo) {
  const testing::TestServer* first = testing::SharedRetailServer();
  ASSERT_NE(first, nullptr);
  const std::string log = testing::MakeTempDir("second") + "/stderr.log";
  const pid_t pid = SpawnServer({"--bundle=" + Retail().root, "--address=" + first->address(),
                                 "--plaintext", "--metrics_port=-1"},
                                log);
  ASSERT_GT(pid, 0);
  int status = 0;
  const bool exited = ExitsWithinAMinute(pid, &status);
  ASSERT_TRUE(exited) << "the second server kept running on " << first->address();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "status " << status;
  EXPECT_THAT(ReadFile(log), HasSubstr("cannot listen on " + first->address()));
  // The first one still answers.
  v1::RecommendResponse response;
  EXPECT_TRUE(first->Recommend(testing::RealCustomerRequest(5), &response).ok());
}

// Starts the server on the Retail bundle with `flag` added, expects it to exit non-zero by
// itself and returns what it wrote to stderr ("" after a failure).
std::string StderrOfAFailedStart(const std::string& flag) {
  const std::string log = testing::MakeTempDir("failed_start") + "/stderr.log";
  const pid_t pid = SpawnServer({"--bundle=" + Retail().root, "--address=127.0.0.1:0",
                                 "--plaintext", "--metrics_port=-1", flag},
                                log);
  EXPECT_GT(pid, 0);
  if (pid <= 0) return "";
  int status = 0;
  const bool exited = ExitsWithinAMinute(pid, &status);
  EXPECT_TRUE(exited) << "the server started with " << flag;
  EXPECT_TRUE(exited && WIFEXITED(status) && WEXITSTATUS(status) != 0) << "status " << status;
  return exited ? ReadFile(log) : "";
}

TEST(ServerProcessTest, AWrongItemTablePrecisionExitsNonZeroNamingTheFlag) {
  EXPECT_THAT(StderrOfAFailedStart("--item_tables=int4"),
              HasSubstr("--item_tables: item table precision 'int4': expected half, int8 or "
                        "float"));
}

TEST(ServerProcessTest, MaxSamplesSetsTheMostCoalitionsARequestMayAskFor) {
  ASSERT_TRUE(Retail().status.ok()) << Retail().status;
  const std::string log = testing::MakeTempDir("max_samples") + "/stderr.log";
  const pid_t pid = SpawnServer({"--bundle=" + Retail().root, "--address=127.0.0.1:0",
                                 "--plaintext", "--metrics_port=-1", "--max_samples=2048"},
                                log);
  ASSERT_GT(pid, 0);
  const int port = NumberAfter(log, " on port ");
  if (port == 0) kill(pid, SIGKILL);
  ASSERT_GT(port, 0) << "the server did not start; see " << log;
  std::unique_ptr<v1::Recommender::Stub> stub = v1::Recommender::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  auto call = [&](int samples, v1::RecommendResponse* response) {
    v1::RecommendRequest request = testing::RealCustomerRequest(5);
    request.mutable_explain()->set_method(v1::ATTRIBUTION_METHOD_KERNEL_SHAP);
    request.mutable_explain()->set_samples(samples);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub->Recommend(&context, request, response);
  };
  grpc::ClientContext info_context;
  v1::GetModelInfoResponse info;
  const grpc::Status info_status =
      stub->GetModelInfo(&info_context, v1::GetModelInfoRequest(), &info);
  v1::RecommendResponse at_limit, beyond;
  const grpc::Status at_limit_status = call(2048, &at_limit);
  const grpc::Status beyond_status = call(2049, &beyond);
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_TRUE(ExitsWithinAMinute(pid, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;

  ASSERT_TRUE(info_status.ok()) << info_status.error_message();
  EXPECT_EQ(info.limits().max_samples(), 2048);
  // Above the default limit of 1024, and answered with the method asked for.
  ASSERT_TRUE(at_limit_status.ok()) << at_limit_status.error_message();
  ASSERT_GT(at_limit.items_size(), 0);
  EXPECT_EQ(at_limit.metadata().attribution_method(), v1::ATTRIBUTION_METHOD_KERNEL_SHAP);
  EXPECT_EQ(beyond_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(beyond_status.error_message(),
              HasSubstr("explain.samples: 2049 exceeds the limit of 2048"));
}

TEST(ServerProcessTest, ADefaultAboveItsLimitExitsNonZeroNamingBothFlags) {
  // --shap_samples stays at its default, 128.
  EXPECT_THAT(StderrOfAFailedStart("--max_samples=64"),
              HasSubstr("--shap_samples: 128 is not in [2, max_samples = 64]"));
}

}  // namespace
}  // namespace recsys::server
