#include "explain/explainer.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::explain {
namespace {

using core::Attribution;
using core::FeatureKind;


double Sum(const std::vector<Attribution>& attributions) {
  double sum = 0.0;
  for (const Attribution& a : attributions) sum += a.attribution;
  return sum;
}

TEST(CfAttributionsTest, AreTheExactPerEventContributions) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  // History A, unknown, B: the unknown event is skipped but positions keep request indices.
  core::RecommendRequest request = testing::RequestWithHistory({"21A", "zzz", "21B"});
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ASSERT_EQ(ranked.items[0].item_id, "21C");

  std::vector<Attribution> a = CfAttributions(*bundle, ranked.history, 2);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].history_index, 0);
  EXPECT_EQ(a[0].item_id, "21A");
  EXPECT_EQ(a[0].display_value, "ITEM A");
  EXPECT_EQ(a[0].kind, FeatureKind::kHistoryEvent);
  EXPECT_NEAR(a[0].attribution, 1.0 / 3 / (std::sqrt(6.0) + 1.0), 1e-6);
  EXPECT_EQ(a[1].history_index, 2);
  EXPECT_NEAR(a[1].attribution, 2.0 / 3 * 2.0 / (std::sqrt(6.0) + 1.0), 1e-6);
  // Exactly the CF raw score, not just close to it.
  EXPECT_EQ(Sum(a), ranked.items[0].sources[0].raw_score);
}

TEST(ExplainItemsTest, FusedAttributionsScaleByWeightAndAddUpToTheScore) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  core::RecommendRequest request = testing::RequestWithHistory({"21A", "21B"});
  request.fusion_weights = {{"cf", 3.0}};
  request.popularity_penalty = 0.01;
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.include_source_attributions = true;
  ExplainItems(*bundle, request, settings, &ranked);

  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    const core::SourceScore& cf = item.sources[0];
    EXPECT_NEAR(Sum(cf.attributions), cf.raw_score, 1e-12);
    EXPECT_EQ(cf.completeness_error, 0.0);
    EXPECT_NEAR(Sum(item.attributions), item.score - item.baseline_score, 1e-12);
    EXPECT_NEAR(item.completeness_error, 0.0, 1e-12);
    // The popularity penalty is its own PRIOR entry.
    bool has_prior = false;
    for (const Attribution& a : item.attributions) {
      if (a.kind == FeatureKind::kPrior) {
        has_prior = true;
        EXPECT_NEAR(a.attribution, -0.01 * std::log1p(item.info.popularity), 1e-12);
      } else {
        // Fused = weight 3 x slope 1 x the CF attribution of the same event.
        for (const Attribution& own : cf.attributions) {
          if (own.history_index == a.history_index) {
            EXPECT_NEAR(a.attribution, 3.0 * own.attribution, 1e-12);
          }
        }
      }
    }
    EXPECT_TRUE(has_prior);
  }
}

TEST(ExplainItemsTest, SortsByMagnitudeTruncatesAndGivesAReason) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  core::RecommendRequest request = testing::RequestWithHistory({"21A", "21B"});
  request.history[1].event_type = core::EventType::kView;
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.max_attributions = 1;
  ExplainItems(*bundle, request, settings, &ranked);

  const core::RecommendedItem& c = ranked.items[0];
  ASSERT_EQ(c.item_id, "21C");
  ASSERT_EQ(c.attributions.size(), 1u);
  EXPECT_EQ(c.attributions[0].item_id, "21B");  // 2/3 * 0.58 beats 1/3 * 0.29.
  EXPECT_EQ(c.reason, "because you viewed ITEM B");
  // The cut attribution still counts in the completeness check.
  EXPECT_NEAR(c.completeness_error, 0.0, 1e-12);
  EXPECT_TRUE(c.sources[0].attributions.empty());  // Not asked for.
}

TEST(ExplainItemsTest, ARepeatPurchaseIsExplainedAsSuch) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  core::RecommendRequest request = testing::RequestWithHistory({"21A", "21B"});
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainItems(*bundle, request, ExplainSettings(), &ranked);
  const core::RecommendedItem& b = ranked.items[0];
  ASSERT_EQ(b.item_id, "21B");
  EXPECT_EQ(b.attributions[0].item_id, "21B");
  EXPECT_NEAR(b.attributions[0].attribution, 2.0 / 3 * 2.0, 1e-12);
  EXPECT_EQ(b.reason, "you bought it before");
  EXPECT_NEAR(b.completeness_error, 0.0, 1e-12);
}

TEST(ExplainItemsTest, RecentPopularityIsAnExactPriorAttribution) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  core::RecommendRequest request = testing::RequestWithHistory({"21A"});
  request.fusion_weights = {{"pop", 0.25}};
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainItems(*bundle, request, ExplainSettings(), &ranked);
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    EXPECT_NEAR(Sum(item.attributions), item.score - item.baseline_score, 1e-12);
    const Attribution* prior = nullptr;
    for (const Attribution& a : item.attributions) {
      if (a.feature == "recent_popularity") prior = &a;
    }
    const double expected = 0.25 * std::log1p(item.info.recent_popularity);
    if (expected == 0.0) continue;  // Zero attributions are left out.
    ASSERT_NE(prior, nullptr);
    EXPECT_EQ(prior->kind, FeatureKind::kPrior);
    EXPECT_NEAR(prior->attribution, expected, 1e-12);
    if (item.attributions.front().feature == "recent_popularity") {
      EXPECT_EQ(item.reason, "popular right now");
    }
  }
}

TEST(ExplainItemsTest, MethodNoneLeavesOnlyTheScoreBreakdown) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  core::RecommendRequest request = testing::RequestWithHistory({"21A"});
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.method = core::AttributionMethod::kNone;
  ExplainItems(*bundle, request, settings, &ranked);
  ASSERT_FALSE(ranked.items.empty());
  EXPECT_TRUE(ranked.items[0].attributions.empty());
  EXPECT_EQ(ranked.items[0].reason, "");
  EXPECT_EQ(ranked.items[0].sources.size(), 2u);
}

}  // namespace
}  // namespace recsys::explain
