#ifndef RECSYS_EXPLAIN_EXPLAINER_H_
#define RECSYS_EXPLAIN_EXPLAINER_H_

#include <vector>

#include "core/bundle.h"
#include "core/ranker.h"
#include "core/types.h"

namespace recsys::explain {

// Exact attributions of an item's CF raw score to the history events: event t contributes
// core::CfContribution(t, item). They sum to the CF raw score; the baseline (empty history)
// scores 0. One entry per known event, in history order, zero contributions included.
std::vector<core::Attribution> CfAttributions(const core::Bundle& bundle,
                                              const core::RecommendRequest& request,
                                              const core::ResolvedHistory& history,
                                              core::ItemIndex item);

// What ExplainItems should do.
struct ExplainSettings {
  // The method to run (already resolved from the request and the server's default).
  core::AttributionMethod method = core::AttributionMethod::kCfExact;
  // Attributions kept per item, largest |attribution| first. REQUIRES: >= 1.
  int max_attributions = 10;
  bool include_source_attributions = false;
};

// Explains the ranked items in place: per-source attributions, fused attributions
// (sum over sources of weight * slope * source attribution, plus the popularity penalty as a
// PRIOR entry), completeness error, and a human-readable reason. The fused attributions of an
// item add up to score - baseline_score; completeness_error reports the floating-point rest.
// With method kNone only the per-source score breakdown stays. Thread-compatible.
void ExplainItems(const core::Bundle& bundle, const core::RecommendRequest& request,
                  const ExplainSettings& settings, core::RankedList* ranked);

}  // namespace recsys::explain

#endif  // RECSYS_EXPLAIN_EXPLAINER_H_
