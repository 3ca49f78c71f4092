#ifndef RECSYS_TESTS_TESTUTIL_SERVER_FIXTURES_H_
#define RECSYS_TESTS_TESTUTIL_SERVER_FIXTURES_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/bundle.h"
#include "core/manifest.h"
#include "core/retail_data.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/server.h"

namespace recsys::testing {

// The history cap of the servers these fixtures start (the tests send requests just over it).
inline constexpr int kServerMaxHistory = 50;

// The bundle built from the vendored Online Retail II sample and the real customers' histories,
// made once per process and never changed. `status` says whether the build worked.
struct RetailFixture {
  absl::Status status;
  std::string root;     // The bundle root (one version directory, `version`).
  std::string version;  // "20240101T000000Z".
  std::shared_ptr<const core::Bundle> bundle;
  core::RetailData data;
};
const RetailFixture& Retail();

// The last `n` purchases of the first real customer with at least that many, with their
// country. REQUIRES: Retail().status is OK.
v1::RecommendRequest RealCustomerRequest(size_t n);

// Options for a server on a free loopback port, without a metrics endpoint.
server::ServerOptions LoopbackOptions(const std::string& bundle_path);

// A RecsysServer started in-process, with a plaintext channel to it. Owns the server: the
// destructor shuts it down. Thread-safe (the calls make their own contexts).
class TestServer {
 public:
  // Errors: RecsysServer::Start's.
  static absl::StatusOr<std::unique_ptr<TestServer>> Start(const server::ServerOptions& options);

  server::RecsysServer& server() const { return *server_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // "127.0.0.1:<port>".
  std::string address() const;

  grpc::Status Recommend(const v1::RecommendRequest& request, v1::RecommendResponse* response,
                         absl::Duration timeout = absl::Seconds(30)) const;
  grpc::Status GetModelInfo(v1::GetModelInfoResponse* info) const;
  // The /metrics exposition. Errors: FAILED_PRECONDITION when the endpoint is off,
  // UNAVAILABLE when the scrape fails or does not answer 200.
  absl::StatusOr<std::string> ScrapeMetrics() const;

 private:
  explicit TestServer(std::unique_ptr<server::RecsysServer> server);

  std::unique_ptr<server::RecsysServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// The server most integration tests share within one process: Retail()'s bundle, metrics on a
// free port, history capped at kServerMaxHistory, the TorchScript loader (the bundle has no
// models). Started on first use and shut down after the last test (a gtest Environment); state
// visible to tests (metrics counters) accumulates, so tests compare before and after. Returns
// nullptr, having failed the test, when it cannot start.
const TestServer* SharedRetailServer();

// A test against SharedRetailServer(); SetUp fails the test when the server did not start.
class SharedServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = SharedRetailServer();
    ASSERT_NE(server_, nullptr);
  }
  grpc::Status Recommend(const v1::RecommendRequest& request, v1::RecommendResponse* response) {
    return server_->Recommend(request, response);
  }

  const TestServer* server_ = nullptr;
};

// The value of the sample `name{...}` whose labels include every one of `labels`, or of the
// unlabelled series `name` when `labels` is empty; nullopt when the exposition has no such
// sample.
std::optional<double> Sample(const std::string& exposition, const std::string& name,
                             const std::vector<std::string>& labels = {});

// A bundle version directory built from TinyRetailCsv() (items 21A, 21B, 21C, 21D; countries
// United Kingdom, France, Germany) with `models` added as fake model sources
// (AddModelSources, max history 5). No model file exists: serve it with FakeModelLoader.
// Fails the test and returns "" when the build fails.
std::string MakeFakeModelBundleDir(const std::vector<core::SourceSpec>& models);

// A FakeModelOptions::on_call hook the test controls: while the gate is closed, every model
// call blocks at it until Open(), so "a worker is busy" is a state of the test, not a sleep.
// Counts the calls. Thread-safe; must outlive the models using Hook() (open it before the
// server shuts down, or the workers never finish).
class ModelGate {
 public:
  std::function<absl::Status()> Hook();
  void Close();
  void Open();
  // Blocks until `n` model calls are held at the closed gate; false when that did not happen
  // within `timeout`.
  bool AwaitHeld(int n, absl::Duration timeout = absl::Seconds(30));
  // Model calls so far, held or not.
  int calls() const;

 private:
  absl::Status Enter();

  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// Polls `condition` until it holds or `timeout` passes; returns whether it held. For states
// that a test can observe only from outside (a metric, a served version), never as a delay.
bool Eventually(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(30));

}  // namespace recsys::testing

#endif  // RECSYS_TESTS_TESTUTIL_SERVER_FIXTURES_H_
