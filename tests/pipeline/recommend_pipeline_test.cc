#include "pipeline/recommend_pipeline.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/model_fixtures.h"

namespace recsys::server {
namespace {

using ::testing::HasSubstr;

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
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kCfExact);  // Default.
  EXPECT_EQ(r->metadata.explanation_note, "");  // No models: nothing is left unexplained.
  ASSERT_EQ(r->items.size(), 4u);  // Three related items, one back-filled.
  EXPECT_FALSE(r->items[0].attributions.empty());
  std::vector<std::string> stages;
  for (const core::StageTiming& t : r->metadata.stage_timings) stages.push_back(t.stage);
  EXPECT_THAT(stages, ::testing::ElementsAre("validate", "rank", "explain"));
}

TEST(RecommendPipelineTest, UsesTheDefaultTopKAndRejectsBadRequests) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  PipelineOptions options;
  options.default_top_k = 2;
  RecommendPipeline pipeline(options);
  EXPECT_EQ(pipeline.Run(testing::RequestWithHistory({"21A", "21B"}), *bundle, absl::InfiniteFuture())->items.size(), 2u);
  absl::Status s = pipeline.Run(testing::RequestWithHistory({""}), *bundle, absl::InfiniteFuture()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("history[0].item_id: empty"));
}

TEST(RecommendPipelineTest, AnExpiredDeadlineStopsBeforeRanking) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  RecommendPipeline pipeline({});
  absl::Status s = pipeline.Run(testing::RequestWithHistory({"21A"}), *bundle, absl::Now() - absl::Seconds(1)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(RecommendPipelineTest, AModelMethodDegradesToCfAndSaysSo) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  RecommendPipeline pipeline({});
  core::RecommendRequest request = testing::RequestWithHistory({"21A"});
  request.explain.method = core::AttributionMethod::kIntegratedGradients;
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(request, *bundle, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kCfExact);
  EXPECT_THAT(r->metadata.explanation_note, HasSubstr("no"));
  EXPECT_FALSE(r->items[0].attributions.empty());
}

}  // namespace
}  // namespace recsys::server

namespace recsys::server {
namespace {

core::RecommendRequest ModelRequest(core::AttributionMethod method) {
  core::RecommendRequest r;
  for (const char* id : {"21A", "21C", "21B"}) r.history.emplace_back().item_id = id;
  r.context.time = 1262703600;
  r.explain.method = method;
  return r;
}

TEST(RecommendPipelineModelsTest, IntegratedGradientsRunsWhenTheDeadlineAffordsIt) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  RecommendPipeline pipeline({});
  absl::StatusOr<core::RecommendResponse> r = pipeline.Run(
      ModelRequest(core::AttributionMethod::kIntegratedGradients), *bundle, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kIntegratedGradients);
  EXPECT_EQ(r->metadata.explanation_note, "");
  bool has_context = false;
  for (const auto& item : r->items) {
    for (const auto& a : item.attributions) has_context |= a.kind == core::FeatureKind::kContext;
  }
  EXPECT_TRUE(has_context);
}

TEST(RecommendPipelineModelsTest, ATightDeadlineDegradesToTheExactSourcesAndSaysSo) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  PipelineOptions options;
  // One second a unit: even gradient x input (items x models units) exceeds half of 5 s.
  options.initial_attribution_seconds_per_unit = 1.0;
  RecommendPipeline pipeline(options);
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(ModelRequest(core::AttributionMethod::kIntegratedGradients), *bundle,
                   absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();  // The recommendation stands.
  EXPECT_FALSE(r->items.empty());
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kCfExact);
  EXPECT_THAT(r->metadata.explanation_note,
              HasSubstr("Integrated Gradients would take about"));
  EXPECT_THAT(r->metadata.explanation_note, HasSubstr("exact contributions (cf, pop) ran instead"));
  EXPECT_THAT(r->metadata.explanation_note, HasSubstr("completeness_error"));
}

TEST(RecommendPipelineModelsTest, WhatTheDeadlineCannotAffordDegradesToGradientTimesInput) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  PipelineOptions options;
  // 256 steps cost 256x gradient x input: with 10 ms a unit, IG needs >= 2.56 s per item and
  // model, more than half of the 4 s left; gradient x input needs 10 ms per item and model.
  options.initial_attribution_seconds_per_unit = 0.01;
  RecommendPipeline pipeline(options);
  core::RecommendRequest request = ModelRequest(core::AttributionMethod::kIntegratedGradients);
  request.explain.steps = 256;
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(request, *bundle, absl::Now() + absl::Seconds(4));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kGradientXInput);
  EXPECT_THAT(r->metadata.explanation_note, HasSubstr("gradient x input ran instead"));
}

TEST(RecommendPipelineModelsTest, UnderLoadOnlyTheExactSourcesAreExplained) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  RecommendPipeline pipeline({});
  absl::StatusOr<core::RecommendResponse> idle =
      pipeline.Run(ModelRequest(core::AttributionMethod::kKernelShap), *bundle,
                   absl::InfiniteFuture(), 0.2);
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle->metadata.attribution_method, core::AttributionMethod::kKernelShap);
  EXPECT_EQ(idle->metadata.explanation_note, "");
  absl::StatusOr<core::RecommendResponse> busy =
      pipeline.Run(ModelRequest(core::AttributionMethod::kKernelShap), *bundle,
                   absl::InfiniteFuture(), 0.75);
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->metadata.attribution_method, core::AttributionMethod::kCfExact);
  EXPECT_THAT(busy->metadata.explanation_note, HasSubstr("server is busy (request queue 75% full)"));
  EXPECT_FALSE(busy->items.front().attributions.empty());
}

TEST(RecommendPipelineModelsTest, EveryMethodRunsAsAskedWhenAffordable) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  RecommendPipeline pipeline({});
  for (core::AttributionMethod method :
       {core::AttributionMethod::kGradientXInput, core::AttributionMethod::kOcclusion,
        core::AttributionMethod::kKernelShap, core::AttributionMethod::kNone}) {
    absl::StatusOr<core::RecommendResponse> r =
        pipeline.Run(ModelRequest(method), *bundle, absl::InfiniteFuture());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->metadata.attribution_method, method);
    EXPECT_EQ(r->metadata.explanation_note, "");
    EXPECT_EQ(r->items.front().attributions.empty(), method == core::AttributionMethod::kNone);
  }
}

}  // namespace
}  // namespace recsys::server
