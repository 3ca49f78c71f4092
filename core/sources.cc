#include "core/sources.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace recsys::core {

double BaselineRaw(const Source& source, ItemIndex item) {
  return source.kind == SourceKind::kModel ? source.model->baseline_scores()[item] : 0.0;
}

namespace {

// log(1 + count), from a table for the small counts that most items have: the ranker takes it
// of every candidate (twice with a popularity penalty), and log1p was a tenth of an
// evaluation's time. The table holds std::log1p's own values, so the result is the same.
double Log1pCount(int64_t count) {
  constexpr int64_t kTabled = 4096;
  static const std::vector<double>* const table = [] {
    auto* t = new std::vector<double>(kTabled);
    for (int64_t c = 0; c < kTabled; ++c) (*t)[c] = std::log1p(static_cast<double>(c));
    return t;
  }();
  return count >= 0 && count < kTabled ? (*table)[count] : std::log1p(static_cast<double>(count));
}

}  // namespace

double PopularityPenalty(double penalty, const ItemInfo& item) {
  return penalty > 0 ? penalty * Log1pCount(item.popularity) : 0.0;
}

double PopularityScore(int64_t recent_lines) { return Log1pCount(recent_lines); }

absl::StatusOr<std::vector<Source>> ResolveSources(
    const BundleManifest& manifest, const std::vector<std::unique_ptr<ModelRunner>>& models) {
  std::vector<Source> sources;
  for (const SourceSpec& spec : manifest.sources) {
    Source& source = sources.emplace_back();
    source.spec = spec;
    if (spec.name == kCfSourceName) {
      source.kind = SourceKind::kCf;
    } else if (spec.name == kPopularitySourceName) {
      source.kind = SourceKind::kPopularity;
    } else {
      auto it = std::find_if(models.begin(), models.end(),
                             [&](const auto& m) { return m->name() == spec.name; });
      if (it == models.end()) {
        return absl::InvalidArgumentError(absl::StrCat("source \"", spec.name, "\" has no model"));
      }
      source.kind = SourceKind::kModel;
      source.model = it->get();
    }
  }
  for (const auto& model : models) {
    if (std::none_of(sources.begin(), sources.end(),
                     [&](const Source& s) { return s.model == model.get(); })) {
      return absl::InvalidArgumentError(
          absl::StrCat("model \"", model->name(), "\" has no entry in sources"));
    }
  }
  return sources;
}

EffectiveOptions ResolveOptions(const RecommendRequest& request, const BundleManifest& manifest,
                                bool new_shopper) {
  EffectiveOptions o;
  o.exclude_history = request.exclude_history.value_or(manifest.exclude_history_default);
  const DefaultOverrides* overrides = nullptr;
  if (new_shopper && !manifest.new_shoppers.empty()) {
    overrides = &manifest.new_shoppers;
  } else if (o.exclude_history) {
    overrides = &manifest.new_items;
  }
  std::optional<double> penalty;
  if (overrides != nullptr) {
    o.fusion_weights = overrides->weights;
    penalty = overrides->popularity_penalty;
  }
  o.popularity_penalty =
      request.popularity_penalty.value_or(penalty.value_or(manifest.popularity_penalty_default));
  o.fusion_weights.insert(o.fusion_weights.end(), request.fusion_weights.begin(),
                          request.fusion_weights.end());
  return o;
}

absl::StatusOr<std::vector<Source>> WithRequestWeights(
    std::vector<Source> sources, const std::vector<std::pair<std::string, double>>& weights) {
  for (const auto& [name, weight] : weights) {
    const std::string& wanted = name;  // Lambdas cannot capture structured bindings in C++17.
    auto it = std::find_if(sources.begin(), sources.end(),
                           [&](const Source& s) { return s.spec.name == wanted; });
    if (it == sources.end()) {
      std::vector<std::string> names;
      for (const Source& s : sources) names.push_back(s.spec.name);
      return absl::InvalidArgumentError(absl::StrCat("fusion.weights[\"", name,
                                                     "\"]: unknown source; this bundle has ",
                                                     absl::StrJoin(names, ", ")));
    }
    it->spec.weight = weight;
  }
  return sources;
}

}  // namespace recsys::core
