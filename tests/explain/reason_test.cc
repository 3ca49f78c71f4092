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

}  // namespace
}  // namespace recsys::explain
