#ifndef RECSYS_CORE_BUNDLE_BUILDER_H_
#define RECSYS_CORE_BUNDLE_BUILDER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/cf_index.h"
#include "core/retail_data.h"

namespace recsys::core {

struct BundleBuildOptions {
  // CSV in the Online Retail II layout, plain or gzip. Required.
  std::string input;
  // Directory that receives the version directory. Required.
  std::string out_root;
  // Name of the version directory; must sort after earlier versions. Required.
  std::string version;
  // Train only on purchases strictly before this time. Default: all.
  int64_t cutoff_time = INT64_MAX;
  CfBuildOptions cf;
  // See BundleManifest. Defaults: the settings tools/evaluate.sh chose on the validation month
  // of Online Retail II (docs/evaluation.md).
  double recency_decay = 0.8;
  double self_recency_decay = 1.0;
  double self_half_life_days = 0.0;
  double self_similarity = 64.0;
  // Fusion weight of the "pop" source (log(1 + recent purchase lines)). Default: 0 (off).
  double popularity_weight = 0.0;
  // The recent window of the "pop" source and the new shoppers' per-country counts, in days
  // before the cut-off (RetailReadOptions::recent_days). REQUIRES: >= 1. Default: 28.
  int recent_days = 28;
  // Default of the request option filters.exclude_history. Default: false, because in this
  // re-buy catalogue a customer's own items are among the best predictions.
  bool exclude_history_default = false;
  // Countries with fewer recent purchase lines than this get no popularity list of their own
  // (new shoppers from there see the global one). Default: 100.
  int64_t min_country_recent_lines = 100;
  // Creation time written to the manifest (seconds since the epoch).
  int64_t created_unix = 0;
};

struct BundleBuildResult {
  std::string dir;  // The finished version directory.
  RetailFilterStats stats;
  int32_t items = 0;
  int32_t customers = 0;
  int64_t neighbors = 0;
};

// Builds an item-CF bundle version (manifest.json, items.tsv, cf_index.bin) from purchase data.
// Writes into "<out_root>/.tmp-<version>" and renames it into place when complete, so that a
// reader of out_root never sees a half-written version. An existing version is an error.
absl::StatusOr<BundleBuildResult> BuildCfBundle(const BundleBuildOptions& options,
                                                const ProgressFn& progress = nullptr);

}  // namespace recsys::core

#endif  // RECSYS_CORE_BUNDLE_BUILDER_H_
