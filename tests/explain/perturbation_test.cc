// Occlusion and KernelSHAP on the item-CF bundle of testutil, checked against an independent
// oracle: the ranker's score of the same request with some history events left out.
#include "explain/perturbation.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/ranker.h"
#include "explain/explainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/explain_fixtures.h"
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

double Sum(const std::vector<Attribution>& attributions) {
  double sum = 0.0;
  for (const Attribution& a : attributions) sum += a.attribution;
  return sum;
}

// Fused attributions of HISTORY_EVENT entries by history index (absent = 0).
std::map<int, double> EventAttributions(const core::RecommendedItem& item) {
  std::map<int, double> out;
  for (const Attribution& a : item.attributions) {
    if (a.kind == FeatureKind::kHistoryEvent) out[a.history_index] += a.attribution;
  }
  return out;
}

// Expects each history event's fused attribution of `item` to be the score change of
// `request` without that event (occlusion's definition).
void ExpectLeaveOneOutEffects(const core::Bundle& bundle, const core::RecommendRequest& request,
                              const core::RecommendedItem& item) {
  std::map<int, double> phi = EventAttributions(item);
  const int M = static_cast<int>(request.history.size());
  for (int i = 0; i < M; ++i) {
    std::vector<bool> keep(M, true);
    keep[i] = false;
    EXPECT_NEAR(phi[i], item.score - ScoreWithout(bundle, request, keep, item.item_id), 1e-9)
        << "event " << i;
  }
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

// The exact Shapley values of the history events for `item`'s fused score, by enumeration: the
// value of a coalition is the ranker's score of the request reduced to it.
std::vector<double> ExactShapley(const core::Bundle& bundle, const core::RecommendRequest& request,
                                 const std::string& item) {
  const int M = static_cast<int>(request.history.size());
  std::vector<double> v(1 << M);
  for (int mask = 0; mask < (1 << M); ++mask) {
    std::vector<bool> keep(M);
    for (int t = 0; t < M; ++t) keep[t] = (mask >> t) & 1;
    v[mask] = ScoreWithout(bundle, request, keep, item);
  }
  std::vector<double> phi(M, 0.0);
  for (int i = 0; i < M; ++i) {
    for (int mask = 0; mask < (1 << M); ++mask) {
      if ((mask >> i) & 1) continue;
      const int s = __builtin_popcount(mask);
      double weight = 1.0;  // s! (M - s - 1)! / M!
      for (int j = 1; j <= s; ++j) weight *= j;
      for (int j = 1; j <= M - s - 1; ++j) weight *= j;
      for (int j = 1; j <= M; ++j) weight /= j;
      phi[i] += weight * (v[mask | (1 << i)] - v[mask]);
    }
  }
  return phi;
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
    const std::vector<double> shapley = ExactShapley(*bundle, request, item.item_id);
    std::map<int, double> phi = EventAttributions(item);
    for (int i = 0; i < M; ++i) EXPECT_NEAR(phi[i], shapley[i], 1e-9) << "event " << i;
    EXPECT_NEAR(item.completeness_error, 0.0, 1e-9);
    EXPECT_EQ(item.attribution_standard_error, 0.0);  // Exact: no sampling error.
  }
}

TEST(KernelShapTest, SampledCoalitionsAreSeeded) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.8, 100, 2.0);
  core::RecommendRequest request =
      testing::RequestWithHistory({"21A", "21B", "21C", "21A", "21D", "21B", "21C", "21A"});
  request.exclude_history = false;
  // 8 players have 254 proper coalitions. The 16 of sizes 1 and 7 would fill 16 samples and
  // leave no draw for the other sizes (their kernel mass lost): all 16 are drawn instead.
  core::RankedList a = Explain(*bundle, request, core::AttributionMethod::kKernelShap, 16, 7);
  core::RankedList b = Explain(*bundle, request, core::AttributionMethod::kKernelShap, 16, 7);
  core::RankedList c = Explain(*bundle, request, core::AttributionMethod::kKernelShap, 16, 8);
  ASSERT_FALSE(a.items.empty());
  bool seed_matters = false;
  for (size_t k = 0; k < a.items.size(); ++k) {
    EXPECT_EQ(EventAttributions(a.items[k]), EventAttributions(b.items[k]));
    seed_matters |= EventAttributions(a.items[k]) != EventAttributions(c.items[k]);
  }
  EXPECT_TRUE(seed_matters);
}

// Root mean square over items and events of sampled KernelSHAP's error against `exact`.
double RmsError(const core::RankedList& ranked, const std::vector<std::vector<double>>& exact) {
  double sum = 0.0;
  int n = 0;
  for (size_t k = 0; k < ranked.items.size(); ++k) {
    std::map<int, double> phi = EventAttributions(ranked.items[k]);
    for (size_t i = 0; i < exact[k].size(); ++i) {
      sum += (phi[static_cast<int>(i)] - exact[k][i]) * (phi[static_cast<int>(i)] - exact[k][i]);
      ++n;
    }
  }
  return std::sqrt(sum / n);
}

// Root mean square over items of KernelSHAP's own error estimate (attribution_standard_error).
double RmsReportedError(const core::RankedList& ranked) {
  double sum = 0.0;
  for (const core::RecommendedItem& item : ranked.items) {
    EXPECT_TRUE(item.attribution_standard_error.has_value());
    sum += std::pow(item.attribution_standard_error.value_or(0.0), 2);
  }
  return std::sqrt(sum / ranked.items.size());
}

TEST(KernelShapTest, SampledCoalitionsEstimateTheShapleyValues) {
  // 10 events, 1,022 proper coalitions: the exact values by enumeration (they reach 0.56 in
  // magnitude), against estimates from 64 and 512 coalitions for each of 20 seeds. Measured,
  // as the RMS error over the 4 items x 10 events: 64 samples mean 0.064 and worst seed 0.098
  // (sizes 1 and 9 enumerated, 44 draws); 512 samples mean 0.0087 and worst 0.012 (sizes 1-3 and
  // 7-9 enumerated, 162 draws from sizes 4-6). The bounds are about 1.5-2.5x those. Drawing
  // every coalition (the design before the enumeration of whole sizes) was off by 0.126 and
  // 0.034 on average, and fails the bounds on the means; a sampler that draws coalition sizes
  // uniformly rather than by the Shapley kernel is biased, however many samples it draws.
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.8, 100, 2.0);
  core::RecommendRequest request = testing::RequestWithHistory(
      {"21A", "21B", "21C", "21A", "21D", "21B", "21C", "21A", "21B", "21C"});
  request.exclude_history = false;
  const int M = static_cast<int>(request.history.size());
  const core::RankedList ranked = Explain(*bundle, request, core::AttributionMethod::kKernelShap);
  ASSERT_EQ(ranked.items.size(), 4u);
  std::vector<std::vector<double>> exact;
  for (const core::RecommendedItem& item : ranked.items) {
    exact.push_back(ExactShapley(*bundle, request, item.item_id));
  }
  constexpr int kSeeds = 20;
  double mean_64 = 0.0, mean_512 = 0.0, reported_64 = 0.0, reported_512 = 0.0;
  std::vector<std::vector<double>> average(exact.size(), std::vector<double>(M, 0.0));
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE(seed);
    const core::RankedList few =
        Explain(*bundle, request, core::AttributionMethod::kKernelShap, 64, seed);
    const core::RankedList many =
        Explain(*bundle, request, core::AttributionMethod::kKernelShap, 512, seed);
    ASSERT_EQ(few.items.size(), exact.size());
    ASSERT_EQ(many.items.size(), exact.size());
    const double error_64 = RmsError(few, exact), error_512 = RmsError(many, exact);
    EXPECT_LT(error_64, 0.25);
    EXPECT_LT(error_512, 0.03);
    mean_64 += error_64 / kSeeds;
    mean_512 += error_512 / kSeeds;
    reported_64 += RmsReportedError(few) / kSeeds;
    reported_512 += RmsReportedError(many) / kSeeds;
    for (size_t k = 0; k < exact.size(); ++k) {
      std::map<int, double> phi = EventAttributions(many.items[k]);
      for (int i = 0; i < M; ++i) average[k][i] += phi[i] / kSeeds;
    }
  }
  EXPECT_LT(mean_64, 0.09);
  EXPECT_LT(mean_512, 0.02);
  // The error estimate follows the error on average (measured: 0.069 against 0.064, 0.0091
  // against 0.0087); without the halving of |phi_A - phi_B| it would be twice that.
  EXPECT_GT(reported_64, 0.67 * mean_64);
  EXPECT_LT(reported_64, 1.5 * mean_64);
  EXPECT_GT(reported_512, 0.67 * mean_512);
  EXPECT_LT(reported_512, 1.5 * mean_512);
  // More samples, smaller error on average (0.13 measured: the larger budget enumerates more).
  EXPECT_LT(mean_512, 0.5 * mean_64);
  // Sampling is an estimate: the comparison can tell the sampled values from the exact ones.
  EXPECT_GT(mean_512, 1e-4);
  // The estimates centre on the Shapley values: averaging over seeds leaves little error.
  core::RankedList averaged = ranked;
  for (size_t k = 0; k < exact.size(); ++k) {
    averaged.items[k].attributions.clear();
    for (int i = 0; i < M; ++i) {
      Attribution& a = averaged.items[k].attributions.emplace_back();
      a.kind = FeatureKind::kHistoryEvent;
      a.history_index = i;
      a.attribution = average[k][i];
    }
  }
  // Unbiased estimates average their errors away like 1 / sqrt(seeds) = 0.22 (0.23 measured:
  // 0.0020 against 0.0087); a bias would keep the average near the per-seed error.
  EXPECT_LT(RmsError(averaged, exact), 0.4 * mean_512);
}

TEST(OcclusionTest, AnEventsAttributionIsTheScoreChangeWithoutIt) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  const core::RecommendRequest request = RepeatingHistory();
  core::RankedList ranked = Explain(*bundle, request, core::AttributionMethod::kOcclusion);
  ASSERT_FALSE(ranked.items.empty());
  bool non_additive = false;
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    ExpectLeaveOneOutEffects(*bundle, request, item);
    std::map<int, double> phi = EventAttributions(item);
    non_additive |= std::abs(item.completeness_error) > 1e-6;
    // The reason comes from the largest positive event, even when a negative one is larger.
    bool positive_event = false;
    for (const auto& [index, phi_i] : phi) positive_event |= phi_i > 0;
    EXPECT_EQ(item.reason.empty(), !positive_event) << item.reason;
  }
  // Leave-one-out effects of a renormalised score do not add up: the error says by how much.
  EXPECT_TRUE(non_additive);
}

TEST(PerturbationTest, RepeatTermsFadeByAgeInEveryCoalition) {
  // Half-life 1 day: the repeat weights of the events left depend on their ages, which the
  // coalitions must take from the events present, as the ranker does (the oracle).
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0, 1.0);
  core::RecommendRequest request = RepeatingHistory();
  request.context.time = 1262340000;
  for (size_t t = 0; t < request.history.size(); ++t) {
    request.history[t].timestamp = *request.context.time - (3 - t) * 86400;
  }
  const int M = static_cast<int>(request.history.size());
  core::RankedList occlusion = Explain(*bundle, request, core::AttributionMethod::kOcclusion);
  ASSERT_FALSE(occlusion.items.empty());
  for (const core::RecommendedItem& item : occlusion.items) {
    SCOPED_TRACE(item.item_id);
    ExpectLeaveOneOutEffects(*bundle, request, item);
  }
  // 4 players, 128 samples: every coalition, so the exact Shapley values.
  core::RankedList shap = Explain(*bundle, request, core::AttributionMethod::kKernelShap);
  ASSERT_FALSE(shap.items.empty());
  for (const core::RecommendedItem& item : shap.items) {
    SCOPED_TRACE(item.item_id);
    std::map<int, double> phi = EventAttributions(item);
    const std::vector<double> exact = ExactShapley(*bundle, request, item.item_id);
    for (int i = 0; i < M; ++i) EXPECT_NEAR(phi[i], exact[i], 1e-9);
  }
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

// The fused score of `item` without the "pop" source's contribution (the popularity penalty
// is the item's own and the same with any history).
double ScoreWithoutPopularity(const core::RecommendedItem& item) {
  double score = item.score;
  for (const core::SourceScore& source : item.sources) {
    if (source.source == "pop") score -= source.contribution;
  }
  return score;
}

TEST(PerturbationTest, WithPopularityAndAPenaltyASingleEventTakesItsLeaveOneOutEffect) {
  testing::FakeModelBundleOptions options;
  options.popularity_weight = 0.5;
  options.min_country_recent_lines = 1;  // France has a popularity list of its own.
  std::shared_ptr<const core::Bundle> bundle = testing::FakeModelBundle(options);
  ASSERT_NE(bundle, nullptr);
  // One known event among unknown ids, without timestamps: no context feature depends on the
  // history, so the fake model's score is additive in the players and the event's Shapley value
  // is its leave-one-out effect.
  core::RecommendRequest request = testing::RequestWithHistory({"unknown-1", "21B", "unknown-2"});
  request.history[1].quantity = 3.0;
  request.history[1].price = 2.0;
  request.context.country = "France";
  request.context.time = 1262703600;
  request.popularity_penalty = 0.1;
  core::RecommendRequest without = request;
  without.history.erase(without.history.begin() + 1);

  for (core::AttributionMethod method :
       {core::AttributionMethod::kOcclusion, core::AttributionMethod::kKernelShap}) {
    SCOPED_TRACE(static_cast<int>(method));
    const core::RankedList ranked = Explain(*bundle, request, method);
    ASSERT_EQ(ranked.items.size(), 4u);
    ASSERT_EQ(ranked.popularity_country, "");  // A known event: the catalogue's popularity.
    for (const core::RecommendedItem& item : ranked.items) {
      SCOPED_TRACE(item.item_id);
      // Complete: everything the score gained over the baseline is attributed (float model).
      EXPECT_NEAR(Sum(item.attributions), item.score - item.baseline_score, 1e-5);
      EXPECT_NEAR(item.completeness_error, 0.0, 1e-5);

      std::map<int, double> events = EventAttributions(item);
      ASSERT_EQ(events.size(), 1u);
      ASSERT_EQ(events.begin()->first, 1);
      // The ranker's score of the request without the event, for this item.
      core::RecommendRequest alone = without;
      alone.candidate_item_ids = {item.item_id};
      alone.candidates_only = true;
      core::RankedList reduced;
      ASSERT_TRUE(core::Ranker::Rank(*bundle, alone, 1, &reduced).ok());
      ASSERT_EQ(reduced.items.size(), 1u);
      // Without its one known event the shopper is new, and the ranker's "pop" source switches
      // to France's recent purchases; the explainer keeps "pop" out of the players (it is the
      // recent_popularity PRIOR entry, from the catalogue's counts) and so attributes to the
      // event the score change without the "pop" part. Known finding (another issue): the
      // event's full leave-one-out effect, score - reduced score, also holds the switch of
      // "pop" from the catalogue's to France's counts, which no entry reports.
      ASSERT_EQ(reduced.popularity_country, "France");
      EXPECT_NEAR(events.begin()->second,
                  ScoreWithoutPopularity(item) - ScoreWithoutPopularity(reduced.items[0]), 1e-5);

      // The popularity parts are PRIOR entries of their exact values.
      const Attribution* recent = nullptr;
      const Attribution* penalty = nullptr;
      for (const Attribution& a : item.attributions) {
        if (a.feature == "recent_popularity") recent = &a;
        if (a.feature == "popularity") penalty = &a;
      }
      ASSERT_NE(recent, nullptr);
      EXPECT_EQ(recent->kind, FeatureKind::kPrior);
      EXPECT_NEAR(recent->attribution, 0.5 * std::log1p(item.info.recent_popularity), 1e-12);
      ASSERT_NE(penalty, nullptr);
      EXPECT_EQ(penalty->kind, FeatureKind::kPrior);
      EXPECT_NEAR(penalty->attribution, -0.1 * std::log1p(item.info.popularity), 1e-12);
    }
  }
}

// A time's sin and cos, and the country's one-hots, only mean something together: each is one
// player, removed as a whole (set back to the bundle's baseline, the training means). Occlusion's
// entry of the group is the score change of removing the whole group.
TEST(PerturbationTest, ContextPlayersAreGroupsRemovedAsAWhole) {
  std::shared_ptr<const core::Bundle> bundle = testing::FakeModelBundle();
  ASSERT_NE(bundle, nullptr);
  const core::RecommendRequest request = testing::TimedRequest({"21A", "21C"});
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  const CoalitionScorer scorer(*bundle, request, ranked);
  std::vector<std::string> names;
  for (const core::ContextGroup& g : scorer.players().context) names.push_back(g.name);
  // 15:00 on a Tuesday in France: every group is off its baseline.
  EXPECT_THAT(names, ::testing::ElementsAre("hour", "dow", "log_recency_days", "country"));
  EXPECT_THAT(scorer.players().context[0].features, ::testing::ElementsAre(0, 1));

  core::RankedList explained = Explain(*bundle, request, core::AttributionMethod::kOcclusion);
  const core::ModelRunner& model = *bundle->models().at(0);
  const core::SourceSpec& spec = bundle->manifest().sources.back();  // The model's.
  ASSERT_EQ(spec.name, model.name());
  for (const core::RecommendedItem& item : explained.items) {
    SCOPED_TRACE(item.item_id);
    std::map<std::string, double> context;
    for (const Attribution& a : item.attributions) {
      if (a.kind == FeatureKind::kContext) context[a.feature] = a.attribution;
    }
    EXPECT_EQ(context.count("hour_sin"), 0u);
    // The model's score without the hour: its input with both hour features at their baselines.
    core::ModelInput input = ranked.sources.back().input;
    std::vector<float> with, without;
    ASSERT_TRUE(model.ScoreTargets({input}, {item.index}, &with).ok());
    const std::vector<float> baseline = core::ContextBaseline(bundle->manifest());
    input.context[0] = baseline[0];
    input.context[1] = baseline[1];
    ASSERT_NE(input.context[0], 0.0f);
    ASSERT_TRUE(model.ScoreTargets({input}, {item.index}, &without).ok());
    EXPECT_NEAR(context["hour"], core::FusionScale(spec) * (with[0] - without[0]), 1e-5);
  }
}

std::map<std::string, double> ByFeature(const core::RecommendedItem& item) {
  std::map<std::string, double> out;
  for (const Attribution& a : item.attributions) {
    out[a.kind == FeatureKind::kHistoryEvent ? absl::StrCat("event ", a.history_index)
                                             : a.feature] += a.attribution;
  }
  return out;
}

// A game that is additive in its players (the linear fake model with equal position weights,
// events without timestamps, CF weighed 0): each player's effect is its occlusion value, and a
// linear surrogate fits every coalition. LIME must find those effects (up to its ridge
// shrinkage) with R^2 near 1, with many players or few. Its coalitions are KernelSHAP's: with
// 7 players (4 events and the hour, weekday and country groups) all 126 of them, with 4 all 14.
TEST(LimeTest, OnAnAdditiveGameTheSurrogateFitsAndFindsTheEffects) {
  testing::FakeModelBundleOptions options;
  options.model.equal_positions = true;
  options.max_history = 8;
  std::shared_ptr<const core::Bundle> bundle = testing::FakeModelBundle(options);
  ASSERT_NE(bundle, nullptr);
  for (const std::vector<std::string>& history :
       std::vector<std::vector<std::string>>{{"21A", "21C", "21B", "21D"}, {"21C"}}) {
    SCOPED_TRACE(history.size());
    core::RecommendRequest request = testing::TimedRequest(history);
    for (core::HistoryEvent& e : request.history) e.timestamp.reset();
    request.fusion_weights = {{"cf", 0.0}};
    const core::RankedList occlusion =
        Explain(*bundle, request, core::AttributionMethod::kOcclusion);
    // 1,024 samples: the same coalitions as 128, weighing 8 times as much against the penalty.
    const core::RankedList lime = Explain(*bundle, request, core::AttributionMethod::kLime, 1024);
    ASSERT_EQ(lime.items.size(), occlusion.items.size());
    for (size_t k = 0; k < lime.items.size(); ++k) {
      SCOPED_TRACE(lime.items[k].item_id);
      EXPECT_NEAR(occlusion.items[k].completeness_error, 0.0, 1e-5);  // Additive indeed.
      ASSERT_TRUE(lime.items[k].surrogate_r_squared.has_value());
      EXPECT_GT(*lime.items[k].surrogate_r_squared, 0.99);
      const std::map<std::string, double> effects = ByFeature(occlusion.items[k]);
      const std::map<std::string, double> fitted = ByFeature(lime.items[k]);
      ASSERT_EQ(effects.size(), history.size() + 3 + 1);  // The players, recent popularity.
      for (const auto& [name, effect] : effects) {
        if (name == "recent_popularity") continue;
        // The ridge penalty (alpha 1 against a total weight of 1,024) shrinks the effects a
        // little.
        EXPECT_NEAR(fitted.at(name), effect, 0.05 * std::fabs(effect) + 2e-3) << name;
      }
    }
    EXPECT_FALSE(occlusion.items[0].surrogate_r_squared.has_value());
  }
}

// One player (one event; a bundle without models has no context players): two coalitions, and
// LIME's line through them is the event's whole effect, where a ridge fit would shrink it.
TEST(LimeTest, OnePlayerGetsItsWholeEffect) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  ASSERT_NE(bundle, nullptr);
  core::RecommendRequest request = testing::RequestWithHistory({"21C"});
  request.exclude_history = false;
  const core::RankedList occlusion = Explain(*bundle, request, core::AttributionMethod::kOcclusion);
  const core::RankedList lime = Explain(*bundle, request, core::AttributionMethod::kLime);
  ASSERT_EQ(lime.items.size(), occlusion.items.size());
  double largest = 0.0;
  for (size_t k = 0; k < lime.items.size(); ++k) {
    SCOPED_TRACE(lime.items[k].item_id);
    // An entry of 0 is left out of the response.
    std::map<std::string, double> effects = ByFeature(occlusion.items[k]);
    std::map<std::string, double> fitted = ByFeature(lime.items[k]);
    ASSERT_LE(effects.size(), 1u);
    EXPECT_NEAR(fitted["event 0"], effects["event 0"], 1e-9);
    EXPECT_EQ(lime.items[k].surrogate_r_squared, 1.0);
    largest = std::max(largest, std::fabs(effects["event 0"]));
  }
  EXPECT_GT(largest, 0.1);
}

// CF's recency weights are normalised over the history, so leaving events out is not additive:
// the fit says so with an R^2 below 1, and the same seed gives the same explanation (8 samples:
// fewer than the 14 coalitions of 4 players, so the seed draws them).
TEST(LimeTest, ANonAdditiveGameFitsWorseAndTheSeedFixesTheExplanation) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  const core::RecommendRequest request = RepeatingHistory();
  const core::RankedList a = Explain(*bundle, request, core::AttributionMethod::kLime, 8, 7);
  const core::RankedList b = Explain(*bundle, request, core::AttributionMethod::kLime, 8, 7);
  const core::RankedList c = Explain(*bundle, request, core::AttributionMethod::kLime, 8, 8);
  ASSERT_FALSE(a.items.empty());
  bool imperfect = false, seed_matters = false;
  for (size_t k = 0; k < a.items.size(); ++k) {
    ASSERT_TRUE(a.items[k].surrogate_r_squared.has_value());
    imperfect |= *a.items[k].surrogate_r_squared < 0.99;
    EXPECT_EQ(ByFeature(a.items[k]), ByFeature(b.items[k]));
    seed_matters |= ByFeature(a.items[k]) != ByFeature(c.items[k]);
  }
  EXPECT_TRUE(imperfect);
  EXPECT_TRUE(seed_matters);
}

// LIME is local: its coalitions near the request (one event out) weigh most, so where CF's
// recency weights make an event help the score in a short history but hurt it in this one (an
// old event gains weight once recent ones are out), LIME's sign is the one of leaving the event
// out of this history (occlusion's), where the Shapley value's, an average over every shorter
// history, may not be.
TEST(LimeTest, AnEventsSignIsTheOneOfLeavingItOut) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  core::RecommendRequest request =
      testing::RequestWithHistory({"21A", "21B", "21C", "21D", "21B", "21C"});
  request.exclude_history = false;
  const core::RankedList occlusion = Explain(*bundle, request, core::AttributionMethod::kOcclusion);
  const core::RankedList shap = Explain(*bundle, request, core::AttributionMethod::kKernelShap);
  const core::RankedList lime = Explain(*bundle, request, core::AttributionMethod::kLime);
  ASSERT_EQ(lime.items.size(), occlusion.items.size());
  int shap_disagrees = 0;
  for (size_t k = 0; k < lime.items.size(); ++k) {
    SCOPED_TRACE(lime.items[k].item_id);
    const std::map<std::string, double> fitted = ByFeature(lime.items[k]);
    const std::map<std::string, double> shapley = ByFeature(shap.items[k]);
    for (const auto& [name, effect] : ByFeature(occlusion.items[k])) {
      if (!absl::StartsWith(name, "event ") || std::fabs(effect) < 1e-3) continue;
      EXPECT_EQ(fitted.at(name) > 0, effect > 0) << name;
      shap_disagrees += (shapley.at(name) > 0) != (effect > 0);
    }
  }
  EXPECT_GT(shap_disagrees, 0);  // The game is one where locality matters.
}

}  // namespace
}  // namespace recsys::explain
