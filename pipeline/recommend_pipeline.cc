#include "pipeline/recommend_pipeline.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/featurizer.h"
#include "core/interest_profile.h"
#include "core/ranker.h"
#include "explain/explainer.h"
#include "explain/replay.h"
#include "pipeline/attribution_methods.h"

namespace recsys::pipeline {

namespace {

using core::AttributionMethod;

// Stopwatch that appends one StageTiming per stage.
class StageClock {
 public:
  StageClock(std::function<absl::Time()> now, std::vector<core::StageTiming>* timings)
      : now_(std::move(now)), timings_(timings), last_(now_()) {}
  void Lap(const char* stage) {
    const absl::Time now = now_();
    timings_->push_back({stage, absl::ToDoubleSeconds(now - last_)});
    last_ = now;
  }

 private:
  std::function<absl::Time()> now_;
  std::vector<core::StageTiming>* timings_;
  absl::Time last_;
};

absl::Status CheckDeadline(absl::Time now, absl::Time deadline, const char* next_stage) {
  if (now >= deadline) {
    return absl::DeadlineExceededError(absl::StrCat("deadline passed before ", next_stage));
  }
  return absl::OkStatus();
}

// Models whose weight in this request is not 0.
int WeightedModels(const core::RankedList& ranked) {
  int n = 0;
  for (const core::RankedSource& s : ranked.sources) {
    n += s.source.kind == core::SourceKind::kModel && s.source.active();
  }
  return n;
}

// The shopper's profile from the known events, at the prices the request says they paid.
core::InterestProfile InterestProfileOf(const core::RecommendRequest& request,
                                        const core::Bundle& bundle,
                                        const core::ResolvedHistory& history) {
  std::vector<double> prices(history.positions.size(), -1.0);  // Unknown: the reference price.
  for (size_t t = 0; t < prices.size(); ++t) {
    const std::optional<double>& price = request.history[history.positions[t]].price;
    if (price) prices[t] = *price;
  }
  return core::BuildInterestProfile(bundle.catalog(), history.items, history.weights, prices);
}

}  // namespace

namespace {

// The inputs replay scores, over the weighted models: per model one pass in all
// (ScoresPrefixesInOnePass), or one input per context group, event the model sees and
// side-feature kind, less the last step (the ranker's score).
double ReplayInputs(const core::Bundle& bundle, const core::RankedList& ranked) {
  const double groups = static_cast<double>(core::ContextGroups(bundle.manifest()).size());
  const double kinds = static_cast<double>(bundle.manifest().event_features.size());
  const double events = static_cast<double>(ranked.history.items.size());
  double inputs = 0.0;
  for (const core::RankedSource& s : ranked.sources) {
    if (s.source.kind != core::SourceKind::kModel || !s.source.active()) continue;
    const core::ModelRunner& model = *s.source.model;
    inputs += model.ScoresPrefixesInOnePass()
                  ? 1.0
                  : std::min(events, static_cast<double>(model.shape().max_history)) + groups +
                        std::max(kinds - 1, 0.0);
  }
  return inputs;
}

}  // namespace

double RecommendPipeline::CostUnits(const explain::ExplainSettings& settings,
                                    const core::Bundle& bundle, const core::RankedList& ranked) {
  const double models = WeightedModels(ranked);
  const double items = static_cast<double>(ranked.items.size());
  // Players of the perturbation methods: known events and (at most) every context group.
  const double players = static_cast<double>(ranked.history.items.size() +
                                             core::ContextGroups(bundle.manifest()).size());
  // KernelSHAP's and LIME's least-squares fit, in model inputs: about coalitions x players^2 +
  // players^3 / 3 multiply-adds at ~1 ns, against ~20 us for one input of one model.
  auto fit = [&](double coalitions) {
    return (coalitions * players * players + players * players * players / 3) / 2e4;
  };
  switch (settings.method) {
    case AttributionMethod::kIntegratedGradients:
      return items * settings.steps * models;
    case AttributionMethod::kGradientXInput:
      return items * models;
    case AttributionMethod::kOcclusion:
      return (players + 1) * models;
    case AttributionMethod::kReplay:
      return ReplayInputs(bundle, ranked);
    case AttributionMethod::kKernelShap: {
      const double coalitions =
          std::min(static_cast<double>(settings.samples), std::pow(2.0, players)) + 2;
      return coalitions * models + fit(coalitions);
    }
    case AttributionMethod::kLime:
      return settings.samples * models + fit(settings.samples);
    default:
      return 0.0;  // The exact sources cost microseconds.
  }
}

double RecommendPipeline::EstimateSeconds(const explain::ExplainSettings& settings,
                                          const core::Bundle& bundle,
                                          const core::RankedList& ranked) const {
  return seconds_per_unit_[static_cast<int>(settings.method)].load() *
         CostUnits(settings, bundle, ranked);
}

explain::ExplainSettings RecommendPipeline::Settings(const core::RecommendRequest& request) const {
  const core::ExplainOptions& asked = request.explain;
  explain::ExplainSettings settings;
  settings.method =
      asked.method == AttributionMethod::kDefault ? options_.default_method : asked.method;
  settings.steps = asked.steps > 0 ? asked.steps : options_.default_ig_steps;
  settings.samples = asked.samples > 0 ? asked.samples : options_.default_shap_samples;
  settings.seed = asked.seed != 0 ? asked.seed : 1;
  settings.max_attributions =
      asked.max_attributions > 0 ? asked.max_attributions : options_.default_max_attributions;
  settings.include_source_attributions = asked.include_source_attributions;
  settings.reason_min_share = options_.reason_min_share;
  return settings;
}

void RecommendPipeline::Afford(const core::Bundle& bundle, const core::RankedList& ranked,
                               absl::Time deadline, double load, explain::ExplainSettings* settings,
                               std::string* note) const {
  const bool gradient = settings->method == AttributionMethod::kIntegratedGradients ||
                        settings->method == AttributionMethod::kGradientXInput;
  if (gradient && bundle.models().empty()) {
    *note = "this bundle has no models: the exact item-CF contributions are the explanation";
    settings->method = AttributionMethod::kCfExact;
  }
  if (load >= options_.degrade_load && settings->method != AttributionMethod::kNone &&
      settings->method != AttributionMethod::kCfExact) {
    *note = absl::StrFormat(
        "the server is busy (request queue %.0f%% full): model attribution was skipped, exact "
        "contributions only",
        100 * load);
    settings->method = AttributionMethod::kCfExact;
  }
  // The deadline budget: the requested method, else gradient x input, else the exact sources,
  // whichever first fits in half the time left.
  const AttributionMethod requested = settings->method;
  for (AttributionMethod m : {requested, AttributionMethod::kGradientXInput}) {
    // Gradient x input is the cheaper model method only for the dearer ones; replay costs
    // less than it, so replay falls back to the exact sources.
    if (m == AttributionMethod::kGradientXInput &&
        (requested == AttributionMethod::kGradientXInput ||
         requested == AttributionMethod::kReplay || bundle.models().empty())) {
      continue;
    }
    settings->method = m;
    const double estimate = EstimateSeconds(*settings, bundle, ranked);
    const double left = absl::ToDoubleSeconds(deadline - Now());
    if (estimate <= 0.5 * left) break;
    if (m == requested) {
      *note = absl::StrFormat("%s would take about %.1f ms and the deadline leaves %.1f ms",
                              AttributionMethodTitle(m), estimate * 1e3, left * 1e3);
    }
    settings->method = AttributionMethod::kCfExact;
  }
  if (settings->method != requested) {
    absl::StrAppend(note, ": ", AttributionMethodTitle(settings->method), " ran instead");
  }
  if (settings->method == AttributionMethod::kCfExact && !bundle.models().empty()) {
    absl::StrAppend(note,
                    note->empty() ? "model sources are not attributed by this method (ask for "
                                    "a model method, e.g. ATTRIBUTION_METHOD_OCCLUSION)"
                                  : "",
                    "; each item's completeness_error holds the models' share of score - "
                    "baseline_score");
  }
}

core::RowsToSave RecommendPipeline::RowsToSave(const explain::ExplainSettings& settings,
                                               const core::Bundle& bundle, double load) const {
  if (settings.method != AttributionMethod::kReplay || load >= options_.degrade_load) {
    return nullptr;  // Replay was not asked for, or Afford will skip it for the load.
  }
  return [groups = core::ContextGroups(bundle.manifest())](
             const core::ModelShape& shape, const core::ModelInput& whole, core::ModelInput* input,
             std::vector<core::PrefixRow>* rows) {
    return explain::ReplayRows(shape, whole, groups, input, rows).ok();
  };
}

void RecommendPipeline::Explain(const core::RecommendRequest& request, const core::Bundle& bundle,
                                const explain::ExplainSettings& settings,
                                core::RankedList* ranked) const {
  const absl::Time start = Now();
  const std::string failed = explain::ExplainItems(bundle, request, settings, ranked);
  std::string& note = ranked->metadata.explanation_note;
  if (!failed.empty()) absl::StrAppend(&note, note.empty() ? "" : "; ", failed);
  if (const double units = CostUnits(settings, bundle, *ranked); units > 0) {
    const double measured = absl::ToDoubleSeconds(Now() - start) / units;
    std::atomic<double>& rate = seconds_per_unit_[static_cast<int>(settings.method)];
    const double old = rate.load();
    rate.store(old == 0.0 ? measured : 0.8 * old + 0.2 * measured);
  }
}

absl::StatusOr<core::RecommendResponse> RecommendPipeline::Run(
    const core::RecommendRequest& request, const core::Bundle& bundle, absl::Time deadline,
    double load) const {
  core::RankedList ranked;
  StageClock clock([this] { return Now(); }, &ranked.metadata.stage_timings);
  if (absl::Status s = ValidateRequest(request, options_.limits); !s.ok()) return s;
  clock.Lap("validate");

  if (absl::Status s = CheckDeadline(Now(), deadline, "ranking"); !s.ok()) return s;
  const int32_t top_k = request.top_k > 0 ? request.top_k : options_.default_top_k;
  explain::ExplainSettings settings = Settings(request);
  if (absl::Status s =
          core::Ranker::Rank(bundle, request, top_k, &ranked, absl::ToUnixSeconds(Now()),
                             RowsToSave(settings, bundle, load));
      !s.ok()) {
    return s;
  }
  clock.Lap("rank");

  // Explanations never fail a recommendation: a method the bundle, the deadline or the load
  // cannot afford degrades to a cheaper one, and the response says so.
  if (absl::Status s = CheckDeadline(Now(), deadline, "explaining"); !s.ok()) return s;
  Afford(bundle, ranked, deadline, load, &settings, &ranked.metadata.explanation_note);
  Explain(request, bundle, settings, &ranked);
  clock.Lap("explain");

  core::RecommendResponse response;
  response.request_id = request.request_id;
  response.profile = InterestProfileOf(request, bundle, ranked.history);
  response.items = std::move(ranked.items);
  for (core::RecommendedItem& item : response.items) {
    item.profile_entry = core::ProfileEntryOf(response.profile, item.info);
  }
  response.metadata = std::move(ranked.metadata);
  response.metadata.bundle_version = bundle.manifest().version;
  response.metadata.attribution_method = settings.method;
  return response;
}

}  // namespace recsys::pipeline
