#include "core/ranker.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// Similarities of the tiny data with shrinkage 1 (see cf_index_test.cc).
const double kSimAB = 0.5;
const double kSimAC = 1.0 / (std::sqrt(6.0) + 1.0);
const double kSimBC = 2.0 / (std::sqrt(6.0) + 1.0);


std::vector<std::string> Ids(const RankedList& list) {
  std::vector<std::string> ids;
  for (const RecommendedItem& item : list.items) ids.push_back(item.item_id);
  return ids;
}

TEST(RecencyWeightsTest, NewestWeighsMostAndTheySumToOne) {
  std::vector<double> w = RecencyWeights(3, 0.5);
  EXPECT_DOUBLE_EQ(w[0], 0.25 / 1.75);
  EXPECT_DOUBLE_EQ(w[2], 1.0 / 1.75);
  EXPECT_TRUE(RecencyWeights(0, 0.5).empty());
}

TEST(RankerScoresTest, ScoresAreRecencyWeightedSimilaritiesComputedByHand) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  // History A then B: weights 1/3 (A, older) and 2/3 (B, newest).
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, testing::RequestWithHistory({"21A", "21B"}), 10, &out).ok());
  const double score_a = 2.0 / 3 * kSimAB;
  const double score_b = 1.0 / 3 * kSimAB;
  const double score_c = 1.0 / 3 * kSimAC + 2.0 / 3 * kSimBC;
  EXPECT_THAT(Ids(out), ElementsAre("21C", "21A", "21B"));
  EXPECT_NEAR(out.items[0].score, score_c, 1e-6);
  EXPECT_NEAR(out.items[1].score, score_a, 1e-6);
  EXPECT_NEAR(out.items[2].score, score_b, 1e-6);
  EXPECT_EQ(out.items[0].rank, 1);
  // CF, and the recent-popularity source that this bundle weighs 0.
  ASSERT_EQ(out.items[0].sources.size(), 2u);
  EXPECT_EQ(out.items[0].sources[0].source, "cf");
  EXPECT_DOUBLE_EQ(out.items[0].sources[0].contribution, out.items[0].score);
  EXPECT_EQ(out.items[0].sources[1].source, "pop");
  EXPECT_EQ(out.items[0].sources[1].weight, 0.0);
  EXPECT_EQ(out.items[0].sources[1].contribution, 0.0);
  EXPECT_EQ(out.metadata.candidates_scored, 3);
  EXPECT_EQ(out.items[0].info.description, "ITEM C");
}

TEST(RankerScoresTest, SelfSimilarityMakesBoughtItemsRecommendThemselves) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5, 100, /*self_similarity=*/2.0);
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, testing::RequestWithHistory({"21A", "21B"}), 10, &out).ok());
  // 21B: 2/3 * 2 (itself) + 1/3 * sim(A,B); 21A: 1/3 * 2 + 2/3 * sim(B,A); 21C as before.
  EXPECT_THAT(Ids(out), ElementsAre("21B", "21A", "21C"));
  EXPECT_NEAR(out.items[0].score, 2.0 / 3 * 2.0 + 1.0 / 3 * kSimAB, 1e-6);
  EXPECT_NEAR(out.items[1].score, 1.0 / 3 * 2.0 + 2.0 / 3 * kSimAB, 1e-6);
  EXPECT_NEAR(out.items[2].score, 1.0 / 3 * kSimAC + 2.0 / 3 * kSimBC, 1e-6);
  RankedList history_only;
  ASSERT_TRUE(Ranker::Rank(*bundle, testing::RequestWithHistory({"21B"}), 10, &history_only).ok());
  EXPECT_EQ(CfContribution(*bundle, history_only.history, 0, 1), 2.0);
}

TEST(RankerScoresTest, TheRecentPopularitySourceAddsCandidatesAndScores) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  // Purchase lines in the 28 days before the cut-off (2010-02-01), from 2010-01-04 on: 21A's
  // of 01-04 and 01-05, 21D's of 01-06.
  EXPECT_EQ(bundle->catalog().item(0).recent_popularity, 2);
  EXPECT_EQ(bundle->catalog().item(1).recent_popularity, 0);
  EXPECT_EQ(bundle->catalog().item(3).recent_popularity, 1);
  EXPECT_EQ(bundle->recent_popular_items().front(), 0);
  RecommendRequest r = testing::RequestWithHistory({"21D"});  // No CF neighbours at all.
  r.fusion_weights = {{"pop", 0.5}};
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 10, &out).ok());
  ASSERT_EQ(out.items.size(), 4u);
  EXPECT_EQ(out.items[0].item_id, "21A");
  EXPECT_NEAR(out.items[0].score, 0.5 * std::log1p(2.0), 1e-12);
  EXPECT_NEAR(out.items[0].sources[1].raw_score, std::log1p(2.0), 1e-12);
}

TEST(RankerScoresTest, FiltersRemoveAndCount) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  RecommendRequest r = testing::RequestWithHistory({"21A", "21B", "unknown-1", "unknown-1"});
  r.exclude_history = true;
  r.exclude_item_ids = {"21C", "no-such-item"};
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 10, &out).ok());
  EXPECT_TRUE(out.items.empty());
  EXPECT_THAT(out.metadata.filtered_counts, ElementsAre(Pair("exclude", 1), Pair("history", 2)));
  EXPECT_THAT(out.metadata.ignored_history_item_ids, ElementsAre("unknown-1"));
  EXPECT_THAT(out.metadata.ignored_candidate_item_ids, ElementsAre("no-such-item"));

  RecommendRequest priced = testing::RequestWithHistory({"21A", "21B"});
  priced.max_price = 2.5;  // C costs 3.
  out = {};
  ASSERT_TRUE(Ranker::Rank(*bundle, priced, 10, &out).ok());
  EXPECT_THAT(Ids(out), ElementsAre("21A", "21B"));
  EXPECT_THAT(out.metadata.filtered_counts, ElementsAre(Pair("price", 1)));
}

TEST(RankerScoresTest, TopKCutsTheList) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, testing::RequestWithHistory({"21A", "21B"}), 1, &out).ok());
  EXPECT_THAT(Ids(out), ElementsAre("21C"));
}

TEST(RankerScoresTest, CandidatesOnlyRanksJustTheCampaign) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  RecommendRequest r = testing::RequestWithHistory({"21A"});
  r.candidate_item_ids = {"21D", "21C", "ghost"};
  r.candidates_only = true;
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 10, &out).ok());
  EXPECT_THAT(Ids(out), ElementsAre("21C", "21D"));  // D is unrelated to A: score 0, still ranked.
  EXPECT_NEAR(out.items[0].score, kSimAC, 1e-6);
  EXPECT_EQ(out.items[1].score, 0.0);
  EXPECT_THAT(out.metadata.ignored_candidate_item_ids, ElementsAre("ghost"));

  r.candidate_item_ids = {"ghost"};
  out = {};
  absl::Status s = Ranker::Rank(*bundle, r, 10, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("candidate_item_ids"));
}

TEST(RankerScoresTest, FusionWeightScalesAndUnknownSourceIsRejected) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  RecommendRequest r = testing::RequestWithHistory({"21A"});
  r.fusion_weights = {{"cf", 2.0}};
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 10, &out).ok());
  EXPECT_NEAR(out.items[0].score, 2 * kSimAB, 1e-6);
  EXPECT_DOUBLE_EQ(out.items[0].sources[0].weight, 2.0);

  r.fusion_weights = {{"gnn", 1.0}};
  out = {};
  absl::Status s = Ranker::Rank(*bundle, r, 10, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("fusion.weights[\"gnn\"]: unknown source; this bundle has cf"));
}

TEST(RankerScoresTest, PopularityPenaltyDemotesPopularItems) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  // From history A: B (sim 0.5, 3 purchases) beats C (sim 0.29, 2 purchases) on similarity,
  // but a penalty of 1 * log(1 + purchases) turns the order.
  RecommendRequest r = testing::RequestWithHistory({"21A"});
  r.popularity_penalty = 1.0;
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 10, &out).ok());
  EXPECT_THAT(Ids(out), ElementsAre("21C", "21B"));
  EXPECT_NEAR(out.items[0].score, kSimAC - std::log1p(2.0), 1e-6);
}

TEST(RankerScoresTest, CategoryOptionsOnABundleWithoutCategoriesFailClearly) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  RecommendRequest r = testing::RequestWithHistory({"21A"});
  r.allow_categories = {"lights"};
  RankedList out;
  absl::Status s = Ranker::Rank(*bundle, r, 10, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("filters.allow_categories: bundle v1 has no item categories"));
}

TEST(RankerScoresTest, ANewShopperGetsPopularItemsFlaggedAsFallback) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  RecommendRequest request = testing::RequestWithHistory({});
  request.fusion_weights = {{"pop", 1.0}};
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, request, 2, &out).ok());
  ASSERT_EQ(out.items.size(), 2u);
  EXPECT_EQ(out.items[0].item_id, "21A");  // Most recent purchase lines.
  EXPECT_EQ(out.items[1].item_id, "21D");
  EXPECT_TRUE(out.metadata.fallback_used);
  EXPECT_THAT(out.metadata.fallback_reason, HasSubstr("empty history: ranked by recent"));

  // All-unknown history, and a bundle weighing popularity 0 with no models: an empty list,
  // not an error, and the reason says why.
  out = {};
  ASSERT_TRUE(Ranker::Rank(*bundle, testing::RequestWithHistory({"nope"}), 10, &out).ok());
  EXPECT_TRUE(out.items.empty());
  EXPECT_TRUE(out.metadata.fallback_used);
  EXPECT_THAT(out.metadata.fallback_reason,
              HasSubstr("no history item is in the catalogue: this bundle has no popularity"));
}

}  // namespace
}  // namespace recsys::core
