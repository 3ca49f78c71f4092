#include "explain/explainer.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/explain_fixtures.h"
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
        int same_event = 0;
        for (const Attribution& own : cf.attributions) {
          if (own.history_index != a.history_index) continue;
          ++same_event;
          EXPECT_NEAR(a.attribution, 3.0 * own.attribution, 1e-12);
        }
        EXPECT_EQ(same_event, 1) << "history index " << a.history_index;
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

// The tiny CF bundle with every purchase recent (testutil/explain_fixtures.h), no models.
std::shared_ptr<const core::Bundle> AllRecentBundle(int64_t min_country_recent_lines = 100) {
  testing::FakeModelBundleOptions options;
  options.models = {};
  options.min_country_recent_lines = min_country_recent_lines;
  return testing::FakeModelBundle(options);
}

TEST(ExplainItemsTest, RecentPopularityIsAnExactPriorAttribution) {
  std::shared_ptr<const core::Bundle> bundle = AllRecentBundle();
  ASSERT_NE(bundle, nullptr);
  core::RecommendRequest request = testing::RequestWithHistory({"21A"});
  request.fusion_weights = {{"pop", 0.25}};
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainItems(*bundle, request, ExplainSettings(), &ranked);
  ASSERT_EQ(ranked.items.size(), 4u);
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    EXPECT_NEAR(Sum(item.attributions), item.score - item.baseline_score, 1e-12);
    // Every item was bought in the recent window, so each has a popularity entry.
    ASSERT_GT(item.info.recent_popularity, 0);
    const Attribution* prior = nullptr;
    for (const Attribution& a : item.attributions) {
      if (a.feature == "recent_popularity") prior = &a;
    }
    ASSERT_NE(prior, nullptr);
    EXPECT_EQ(prior->kind, FeatureKind::kPrior);
    EXPECT_NEAR(prior->attribution, 0.25 * std::log1p(item.info.recent_popularity), 1e-12);
    EXPECT_EQ(prior->display_value, absl::StrCat(item.info.recent_popularity, " recent purchases"));
  }
}

TEST(ExplainItemsTest, PopularityIsTheReasonWhenNoEventLinksToTheItem) {
  std::shared_ptr<const core::Bundle> bundle = AllRecentBundle();
  ASSERT_NE(bundle, nullptr);
  // Customer 5 bought only D: D has no CF neighbour, so every item's CF score is 0 and recent
  // popularity is each item's one positive attribution.
  core::RecommendRequest request = testing::RequestWithHistory({"21D"});
  request.fusion_weights = {{"pop", 0.25}};
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainItems(*bundle, request, ExplainSettings(), &ranked);
  ASSERT_EQ(ranked.items.size(), 4u);
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    ASSERT_EQ(item.sources[0].source, "cf");
    ASSERT_EQ(item.sources[0].raw_score, 0.0);
    ASSERT_EQ(item.attributions.size(), 1u);
    EXPECT_EQ(item.attributions[0].feature, "recent_popularity");
    EXPECT_EQ(item.reason, "popular right now");
  }
}

TEST(ExplainItemsTest, ANewShoppersPopularityReasonNamesTheirCountry) {
  // France's 2 recent lines get their own list.
  std::shared_ptr<const core::Bundle> bundle = AllRecentBundle(1);
  ASSERT_NE(bundle, nullptr);
  // No known event: a new shopper, ranked by France's recent purchases (A and B once each).
  core::RecommendRequest request = testing::RequestWithHistory({"not-in-catalogue"});
  request.context.country = "France";
  request.fusion_weights = {{"pop", 0.5}};
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 2, &ranked).ok());
  ASSERT_EQ(ranked.popularity_country, "France");
  ExplainItems(*bundle, request, ExplainSettings(), &ranked);
  ASSERT_EQ(ranked.items.size(), 2u);
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    ASSERT_EQ(item.attributions.size(), 1u);
    EXPECT_EQ(item.attributions[0].feature, "recent_popularity");
    EXPECT_EQ(item.attributions[0].display_value, "1 recent purchases in France");
    EXPECT_NEAR(item.attributions[0].attribution, 0.5 * std::log1p(1.0), 1e-12);
    EXPECT_EQ(item.reason, "popular in France right now");
  }
}

// Ranks `request` and explains it with `method`.
core::RankedList ExplainedBy(const core::Bundle& bundle, const core::RecommendRequest& request,
                             core::AttributionMethod method) {
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.method = method;
  settings.max_attributions = 100;
  EXPECT_EQ(ExplainItems(bundle, request, settings, &ranked), "");
  return ranked;
}

// baseline_score is the score of one stated reference request, whatever the method: the
// gradient methods used to report their path's start instead, which differs when padding does
// not embed to 0 (the fake allows it; the TorchScript loader refuses such a model).
TEST(ExplainItemsTest, EveryMethodReportsTheSameBaselineScore) {
  for (const float pad : {0.0f, 0.3f}) {
    SCOPED_TRACE(pad);
    testing::FakeModelBundleOptions options;
    // Non-trivial fusion of the model (weight, slope, intercept) and an active "pop" source.
    options.models = {{"rnn", 0.7, 2.0, 0.1}};
    options.popularity_weight = 0.5;
    options.model.pad_embedding = pad;
    std::shared_ptr<const core::Bundle> bundle = testing::FakeModelBundle(options);
    ASSERT_NE(bundle, nullptr);
    core::RecommendRequest request = testing::TimedRequest({"21A", "21C", "21B"});
    request.popularity_penalty = 0.05;
    const core::ModelRunner& model = *bundle->models().at(0);

    using core::AttributionMethod;
    for (AttributionMethod method :
         {AttributionMethod::kCfExact, AttributionMethod::kGradientXInput,
          AttributionMethod::kIntegratedGradients, AttributionMethod::kOcclusion,
          AttributionMethod::kKernelShap, AttributionMethod::kReplay, AttributionMethod::kLime}) {
      SCOPED_TRACE(static_cast<int>(method));
      const core::RankedList ranked = ExplainedBy(*bundle, request, method);
      ASSERT_EQ(ranked.items.size(), 4u);
      for (const core::RecommendedItem& item : ranked.items) {
        SCOPED_TRACE(item.item_id);
        // The empty history's fused score, from the manifest and the model's baseline: cf and
        // pop score 0 there (their intercepts are 0), the model its baseline_scores().
        EXPECT_NEAR(item.baseline_score, 0.7 * (2.0 * model.baseline_scores()[item.index] + 0.1),
                    1e-6);
        const bool adds_up = method == AttributionMethod::kKernelShap ||
                             method == AttributionMethod::kReplay ||
                             (pad == 0.0f && (method == AttributionMethod::kGradientXInput ||
                                              method == AttributionMethod::kIntegratedGradients));
        if (adds_up) {
          // Exact on a linear model (the gradient methods, from the empty history only when
          // padding embeds to 0), by the efficiency constraint, or by telescoping.
          EXPECT_NEAR(Sum(item.attributions), item.score - item.baseline_score, 1e-5);
        }
      }
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
