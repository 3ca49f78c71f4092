#ifndef RECSYS_PIPELINE_RECOMMEND_PIPELINE_H_
#define RECSYS_PIPELINE_RECOMMEND_PIPELINE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/bundle.h"
#include "core/ranker.h"
#include "core/types.h"
#include "explain/explainer.h"
#include "pipeline/request_validator.h"

namespace recsys::pipeline {

struct PipelineOptions {
  RequestLimits limits;
  int32_t default_top_k = 10;             // Default: 10.
  int32_t default_max_attributions = 10;  // Default: 10.
  int32_t default_ig_steps = 16;          // Integrated Gradients steps. Default: 16.
  int32_t default_shap_samples = 128;     // KernelSHAP coalitions. Default: 128.
  // Starting estimate of every method's cost, in seconds per unit of CostUnits, refined per
  // method by a moving average of measured runs. Default: 0 (learn from the first run).
  double initial_attribution_seconds_per_unit = 0.0;
  // Request-queue fill (waiting / capacity) from which model attribution is skipped and only
  // the exact sources are explained. Default: 0.5.
  double degrade_load = 0.5;
  // Method used when the request leaves it unspecified. Default: replay, which explains every
  // source exactly (its cost against the budget of default explanations: docs/explanations.md).
  core::AttributionMethod default_method = core::AttributionMethod::kReplay;
  // The least share of score - baseline_score a reason must carry to be shown
  // (explain::ExplainSettings::reason_min_share); tools/feedback_report.py derives it from the
  // feedback log. Default: explain::kDefaultReasonMinShare (0.2).
  double reason_min_share = explain::kDefaultReasonMinShare;
  // The clock deadlines and stage timings are read from. Default: absl::Now (a test injects a
  // testing::FakeClock so that deadline behaviour needs no wall-clock margins).
  std::function<absl::Time()> clock;
};

// The whole request path at the domain level: validate, rank, explain the returned items, all
// under one deadline, with per-stage timings. An explanation never costs a recommendation: when
// the requested method's estimated cost exceeds half the time left before the deadline, gradient
// x input runs instead (for the methods dearer than it), or when that does not fit either only
// the exact sources (cf, pop) are explained; under load (queue fill >= degrade_load) only the exact
// sources are. The response names the method that ran and says why it differs. It knows nothing of
// gRPC; the service adapter converts the proto and calls Run.
//
// Thread-safe: Run may be called concurrently; each call uses the bundle it is given, so a
// request finishes on the version it started with.
class RecommendPipeline {
 public:
  explicit RecommendPipeline(const PipelineOptions& options) : options_(options) {
    for (auto& rate : seconds_per_unit_) rate.store(options.initial_attribution_seconds_per_unit);
  }

  // Throws only what a ModelRunner throws (the TorchScript runner maps every exception to a
  // status; the server still catches, see WorkerPool). Errors: INVALID_ARGUMENT for a bad request
  // (the message names the field),
  // DEADLINE_EXCEEDED when `deadline` passes between stages, plus those of core::Ranker.
  // `load`: the server's request-queue fill in [0, 1].
  absl::StatusOr<core::RecommendResponse> Run(const core::RecommendRequest& request,
                                              const core::Bundle& bundle, absl::Time deadline,
                                              double load = 0.0) const;

  const PipelineOptions& options() const { return options_; }

  // The work of explaining `ranked` with `settings`, in units whose cost each method learns:
  // (item x step) per model for the gradient methods, inputs per model for replay (a model
  // that scores every prefix in one pass counts that pass as one) and the perturbation
  // methods, plus for KernelSHAP and LIME their least-squares fit (which grows
  // with the square of the players, models or not), 0 for the exact sources.
  static double CostUnits(const explain::ExplainSettings& settings, const core::Bundle& bundle,
                          const core::RankedList& ranked);

  // The replay attribution's rows (explain::ReplayRows), for the ranker to save from its
  // encoder pass, when `settings` ask for replay and `load` lets it run; else none.
  core::RowsToSave RowsToSave(const explain::ExplainSettings& settings, const core::Bundle& bundle,
                              double load) const;

 private:
  absl::Time Now() const { return options_.clock ? options_.clock() : absl::Now(); }
  // The request's explanation settings, its omissions filled from the options.
  explain::ExplainSettings Settings(const core::RecommendRequest& request) const;
  // Downgrades settings.method to what the bundle, the load and the deadline afford; appends
  // why to `note`.
  void Afford(const core::Bundle& bundle, const core::RankedList& ranked, absl::Time deadline,
              double load, explain::ExplainSettings* settings, std::string* note) const;
  // Explains `ranked` and refines the method's cost estimate with the measured time.
  void Explain(const core::RecommendRequest& request, const core::Bundle& bundle,
               const explain::ExplainSettings& settings, core::RankedList* ranked) const;
  double EstimateSeconds(const explain::ExplainSettings& settings, const core::Bundle& bundle,
                         const core::RankedList& ranked) const;

  PipelineOptions options_;
  // Per AttributionMethod (kLime is the last): moving average of its cost per unit; shared by
  // concurrent requests.
  mutable std::array<std::atomic<double>, static_cast<int>(core::AttributionMethod::kLime) + 1>
      seconds_per_unit_;
};

}  // namespace recsys::pipeline

#endif  // RECSYS_PIPELINE_RECOMMEND_PIPELINE_H_
