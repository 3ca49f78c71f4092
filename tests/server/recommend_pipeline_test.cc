#include "server/recommend_pipeline.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::server {
namespace {

using ::testing::HasSubstr;

core::RecommendRequest History(std::vector<std::string> ids) {
  core::RecommendRequest r;
  r.request_id = "req-1";
  for (std::string& id : ids) r.history.emplace_back().item_id = std::move(id);
  return r;
}

TEST(RecommendPipelineTest, RanksExplainsAndTimesEachStage) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  RecommendPipeline pipeline({});
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(History({"21A", "21B"}), *bundle, absl::InfiniteFuture());
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
  EXPECT_EQ(pipeline.Run(History({"21A", "21B"}), *bundle, absl::InfiniteFuture())->items.size(), 2u);
  absl::Status s = pipeline.Run(History({""}), *bundle, absl::InfiniteFuture()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("history[0].item_id: empty"));
}

TEST(RecommendPipelineTest, AnExpiredDeadlineStopsBeforeRanking) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  RecommendPipeline pipeline({});
  absl::Status s = pipeline.Run(History({"21A"}), *bundle, absl::Now() - absl::Seconds(1)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(RecommendPipelineTest, AModelMethodDegradesToCfAndSaysSo) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  RecommendPipeline pipeline({});
  core::RecommendRequest request = History({"21A"});
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
