#ifndef RECSYS_PIPELINE_REQUEST_VALIDATOR_H_
#define RECSYS_PIPELINE_REQUEST_VALIDATOR_H_

#include <cstdint>

#include "absl/status/status.h"
#include "core/types.h"

namespace recsys::pipeline {

// Request limits, set by the server's flags and reported by GetModelInfo.
struct RequestLimits {
  int32_t max_history = 500;           // Default: 500 events.
  int32_t max_top_k = 100;             // Default: 100.
  int32_t max_candidates = 1000;       // candidate_item_ids. Default: 1000.
  int32_t max_exclude = 1000;          // exclude_item_ids. Default: 1000.
  int32_t max_id_bytes = 64;           // Any item id. Default: 64.
  int32_t max_request_id_bytes = 128;  // Default: 128.
  int32_t max_features = 32;           // Per event and per context map. Default: 32.
  int32_t max_categories = 100;        // allow/deny lists. Default: 100.
  int32_t max_attributions = 50;       // explain.max_attributions. Default: 50.
  int32_t max_steps = 256;             // explain.steps. Default: 256.
  int32_t max_samples = 1024;          // explain.samples. Default: 1024.
};

// Checks every field of `request` against `limits` and basic sanity (non-empty ids; numbers
// finite and at most 1e9 in magnitude; times between 1970 and 9999; ranges). Returns
// INVALID_ARGUMENT naming the first bad field and the limit, e.g. "history[3].item_id: empty"
// or "top_k: 5000 exceeds the limit of 100". Does not consult the bundle: unknown ids are not
// errors. Thread-safe.
absl::Status ValidateRequest(const core::RecommendRequest& request, const RequestLimits& limits);

}  // namespace recsys::pipeline

#endif  // RECSYS_PIPELINE_REQUEST_VALIDATOR_H_
