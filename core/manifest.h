#ifndef RECSYS_CORE_MANIFEST_H_
#define RECSYS_CORE_MANIFEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recsys::core {

// A score source and its fixed affine normalisation: normalized = slope * raw + intercept.
struct SourceSpec {
  std::string name;  // A source name: core/sources.h's built-in ones or a model's.
  double weight = 1.0;
  double slope = 1.0;
  double intercept = 0.0;
};

struct FeatureSpec {
  std::string name;
  std::string type;  // "numeric" or "categorical".
  std::string description;
  // Context features: the value the attribution baseline takes (the bundle builder,
  // tools/train_models.py, writes the feature's mean over the training examples); 0 when the
  // manifest has none.
  double baseline = 0.0;
};

// How the bundle builder chose the bundle's settings: NDCG@10 of each method on a validation
// window carved from the end of the training data (tools/make_bundle.py).
struct ValidationRow {
  std::string method;   // "blend", a source name alone, "recent_popular", "blend without rnn", ...
  std::string variant;  // "all" (every basket item) or "new" (items new to the shopper).
  double ndcg_at_10 = 0.0;
  int64_t cases = 0;
};

struct ValidationReport {
  int64_t start_unix = 0;  // The window [start, end); 0 when the bundle was not tuned.
  int64_t end_unix = 0;
  std::vector<ValidationRow> rows;
  // What the builder decided and why, e.g. "cnn: weight 0, below recent_popular on new items".
  std::vector<std::string> notes;
  std::string report_file;  // A readable report in the bundle directory, "" = none.
};

struct ModelSpec {
  std::string name;  // Source name.
  std::string kind;  // "cnn" or "rnn".
  std::string file;  // Relative to the bundle directory.
  int32_t embedding_dim = 0;
  int32_t max_history = 0;
};

// Request defaults the bundle builder chose for one kind of request: each listed source's fusion
// weight (replacing the source's own) and the popularity penalty. Empty: the general defaults.
struct DefaultOverrides {
  std::vector<std::pair<std::string, double>> weights;
  std::optional<double> popularity_penalty;

  bool empty() const { return weights.empty() && !popularity_penalty; }
};

// The parsed manifest.json of a bundle.
struct BundleManifest {
  int32_t format_version = 1;
  std::string version;
  int64_t created_unix = 0;
  std::string data_source;
  // How items.tsv's categories were made ("" when the data had them or has none), e.g.
  // core::kCategoryMethod.
  std::string category_method;
  std::string items_file = "items.tsv";
  std::string cf_index_file = "cf_index.bin";
  // Recent purchase lines per country and item (see Bundle::country_popularity); "" = none.
  std::string country_popularity_file;
  // The window of items.tsv's recent popularity and of country_popularity_file, in days before
  // the cut-off (or the data's end): what "recent" means for the "pop" source.
  int32_t recent_days = 28;
  // Weight of the i-th most recent history event in CF scoring is recency_decay^i
  // (normalised to sum to 1) for its neighbours, self_recency_decay^i for the item itself:
  // interest in similar items fades fast, re-buying habits slowly.
  double recency_decay = 0.9;
  double self_recency_decay = 0.9;
  // Half-life in days of a past purchase's weight in its repeat term, by its age at the
  // request's time (an event without a timestamp counts as new): self weights are proportional
  // to self_recency_decay^i * 2^(-age / self_half_life_days). 0: no decay by age.
  double self_half_life_days = 0.0;
  // sim(i, i) in CF scoring: how much a past purchase of an item recommends the item itself.
  // In re-buy catalogues this is the strongest signal; 0 turns repeats off.
  double self_similarity = 0.0;
  // Purchases at or after this time were not used to build the bundle (seconds since the
  // epoch; 0: no cut-off). Evaluation checks it against its split.
  int64_t train_cutoff_unix = 0;
  bool exclude_history_default = false;
  // ranking.popularity_penalty of a request that leaves it unset.
  double popularity_penalty_default = 0.0;
  // The defaults of a request that excludes the shopper's history (items new to the shopper),
  // where other weights rank best ("defaults.new_items").
  DefaultOverrides new_items;
  // The defaults of a new shopper's request (no history event in the catalogue: only the
  // popularity source and the models' reading of the context rank), whatever its
  // exclude_history ("defaults.new_shoppers"). Empty: those of the request's exclude_history.
  DefaultOverrides new_shoppers;
  ValidationReport validation;
  std::vector<SourceSpec> sources;
  std::vector<FeatureSpec> event_features;
  std::vector<FeatureSpec> context_features;
  std::vector<ModelSpec> models;

  // The source named `name`, or nullptr.
  const SourceSpec* FindSource(absl::string_view name) const;
};

// The attribution baseline's context, [C]: each context feature's FeatureSpec::baseline.
std::vector<float> ContextBaseline(const BundleManifest& manifest);

absl::StatusOr<BundleManifest> ParseManifest(const std::string& json_text);
std::string SerializeManifest(const BundleManifest& manifest);

}  // namespace recsys::core

#endif  // RECSYS_CORE_MANIFEST_H_
