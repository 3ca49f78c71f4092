// Integrated Gradients through the tiny TorchScript models of testutil/make_tiny_models.py.
#include <cmath>
#include <set>

#include "core/featurizer.h"
#include "core/ranker.h"
#include "core/torch_model_runner.h"
#include "explain/explainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/model_fixtures.h"

namespace recsys::explain {
namespace {

using core::Attribution;
using core::FeatureKind;

TEST(GaussLegendreTest, WeightsSumToOneAndLowDegreePolynomialsIntegrateExactly) {
  for (int n : {1, 2, 5, 16}) {
    SCOPED_TRACE(n);
    double sum = 0.0, cubic = 0.0;
    for (const auto& [x, w] : GaussLegendre(n)) {
      EXPECT_GT(x, 0.0);
      EXPECT_LT(x, 1.0);
      sum += w;
      cubic += w * x * x * x;
    }
    EXPECT_NEAR(sum, 1.0, 1e-12);
    if (n >= 2) {
      EXPECT_NEAR(cubic, 0.25, 1e-12);  // Exact for degree < 2n.
    }
  }
  EXPECT_NEAR(GaussLegendre(1)[0].first, 0.5, 1e-12);
}

core::RecommendRequest Request() {
  core::RecommendRequest r;
  const char* ids[] = {"21A", "21C", "21B"};
  for (int i = 0; i < 3; ++i) {
    core::HistoryEvent& e = r.history.emplace_back();
    e.item_id = ids[i];
    e.timestamp = 1262340000 + i * 86400;
    e.quantity = 2.0 + i;
    e.price = 1.5;
  }
  r.history.emplace_back().item_id = "not-in-catalogue";
  r.context.country = "France";
  r.context.time = 1262703600;
  return r;
}

double Sum(const std::vector<Attribution>& attributions) {
  double sum = 0.0;
  for (const Attribution& a : attributions) sum += a.attribution;
  return sum;
}

// Ranks the request and explains it with Integrated Gradients of `steps` steps.
core::RankedList Explained(const core::Bundle& bundle, const core::RecommendRequest& request,
                           int steps) {
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.method = core::AttributionMethod::kIntegratedGradients;
  settings.steps = steps;
  settings.max_attributions = 100;
  settings.include_source_attributions = true;
  EXPECT_EQ(ExplainItems(bundle, request, settings, &ranked), "");
  return ranked;
}

TEST(IntegratedGradientsTest, ModelAttributionsAreCompleteAndFuseWithTheExactOnes) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  const core::RecommendRequest request = Request();
  const core::RankedList coarse = Explained(*bundle, request, 4);
  const core::RankedList fine = Explained(*bundle, request, 64);
  ASSERT_EQ(fine.items.size(), 4u);

  for (size_t k = 0; k < fine.items.size(); ++k) {
    const core::RecommendedItem& item = fine.items[k];
    SCOPED_TRACE(item.item_id);
    for (size_t s = 0; s < item.sources.size(); ++s) {
      const core::SourceScore& source = item.sources[s];
      if (source.source == "cf") continue;
      SCOPED_TRACE(source.source);
      std::set<FeatureKind> kinds;
      for (const Attribution& a : source.attributions) {
        kinds.insert(a.kind);
        if (a.kind == FeatureKind::kContext) {
          EXPECT_EQ(a.history_index, -1);
        } else {
          // Only real events are attributed; the unknown item (index 3) is not one.
          EXPECT_GE(a.history_index, 0);
          EXPECT_LT(a.history_index, 3);
          EXPECT_EQ(a.item_id, request.history[a.history_index].item_id);
        }
      }
      EXPECT_TRUE(kinds.count(FeatureKind::kHistoryEvent));
      EXPECT_TRUE(kinds.count(FeatureKind::kEventFeature));
      EXPECT_TRUE(kinds.count(FeatureKind::kContext));
      // Completeness: the attributions add up to f(x) - f(baseline), up to an integration
      // error that shrinks with the steps. The tiny random models are far from smooth (the
      // CNN's ReLU and max-pooling most), so the bound is loose; a wrong gradient or a missing
      // term would miss it by the size of the difference itself.
      const double delta = Sum(source.attributions) - source.completeness_error;
      const double fine_error = std::fabs(source.completeness_error);
      EXPECT_LT(fine_error, 0.05 * std::fabs(delta) + 1e-3) << "f(x) - f(b) = " << delta;
      EXPECT_LE(fine_error, std::fabs(coarse.items[k].sources[s].completeness_error) + 1e-6);
    }
    // The fused attributions add up to score - baseline_score, with the sources' errors.
    double source_errors = 0.0;
    for (const core::SourceScore& source : item.sources) {
      const core::SourceSpec& spec = *bundle->manifest().FindSource(source.source);
      source_errors += spec.weight * spec.slope * source.completeness_error;
    }
    EXPECT_NEAR(item.completeness_error, source_errors, 1e-9);
    EXPECT_NEAR(Sum(item.attributions) - item.completeness_error,
                item.score - item.baseline_score, 1e-9);
  }
}

TEST(IntegratedGradientsTest, AZeroWeightModelIsNotAttributed) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  core::RecommendRequest request = Request();
  request.fusion_weights = {{"cnn", 0.0}};
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.method = core::AttributionMethod::kIntegratedGradients;
  settings.include_source_attributions = true;
  ExplainItems(*bundle, request, settings, &ranked);
  for (const core::RecommendedItem& item : ranked.items) {
    for (const core::SourceScore& source : item.sources) {
      if (source.source == "cnn") {
        EXPECT_TRUE(source.attributions.empty());
      } else if (source.source == "rnn") {
        EXPECT_FALSE(source.attributions.empty());
      }
    }
    // Only the rnn's integration error remains: the cnn weighs 0.
    EXPECT_LT(std::fabs(item.completeness_error), 0.1);
  }
}

TEST(IntegratedGradientsTest, OnAModelLinearInItsInputsItEqualsGradientTimesInput) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  const core::ModelShape shape = bundle->models()[0]->shape();
  absl::StatusOr<std::unique_ptr<core::ModelRunner>> linear = core::TorchScriptLoader("cpu")(
      testing::MakeTinyModelBundleDir() + "/linear.pt", {"linear", "linear", "linear.pt", 8, 5},
      shape);
  ASSERT_TRUE(linear.ok()) << linear.status();
  const core::RecommendRequest request = Request();
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  const core::ModelInput input = core::Featurize(bundle->manifest(), shape, request,
                                                 ranked.history.positions, ranked.history.items,
                                                 *request.context.time);
  const std::vector<core::ItemIndex> targets = {0, 1, 2, 3};
  std::vector<double> alphas, weights;
  for (const auto& [alpha, weight] : GaussLegendre(16)) {
    alphas.push_back(alpha);
    weights.push_back(weight);
  }
  std::vector<core::PathAttribution> ig, gxi;
  ASSERT_TRUE((*linear)->IntegratedGradients(input, targets, alphas, weights, &ig).ok());
  ASSERT_TRUE((*linear)->IntegratedGradients(input, targets, {1.0}, {1.0}, &gxi).ok());
  ASSERT_EQ(ig.size(), targets.size());
  std::vector<float> scores;  // f(x)
  ASSERT_TRUE((*linear)->ScoreAll(input, &scores).ok());
  for (size_t k = 0; k < targets.size(); ++k) {
    SCOPED_TRACE(k);
    const double score = scores[targets[k]];
    double sum = 0.0;
    for (size_t t = 0; t < ig[k].event.size(); ++t) {
      EXPECT_NEAR(ig[k].event[t], gxi[k].event[t], 1e-4 * (1 + std::fabs(gxi[k].event[t])));
      sum += ig[k].event[t];
    }
    for (size_t f = 0; f < ig[k].event_feature.size(); ++f) {
      EXPECT_NEAR(ig[k].event_feature[f], gxi[k].event_feature[f],
                  1e-4 * (1 + std::fabs(gxi[k].event_feature[f])));
      sum += ig[k].event_feature[f];
    }
    for (size_t c = 0; c < ig[k].context.size(); ++c) {
      EXPECT_NEAR(ig[k].context[c], gxi[k].context[c], 1e-4 * (1 + std::fabs(gxi[k].context[c])));
      sum += ig[k].context[c];
    }
    // And both are complete: f is linear, so one step integrates it exactly.
    EXPECT_NEAR(sum, score - ig[k].baseline, 1e-3 * (1 + std::fabs(score)));
    EXPECT_GT(std::fabs(score - ig[k].baseline), 0.1);  // Something to attribute.
  }
}

// The request without history event `drop`, scored afresh for `item`.
double ScoreWithout(const core::Bundle& bundle, const core::RecommendRequest& request,
                    size_t drop, const std::string& item) {
  core::RecommendRequest reduced = request;
  reduced.history.erase(reduced.history.begin() + drop);
  reduced.candidate_item_ids = {item};
  reduced.candidates_only = true;
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, reduced, 1, &ranked).ok());
  return ranked.items.at(0).score;
}

core::RankedList ExplainedBy(const core::Bundle& bundle, const core::RecommendRequest& request,
                             core::AttributionMethod method) {
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.method = method;
  settings.max_attributions = 100;
  settings.include_source_attributions = true;
  EXPECT_EQ(ExplainItems(bundle, request, settings, &ranked), "");
  return ranked;
}

TEST(OcclusionTest, WithModelsAnEventsAttributionIsTheScoreChangeWithoutIt) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  const core::RecommendRequest request = Request();
  const core::RankedList ranked =
      ExplainedBy(*bundle, request, core::AttributionMethod::kOcclusion);
  ASSERT_FALSE(ranked.items.empty());
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    std::set<int> seen;
    bool has_context = false;
    for (const Attribution& a : item.attributions) {
      has_context |= a.kind == FeatureKind::kContext;
      if (a.kind != FeatureKind::kHistoryEvent) continue;
      seen.insert(a.history_index);
      // Float models: the scores agree to float precision.
      EXPECT_NEAR(a.attribution,
                  item.score - ScoreWithout(*bundle, request, a.history_index, item.item_id),
                  1e-4);
    }
    EXPECT_EQ(seen, (std::set<int>{0, 1, 2}));  // Every known event, the unknown one never.
    EXPECT_TRUE(has_context);
    // The perturbation methods explain the fused score: per-source attributions only for the
    // exact sources; a model's completeness_error is its whole share.
    for (const core::SourceScore& source : item.sources) {
      if (source.source == "cnn" || source.source == "rnn") {
        EXPECT_TRUE(source.attributions.empty());
        EXPECT_NE(source.completeness_error, 0.0);
      }
    }
  }
}

TEST(KernelShapTest, WithModelsTheAttributionsAddUpToTheScore) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  const core::RankedList ranked =
      ExplainedBy(*bundle, Request(), core::AttributionMethod::kKernelShap);
  ASSERT_FALSE(ranked.items.empty());
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    // Efficiency is exact: only float rounding of the model scores remains.
    EXPECT_NEAR(item.completeness_error, 0.0, 1e-5);
    EXPECT_NEAR(Sum(item.attributions), item.score - item.baseline_score, 1e-5);
    std::set<FeatureKind> kinds;
    for (const Attribution& a : item.attributions) kinds.insert(a.kind);
    EXPECT_TRUE(kinds.count(FeatureKind::kHistoryEvent));
    EXPECT_TRUE(kinds.count(FeatureKind::kContext));
  }
}

}  // namespace
}  // namespace recsys::explain
