// Overload through the real server: a full queue refuses at once with RESOURCE_EXHAUSTED, and a
// call whose deadline passes while it waits is dropped without work. The model is the fake one
// behind a ModelGate, so "the only worker is busy" is a state the test sets, not a guess about
// how long a slow request takes.
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/server.h"
#include "tests/testutil/fake_model.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using testing::Eventually;
using ::testing::HasSubstr;
using testing::ModelGate;
using ::testing::Optional;
using testing::TestServer;

// The value of the unlabelled series `name` on `server`'s /metrics; nullopt (and a failure)
// when the scrape fails.
std::optional<double> Metric(const TestServer& server, const std::string& name) {
  absl::StatusOr<std::string> metrics = server.ScrapeMetrics();
  if (!metrics.ok()) {
    ADD_FAILURE() << metrics.status();
    return std::nullopt;
  }
  return testing::Sample(*metrics, name);
}

// A server with one worker over a fake-model bundle whose model calls pass `gate`.
absl::StatusOr<std::unique_ptr<TestServer>> StartGated(ModelGate* gate, int queue_capacity) {
  const std::string dir = testing::MakeFakeModelBundleDir({{"fake_rnn", 0.5, 1.0, 0.0}});
  testing::FakeModelOptions model;
  model.on_call = gate->Hook();
  ServerOptions options = testing::LoopbackOptions(dir);
  options.loader = testing::FakeModelLoader(model);
  options.workers = 1;
  options.queue_capacity = queue_capacity;
  options.metrics_port = 0;
  return TestServer::Start(options);
}

v1::RecommendRequest Request() {
  v1::RecommendRequest request;
  request.add_history()->set_item_id("21A");
  request.add_history()->set_item_id("21B");
  return request;
}

TEST(ServerOverloadTest, AFullQueueIsResourceExhaustedAtOnceAndTheAcceptedCallsFinish) {
  ModelGate gate;
  absl::StatusOr<std::unique_ptr<TestServer>> server = StartGated(&gate, /*queue_capacity=*/2);
  ASSERT_TRUE(server.ok()) << server.status();
  const absl::Cleanup open_gate = [&gate] { gate.Open(); };  // Before the server shuts down.
  const TestServer& s = **server;

  gate.Close();
  std::vector<grpc::Status> accepted(3);
  std::vector<std::thread> callers;
  auto call = [&](int i) {
    callers.emplace_back([&s, &accepted, i] {
      v1::RecommendResponse response;
      accepted[i] = s.Recommend(Request(), &response);
    });
  };
  call(0);
  ASSERT_TRUE(gate.AwaitHeld(1));  // The only worker is busy.
  call(1);
  call(2);
  // Both wait in the queue, which is now full.
  EXPECT_TRUE(Eventually([&] { return Metric(s, "recsys_queue_depth") == 2.0; }));

  v1::RecommendResponse response;
  grpc::Status refused = s.Recommend(Request(), &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("queue is full"));
  EXPECT_THAT(Metric(s, "recsys_rejected_total"), Optional(1.0));
  EXPECT_THAT(Metric(s, "recsys_queue_depth"), Optional(2.0));  // Never past its capacity.
  // The running call and the two queued ones; the refused one is answered.
  EXPECT_THAT(Metric(s, "recsys_recommend_in_flight"), Optional(3.0));

  gate.Open();
  for (std::thread& t : callers) t.join();
  for (const grpc::Status& status : accepted) EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Metric(s, "recsys_queue_depth"), Optional(0.0));
  EXPECT_THAT(Metric(s, "recsys_recommend_in_flight"), Optional(0.0));
  EXPECT_THAT(Metric(s, "recsys_rejected_total"), Optional(1.0));
  EXPECT_THAT(Metric(s, "recsys_dropped_total"), Optional(0.0));
}

TEST(ServerOverloadTest, ACallWhoseDeadlinePassesInTheQueueIsDroppedWithoutWork) {
  ModelGate gate;
  absl::StatusOr<std::unique_ptr<TestServer>> server = StartGated(&gate, /*queue_capacity=*/4);
  ASSERT_TRUE(server.ok()) << server.status();
  const absl::Cleanup open_gate = [&gate] { gate.Open(); };
  const TestServer& s = **server;
  // The model calls of one request.
  v1::RecommendResponse response;
  const int before_one = gate.calls();
  ASSERT_TRUE(s.Recommend(Request(), &response).ok());
  const int per_request = gate.calls() - before_one;
  ASSERT_GT(per_request, 0);

  const int before = gate.calls();
  gate.Close();
  grpc::Status busy_status;
  std::thread busy([&] {
    v1::RecommendResponse r;
    busy_status = s.Recommend(Request(), &r);
  });
  ASSERT_TRUE(gate.AwaitHeld(1));
  constexpr absl::Duration kTimeout = absl::Milliseconds(500);
  grpc::Status hurried_status;
  std::thread hurried([&] {
    v1::RecommendResponse r;
    hurried_status = s.Recommend(Request(), &r, kTimeout);
  });
  EXPECT_TRUE(Eventually([&] { return Metric(s, "recsys_queue_depth") == 1.0; }));
  // The call is on the server now, so the server's deadline for it (arrival + the timeout the
  // client sent, rounded up by gRPC's encoding) is before this bound.
  const absl::Time server_deadline_passed = absl::Now() + 2 * kTimeout;
  hurried.join();  // Its deadline passed while it waited behind the held call.
  EXPECT_EQ(hurried_status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  absl::SleepFor(server_deadline_passed - absl::Now());

  gate.Open();
  busy.join();
  EXPECT_TRUE(busy_status.ok()) << busy_status.error_message();
  EXPECT_TRUE(Eventually([&] { return Metric(s, "recsys_dropped_total") == 1.0; }));
  // Only the busy call reached the model: the expired one was dropped before any work.
  EXPECT_EQ(gate.calls() - before, per_request);
}

}  // namespace
}  // namespace recsys::server
