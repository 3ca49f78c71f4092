#ifndef RECSYS_TOOLS_HELDOUT_H_
#define RECSYS_TOOLS_HELDOUT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/evaluation.h"
#include "recsys/v1/recommender.pb.h"

namespace recsys::tools {

// The Recommend request of one evaluation case: its history (item, time, quantity, price), the
// customer's country and the case's time as context.time; nothing else set.
v1::RecommendRequest ToRequest(const core::EvalCase& c);

// The requests the benchmarks replay: one per held-out customer of the Online Retail II file
// `input` (plain or gzip), whose history is their last `max_history` purchases before `cutoff`
// (YYYY-MM-DD). Errors: a bad date, an unreadable file, or no held-out customer.
absl::StatusOr<std::vector<v1::RecommendRequest>> HeldOutRequests(const std::string& input,
                                                                  const std::string& cutoff,
                                                                  int max_history);

// The wire enum of the attribution method named `name` (pipeline/attribution_methods.h's
// names). Errors: INVALID_ARGUMENT listing the names.
absl::StatusOr<v1::AttributionMethod> ProtoMethodNamed(const std::string& name);

}  // namespace recsys::tools

#endif  // RECSYS_TOOLS_HELDOUT_H_
