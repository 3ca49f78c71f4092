// Occlusion and KernelSHAP on the item-CF bundle of testutil, checked against an independent
// oracle: the ranker's score of the same request with some history events left out.
#include "explain/perturbation.h"

#include <map>

#include "core/ranker.h"
#include "explain/explainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::explain {
namespace {

using core::Attribution;
using core::FeatureKind;

// The fused score of `item` for `request` reduced to the history events flagged in `keep`,
// ranked afresh (the caller's view: the same request without those events).
double ScoreWithout(const core::Bundle& bundle, const core::RecommendRequest& request,
                    const std::vector<bool>& keep, const std::string& item) {
  core::RecommendRequest reduced = request;
  reduced.history.clear();
  for (size_t t = 0; t < request.history.size(); ++t) {
    if (keep[t]) reduced.history.push_back(request.history[t]);
  }
  reduced.candidate_item_ids = {item};
  reduced.candidates_only = true;
  reduced.exclude_history = false;
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, reduced, 1, &ranked).ok());
  return ranked.items.at(0).score;
}

// Fused attributions of HISTORY_EVENT entries by history index (absent = 0).
std::map<int, double> EventAttributions(const core::RecommendedItem& item) {
  std::map<int, double> out;
  for (const Attribution& a : item.attributions) {
    if (a.kind == FeatureKind::kHistoryEvent) out[a.history_index] += a.attribution;
  }
  return out;
}

core::RankedList Explain(const core::Bundle& bundle, const core::RecommendRequest& request,
                         core::AttributionMethod method, int samples = 128, uint64_t seed = 1) {
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.method = method;
  settings.samples = samples;
  settings.seed = seed;
  settings.max_attributions = 100;
  EXPECT_EQ(ExplainItems(bundle, request, settings, &ranked), "");
  return ranked;
}

core::RecommendRequest RepeatingHistory() {
  core::RecommendRequest r = testing::RequestWithHistory({"21A", "21B", "21C", "21A"});
  r.exclude_history = false;
  return r;
}

TEST(KernelShapTest, WithEveryCoalitionItIsTheExactShapleyValueOfTheScore) {
  // Self-similarity and recency weights that renormalise over the kept events make the CF
  // score non-additive in the events, so Shapley values differ from leave-one-out effects.
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  const core::RecommendRequest request = RepeatingHistory();
  const int M = static_cast<int>(request.history.size());
  core::RankedList ranked = Explain(*bundle, request, core::AttributionMethod::kKernelShap);
  ASSERT_FALSE(ranked.items.empty());
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    std::vector<double> v(1 << M);
    for (int mask = 0; mask < (1 << M); ++mask) {
      std::vector<bool> keep(M);
      for (int t = 0; t < M; ++t) keep[t] = (mask >> t) & 1;
      v[mask] = ScoreWithout(*bundle, request, keep, item.item_id);
    }
    std::map<int, double> phi = EventAttributions(item);
    for (int i = 0; i < M; ++i) {
      double shapley = 0.0;
      for (int mask = 0; mask < (1 << M); ++mask) {
        if ((mask >> i) & 1) continue;
        const int s = __builtin_popcount(mask);
        double weight = 1.0;  // s! (M - s - 1)! / M!
        for (int j = 1; j <= s; ++j) weight *= j;
        for (int j = 1; j <= M - s - 1; ++j) weight *= j;
        for (int j = 1; j <= M; ++j) weight /= j;
        shapley += weight * (v[mask | (1 << i)] - v[mask]);
      }
      EXPECT_NEAR(phi[i], shapley, 1e-9) << "event " << i;
    }
    EXPECT_NEAR(item.completeness_error, 0.0, 1e-9);
    EXPECT_NEAR(item.score - item.baseline_score, v[(1 << M) - 1] - v[0], 1e-9);
  }
}

TEST(KernelShapTest, SampledCoalitionsAreSeededAndStillComplete) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.8, 100, 2.0);
  core::RecommendRequest request =
      testing::RequestWithHistory({"21A", "21B", "21C", "21A", "21D", "21B", "21C", "21A"});
  request.exclude_history = false;
  // 8 players have 254 proper coalitions; 16 samples draw a few of them.
  core::RankedList a = Explain(*bundle, request, core::AttributionMethod::kKernelShap, 16, 7);
  core::RankedList b = Explain(*bundle, request, core::AttributionMethod::kKernelShap, 16, 7);
  core::RankedList c = Explain(*bundle, request, core::AttributionMethod::kKernelShap, 16, 8);
  ASSERT_FALSE(a.items.empty());
  bool seed_matters = false;
  for (size_t k = 0; k < a.items.size(); ++k) {
    EXPECT_NEAR(a.items[k].completeness_error, 0.0, 1e-9);  // Efficiency is a constraint.
    EXPECT_EQ(EventAttributions(a.items[k]), EventAttributions(b.items[k]));
    seed_matters |= EventAttributions(a.items[k]) != EventAttributions(c.items[k]);
  }
  EXPECT_TRUE(seed_matters);
}

TEST(OcclusionTest, AnEventsAttributionIsTheScoreChangeWithoutIt) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  const core::RecommendRequest request = RepeatingHistory();
  const int M = static_cast<int>(request.history.size());
  core::RankedList ranked = Explain(*bundle, request, core::AttributionMethod::kOcclusion);
  ASSERT_FALSE(ranked.items.empty());
  bool non_additive = false;
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    std::map<int, double> phi = EventAttributions(item);
    for (int i = 0; i < M; ++i) {
      std::vector<bool> keep(M, true);
      keep[i] = false;
      EXPECT_NEAR(phi[i], item.score - ScoreWithout(*bundle, request, keep, item.item_id), 1e-9);
    }
    non_additive |= std::abs(item.completeness_error) > 1e-6;
    // The reason comes from the largest positive event, even when a negative one is larger.
    bool positive_event = false;
    for (const auto& [index, phi_i] : phi) positive_event |= phi_i > 0;
    EXPECT_EQ(item.reason.empty(), !positive_event) << item.reason;
  }
  // Leave-one-out effects of a renormalised score do not add up: the error says by how much.
  EXPECT_TRUE(non_additive);
}

TEST(KernelShapTest, ASinglePlayerTakesTheWholeDifference) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  core::RecommendRequest one = testing::RequestWithHistory({"21A"});
  one.exclude_history = false;
  core::RankedList ranked = Explain(*bundle, one, core::AttributionMethod::kKernelShap);
  ASSERT_FALSE(ranked.items.empty());
  for (const core::RecommendedItem& item : ranked.items) {
    EXPECT_NEAR(EventAttributions(item)[0], item.score - item.baseline_score, 1e-12);
  }
}

}  // namespace
}  // namespace recsys::explain
