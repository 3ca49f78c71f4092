// PipelineOptions::reason_min_share reaches the explainer (the --reason_min_share flag that
// tools/feedback_report.py derives).

#include <memory>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "pipeline/recommend_pipeline.h"
#include "tests/testutil/fixtures.h"

namespace recsys::pipeline {
namespace {

// 21C's reason with `min_share`: history A bought, B viewed, whose CF contribution is 0.8 of
// 21C's score (tests/explain/reason_test.cc).
core::RecommendedItem TopItem(double min_share) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  PipelineOptions options;
  options.reason_min_share = min_share;
  RecommendPipeline pipeline(options);
  core::RecommendRequest request = testing::RequestWithHistory({"21A", "21B"});
  request.history[1].event_type = core::EventType::kView;
  absl::StatusOr<core::RecommendResponse> r =
      pipeline.Run(request, *bundle, absl::InfiniteFuture());
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok() || r->items.empty()) return {};
  return r->items[0];
}

TEST(ReasonSettingTest, TheOptionsMinimumShareDecidesWhetherAReasonIsGiven) {
  const core::RecommendedItem kept = TopItem(0.0);  // The default.
  EXPECT_EQ(kept.item_id, "21C");
  EXPECT_EQ(kept.reason, "because you viewed ITEM B");
  EXPECT_NEAR(kept.reason_share, 0.8, 1e-12);

  const core::RecommendedItem dropped = TopItem(0.81);
  EXPECT_EQ(dropped.item_id, "21C");
  EXPECT_EQ(dropped.reason, "");
  EXPECT_EQ(dropped.reason_kind, "none");
}

}  // namespace
}  // namespace recsys::pipeline
