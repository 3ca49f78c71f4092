#ifndef RECSYS_EXPLAIN_EXPLAINER_H_
#define RECSYS_EXPLAIN_EXPLAINER_H_

#include <cstdint>
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

// The default least share of score - baseline_score a reason must rest on: a fifth, so that
// "because you bought X" is never said of an attribution that carries a sliver of the score
// (the server's --reason_min_share; a feedback log can derive a better one, docs/feedback.md).
inline constexpr double kDefaultReasonMinShare = 0.2;

// What ExplainItems should do.
struct ExplainSettings {
  // The method to run (already resolved from the request and the server's default): kReplay
  // attributes every source exactly, the models by replaying the request (explain/replay.h);
  // kCfExact the exact sources (cf, pop) only; kIntegratedGradients also the
  // models; kGradientXInput the models by gradient x (input - baseline) (one backward pass, no
  // completeness guarantee); kOcclusion, kKernelShap and kLime the fused score by re-scoring
  // without history events and context groups (explain/perturbation.h); kNone nothing.
  core::AttributionMethod method = core::AttributionMethod::kReplay;
  // Integration steps (Gauss-Legendre nodes) of Integrated Gradients. REQUIRES: >= 1.
  int steps = 16;
  // KernelSHAP and LIME: coalitions to sample (KernelSHAP: all of them when 2^players - 2 <=
  // samples) and the seed
  // of their generator. REQUIRES: samples >= 2.
  int samples = 128;
  uint64_t seed = 1;
  // Attributions kept per item, largest |attribution| first. REQUIRES: >= 1.
  int max_attributions = 10;
  bool include_source_attributions = false;
  // The least share of score - baseline_score the cited attribution must carry for the item to
  // get a reason; below it the reason is "" and reason_kind "none" (a weak reason reads as a
  // non sequitur to the shopper). 0 gives a reason whenever there is a positive candidate.
  // tools/feedback_report.py derives it from the feedback log (docs/feedback.md).
  double reason_min_share = kDefaultReasonMinShare;
};

// Explains the ranked items in place: per-source attributions, fused attributions (sum over
// sources of weight * slope * source attribution, entries of the same feature merged, plus the
// popularity penalty as a PRIOR entry), completeness errors and a human-readable reason. The
// fused attributions of an item add up to score - baseline_score up to completeness_error:
// floating-point rounding for replay, the exact sources and KernelSHAP, the integration error of
// Integrated Gradients, the interactions occlusion misses, what LIME's fit leaves, or the
// models' whole share when they were not attributed (kCfExact). Replay attributes per history
// event, per side-feature kind and per context group; gradient methods per history event (the
// item), per event side-feature and per context feature; the perturbation methods (occlusion,
// KernelSHAP, LIME) per history event (with its side-features) and per context group, on the
// fused score, so that with them only the exact sources carry per-source attributions. LIME
// sets each item's surrogate_r_squared. A model source left unattributed reports its
// whole share raw_score - baseline as its completeness_error. Returns a note for the response
// when a method could not run (the recommendation still stands), else "". Thread-compatible.
std::string ExplainItems(const core::Bundle& bundle, const core::RecommendRequest& request,
                         const ExplainSettings& settings, core::RankedList* ranked);

}  // namespace recsys::explain

#endif  // RECSYS_EXPLAIN_EXPLAINER_H_
