#ifndef RECSYS_CORE_BUNDLE_H_
#define RECSYS_CORE_BUNDLE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/catalog.h"
#include "core/cf_index.h"

namespace recsys::core {

// A score source and its fixed affine normalisation: normalized = slope * raw + intercept.
struct SourceSpec {
  std::string name;  // "cf", "cnn", "rnn".
  double weight = 1.0;
  double slope = 1.0;
  double intercept = 0.0;
};

struct FeatureSpec {
  std::string name;
  std::string type;  // "numeric" or "categorical".
  std::string description;
};

struct ModelSpec {
  std::string name;  // Source name.
  std::string kind;  // "cnn" or "rnn".
  std::string file;  // Relative to the bundle directory.
  int32_t embedding_dim = 0;
  int32_t max_history = 0;
};

// The parsed manifest.json of a bundle.
struct BundleManifest {
  int32_t format_version = 1;
  std::string version;
  int64_t created_unix = 0;
  std::string data_source;
  std::string items_file = "items.tsv";
  std::string cf_index_file = "cf_index.bin";
  // Weight of the i-th most recent history event in CF scoring is recency_decay^i
  // (normalised to sum to 1) for its neighbours, self_recency_decay^i for the item itself:
  // interest in similar items fades fast, re-buying habits slowly.
  double recency_decay = 0.9;
  double self_recency_decay = 0.9;
  // sim(i, i) in CF scoring: how much a past purchase of an item recommends the item itself.
  // In re-buy catalogues this is the strongest signal; 0 turns repeats off.
  double self_similarity = 0.0;
  // Purchases at or after this time were not used to build the bundle (seconds since the
  // epoch; 0: no cut-off). Evaluation checks it against its split.
  int64_t train_cutoff_unix = 0;
  bool exclude_history_default = false;
  std::vector<SourceSpec> sources;
  std::vector<FeatureSpec> event_features;
  std::vector<FeatureSpec> context_features;
  std::vector<ModelSpec> models;

  // The source named `name`, or nullptr.
  const SourceSpec* FindSource(absl::string_view name) const;
};

absl::StatusOr<BundleManifest> ParseManifest(const std::string& json_text);
std::string SerializeManifest(const BundleManifest& manifest);

// One loaded, immutable model bundle version.
//
// Thread-safe: immutable after Load; share it as std::shared_ptr<const Bundle>.
class Bundle {
 public:
  // Loads and checks the bundle in `dir` (manifest, catalogue, CF index; the CF index must
  // cover exactly the catalogue). Errors name the file.
  static absl::StatusOr<std::shared_ptr<const Bundle>> Load(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const BundleManifest& manifest() const { return manifest_; }
  const Catalog& catalog() const { return catalog_; }
  const CfIndex& cf_index() const { return cf_index_; }

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
};

// `path` itself when it holds a manifest.json; otherwise the subdirectory of `path` with the
// greatest name that holds one (versions are named so that they sort in time order).
absl::StatusOr<std::string> ResolveBundleDir(const std::string& path);

}  // namespace recsys::core

#endif  // RECSYS_CORE_BUNDLE_H_
