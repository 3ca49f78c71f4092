#include "explain/explainer.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "explain/perturbation.h"

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

// The HISTORY_EVENT entry of known event t, without its attribution.
Attribution HistoryEvent(const core::Bundle& bundle, const core::ResolvedHistory& history,
                         size_t t) {
  const core::ItemInfo& info = bundle.catalog().item(history.items[t]);
  Attribution a;
  a.feature = "history_item";
  a.kind = FeatureKind::kHistoryEvent;
  a.history_index = history.positions[t];
  a.item_id = info.id;
  a.display_value = info.description;
  return a;
}

bool LargerMagnitude(const Attribution& a, const Attribution& b) {
  const double ma = std::fabs(a.attribution), mb = std::fabs(b.attribution);
  return ma != mb ? ma > mb : a.history_index < b.history_index;
}

// `country`: the country whose popularity the "pop" source read, or "".
std::string Reason(const core::RecommendRequest& request, const std::string& item_id,
                   const std::string& country, const std::vector<Attribution>& sorted) {
  for (const Attribution& a : sorted) {
    if (a.attribution <= 0) continue;  // Only a positive reason is a reason.
    if (a.kind == FeatureKind::kHistoryEvent) {
      const char* verb = Verb(request.history[a.history_index].event_type);
      if (a.item_id == item_id) return absl::StrCat("you ", verb, " it before");
      const std::string& name = a.display_value.empty() ? a.item_id : a.display_value;
      return absl::StrCat("because you ", verb, " ", name);
    }
    if (a.feature == "recent_popularity") {
      return country.empty() ? "popular right now"
                             : absl::StrCat("popular in ", country, " right now");
    }
  }
  return "";
}

}  // namespace

std::vector<Attribution> CfAttributions(const core::Bundle& bundle,
                                        const core::ResolvedHistory& history,
                                        core::ItemIndex item) {
  std::vector<Attribution> out;
  out.reserve(history.items.size());
  for (size_t t = 0; t < history.items.size(); ++t) {
    Attribution a = HistoryEvent(bundle, history, t);
    a.attribution = core::CfContribution(bundle, history, t, item);
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<std::pair<double, double>> GaussLegendre(int n) {
  std::vector<std::pair<double, double>> nodes;
  for (int i = 0; i < n; ++i) {
    // Newton's method on the Legendre polynomial P_n from the Chebyshev guess.
    double x = std::cos(3.14159265358979323846 * (i + 0.75) / (n + 0.5));
    double dp = 1.0;
    for (int iter = 0; iter < 100; ++iter) {
      double p0 = 1.0, p1 = x;
      for (int k = 2; k <= n; ++k) {
        const double p2 = ((2.0 * k - 1) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      if (n == 1) p0 = 1.0;
      dp = n * (x * p1 - p0) / (x * x - 1.0);
      const double dx = p1 / dp;
      x -= dx;
      if (std::fabs(dx) < 1e-15) break;
    }
    const double w = 2.0 / ((1.0 - x * x) * dp * dp);
    nodes.emplace_back((x + 1.0) / 2.0, w / 2.0);  // Mapped from [-1, 1] to [0, 1].
  }
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

// A model's attributions of one item from its Integrated Gradients path, as entries.
static std::vector<Attribution> ModelAttributions(const core::Bundle& bundle,
                                           const core::ResolvedHistory& history,
                                           const core::ModelInput& input,
                                           const core::ModelShape& shape,
                                           const core::PathAttribution& path) {
  const core::BundleManifest& manifest = bundle.manifest();
  const int L = shape.max_history, E = shape.num_event_features;
  const int n = static_cast<int>(history.items.size());
  std::vector<Attribution> out;
  for (int p = 0; p < L; ++p) {
    if (input.mask[p] == 0.0f) continue;
    const int known = n - (L - p);  // The featurizer's left padding, undone.
    Attribution a = HistoryEvent(bundle, history, known);
    a.attribution = path.event[p];
    out.push_back(a);
    for (int e = 0; e < E; ++e) {
      a.feature = manifest.event_features[e].name;
      a.kind = FeatureKind::kEventFeature;
      a.display_value = absl::StrFormat("%.3g", input.event_features[p * E + e]);
      a.attribution = path.event_feature[p * E + e];
      out.push_back(a);
    }
  }
  for (size_t c = 0; c < path.context.size(); ++c) {
    Attribution a;
    a.feature = manifest.context_features[c].name;
    a.kind = FeatureKind::kContext;
    a.display_value = absl::StrFormat("%.3g", input.context[c]);
    a.attribution = path.context[c];
    out.push_back(std::move(a));
  }
  return out;
}

// Adds `a` scaled by `scale` to `fused`, merged with the entry of the same feature, kind and
// history position (the sources' attributions of one event add up).
static void AddScaled(const Attribution& a, double scale, std::vector<Attribution>* fused) {
  for (Attribution& f : *fused) {
    if (f.kind == a.kind && f.history_index == a.history_index && f.feature == a.feature) {
      f.attribution += scale * a.attribution;
      return;
    }
  }
  fused->push_back(a);
  fused->back().attribution = scale * a.attribution;
}

std::string ExplainItems(const core::Bundle& bundle, const core::RecommendRequest& request,
                         const ExplainSettings& settings, core::RankedList* ranked) {
  using core::AttributionMethod;
  if (settings.method == AttributionMethod::kNone) return "";
  std::string note;
  auto add_note = [&note](const std::string& text) {
    absl::StrAppend(&note, note.empty() ? "" : "; ", text);
  };

  // Gradient methods: per model, every returned item in one batched pass. A model that weighs 0
  // contributes nothing and is skipped.
  std::vector<std::vector<core::PathAttribution>> paths(bundle.models().size());
  if (settings.method == AttributionMethod::kIntegratedGradients ||
      settings.method == AttributionMethod::kGradientXInput) {
    std::vector<core::ItemIndex> targets;
    for (const core::RecommendedItem& item : ranked->items) targets.push_back(item.index);
    // Gradient x input is the one-step path evaluated at the input itself.
    std::vector<double> alphas = {1.0}, weights = {1.0};
    if (settings.method == AttributionMethod::kIntegratedGradients) {
      alphas.clear();
      weights.clear();
      for (const auto& [alpha, weight] : GaussLegendre(settings.steps)) {
        alphas.push_back(alpha);
        weights.push_back(weight);
      }
    }
    for (size_t m = 0; m < bundle.models().size(); ++m) {
      const core::ModelRunner& model = *bundle.models()[m];
      if (SpecOf(*ranked, model.name()).weight == 0.0) continue;
      if (absl::Status s = model.IntegratedGradients(ranked->model_inputs[m], targets, alphas,
                                                     weights, &paths[m]);
          !s.ok()) {
        paths[m].clear();
        add_note(absl::StrCat(model.name(), " could not be attributed: ", s.message()));
      }
    }
  }

  // Perturbation methods: the fused score at once, for every item in one batch of coalitions.
  PlayerAttributions players_phi;
  std::optional<CoalitionScorer> scorer;
  if (settings.method == AttributionMethod::kOcclusion ||
      settings.method == AttributionMethod::kKernelShap) {
    scorer.emplace(bundle, request, *ranked);
    int evaluated = 0;
    absl::Status s = settings.method == AttributionMethod::kOcclusion
                         ? Occlusion(*scorer, &players_phi)
                         : KernelShap(*scorer, settings.samples, settings.seed, &players_phi,
                                      &evaluated);
    if (!s.ok()) {
      players_phi.clear();
      add_note(absl::StrCat("the perturbation method failed, exact sources only: ", s.message()));
    }
  }
  const bool by_players = !players_phi.empty();

  for (size_t k = 0; k < ranked->items.size(); ++k) {
    core::RecommendedItem& item = ranked->items[k];
    std::vector<Attribution> fused;
    for (core::SourceScore& source : item.sources) {
      const core::SourceSpec& spec = SpecOf(*ranked, source.source);
      const double scale = spec.weight * spec.slope;
      std::vector<Attribution> own;
      bool attributed = true;
      if (source.source == "cf") {
        own = CfAttributions(bundle, ranked->history, item.index);
        double sum = 0.0;
        for (const Attribution& a : own) sum += a.attribution;
        source.completeness_error = sum - source.raw_score;
      } else if (source.source == "pop") {
        Attribution a;
        a.feature = "recent_popularity";
        a.kind = FeatureKind::kPrior;
        if (ranked->popularity_country.empty()) {
          a.display_value = absl::StrCat(item.info.recent_popularity, " recent purchases");
        } else {
          const auto& counts = bundle.country_popularity(ranked->popularity_country)->counts;
          auto it = counts.find(item.index);
          a.display_value = absl::StrCat(it == counts.end() ? 0 : it->second,
                                         " recent purchases in ", ranked->popularity_country);
        }
        a.attribution = source.raw_score;  // Exact: the baseline (no signal) scores 0.
        own.push_back(std::move(a));
      } else {
        for (size_t m = 0; m < bundle.models().size(); ++m) {
          if (bundle.models()[m]->name() != source.source) continue;
          const double baseline_raw = bundle.models()[m]->baseline_scores()[item.index];
          if (paths[m].empty()) {
            attributed = false;
            source.completeness_error = -(source.raw_score - baseline_raw);
            continue;
          }
          const core::PathAttribution& path = paths[m][k];
          own = ModelAttributions(bundle, ranked->history, ranked->model_inputs[m],
                                  bundle.models()[m]->shape(), path);
          double sum = 0.0;
          for (const Attribution& a : own) sum += a.attribution;
          source.completeness_error = sum - (source.raw_score - path.baseline);
          // The path starts from the baseline under the request's mask; the ranker's baseline
          // (an empty history) is the same for models whose padding embeds to 0, as trained
          // ones do. Use the path's, so that the fused attributions add up exactly.
          item.baseline_score += scale * (path.baseline - baseline_raw);
        }
      }
      // The players explain every source but "pop", which no player changes.
      if (!by_players || source.source == "pop") {
        for (const Attribution& a : own) AddScaled(a, scale, &fused);
      }
      if (settings.include_source_attributions && attributed) {
        own.erase(std::remove_if(own.begin(), own.end(),
                                 [](const Attribution& a) { return a.attribution == 0.0; }),
                  own.end());
        std::sort(own.begin(), own.end(), LargerMagnitude);
        if (own.size() > static_cast<size_t>(settings.max_attributions)) {
          own.resize(settings.max_attributions);
        }
        source.attributions = std::move(own);
      }
    }
    if (by_players) {
      const Players& players = scorer->players();
      for (size_t p = 0; p < players.events.size(); ++p) {
        Attribution a = HistoryEvent(bundle, ranked->history, players.events[p]);
        a.attribution = players_phi[k][p];
        fused.push_back(std::move(a));
      }
      for (size_t c = 0; c < players.context.size(); ++c) {
        const int feature = players.context[c];
        Attribution a;
        a.feature = bundle.manifest().context_features[feature].name;
        a.kind = FeatureKind::kContext;
        a.display_value =
            absl::StrFormat("%.3g", ranked->model_inputs.front().context[feature]);
        a.attribution = players_phi[k][players.events.size() + c];
        fused.push_back(std::move(a));
      }
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
    item.reason = Reason(request, item.item_id, ranked->popularity_country, fused);
    if (fused.size() > static_cast<size_t>(settings.max_attributions)) {
      fused.resize(settings.max_attributions);
    }
    item.attributions = std::move(fused);
  }
  return note;
}

}  // namespace recsys::explain
