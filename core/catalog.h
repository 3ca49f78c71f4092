#ifndef RECSYS_CORE_CATALOG_H_
#define RECSYS_CORE_CATALOG_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
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
// Immutable after construction; safe to share between threads. A moved-from Catalog may only be
// assigned to or destroyed.
class Catalog {
 public:
  // REQUIRES: ids are unique and non-empty (checked by LoadTsv, not here).
  explicit Catalog(std::vector<ItemInfo> items);
  Catalog(const Catalog& other) : Catalog(*other.items_) {}
  Catalog& operator=(const Catalog& other) { return *this = Catalog(other); }
  Catalog(Catalog&&) = default;
  Catalog& operator=(Catalog&&) = default;

  // Reads the bundle's items.tsv: a header line, then one line per item in index order with
  // the columns id, description, price, category, popularity, recent_popularity (tab-separated;
  // tabs and newlines
  // never occur in values). Errors name the line.
  static absl::StatusOr<Catalog> LoadTsv(const std::string& path);
  // The number of item lines of an items.tsv, without parsing them (LoadTsv checks them): so
  // that a bundle can check that its parts agree before it loads the large ones. Errors: those
  // of LoadTsv for the file and its header.
  static absl::StatusOr<int32_t> CountTsvItems(const std::string& path);
  absl::Status WriteTsv(const std::string& path) const;

  std::optional<ItemIndex> Find(absl::string_view id) const;
  // REQUIRES: 0 <= index < size().
  const ItemInfo& item(ItemIndex index) const { return (*items_)[index]; }
  int32_t size() const { return static_cast<int32_t>(items_->size()); }
  // Whether any item has a category.
  bool has_categories() const { return !categories_.empty(); }
  // The distinct non-empty categories, sorted.
  const std::vector<std::string>& categories() const { return categories_; }

 private:
  // The index holds item indices and hashes and compares them by their items' ids, so that
  // each id is stored once (a map keyed by copies of the ids held each twice). Lookups by id are
  // heterogeneous.
  struct IdHash {
    using is_transparent = void;
    size_t operator()(absl::string_view id) const { return absl::Hash<absl::string_view>()(id); }
    size_t operator()(ItemIndex i) const { return (*this)((*items)[i].id); }
    const std::vector<ItemInfo>* items;
  };
  struct IdEq {
    using is_transparent = void;
    absl::string_view Id(absl::string_view id) const { return id; }
    absl::string_view Id(ItemIndex i) const { return (*items)[i].id; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const { return Id(a) == Id(b); }
    const std::vector<ItemInfo>* items;
  };

  // On the heap, so that the index's pointer to it survives a move of the Catalog.
  std::unique_ptr<const std::vector<ItemInfo>> items_;
  std::vector<std::string> categories_;
  absl::flat_hash_set<ItemIndex, IdHash, IdEq> index_;
};

}  // namespace recsys::core

#endif  // RECSYS_CORE_CATALOG_H_
