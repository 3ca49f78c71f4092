// Bundle reload through the real server: new versions swap in under load without a failed
// request, a broken version is rejected once and the old one keeps serving, and the watcher
// finds new versions on its own.
#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/bundle_builder.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/server.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using testing::Eventually;
using ::testing::HasSubstr;
using ::testing::Optional;
using testing::Sample;
using testing::TestServer;

// Builds version `version` of the small retail bundle under `root` (it appears atomically).
void BuildVersion(const std::string& root, const std::string& version) {
  core::BundleBuildOptions options;
  options.input = testing::SmallRetailCsvPath();
  options.out_root = root;
  options.version = version;
  absl::StatusOr<core::BundleBuildResult> built = core::BuildCfBundle(options);
  ASSERT_TRUE(built.ok()) << built.status();
}

// Moves a version directory whose manifest.json is cut short into `root`, in one rename, so
// that nobody sees it half written.
void AddBrokenVersion(const std::string& root, const std::string& version) {
  const std::string staging = testing::MakeTempDir("broken_version");
  testing::WriteFile(staging + "/manifest.json", "{\"format_version\": 1, \"version\":");
  std::filesystem::rename(staging, root + "/" + version);
}

std::optional<double> Reloads(const TestServer& server, const std::string& result) {
  absl::StatusOr<std::string> metrics = server.ScrapeMetrics();
  if (!metrics.ok()) {
    ADD_FAILURE() << metrics.status();
    return std::nullopt;
  }
  return Sample(*metrics, "recsys_bundle_reloads_total", {"result=\"" + result + "\""});
}

// Callers that send requests back to back until destroyed, recording every answer's version.
class Callers {
 public:
  Callers(std::shared_ptr<grpc::Channel> channel, int n) {
    const v1::RecommendRequest request = testing::RealCustomerRequest(5);
    for (int t = 0; t < n; ++t) {
      threads_.emplace_back([this, channel, request] {
        auto stub = v1::Recommender::NewStub(channel);
        while (!stop_) {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          v1::RecommendResponse response;
          if (stub->Recommend(&context, request, &response).ok() && response.items_size() > 0) {
            absl::MutexLock lock(&mu_);
            ++ok_;
            versions_.insert(response.metadata().bundle_version());
          } else {
            absl::MutexLock lock(&mu_);
            ++failed_;
          }
        }
      });
    }
  }
  ~Callers() { Stop(); }

  // Waits for `n` more good answers; false when they did not come.
  bool AwaitAnswers(int n) {
    absl::MutexLock lock(&mu_);
    const int target = ok_ + n;
    struct Args {
      const int* ok;
      int target;
    } args{&ok_, target};
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](Args* a) { return *a->ok >= a->target; }, &args),
                                absl::Seconds(60));
  }
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int ok() const {
    absl::MutexLock lock(&mu_);
    return ok_;
  }
  int failed() const {
    absl::MutexLock lock(&mu_);
    return failed_;
  }
  std::set<std::string> versions() const {
    absl::MutexLock lock(&mu_);
    return versions_;
  }

 private:
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  int ok_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> versions_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

TEST(ServerReloadTest, NewVersionsSwapInUnderLoadWithoutAFailedRequestAndABrokenOneIsRejected) {
  ASSERT_TRUE(testing::Retail().status.ok()) << testing::Retail().status;
  const std::string root = testing::MakeTempDir("reload_root");
  BuildVersion(root, "v1");
  ServerOptions options = testing::LoopbackOptions(root);
  options.metrics_port = 0;
  options.bundle_poll_interval = absl::ZeroDuration();  // Only ReloadNow reloads.
  absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  RecsysServer& recsys = (*server)->server();

  Callers callers((*server)->channel(), 4);
  ASSERT_TRUE(callers.AwaitAnswers(10));
  EXPECT_TRUE(recsys.ReloadNow().ok());  // Nothing new.
  EXPECT_EQ(recsys.bundle_version(), "v1");
  BuildVersion(root, "v2");
  EXPECT_TRUE(recsys.ReloadNow().ok());
  EXPECT_EQ(recsys.bundle_version(), "v2");
  ASSERT_TRUE(callers.AwaitAnswers(10));

  // A broken version: rejected with its error, the old one keeps serving, and the same
  // directory is not tried again (the second call answers the same error, counted once).
  AddBrokenVersion(root, "v3");
  absl::Status rejected = recsys.ReloadNow();
  EXPECT_FALSE(rejected.ok());
  EXPECT_THAT(std::string(rejected.message()), HasSubstr("manifest.json"));
  EXPECT_EQ(recsys.ReloadNow(), rejected);
  EXPECT_EQ(recsys.bundle_version(), "v2");
  EXPECT_THAT(Reloads(**server, "rejected"), Optional(1.0));
  ASSERT_TRUE(callers.AwaitAnswers(10));

  BuildVersion(root, "v4");
  EXPECT_TRUE(recsys.ReloadNow().ok());
  EXPECT_EQ(recsys.bundle_version(), "v4");
  ASSERT_TRUE(callers.AwaitAnswers(10));
  callers.Stop();

  EXPECT_EQ(callers.failed(), 0);
  EXPECT_GE(callers.ok(), 40);
  EXPECT_THAT(callers.versions(), ::testing::IsSupersetOf({"v1", "v2", "v4"}));
  EXPECT_EQ(callers.versions().count("v3"), 0u);
  EXPECT_THAT(Reloads(**server, "loaded"), Optional(2.0));
  EXPECT_THAT(Reloads(**server, "rejected"), Optional(1.0));
}

TEST(ServerReloadTest, TheWatcherLoadsNewVersionsAndRejectsABrokenOneOnce) {
  const std::string root = testing::MakeTempDir("watched_root");
  BuildVersion(root, "v1");
  ServerOptions options = testing::LoopbackOptions(root);
  options.metrics_port = 0;
  options.bundle_poll_interval = absl::Milliseconds(20);
  absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  RecsysServer& recsys = (*server)->server();

  BuildVersion(root, "v2");
  EXPECT_TRUE(Eventually([&] { return recsys.bundle_version() == "v2"; }));
  AddBrokenVersion(root, "v3");
  EXPECT_TRUE(Eventually([&] { return Reloads(**server, "rejected") == 1.0; }));
  EXPECT_EQ(recsys.bundle_version(), "v2");
  BuildVersion(root, "v4");
  EXPECT_TRUE(Eventually([&] { return recsys.bundle_version() == "v4"; }));
  EXPECT_THAT(Reloads(**server, "loaded"), Optional(2.0));
  EXPECT_THAT(Reloads(**server, "rejected"), Optional(1.0));
  v1::RecommendResponse response;
  ASSERT_TRUE((*server)->Recommend(testing::RealCustomerRequest(5), &response).ok());
  EXPECT_EQ(response.metadata().bundle_version(), "v4");
}

}  // namespace
}  // namespace recsys::server
