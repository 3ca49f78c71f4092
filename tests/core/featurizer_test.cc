// The context groups of a schema and how their values read, against Featurize's encoding.
#include "core/featurizer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys::core {
namespace {

TEST(ContextGroupsTest, PairsSinCosAndOneHots) {
  BundleManifest manifest;
  for (const char* name : {"hour_sin", "hour_cos", "dow_sin", "dow_cos", "log_recency_days",
                           "country=France", "country=other", "promo"}) {
    manifest.context_features.push_back({name, "numeric", ""});
  }
  const std::vector<ContextGroup> groups = ContextGroups(manifest);
  ASSERT_EQ(groups.size(), 5u);
  EXPECT_EQ(groups[0].name, "hour");
  EXPECT_THAT(groups[0].features, ::testing::ElementsAre(0, 1));
  EXPECT_EQ(groups[1].name, "dow");
  EXPECT_THAT(groups[1].features, ::testing::ElementsAre(2, 3));
  EXPECT_EQ(groups[2].name, "log_recency_days");
  EXPECT_EQ(groups[3].name, "country");
  EXPECT_THAT(groups[3].features, ::testing::ElementsAre(5, 6));
  EXPECT_EQ(groups[4].name, "promo");
}

// What DescribeContextGroup shows is what the request said: the featurised context of a request
// on Tuesday 2010-01-05 at 15:00 UTC from France, seven days after its last event, decoded.
TEST(DescribeContextGroupTest, ReadsBackWhatFeaturizeEncoded) {
  BundleManifest manifest;
  for (const char* name : {"hour_sin", "hour_cos", "dow_sin", "dow_cos", "log_recency_days",
                           "country=France", "country=other"}) {
    manifest.context_features.push_back({name, "numeric", ""});
  }
  ModelShape shape;
  shape.num_items = 4;
  shape.max_history = 2;
  shape.num_context = 7;
  RecommendRequest request;
  HistoryEvent& event = request.history.emplace_back();
  event.item_id = "A";
  event.timestamp = 1262703600 - 7 * 86400;
  request.context.country = "France";
  const ModelInput input = Featurize(manifest, shape, request, {0}, {0}, 1262703600);
  std::vector<std::string> shown;
  for (const ContextGroup& group : ContextGroups(manifest)) {
    shown.push_back(DescribeContextGroup(manifest, group, input.context));
  }
  EXPECT_THAT(shown, ::testing::ElementsAre("15:00 UTC", "Tuesday", "7.0 days", "France"));
}

}  // namespace
}  // namespace recsys::core
