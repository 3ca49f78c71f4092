#include "server/recommend_pipeline.h"

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
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kCfExact);
  ASSERT_EQ(r->items.size(), 3u);
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
  options.initial_attribution_seconds_per_unit = 1.0;  // Far beyond the deadline below.
  RecommendPipeline pipeline(options);
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(ModelRequest(core::AttributionMethod::kIntegratedGradients), *bundle,
                   absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();  // The recommendation stands.
  EXPECT_FALSE(r->items.empty());
  EXPECT_EQ(r->metadata.attribution_method, core::AttributionMethod::kCfExact);
  EXPECT_THAT(r->metadata.explanation_note, HasSubstr("model attribution was skipped"));
  EXPECT_THAT(r->metadata.explanation_note, HasSubstr("completeness_error"));
}

TEST(RecommendPipelineModelsTest, GradientTimesInputAndFallbacksAreReported) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyModelBundle();
  ASSERT_NE(bundle, nullptr);
  RecommendPipeline pipeline({});
  absl::StatusOr<core::RecommendResponse> gxi = pipeline.Run(
      ModelRequest(core::AttributionMethod::kGradientXInput), *bundle, absl::InfiniteFuture());
  ASSERT_TRUE(gxi.ok());
  EXPECT_EQ(gxi->metadata.attribution_method, core::AttributionMethod::kGradientXInput);
  absl::StatusOr<core::RecommendResponse> shap = pipeline.Run(
      ModelRequest(core::AttributionMethod::kKernelShap), *bundle, absl::InfiniteFuture());
  ASSERT_TRUE(shap.ok());
  EXPECT_EQ(shap->metadata.attribution_method, core::AttributionMethod::kIntegratedGradients);
  EXPECT_THAT(shap->metadata.explanation_note, HasSubstr("KernelSHAP"));
}

}  // namespace
}  // namespace recsys::server
