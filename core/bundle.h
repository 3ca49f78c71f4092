#ifndef RECSYS_CORE_BUNDLE_H_
#define RECSYS_CORE_BUNDLE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/catalog.h"
#include "core/cf_index.h"
#include "core/manifest.h"
#include "core/model_runner.h"
#include "core/sources.h"

namespace recsys::core {

// Recent purchase lines of one country's customers.
struct CountryPopularity {
  absl::flat_hash_map<ItemIndex, int64_t> counts;  // Items with at least one line.
  std::vector<ItemIndex> items;                    // The same, most lines first.
};

// One loaded, immutable model bundle version.
//
// Thread-safe: immutable after Load; share it as std::shared_ptr<const Bundle>.
class Bundle {
 public:
  // Loads and checks the bundle in `dir` (manifest, catalogue, CF index; the CF index must
  // cover exactly the catalogue) and its models through `loader`. Errors name the file. A
  // bundle that lists models needs a loader (FAILED_PRECONDITION without one).
  static absl::StatusOr<std::shared_ptr<const Bundle>> Load(const std::string& dir,
                                                            const ModelLoader& loader = nullptr);

  const std::string& dir() const { return dir_; }
  const BundleManifest& manifest() const { return manifest_; }
  const Catalog& catalog() const { return catalog_; }
  const CfIndex& cf_index() const { return cf_index_; }
  // Every item by descending recent_popularity, then popularity, then index: the "pop"
  // source's candidates and the back-fill order.
  const std::vector<ItemIndex>& recent_popular_items() const { return recent_popular_; }
  // Recent popularity among the customers of `country` (the bundle's country_popularity file:
  // countries with enough recent data), or nullptr.
  const CountryPopularity* country_popularity(const std::string& country) const {
    auto it = country_popularity_.find(country);
    return it == country_popularity_.end() ? nullptr : &it->second;
  }
  // The models, in manifest order.
  const std::vector<std::unique_ptr<ModelRunner>>& models() const { return models_; }
  // The score sources, in manifest order, with the manifest's weights.
  const std::vector<Source>& sources() const { return sources_; }

 private:
  Bundle(std::string dir, BundleManifest manifest, Catalog catalog, CfIndex cf_index)
      : dir_(std::move(dir)),
        manifest_(std::move(manifest)),
        catalog_(std::move(catalog)),
        cf_index_(std::move(cf_index)) {}

  std::string dir_;
  BundleManifest manifest_;
  Catalog catalog_;
  CfIndex cf_index_;
  std::vector<std::unique_ptr<ModelRunner>> models_;
  std::vector<Source> sources_;
  std::vector<ItemIndex> recent_popular_;
  absl::flat_hash_map<std::string, CountryPopularity> country_popularity_;
};

// `path` itself when it holds a manifest.json; otherwise the subdirectory of `path` with the
// greatest name that holds one (versions are named so that they sort in time order).
absl::StatusOr<std::string> ResolveBundleDir(const std::string& path);

}  // namespace recsys::core

#endif  // RECSYS_CORE_BUNDLE_H_
