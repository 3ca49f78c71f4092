#include "core/evaluation.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::core {
namespace {

using ::testing::ElementsAre;

TEST(MetricsAccumulatorTest, ComputesRecallNdcgMrrAndCoverageByHand) {
  MetricsAccumulator m(/*catalog_size=*/10);
  // Case 1: targets {b, x}; b at rank 2, x never: recall 1/2, DCG 1/log2(3), IDCG 1 + 1/log2(3).
  m.Add({"a", "b", "c"}, {"b", "x"});
  // Case 2: target {a} at rank 1: everything 1.
  m.Add({"a", "d"}, {"a"});
  const RankingMetrics r = m.Result();
  EXPECT_EQ(r.cases, 2);
  EXPECT_DOUBLE_EQ(r.recall_at_10, (0.5 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(r.recall_at_20, (0.5 + 1.0) / 2);
  const double ndcg1 = (1 / std::log2(3.0)) / (1 + 1 / std::log2(3.0));
  EXPECT_DOUBLE_EQ(r.ndcg_at_10, (ndcg1 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(r.mrr_at_20, (0.5 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(r.coverage_at_10, 4.0 / 10);  // a, b, c, d.
}

TEST(MetricsAccumulatorTest, OnlyTheTopTenCountForAtTen) {
  MetricsAccumulator m(100);
  std::vector<std::string> ranked;
  for (int i = 0; i < 20; ++i) ranked.push_back("i" + std::to_string(i));
  m.Add(ranked, {"i15"});
  const RankingMetrics r = m.Result();
  EXPECT_EQ(r.recall_at_10, 0.0);
  EXPECT_EQ(r.ndcg_at_10, 0.0);
  EXPECT_EQ(r.recall_at_20, 1.0);
  EXPECT_DOUBLE_EQ(r.mrr_at_20, 1.0 / 16);
}

TEST(MakeNextBasketCasesTest, SplitsEachCustomerAtTheCutoff) {
  const std::string dir = testing::MakeTempDir("eval_cases");
  testing::WriteFile(dir + "/tiny.csv", testing::TinyRetailCsv());
  absl::StatusOr<RetailData> data = ReadRetailCsv(dir + "/tiny.csv", {});
  ASSERT_TRUE(data.ok());
  // Cut-off 2010-01-02 00:00: customer 1 bought before only; customer 2 bought on 01-02 (after)
  // but never before; customer 4 bought 21A on 01-04 and 01-05, both after. Cut at 01-04 12:00:
  // customer 4 has 21A before and the basket of 01-05 (21A again) after.
  std::vector<EvalCase> cases = MakeNextBasketCases(*data, *ParseDateTime("2010-01-04 12:00:00"),
                                                    *ParseDateTime("2010-02-01"), 200);
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_EQ(cases[0].customer_id, "4");
  ASSERT_EQ(cases[0].history.size(), 1u);
  EXPECT_EQ(cases[0].history[0].item_id, "21A");
  EXPECT_THAT(cases[0].targets, ElementsAre("21A"));
  EXPECT_TRUE(cases[0].new_targets.empty());  // A repeat purchase.
  // A window that ends before the basket holds no case.
  EXPECT_TRUE(MakeNextBasketCases(*data, *ParseDateTime("2010-01-04 12:00:00"),
                                  *ParseDateTime("2010-01-05"), 200)
                  .empty());
}

}  // namespace
}  // namespace recsys::core
