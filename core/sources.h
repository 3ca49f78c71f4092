#ifndef RECSYS_CORE_SOURCES_H_
#define RECSYS_CORE_SOURCES_H_

// The score sources of a bundle (item-CF, recent popularity, each model) as one table, and the
// one fusion formula every part that scores, re-scores or explains an item calls. A source's
// name is matched here (and in the manifest the names come from) and nowhere else: everything
// downstream switches on SourceKind.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/catalog.h"
#include "core/manifest.h"
#include "core/model_runner.h"
#include "core/types.h"

namespace recsys::core {

// The names of the built-in sources in manifest.json; any other source is a model's.
inline constexpr char kCfSourceName[] = "cf";
inline constexpr char kPopularitySourceName[] = "pop";

enum class SourceKind {
  kCf,          // Item-to-item CF over the known history events.
  kPopularity,  // log(1 + recent purchase lines), by country for a new shopper.
  kModel,       // A sequential model's logit.
};

// One score source: what it is, its spec (the weight in effect), and its model (kModel only).
struct Source {
  SourceKind kind = SourceKind::kCf;
  SourceSpec spec;
  const ModelRunner* model = nullptr;  // Owned by the Bundle; valid while it lives.

  // A source weighing 0 adds nothing to any score; the ranker does not run its model over the
  // catalogue and the explainer does not attribute it.
  bool active() const { return spec.weight != 0.0; }
};

// The normalised score of a raw score: slope * raw + intercept.
inline double Normalize(const SourceSpec& spec, double raw) {
  return spec.slope * raw + spec.intercept;
}

// The fusion formula: a source's contribution to an item's fused score,
// weight * (slope * raw + intercept). The fused score is the sum over sources, minus the
// request's popularity penalty (PopularityPenalty).
inline double Fuse(const SourceSpec& spec, double raw) {
  return spec.weight * Normalize(spec, raw);
}

// d Fuse / d raw: how an attribution of a source's raw score scales into the fused score.
inline double FusionScale(const SourceSpec& spec) { return spec.weight * spec.slope; }

// The source's raw score of `item` for the attribution baseline (an empty history): 0 for CF
// and popularity (no history, no signal), the model's baseline_scores() for a model.
double BaselineRaw(const Source& source, ItemIndex item);

// The fused score's popularity penalty of an item: penalty * log(1 + all-time popularity), 0
// for penalty <= 0.
double PopularityPenalty(double penalty, const ItemInfo& item);

// A request's options once the bundle's defaults fill what it leaves unset. The defaults are
// the bundle's general ones, overridden by those the builder chose for the request's kind
// (where it chose any): a new shopper's (`new_shopper`: no history event in the catalogue)
// BundleManifest::new_shoppers; else, for a request that excludes the shopper's history (by
// filters.exclude_history or the bundle's default), items new to the shopper,
// BundleManifest::new_items. The request's own settings override both.
struct EffectiveOptions {
  bool exclude_history = false;
  // Applied over the sources' own weights (WithRequestWeights): the overriding defaults'
  // weights, then the request's fusion.weights.
  std::vector<std::pair<std::string, double>> fusion_weights;
  double popularity_penalty = 0.0;
};
EffectiveOptions ResolveOptions(const RecommendRequest& request, const BundleManifest& manifest,
                                bool new_shopper);

// Raw score of the popularity source from a count of recent purchase lines: log(1 + lines).
double PopularityScore(int64_t recent_lines);

// The sources of `manifest` in its order, each with its kind and, for a model, the runner of
// `models` with the same name. Errors (INVALID_ARGUMENT): a source that is neither built in nor
// a model's; a model without a source. Used by the bundle loader.
absl::StatusOr<std::vector<Source>> ResolveSources(
    const BundleManifest& manifest, const std::vector<std::unique_ptr<ModelRunner>>& models);

// `sources` with the request's fusion weights (name, weight) in effect. Errors:
// INVALID_ARGUMENT naming fusion.weights["x"] for a name that is not a source. Both functions
// are pure and thread-safe.
absl::StatusOr<std::vector<Source>> WithRequestWeights(
    std::vector<Source> sources, const std::vector<std::pair<std::string, double>>& weights);

}  // namespace recsys::core

#endif  // RECSYS_CORE_SOURCES_H_
