#include "server/worker_pool.h"

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys::server {
namespace {

TEST(WorkerPoolTest, RefusesWhenAllThreadsAreBusyAndTheQueueIsFull) {
  WorkerPool pool(/*threads=*/1, /*queue_capacity=*/1);
  absl::Notification started, release;
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.TrySubmit([&] {
    started.Notify();
    release.WaitForNotification();
    ++ran;
  }));
  started.WaitForNotification();                // The only thread is busy.
  EXPECT_TRUE(pool.TrySubmit([&] { ++ran; }));  // Waits in the queue.
  EXPECT_EQ(pool.queue_depth(), 1);
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));  // Queue full: refused at once.
  release.Notify();
  pool.Shutdown();  // Runs what was accepted, then joins.
  EXPECT_EQ(ran.load(), 2);
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));  // Shut down: refused.
}

TEST(WorkerPoolTest, RunsEveryAcceptedTaskAcrossThreads) {
  std::atomic<int> ran{0};
  int accepted = 0;
  {
    WorkerPool pool(/*threads=*/2, /*queue_capacity=*/1000);
    for (int i = 0; i < 500; ++i) accepted += pool.TrySubmit([&] { ++ran; });
  }
  EXPECT_EQ(accepted, 500);
  EXPECT_EQ(ran.load(), 500);
}

// A task that throws costs that task only: its on_exception hears what(), the thread lives on
// to run the tasks after it, and the process is not terminated.
TEST(WorkerPoolTest, ATaskThatThrowsReportsWhatAndThePoolKeepsRunning) {
  absl::Mutex mu;
  std::vector<std::string> reported;
  auto report = [&](const std::string& what) {
    absl::MutexLock lock(&mu);
    reported.push_back(what);
  };
  std::atomic<int> ran{0};
  {
    WorkerPool pool(/*threads=*/1, /*queue_capacity=*/10);
    ASSERT_TRUE(pool.TrySubmit([] { throw std::runtime_error("model exploded"); }, report));
    ASSERT_TRUE(pool.TrySubmit([&] { ++ran; }, report));
    ASSERT_TRUE(pool.TrySubmit([] { throw 42; }, report));  // Not a std::exception.
    ASSERT_TRUE(pool.TrySubmit([] { throw std::logic_error("no handler"); }));
    ASSERT_TRUE(pool.TrySubmit([&] { ++ran; }, report));
  }  // Runs every task, then joins.
  EXPECT_EQ(ran.load(), 2);
  absl::MutexLock lock(&mu);
  EXPECT_THAT(reported, ::testing::ElementsAre("model exploded", "unknown exception"));
}

}  // namespace
}  // namespace recsys::server
