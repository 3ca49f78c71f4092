#ifndef RECSYS_CORE_CATALOG_H_
#define RECSYS_CORE_CATALOG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys::core {

// Dense internal index of a catalogue item: 0 .. Catalog::size()-1.
using ItemIndex = int32_t;

// Reference metadata of one item, as used by rules and shown in responses.
struct ItemInfo {
  std::string id;                 // External id (Online Retail II: StockCode).
  std::string description;        // Most frequent non-empty spelling; may be empty.
  double price = 0.0;             // Reference unit price (median over purchase lines).
  std::string category;           // Empty where the data has none.
  int64_t popularity = 0;         // Purchase lines in the training data.
  int64_t recent_popularity = 0;  // Purchase lines in its last RetailReadOptions::recent_days.
};

// The item vocabulary of a bundle: external id <-> internal index, plus metadata.
//
// Immutable after construction; safe to share between threads.
class Catalog {
 public:
  // REQUIRES: ids are unique and non-empty (checked by LoadTsv, not here).
  explicit Catalog(std::vector<ItemInfo> items);

  // Reads the bundle's items.tsv: a header line, then one line per item in index order with
  // the columns id, description, price, category, popularity, recent_popularity (tab-separated;
  // tabs and newlines
  // never occur in values). Errors name the line.
  static absl::StatusOr<Catalog> LoadTsv(const std::string& path);
  absl::Status WriteTsv(const std::string& path) const;

  std::optional<ItemIndex> Find(absl::string_view id) const;
  // REQUIRES: 0 <= index < size().
  const ItemInfo& item(ItemIndex index) const { return items_[index]; }
  int32_t size() const { return static_cast<int32_t>(items_.size()); }
  // Whether any item has a category.
  bool has_categories() const { return !categories_.empty(); }
  // The distinct non-empty categories, sorted.
  const std::vector<std::string>& categories() const { return categories_; }

 private:
  std::vector<ItemInfo> items_;
  std::vector<std::string> categories_;
  absl::flat_hash_map<std::string, ItemIndex> index_;
};

}  // namespace recsys::core

#endif  // RECSYS_CORE_CATALOG_H_
