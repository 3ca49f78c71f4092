#include "core/ranker.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "core/bundle_builder.h"
#include "core/categorizer.h"
#include "core/retail_data.h"
#include "core/sources.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fake_model.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/ranking_fixtures.h"

namespace recsys::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

// Similarities of the tiny data with shrinkage 1 (see cf_index_test.cc).
const double kSimAB = 0.5;
const double kSimAC = 1.0 / (std::sqrt(6.0) + 1.0);
const double kSimBC = 2.0 / (std::sqrt(6.0) + 1.0);

std::vector<std::string> Ids(const RankedList& list) {
  std::vector<std::string> ids;
  for (const RecommendedItem& item : list.items) ids.push_back(item.item_id);
  return ids;
}

TEST(BestItemsTest, KeepsTheHighestScoresWithTiesToTheLowerIndex) {
  EXPECT_THAT(BestItems({0.5f, 2.0f, 1.0f, 2.0f, -1.0f}, 2), UnorderedElementsAre(1, 3));
  EXPECT_THAT(BestItems({3.0f, 1.0f, 1.0f, 1.0f}, 2), UnorderedElementsAre(0, 1));
  EXPECT_THAT(BestItems({1.0f, 2.0f}, 5), UnorderedElementsAre(0, 1));  // m > n: all.
  EXPECT_TRUE(BestItems({1.0f}, 0).empty());
  EXPECT_TRUE(BestItems({}, 3).empty());
}

TEST(BestItemsTest, MatchesAFullSortOnRandomScores) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> coarse(0, 50);  // Many ties.
  std::vector<float> scores(5000);
  for (float& x : scores) x = static_cast<float>(coarse(rng));
  std::vector<ItemIndex> order(scores.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<ItemIndex>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](ItemIndex a, ItemIndex b) { return scores[a] > scores[b]; });
  order.resize(100);
  EXPECT_THAT(BestItems(scores, 100), UnorderedElementsAreArray(order));
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
  // 21D is unrelated to the history (score 0): it only back-fills the list to top_k.
  EXPECT_THAT(Ids(out), ElementsAre("21C", "21A", "21B", "21D"));
  EXPECT_TRUE(out.metadata.backfilled);
  EXPECT_EQ(out.items[3].score, 0.0);
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
  EXPECT_EQ(out.metadata.candidates_scored, 4);
  EXPECT_EQ(out.items[0].info.description, "ITEM C");
}

TEST(RankerScoresTest, SelfSimilarityMakesBoughtItemsRecommendThemselves) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5, 100, /*self_similarity=*/2.0);
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, testing::RequestWithHistory({"21A", "21B"}), 10, &out).ok());
  // 21B: 2/3 * 2 (itself) + 1/3 * sim(A,B); 21A: 1/3 * 2 + 2/3 * sim(B,A); 21C as before.
  EXPECT_THAT(Ids(out), ElementsAre("21B", "21A", "21C", "21D"));
  EXPECT_NEAR(out.items[0].score, 2.0 / 3 * 2.0 + 1.0 / 3 * kSimAB, 1e-6);
  EXPECT_NEAR(out.items[1].score, 1.0 / 3 * 2.0 + 2.0 / 3 * kSimAB, 1e-6);
  EXPECT_NEAR(out.items[2].score, 1.0 / 3 * kSimAC + 2.0 / 3 * kSimBC, 1e-6);
  RankedList history_only;
  ASSERT_TRUE(Ranker::Rank(*bundle, testing::RequestWithHistory({"21B"}), 10, &history_only).ok());
  EXPECT_EQ(CfContribution(*bundle, history_only.history, 0, 1), 2.0);
}

TEST(RankerScoresTest, ARepeatTermFadesWithTheAgeOfItsPurchase) {
  // Half-life 1 day: A bought 2 days before the request weighs 2^-2 of its recency weight.
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0, 1.0);
  RecommendRequest r = testing::RequestWithHistory({"21A", "21B"});
  const int64_t now = 1262340000;
  r.context.time = now;
  r.history[0].timestamp = now - 2 * 86400;
  r.history[1].timestamp = now;
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 10, &out).ok());
  // Self weights 0.5 * 1/4 and 1, normalised: 1/9 and 8/9; neighbour weights 1/3 and 2/3.
  ASSERT_EQ(out.items[1].item_id, "21A");
  EXPECT_NEAR(out.items[1].score, 1.0 / 9 * 2.0 + 2.0 / 3 * kSimAB, 1e-9);
  EXPECT_NEAR(out.items[0].score, 8.0 / 9 * 2.0 + 1.0 / 3 * kSimAB, 1e-9);
  // An undated purchase counts as new: the weights of the index decay alone (1/3, 2/3).
  r.history[0].timestamp.reset();
  RankedList undated;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 10, &undated).ok());
  ASSERT_EQ(undated.items[1].item_id, "21A");
  EXPECT_NEAR(undated.items[1].score, 1.0 / 3 * 2.0 + 2.0 / 3 * kSimAB, 1e-9);
}

TEST(SelfWeightsTest, AgesCountFromTheYoungestSoOldHistoriesKeepTheirWeight) {
  BundleManifest m;
  m.self_recency_decay = 1.0;
  m.self_half_life_days = 1.0;
  // 2^-(1e6) underflows to 0: measured from the youngest event, it still weighs all.
  std::vector<double> w = SelfWeights(m, {1e6 + 1, 1e6});
  EXPECT_NEAR(w[0], 1.0 / 3, 1e-12);
  EXPECT_NEAR(w[1], 2.0 / 3, 1e-12);
  // Both decays: position 0.5 and half-life 1 day, ages 2 and 0: 0.5 * 1/4 against 1.
  m.self_recency_decay = 0.5;
  EXPECT_THAT(SelfWeights(m, {2, 0}), ElementsAre(::testing::DoubleNear(1.0 / 9, 1e-12),
                                                  ::testing::DoubleNear(8.0 / 9, 1e-12)));
  m.self_recency_decay = 1.0;
  m.self_half_life_days = 0.0;  // No decay by age.
  EXPECT_THAT(SelfWeights(m, {100, 0}), ElementsAre(0.5, 0.5));
  EXPECT_TRUE(SelfWeights(m, {}).empty());
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
  // Only 21D passes the filters; it is no CF candidate of A or B, so it comes by back-fill.
  EXPECT_THAT(Ids(out), ElementsAre("21D"));
  EXPECT_TRUE(out.metadata.backfilled);
  EXPECT_THAT(out.metadata.filtered_counts, ElementsAre(Pair("exclude", 1), Pair("history", 2)));
  EXPECT_THAT(out.metadata.ignored_history_item_ids, ElementsAre("unknown-1"));
  EXPECT_THAT(out.metadata.ignored_candidate_item_ids, ElementsAre("no-such-item"));

  RecommendRequest priced = testing::RequestWithHistory({"21A", "21B"});
  priced.max_price = 2.5;  // C costs 3.
  out = {};
  ASSERT_TRUE(Ranker::Rank(*bundle, priced, 10, &out).ok());
  EXPECT_THAT(Ids(out), ElementsAre("21A", "21B"));  // D costs 9: nothing can back-fill.
  EXPECT_FALSE(out.metadata.backfilled);
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
  EXPECT_THAT(s.message(),
              HasSubstr("fusion.weights[\"gnn\"]: unknown source; this bundle has cf"));
}

TEST(PopularityScoreTest, IsLogOnePlusTheCountOnBothSidesOfItsTable) {
  // Small counts come from a table, the rest from log1p: the same values either way.
  for (int64_t count : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{4095}, int64_t{4096},
                        int64_t{123456}, int64_t{1} << 40}) {
    EXPECT_EQ(PopularityScore(count), std::log1p(static_cast<double>(count))) << count;
    ItemInfo item;
    item.popularity = count;
    EXPECT_EQ(PopularityPenalty(0.5, item), 0.5 * std::log1p(static_cast<double>(count))) << count;
  }
}

TEST(RankerScoresTest, PopularityPenaltyDemotesPopularItems) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle(0.5);
  // From history A: B (sim 0.5, 3 purchases) beats C (sim 0.29, 2 purchases) on similarity,
  // but a penalty of 1 * log(1 + purchases) turns the order.
  RecommendRequest r = testing::RequestWithHistory({"21A"});
  r.popularity_penalty = 1.0;
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 2, &out).ok());
  ASSERT_GE(out.items.size(), 2u);
  EXPECT_EQ(out.items[0].item_id, "21C");
  EXPECT_EQ(out.items[1].item_id, "21B");
  EXPECT_NEAR(out.items[0].score, kSimAC - std::log1p(2.0), 1e-6);
}

// TinyBundle(0.5) with its manifest changed by `edit`, or nullptr (the test fails) when it does
// not load.
std::shared_ptr<const Bundle> TinyBundleWith(const std::function<void(BundleManifest*)>& edit) {
  const std::string dir = testing::TinyBundle(0.5)->dir();
  testing::EditManifest(dir, edit);
  absl::StatusOr<std::shared_ptr<const Bundle>> bundle = Bundle::Load(dir, nullptr);
  EXPECT_TRUE(bundle.ok()) << bundle.status();
  return bundle.ok() ? *bundle : nullptr;
}

TEST(RankerScoresTest, TheBundlesDefaultPenaltyAppliesWhenTheRequestLeavesItUnset) {
  std::shared_ptr<const Bundle> bundle =
      TinyBundleWith([](BundleManifest* m) { m->popularity_penalty_default = 1.0; });
  ASSERT_NE(bundle, nullptr);
  // The order of PopularityPenaltyDemotesPopularItems, from the bundle's default.
  RecommendRequest r = testing::RequestWithHistory({"21A"});
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 2, &out).ok());
  ASSERT_GE(out.items.size(), 2u);
  EXPECT_EQ(out.items[0].item_id, "21C");
  EXPECT_NEAR(out.items[0].score, kSimAC - std::log1p(2.0), 1e-6);
  EXPECT_DOUBLE_EQ(out.popularity_penalty, 1.0);
  // A request's explicit 0 turns the default off.
  r.popularity_penalty = 0.0;
  out = {};
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 2, &out).ok());
  EXPECT_EQ(out.items[0].item_id, "21B");
  EXPECT_NEAR(out.items[0].score, kSimAB, 1e-6);
}

TEST(RankerScoresTest, ARequestExcludingTheHistoryGetsTheNewItemDefaults) {
  std::shared_ptr<const Bundle> bundle = TinyBundleWith([](BundleManifest* m) {
    m->new_items.weights = {{"cf", 3.0}};
    m->new_items.popularity_penalty = 1.0;
  });
  ASSERT_NE(bundle, nullptr);
  RecommendRequest r = testing::RequestWithHistory({"21A"});
  RankedList out;
  // The history kept: the bundle's own weight (cf 1) and penalty (0).
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 2, &out).ok());
  EXPECT_EQ(out.items[0].item_id, "21B");
  EXPECT_DOUBLE_EQ(out.items[0].sources[0].weight, 1.0);
  EXPECT_NEAR(out.items[0].score, kSimAB, 1e-6);
  // The history excluded: cf weighs 3 and the penalty is 1 x log(1 + purchases).
  r.exclude_history = true;
  out = {};
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 2, &out).ok());
  ASSERT_EQ(out.items.size(), 2u);
  EXPECT_EQ(out.items[0].item_id, "21B");
  EXPECT_DOUBLE_EQ(out.items[0].sources[0].weight, 3.0);
  EXPECT_NEAR(out.items[0].score, 3 * kSimAB - std::log1p(3.0), 1e-6);
  EXPECT_NEAR(out.items[1].score, 3 * kSimAC - std::log1p(2.0), 1e-6);
  EXPECT_DOUBLE_EQ(out.popularity_penalty, 1.0);
  // The request's own weight and penalty still win.
  r.fusion_weights = {{"cf", 1.0}};
  r.popularity_penalty = 0.0;
  out = {};
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 2, &out).ok());
  EXPECT_EQ(out.items[0].item_id, "21B");
  EXPECT_NEAR(out.items[0].score, kSimAB, 1e-6);
}

TEST(RankerScoresTest, ANewShopperGetsTheNewShopperDefaults) {
  std::shared_ptr<const Bundle> bundle = TinyBundleWith([](BundleManifest* m) {
    m->new_shoppers.weights = {{"pop", 2.0}};
    m->new_shoppers.popularity_penalty = 0.5;
    m->new_items.weights = {{"pop", 5.0}};
  });
  ASSERT_NE(bundle, nullptr);
  auto pop_weight = [&](const RecommendRequest& r, double* penalty) {
    RankedList out;
    EXPECT_TRUE(Ranker::Rank(*bundle, r, 2, &out).ok());
    *penalty = out.popularity_penalty;
    EXPECT_EQ(out.sources.at(1).source.spec.name, "pop");
    return out.sources.at(1).source.spec.weight;
  };
  double penalty = -1;
  // An empty history, or one the catalogue knows nothing of: the new-shopper defaults, also
  // when the request excludes its history (new shoppers come first).
  EXPECT_DOUBLE_EQ(pop_weight(testing::RequestWithHistory({}), &penalty), 2.0);
  EXPECT_DOUBLE_EQ(penalty, 0.5);
  RecommendRequest unknown = testing::RequestWithHistory({"nope"});
  unknown.exclude_history = true;
  EXPECT_DOUBLE_EQ(pop_weight(unknown, &penalty), 2.0);
  EXPECT_DOUBLE_EQ(penalty, 0.5);
  // A known history: the bundle's own weight (pop 0), or the new-item one when excluding it.
  RecommendRequest known = testing::RequestWithHistory({"21A"});
  EXPECT_DOUBLE_EQ(pop_weight(known, &penalty), 0.0);
  EXPECT_DOUBLE_EQ(penalty, 0.0);
  known.exclude_history = true;
  EXPECT_DOUBLE_EQ(pop_weight(known, &penalty), 5.0);
  // The request's own settings still win.
  RecommendRequest own = testing::RequestWithHistory({});
  own.fusion_weights = {{"pop", 1.0}};
  own.popularity_penalty = 0.0;
  EXPECT_DOUBLE_EQ(pop_weight(own, &penalty), 1.0);
  EXPECT_DOUBLE_EQ(penalty, 0.0);
}

TEST(RankerScoresTest, WithoutNewShopperDefaultsANewShopperGetsThoseOfTheRequestsKind) {
  std::shared_ptr<const Bundle> bundle = TinyBundleWith([](BundleManifest* m) {
    m->new_items.weights = {{"pop", 5.0}};
  });
  ASSERT_NE(bundle, nullptr);
  RecommendRequest r = testing::RequestWithHistory({});
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 2, &out).ok());
  EXPECT_DOUBLE_EQ(out.sources.at(1).source.spec.weight, 0.0);  // The bundle's own.
  r.exclude_history = true;
  out = {};
  ASSERT_TRUE(Ranker::Rank(*bundle, r, 2, &out).ok());
  EXPECT_EQ(out.sources.at(1).source.spec.name, "pop");
  EXPECT_DOUBLE_EQ(out.sources.at(1).source.spec.weight, 5.0);  // The new-item one.
}

TEST(RankerScoresTest, CategoryOptionsOnABundleWithoutCategoriesFailClearly) {
  // A bundle made before categories were derived: items.tsv's category column is empty.
  const std::string dir = testing::TinyBundle(0.5)->dir();
  absl::StatusOr<Catalog> catalog = Catalog::LoadTsv(dir + "/items.tsv");
  ASSERT_TRUE(catalog.ok());
  std::vector<ItemInfo> items;
  for (ItemIndex i = 0; i < catalog->size(); ++i) {
    items.push_back(catalog->item(i));
    items.back().category.clear();
  }
  ASSERT_TRUE(Catalog(items).WriteTsv(dir + "/items.tsv").ok());
  absl::StatusOr<std::shared_ptr<const Bundle>> bundle = Bundle::Load(dir, nullptr);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  RecommendRequest r = testing::RequestWithHistory({"21A"});
  r.allow_categories = {"lights"};
  RankedList out;
  absl::Status s = Ranker::Rank(**bundle, r, 10, &out);
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

  // All-unknown history, and a bundle weighing popularity 0 with no models: nothing ranks,
  // so the list is back-filled with the recently popular items, and the reason says why.
  out = {};
  ASSERT_TRUE(Ranker::Rank(*bundle, testing::RequestWithHistory({"nope"}), 10, &out).ok());
  EXPECT_EQ(Ids(out).front(), "21A");
  EXPECT_TRUE(out.metadata.backfilled);
  EXPECT_TRUE(out.metadata.fallback_used);
  EXPECT_THAT(out.metadata.fallback_reason,
              HasSubstr("no history item is in the catalogue: this bundle has no popularity"));
}

// Ranking with model sources, on the tiny bundle with the fake models "cnn" (weight 0.5, slope
// 2, intercept -0.25) and "rnn" (0.25, 0.5, 0.1) after "cf" (1, 1, 0) and "pop" (0, 1, 0).
class RankerModelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bundle_ = testing::TinyBundleWithFakeModels();
    ASSERT_NE(bundle_, nullptr);
    ASSERT_EQ(bundle_->sources().size(), 4u);
  }

  const testing::FakeModelRunner& Model(const std::string& name) const {
    return *testing::FakeModel(*bundle_, name);
  }

  static const RankedSource& SourceNamed(const RankedList& ranked, const std::string& name) {
    for (const RankedSource& s : ranked.sources) {
      if (s.source.spec.name == name) return s;
    }
    ADD_FAILURE() << "no source " << name;
    return ranked.sources.front();
  }

  // The fake model's own score of `item` for `input` (one ScoreTargets call).
  double ModelScore(const std::string& name, const ModelInput& input, ItemIndex item) const {
    std::vector<float> scores;
    EXPECT_TRUE(Model(name).ScoreTargets({input}, {item}, &scores).ok());
    return scores.at(0);
  }

  // The model's score of `item` for the empty history under the manifest's baseline context
  // (the training means; the tiny bundle's are off 0).
  double EmptyHistoryScore(const std::string& name, ItemIndex item) const {
    const ModelShape& shape = Model(name).shape();
    ModelInput empty;
    empty.items.assign(shape.max_history, shape.num_items);
    empty.event_features.assign(static_cast<size_t>(shape.max_history) * shape.num_event_features,
                                0.0f);
    empty.mask.assign(shape.max_history, 0.0f);
    empty.context = ContextBaseline(bundle_->manifest());
    EXPECT_EQ(empty.context.size(), static_cast<size_t>(shape.num_context));
    return ModelScore(name, empty, item);
  }

  std::shared_ptr<const Bundle> bundle_;
};

// CF raw scores of the items 21A..21D for testing::TinyModelRequest()'s history A, C, B
// (recency weights 1/7, 2/7, 4/7), by hand.
const double kTinyModelRequestCf[4] = {
    2.0 / 7 * kSimAC + 4.0 / 7 * kSimAB,  // 21A
    1.0 / 7 * kSimAB + 2.0 / 7 * kSimBC,  // 21B
    1.0 / 7 * kSimAC + 4.0 / 7 * kSimBC,  // 21C
    0.0,                                  // 21D: no shared customer.
};

TEST_F(RankerModelsTest, FusedScoreIsTheWeightedSumOfNormalisedSourceScores) {
  RecommendRequest request = testing::TinyModelRequest();
  // The request's weights override the bundle's: pop 0 -> 0.5, rnn 0.25 -> 2.
  request.fusion_weights = {{"pop", 0.5}, {"rnn", 2.0}};
  RankedList ranked;
  ASSERT_TRUE(Ranker::Rank(*bundle_, request, 10, &ranked).ok());
  ASSERT_EQ(ranked.items.size(), 4u);
  // Recent purchase lines (see TheRecentPopularitySourceAddsCandidatesAndScores).
  const double pop_raw[4] = {std::log1p(2.0), 0.0, 0.0, std::log1p(1.0)};
  const ModelInput& cnn_input = SourceNamed(ranked, "cnn").input;
  const ModelInput& rnn_input = SourceNamed(ranked, "rnn").input;
  for (const RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    const ItemIndex i = item.index;
    ASSERT_LT(i, 4u);
    const double cnn_raw = ModelScore("cnn", cnn_input, i);
    const double rnn_raw = ModelScore("rnn", rnn_input, i);
    ASSERT_EQ(item.sources.size(), 4u);
    EXPECT_EQ(item.sources[0].source, "cf");
    EXPECT_NEAR(item.sources[0].raw_score, kTinyModelRequestCf[i], 1e-9);
    EXPECT_NEAR(item.sources[0].contribution, kTinyModelRequestCf[i], 1e-9);
    EXPECT_EQ(item.sources[1].source, "pop");
    EXPECT_NEAR(item.sources[1].raw_score, pop_raw[i], 1e-12);
    EXPECT_EQ(item.sources[1].weight, 0.5);
    EXPECT_NEAR(item.sources[1].contribution, 0.5 * pop_raw[i], 1e-12);
    EXPECT_EQ(item.sources[2].source, "cnn");
    EXPECT_NEAR(item.sources[2].raw_score, cnn_raw, 1e-6);
    EXPECT_NEAR(item.sources[2].normalized_score, 2.0 * cnn_raw - 0.25, 1e-6);
    EXPECT_NEAR(item.sources[2].contribution, 0.5 * (2.0 * cnn_raw - 0.25), 1e-6);
    EXPECT_EQ(item.sources[3].source, "rnn");
    EXPECT_EQ(item.sources[3].weight, 2.0);
    EXPECT_NEAR(item.sources[3].contribution, 2.0 * (0.5 * rnn_raw + 0.1), 1e-6);
    EXPECT_NEAR(item.score,
                kTinyModelRequestCf[i] + 0.5 * pop_raw[i] + 0.5 * (2.0 * cnn_raw - 0.25) +
                    2.0 * (0.5 * rnn_raw + 0.1),
                1e-6);
    // The baseline (an empty history) scores 0 for cf and pop, the models' empty-history scores.
    EXPECT_NEAR(item.baseline_score,
                0.5 * (2.0 * EmptyHistoryScore("cnn", i) - 0.25) +
                    2.0 * (0.5 * EmptyHistoryScore("rnn", i) + 0.1),
                1e-6);
  }
  for (size_t r = 1; r < ranked.items.size(); ++r) {
    EXPECT_GE(ranked.items[r - 1].score, ranked.items[r].score);
  }
}

TEST_F(RankerModelsTest, AZeroWeightModelIsNotRunOverTheCatalogueButItsRawScoresAreReported) {
  RecommendRequest request = testing::TinyModelRequest();
  request.fusion_weights = {{"cnn", 0.0}};
  const int cnn_calls = Model("cnn").calls(), rnn_calls = Model("rnn").calls();
  RankedList ranked;
  ASSERT_TRUE(Ranker::Rank(*bundle_, request, 10, &ranked).ok());
  ASSERT_EQ(ranked.items.size(), 4u);
  EXPECT_TRUE(SourceNamed(ranked, "cnn").scores.empty());  // Not run over the catalogue...
  EXPECT_EQ(SourceNamed(ranked, "rnn").scores.size(), 4u);
  // ...but asked once, for the returned items' scores; rnn ran once, over the catalogue.
  EXPECT_EQ(Model("cnn").calls() - cnn_calls, 1);
  EXPECT_EQ(Model("rnn").calls() - rnn_calls, 1);
  const ModelInput& cnn_input = SourceNamed(ranked, "cnn").input;
  const ModelInput& rnn_input = SourceNamed(ranked, "rnn").input;
  for (const RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    ASSERT_EQ(item.sources.size(), 4u);
    EXPECT_EQ(item.sources[2].source, "cnn");
    EXPECT_EQ(item.sources[2].weight, 0.0);
    EXPECT_EQ(item.sources[2].contribution, 0.0);
    EXPECT_NEAR(item.sources[2].raw_score, ModelScore("cnn", cnn_input, item.index), 1e-6);
    EXPECT_NEAR(item.score,
                kTinyModelRequestCf[item.index] +
                    0.25 * (0.5 * ModelScore("rnn", rnn_input, item.index) + 0.1),
                1e-6);
  }
}

TEST_F(RankerModelsTest, ModelsBringCandidatesThatCfHasNot) {
  // 21D shares no customer with any item: CF has no candidate for it, and pop weighs 0.
  RankedList ranked;
  ASSERT_TRUE(Ranker::Rank(*bundle_, testing::RequestWithHistory({"21D"}), 10, &ranked).ok());
  EXPECT_EQ(ranked.items.size(), 4u);  // The whole (tiny) catalogue, from the models' top-M...
  EXPECT_EQ(ranked.metadata.candidates_scored, 4);
  EXPECT_FALSE(ranked.metadata.backfilled);  // ...not from back-fill.

  // Models that weigh 0 bring none: the list is back-filled.
  RecommendRequest unweighted = testing::RequestWithHistory({"21D"});
  unweighted.fusion_weights = {{"cnn", 0.0}, {"rnn", 0.0}};
  RankedList backfilled;
  ASSERT_TRUE(Ranker::Rank(*bundle_, unweighted, 10, &backfilled).ok());
  EXPECT_TRUE(backfilled.metadata.backfilled);
}

TEST_F(RankerModelsTest, AnItemsScoreDoesNotDependOnTheOtherCandidates) {
  RecommendRequest one = testing::TinyModelRequest();
  one.candidates_only = true;
  one.candidate_item_ids = {"21D"};
  RecommendRequest many = one;
  many.candidate_item_ids = {"21A", "21B", "21C", "21D"};
  RankedList a, b;
  ASSERT_TRUE(Ranker::Rank(*bundle_, one, 10, &a).ok());
  ASSERT_TRUE(Ranker::Rank(*bundle_, many, 10, &b).ok());
  ASSERT_EQ(a.items.size(), 1u);
  ASSERT_EQ(b.items.size(), 4u);
  auto d = std::find_if(b.items.begin(), b.items.end(),
                        [](const RecommendedItem& item) { return item.item_id == "21D"; });
  ASSERT_NE(d, b.items.end());
  EXPECT_EQ(d->score, a.items[0].score);
}

TEST_F(RankerModelsTest, RankingWithAMemoIsRankingWithoutUnderEveryBlendAndFilter) {
  // One memo per request across blends that switch models and pop off and on, penalties,
  // filters and diversity, as the evaluator's searches use it: every list is the one Rank
  // gives without it, to the bit. For a shopper with a history and for a new shopper.
  for (const RecommendRequest& base :
       {testing::TinyModelRequest(), testing::RequestWithHistory({})}) {
    std::vector<RecommendRequest> requests(7, base);
    requests[1].fusion_weights = {{"cnn", 0.0}};
    requests[2].fusion_weights = {{"pop", 0.5}, {"rnn", 2.0}};
    requests[3].popularity_penalty = 0.2;
    requests[4].exclude_history = true;
    requests[5].fusion_weights = {{"cnn", 0.0}, {"rnn", 0.0}};
    requests[6].mmr_lambda = 0.5;
    RankMemo memo;
    for (const RecommendRequest& request : requests) {
      RankedList plain, memoised;
      ASSERT_TRUE(Ranker::Rank(*bundle_, request, 3, &plain).ok());
      ASSERT_TRUE(Ranker::Rank(*bundle_, request, 3, &memoised, 0, nullptr, &memo).ok());
      ASSERT_EQ(Ids(memoised), Ids(plain));
      for (size_t r = 0; r < plain.items.size(); ++r) {
        EXPECT_EQ(memoised.items[r].score, plain.items[r].score);
        for (size_t s = 0; s < plain.items[r].sources.size(); ++s) {
          EXPECT_EQ(memoised.items[r].sources[s].raw_score, plain.items[r].sources[s].raw_score);
        }
      }
      EXPECT_EQ(memoised.metadata.candidates_scored, plain.metadata.candidates_scored);
      EXPECT_EQ(memoised.metadata.filtered_counts, plain.metadata.filtered_counts);
      EXPECT_EQ(memoised.metadata.backfilled, plain.metadata.backfilled);
    }
    ASSERT_TRUE(memo.cf_scores.has_value());
    // 21A..21C for the history (21D shares no customer with it); none for a new shopper.
    EXPECT_EQ(memo.cf_scores->size(), base.history.empty() ? 0u : 3u);
    EXPECT_EQ(memo.best_items.size(), 2u);  // cnn and rnn.
  }
}

TEST_F(RankerModelsTest, AMemoIsReadNotRecomputed) {
  // What the memo holds is what Rank uses: a CF score it claims for 21D (which no history
  // event links to) is 21D's CF raw score.
  RankMemo memo;
  memo.cf_scores = std::vector<std::pair<ItemIndex, double>>{{3, 0.75}};
  RankedList ranked;
  ASSERT_TRUE(
      Ranker::Rank(*bundle_, testing::TinyModelRequest(), 10, &ranked, 0, nullptr, &memo).ok());
  auto d = std::find_if(ranked.items.begin(), ranked.items.end(),
                        [](const RecommendedItem& item) { return item.item_id == "21D"; });
  ASSERT_NE(d, ranked.items.end());
  EXPECT_EQ(d->sources[0].raw_score, 0.75);

  // And each model's best items, by its name: with no CF candidate and pop at weight 0, the
  // only candidate is the one cnn's entry names (rnn's names none), so nothing is back-filled.
  RankMemo models_only;
  models_only.cf_scores.emplace();
  models_only.best_items = {{"cnn", {3}}, {"rnn", {}}};
  RankedList one;
  ASSERT_TRUE(
      Ranker::Rank(*bundle_, testing::TinyModelRequest(), 1, &one, 0, nullptr, &models_only).ok());
  EXPECT_THAT(Ids(one), ElementsAre("21D"));
  EXPECT_EQ(one.metadata.candidates_scored, 1);
  EXPECT_FALSE(one.metadata.backfilled);
}

TEST_F(RankerModelsTest, FusionWeightsNamingAnUnknownSourceAreRejected) {
  RecommendRequest request = testing::TinyModelRequest();
  request.fusion_weights = {{"rnn", 1.0}, {"x", 1.0}};
  RankedList ranked;
  absl::Status s = Ranker::Rank(*bundle_, request, 10, &ranked);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "fusion.weights[\"x\"]: unknown source; this bundle has cf, pop, cnn, rnn");
}

TEST(CategorizerTest, DescriptionsMapToCategoriesByOrderedKeywordRules) {
  EXPECT_EQ(CategoryOfDescription("WHITE HANGING HEART T-LIGHT HOLDER"), "candles & lighting");
  EXPECT_EQ(CategoryOfDescription("JUMBO BAG RED RETROSPOT"), "bags");
  EXPECT_EQ(CategoryOfDescription("LUNCH BAG RED RETROSPOT"), "bags");  // Bags before kitchen.
  EXPECT_EQ(CategoryOfDescription("REGENCY CAKESTAND 3 TIER"), "kitchen & dining");
  EXPECT_EQ(CategoryOfDescription("PACK OF 72 RETROSPOT CAKE CASES"), "kitchen & dining");
  EXPECT_EQ(CategoryOfDescription("CHRISTMAS CARD SCREEN PRINT"), "seasonal");
  EXPECT_EQ(CategoryOfDescription("HOT WATER BOTTLE TEA AND SYMPATHY"), "textiles");
  EXPECT_EQ(CategoryOfDescription("set of 3 cake tins pantry design"), "kitchen & dining");
  // Whole words only: SPRING is no RING, and a two-word keyword needs both words in order.
  EXPECT_EQ(CategoryOfDescription("SPRING"), "other");
  EXPECT_EQ(CategoryOfDescription("LIGHT T"), "candles & lighting");  // LIGHT alone.
  EXPECT_EQ(CategoryOfDescription("KEY CHAIN FOB"), "other");
  EXPECT_EQ(CategoryOfDescription(""), "other");
}

// The small real sample (real descriptions, hence real derived categories) and one of its
// customers with a long history.
struct RealData {
  std::shared_ptr<const Bundle> bundle;
  RecommendRequest request;
};

const RealData& Real() {
  static const RealData* real = [] {
    auto* r = new RealData();
    BundleBuildOptions options;
    options.input = testing::SmallRetailCsvPath();
    options.out_root = testing::MakeTempDir("real_bundle");
    options.version = "v1";
    absl::StatusOr<BundleBuildResult> built = BuildCfBundle(options);
    EXPECT_TRUE(built.ok()) << built.status();
    r->bundle = *Bundle::Load(built->dir);
    absl::StatusOr<RetailData> data = ReadRetailCsv(options.input, {});
    for (const CustomerHistory& c : data->customers) {
      if (c.purchases.size() < 30) continue;
      for (size_t i = c.purchases.size() - 30; i < c.purchases.size(); ++i) {
        r->request.history.emplace_back().item_id = data->catalog.item(c.purchases[i].item).id;
      }
      break;
    }
    return r;
  }();
  return *real;
}

// AddCfScores sums in an array on small catalogues and in the map beyond: both give, for
// every item and only for items some event links to, the sum of CfContribution over the
// events in history order, to the bit (a 30-event real history; a tiny one with repeat terms).
TEST(AddCfScoresTest, TheArrayAndTheMapBothGiveTheSumOfCfContributionsToTheBit) {
  const std::vector<std::pair<std::shared_ptr<const Bundle>, RecommendRequest>> cases = {
      {Real().bundle, Real().request},
      {testing::TinyBundle(0.5, 100, /*self_similarity=*/2.0),
       testing::RequestWithHistory({"21A", "21B", "21A"})}};
  for (const auto& [bundle, request] : cases) {
    RankedList ranked;
    ASSERT_TRUE(Ranker::Rank(*bundle, request, 10, &ranked).ok());
    absl::flat_hash_map<ItemIndex, double> in_array, in_map;
    AddCfScores(*bundle, ranked.history, &in_array);
    AddCfScores(*bundle, ranked.history, &in_map, /*dense_limit=*/0);
    EXPECT_EQ(in_array, in_map);
    size_t linked = 0;
    for (ItemIndex item = 0; item < bundle->catalog().size(); ++item) {
      double sum = 0.0;
      for (size_t t = 0; t < ranked.history.items.size(); ++t) {
        sum += CfContribution(*bundle, ranked.history, t, item);
      }
      if (sum == 0.0) continue;
      ++linked;
      ASSERT_TRUE(in_array.contains(item)) << item;
      EXPECT_EQ(in_array.at(item), sum) << item;
    }
    EXPECT_GT(linked, 0u);
    EXPECT_LE(in_array.size() - linked, 1u);  // Only exact-zero sums are not counted above.
  }
}

std::map<std::string, int> CategoryCounts(const RankedList& out) {
  std::map<std::string, int> counts;
  for (const RecommendedItem& item : out.items) ++counts[item.info.category];
  return counts;
}

TEST(RankerDiversityTest, ACategoryCapHoldsAndTheListStaysFull) {
  const RealData& real = Real();
  ASSERT_FALSE(real.request.history.empty());
  RankedList plain;
  ASSERT_TRUE(Ranker::Rank(*real.bundle, real.request, 20, &plain).ok());
  int largest = 0;
  for (const auto& [category, n] : CategoryCounts(plain)) largest = std::max(largest, n);
  ASSERT_GT(largest, 2) << "the test needs a list that the cap changes";

  RecommendRequest capped = real.request;
  capped.max_per_category = 2;
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*real.bundle, capped, 20, &out).ok());
  EXPECT_EQ(out.items.size(), 20u);
  for (const auto& [category, n] : CategoryCounts(out)) EXPECT_LE(n, 2) << category;
  // What the cap keeps, it keeps in score order.
  for (size_t i = 1; i < out.items.size(); ++i) {
    EXPECT_GE(out.items[i - 1].score, out.items[i].score);
  }
}

TEST(RankerDiversityTest, MmrSpreadsTheListOverCategoriesAndLambdaOneChangesNothing) {
  const RealData& real = Real();
  RankedList plain, one, mixed;
  RecommendRequest request = real.request;
  ASSERT_TRUE(Ranker::Rank(*real.bundle, request, 10, &plain).ok());
  request.mmr_lambda = 1.0;
  ASSERT_TRUE(Ranker::Rank(*real.bundle, request, 10, &one).ok());
  EXPECT_EQ(Ids(one), Ids(plain));
  request.mmr_lambda = 0.3;
  ASSERT_TRUE(Ranker::Rank(*real.bundle, request, 10, &mixed).ok());
  EXPECT_EQ(mixed.items.size(), 10u);
  EXPECT_GT(CategoryCounts(mixed).size(), CategoryCounts(plain).size());
  EXPECT_EQ(mixed.items[0].item_id, plain.items[0].item_id);  // The best item still leads.
}

TEST(RankerDiversityTest, CategoryAllowAndDenyListsFilterAndCount) {
  const RealData& real = Real();
  RecommendRequest request = real.request;
  request.allow_categories = {"kitchen & dining", "bags"};
  RankedList allowed;
  ASSERT_TRUE(Ranker::Rank(*real.bundle, request, 10, &allowed).ok());
  ASSERT_EQ(allowed.items.size(), 10u);
  for (const RecommendedItem& item : allowed.items) {
    EXPECT_THAT((std::set<std::string>{"kitchen & dining", "bags"}),
                ::testing::Contains(item.info.category));
  }
  EXPECT_GT(allowed.metadata.filtered_counts["category"], 0);

  request.allow_categories = {"bags", "kitchen"};  // A typo is an error, not an empty list.
  RankedList typo;
  absl::Status s = Ranker::Rank(*real.bundle, request, 10, &typo);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("filters.allow_categories[1]: unknown category \"kitchen\"; "
                                     "this bundle has bags, candles & lighting"));

  request.allow_categories.clear();
  request.deny_categories = {"kitchen & dining"};
  RankedList denied;
  ASSERT_TRUE(Ranker::Rank(*real.bundle, request, 10, &denied).ok());
  for (const RecommendedItem& item : denied.items)
    EXPECT_NE(item.info.category, "kitchen & dining");
}

TEST(RankerDiversityTest, ANarrowFilterIsBackFilledWithPopularItemsThatPassIt) {
  const RealData& real = Real();
  RecommendRequest request = testing::RequestWithHistory({real.request.history.back().item_id});
  request.allow_categories = {"garden & outdoor"};
  RankedList out;
  ASSERT_TRUE(Ranker::Rank(*real.bundle, request, 15, &out).ok());
  EXPECT_EQ(out.items.size(), 15u);
  EXPECT_TRUE(out.metadata.backfilled);
  for (const RecommendedItem& item : out.items) EXPECT_EQ(item.info.category, "garden & outdoor");
  // A campaign list is never back-filled.
  request.candidate_item_ids = {out.items[0].item_id};
  request.candidates_only = true;
  out = {};
  ASSERT_TRUE(Ranker::Rank(*real.bundle, request, 15, &out).ok());
  EXPECT_EQ(out.items.size(), 1u);
  EXPECT_FALSE(out.metadata.backfilled);
}

}  // namespace
}  // namespace recsys::core
