#include "server/recommend_pipeline.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/ranker.h"
#include "explain/explainer.h"

namespace recsys::server {

namespace {

using core::AttributionMethod;

// Stopwatch that appends one StageTiming per stage.
class StageClock {
 public:
  explicit StageClock(std::vector<core::StageTiming>* timings)
      : timings_(timings), last_(absl::Now()) {}
  void Lap(const char* stage) {
    const absl::Time now = absl::Now();
    timings_->push_back({stage, absl::ToDoubleSeconds(now - last_)});
    last_ = now;
  }

 private:
  std::vector<core::StageTiming>* timings_;
  absl::Time last_;
};

absl::Status CheckDeadline(absl::Time deadline, const char* next_stage) {
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError(absl::StrCat("deadline passed before ", next_stage));
  }
  return absl::OkStatus();
}

const char* MethodName(AttributionMethod method) {
  switch (method) {
    case AttributionMethod::kIntegratedGradients:
      return "Integrated Gradients";
    case AttributionMethod::kGradientXInput:
      return "gradient x input";
    case AttributionMethod::kOcclusion:
      return "occlusion";
    case AttributionMethod::kKernelShap:
      return "KernelSHAP";
    case AttributionMethod::kCfExact:
      return "exact contributions (cf, pop)";
    default:
      return "no attribution";
  }
}

// Models whose weight in this request is not 0.
int WeightedModels(const core::Bundle& bundle, const core::RankedList& ranked) {
  int n = 0;
  for (const auto& model : bundle.models()) {
    for (const core::SourceSpec& s : ranked.sources) {
      if (s.name == model->name() && s.weight != 0.0) ++n;
    }
  }
  return n;
}

}  // namespace

double RecommendPipeline::CostUnits(const explain::ExplainSettings& settings,
                                    const core::Bundle& bundle, const core::RankedList& ranked) {
  const double models = WeightedModels(bundle, ranked);
  const double items = static_cast<double>(ranked.items.size());
  // Players of the perturbation methods: known events and (at most) every context feature.
  const double players =
      static_cast<double>(ranked.history.items.size() + bundle.manifest().context_features.size());
  switch (settings.method) {
    case AttributionMethod::kIntegratedGradients:
      return items * settings.steps * models;
    case AttributionMethod::kGradientXInput:
      return items * models;
    case AttributionMethod::kOcclusion:
      return (players + 1) * models;
    case AttributionMethod::kKernelShap:
      return (std::min(static_cast<double>(settings.samples), std::pow(2.0, players)) + 2) *
             models;
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

absl::StatusOr<core::RecommendResponse> RecommendPipeline::Run(
    const core::RecommendRequest& request, const core::Bundle& bundle, absl::Time deadline,
    double load) const {
  core::RankedList ranked;
  StageClock clock(&ranked.metadata.stage_timings);
  if (absl::Status s = ValidateRequest(request, options_.limits); !s.ok()) return s;
  clock.Lap("validate");

  if (absl::Status s = CheckDeadline(deadline, "ranking"); !s.ok()) return s;
  const int32_t top_k = request.top_k > 0 ? request.top_k : options_.default_top_k;
  if (absl::Status s =
          core::Ranker::Rank(bundle, request, top_k, &ranked, absl::ToUnixSeconds(absl::Now()));
      !s.ok()) {
    return s;
  }
  clock.Lap("rank");

  // Explanations never fail a recommendation: a method the bundle, the deadline or the load
  // cannot afford degrades to a cheaper one, and the response says so.
  if (absl::Status s = CheckDeadline(deadline, "explaining"); !s.ok()) return s;
  explain::ExplainSettings settings;
  settings.method = request.explain.method == AttributionMethod::kDefault
                        ? options_.default_method
                        : request.explain.method;
  settings.steps = request.explain.steps > 0 ? request.explain.steps : options_.default_ig_steps;
  settings.samples =
      request.explain.samples > 0 ? request.explain.samples : options_.default_shap_samples;
  settings.seed = request.explain.seed != 0 ? request.explain.seed : 1;
  settings.max_attributions = request.explain.max_attributions > 0
                                  ? request.explain.max_attributions
                                  : options_.default_max_attributions;
  settings.include_source_attributions = request.explain.include_source_attributions;
  std::string& note = ranked.metadata.explanation_note;
  const bool gradient = settings.method == AttributionMethod::kIntegratedGradients ||
                        settings.method == AttributionMethod::kGradientXInput;
  if (gradient && bundle.models().empty()) {
    note = "this bundle has no models: the exact item-CF contributions are the explanation";
    settings.method = AttributionMethod::kCfExact;
  }
  if (load >= options_.degrade_load && settings.method != AttributionMethod::kNone &&
      settings.method != AttributionMethod::kCfExact) {
    note = absl::StrFormat(
        "the server is busy (request queue %.0f%% full): model attribution was skipped, exact "
        "contributions only",
        100 * load);
    settings.method = AttributionMethod::kCfExact;
  }
  // The deadline budget: the requested method, else gradient x input, else the exact sources,
  // whichever first fits in half the time left.
  const AttributionMethod requested = settings.method;
  for (AttributionMethod m : {requested, AttributionMethod::kGradientXInput}) {
    if (m == AttributionMethod::kGradientXInput &&
        (requested == AttributionMethod::kGradientXInput || bundle.models().empty())) {
      continue;
    }
    settings.method = m;
    const double estimate = EstimateSeconds(settings, bundle, ranked);
    const double left = absl::ToDoubleSeconds(deadline - absl::Now());
    if (estimate <= 0.5 * left) break;
    if (m == requested) {
      note = absl::StrFormat("%s would take about %.1f ms and the deadline leaves %.1f ms",
                             MethodName(m), estimate * 1e3, left * 1e3);
    }
    settings.method = AttributionMethod::kCfExact;
  }
  if (settings.method != requested) {
    absl::StrAppend(&note, ": ", MethodName(settings.method), " ran instead");
  }
  if (settings.method == AttributionMethod::kCfExact && !bundle.models().empty()) {
    absl::StrAppend(&note,
                    note.empty() ? "model sources are not attributed by this method (ask for "
                                   "a model method, e.g. ATTRIBUTION_METHOD_OCCLUSION)"
                                 : "",
                    "; each item's completeness_error holds the models' share of score - "
                    "baseline_score");
  }
  const absl::Time explain_start = absl::Now();
  const std::string failed = explain::ExplainItems(bundle, request, settings, &ranked);
  if (!failed.empty()) absl::StrAppend(&note, note.empty() ? "" : "; ", failed);
  if (const double units = CostUnits(settings, bundle, ranked); units > 0) {
    const double measured = absl::ToDoubleSeconds(absl::Now() - explain_start) / units;
    std::atomic<double>& rate = seconds_per_unit_[static_cast<int>(settings.method)];
    const double old = rate.load();
    rate.store(old == 0.0 ? measured : 0.8 * old + 0.2 * measured);
  }
  clock.Lap("explain");

  core::RecommendResponse response;
  response.request_id = request.request_id;
  response.items = std::move(ranked.items);
  response.metadata = std::move(ranked.metadata);
  response.metadata.bundle_version = bundle.manifest().version;
  response.metadata.attribution_method = settings.method;
  return response;
}

}  // namespace recsys::server
