// The reason an item is given, its kind and share, and ExplainSettings::reason_min_share.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/ranker.h"
#include "explain/explainer.h"
#include "gtest/gtest.h"
#include "tests/testutil/explain_fixtures.h"
#include "tests/testutil/fixtures.h"

namespace recsys::explain {
namespace {

// Ranks and explains `request` on `bundle` with the exact sources and `min_share`.
core::RankedList Explained(const core::Bundle& bundle, const core::RecommendRequest& request,
                           double min_share) {
  core::RankedList ranked;
  EXPECT_TRUE(core::Ranker::Rank(bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.reason_min_share = min_share;
  EXPECT_EQ(ExplainItems(bundle, request, settings, &ranked), "");
  return ranked;
}

// History A (bought), then B (viewed): 21C's CF score is 1/3 s(A,C) + 2/3 s(B,C) with
// s(B,C) = 2 s(A,C) (explainer_test.cc), so B's contribution is (4/3) / (1/3 + 4/3) = 0.8 of it.
core::RecommendRequest BoughtAViewedB() {
  core::RecommendRequest request = testing::RequestWithHistory({"21A", "21B"});
  request.history[1].event_type = core::EventType::kView;
  return request;
}

TEST(ReasonTest, ReasonShareIsTheCitedAttributionsShareOfTheScore) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  core::RankedList ranked = Explained(*bundle, BoughtAViewedB(), 0.0);
  const core::RecommendedItem& c = ranked.items[0];
  ASSERT_EQ(c.item_id, "21C");
  EXPECT_EQ(c.reason, "because you viewed ITEM B");
  EXPECT_EQ(c.reason_kind, "history_event");
  EXPECT_NEAR(c.reason_share, 0.8, 1e-12);
}

TEST(ReasonTest, AReasonBelowTheMinimumShareIsDroppedAndTheAttributionsStay) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  const core::RecommendedItem kept = Explained(*bundle, BoughtAViewedB(), 0.79).items[0];
  ASSERT_EQ(kept.item_id, "21C");
  EXPECT_EQ(kept.reason, "because you viewed ITEM B");
  EXPECT_EQ(kept.reason_kind, "history_event");
  EXPECT_NEAR(kept.reason_share, 0.8, 1e-12);

  const core::RecommendedItem dropped = Explained(*bundle, BoughtAViewedB(), 0.81).items[0];
  ASSERT_EQ(dropped.item_id, "21C");
  EXPECT_EQ(dropped.reason, "");
  EXPECT_EQ(dropped.reason_kind, "none");
  EXPECT_EQ(dropped.reason_share, 0.0);
  // Only the sentence goes: the score breakdown is the same as with every reason on.
  ASSERT_EQ(dropped.attributions.size(), kept.attributions.size());
  for (size_t i = 0; i < kept.attributions.size(); ++i) {
    EXPECT_EQ(dropped.attributions[i].item_id, kept.attributions[i].item_id);
    EXPECT_EQ(dropped.attributions[i].attribution, kept.attributions[i].attribution);
  }
}

// Each item's reason kind, by item id.
std::map<std::string, std::string> Kinds(const core::RankedList& ranked) {
  std::map<std::string, std::string> kinds;
  for (const core::RecommendedItem& item : ranked.items) kinds[item.item_id] = item.reason_kind;
  return kinds;
}

TEST(ReasonTest, TheMinimumShareAppliesToEachItemOnItsOwn) {
  testing::FakeModelBundleOptions options;
  options.models = {};
  std::shared_ptr<const core::Bundle> bundle = testing::FakeModelBundle(options);
  ASSERT_NE(bundle, nullptr);
  core::RecommendRequest request = BoughtAViewedB();
  request.fusion_weights = {{"pop", 0.25}};
  // Reason shares with every reason on: C 0.51 (viewed B), A 0.55, B 0.68, D 1 (popularity).
  const core::RankedList all = Explained(*bundle, request, 0.0);
  EXPECT_EQ(Kinds(all), (std::map<std::string, std::string>{{"21A", "popularity"},
                                                            {"21B", "popularity"},
                                                            {"21C", "history_event"},
                                                            {"21D", "popularity"}}));
  const core::RankedList some = Explained(*bundle, request, 0.6);
  EXPECT_EQ(Kinds(some),
            (std::map<std::string, std::string>{
                {"21A", "none"}, {"21B", "popularity"}, {"21C", "none"}, {"21D", "popularity"}}));
  for (const core::RecommendedItem& item : some.items) {
    SCOPED_TRACE(item.item_id);
    EXPECT_EQ(item.reason.empty(), item.reason_kind == "none");
    EXPECT_TRUE(item.reason_kind == "none" || item.reason_share >= 0.6);
  }
}

TEST(ReasonTest, ASoleReasonCarriesTheWholeScoreAndPassesAnyMinimumBelowOne) {
  testing::FakeModelBundleOptions options;
  options.models = {};
  std::shared_ptr<const core::Bundle> bundle = testing::FakeModelBundle(options);
  ASSERT_NE(bundle, nullptr);
  // D has no CF neighbour: recent popularity is each item's one attribution.
  core::RecommendRequest request = testing::RequestWithHistory({"21D"});
  request.fusion_weights = {{"pop", 0.25}};
  const core::RankedList ranked = Explained(*bundle, request, 0.99);
  ASSERT_EQ(ranked.items.size(), 4u);
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    EXPECT_EQ(item.reason, "popular right now");
    EXPECT_EQ(item.reason_kind, "popularity");
    EXPECT_NEAR(item.reason_share, 1.0, 1e-12);
  }
}

TEST(ReasonTest, ARepeatPurchaseIsItsOwnKind) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  const core::RankedList ranked =
      Explained(*bundle, testing::RequestWithHistory({"21A", "21B"}), 0.0);
  const core::RecommendedItem& b = ranked.items[0];
  ASSERT_EQ(b.item_id, "21B");
  EXPECT_EQ(b.reason, "you bought it before");
  EXPECT_EQ(b.reason_kind, "repeat_purchase");
  EXPECT_NEAR(b.reason_share, b.attributions[0].attribution / (b.score - b.baseline_score), 1e-12);
  EXPECT_GT(b.reason_share, 0.5);
}

// A view of the item itself is no purchase: "you viewed it before", of the plain event kind.
TEST(ReasonTest, AViewOfTheItemItselfIsNotARepeatPurchase) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0);
  core::RecommendRequest request = testing::RequestWithHistory({"21A", "21B"});
  request.history[1].event_type = core::EventType::kView;
  const core::RecommendedItem b = Explained(*bundle, request, 0.0).items[0];
  ASSERT_EQ(b.item_id, "21B");
  EXPECT_EQ(b.reason, "you viewed it before");
  EXPECT_EQ(b.reason_kind, "history_event");
  request.history[1].event_type = core::EventType::kAddToCart;
  EXPECT_EQ(Explained(*bundle, request, 0.0).items[0].reason, "you added it to your basket before");
}

// The reason cites an attribution the caller can see: when max_attributions keeps only a larger
// negative entry (here the long-tail penalty), the history event behind it is not cited.
TEST(ReasonTest, CitesOnlyAReturnedAttribution) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5);
  core::RecommendRequest request = BoughtAViewedB();
  request.popularity_penalty = 5.0;
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.reason_min_share = 0.0;
  settings.max_attributions = 1;
  ExplainItems(*bundle, request, settings, &ranked);
  for (const core::RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    ASSERT_EQ(item.attributions.size(), 1u);
    ASSERT_EQ(item.attributions[0].feature, "popularity");  // The penalty, negative.
    EXPECT_EQ(item.reason, "");
    EXPECT_EQ(item.reason_kind, "none");
  }
}

// With the default method every source is attributed per context group and side-feature kind,
// and those can be the reason: in words, not feature names.
TEST(ReasonTest, ContextAndSideFeaturesGiveReasonsInWords) {
  testing::FakeModelBundleOptions options;
  options.models = {{"rnn", 1.0, 1.0, 0.0}};
  std::shared_ptr<const core::Bundle> bundle = testing::FakeModelBundle(options);
  ASSERT_NE(bundle, nullptr);
  const std::map<std::string, std::string> expected = {
      {"hour", "often bought around 15:00 UTC"},
      {"dow", "often bought on Tuesdays"},
      {"country", "popular with shoppers in France"},
      {"log_recency_days", "suits the time since your last purchase"},
      {"log_quantity", "suits the quantities you buy"},
      {"log_price", "suits the prices you pay"},
      {"log_gap_days", "suits how often you shop"}};
  std::map<std::string, int> cited;  // reason_kind -> items.
  for (const std::vector<std::string>& ids :
       std::vector<std::vector<std::string>>{{"21A"}, {"21B"}, {"21C"}, {"21D"}, {"21A", "21C"}}) {
    core::RecommendRequest request = testing::TimedRequest(ids);
    request.fusion_weights = {{"cf", 0.0}};  // The model alone, so the context can lead.
    for (const core::RecommendedItem& item : Explained(*bundle, request, 0.0).items) {
      SCOPED_TRACE(item.item_id);
      ++cited[item.reason_kind];
      if (item.reason_kind != "context" && item.reason_kind != "side_feature") continue;
      // The cited entry is the largest positive one among those that can be a reason.
      const core::Attribution* top = nullptr;
      for (const core::Attribution& a : item.attributions) {
        if (a.attribution > 0 && (a.kind != core::FeatureKind::kPrior)) {
          top = &a;
          break;
        }
      }
      ASSERT_NE(top, nullptr);
      EXPECT_EQ(item.reason, expected.at(top->feature));
      EXPECT_NEAR(item.reason_share, top->attribution / (item.score - item.baseline_score), 1e-12);
    }
  }
  EXPECT_GT(cited["context"] + cited["side_feature"], 0);

  // A gradient method's side-feature of one event has no sentence: it is never the reason.
  core::RecommendRequest request = testing::TimedRequest({"21A", "21C"});
  request.fusion_weights = {{"cf", 0.0}};
  core::RankedList ranked;
  ASSERT_TRUE(core::Ranker::Rank(*bundle, request, 10, &ranked).ok());
  ExplainSettings settings;
  settings.method = core::AttributionMethod::kGradientXInput;
  settings.reason_min_share = 0.0;
  settings.max_attributions = 1;
  ExplainItems(*bundle, request, settings, &ranked);
  int led_by_side_feature = 0;
  for (const core::RecommendedItem& item : ranked.items) {
    ASSERT_EQ(item.attributions.size(), 1u);
    if (item.attributions[0].kind != core::FeatureKind::kEventFeature) continue;
    ++led_by_side_feature;
    EXPECT_EQ(item.reason_kind, "none") << item.item_id;
  }
  EXPECT_GT(led_by_side_feature, 0);  // The case above happens.
}

}  // namespace
}  // namespace recsys::explain
