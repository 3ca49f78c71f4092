#include "server/worker_pool.h"

#include <atomic>

#include "absl/synchronization/notification.h"
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
  started.WaitForNotification();                   // The only thread is busy.
  EXPECT_TRUE(pool.TrySubmit([&] { ++ran; }));     // Waits in the queue.
  EXPECT_EQ(pool.queue_depth(), 1);
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));    // Queue full: refused at once.
  release.Notify();
  pool.Shutdown();                                 // Runs what was accepted, then joins.
  EXPECT_EQ(ran.load(), 2);
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));    // Shut down: refused.
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

}  // namespace
}  // namespace recsys::server
