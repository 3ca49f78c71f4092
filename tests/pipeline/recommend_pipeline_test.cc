#include "pipeline/recommend_pipeline.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/featurizer.h"
#include "explain/replay.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fake_model.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/ranking_fixtures.h"

namespace recsys::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What the response says after an exact-sources explanation of a bundle with models.
constexpr char kModelsShare[] =
    "each item's completeness_error holds the models' share of score - baseline_score";

std::vector<std::string> Stages(const core::RecommendResponse& r) {
  std::vector<std::string> stages;
  for (const core::StageTiming& t : r.metadata.stage_timings) stages.push_back(t.stage);
  return stages;
}

double StageSeconds(const core::RecommendResponse& r, const std::string& stage) {
  for (const core::StageTiming& t : r.metadata.stage_timings) {
    if (t.stage == stage) return t.seconds;
  }
  ADD_FAILURE() << "no stage " << stage;
  return -1.0;
}

TEST(RecommendPipelineTest, RanksExplainsAndTimesEachStage) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  RecommendPipeline pipeline({});
  core::RecommendRequest request = testing::RequestWithHistory({"21A", "21B"});
  request.request_id = "req-1";
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(request, *bundle, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request_id, "req-1");
  EXPECT_EQ(r->metadata.bundle_version, "v1");
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kReplay);  // Default.
  EXPECT_EQ(r->metadata.explanation_note, "");  // No models: nothing is left unexplained.
  ASSERT_EQ(r->items.size(), 4u);               // Three related items, one back-filled.
  EXPECT_FALSE(r->items[0].attributions.empty());
  EXPECT_THAT(Stages(*r), ElementsAre("validate", "rank", "explain"));
}

TEST(RecommendPipelineTest, UsesTheDefaultTopKAndRejectsBadRequests) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  PipelineOptions options;
  options.default_top_k = 2;
  RecommendPipeline pipeline(options);
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(testing::RequestWithHistory({"21A", "21B"}), *bundle, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->items.size(), 2u);
  absl::Status s =
      pipeline.Run(testing::RequestWithHistory({""}), *bundle, absl::InfiniteFuture()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("history[0].item_id: empty"));
}

TEST(RecommendPipelineTest, AModelMethodOnABundleWithoutModelsExplainsTheExactSourcesAndSaysSo) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  RecommendPipeline pipeline({});
  core::RecommendRequest request = testing::RequestWithHistory({"21A"});
  request.explain.method = core::AttributionMethod::kIntegratedGradients;
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(request, *bundle, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kCfExact);
  EXPECT_EQ(r->metadata.explanation_note,
            "this bundle has no models: the exact item-CF contributions are the explanation");
  EXPECT_FALSE(r->items[0].attributions.empty());
}

// The tiny bundle with two fake models ("cnn", "rnn", both weighted), whose every call takes
// `tick` on a fake clock that the pipeline reads: what a stage costs is known exactly, so the
// deadline tests need no wall-clock margins.
class RecommendPipelineModelsTest : public ::testing::Test {
 protected:
  void Load(absl::Duration tick) {
    testing::FakeModelOptions options;
    options.on_call = [this, tick] {
      clock_.Advance(tick);
      return absl::OkStatus();
    };
    bundle_ = testing::TinyBundleWithFakeModels(options);
    ASSERT_NE(bundle_, nullptr);
  }

  PipelineOptions Options() const {
    PipelineOptions options;
    options.clock = clock_.AsFunction();
    return options;
  }

  // Calls of both models so far.
  int Calls() const {
    return testing::FakeModel(*bundle_, "cnn")->calls() +
           testing::FakeModel(*bundle_, "rnn")->calls();
  }

  static core::RecommendRequest Request(core::AttributionMethod method) {
    core::RecommendRequest r = testing::TinyModelRequest();
    r.explain.method = method;
    return r;
  }

  testing::FakeClock clock_;
  std::shared_ptr<const core::Bundle> bundle_;
};

// Ranking runs each weighted model over the catalogue once: two calls.
constexpr int kRankCalls = 2;

TEST_F(RecommendPipelineModelsTest, StageTimingsReadTheInjectedClock) {
  Load(absl::Milliseconds(1));
  RecommendPipeline pipeline(Options());
  absl::StatusOr<core::RecommendResponse> r = pipeline.Run(
      Request(core::AttributionMethod::kGradientXInput), *bundle_, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_THAT(Stages(*r), ElementsAre("validate", "rank", "explain"));
  const int explain_calls = Calls() - kRankCalls;
  ASSERT_GT(explain_calls, 0);
  EXPECT_EQ(StageSeconds(*r, "validate"), 0.0);
  EXPECT_DOUBLE_EQ(StageSeconds(*r, "rank"), 0.001 * kRankCalls);
  EXPECT_DOUBLE_EQ(StageSeconds(*r, "explain"), 0.001 * explain_calls);
}

TEST_F(RecommendPipelineModelsTest, AnExpiredDeadlineStopsBeforeRanking) {
  Load(absl::Milliseconds(1));
  RecommendPipeline pipeline(Options());
  absl::Status s =
      pipeline.Run(testing::RequestWithHistory({"21A"}), *bundle_, clock_.Now()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(s.message(), "deadline passed before ranking");
  EXPECT_EQ(Calls(), 0);  // No model ran.
}

TEST_F(RecommendPipelineModelsTest, ADeadlineThatPassesDuringRankingStopsBeforeExplaining) {
  Load(absl::Milliseconds(10));  // Ranking takes 20 ms.
  RecommendPipeline pipeline(Options());
  absl::Status s = pipeline
                       .Run(Request(core::AttributionMethod::kIntegratedGradients), *bundle_,
                            clock_.Now() + absl::Milliseconds(15))
                       .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(s.message(), "deadline passed before explaining");
  EXPECT_EQ(Calls(), kRankCalls);  // It ranked, and explained nothing.

  // With 5 ms left after ranking the request answers, with what those 5 ms afford.
  absl::StatusOr<core::RecommendResponse> r = pipeline.Run(
      Request(core::AttributionMethod::kCfExact), *bundle_, clock_.Now() + absl::Milliseconds(25));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->items.empty());
}

TEST_F(RecommendPipelineModelsTest, IntegratedGradientsRunsWhenTheDeadlineAffordsIt) {
  Load(absl::ZeroDuration());
  RecommendPipeline pipeline(Options());
  absl::StatusOr<core::RecommendResponse> r = pipeline.Run(
      Request(core::AttributionMethod::kIntegratedGradients), *bundle_, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kIntegratedGradients);
  EXPECT_EQ(r->metadata.explanation_note, "");
  bool has_context = false;
  for (const auto& item : r->items) {
    for (const auto& a : item.attributions) has_context |= a.kind == core::FeatureKind::kContext;
  }
  EXPECT_TRUE(has_context);  // Only a model attribution has context features.
}

TEST_F(RecommendPipelineModelsTest, ATightDeadlineDegradesToTheExactSourcesAndSaysSo) {
  Load(absl::Milliseconds(1));
  PipelineOptions options = Options();
  // One second a unit: IG costs 4 items x 16 steps x 2 models = 128 s, gradient x input 8 s;
  // after ranking (2 ms) the deadline leaves 4,998 ms, whose half affords neither.
  options.initial_attribution_seconds_per_unit = 1.0;
  RecommendPipeline pipeline(options);
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(Request(core::AttributionMethod::kIntegratedGradients), *bundle_,
                   clock_.Now() + absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();  // The recommendation stands.
  ASSERT_EQ(r->items.size(), 4u);
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kCfExact);
  EXPECT_EQ(r->metadata.explanation_note,
            absl::StrCat("Integrated Gradients would take about 128000.0 ms and the deadline "
                         "leaves 4998.0 ms: exact contributions (cf, pop) ran instead; ",
                         kModelsShare));
  EXPECT_EQ(Calls(), kRankCalls);  // No model was called to explain.
  EXPECT_FALSE(r->items.front().attributions.empty());
}

TEST_F(RecommendPipelineModelsTest, WhatTheDeadlineCannotAffordDegradesToGradientTimesInput) {
  Load(absl::Milliseconds(1));
  RecommendPipeline pipeline(Options());
  // A first run teaches the pipeline what IG costs: k model calls of 1 ms for 4 items x 16
  // steps x 2 models = 128 units.
  absl::StatusOr<core::RecommendResponse> first = pipeline.Run(
      Request(core::AttributionMethod::kIntegratedGradients), *bundle_, absl::InfiniteFuture());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->items.size(), 4u);
  EXPECT_EQ(first->metadata.attribution_method, core::AttributionMethod::kIntegratedGradients);
  const int k = Calls() - kRankCalls;
  ASSERT_GT(k, 0);
  EXPECT_DOUBLE_EQ(StageSeconds(*first, "explain"), 0.001 * k);

  // 256 steps: 2,048 units, 16 k ms. The deadline leaves 24 k ms after ranking (2 ms): more
  // than the estimate, but an explanation may take only half; gradient x input has not been
  // measured yet, so it is estimated free.
  core::RecommendRequest request = Request(core::AttributionMethod::kIntegratedGradients);
  request.explain.steps = 256;
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(request, *bundle_, clock_.Now() + absl::Milliseconds(24 * k + 2));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kGradientXInput);
  EXPECT_EQ(r->metadata.explanation_note,
            absl::StrCat("Integrated Gradients would take about ", 16 * k,
                         ".0 ms and the deadline leaves ", 24 * k,
                         ".0 ms: gradient x input ran instead"));

  // Where half the time left covers the estimate, IG runs as asked.
  r = pipeline.Run(request, *bundle_, clock_.Now() + absl::Milliseconds(40 * k));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kIntegratedGradients);
  EXPECT_EQ(r->metadata.explanation_note, "");
}

// Replay's rows are saved while ranking (one encoder pass for both) when replay will run: asked
// for, and the load does not skip it.
TEST_F(RecommendPipelineModelsTest, TheRankerSavesReplaysRowsWhenReplayWillRun) {
  Load(absl::ZeroDuration());
  RecommendPipeline pipeline(Options());  // degrade_load 0.5.
  explain::ExplainSettings settings;
  settings.method = core::AttributionMethod::kReplay;
  const core::ModelRunner& model = *bundle_->models().front();
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle_, Request(settings.method), 10, &ranked).ok());
  ASSERT_NE(ranked.first_model_input(), nullptr);
  const core::ModelInput& whole = *ranked.first_model_input();
  core::ModelInput base, expected_base;
  std::vector<core::PrefixRow> rows, expected_rows;
  ASSERT_TRUE(explain::ReplayRows(model.shape(), whole, core::ContextGroups(bundle_->manifest()),
                                  &expected_base, &expected_rows)
                  .ok());
  ASSERT_FALSE(expected_rows.empty());
  const core::RowsToSave replay = pipeline.RowsToSave(settings, *bundle_, 0.2);
  ASSERT_TRUE(replay);
  ASSERT_TRUE(replay(model.shape(), whole, &base, &rows));
  EXPECT_EQ(base, expected_base);
  EXPECT_EQ(rows, expected_rows);
  EXPECT_FALSE(pipeline.RowsToSave(settings, *bundle_, 0.5));  // Busy: replay is skipped.
  settings.method = core::AttributionMethod::kCfExact;
  EXPECT_FALSE(pipeline.RowsToSave(settings, *bundle_, 0.2));

  // Run hands them to the ranker: each weighted model ranks through ScoreAllSavingRows.
  auto saving_calls = [&] {
    return testing::FakeModel(*bundle_, "cnn")->saving_calls() +
           testing::FakeModel(*bundle_, "rnn")->saving_calls();
  };
  const int before = saving_calls();
  ASSERT_TRUE(
      pipeline
          .Run(Request(core::AttributionMethod::kCfExact), *bundle_, absl::InfiniteFuture(), 0.2)
          .ok());
  EXPECT_EQ(saving_calls(), before);
  ASSERT_TRUE(
      pipeline.Run(Request(core::AttributionMethod::kReplay), *bundle_, absl::InfiniteFuture(), 0.2)
          .ok());
  EXPECT_EQ(saving_calls(), before + 2);
}

TEST_F(RecommendPipelineModelsTest, UnderLoadOnlyTheExactSourcesAreExplained) {
  Load(absl::ZeroDuration());
  RecommendPipeline pipeline(Options());  // degrade_load 0.5.
  absl::StatusOr<core::RecommendResponse> idle = pipeline.Run(
      Request(core::AttributionMethod::kKernelShap), *bundle_, absl::InfiniteFuture(), 0.2);
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_EQ(idle->metadata.attribution_method, core::AttributionMethod::kKernelShap);
  EXPECT_EQ(idle->metadata.explanation_note, "");
  for (double load : {0.5, 0.75}) {
    SCOPED_TRACE(load);
    absl::StatusOr<core::RecommendResponse> busy = pipeline.Run(
        Request(core::AttributionMethod::kKernelShap), *bundle_, absl::InfiniteFuture(), load);
    ASSERT_TRUE(busy.ok()) << busy.status();
    EXPECT_EQ(busy->metadata.attribution_method, core::AttributionMethod::kCfExact);
    EXPECT_EQ(busy->metadata.explanation_note,
              absl::StrCat("the server is busy (request queue ", load == 0.5 ? "50" : "75",
                           "% full): model attribution was skipped, exact contributions only; ",
                           kModelsShare));
    EXPECT_FALSE(busy->items.front().attributions.empty());
  }
}

TEST_F(RecommendPipelineModelsTest, TheDefaultMethodAttributesTheModels) {
  Load(absl::ZeroDuration());
  RecommendPipeline pipeline(Options());
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(testing::TinyModelRequest(), *bundle_, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kReplay);
  EXPECT_EQ(r->metadata.explanation_note, "");
  for (const core::RecommendedItem& item : r->items) {
    for (const core::SourceScore& source : item.sources) {
      EXPECT_LT(std::fabs(source.completeness_error), 1e-4) << item.item_id << " " << source.source;
    }
  }
}

TEST_F(RecommendPipelineModelsTest, CfExactSaysTheModelsAreNotAttributed) {
  Load(absl::ZeroDuration());
  PipelineOptions options = Options();
  options.default_method = core::AttributionMethod::kCfExact;
  RecommendPipeline pipeline(options);
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(testing::TinyModelRequest(), *bundle_, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kCfExact);
  EXPECT_EQ(r->metadata.explanation_note,
            absl::StrCat("model sources are not attributed by this method (ask for a model "
                         "method, e.g. ATTRIBUTION_METHOD_OCCLUSION); ",
                         kModelsShare));
}

TEST_F(RecommendPipelineModelsTest, EveryMethodRunsAsAskedWhenAffordable) {
  Load(absl::ZeroDuration());
  RecommendPipeline pipeline(Options());
  for (core::AttributionMethod method :
       {core::AttributionMethod::kGradientXInput, core::AttributionMethod::kIntegratedGradients,
        core::AttributionMethod::kOcclusion, core::AttributionMethod::kKernelShap,
        core::AttributionMethod::kReplay, core::AttributionMethod::kNone}) {
    SCOPED_TRACE(static_cast<int>(method));
    absl::StatusOr<core::RecommendResponse> r =
        pipeline.Run(Request(method), *bundle_, absl::InfiniteFuture());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->metadata.attribution_method, method);
    EXPECT_EQ(r->metadata.explanation_note, "");
    EXPECT_EQ(r->items.front().attributions.empty(), method == core::AttributionMethod::kNone);
  }
}

TEST(RecommendPipelineFailureTest, AModelFailingWhileExplainingCostsOnlyItsAttribution) {
  // The models answer the ranking's two calls, then fail.
  auto calls = std::make_shared<int>(0);
  testing::FakeModelOptions options;
  options.on_call = [calls] {
    return ++*calls <= kRankCalls ? absl::OkStatus() : absl::InternalError("injected failure");
  };
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundleWithFakeModels(options);
  ASSERT_NE(bundle, nullptr);
  RecommendPipeline pipeline({});
  core::RecommendRequest request = testing::TinyModelRequest();
  request.explain.method = core::AttributionMethod::kIntegratedGradients;
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(request, *bundle, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->items.size(), 4u);
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kIntegratedGradients);
  EXPECT_EQ(r->metadata.explanation_note,
            "cnn could not be attributed: injected failure; "
            "rnn could not be attributed: injected failure");
  // The exact sources are still explained.
  EXPECT_FALSE(r->items.front().attributions.empty());
}

TEST(RecommendPipelineTest, TheProfileReadsTheKnownEventsAtThePricesTheRequestGives) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  const core::Catalog& catalog = bundle->catalog();
  const std::string category = catalog.item(0).category;  // The tiny items share one.
  ASSERT_FALSE(category.empty());
  for (core::ItemIndex i = 1; i < catalog.size(); ++i) {
    ASSERT_EQ(catalog.item(i).category, category);
  }
  // The unknown first event shifts the known events' positions in the request by one: 21A paid
  // 7.0 (weight 1/3), 21B at its reference price (weight 2/3).
  core::RecommendRequest request = testing::RequestWithHistory({"zzz", "21A", "21B"});
  request.history[1].price = 7.0;
  RecommendPipeline pipeline({});
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(request, *bundle, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->profile.entries.size(), 1u);
  EXPECT_EQ(r->profile.entries[0].category, category);
  EXPECT_DOUBLE_EQ(r->profile.entries[0].share, 1.0);
  EXPECT_THAT(r->profile.entries[0].item_ids, ElementsAre("21B", "21A"));
  const double price_21b = catalog.item(1).price;
  ASSERT_LT(price_21b, 7.0);
  EXPECT_EQ(r->profile.price_low, price_21b);
  EXPECT_EQ(r->profile.price_median, price_21b);
  EXPECT_EQ(r->profile.price_high, 7.0);
  ASSERT_FALSE(r->items.empty());
  for (const core::RecommendedItem& item : r->items) {
    EXPECT_EQ(item.profile_entry, 0) << item.item_id;
  }
}

// KernelSHAP's and LIME's fit is part of their cost even without models: a long history
// makes many players, and the fit grows with their square, so the deadline budget sees it.
TEST(RecommendPipelineCostTest, TheFitOfKernelShapAndLimeCountsWithTheSquareOfThePlayers) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);  // No models.
  auto units = [&](core::AttributionMethod method, int events) {
    std::vector<std::string> ids;
    for (int i = 0; i < events; ++i) ids.push_back(i % 2 ? "21A" : "21B");
    core::RankedList ranked;
    EXPECT_TRUE(core::Ranker::Rank(*bundle, testing::RequestWithHistory(ids), 10, &ranked).ok());
    explain::ExplainSettings settings;
    settings.method = method;
    settings.samples = 128;
    return RecommendPipeline::CostUnits(settings, *bundle, ranked);
  };
  for (core::AttributionMethod method :
       {core::AttributionMethod::kKernelShap, core::AttributionMethod::kLime}) {
    SCOPED_TRACE(static_cast<int>(method));
    EXPECT_GT(units(method, 20), 0.0);
    EXPECT_GT(units(method, 80), 10 * units(method, 20));
  }
  EXPECT_EQ(units(core::AttributionMethod::kReplay, 80), 0.0);  // No model to replay.
}

// Replay scores the context groups and events one input each, unless the model scores every
// prefix of the history in one pass: then its cost does not grow with the history.
TEST(RecommendPipelineCostTest, ReplayCostsOnePassForAModelThatScoresPrefixesInOnePass) {
  for (bool one_pass : {false, true}) {
    SCOPED_TRACE(one_pass);
    testing::FakeModelOptions options;
    options.one_pass_prefixes = one_pass;
    std::shared_ptr<const core::Bundle> bundle = testing::TinyBundleWithFakeModels(options);
    ASSERT_NE(bundle, nullptr);
    auto units = [&](int events) {
      std::vector<std::string> ids;
      for (int i = 0; i < events; ++i) ids.push_back(i % 2 ? "21A" : "21B");
      core::RankedList ranked;
      EXPECT_TRUE(core::Ranker::Rank(*bundle, testing::RequestWithHistory(ids), 10, &ranked).ok());
      explain::ExplainSettings settings;
      settings.method = core::AttributionMethod::kReplay;
      return RecommendPipeline::CostUnits(settings, *bundle, ranked);
    };
    EXPECT_GT(units(1), 0.0);
    if (one_pass) {
      EXPECT_EQ(units(4), units(1));
    } else {
      EXPECT_GT(units(4), units(1));
    }
  }
}

}  // namespace
}  // namespace recsys::pipeline
