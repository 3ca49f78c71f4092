#include "server/worker_pool.h"

#include <algorithm>
#include <exception>
#include <iostream>

namespace recsys::server {

WorkerPool::WorkerPool(int threads, int queue_capacity) : queue_capacity_(queue_capacity) {
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkerPool::~WorkerPool() { Shutdown(); }

bool WorkerPool::TrySubmit(std::function<void()> task,
                           std::function<void(const std::string&)> on_exception) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return false;
  // Tasks beyond the idle threads wait in the queue, which holds at most queue_capacity_.
  const int waiting = static_cast<int>(queue_.size()) + 1 - idle_;
  if (waiting > queue_capacity_) return false;
  queue_.push_back({std::move(task), std::move(on_exception)});
  return true;
}

int WorkerPool::queue_depth() const {
  absl::MutexLock lock(&mu_);
  // A task handed to an idle thread that has not woken yet is not waiting.
  return std::max(0, static_cast<int>(queue_.size()) - idle_);
}

double WorkerPool::load() const {
  const int depth = queue_depth();
  if (queue_capacity_ == 0) return depth > 0 ? 1.0 : 0.0;
  return std::min(1.0, static_cast<double>(depth) / queue_capacity_);
}

void WorkerPool::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void WorkerPool::Run(const Task& task) {
  std::string what;
  try {
    task.run();
    return;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "unknown exception";
  }
  if (task.on_exception) {
    task.on_exception(what);
  } else {
    std::cerr << "recsys_server: a worker task threw and has no handler: " << what << "\n";
  }
}

void WorkerPool::Loop() {
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      ++idle_;
      mu_.Await(absl::Condition(
          +[](WorkerPool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mu_) {
            return pool->shutdown_ || !pool->queue_.empty();
          },
          this));
      --idle_;
      if (queue_.empty()) return;  // Shut down and drained.
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    Run(task);
  }
}

}  // namespace recsys::server
