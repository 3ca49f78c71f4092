#ifndef RECSYS_EXPLAIN_INTEGRATED_GRADIENTS_H_
#define RECSYS_EXPLAIN_INTEGRATED_GRADIENTS_H_

#include <vector>

#include "absl/status/status.h"
#include "core/model_runner.h"

namespace recsys::explain {

// A quadrature rule on [0, 1]: nodes ascending, weights summing to 1.
struct Quadrature {
  std::vector<double> nodes;
  std::vector<double> weights;
};

// Gauss-Legendre quadrature with n nodes on [0, 1]: exact for polynomials of degree < 2n.
// REQUIRES: n >= 1.
Quadrature GaussLegendre(int n);

// The one-node rule at 1: Integrated Gradients with it is gradient x (input - baseline).
Quadrature GradientTimesInput();

// One target's attributions along the straight path from the baseline input to the request's,
// in the model's embedded space. The baseline is the empty history under the request's mask:
// every position embeds the padding item with zero side-features, the context is the bundle's
// baseline context (core::BaselineInput). The
// embedding change of event position p splits into its item part embed(item, 0) - embed(pad, 0)
// and its side-feature part embed(item, f) - embed(item, 0), the latter further by feature e
// (embed(item, f_e only) - embed(item, 0)); the splits are exact when embed is additive in the
// item and the features, as in tools/recsys_models.py.
struct PathAttribution {
  std::vector<double> event;          // [L]: item part per position (0 for padding).
  std::vector<double> event_feature;  // [L * E]
  std::vector<double> context;        // [C]
  double baseline = 0.0;              // The target's score at the path's start.
};

// Integrated Gradients of each of `targets` with the quadrature `rule`, every target and node in
// one batched forward and backward pass of `model` (ModelRunner::Gradients), the embeddings in
// one Embed pass. Appends one PathAttribution per target, in order, to `out`. The event,
// side-feature and context attributions of a target add up to score(input) - baseline up to the
// quadrature's integration error. REQUIRES: `input` has the sizes of model.shape(); targets <
// N; rule non-empty. Errors: INVALID_ARGUMENT for wrong sizes (nothing is read out of bounds),
// those of the model otherwise. Thread-safe when the model is.
absl::Status IntegratedGradients(const core::ModelRunner& model, const core::ModelInput& input,
                                 const std::vector<core::ItemIndex>& targets,
                                 const Quadrature& rule, std::vector<PathAttribution>* out);

}  // namespace recsys::explain

#endif  // RECSYS_EXPLAIN_INTEGRATED_GRADIENTS_H_
