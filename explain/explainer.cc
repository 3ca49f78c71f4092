#include "explain/explainer.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/featurizer.h"
#include "explain/integrated_gradients.h"
#include "explain/perturbation.h"
#include "explain/replay.h"

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

// The HISTORY_EVENT entry of known event t, without its attribution and still undescribed
// (no item id or description: Describe adds them to the entries that are returned).
Attribution HistoryEvent(const core::ResolvedHistory& history, size_t t) {
  Attribution a;
  a.feature = "history_item";
  a.kind = FeatureKind::kHistoryEvent;
  a.history_index = history.positions[t];
  return a;
}

// Gives each entry of one history event (HISTORY_EVENT, or a per-event EVENT_FEATURE) its
// item id, and each HISTORY_EVENT entry the item's description.
void Describe(const core::Bundle& bundle, const core::ResolvedHistory& history,
              std::vector<Attribution>* entries) {
  for (Attribution& a : *entries) {
    if (a.history_index < 0 || !a.item_id.empty()) continue;
    auto t = std::find(history.positions.begin(), history.positions.end(), a.history_index);
    if (t == history.positions.end()) continue;
    const core::ItemInfo& info =
        bundle.catalog().item(history.items[t - history.positions.begin()]);
    a.item_id = info.id;
    if (a.kind == FeatureKind::kHistoryEvent) a.display_value = info.description;
  }
}

// CfAttributions, undescribed.
std::vector<Attribution> CfEntries(const core::Bundle& bundle, const core::ResolvedHistory& history,
                                   core::ItemIndex item) {
  std::vector<Attribution> out;
  out.reserve(history.items.size());
  for (size_t t = 0; t < history.items.size(); ++t) {
    Attribution a = HistoryEvent(history, t);
    a.attribution = core::CfContribution(bundle, history, t, item);
    out.push_back(std::move(a));
  }
  return out;
}

// Larger |attribution| first; ties by history position, kind and feature name, so that the
// entries kept and their order do not depend on how they were gathered.
bool LargerMagnitude(const Attribution& a, const Attribution& b) {
  const double ma = std::fabs(a.attribution), mb = std::fabs(b.attribution);
  if (ma != mb) return ma > mb;
  if (a.history_index != b.history_index) return a.history_index < b.history_index;
  if (a.kind != b.kind) return a.kind < b.kind;
  return a.feature < b.feature;
}

// The reason a context group or a side-feature kind gives, from its name and shown value; ""
// for one no sentence is written for.
std::string FeatureReason(const Attribution& a) {
  if (a.kind == FeatureKind::kContext) {
    if (a.feature == "hour") return absl::StrCat("often bought around ", a.display_value);  // UTC
    if (a.feature == "dow") return absl::StrCat("often bought on ", a.display_value, "s");
    if (a.feature == "country") {  // "other" is not a place a shopper would recognise.
      return a.display_value == "other"
                 ? ""
                 : absl::StrCat("popular with shoppers in ", a.display_value);
    }
    if (a.feature == "log_recency_days") return "suits the time since your last purchase";
    return "";
  }
  if (a.feature == "log_quantity") return "suits the quantities you buy";
  if (a.feature == "log_price") return "suits the prices you pay";
  if (a.feature == "log_gap_days") return "suits how often you shop";
  return "";
}

// Whether `a` can be a reason: a positive history event, popularity, context group or
// side-feature kind (not the penalty, nor a per-event side-feature of a gradient method).
bool Citable(const Attribution& a) {
  if (a.attribution <= 0) return false;
  switch (a.kind) {
    case FeatureKind::kHistoryEvent:
      return true;
    case FeatureKind::kPrior:
      return a.feature == "recent_popularity";
    case FeatureKind::kContext:
      return !FeatureReason(a).empty();
    case FeatureKind::kEventFeature:
      return a.history_index < 0 && !FeatureReason(a).empty();
    default:
      return false;
  }
}

// Sets item.reason, reason_kind and reason_share from the largest citable entry of `returned`
// (the item's attributions as returned, largest first, so the reason cites one the caller sees),
// unless its share of score - baseline_score is below `min_share` (> 0); the item then has no
// reason, since any later candidate is smaller still. `country`: the country whose popularity
// the popularity source read, or "".
void SetReason(const core::RecommendRequest& request, const std::string& country, double min_share,
               const std::vector<Attribution>& returned, core::RecommendedItem* item) {
  auto cited = std::find_if(returned.begin(), returned.end(), Citable);
  if (cited == returned.end()) return;
  const double explained = item->score - item->baseline_score;
  const double share = explained != 0.0 ? cited->attribution / explained : 0.0;
  if (min_share > 0.0 && share < min_share) return;
  if (cited->kind == FeatureKind::kHistoryEvent) {
    const char* verb = Verb(request.history[cited->history_index].event_type);
    if (cited->item_id == item->item_id) {
      const core::EventType type = request.history[cited->history_index].event_type;
      item->reason = type == core::EventType::kAddToCart ? "you added it to your basket before"
                                                         : absl::StrCat("you ", verb, " it before");
      item->reason_kind =
          type == core::EventType::kPurchase || type == core::EventType::kUnspecified
              ? "repeat_purchase"
              : "history_event";
    } else {
      const std::string& name =
          cited->display_value.empty() ? cited->item_id : cited->display_value;
      item->reason = absl::StrCat("because you ", verb, " ", name);
      item->reason_kind = "history_event";
    }
  } else if (cited->kind == FeatureKind::kPrior) {
    item->reason =
        country.empty() ? "popular right now" : absl::StrCat("popular in ", country, " right now");
    item->reason_kind = "popularity";
  } else {
    item->reason = FeatureReason(*cited);
    item->reason_kind = cited->kind == FeatureKind::kContext ? "context" : "side_feature";
  }
  item->reason_share = share;
}

}  // namespace

std::vector<Attribution> CfAttributions(const core::Bundle& bundle,
                                        const core::ResolvedHistory& history,
                                        core::ItemIndex item) {
  std::vector<Attribution> out = CfEntries(bundle, history, item);
  Describe(bundle, history, &out);
  return out;
}

namespace {

// A model's attributions of one item from its Integrated Gradients path, as entries.
std::vector<Attribution> ModelAttributions(const core::Bundle& bundle,
                                           const core::ResolvedHistory& history,
                                           const core::ModelInput& input,
                                           const core::ModelShape& shape,
                                           const PathAttribution& path) {
  const core::BundleManifest& manifest = bundle.manifest();
  const int L = shape.max_history, E = shape.num_event_features;
  const int n = static_cast<int>(history.items.size());
  std::vector<Attribution> out;
  for (int p = 0; p < L; ++p) {
    const int known = core::KnownEventAt(p, n, L);
    if (known < 0) continue;
    Attribution a = HistoryEvent(history, known);
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

// A model's attributions of one item from its replay, as entries: one per known event the model
// sees, one per side-feature kind (history_index -1) and one per context group.
std::vector<Attribution> ReplayEntries(const core::Bundle& bundle,
                                       const core::ResolvedHistory& history,
                                       const core::ModelInput& input,
                                       const std::vector<core::ContextGroup>& groups,
                                       const ReplayAttribution& replay) {
  const core::BundleManifest& manifest = bundle.manifest();
  const int L = static_cast<int>(replay.event.size());
  const int n = static_cast<int>(history.items.size());
  std::vector<Attribution> out;
  int seen = 0;
  for (int p = 0; p < L; ++p) {
    const int known = core::KnownEventAt(p, n, L);
    if (known < 0) continue;
    ++seen;
    Attribution a = HistoryEvent(history, known);
    a.attribution = replay.event[p];
    out.push_back(std::move(a));
  }
  for (size_t e = 0; e < replay.feature.size(); ++e) {
    Attribution a;
    a.feature = manifest.event_features[e].name;
    a.kind = FeatureKind::kEventFeature;
    a.display_value = absl::StrCat("your last ", seen, seen == 1 ? " event" : " events");
    a.attribution = replay.feature[e];
    out.push_back(std::move(a));
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    Attribution a;
    a.feature = groups[g].name;
    a.kind = FeatureKind::kContext;
    a.display_value = core::DescribeContextGroup(manifest, groups[g], input.context);
    a.attribution = replay.context[g];
    out.push_back(std::move(a));
  }
  return out;
}

// One item's fused attributions: the sources' entries of the same feature, kind and history
// position merged (the sources' attributions of one event add up). History events are found by
// their index, the other entries (context, priors, the gradient methods' per-event
// side-features) by a scan.
class FusedEntries {
 public:
  explicit FusedEntries(size_t history_size) : event_slot_(history_size, -1) {}

  // Adds `a` scaled by `scale`.
  void AddScaled(const Attribution& a, double scale) {
    int* slot = nullptr;
    if (a.kind == FeatureKind::kHistoryEvent && a.history_index >= 0 &&
        static_cast<size_t>(a.history_index) < event_slot_.size()) {
      slot = &event_slot_[a.history_index];
      if (*slot >= 0) {
        entries_[*slot].attribution += scale * a.attribution;
        return;
      }
    } else {
      for (size_t i : others_) {
        Attribution& f = entries_[i];
        if (f.kind == a.kind && f.history_index == a.history_index && f.feature == a.feature) {
          f.attribution += scale * a.attribution;
          return;
        }
      }
      others_.push_back(entries_.size());
    }
    if (slot != nullptr) *slot = static_cast<int>(entries_.size());
    entries_.push_back(a);
    entries_.back().attribution = scale * a.attribution;
  }

  // The entries; the object is spent.
  std::vector<Attribution> Take() && { return std::move(entries_); }

 private:
  std::vector<Attribution> entries_;
  std::vector<int> event_slot_;  // Per request.history index: its entry, or -1.
  std::vector<size_t> others_;   // The entries that are not history events.
};

// The popularity source's one PRIOR entry: its raw score, exact (the baseline scores 0).
Attribution PopularityAttribution(const core::Bundle& bundle, const core::RankedList& ranked,
                                  const core::RecommendedItem& item, double raw) {
  Attribution a;
  a.feature = "recent_popularity";
  a.kind = FeatureKind::kPrior;
  if (ranked.country_popularity == nullptr) {
    a.display_value = absl::StrCat(item.info.recent_popularity, " recent purchases");
  } else {
    const auto& counts = ranked.country_popularity->counts;
    auto it = counts.find(item.index);
    a.display_value = absl::StrCat(it == counts.end() ? 0 : it->second, " recent purchases in ",
                                   ranked.popularity_country);
  }
  a.attribution = raw;
  return a;
}

double Sum(const std::vector<Attribution>& entries) {
  double sum = 0.0;
  for (const Attribution& a : entries) sum += a.attribution;
  return sum;
}

// Keeps the largest `max` nonzero entries by magnitude, largest first (history events
// unrelated to an item explain nothing).
void KeepLargest(int max, std::vector<Attribution>* entries) {
  entries->erase(std::remove_if(entries->begin(), entries->end(),
                                [](const Attribution& a) { return a.attribution == 0.0; }),
                 entries->end());
  const size_t kept = std::min(entries->size(), static_cast<size_t>(max));
  std::partial_sort(entries->begin(), entries->begin() + kept, entries->end(), LargerMagnitude);
  entries->resize(kept);
}

// Explains one ranked request: the steps of ExplainItems.
class ExplainJob {
 public:
  ExplainJob(const core::Bundle& bundle, const core::RecommendRequest& request,
             const ExplainSettings& settings, core::RankedList* ranked)
      : bundle_(bundle), request_(request), settings_(settings), ranked_(*ranked) {}

  // Runs the method and explains every item; returns the note (see ExplainItems).
  std::string Run() {
    using core::AttributionMethod;
    switch (settings_.method) {
      case AttributionMethod::kIntegratedGradients:
        RunGradients(GaussLegendre(settings_.steps));
        break;
      case AttributionMethod::kGradientXInput:
        RunGradients(GradientTimesInput());
        break;
      case AttributionMethod::kOcclusion:
      case AttributionMethod::kKernelShap:
      case AttributionMethod::kLime:
        RunPerturbation();
        break;
      case AttributionMethod::kReplay:
        RunReplay();
        break;
      default:
        break;
    }
    for (size_t k = 0; k < ranked_.items.size(); ++k) ExplainItem(k);
    return note_;
  }

 private:
  void AddNote(const std::string& text) {
    absl::StrAppend(&note_, note_.empty() ? "" : "; ", text);
  }

  // Calls `attribute(s, source, targets)` for each active model source s, with the returned
  // items as targets; a failure clears `(*per_source)[s]` and says so in the note.
  template <typename Result, typename Attribute>
  void ForEachActiveModel(std::vector<std::vector<Result>>* per_source, Attribute attribute) {
    std::vector<core::ItemIndex> targets;
    for (const core::RecommendedItem& item : ranked_.items) targets.push_back(item.index);
    per_source->resize(ranked_.sources.size());
    for (size_t s = 0; s < ranked_.sources.size(); ++s) {
      const core::RankedSource& source = ranked_.sources[s];
      if (source.source.kind != core::SourceKind::kModel || !source.source.active()) continue;
      if (absl::Status status = attribute(s, source, targets); !status.ok()) {
        (*per_source)[s].clear();
        AddNote(
            absl::StrCat(source.source.spec.name, " could not be attributed: ", status.message()));
      }
    }
  }

  // Per active model source, every returned item in one batched pass.
  void RunGradients(const Quadrature& rule) {
    ForEachActiveModel(&paths_, [&](size_t s, const core::RankedSource& source,
                                    const std::vector<core::ItemIndex>& targets) {
      return IntegratedGradients(*source.source.model, source.input, targets, rule, &paths_[s]);
    });
  }

  // Per active model source, every returned item in one batched pass.
  void RunReplay() {
    groups_ = core::ContextGroups(bundle_.manifest());
    ForEachActiveModel(&replays_, [&](size_t s, const core::RankedSource& source,
                                      const std::vector<core::ItemIndex>& targets) {
      std::vector<double> start, end;  // The scores the ranker already has.
      for (const core::RecommendedItem& item : ranked_.items) {
        start.push_back(core::BaselineRaw(source.source, item.index));
        end.push_back(item.sources[s].raw_score);
      }
      return Replay(*source.source.model, source.input, groups_, targets, start, end, &source.saved,
                    &replays_[s]);
    });
  }

  // The fused score at once, for every item in one batch of coalitions.
  void RunPerturbation() {
    scorer_.emplace(bundle_, request_, ranked_);
    int evaluated = 0;
    absl::Status s;
    switch (settings_.method) {
      case core::AttributionMethod::kOcclusion:
        s = Occlusion(*scorer_, &players_phi_);
        break;
      case core::AttributionMethod::kLime:
        s = Lime(*scorer_, settings_.samples, settings_.seed, &players_phi_, &r_squared_);
        break;
      default:
        s = KernelShap(*scorer_, settings_.samples, settings_.seed, &players_phi_, &evaluated,
                       &standard_error_);
    }
    if (!s.ok()) {
      players_phi_.clear();
      r_squared_.clear();
      standard_error_.clear();
      AddNote(absl::StrCat("the perturbation method failed, exact sources only: ", s.message()));
    }
  }

  // Source s's own attributions of item k, its completeness error set; *attributed is false
  // for a model the method did not attribute (its whole share is the error).
  std::vector<Attribution> SourceAttributions(size_t k, size_t s, bool* attributed) {
    core::RecommendedItem& item = ranked_.items[k];
    core::SourceScore& score = item.sources[s];
    const core::Source& source = ranked_.sources[s].source;
    *attributed = true;
    std::vector<Attribution> own;
    switch (source.kind) {
      case core::SourceKind::kCf:
        own = CfEntries(bundle_, ranked_.history, item.index);
        score.completeness_error = Sum(own) - score.raw_score;
        break;
      case core::SourceKind::kPopularity:
        own.push_back(PopularityAttribution(bundle_, ranked_, item, score.raw_score));
        break;
      case core::SourceKind::kModel: {
        const double baseline_raw = core::BaselineRaw(source, item.index);
        if (s < replays_.size() && !replays_[s].empty()) {
          own = ReplayEntries(bundle_, ranked_.history, ranked_.sources[s].input, groups_,
                              replays_[s][k]);
          score.completeness_error = Sum(own) - (score.raw_score - baseline_raw);
          break;
        }
        if (s >= paths_.size() || paths_[s].empty()) {
          *attributed = false;
          score.completeness_error = -(score.raw_score - baseline_raw);
          break;
        }
        const PathAttribution& path = paths_[s][k];
        own = ModelAttributions(bundle_, ranked_.history, ranked_.sources[s].input,
                                source.model->shape(), path);
        // The path starts from padding under the request's mask, which is the empty history
        // because the loader admits only models whose padding embeds to 0: one baseline for
        // every method.
        score.completeness_error = Sum(own) - (score.raw_score - baseline_raw);
        break;
      }
    }
    return own;
  }

  // The perturbation players' entries of item k (they explain every source but popularity).
  void AddPlayerEntries(size_t k, std::vector<Attribution>* fused) const {
    const Players& players = scorer_->players();
    for (size_t p = 0; p < players.events.size(); ++p) {
      Attribution a = HistoryEvent(ranked_.history, players.events[p]);
      a.attribution = players_phi_[k][p];
      fused->push_back(std::move(a));
    }
    for (size_t c = 0; c < players.context.size(); ++c) {
      Attribution a;
      a.feature = players.context[c].name;
      a.kind = FeatureKind::kContext;
      a.display_value = core::DescribeContextGroup(bundle_.manifest(), players.context[c],
                                                   ranked_.first_model_input()->context);
      a.attribution = players_phi_[k][players.events.size() + c];
      fused->push_back(std::move(a));
    }
  }

  void ExplainItem(size_t k) {
    core::RecommendedItem& item = ranked_.items[k];
    const bool by_players = !players_phi_.empty();
    FusedEntries merged(request_.history.size());
    for (size_t s = 0; s < item.sources.size(); ++s) {
      const core::Source& source = ranked_.sources[s].source;
      bool attributed = true;
      std::vector<Attribution> own = SourceAttributions(k, s, &attributed);
      if (!by_players || source.kind == core::SourceKind::kPopularity) {
        for (const Attribution& a : own) merged.AddScaled(a, core::FusionScale(source.spec));
      }
      if (settings_.include_source_attributions && attributed) {
        KeepLargest(settings_.max_attributions, &own);
        Describe(bundle_, ranked_.history, &own);
        item.sources[s].attributions = std::move(own);
      }
    }
    std::vector<Attribution> fused = std::move(merged).Take();
    if (by_players) AddPlayerEntries(k, &fused);
    if (k < r_squared_.size()) item.surrogate_r_squared = r_squared_[k];
    if (k < standard_error_.size()) item.attribution_standard_error = standard_error_[k];
    if (const double penalty = ranked_.popularity_penalty; penalty > 0) {
      Attribution prior;
      prior.feature = "popularity";
      prior.kind = FeatureKind::kPrior;
      prior.display_value = absl::StrCat(item.info.popularity, " purchases");
      prior.attribution = -core::PopularityPenalty(penalty, item.info);
      fused.push_back(std::move(prior));
    }
    item.completeness_error = Sum(fused) - (item.score - item.baseline_score);
    KeepLargest(settings_.max_attributions, &fused);
    Describe(bundle_, ranked_.history, &fused);
    SetReason(request_, ranked_.popularity_country, settings_.reason_min_share, fused, &item);
    item.attributions = std::move(fused);
  }

  const core::Bundle& bundle_;
  const core::RecommendRequest& request_;
  const ExplainSettings& settings_;
  core::RankedList& ranked_;
  std::string note_;
  std::vector<std::vector<PathAttribution>> paths_;      // Per source: per item, gradient methods.
  std::vector<std::vector<ReplayAttribution>> replays_;  // Per source: per item, replay.
  std::vector<core::ContextGroup> groups_;               // Replay's context groups.
  std::optional<CoalitionScorer> scorer_;
  PlayerAttributions players_phi_;  // Per item, perturbation methods.
  std::vector<double> r_squared_;   // Per item, LIME.
  std::vector<double> standard_error_;  // Per item, KernelSHAP.
};

}  // namespace

std::string ExplainItems(const core::Bundle& bundle, const core::RecommendRequest& request,
                         const ExplainSettings& settings, core::RankedList* ranked) {
  if (settings.method == core::AttributionMethod::kNone) return "";
  return ExplainJob(bundle, request, settings, ranked).Run();
}

}  // namespace recsys::explain
