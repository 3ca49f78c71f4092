#include "explain/explainer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace recsys::explain {

using core::Attribution;
using core::FeatureKind;

namespace {

const char* Verb(core::EventType type) {
  switch (type) {
    case core::EventType::kView:
      return "viewed";
    case core::EventType::kAddToCart:
      return "added to your basket";
    default:
      return "bought";
  }
}

// The spec, with the weight in effect, of a source of the ranked list.
const core::SourceSpec& SpecOf(const core::RankedList& ranked, const std::string& name) {
  return *std::find_if(ranked.sources.begin(), ranked.sources.end(),
                       [&](const core::SourceSpec& s) { return s.name == name; });
}

bool LargerMagnitude(const Attribution& a, const Attribution& b) {
  const double ma = std::fabs(a.attribution), mb = std::fabs(b.attribution);
  return ma != mb ? ma > mb : a.history_index < b.history_index;
}

std::string Reason(const core::RecommendRequest& request, const std::string& item_id,
                   const std::vector<Attribution>& sorted) {
  for (const Attribution& a : sorted) {
    if (a.attribution <= 0) break;  // Only a positive reason is a reason.
    if (a.kind == FeatureKind::kHistoryEvent) {
      const char* verb = Verb(request.history[a.history_index].event_type);
      if (a.item_id == item_id) return absl::StrCat("you ", verb, " it before");
      const std::string& name = a.display_value.empty() ? a.item_id : a.display_value;
      return absl::StrCat("because you ", verb, " ", name);
    }
    if (a.feature == "recent_popularity") return "popular right now";
  }
  return "";
}

}  // namespace

std::vector<Attribution> CfAttributions(const core::Bundle& bundle,
                                        const core::RecommendRequest& request,
                                        const core::ResolvedHistory& history,
                                        core::ItemIndex item) {
  std::vector<Attribution> out;
  out.reserve(history.items.size());
  for (size_t t = 0; t < history.items.size(); ++t) {
    const core::ItemInfo& info = bundle.catalog().item(history.items[t]);
    Attribution a;
    a.feature = "history_item";
    a.kind = FeatureKind::kHistoryEvent;
    a.history_index = history.positions[t];
    a.item_id = info.id;
    a.display_value = info.description;
    a.attribution = core::CfContribution(bundle, history, t, item);
    out.push_back(std::move(a));
  }
  return out;
}

void ExplainItems(const core::Bundle& bundle, const core::RecommendRequest& request,
                  const ExplainSettings& settings, core::RankedList* ranked) {
  if (settings.method == core::AttributionMethod::kNone) return;
  for (core::RecommendedItem& item : ranked->items) {
    std::vector<Attribution> fused;
    for (core::SourceScore& source : item.sources) {
      if (source.source != "cf") continue;  // The only source so far.
      std::vector<Attribution> own = CfAttributions(bundle, request, ranked->history, item.index);
      double sum = 0.0;
      for (const Attribution& a : own) sum += a.attribution;
      source.completeness_error = sum - source.raw_score;
      const core::SourceSpec& spec = SpecOf(*ranked, source.source);
      const double scale = spec.weight * spec.slope;
      for (const Attribution& a : own) {
        fused.push_back(a);
        fused.back().attribution = scale * a.attribution;
      }
      if (settings.include_source_attributions) {
        std::sort(own.begin(), own.end(), LargerMagnitude);
        if (own.size() > static_cast<size_t>(settings.max_attributions)) {
          own.resize(settings.max_attributions);
        }
        source.attributions = std::move(own);
      }
    }
    for (core::SourceScore& source : item.sources) {
      if (source.source != "pop") continue;
      Attribution a;
      a.feature = "recent_popularity";
      a.kind = FeatureKind::kPrior;
      a.display_value = absl::StrCat(item.info.recent_popularity, " recent purchases");
      a.attribution = source.raw_score;  // Exact: the baseline (no signal) scores 0.
      if (settings.include_source_attributions) source.attributions = {a};
      a.attribution *= source.weight * SpecOf(*ranked, source.source).slope;
      fused.push_back(std::move(a));
    }
    if (request.popularity_penalty > 0) {
      Attribution prior;
      prior.feature = "popularity";
      prior.kind = FeatureKind::kPrior;
      prior.display_value = absl::StrCat(item.info.popularity, " purchases");
      prior.attribution = -request.popularity_penalty * std::log1p(item.info.popularity);
      fused.push_back(std::move(prior));
    }
    double total = 0.0;
    for (const Attribution& a : fused) total += a.attribution;
    item.completeness_error = total - (item.score - item.baseline_score);
    // Zero entries (history events unrelated to this item) explain nothing.
    fused.erase(std::remove_if(fused.begin(), fused.end(),
                               [](const Attribution& a) { return a.attribution == 0.0; }),
                fused.end());
    std::sort(fused.begin(), fused.end(), LargerMagnitude);
    item.reason = Reason(request, item.item_id, fused);
    if (fused.size() > static_cast<size_t>(settings.max_attributions)) {
      fused.resize(settings.max_attributions);
    }
    item.attributions = std::move(fused);
  }
}

}  // namespace recsys::explain
