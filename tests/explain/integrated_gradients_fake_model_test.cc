// Integrated Gradients (explain/integrated_gradients.h) on the torch-free FakeModelRunner, whose
// score is linear in its inputs: every path attribution has a closed form that the fake's own
// scores give independently of Embed and Gradients.
#include <cmath>
#include <vector>

#include "explain/integrated_gradients.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fake_model.h"

namespace recsys::explain {
namespace {

TEST(GaussLegendreTest, IsTheNPointGaussRuleOnTheUnitInterval) {
  for (int n : {1, 2, 5, 16}) {
    SCOPED_TRACE(n);
    const Quadrature rule = GaussLegendre(n);
    ASSERT_EQ(rule.nodes.size(), static_cast<size_t>(n));
    ASSERT_EQ(rule.weights.size(), static_cast<size_t>(n));
    double sum = 0.0, top = 0.0;
    for (int i = 0; i < n; ++i) {
      EXPECT_GT(rule.nodes[i], 0.0);
      EXPECT_LT(rule.nodes[i], 1.0);
      if (i > 0) {
        EXPECT_GT(rule.nodes[i], rule.nodes[i - 1]);
      }
      EXPECT_GT(rule.weights[i], 0.0);
      sum += rule.weights[i];
      top += rule.weights[i] * std::pow(rule.nodes[i], 2 * n - 1);
    }
    EXPECT_NEAR(sum, 1.0, 1e-12);
    // n nodes integrate x^(2n - 1) exactly; only the Gauss rule does so with n nodes.
    EXPECT_NEAR(top, 1.0 / (2 * n), 1e-12);
  }
  EXPECT_NEAR(GaussLegendre(1).nodes[0], 0.5, 1e-12);
}

constexpr int kItems = 6;

// A fake model with padding that does not embed to 0, so that the baseline's padding matters.
testing::FakeModelRunner LinearModel() {
  core::ModelShape shape;
  shape.num_items = kItems;
  shape.max_history = 4;
  shape.num_event_features = 3;
  shape.num_context = 5;
  testing::FakeModelOptions options;
  options.embedding_dim = 4;
  options.seed = 11;
  options.pad_embedding = 0.25f;
  return testing::FakeModelRunner("linear", shape, options);
}

// Position 0 is padding; positions 1-3 hold items 2, 0, 5 with side-features; context non-zero.
core::ModelInput Input() {
  core::ModelInput x;
  x.items = {kItems, 2, 0, 5};
  x.mask = {0.0f, 1.0f, 1.0f, 1.0f};
  x.event_features = {0.0f, 0.0f, 0.0f, 0.7f, -1.2f, 0.4f, 1.5f, 0.3f, -0.8f, -0.6f, 0.9f, 1.1f};
  x.context = {0.5f, -0.866f, 1.0f, 0.0f, 2.3f};
  return x;
}

double Score(const core::ModelRunner& model, const core::ModelInput& x, core::ItemIndex target) {
  std::vector<float> scores;
  EXPECT_TRUE(model.ScoreTargets({x}, {target}, &scores).ok());
  return scores.at(0);
}

// The attributions IG must give on a linear model, from score differences alone: the item part
// of event p is the score change from padding to the item (no side-features) at p; side-feature
// e of p and context feature c each the score change from removing them; the baseline is the
// score of all padding under the input's mask with zero context.
PathAttribution ClosedForm(const core::ModelRunner& model, const core::ModelInput& x,
                           core::ItemIndex target) {
  const int L = model.shape().max_history, E = model.shape().num_event_features;
  const int C = model.shape().num_context;
  const double full = Score(model, x, target);
  PathAttribution a;
  a.event.assign(L, 0.0);
  a.event_feature.assign(L * E, 0.0);
  a.context.assign(C, 0.0);
  for (int p = 0; p < L; ++p) {
    if (x.mask[p] == 0.0f) continue;
    core::ModelInput bare = x;
    for (int e = 0; e < E; ++e) bare.event_features[p * E + e] = 0.0f;
    core::ModelInput pad = bare;
    pad.items[p] = kItems;
    a.event[p] = Score(model, bare, target) - Score(model, pad, target);
    for (int e = 0; e < E; ++e) {
      core::ModelInput without = x;
      without.event_features[p * E + e] = 0.0f;
      a.event_feature[p * E + e] = full - Score(model, without, target);
    }
  }
  for (int c = 0; c < C; ++c) {
    core::ModelInput without = x;
    without.context[c] = 0.0f;
    a.context[c] = full - Score(model, without, target);
  }
  core::ModelInput start = x;
  start.items.assign(L, kItems);
  start.event_features.assign(L * E, 0.0f);
  start.context.assign(C, 0.0f);
  a.baseline = Score(model, start, target);
  return a;
}

double Total(const PathAttribution& a) {
  double sum = 0.0;
  for (double v : a.event) sum += v;
  for (double v : a.event_feature) sum += v;
  for (double v : a.context) sum += v;
  return sum;
}

void ExpectEqual(const PathAttribution& actual, const PathAttribution& expected, double tol) {
  ASSERT_EQ(actual.event.size(), expected.event.size());
  ASSERT_EQ(actual.event_feature.size(), expected.event_feature.size());
  ASSERT_EQ(actual.context.size(), expected.context.size());
  for (size_t p = 0; p < expected.event.size(); ++p) {
    EXPECT_NEAR(actual.event[p], expected.event[p], tol) << "event " << p;
  }
  for (size_t f = 0; f < expected.event_feature.size(); ++f) {
    EXPECT_NEAR(actual.event_feature[f], expected.event_feature[f], tol) << "event feature " << f;
  }
  for (size_t c = 0; c < expected.context.size(); ++c) {
    EXPECT_NEAR(actual.context[c], expected.context[c], tol) << "context " << c;
  }
  EXPECT_NEAR(actual.baseline, expected.baseline, tol);
}

TEST(IntegratedGradientsTest, OnALinearModelAnyRuleGivesTheClosedFormAndIsComplete) {
  const testing::FakeModelRunner model = LinearModel();
  const core::ModelInput x = Input();
  const std::vector<core::ItemIndex> targets = {0, 3, 5};
  const std::vector<Quadrature> rules = {GaussLegendre(1), GaussLegendre(4), GaussLegendre(16),
                                         GradientTimesInput(), Quadrature{{0.2, 0.7}, {0.5, 0.5}}};
  for (size_t r = 0; r < rules.size(); ++r) {
    SCOPED_TRACE(r);
    std::vector<PathAttribution> out;
    ASSERT_TRUE(IntegratedGradients(model, x, targets, rules[r], &out).ok());
    ASSERT_EQ(out.size(), targets.size());
    for (size_t k = 0; k < targets.size(); ++k) {
      SCOPED_TRACE(targets[k]);
      const PathAttribution expected = ClosedForm(model, x, targets[k]);
      // Float scores of magnitude ~1: the closed form agrees to float rounding.
      ExpectEqual(out[k], expected, 2e-5);
      // The baseline keeps the input's mask: padding embeds to 0.25 here, so it is not the
      // all-masked baseline_scores().
      EXPECT_GT(std::fabs(out[k].baseline - model.baseline_scores()[targets[k]]), 1e-3);
      // Complete: a linear score is integrated exactly by any rule whose weights sum to 1.
      EXPECT_NEAR(Total(out[k]), Score(model, x, targets[k]) - out[k].baseline, 5e-5);
      EXPECT_GT(std::fabs(Total(expected)), 0.1);  // Something to attribute.
      // The padding position is no event.
      EXPECT_EQ(out[k].event[0], 0.0);
    }
  }
}

TEST(IntegratedGradientsTest, ContextAttributionIsTheExactGradientTimesTheValue) {
  const testing::FakeModelRunner model = LinearModel();
  const core::ModelInput x = Input();
  std::vector<PathAttribution> out;
  ASSERT_TRUE(IntegratedGradients(model, x, {4}, GaussLegendre(3), &out).ok());
  ASSERT_EQ(out.size(), 1u);
  for (int c = 0; c < model.shape().num_context; ++c) {
    EXPECT_NEAR(out[0].context[c], model.ContextGradient(4, c) * x.context[c], 1e-5) << c;
  }
}

TEST(IntegratedGradientsTest, KTargetsInOneBatchEqualEachTargetAlone) {
  const testing::FakeModelRunner model = LinearModel();
  const core::ModelInput x = Input();
  const std::vector<core::ItemIndex> targets = {3, 0, 5, 3, 1};
  const Quadrature rule = GaussLegendre(5);
  std::vector<PathAttribution> batch;
  ASSERT_TRUE(IntegratedGradients(model, x, targets, rule, &batch).ok());
  ASSERT_EQ(batch.size(), targets.size());
  for (size_t k = 0; k < targets.size(); ++k) {
    SCOPED_TRACE(k);
    std::vector<PathAttribution> alone;
    ASSERT_TRUE(IntegratedGradients(model, x, {targets[k]}, rule, &alone).ok());
    ASSERT_EQ(alone.size(), 1u);
    ExpectEqual(batch[k], alone[0], 1e-6);
  }
  // Different targets get different attributions: the comparison above can tell them apart.
  EXPECT_GT(std::fabs(batch[0].baseline - batch[1].baseline), 1e-3);
}

TEST(IntegratedGradientsTest, AppendsToTheOutput) {
  const testing::FakeModelRunner model = LinearModel();
  std::vector<PathAttribution> out(1);
  out[0].baseline = 42.0;
  ASSERT_TRUE(IntegratedGradients(model, Input(), {1, 2}, GaussLegendre(2), &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].baseline, 42.0);
  EXPECT_NEAR(out[2].baseline, ClosedForm(model, Input(), 2).baseline, 1e-6);
}

TEST(IntegratedGradientsTest, RejectsWrongSizesTargetsAndRules) {
  const testing::FakeModelRunner model = LinearModel();
  std::vector<PathAttribution> out;
  core::ModelInput short_history = Input();
  short_history.items.pop_back();
  EXPECT_EQ(IntegratedGradients(model, short_history, {0}, GaussLegendre(2), &out).code(),
            absl::StatusCode::kInvalidArgument);
  core::ModelInput short_features = Input();
  short_features.event_features.pop_back();
  EXPECT_EQ(IntegratedGradients(model, short_features, {0}, GaussLegendre(2), &out).code(),
            absl::StatusCode::kInvalidArgument);
  core::ModelInput long_context = Input();
  long_context.context.push_back(1.0f);
  EXPECT_EQ(IntegratedGradients(model, long_context, {0}, GaussLegendre(2), &out).code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status target =
      IntegratedGradients(model, Input(), {0, kItems}, GaussLegendre(2), &out);
  EXPECT_EQ(target.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(target.message()), ::testing::HasSubstr("target 6"));
  EXPECT_EQ(IntegratedGradients(model, Input(), {0}, Quadrature{}, &out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IntegratedGradients(model, Input(), {0}, Quadrature{{0.5, 1.0}, {1.0}}, &out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.empty());
  // Errors of the model pass through.
  core::ModelShape shape = model.shape();
  testing::FakeModelOptions failing;
  failing.on_call = [] { return absl::UnavailableError("injected"); };
  const testing::FakeModelRunner broken("broken", shape, failing);
  EXPECT_EQ(IntegratedGradients(broken, Input(), {0}, GaussLegendre(2), &out).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace recsys::explain
