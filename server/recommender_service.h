#ifndef RECSYS_SERVER_RECOMMENDER_SERVICE_H_
#define RECSYS_SERVER_RECOMMENDER_SERVICE_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/bundle.h"
#include "pipeline/recommend_pipeline.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/feedback_log.h"
#include "server/metrics.h"
#include "server/worker_pool.h"

namespace recsys::server {

// The bundle version being served. A request takes a reference when it starts and keeps its
// version to the end, whatever is swapped in meanwhile. Thread-safe.
class BundleHolder {
 public:
  std::shared_ptr<const core::Bundle> Get() const {
    absl::MutexLock lock(&mu_);
    return bundle_;
  }
  void Set(std::shared_ptr<const core::Bundle> bundle) {
    absl::MutexLock lock(&mu_);
    bundle_ = std::move(bundle);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const core::Bundle> bundle_ ABSL_GUARDED_BY(mu_);
};

// gRPC adapter of recsys.v1.Recommender on the callback API. Handlers never block gRPC's
// threads: Recommend runs on the worker pool (full queue: RESOURCE_EXHAUSTED at once; deadline
// passed or call cancelled before a worker picks it up: dropped without work); Feedback is
// finished by the feedback log's writer thread once its events are on disk. Recommend and
// Feedback take the raw request bytes and parse them themselves, so that bytes that are not the
// request message (malformed, or a string that is not UTF-8) get INVALID_ARGUMENT saying so;
// gRPC's generated handler would answer UNIMPLEMENTED with no message.
//
// Without a feedback log Feedback answers UNIMPLEMENTED (the feature is not enabled on this
// server) and no served record is logged.
//
// Thread-safe. Does not own its collaborators, which must outlive the gRPC server.
class RecommenderService final
    : public v1::Recommender::WithRawCallbackMethod_Recommend<
          v1::Recommender::WithRawCallbackMethod_Feedback<v1::Recommender::CallbackService>> {
 public:
  // `feedback_log` may be null. `served_log_sample`: share of successful Recommend responses
  // logged as served records (ShouldLogServed).
  RecommenderService(const pipeline::RecommendPipeline* pipeline, const BundleHolder* bundles,
                     WorkerPool* pool, ServiceMetrics* metrics, FeedbackLog* feedback_log = nullptr,
                     double served_log_sample = 0.0)
      : pipeline_(pipeline),
        bundles_(bundles),
        pool_(pool),
        metrics_(metrics),
        feedback_log_(feedback_log),
        served_log_sample_(served_log_sample) {}

  grpc::ServerUnaryReactor* Recommend(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::GetModelInfoResponse* response) override;
  grpc::ServerUnaryReactor* Feedback(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;

 private:
  // Hands `response` to the feedback log when its request id is sampled.
  void LogServed(const core::RecommendResponse& response);

  const pipeline::RecommendPipeline* const pipeline_;
  const BundleHolder* const bundles_;
  WorkerPool* const pool_;
  ServiceMetrics* const metrics_;
  FeedbackLog* const feedback_log_;
  const double served_log_sample_;
};

}  // namespace recsys::server

#endif  // RECSYS_SERVER_RECOMMENDER_SERVICE_H_
