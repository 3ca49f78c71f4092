#include "core/catalog.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace recsys::core {
namespace {

// Ids longer than a std::string keeps inline, so that a lookup through a dangling copy reads
// freed memory (which AddressSanitizer reports) rather than a stale buffer that still matches.
std::vector<ItemInfo> Items(int n) {
  std::vector<ItemInfo> items(n);
  for (int i = 0; i < n; ++i) {
    items[i].id = "ITEM-WITH-A-LONG-ID-" + std::to_string(i);
    items[i].category = i % 2 == 0 ? "even" : "";
  }
  return items;
}

void ExpectFindsEveryItem(const Catalog& catalog, int n) {
  ASSERT_EQ(catalog.size(), n);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(catalog.Find("ITEM-WITH-A-LONG-ID-" + std::to_string(i)), i);
  }
  EXPECT_FALSE(catalog.Find("ITEM-WITH-A-LONG-ID-").has_value());
  EXPECT_FALSE(catalog.Find("").has_value());
}

TEST(CatalogTest, FindsEachIdAfterCopiesAndMoves) {
  const int n = 100;
  auto original = std::make_unique<Catalog>(Items(n));
  ExpectFindsEveryItem(*original, n);
  Catalog copy = *original;
  Catalog assigned(Items(1));
  assigned = *original;
  original.reset();  // The copies' indices must not refer to the original's items.
  ExpectFindsEveryItem(copy, n);
  ExpectFindsEveryItem(assigned, n);
  Catalog moved = std::move(copy);
  ExpectFindsEveryItem(moved, n);
  Catalog move_assigned(Items(1));
  move_assigned = std::move(moved);
  ExpectFindsEveryItem(move_assigned, n);
  EXPECT_EQ(move_assigned.categories(), std::vector<std::string>{"even"});
}

}  // namespace
}  // namespace recsys::core
