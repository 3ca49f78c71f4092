#include "core/retail_data.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SplitCsvLineTest, HandlesQuotesAndDoubledQuotes) {
  std::vector<std::string> f;
  ASSERT_TRUE(SplitCsvLine(R"(1,"a, b","say ""hi""",,x)", &f));
  EXPECT_THAT(f, ElementsAre("1", "a, b", "say \"hi\"", "", "x"));
  EXPECT_FALSE(SplitCsvLine(R"(1,"open)", &f));
}

TEST(ParseDateTimeTest, ParsesDatesAndTimesAsUtc) {
  EXPECT_EQ(*ParseDateTime("1970-01-01"), 0);
  EXPECT_EQ(*ParseDateTime("2010-12-01 08:26:00"), 1291191960);
  EXPECT_EQ(*ParseDateTime("2000-03-01"), 951868800);  // After a leap day.
  EXPECT_FALSE(ParseDateTime("2010-13-01").ok());
  EXPECT_FALSE(ParseDateTime("01/12/2010 08:26").ok());
}

TEST(ReadRetailCsvTest, AppliesTheFilterAndCountsWhatItDrops) {
  const std::string dir = testing::MakeTempDir("retail_read");
  testing::WriteFile(dir + "/tiny.csv", testing::TinyRetailCsv());
  RetailReadOptions options;
  options.cutoff_time = *ParseDateTime("2010-02-01");
  absl::StatusOr<RetailData> data = ReadRetailCsv(dir + "/tiny.csv", options);
  ASSERT_TRUE(data.ok()) << data.status();

  EXPECT_EQ(data->stats.rows, 15);
  EXPECT_EQ(data->stats.kept, 10);
  EXPECT_EQ(data->stats.not_an_invoice, 1);
  EXPECT_EQ(data->stats.no_customer, 1);
  EXPECT_EQ(data->stats.non_positive, 1);
  EXPECT_EQ(data->stats.non_product, 1);
  EXPECT_EQ(data->stats.after_cutoff, 1);

  // Items in order of first purchase; metadata from the kept lines.
  ASSERT_EQ(data->catalog.size(), 4);
  EXPECT_EQ(data->catalog.item(0).id, "21A");
  EXPECT_EQ(data->catalog.item(3).id, "21D");
  EXPECT_EQ(data->catalog.item(0).popularity, 4);
  EXPECT_DOUBLE_EQ(data->catalog.item(0).price, 1.0);  // Median of 1.0, 1.5, 1.0, 1.0.
  // The most frequent spelling wins over the quoted one.
  EXPECT_EQ(data->catalog.item(1).description, "ITEM B");

  ASSERT_EQ(data->customers.size(), 5u);
  EXPECT_EQ(data->customers[3].customer_id, "4");
  EXPECT_EQ(data->customers[3].purchases.size(), 2u);
  EXPECT_EQ(data->customers[1].country, "France");
}

TEST(ReadRetailCsvTest, RejectsAFileWithoutTheHeaderOrWithBadRows) {
  const std::string dir = testing::MakeTempDir("retail_bad");
  testing::WriteFile(dir + "/no_header.csv", "a,b,c\n");
  EXPECT_THAT(ReadRetailCsv(dir + "/no_header.csv", {}).status().message(),
              HasSubstr("Online Retail II header"));
  testing::WriteFile(dir + "/bad_qty.csv",
                     "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,CustomerID,Country\n"
                     "1,A,x,many,2010-01-01 10:00:00,1.0,1,UK\n");
  EXPECT_THAT(ReadRetailCsv(dir + "/bad_qty.csv", {}).status().message(),
              HasSubstr("bad_qty.csv:2: bad Quantity 'many'"));
  EXPECT_EQ(ReadRetailCsv(dir + "/missing.csv", {}).status().code(), absl::StatusCode::kNotFound);
}

TEST(ReadRetailCsvTest, ReadsTheVendoredGzipSample) {
  absl::StatusOr<RetailData> data = ReadRetailCsv(testing::SmallRetailCsvPath(), {});
  ASSERT_TRUE(data.ok()) << data.status();
  // The counts the data's README publishes for the small file after the filter.
  EXPECT_EQ(data->stats.kept, 53640);
  EXPECT_EQ(data->customers.size(), 489u);
  EXPECT_EQ(data->catalog.size(), 3755);
}

}  // namespace
}  // namespace recsys::core
