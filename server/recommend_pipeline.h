#ifndef RECSYS_SERVER_RECOMMEND_PIPELINE_H_
#define RECSYS_SERVER_RECOMMEND_PIPELINE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/bundle.h"
#include "core/types.h"
#include "server/request_validator.h"

namespace recsys::server {

struct PipelineOptions {
  RequestLimits limits;
  int32_t default_top_k = 10;             // Default: 10.
  int32_t default_max_attributions = 10;  // Default: 10.
  int32_t default_ig_steps = 16;          // Integrated Gradients steps. Default: 16.
  // Method used when the request leaves it unspecified. Default: exact CF contributions.
  core::AttributionMethod default_method = core::AttributionMethod::kCfExact;
};

// The whole request path at the domain level: validate, rank, explain the returned items, all
// under one deadline, with per-stage timings. It knows nothing of gRPC; the service adapter
// converts the proto and calls Run.
//
// Thread-safe: Run may be called concurrently; each call uses the bundle it is given, so a
// request finishes on the version it started with.
class RecommendPipeline {
 public:
  explicit RecommendPipeline(const PipelineOptions& options) : options_(options) {}

  // Errors: INVALID_ARGUMENT for a bad request (the message names the field),
  // DEADLINE_EXCEEDED when `deadline` passes between stages, plus those of core::Ranker.
  absl::StatusOr<core::RecommendResponse> Run(const core::RecommendRequest& request,
                                              const core::Bundle& bundle,
                                              absl::Time deadline) const;

  const PipelineOptions& options() const { return options_; }

 private:
  PipelineOptions options_;
};

}  // namespace recsys::server

#endif  // RECSYS_SERVER_RECOMMEND_PIPELINE_H_
