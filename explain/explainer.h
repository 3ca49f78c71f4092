#ifndef RECSYS_EXPLAIN_EXPLAINER_H_
#define RECSYS_EXPLAIN_EXPLAINER_H_

#include <string>
#include <utility>
#include <vector>

#include "core/bundle.h"
#include "core/ranker.h"
#include "core/types.h"

namespace recsys::explain {

// Exact attributions of an item's CF raw score to the history events: event t contributes
// core::CfContribution(t, item). They sum to the CF raw score; the baseline (empty history)
// scores 0. One entry per known event, in history order, zero contributions included.
std::vector<core::Attribution> CfAttributions(const core::Bundle& bundle,
                                              const core::ResolvedHistory& history,
                                              core::ItemIndex item);

// What ExplainItems should do.
struct ExplainSettings {
  // The method to run (already resolved from the request and the server's default):
  // kCfExact attributes the exact sources (cf, pop) only; kIntegratedGradients also the
  // models; kGradientXInput the models by gradient x (input - baseline) (one backward pass, no
  // completeness guarantee); kNone nothing.
  core::AttributionMethod method = core::AttributionMethod::kCfExact;
  // Integration steps (Gauss-Legendre nodes) of Integrated Gradients. REQUIRES: >= 1.
  int steps = 16;
  // Attributions kept per item, largest |attribution| first. REQUIRES: >= 1.
  int max_attributions = 10;
  bool include_source_attributions = false;
};

// Gauss-Legendre quadrature on [0, 1]: n (node, weight) pairs, nodes ascending, weights summing
// to 1. Exact for polynomials of degree < 2n.
std::vector<std::pair<double, double>> GaussLegendre(int n);

// Explains the ranked items in place: per-source attributions, fused attributions (sum over
// sources of weight * slope * source attribution, entries of the same feature merged, plus the
// popularity penalty as a PRIOR entry), completeness errors and a human-readable reason. The
// fused attributions of an item add up to score - baseline_score up to completeness_error:
// floating-point rounding for the exact sources, the integration error of Integrated Gradients,
// or the models' whole share when they were not attributed (kCfExact). Model attributions:
// per history event (the item), per event side-feature and per context feature. Returns a note
// for the response when a model could not be attributed (the recommendation still stands), else
// "". Thread-compatible.
std::string ExplainItems(const core::Bundle& bundle, const core::RecommendRequest& request,
                         const ExplainSettings& settings, core::RankedList* ranked);

}  // namespace recsys::explain

#endif  // RECSYS_EXPLAIN_EXPLAINER_H_
