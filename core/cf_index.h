#ifndef RECSYS_CORE_CF_INDEX_H_
#define RECSYS_CORE_CF_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/catalog.h"
#include "core/retail_data.h"

namespace recsys::core {

struct Neighbor {
  ItemIndex item;
  float similarity;
};

struct CfBuildOptions {
  // Neighbours kept per item (the most similar ones). Default: 100.
  int neighbors_per_item = 100;
  // Shrinkage of the cosine: sim(i,j) = c_ij / (sqrt(c_i * c_j) + shrinkage), where c_ij counts
  // the customers who bought both items and c_i those who bought i. Damps similarities that
  // rest on few customers. Default: 10.
  double shrinkage = 10.0;
  // Worker threads for the build. Default: 2.
  int threads = 2;
};

// Item-to-item neighbour lists: for every item, its most similar items, most similar first.
//
// File format (little-endian), loaded with one read and checked before use:
//   char magic[8] = "RECSYSCF"; uint32 version = 1; uint32 num_items;
//   uint32 neighbors_per_item; float shrinkage; uint64 num_neighbors;
//   uint64 offsets[num_items + 1];  // item i's list is entries[offsets[i], offsets[i+1])
//   struct { int32 item; float similarity; } entries[num_neighbors];
//   uint32 crc32;  // zlib CRC-32 of every byte before it
//
// Immutable after construction; safe to share between threads.
class CfIndex {
 public:
  // Builds the index from each customer's set of bought items. Similarities use distinct
  // customers, so repeat purchases do not inflate them. `progress` gets ("similarity", items
  // done, items) at intervals.
  // REQUIRES: every index in `baskets` is in [0, num_items).
  static CfIndex Build(int32_t num_items, const std::vector<std::vector<ItemIndex>>& baskets,
                       const CfBuildOptions& options, const ProgressFn& progress = nullptr);

  static absl::StatusOr<CfIndex> Load(const std::string& path);
  // The num_items of the index at `path`, from its header alone (Load checks the rest).
  // Errors: NOT_FOUND when it cannot be opened, DATA_LOSS for a header that is not an index's.
  static absl::StatusOr<int32_t> ReadItemCount(const std::string& path);
  absl::Status Save(const std::string& path) const;

  // Neighbours of `item`, most similar first.
  // REQUIRES: 0 <= item < num_items().
  absl::Span<const Neighbor> neighbors(ItemIndex item) const {
    return absl::MakeConstSpan(entries_.data() + offsets_[item],
                               entries_.data() + offsets_[item + 1]);
  }
  // sim(from, to) if `to` is among the neighbours of `from`, else 0.
  float Similarity(ItemIndex from, ItemIndex to) const;

  int32_t num_items() const { return static_cast<int32_t>(offsets_.size()) - 1; }
  int64_t num_neighbors() const { return static_cast<int64_t>(entries_.size()); }
  int32_t neighbors_per_item() const { return neighbors_per_item_; }
  float shrinkage() const { return shrinkage_; }

 private:
  CfIndex() = default;

  std::vector<uint64_t> offsets_{0};
  std::vector<Neighbor> entries_;
  int32_t neighbors_per_item_ = 0;
  float shrinkage_ = 0.0f;
};

}  // namespace recsys::core

#endif  // RECSYS_CORE_CF_INDEX_H_
