// Attribution through the tiny TorchScript models of testutil/make_tiny_models.py: Integrated
// Gradients on real (non-linear) models and the batched autograd of the TorchScript runner, and
// the perturbation methods with models. The torch-free tests of the same code run on the fake
// model in integrated_gradients_fake_model_test.cc.
#include "explain/integrated_gradients.h"

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/featurizer.h"
#include "core/ranker.h"
#include "core/torch_model_runner.h"
#include "explain/explainer.h"
#include "explain/perturbation.h"
#include "explain/replay.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/model_fixtures.h"

namespace recsys::explain {
namespace {

using core::Attribution;
using core::FeatureKind;

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

double Total(const PathAttribution& a) {
  double sum = 0.0;
  for (double v : a.event) sum += v;
  for (double v : a.event_feature) sum += v;
  for (double v : a.context) sum += v;
  return sum;
}

// The model input of `request` for `model`, as the ranker featurises it.
core::ModelInput InputFor(const core::Bundle& bundle, const core::ModelRunner& model,
                          const core::RecommendRequest& request) {
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, request, 10, &ranked).ok());
  return core::Featurize(bundle.manifest(), model.shape(), request, ranked.history.positions,
                         ranked.history.items, *request.context.time);
}

TEST(TorchScriptIntegratedGradientsTest, CompletenessErrorShrinksWithTheNodesOnRealModels) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  const std::vector<core::ItemIndex> targets = {0, 1, 2, 3};
  for (const auto& model : bundle->models()) {
    SCOPED_TRACE(model->name());
    const core::ModelInput input = InputFor(*bundle, *model, Request());
    std::vector<float> scores;  // f(input), by a forward pass of its own.
    ASSERT_TRUE(model->ScoreAll(input, &scores).ok());
    // The path's start: every position the padding item without side-features, under the
    // input's mask, and the manifest's baseline context (the tiny bundle's is off 0).
    core::ModelInput start = input;
    start.items.assign(input.items.size(), model->shape().num_items);
    start.event_features.assign(input.event_features.size(), 0.0f);
    start.context = core::ContextBaseline(bundle->manifest());
    ASSERT_EQ(start.context.size(), input.context.size());
    std::vector<float> start_scores;
    ASSERT_TRUE(model->ScoreTargets({start}, targets, &start_scores).ok());

    std::vector<PathAttribution> one, many;
    ASSERT_TRUE(IntegratedGradients(*model, input, targets, GaussLegendre(1), &one).ok());
    ASSERT_TRUE(IntegratedGradients(*model, input, targets, GaussLegendre(64), &many).ok());
    ASSERT_EQ(one.size(), targets.size());
    ASSERT_EQ(many.size(), targets.size());
    double error_one = 0.0, error_many = 0.0, delta = 0.0;
    for (size_t k = 0; k < targets.size(); ++k) {
      SCOPED_TRACE(targets[k]);
      EXPECT_NEAR(many[k].baseline, start_scores[k], 1e-5);
      const double change = scores[targets[k]] - start_scores[k];
      delta += std::fabs(change);
      error_one += std::fabs(Total(one[k]) - change);
      error_many += std::fabs(Total(many[k]) - change);
      if (model->name() == "rnn") {
        // Smooth (a GRU): measured |error| < 1e-6 from 32 nodes on, for score changes
        // of 0.8 to 1.9.
        EXPECT_LT(std::fabs(Total(many[k]) - change), 1e-4) << "f(x) - f(baseline) = " << change;
      }
    }
    // The error does not shrink monotonically with the nodes (the cnn's ReLU and max-pooling
    // put kinks on the path; measured at 64 nodes: 0.0013 to 0.024 a target, 0.009 of the
    // summed score changes, and at 128 nodes sometimes larger than at 64), but 64 nodes are far
    // closer than the one-node rule (the gradient at the path's midpoint), which misses by
    // more than the score change itself on the cnn and by 0.26 of it on the rnn. Measured
    // error_many / error_one: 0.005 (cnn), below 1e-5 (rnn).
    EXPECT_GT(error_one, 0.1 * delta);
    EXPECT_LT(error_many, 0.03 * delta);
    EXPECT_LT(error_many, 0.05 * error_one);
  }
}

TEST(TorchScriptIntegratedGradientsTest, KTargetsInOneBatchEqualEachTargetAlone) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  const std::vector<core::ItemIndex> targets = {2, 0, 3, 1, 2};
  const Quadrature rule = GaussLegendre(8);
  for (const auto& model : bundle->models()) {
    SCOPED_TRACE(model->name());
    const core::ModelInput input = InputFor(*bundle, *model, Request());
    std::vector<PathAttribution> batch;
    ASSERT_TRUE(IntegratedGradients(*model, input, targets, rule, &batch).ok());
    ASSERT_EQ(batch.size(), targets.size());
    for (size_t k = 0; k < targets.size(); ++k) {
      SCOPED_TRACE(k);
      std::vector<PathAttribution> alone;
      ASSERT_TRUE(IntegratedGradients(*model, input, {targets[k]}, rule, &alone).ok());
      ASSERT_EQ(alone.size(), 1u);
      // Float autograd over a batch of different sizes: equal to float rounding.
      for (size_t p = 0; p < alone[0].event.size(); ++p) {
        EXPECT_NEAR(batch[k].event[p], alone[0].event[p], 1e-5) << "event " << p;
      }
      for (size_t f = 0; f < alone[0].event_feature.size(); ++f) {
        EXPECT_NEAR(batch[k].event_feature[f], alone[0].event_feature[f], 1e-5) << f;
      }
      for (size_t c = 0; c < alone[0].context.size(); ++c) {
        EXPECT_NEAR(batch[k].context[c], alone[0].context[c], 1e-5) << "context " << c;
      }
      EXPECT_NEAR(batch[k].baseline, alone[0].baseline, 1e-5);
    }
    // The targets' attributions differ, so a mix-up of targets in the batch would show.
    EXPECT_GT(std::fabs(Total(batch[0]) - Total(batch[1])), 1e-3);
  }
}

TEST(TorchScriptIntegratedGradientsTest, OnAModelLinearInItsInputsItEqualsGradientTimesInput) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  const core::ModelShape shape = bundle->models()[0]->shape();
  absl::StatusOr<std::unique_ptr<core::ModelRunner>> linear =
      core::TorchScriptLoader("cpu")(testing::MakeTinyModelBundleDir() + "/linear.pt",
                                     {"linear", "linear", "linear.pt", 8, 5}, shape);
  ASSERT_TRUE(linear.ok()) << linear.status();
  const core::ModelInput input = InputFor(*bundle, **linear, Request());
  const std::vector<core::ItemIndex> targets = {0, 1, 2, 3};
  std::vector<PathAttribution> ig, gxi;
  ASSERT_TRUE(IntegratedGradients(**linear, input, targets, GaussLegendre(16), &ig).ok());
  ASSERT_TRUE(IntegratedGradients(**linear, input, targets, GradientTimesInput(), &gxi).ok());
  ASSERT_EQ(ig.size(), targets.size());
  ASSERT_EQ(gxi.size(), targets.size());
  std::vector<float> scores;  // f(x)
  ASSERT_TRUE((*linear)->ScoreAll(input, &scores).ok());
  double moved = 0.0;  // Summed |f(x) - f(baseline)|.
  for (size_t k = 0; k < targets.size(); ++k) {
    SCOPED_TRACE(k);
    for (size_t t = 0; t < ig[k].event.size(); ++t) {
      EXPECT_NEAR(ig[k].event[t], gxi[k].event[t], 1e-4 * (1 + std::fabs(gxi[k].event[t])));
    }
    for (size_t f = 0; f < ig[k].event_feature.size(); ++f) {
      EXPECT_NEAR(ig[k].event_feature[f], gxi[k].event_feature[f],
                  1e-4 * (1 + std::fabs(gxi[k].event_feature[f])));
    }
    for (size_t c = 0; c < ig[k].context.size(); ++c) {
      EXPECT_NEAR(ig[k].context[c], gxi[k].context[c], 1e-4 * (1 + std::fabs(gxi[k].context[c])));
    }
    // And both are complete: f is linear, so one node integrates it exactly.
    const double score = scores[targets[k]];
    EXPECT_NEAR(Total(ig[k]), score - ig[k].baseline, 1e-3 * (1 + std::fabs(score)));
    EXPECT_NEAR(Total(gxi[k]), score - gxi[k].baseline, 1e-3 * (1 + std::fabs(score)));
    moved += std::fabs(score - ig[k].baseline);
  }
  EXPECT_GT(moved, 0.4);  // Something to attribute.
}

core::RankedList ExplainedBy(const core::Bundle& bundle, const core::RecommendRequest& request,
                             core::AttributionMethod method, int samples = 128) {
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.method = method;
  settings.steps = 64;
  settings.samples = samples;
  settings.max_attributions = 100;
  settings.include_source_attributions = true;
  EXPECT_EQ(ExplainItems(bundle, request, settings, &ranked), "");
  return ranked;
}

TEST(TorchScriptExplainItemsTest, ModelAttributionsCoverEveryKindAndFuseWithTheExactOnes) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  const core::RecommendRequest request = Request();
  const core::RankedList ranked =
      ExplainedBy(*bundle, request, core::AttributionMethod::kIntegratedGradients);
  ASSERT_EQ(ranked.items.size(), 4u);
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    for (const core::SourceScore& source : item.sources) {
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
    }
    // The fused attributions miss score - baseline_score by the sources' integration errors,
    // each scaled by its fusion weight x slope, and by nothing else.
    double source_errors = 0.0;
    for (const core::SourceScore& source : item.sources) {
      const core::SourceSpec& spec = *bundle->manifest().FindSource(source.source);
      source_errors += spec.weight * spec.slope * source.completeness_error;
    }
    EXPECT_NEAR(item.completeness_error, source_errors, 1e-9);
  }
}

TEST(TorchScriptExplainItemsTest, AZeroWeightModelIsNotAttributed) {
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
  ASSERT_FALSE(ranked.items.empty());
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

// The request without history event `drop`, scored afresh for `item`.
double ScoreWithout(const core::Bundle& bundle, const core::RecommendRequest& request, size_t drop,
                    const std::string& item) {
  core::RecommendRequest reduced = request;
  reduced.history.erase(reduced.history.begin() + drop);
  reduced.candidate_item_ids = {item};
  reduced.candidates_only = true;
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, reduced, 1, &ranked).ok());
  return ranked.items.at(0).score;
}

TEST(TorchScriptOcclusionTest, WithModelsAnEventsAttributionIsTheScoreChangeWithoutIt) {
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
                  item.score - ScoreWithout(*bundle, request, a.history_index, item.item_id), 1e-4);
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

TEST(TorchScriptKernelShapTest, WithModelsAndEveryCoalitionItIsTheShapleyValue) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  const core::RecommendRequest request = Request();
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ASSERT_FALSE(ranked.items.empty());
  // The game: the coalition values the scorer gives (each coalition's own re-scoring, checked
  // against the ranker by the occlusion test), Shapley values by the formula over all of them.
  const CoalitionScorer scorer(*bundle, request, ranked);
  const Players& players = scorer.players();
  const int M = static_cast<int>(players.size());
  ASSERT_EQ(players.events.size(), 3u);
  ASSERT_GE(players.context.size(), 2u);
  ASSERT_LE(M, 12);
  std::vector<std::vector<bool>> coalitions(1 << M, std::vector<bool>(M));
  for (int mask = 0; mask < (1 << M); ++mask) {
    for (int p = 0; p < M; ++p) coalitions[mask][p] = (mask >> p) & 1;
  }
  std::vector<double> v;
  ASSERT_TRUE(scorer.Score(coalitions, &v).ok());
  const size_t K = ranked.items.size();

  // Every coalition is enumerated when 2^M - 2 <= samples.
  const core::RankedList explained =
      ExplainedBy(*bundle, request, core::AttributionMethod::kKernelShap, 1 << M);
  ASSERT_EQ(explained.items.size(), K);
  for (size_t k = 0; k < K; ++k) {
    const core::RecommendedItem& item = explained.items[k];
    SCOPED_TRACE(item.item_id);
    std::map<std::string, double> phi;  // By history index or context feature name.
    for (const Attribution& a : item.attributions) {
      if (a.kind == FeatureKind::kHistoryEvent) {
        phi["event " + std::to_string(a.history_index)] = a.attribution;
      } else if (a.kind == FeatureKind::kContext) {
        phi[a.feature] = a.attribution;
      }
    }
    for (int p = 0; p < M; ++p) {
      double shapley = 0.0;
      for (int mask = 0; mask < (1 << M); ++mask) {
        if ((mask >> p) & 1) continue;
        const int s = __builtin_popcount(mask);
        double weight = 1.0;  // s! (M - s - 1)! / M!
        for (int j = 1; j <= s; ++j) weight *= j;
        for (int j = 1; j <= M - s - 1; ++j) weight *= j;
        for (int j = 1; j <= M; ++j) weight /= j;
        shapley += weight * (v[(mask | (1 << p)) * K + k] - v[mask * K + k]);
      }
      const std::string name =
          p < static_cast<int>(players.events.size())
              ? "event " + std::to_string(ranked.history.positions[players.events[p]])
              : players.context[p - players.events.size()].name;
      // A zero attribution is left out of the response.
      const double attributed = phi.count(name) ? phi[name] : 0.0;
      EXPECT_NEAR(attributed, shapley, 1e-5) << name;
    }
    EXPECT_NEAR(item.completeness_error, 0.0, 1e-5);
  }
}

// Replay on the real (non-linear) tiny models: an event's credit is the score of the history
// after it minus the score of the history before it, both written out here (the model's last
// 5 positions, the 3 known events of Request() in positions 2-4, side-features 0, the
// request's context), and the first context group's credit is its score change under the
// empty history, from the baseline context.
// The tiny TorchScript bundle, its context groups and the targets the replay tests explain.
class TorchScriptReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bundle = testing::TinyModelBundle();
    ASSERT_NE(bundle, nullptr);
    groups = core::ContextGroups(bundle->manifest());
  }

  std::shared_ptr<const core::Bundle> bundle;
  std::vector<core::ContextGroup> groups;
  const std::vector<core::ItemIndex> targets = {0, 1, 2, 3};
};

TEST_F(TorchScriptReplayTest, EventsShareWhatTheyAddByTheirLeaveOneOutEffects) {
  for (const auto& model : bundle->models()) {
    SCOPED_TRACE(model->name());
    const core::ModelInput input = InputFor(*bundle, *model, Request());
    const int N = model->shape().num_items, E = model->shape().num_event_features;
    ASSERT_EQ(input.mask, (std::vector<float>{0, 0, 1, 1, 1}));
    std::vector<double> start, end;
    std::vector<float> full;
    ASSERT_TRUE(model->ScoreTargets({input}, targets, &full).ok());
    for (size_t k = 0; k < targets.size(); ++k) {
      start.push_back(model->baseline_scores()[targets[k]]);
      end.push_back(full[k]);
    }
    std::vector<ReplayAttribution> replay;
    ASSERT_TRUE(Replay(*model, input, groups, targets, start, end, nullptr, &replay).ok());
    const int64_t a = input.items[2], b = input.items[3], c = input.items[4];
    auto history = [&](std::vector<int64_t> items, std::vector<float> mask) {
      core::ModelInput x{std::move(items), std::vector<float>(5 * E, 0.0f), std::move(mask),
                         input.context};
      std::vector<float> scores;
      EXPECT_TRUE(model->ScoreTargets({x}, targets, &scores).ok());
      return scores;
    };
    const std::vector<float> none = history({N, N, N, N, N}, {0, 0, 0, 0, 0});
    const std::vector<float> three = history({N, N, a, b, c}, {0, 0, 1, 1, 1});
    // The request without one event: the input's positions `from` (-1: padding), its
    // side-features kept.
    auto without = [&](std::vector<int> from) {
      core::ModelInput x{std::vector<int64_t>(5, N), std::vector<float>(5 * E, 0.0f),
                         std::vector<float>(5, 0.0f), input.context};
      for (int p = 0; p < 5; ++p) {
        if (from[p] < 0) continue;
        x.items[p] = input.items[from[p]];
        x.mask[p] = 1;
        std::copy_n(input.event_features.begin() + from[p] * E, E,
                    x.event_features.begin() + p * E);
      }
      std::vector<float> scores;
      EXPECT_TRUE(model->ScoreTargets({x}, targets, &scores).ok());
      return scores;
    };
    const std::vector<std::vector<float>> left_out = {
        without({-1, -1, -1, 3, 4}), without({-1, -1, -1, 2, 4}), without({-1, -1, -1, 2, 3})};
    core::ModelInput hour_only{{N, N, N, N, N},  // The baseline context but the hour.
                               std::vector<float>(5 * E, 0.0f),
                               {0, 0, 0, 0, 0},
                               core::ContextBaseline(bundle->manifest())};
    ASSERT_EQ(groups[0].name, "hour");
    for (int f : groups[0].features) hour_only.context[f] = input.context[f];
    std::vector<float> hour;
    ASSERT_TRUE(model->ScoreTargets({hour_only}, targets, &hour).ok());
    for (size_t k = 0; k < targets.size(); ++k) {
      SCOPED_TRACE(targets[k]);
      // What the events add (none -> three), split: each event's leave-one-out effect plus an
      // equal share of what those leave out.
      double rest = three[k] - none[k];
      for (const std::vector<float>& x : left_out) rest -= end[k] - x[k];
      for (int j = 0; j < 3; ++j) {
        EXPECT_NEAR(replay[k].event[2 + j], end[k] - left_out[j][k] + rest / 3, 1e-4);
      }
      EXPECT_NEAR(replay[k].context[0], hour[k] - start[k], 1e-4);
    }
  }
}

// The ranker saves replay's rows from its encoder pass (ScoreAllSavingRows with ReplayRows'
// rows): replay then reads them instead of running the model again, with the same credits; a
// pass saved for other rows is ignored.
TEST_F(TorchScriptReplayTest, ReplayReadsTheRowsTheRankerSaved) {
  for (const auto& model : bundle->models()) {
    SCOPED_TRACE(model->name());
    const core::ModelInput input = InputFor(*bundle, *model, Request());
    core::ModelInput base;
    std::vector<core::PrefixRow> rows;
    ASSERT_TRUE(ReplayRows(model->shape(), input, groups, &base, &rows).ok());
    core::SavedRows saved;
    std::vector<float> all;
    ASSERT_TRUE(model->ScoreAllSavingRows(input, base, rows, &all, &saved).ok());
    std::vector<double> start, end;
    for (core::ItemIndex t : targets) {
      start.push_back(model->baseline_scores()[t]);
      end.push_back(all[t]);
    }
    auto replay = [&](const core::SavedRows* from) {
      std::vector<ReplayAttribution> out;
      EXPECT_TRUE(Replay(*model, input, groups, targets, start, end, from, &out).ok());
      return out;
    };
    const std::vector<ReplayAttribution> fresh = replay(nullptr), read = replay(&saved);
    core::SavedRows shifted = saved;  // What the model saved, moved: shows where credits come from.
    for (size_t i = 0; i < shifted.users.size(); ++i) shifted.users[i] += 0.1f * (i % 7);
    const std::vector<ReplayAttribution> moved = replay(&shifted);
    core::SavedRows other = shifted;
    other.rows.front().context[0] += 1.0f;
    const std::vector<ReplayAttribution> ignored = replay(&other);
    ASSERT_EQ(read.size(), targets.size());
    double moved_by = 0.0;
    for (size_t k = 0; k < targets.size(); ++k) {
      for (int p = 0; p < 5; ++p) {
        EXPECT_NEAR(read[k].event[p], fresh[k].event[p], 1e-5);
        EXPECT_NEAR(ignored[k].event[p], fresh[k].event[p], 1e-5);
        moved_by += std::abs(moved[k].event[p] - fresh[k].event[p]);
      }
      for (size_t e = 0; e < fresh[k].feature.size(); ++e) {
        EXPECT_NEAR(read[k].feature[e], fresh[k].feature[e], 1e-5);
        EXPECT_NEAR(ignored[k].feature[e], fresh[k].feature[e], 1e-5);
      }
    }
    EXPECT_GT(moved_by, 0.01);
  }
}

}  // namespace
}  // namespace recsys::explain
