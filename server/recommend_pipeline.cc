#include "server/recommend_pipeline.h"

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

}  // namespace

absl::StatusOr<core::RecommendResponse> RecommendPipeline::Run(
    const core::RecommendRequest& request, const core::Bundle& bundle,
    absl::Time deadline) const {
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

  // Explanations never fail a recommendation: a method this bundle cannot run degrades to the
  // exact CF contributions, and the response says so.
  if (absl::Status s = CheckDeadline(deadline, "explaining"); !s.ok()) return s;
  explain::ExplainSettings settings;
  settings.method = request.explain.method == AttributionMethod::kDefault
                        ? options_.default_method
                        : request.explain.method;
  std::string& note = ranked.metadata.explanation_note;
  const bool model_method = settings.method != AttributionMethod::kNone &&
                            settings.method != AttributionMethod::kCfExact;
  if (model_method && bundle.models().empty()) {
    note = "this bundle has no models: the exact item-CF contributions are the explanation";
    settings.method = AttributionMethod::kCfExact;
  } else if (model_method && settings.method != AttributionMethod::kIntegratedGradients &&
             settings.method != AttributionMethod::kGradientXInput) {
    note = "occlusion and KernelSHAP are not available in this version; Integrated Gradients "
           "ran instead";
    settings.method = AttributionMethod::kIntegratedGradients;
  }
  settings.steps = settings.method == AttributionMethod::kGradientXInput ? 1
                   : request.explain.steps > 0                            ? request.explain.steps
                                                                 : options_.default_ig_steps;
  // The budget: units of model attribution this request would cost.
  int weighted_models = 0;
  for (const auto& model : bundle.models()) {
    for (const core::SourceSpec& s : ranked.sources) {
      if (s.name == model->name() && s.weight != 0.0) ++weighted_models;
    }
  }
  const double units = static_cast<double>(ranked.items.size()) * settings.steps * weighted_models;
  const bool attributes_models = settings.method == AttributionMethod::kIntegratedGradients ||
                                 settings.method == AttributionMethod::kGradientXInput;
  if (attributes_models && units > 0) {
    const double estimate = seconds_per_unit_.load() * units;
    const double left = absl::ToDoubleSeconds(deadline - absl::Now());
    if (estimate > 0.5 * left) {
      note = absl::StrFormat(
          "model attribution was skipped: it would take about %.1f ms and the deadline leaves "
          "%.1f ms; exact contributions only",
          estimate * 1e3, left * 1e3);
      settings.method = AttributionMethod::kCfExact;
    }
  }
  if (settings.method == AttributionMethod::kCfExact && !bundle.models().empty()) {
    absl::StrAppend(&note,
                    note.empty() ? "model sources are not attributed by this method (ask for "
                                   "ATTRIBUTION_METHOD_INTEGRATED_GRADIENTS)"
                                 : "",
                    ": each item's completeness_error holds their share of score - "
                    "baseline_score");
  }
  settings.max_attributions = request.explain.max_attributions > 0
                                  ? request.explain.max_attributions
                                  : options_.default_max_attributions;
  settings.include_source_attributions = request.explain.include_source_attributions;
  const absl::Time explain_start = absl::Now();
  const std::string failed = explain::ExplainItems(bundle, request, settings, &ranked);
  if (!failed.empty()) absl::StrAppend(&note, note.empty() ? "" : "; ", failed);
  if (settings.method != AttributionMethod::kCfExact && attributes_models && units > 0) {
    const double measured = absl::ToDoubleSeconds(absl::Now() - explain_start) / units;
    const double old = seconds_per_unit_.load();
    seconds_per_unit_.store(old == 0.0 ? measured : 0.8 * old + 0.2 * measured);
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
