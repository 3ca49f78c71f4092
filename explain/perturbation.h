#ifndef RECSYS_EXPLAIN_PERTURBATION_H_
#define RECSYS_EXPLAIN_PERTURBATION_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/bundle.h"
#include "core/featurizer.h"
#include "core/ranker.h"
#include "core/types.h"

namespace recsys::explain {

// Perturbation attributions of the fused score, model-agnostic: they see the blend only through
// re-scoring. The players are the request's known history events and its context groups
// (core::ContextGroups: a time's sin and cos together, the country's one-hots together) that
// have a feature off its baseline (FeatureSpec::baseline, the training mean; a group at its
// baseline has no effect). A coalition keeps the present players and removes the others:
// - an absent history event is left out of the request, exactly as if the caller had not sent
//   it: CF re-weights the remaining events, the models see the shorter history (with the gaps
//   and recency that follow from it);
// - an absent context group takes its baseline value in every feature.
// The empty coalition is the attribution baseline (core::BaselineInput: the empty history under
// the baseline context), so its value is the ranker's baseline_score.
struct Players {
  std::vector<size_t> events;  // Indices into RankedList::history (known events), oldest first.
  // Per player, a context group (one with a feature off its baseline).
  std::vector<core::ContextGroup> context;
  size_t size() const { return events.size() + context.size(); }
};

// Evaluates coalitions of one ranked request for all its returned items, each model's share in
// one batched pass. A coalition is one flag per player, events first, then context groups.
// The value v(S) of a coalition is the fused score of the request reduced to S without the parts
// no player changes (the popularity source and the popularity penalty): for the full coalition it
// is item.score - pop contribution + penalty. Holds references to its arguments. Thread-compatible.
class CoalitionScorer {
 public:
  CoalitionScorer(const core::Bundle& bundle, const core::RecommendRequest& request,
                  const core::RankedList& ranked);

  const Players& players() const { return players_; }
  size_t num_items() const { return ranked_.items.size(); }

  // values[b * num_items() + k] = v(coalitions[b]) for item k of ranked.items.
  // REQUIRES: every coalition has players().size() flags. Errors: those of the models.
  absl::Status Score(const std::vector<std::vector<bool>>& coalitions,
                     std::vector<double>* values) const;

 private:
  const core::Bundle& bundle_;
  const core::RecommendRequest& request_;
  const core::RankedList& ranked_;
  Players players_;
  // cf_terms_[t * K + k]: the CF similarity term of known event t for item k (self_similarity
  // when the event is the item itself), before recency weighting; is_self_ flags the latter.
  std::vector<double> cf_terms_;
  std::vector<bool> is_self_;

  // Raw scores of each coalition b (present[b]: its present known events) for item k at
  // raw[b * K + k]: CF's, and a model's in one batched pass.
  void CfRaw(const std::vector<std::vector<size_t>>& present, std::vector<double>* raw) const;
  absl::Status ModelRaw(const core::RankedSource& source,
                        const std::vector<std::vector<size_t>>& present,
                        const std::vector<std::vector<bool>>& coalitions,
                        std::vector<double>* raw) const;
};

// Attributions of each item (outer index, ranked order) to each player (inner index).
using PlayerAttributions = std::vector<std::vector<double>>;

// Occlusion: phi_p = v(all players) - v(all players but p); one batch of M + 1 coalitions.
// No completeness guarantee (interactions are counted by every player they involve, or none).
absl::Status Occlusion(const CoalitionScorer& scorer, PlayerAttributions* phi);

// KernelSHAP (Lundberg & Lee 2017): the Shapley values of v as the constrained weighted least
// squares fit over coalitions with the Shapley kernel. When 2^M - 2 <= samples every coalition
// is enumerated and the result is the exact Shapley values; otherwise `samples` coalitions are
// scored: the sizes of most kernel mass (1 and M - 1, then 2 and M - 2, ...) enumerated whole
// while they fit and leave room for draws, the rest drawn from the other sizes (each draw with
// its complement) by a generator seeded with `seed`, so equal requests get equal explanations.
// Efficiency holds exactly in both cases: the attributions of an item sum to v(all) - v(none).
// `*evaluated` receives the number of coalitions scored. `standard_error` receives, per item,
// an estimate of the sampled values' error: the root mean square over players of
// |phi_A - phi_B| / 2, phi_A and phi_B fitted on the enumerated coalitions and each on every
// other pair of draws (weights doubled); 0 for exact values, empty with fewer than two pairs
// of draws. Rough (one split), but it says when the samples are too few for the players.
// REQUIRES: samples >= 2.
absl::Status KernelShap(const CoalitionScorer& scorer, int samples, uint64_t seed,
                        PlayerAttributions* phi, int* evaluated,
                        std::vector<double>* standard_error);

// LIME (Ribeiro et al. 2016): a local weighted linear surrogate over KernelSHAP's coalitions
// (the same `samples` and `seed` give the same ones), fitting every player (lime's
// feature_selection "none"). Each coalition weighs lime's text kernel, sqrt(exp(-d^2 / 25^2))
// with d = 100 x the cosine distance of its presence vector from all-ones, scaled so that the
// weights sum to `samples` (as many rows as lime would fit). With many players the coalitions
// near the request (one player out: sizes M - 1 are enumerated first) weigh most and those far
// from it (one player in) next to nothing. A ridge regression (alpha 1, with intercept) of the
// values on the presence flags, weighted, gives each player's coefficient as its attribution;
// one player gets v(all) - v(none). Not constrained to add up: completeness is what the fit
// gives. `r_squared` receives each item's weighted R^2 of the fit (1 for a perfect fit, 0 for
// no better than the weighted mean). REQUIRES: samples >= 2.
absl::Status Lime(const CoalitionScorer& scorer, int samples, uint64_t seed,
                  PlayerAttributions* phi, std::vector<double>* r_squared);

}  // namespace recsys::explain

#endif  // RECSYS_EXPLAIN_PERTURBATION_H_
