#include "core/interest_profile.h"

#include <cmath>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys::core {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

ItemInfo Item(const std::string& id, const std::string& category, double price) {
  ItemInfo info;
  info.id = id;
  info.category = category;
  info.price = price;
  return info;
}

// Indices: A=0, B=1, C=2, D=3, E=4, U=5 (no category).
Catalog ShopCatalog() {
  return Catalog({Item("A", "candles", 2.0), Item("B", "bags", 4.5), Item("C", "candles", 3.0),
                  Item("D", "kitchen", 8.0), Item("E", "bags", 6.0), Item("U", "", 7.0)});
}

constexpr double kUnknown = -1.0;

TEST(InterestProfileTest, HandComputedSharesItemsAndPriceBand) {
  // Events, oldest first: C (no price: 3.0), B (paid 4.0), A (no price: 2.0), A (paid 5.0).
  const Catalog catalog = ShopCatalog();
  InterestProfile p = BuildInterestProfile(catalog, {2, 1, 0, 0}, {0.1, 0.2, 0.3, 0.4},
                                           {kUnknown, 4.0, kUnknown, 5.0});
  ASSERT_EQ(p.entries.size(), 2u);
  EXPECT_EQ(p.entries[0].category, "candles");
  EXPECT_DOUBLE_EQ(p.entries[0].share, 0.1 + 0.3 + 0.4);
  // Newest first, A once although bought twice.
  EXPECT_THAT(p.entries[0].item_ids, ElementsAre("A", "C"));
  EXPECT_EQ(p.entries[1].category, "bags");
  EXPECT_DOUBLE_EQ(p.entries[1].share, 0.2);
  EXPECT_THAT(p.entries[1].item_ids, ElementsAre("B"));
  // Prices by value: 2.0 (weight 0.3), 3.0 (0.1), 4.0 (0.2), 5.0 (0.4); cumulative 0.3, 0.4,
  // 0.6, 1.0.
  EXPECT_EQ(p.price_low, 2.0);
  EXPECT_EQ(p.price_median, 4.0);
  EXPECT_EQ(p.price_high, 5.0);
}

TEST(InterestProfileTest, AQuartileOnAnExactBoundaryIsTheLowerPrice) {
  // Two events weighing 0.5 each: half the weight is at 1.0, so the median is 1.0.
  InterestProfile p = BuildInterestProfile(ShopCatalog(), {0, 2}, {0.5, 0.5}, {1.0, 9.0});
  EXPECT_EQ(p.price_low, 1.0);
  EXPECT_EQ(p.price_median, 1.0);
  EXPECT_EQ(p.price_high, 9.0);
  // 0.1 + 0.35 + 0.05 is 0.49999999999999994 in doubles: rounding must not move the median
  // to the next price.
  p = BuildInterestProfile(ShopCatalog(), {0, 1, 2, 3}, {0.1, 0.35, 0.05, 0.5},
                           {1.0, 2.0, 3.0, 4.0});
  EXPECT_EQ(p.price_median, 3.0);
}

TEST(InterestProfileTest, APriceOfZeroIsAPricePaid) {
  InterestProfile p = BuildInterestProfile(ShopCatalog(), {0, 2}, {0.5, 0.5}, {0.0, kUnknown});
  EXPECT_EQ(p.price_low, 0.0);
  EXPECT_EQ(p.price_high, 3.0);  // C's reference price.
}

TEST(InterestProfileTest, EntriesAndTheirItemsAreCappedAndTiesGoByName) {
  // Events D, A, B, C, E, A, E, U: candles A + C + A and bags B + E + E both weigh
  // 0.05 + 0.1 + 0.15 (summed in the same order, so exactly equal), kitchen 0.1, U 0.3.
  // Candles come first in the history, bags first by name.
  const Catalog catalog = ShopCatalog();
  InterestProfile p = BuildInterestProfile(
      catalog, {3, 0, 1, 2, 4, 0, 4, 5}, {0.1, 0.05, 0.05, 0.1, 0.1, 0.15, 0.15, 0.3},
      std::vector<double>(8, kUnknown), /*max_entries=*/2, /*max_items=*/1);
  ASSERT_EQ(p.entries.size(), 2u);  // kitchen is cut.
  EXPECT_EQ(p.entries[0].category, "bags");
  EXPECT_NEAR(p.entries[0].share, 0.3, 1e-15);
  EXPECT_THAT(p.entries[0].item_ids, ElementsAre("E"));  // The newest bag only.
  EXPECT_EQ(p.entries[1].category, "candles");
  EXPECT_NEAR(p.entries[1].share, 0.3, 1e-15);
  EXPECT_THAT(p.entries[1].item_ids, ElementsAre("A"));
}

TEST(InterestProfileTest, ItemsWithoutACategoryCountInThePriceBandButInNoEntry) {
  // U (7.0, no category) weighs 0.6 of the history: no entry has its weight, so the shares add
  // up to 0.4, but the price band is mostly U's.
  InterestProfile p = BuildInterestProfile(ShopCatalog(), {0, 5}, {0.4, 0.6}, {kUnknown, kUnknown});
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].category, "candles");
  EXPECT_DOUBLE_EQ(p.entries[0].share, 0.4);
  EXPECT_EQ(p.price_median, 7.0);
}

TEST(InterestProfileTest, ACatalogueWithoutCategoriesHasAPriceBandOnly) {
  const Catalog catalog({Item("A", "", 2.0), Item("B", "", 4.0)});
  InterestProfile p = BuildInterestProfile(catalog, {0, 1}, {0.25, 0.75}, {kUnknown, kUnknown});
  EXPECT_THAT(p.entries, IsEmpty());
  EXPECT_EQ(p.price_low, 2.0);
  EXPECT_EQ(p.price_median, 4.0);
  EXPECT_EQ(ProfileEntryOf(p, catalog.item(0)), -1);
}

TEST(InterestProfileTest, NoKnownEventGivesAnEmptyProfile) {
  InterestProfile p = BuildInterestProfile(ShopCatalog(), {}, {}, {});
  EXPECT_THAT(p.entries, IsEmpty());
  EXPECT_EQ(p.price_low, 0.0);
  EXPECT_EQ(p.price_median, 0.0);
  EXPECT_EQ(p.price_high, 0.0);
}

TEST(InterestProfileTest, AnItemServesTheEntryOfItsCategory) {
  const Catalog catalog = ShopCatalog();
  InterestProfile p =
      BuildInterestProfile(catalog, {1, 0, 2}, {0.2, 0.3, 0.5}, std::vector<double>(3, kUnknown));
  ASSERT_EQ(p.entries.size(), 2u);                    // candles, bags.
  EXPECT_EQ(ProfileEntryOf(p, catalog.item(4)), 1);   // E: bags.
  EXPECT_EQ(ProfileEntryOf(p, catalog.item(2)), 0);   // C: candles.
  EXPECT_EQ(ProfileEntryOf(p, catalog.item(3)), -1);  // D: kitchen, not in the history.
  EXPECT_EQ(ProfileEntryOf(p, catalog.item(5)), -1);  // U: no category.
}

}  // namespace
}  // namespace recsys::core
