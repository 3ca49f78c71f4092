#ifndef RECSYS_SERVER_RECOMMEND_PIPELINE_H_
#define RECSYS_SERVER_RECOMMEND_PIPELINE_H_

#include <atomic>
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
  // Starting estimate of the model-attribution cost, in seconds per (item x step x model),
  // refined by a moving average of measured runs. Default: 0 (learn from the first run).
  double initial_attribution_seconds_per_unit = 0.0;
  // Method used when the request leaves it unspecified. Default: exact CF contributions.
  core::AttributionMethod default_method = core::AttributionMethod::kCfExact;
};

// The whole request path at the domain level: validate, rank, explain the returned items, all
// under one deadline, with per-stage timings. Model attribution is skipped (the exact sources
// are still explained, and the response says why) when its estimated cost exceeds half the time
// left before the deadline: an explanation never costs a recommendation. It knows nothing of gRPC; the service adapter
// converts the proto and calls Run.
//
// Thread-safe: Run may be called concurrently; each call uses the bundle it is given, so a
// request finishes on the version it started with.
class RecommendPipeline {
 public:
  explicit RecommendPipeline(const PipelineOptions& options)
      : options_(options), seconds_per_unit_(options.initial_attribution_seconds_per_unit) {}

  // Errors: INVALID_ARGUMENT for a bad request (the message names the field),
  // DEADLINE_EXCEEDED when `deadline` passes between stages, plus those of core::Ranker.
  absl::StatusOr<core::RecommendResponse> Run(const core::RecommendRequest& request,
                                              const core::Bundle& bundle,
                                              absl::Time deadline) const;

  const PipelineOptions& options() const { return options_; }

 private:
  PipelineOptions options_;
  // Moving average of the model-attribution cost per unit; shared by concurrent requests.
  mutable std::atomic<double> seconds_per_unit_;
};

}  // namespace recsys::server

#endif  // RECSYS_SERVER_RECOMMEND_PIPELINE_H_
