#ifndef RECSYS_SERVER_RECOMMENDER_SERVICE_H_
#define RECSYS_SERVER_RECOMMENDER_SERVICE_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/bundle.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/metrics.h"
#include "pipeline/recommend_pipeline.h"
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
// passed or call cancelled before a worker picks it up: dropped without work). Recommend takes
// the raw request bytes and parses them itself, so that bytes that are not a RecommendRequest
// (malformed, or a string that is not UTF-8) get INVALID_ARGUMENT saying so; gRPC's generated
// handler would answer UNIMPLEMENTED with no message.
//
// Thread-safe. Does not own its collaborators, which must outlive the gRPC server.
class RecommenderService final
    : public v1::Recommender::WithRawCallbackMethod_Recommend<v1::Recommender::CallbackService> {
 public:
  RecommenderService(const pipeline::RecommendPipeline* pipeline, const BundleHolder* bundles,
                     WorkerPool* pool, ServiceMetrics* metrics)
      : pipeline_(pipeline), bundles_(bundles), pool_(pool), metrics_(metrics) {}

  grpc::ServerUnaryReactor* Recommend(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::GetModelInfoResponse* response) override;

 private:
  const pipeline::RecommendPipeline* const pipeline_;
  const BundleHolder* const bundles_;
  WorkerPool* const pool_;
  ServiceMetrics* const metrics_;
};

}  // namespace recsys::server

#endif  // RECSYS_SERVER_RECOMMENDER_SERVICE_H_
