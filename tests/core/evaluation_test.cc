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

TEST(MakeNextBasketCasesTest, EveryBasketInTheWindowIsACaseWithEverythingBeforeIt) {
  const std::string dir = testing::MakeTempDir("eval_every_basket");
  // Customer 7: one basket before the cut-off (01-05), two in the window, one after it.
  testing::WriteFile(dir + "/three.csv",
                     "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,CustomerID,"
                     "Country\n"
                     "200,21A,A,1,2010-01-01 10:00:00,1.0,7,France\n"
                     "201,21B,B,1,2010-01-10 10:00:00,1.0,7,France\n"
                     "201,21A,A,1,2010-01-10 10:00:00,1.0,7,France\n"
                     "202,21C,C,1,2010-01-11 10:00:00,1.0,7,France\n"
                     "202,21B,B,1,2010-01-11 10:00:00,1.0,7,France\n"
                     "203,21D,D,1,2010-03-01 10:00:00,1.0,7,France\n");
  absl::StatusOr<RetailData> data = ReadRetailCsv(dir + "/three.csv", {});
  ASSERT_TRUE(data.ok());
  std::vector<EvalCase> cases =
      MakeNextBasketCases(*data, *ParseDateTime("2010-01-05"), *ParseDateTime("2010-02-01"), 200);
  ASSERT_EQ(cases.size(), 2u);  // Baskets 201 and 202; 203 is after the window.
  EXPECT_THAT(cases[0].targets, ElementsAre("21B", "21A"));
  EXPECT_THAT(cases[0].new_targets, ElementsAre("21B"));
  ASSERT_EQ(cases[0].history.size(), 1u);
  // The second basket's history holds the first basket of the window too.
  EXPECT_THAT(cases[1].targets, ElementsAre("21C", "21B"));
  EXPECT_THAT(cases[1].new_targets, ElementsAre("21C"));  // B was bought in basket 201.
  ASSERT_EQ(cases[1].history.size(), 3u);
  EXPECT_EQ(cases[1].history[2].timestamp, *ParseDateTime("2010-01-10 10:00:00"));
  EXPECT_TRUE(cases[1].bought.contains("21B"));
  // max_history keeps the most recent purchases.
  cases = MakeNextBasketCases(*data, *ParseDateTime("2010-01-05"), *ParseDateTime("2010-02-01"), 2);
  ASSERT_EQ(cases.size(), 2u);
  ASSERT_EQ(cases[1].history.size(), 2u);
  EXPECT_EQ(cases[1].history[0].timestamp, *ParseDateTime("2010-01-10 10:00:00"));
  EXPECT_EQ(cases[1].bought.size(), 2u);  // Everything before the basket, not only the last 2.
}

TEST(PairedBootstrapTest, ResamplesCustomersNotBaskets) {
  // Customer 0: nine baskets that the first method wins by 1; customer 1: one tie. The mean
  // difference is 0.9; resampling customers, a draw of customer 1 twice (probability 1/4) gives
  // 0 and of customer 0 twice gives 1, so the 95% interval is [0, 1]. Resampling baskets
  // would give a narrow interval around 0.9.
  std::vector<double> a(10, 1.0), b(10, 0.0);
  std::vector<int> group(10, 0);
  a[9] = 0.0;
  group[9] = 1;
  const Interval i = PairedBootstrap(a, b, group, 2);
  EXPECT_DOUBLE_EQ(i.mean, 0.9);
  EXPECT_DOUBLE_EQ(i.low, 0.0);
  EXPECT_DOUBLE_EQ(i.high, 1.0);
}

TEST(PairedBootstrapTest, AConstantDifferenceHasAPointInterval) {
  const std::vector<double> a = {0.5, 0.25, 1.0, 0.0}, b = {0.25, 0.0, 0.75, -0.25};
  const Interval i = PairedBootstrap(a, b, {0, 1, 2, 2}, 3);
  EXPECT_DOUBLE_EQ(i.mean, 0.25);
  EXPECT_DOUBLE_EQ(i.low, 0.25);
  EXPECT_DOUBLE_EQ(i.high, 0.25);
}

TEST(PairedBootstrapTest, TheIntervalCoversTheMeanOfANoisyDifference) {
  std::vector<double> a, b;
  std::vector<int> group;
  for (int g = 0; g < 200; ++g) {
    a.push_back(0.1 + 0.2 * ((g * 37) % 11) / 10.0);  // Spread 0.1 .. 0.3, mean ~0.2.
    b.push_back(0.0);
    group.push_back(g);
  }
  const Interval i = PairedBootstrap(a, b, group, 200);
  EXPECT_LT(i.low, i.mean);
  EXPECT_GT(i.high, i.mean);
  EXPECT_GT(i.low, 0.15);
  EXPECT_LT(i.high, 0.25);
}

}  // namespace
}  // namespace recsys::core
