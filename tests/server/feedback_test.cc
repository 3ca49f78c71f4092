// The Feedback RPC through the real server: validation names the field and stores nothing, a
// retried call is stored once and counted, served records are logged for the sampled requests,
// a server without a log says Feedback is not enabled; and the real binary killed with SIGKILL
// while calls are in flight keeps every acknowledged event, once, and a restarted one still
// deduplicates the retries.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "recsys/v1/recommender.grpc.pb.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/process_fixtures.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using ::testing::HasSubstr;
using testing::Retail;
using ::testing::StartsWith;

v1::FeedbackEntry Entry(const std::string& item_id, v1::FeedbackEvent event) {
  v1::FeedbackEntry entry;
  entry.set_item_id(item_id);
  entry.set_event(event);
  entry.mutable_time()->set_seconds(1796050000);  // 2026-11-30.
  entry.mutable_time()->set_nanos(123000000);
  return entry;
}

v1::FeedbackRequest Request(const std::string& request_id,
                            const std::vector<v1::FeedbackEntry>& events) {
  v1::FeedbackRequest request;
  request.set_request_id(request_id);
  for (const v1::FeedbackEntry& e : events) *request.add_events() = e;
  return request;
}

grpc::Status Feedback(const std::shared_ptr<grpc::Channel>& channel,
                      const v1::FeedbackRequest& request, v1::FeedbackResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return v1::Recommender::NewStub(channel)->Feedback(&context, request, response);
}

// The records of every *.jsonl file of `dir`. A line that is not JSON fails the test, except
// the last line of the current file when `allow_torn_tail` (a write a SIGKILL cut short).
std::vector<nlohmann::json> ReadLog(const std::string& dir, bool allow_torn_tail = false) {
  std::vector<nlohmann::json> records;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::string text = testing::ReadFile(entry.path().string());
    std::vector<std::string> lines = absl::StrSplit(text, '\n');
    const bool torn = !lines.back().empty();
    EXPECT_TRUE(!torn || (allow_torn_tail && name == "feedback.jsonl"))
        << name << " ends in a partial line: " << lines.back();
    lines.pop_back();  // "" after the final newline, or the torn line.
    for (const std::string& line : lines) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      EXPECT_TRUE(j.is_object()) << name << ": not JSON: " << line;
      if (j.is_object()) records.push_back(std::move(j));
    }
  }
  return records;
}

// How often `key` occurs in `counts` (0 when it does not).
int Count(const std::map<std::string, int>& counts, const std::string& key) {
  const auto it = counts.find(key);
  return it == counts.end() ? 0 : it->second;
}

// How often each "request_id/item_id/event" of the feedback records occurs.
std::map<std::string, int> FeedbackCounts(const std::vector<nlohmann::json>& records) {
  std::map<std::string, int> counts;
  for (const nlohmann::json& r : records) {
    if (r["type"] != "feedback") continue;
    ++counts[absl::StrCat(r["request_id"].get<std::string>(), "/", r["item_id"].get<std::string>(),
                          "/", r["event"].get<std::string>())];
  }
  return counts;
}

// One server with a feedback log and every response logged as served, for the suite.
class FeedbackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(Retail().status.ok()) << Retail().status;
    log_dir_ = new std::string(testing::MakeTempDir("feedback_server") + "/log");
    ServerOptions options = testing::LoopbackOptions(Retail().root);
    options.metrics_port = 0;
    options.feedback_log_dir = *log_dir_;
    options.served_log_sample = 1.0;
    absl::StatusOr<std::unique_ptr<testing::TestServer>> server =
        testing::TestServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  double Metric(const std::string& name, const std::vector<std::string>& labels = {}) {
    absl::StatusOr<std::string> exposition = server_->ScrapeMetrics();
    EXPECT_TRUE(exposition.ok()) << exposition.status();
    if (!exposition.ok()) return -1;
    return testing::Sample(*exposition, name, labels).value_or(-1);
  }

  static testing::TestServer* server_;
  static std::string* log_dir_;
};
testing::TestServer* FeedbackTest::server_ = nullptr;
std::string* FeedbackTest::log_dir_ = nullptr;

TEST_F(FeedbackTest, InvalidCallsNameTheFieldAndStoreNothing) {
  const v1::FeedbackRequest good = Request(
      "bad-call",
      {Entry("85123A", v1::FEEDBACK_EVENT_SHOWN), Entry("22423", v1::FEEDBACK_EVENT_CLICKED)});
  struct Case {
    std::function<void(v1::FeedbackRequest*)> mutate;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto* r) { r->set_request_id(""); }, "request_id: empty"},
      {[](auto* r) { r->set_request_id(std::string(129, 'r')); },
       "request_id: 129 bytes exceed the limit of 128"},
      {[](auto* r) { r->clear_events(); }, "events: empty"},
      {[](auto* r) {
         while (r->events_size() <= 100) *r->add_events() = r->events(0);
       },
       "events: 101 entries exceed the limit of 100"},
      {[](auto* r) { r->mutable_events(1)->set_item_id(""); }, "events[1].item_id: empty"},
      {[](auto* r) { r->mutable_events(1)->set_item_id(std::string(65, 'i')); },
       "events[1].item_id: 65 bytes exceed the limit of 64"},
      {[](auto* r) { r->mutable_events(1)->set_event(v1::FEEDBACK_EVENT_UNSPECIFIED); },
       "events[1].event: unspecified"},
      {[](auto* r) { r->mutable_events(1)->set_event(static_cast<v1::FeedbackEvent>(99)); },
       "events[1].event: unknown value 99"},
      {[](auto* r) { r->mutable_events(1)->clear_time(); }, "events[1].time: required"},
      {[](auto* r) { r->mutable_events(1)->mutable_time()->set_seconds(-1); }, "events[1].time: "},
      {[](auto* r) { r->mutable_events(1)->mutable_time()->set_seconds(253402300800); },
       "events[1].time: "},
  };
  for (const Case& c : cases) {
    v1::FeedbackRequest request = good;
    c.mutate(&request);
    v1::FeedbackResponse response;
    const grpc::Status status = Feedback(server_->channel(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_THAT(status.error_message(), StartsWith(c.message));
  }
  for (const nlohmann::json& r : ReadLog(*log_dir_)) {
    if (r["type"] != "feedback") continue;
    const std::string id = r["request_id"];
    EXPECT_TRUE(id != "bad-call" && id != std::string(129, 'r') && !id.empty()) << r;
  }
}

TEST_F(FeedbackTest, ARetriedCallIsStoredOnceAndCounted) {
  const double clicked = Metric("recsys_feedback_events_total", {"event=\"clicked\""});
  const double duplicates = Metric("recsys_feedback_duplicates_total");
  const v1::FeedbackRequest request =
      Request("retried", {Entry("85123A", v1::FEEDBACK_EVENT_SHOWN),
                          Entry("85123A", v1::FEEDBACK_EVENT_CLICKED),
                          Entry("22423", v1::FEEDBACK_EVENT_EXPLANATION_HELPFUL)});
  v1::FeedbackResponse first, retry;
  ASSERT_TRUE(Feedback(server_->channel(), request, &first).ok());
  EXPECT_EQ(first.accepted(), 3);
  EXPECT_EQ(first.duplicates(), 0);
  ASSERT_TRUE(Feedback(server_->channel(), request, &retry).ok());
  EXPECT_EQ(retry.accepted(), 0);
  EXPECT_EQ(retry.duplicates(), 3);

  // OK means on disk: the log has each event once, as sent.
  std::map<std::string, int> counts;
  for (const nlohmann::json& r : ReadLog(*log_dir_)) {
    if (r["type"] != "feedback" || r["request_id"] != "retried") continue;
    ++counts[absl::StrCat(r["item_id"].get<std::string>(), "/", r["event"].get<std::string>())];
    EXPECT_EQ(r["time"], "2026-11-30T14:46:40.123Z") << r;
  }
  EXPECT_EQ(counts,
            (std::map<std::string, int>{
                {"85123A/shown", 1}, {"85123A/clicked", 1}, {"22423/explanation_helpful", 1}}));
  EXPECT_EQ(Metric("recsys_feedback_events_total", {"event=\"clicked\""}), clicked + 1);
  EXPECT_EQ(Metric("recsys_feedback_duplicates_total"), duplicates + 3);
}

TEST_F(FeedbackTest, SampledResponsesAreLoggedAsServedBeforeTheirFeedback) {
  const double served = Metric("recsys_served_logged_total");
  v1::RecommendRequest request = testing::RealCustomerRequest(5);
  request.set_request_id("served-1");
  v1::RecommendResponse response;
  ASSERT_TRUE(server_->Recommend(request, &response).ok());
  ASSERT_GT(response.items_size(), 0);
  request.clear_request_id();  // No id: nothing to join feedback with, not logged.
  v1::RecommendResponse anonymous;
  ASSERT_TRUE(server_->Recommend(request, &anonymous).ok());
  // The served record is written with the next feedback (it is not synced on its own).
  v1::FeedbackResponse ack;
  ASSERT_TRUE(Feedback(server_->channel(),
                       Request("served-1",
                               {Entry(response.items(0).item_id(), v1::FEEDBACK_EVENT_CLICKED)}),
                       &ack)
                  .ok());

  std::vector<nlohmann::json> records;
  for (nlohmann::json& r : ReadLog(*log_dir_)) {
    if (r["type"] == "served") records.push_back(std::move(r));
  }
  std::vector<nlohmann::json> mine;
  for (const nlohmann::json& r : records) {
    EXPECT_NE(r["request_id"], "") << "a response without a request id was logged";
    if (r["request_id"] == "served-1") mine.push_back(r);
  }
  ASSERT_EQ(mine.size(), 1u);
  const nlohmann::json& r = mine[0];
  EXPECT_EQ(r["bundle_version"], response.metadata().bundle_version());
  EXPECT_EQ(r["method"], "replay");  // The default.
  ASSERT_EQ(r["items"].size(), static_cast<size_t>(response.items_size()));
  for (int i = 0; i < response.items_size(); ++i) {
    const nlohmann::json& item = r["items"][i];
    EXPECT_EQ(item["item_id"], response.items(i).item_id());
    EXPECT_EQ(item["rank"], response.items(i).rank());
    EXPECT_EQ(item["reason"], response.items(i).reason());
    EXPECT_TRUE(item["reason_kind"].is_string());
    EXPECT_TRUE(item["reason_share"].is_number());
  }
  EXPECT_EQ(Metric("recsys_served_logged_total"), served + 1);
}

TEST(FeedbackWithoutLogTest, AnswersUnimplementedNamingTheFlag) {
  const testing::TestServer* server = testing::SharedRetailServer();
  ASSERT_NE(server, nullptr);
  v1::FeedbackResponse response;
  const grpc::Status status = Feedback(
      server->channel(), Request("r1", {Entry("85123A", v1::FEEDBACK_EVENT_SHOWN)}), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(status.error_message(), HasSubstr("--feedback_log_dir"));
}

// The real binary with a feedback log in `log_dir`, in 16 KiB files, every one of them in the
// deduplication window; its gRPC port, or 0 (the pid is killed) when it does not start.
int StartServer(const std::string& log_dir, const std::string& stderr_log, pid_t* pid) {
  *pid = testing::SpawnServer(
      {"--bundle=" + Retail().root, "--address=127.0.0.1:0", "--plaintext", "--metrics_port=-1",
       "--workers=1", "--feedback_log_dir=" + log_dir, "--feedback_log_max_bytes=16384",
       "--feedback_log_dedup_files=1000", "--served_log_sample=1"},
      stderr_log);
  if (*pid <= 0) return 0;
  const int port = testing::NumberAfter(stderr_log, " on port ");
  if (port == 0) kill(*pid, SIGKILL);
  return port;
}

std::vector<v1::FeedbackEntry> CallEvents(int call) {
  const std::string item = absl::StrCat("item", call);
  return {Entry(item, v1::FEEDBACK_EVENT_SHOWN), Entry(item, v1::FEEDBACK_EVENT_CLICKED),
          Entry(item, v1::FEEDBACK_EVENT_PURCHASED)};
}

TEST(FeedbackProcessTest, AfterSigkillEveryAcknowledgedEventIsInTheLogOnce) {
  ASSERT_TRUE(Retail().status.ok()) << Retail().status;
  const std::string dir = testing::MakeTempDir("feedback_sigkill");
  const std::string log_dir = dir + "/log";
  pid_t pid = -1;
  const int port = StartServer(log_dir, dir + "/stderr1.log", &pid);
  ASSERT_GT(port, 0) << "the server did not start; see " << dir << "/stderr1.log";
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());

  // Callers send calls back to back until one fails (the server is gone); one more thread
  // keeps Recommend (served records) in the same files.
  constexpr int kCallers = 8;
  std::atomic<int> acknowledged{0};
  std::vector<std::vector<int>> acked(kCallers);  // Per caller: its acknowledged calls.
  std::vector<int> sent(kCallers, 0);             // Per caller: calls sent.
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kCallers; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0;; ++c) {
        v1::FeedbackResponse response;
        sent[t] = c + 1;
        if (!Feedback(channel, Request(absl::StrCat("t", t, "c", c), CallEvents(c)), &response)
                 .ok()) {
          return;
        }
        EXPECT_EQ(response.accepted(), 3);
        acked[t].push_back(c);
        ++acknowledged;
      }
    });
  }
  threads.emplace_back([&] {
    v1::RecommendRequest request = testing::RealCustomerRequest(5);
    for (int i = 0; !stop; ++i) {
      request.set_request_id(absl::StrCat("rec", i));
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::RecommendResponse response;
      if (!v1::Recommender::NewStub(channel)->Recommend(&context, request, &response).ok()) return;
    }
  });
  const bool enough = testing::Eventually([&] { return acknowledged >= 400; }, absl::Seconds(60));
  kill(pid, SIGKILL);  // While every caller has a call in flight.
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  stop = true;
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(enough) << "only " << acknowledged << " calls acknowledged";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;

  // Every acknowledged event is in the log, once; nothing is in it twice.
  std::map<std::string, int> counts = FeedbackCounts(ReadLog(log_dir, /*allow_torn_tail=*/true));
  int missing = 0;
  for (int t = 0; t < kCallers; ++t) {
    for (int c : acked[t]) {
      for (const char* event : {"shown", "clicked", "purchased"}) {
        const std::string key = absl::StrCat("t", t, "c", c, "/item", c, "/", event);
        missing += Count(counts, key) == 0;
      }
    }
  }
  EXPECT_EQ(missing, 0) << "acknowledged events missing after SIGKILL";
  for (const auto& [key, n] : counts) EXPECT_EQ(n, 1) << key << " is in the log " << n << " times";
  EXPECT_GT(std::distance(std::filesystem::directory_iterator(log_dir), {}), 3)
      << "the log never rotated: rotation was not under test";

  // Restarted on the same log, retrying every call sent (acknowledged or not) stores each
  // event once: the index is rebuilt from the files, the torn line (if any) dropped.
  const int port2 = StartServer(log_dir, dir + "/stderr2.log", &pid);
  ASSERT_GT(port2, 0) << "the server did not restart; see " << dir << "/stderr2.log";
  channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port2), grpc::InsecureChannelCredentials());
  int retried_duplicates = 0;
  for (int t = 0; t < kCallers; ++t) {
    for (int c = 0; c < sent[t]; ++c) {
      v1::FeedbackResponse response;
      ASSERT_TRUE(
          Feedback(channel, Request(absl::StrCat("t", t, "c", c), CallEvents(c)), &response).ok());
      retried_duplicates += response.duplicates();
    }
  }
  kill(pid, SIGTERM);
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_GE(retried_duplicates, 3 * acknowledged.load());
  counts = FeedbackCounts(ReadLog(log_dir));  // No torn line now.
  for (int t = 0; t < kCallers; ++t) {
    for (int c = 0; c < sent[t]; ++c) {
      for (const char* event : {"shown", "clicked", "purchased"}) {
        const std::string key = absl::StrCat("t", t, "c", c, "/item", c, "/", event);
        EXPECT_EQ(Count(counts, key), 1) << key;
      }
    }
  }
}

}  // namespace
}  // namespace recsys::server
