#ifndef RECSYS_SERVER_WORKER_POOL_H_
#define RECSYS_SERVER_WORKER_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace recsys::server {

// A fixed set of threads that run CPU-heavy request work, fed by a bounded FIFO queue, so that
// gRPC's library threads never block and overload is refused at once instead of queueing
// without bound.
//
// Thread-safe. The destructor calls Shutdown().
class WorkerPool {
 public:
  // REQUIRES: threads >= 1, queue_capacity >= 0 (0: a task is accepted only when a thread is
  // idle).
  WorkerPool(int threads, int queue_capacity);
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` and returns true, or returns false without running it when the queue is full
  // or the pool is shutting down. A task that throws does not end the process or the thread:
  // the pool catches the exception and calls `on_exception` with its what() (a request's task
  // answers INTERNAL there; it runs only when `task` did not finish its call), or logs it to
  // stderr without a handler.
  bool TrySubmit(std::function<void()> task,
                 std::function<void(const std::string&)> on_exception = nullptr);

  // Tasks waiting for a busy thread (at most queue_capacity).
  int queue_depth() const;
  int queue_capacity() const { return queue_capacity_; }
  // queue_depth() / queue_capacity() in [0, 1] (1 whenever a task waits on a 0-capacity pool).
  double load() const;

  // Refuses new tasks, runs every task already accepted, and joins the threads. Idempotent.
  void Shutdown();

 private:
  struct Task {
    std::function<void()> run;
    std::function<void(const std::string&)> on_exception;
  };
  void Loop();
  static void Run(const Task& task);

  const int queue_capacity_;
  mutable absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace recsys::server

#endif  // RECSYS_SERVER_WORKER_POOL_H_
