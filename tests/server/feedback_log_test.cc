// The feedback log on its own: the line format the report reads, idempotence within a call,
// across calls, concurrent calls and a restart, the bound of the deduplication window, rotation
// without loss, repair of a torn last line, and the served-record sampling.
#include "server/feedback_log.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/fixtures.h"

namespace recsys::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kEventTime =
    absl::FromCivil(absl::CivilSecond(2026, 11, 30, 15, 4, 5), absl::UTCTimeZone()) +
    absl::Milliseconds(123);
const absl::Time kReceived = kEventTime + absl::Milliseconds(877);

FeedbackRequest Request(const std::string& request_id,
                        const std::vector<std::pair<std::string, FeedbackEvent>>& events) {
  FeedbackRequest request;
  request.request_id = request_id;
  for (const auto& [item, event] : events) request.events.push_back({item, event, kEventTime});
  return request;
}

FeedbackLogOptions Options(const std::string& dir) {
  FeedbackLogOptions options;
  options.dir = dir;
  options.clock = [] { return kReceived; };
  options.served_flush_interval = absl::Hours(1);  // Only a feedback write or Close flushes.
  return options;
}

std::unique_ptr<FeedbackLog> OpenOrDie(const FeedbackLogOptions& options) {
  absl::StatusOr<std::unique_ptr<FeedbackLog>> log = FeedbackLog::Open(options);
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? *std::move(log) : nullptr;
}

// Appends and waits for the call to complete.
absl::StatusOr<FeedbackResult> AppendAndWait(FeedbackLog& log, FeedbackRequest request) {
  absl::Notification done;
  absl::StatusOr<FeedbackResult> out;
  log.Append(std::move(request), [&](absl::StatusOr<FeedbackResult> result) {
    out = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Every file of the log directory by name, and its contents.
std::map<std::string, std::string> Files(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    files[entry.path().filename().string()] = ReadFile(entry.path().string());
  }
  return files;
}

// The lines of `text`, which must end with a newline.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  EXPECT_TRUE(!lines.empty() && lines.back().empty()) << "does not end with a newline: " << text;
  lines.pop_back();
  return lines;
}

// "request_id/item_id/event" of every feedback line of every file, in file order.
std::vector<std::string> FeedbackKeys(const std::string& dir) {
  std::vector<std::string> keys;
  for (const auto& [name, text] : Files(dir)) {
    for (const std::string& line : Lines(text)) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      EXPECT_TRUE(j.is_object()) << name << ": not JSON: " << line;
      if (!j.is_object() || j["type"] != "feedback") continue;
      keys.push_back(absl::StrCat(j["request_id"].get<std::string>(), "/",
                                  j["item_id"].get<std::string>(), "/",
                                  j["event"].get<std::string>()));
    }
  }
  return keys;
}

TEST(FeedbackLogTest, WritesTheLineFormatTheReportReads) {
  const std::string dir = testing::MakeTempDir("feedback_format");
  std::unique_ptr<FeedbackLog> log = OpenOrDie(Options(dir));
  ASSERT_NE(log, nullptr);
  ServedRecord served{"r1", kEventTime, "v1", "cf_exact", {}};
  served.items.push_back({"85123A", 1, "because you bought \"X\"", "history_event", 0.43});
  served.items.push_back({"22423", 2, "", "none", 0.0});
  log->AppendServed(served);
  absl::StatusOr<FeedbackResult> result =
      AppendAndWait(*log, Request("r1", {{"85123A", FeedbackEvent::kClicked}}));
  ASSERT_TRUE(result.ok()) << result.status();
  // Written with the feedback (the flush interval is an hour), before it, without Close.
  EXPECT_THAT(
      Lines(Files(dir)["feedback.jsonl"]),
      ElementsAre(
          R"({"type":"served","request_id":"r1","time":"2026-11-30T15:04:05.123Z",)"
          R"("bundle_version":"v1","method":"cf_exact","items":[{"item_id":"85123A","rank":1,)"
          R"("reason":"because you bought \"X\"","reason_kind":"history_event",)"
          R"("reason_share":0.43},{"item_id":"22423","rank":2,"reason":"","reason_kind":"none",)"
          R"("reason_share":0}]})",
          R"({"type":"feedback","request_id":"r1","item_id":"85123A","event":"clicked",)"
          R"("time":"2026-11-30T15:04:05.123Z","received":"2026-11-30T15:04:06.000Z"})"));
}

TEST(FeedbackLogTest, EveryEventHasItsNameAndIdsSurviveEscaping) {
  const std::string dir = testing::MakeTempDir("feedback_names");
  std::unique_ptr<FeedbackLog> log = OpenOrDie(Options(dir));
  ASSERT_NE(log, nullptr);
  const std::string odd_id = "a\"b\\c\n\x01 d\xc3\xa9";
  FeedbackRequest request = Request(odd_id, {});
  for (int e = 1; e < kNumFeedbackEvents; ++e) {
    request.events.push_back({odd_id, static_cast<FeedbackEvent>(e), kEventTime});
  }
  ASSERT_TRUE(AppendAndWait(*log, request).ok());
  const std::string key = odd_id + "/" + odd_id + "/";
  EXPECT_THAT(FeedbackKeys(dir),
              ElementsAre(key + "shown", key + "clicked", key + "added_to_cart", key + "purchased",
                          key + "explanation_helpful", key + "explanation_not_helpful",
                          key + "explanation_hidden"));
}

TEST(FeedbackLogTest, ARetriedCallIsStoredOnce) {
  const std::string dir = testing::MakeTempDir("feedback_retry");
  std::unique_ptr<FeedbackLog> log = OpenOrDie(Options(dir));
  ASSERT_NE(log, nullptr);
  const FeedbackRequest request = Request("r1", {{"A", FeedbackEvent::kShown},
                                                 {"A", FeedbackEvent::kClicked},
                                                 {"B", FeedbackEvent::kShown},
                                                 {"A", FeedbackEvent::kShown}});  // Repeated.
  absl::StatusOr<FeedbackResult> first = AppendAndWait(*log, request);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->accepted, 3);
  EXPECT_EQ(first->duplicates, 1);
  EXPECT_EQ(first->accepted_by_event[static_cast<int>(FeedbackEvent::kShown)], 2);
  absl::StatusOr<FeedbackResult> retry = AppendAndWait(*log, request);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->accepted, 0);
  EXPECT_EQ(retry->duplicates, 4);
  // The same item and event under another request id is another event.
  absl::StatusOr<FeedbackResult> other =
      AppendAndWait(*log, Request("r2", {{"A", FeedbackEvent::kShown}}));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->accepted, 1);
  EXPECT_THAT(FeedbackKeys(dir),
              ElementsAre("r1/A/shown", "r1/A/clicked", "r1/B/shown", "r2/A/shown"));
}

TEST(FeedbackLogTest, RetriesWaitingForTheSameWriteAreStoredOnce) {
  const std::string dir = testing::MakeTempDir("feedback_group");
  FeedbackLogOptions options = Options(dir);
  // The writer stops after its first write until the test has queued the retries, so they are
  // written together (one group commit).
  absl::Notification first_written, queued;
  options.on_commit = [&](const FeedbackLogCommit&) {
    if (!first_written.HasBeenNotified()) {
      first_written.Notify();
      queued.WaitForNotification();
    }
  };
  std::unique_ptr<FeedbackLog> log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  log->Append(Request("first", {{"A", FeedbackEvent::kShown}}), [](auto) {});
  first_written.WaitForNotification();
  const FeedbackRequest request =
      Request("r1", {{"A", FeedbackEvent::kShown}, {"B", FeedbackEvent::kPurchased}});
  constexpr int kRetries = 8;
  absl::Mutex mu;
  int accepted = 0, duplicates = 0, done = 0;
  for (int i = 0; i < kRetries; ++i) {
    log->Append(request, [&](absl::StatusOr<FeedbackResult> r) {
      absl::MutexLock lock(&mu);
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) {
        accepted += r->accepted;
        duplicates += r->duplicates;
      }
      ++done;
    });
  }
  queued.Notify();
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* n) { return *n == kRetries; }, &done));
  }
  EXPECT_EQ(accepted, 2);
  EXPECT_EQ(duplicates, 2 * (kRetries - 1));
  EXPECT_THAT(FeedbackKeys(dir), ElementsAre("first/A/shown", "r1/A/shown", "r1/B/purchased"));
}

TEST(FeedbackLogTest, AReopenedLogDropsATornLastLineAndStillDeduplicates) {
  const std::string dir = testing::MakeTempDir("feedback_reopen");
  const FeedbackRequest request =
      Request("r1", {{"A", FeedbackEvent::kShown}, {"B", FeedbackEvent::kClicked}});
  {  // Closing rotates the current file.
    std::unique_ptr<FeedbackLog> log = OpenOrDie(Options(dir));
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(AppendAndWait(*log, request).ok());
  }
  {  // A current file whose last write a crash cut short (never acknowledged).
    std::ofstream out(dir + "/feedback.jsonl");
    out << R"({"type":"feedback","request_id":"r5","item_id":"Q","event":"shown",)"
        << R"("time":"2026-11-30T15:04:05.123Z","received":"2026-11-30T15:04:06.000Z"})"
        << "\n"
        << R"({"type":"feedback","request_id":"r9","item_id":"Z","ev)";
  }
  std::unique_ptr<FeedbackLog> log = OpenOrDie(Options(dir));
  ASSERT_NE(log, nullptr);
  absl::StatusOr<FeedbackResult> retry = AppendAndWait(*log, request);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->accepted, 0);
  EXPECT_EQ(retry->duplicates, 2);
  absl::StatusOr<FeedbackResult> whole =
      AppendAndWait(*log, Request("r5", {{"Q", FeedbackEvent::kShown}}));
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->duplicates, 1);
  absl::StatusOr<FeedbackResult> torn =
      AppendAndWait(*log, Request("r9", {{"Z", FeedbackEvent::kShown}}));
  ASSERT_TRUE(torn.ok());
  EXPECT_EQ(torn->accepted, 1);
  // Every line is whole JSON (FeedbackKeys fails the test otherwise).
  EXPECT_THAT(FeedbackKeys(dir), ::testing::UnorderedElementsAre("r1/A/shown", "r1/B/clicked",
                                                                 "r5/Q/shown", "r9/Z/shown"));
}

TEST(FeedbackLogTest, RotationLosesAndDuplicatesNothing) {
  const std::string dir = testing::MakeTempDir("feedback_rotation");
  FeedbackLogOptions options = Options(dir);
  options.max_file_bytes = 600;  // About four lines.
  // Every file stays in the deduplication window, so that a retry finds its first attempt
  // however many rotations other threads caused in between (the window has its own test).
  options.dedup_rotated_files = 1000;
  std::unique_ptr<FeedbackLog> log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  constexpr int kThreads = 4, kCalls = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        const FeedbackRequest request =
            Request(absl::StrCat("t", t, "c", c),
                    {{"A", FeedbackEvent::kShown}, {"B", FeedbackEvent::kAddedToCart}});
        // Each call twice: the retry finds the first in the index, whichever file it is in.
        for (int attempt = 0; attempt < 2; ++attempt) {
          absl::StatusOr<FeedbackResult> r = AppendAndWait(*log, request);
          if (!r.ok() || r->accepted != (attempt == 0 ? 2 : 0)) ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  log->Close();
  EXPECT_EQ(failures, 0);

  std::vector<std::string> expected;
  for (int t = 0; t < kThreads; ++t) {
    for (int c = 0; c < kCalls; ++c) {
      expected.push_back(absl::StrCat("t", t, "c", c, "/A/shown"));
      expected.push_back(absl::StrCat("t", t, "c", c, "/B/added_to_cart"));
    }
  }
  std::vector<std::string> keys = FeedbackKeys(dir);  // Every line of every file parses.
  EXPECT_THAT(keys, ::testing::UnorderedElementsAreArray(expected));
  const std::map<std::string, std::string> files = Files(dir);
  EXPECT_GT(files.size(), 10u);
  const std::regex rotated(R"(feedback-\d{8}T\d{6}\.\d{3}Z-\d{6}\.jsonl)");
  for (const auto& [name, text] : files) {
    EXPECT_TRUE(name == "feedback.jsonl" || std::regex_match(name, rotated)) << name;
    EXPECT_FALSE(text.empty()) << name;
  }
}

TEST(FeedbackLogTest, TheDeduplicationWindowIsTheCurrentAndNewestRotatedFiles) {
  const std::string dir = testing::MakeTempDir("feedback_window");
  FeedbackLogOptions options = Options(dir);
  options.max_file_bytes = 1;  // Every write after the first rotates.
  options.dedup_rotated_files = 1;
  const FeedbackRequest a = Request("a", {{"A", FeedbackEvent::kShown}});
  const FeedbackRequest b = Request("b", {{"B", FeedbackEvent::kShown}});
  const FeedbackRequest c = Request("c", {{"C", FeedbackEvent::kShown}});
  for (int restart = 0; restart < 2; ++restart) {  // The same window after a restart.
    const std::string subdir = absl::StrCat(dir, "/", restart);
    options.dir = subdir;
    std::unique_ptr<FeedbackLog> log = OpenOrDie(options);
    ASSERT_NE(log, nullptr);
    for (const FeedbackRequest& r : {a, b, c}) ASSERT_TRUE(AppendAndWait(*log, r).ok());
    if (restart == 1) {
      log.reset();
      log = OpenOrDie(options);
      ASSERT_NE(log, nullptr);
    }
    // c's file is the current one, or after the restart (closing rotated it) the newest
    // rotated one: in the window. a's is older than the newest rotated file: out of it.
    absl::StatusOr<FeedbackResult> retry_c = AppendAndWait(*log, c);
    ASSERT_TRUE(retry_c.ok());
    EXPECT_EQ(retry_c->duplicates, 1) << "restart " << restart;
    absl::StatusOr<FeedbackResult> retry_a = AppendAndWait(*log, a);
    ASSERT_TRUE(retry_a.ok());
    EXPECT_EQ(retry_a->accepted, 1) << "restart " << restart;
  }
}

TEST(FeedbackLogTest, AClosedLogRefusesCalls) {
  std::unique_ptr<FeedbackLog> log = OpenOrDie(Options(testing::MakeTempDir("feedback_closed")));
  ASSERT_NE(log, nullptr);
  log->Close();
  absl::StatusOr<FeedbackResult> r =
      AppendAndWait(*log, Request("r1", {{"A", FeedbackEvent::kShown}}));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("shutting down"));
}

TEST(FeedbackLogTest, OpenRefusesBadOptionsNamingThem) {
  FeedbackLogOptions options = Options("");
  EXPECT_THAT(FeedbackLog::Open(options).status().message(), HasSubstr("dir: required"));
  options = Options(testing::MakeTempDir("feedback_options"));
  options.max_file_bytes = 0;
  EXPECT_THAT(FeedbackLog::Open(options).status().message(), HasSubstr("max_file_bytes"));
  options = Options("/proc/recsys-feedback");  // Cannot be created.
  EXPECT_EQ(FeedbackLog::Open(options).status().code(), absl::StatusCode::kUnavailable);
}

TEST(ServedSampleTest, IsDecidedByTheRequestIdAtTheGivenRate) {
  int logged = 0;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = absl::StrCat("r", i);
    const bool decision = ShouldLogServed(id, 0.3);
    EXPECT_TRUE(!decision || ShouldLogServed(id, 0.6)) << id << ": a larger rate logs a superset";
    logged += decision;
    EXPECT_TRUE(ShouldLogServed(id, 1.0));
    EXPECT_FALSE(ShouldLogServed(id, 0.0));
  }
  EXPECT_NEAR(logged, 3000, 200);  // Binomial(10000, 0.3): sd 46.
  EXPECT_FALSE(ShouldLogServed("", 1.0));
}

TEST(ServedSampleTest, IsTheSameInEveryProcess) {
  // Every replica, and every version of the server, samples the same request ids (a retry to
  // another replica agrees; the report's join does not shift across a deploy). The ids below
  // were computed by an independent implementation of the documented hash (FNV-1a 64 of the
  // id, MurmurHash3's fmix64, top 53 bits as a fraction < rate).
  std::vector<int> sampled;
  for (int i = 0; i < 24; ++i) {
    if (ShouldLogServed(absl::StrCat("r", i), 0.5)) sampled.push_back(i);
  }
  EXPECT_THAT(sampled, ElementsAre(0, 3, 5, 7, 8, 11, 13, 16, 19));
}

}  // namespace
}  // namespace recsys::server
