#ifndef RECSYS_CORE_MODEL_RUNNER_H_
#define RECSYS_CORE_MODEL_RUNNER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/catalog.h"
#include "core/manifest.h"

namespace recsys::core {

// One request's model inputs, featurised (see core/featurizer.h), row-major.
struct ModelInput {
  std::vector<int64_t> items;         // [L]; left-padded with the padding index num_items.
  std::vector<float> event_features;  // [L * E]
  std::vector<float> mask;            // [L]; 1 for a real event, 0 for padding.
  std::vector<float> context;         // [C]
};

// Shapes every model of a bundle agrees on.
struct ModelShape {
  int32_t num_items = 0;           // N
  int32_t max_history = 0;         // L
  int32_t num_event_features = 0;  // E
  int32_t num_context = 0;         // C
};

// Integrated Gradients of one target item's score along a path from the baseline input (all
// padding, zero event features, zero context) to the request's input, in the embedded space:
// embedded(a) = embedded_b + a * (embedded_x - embedded_b), context(a) = a * context.
// The embedding change of each event splits into its item part
// embed(items, 0) - embed(pad, 0) and its side-feature part embed(items, f) - embed(items, 0),
// the latter further by feature (embed(items, f_e only) - embed(items, 0)); the splits are exact
// when embed is linear in the features, as in tools/recsys_models.py.
struct PathAttribution {
  std::vector<double> event;          // [L] item part per position (0 for padding).
  std::vector<double> event_feature;  // [L * E]
  std::vector<double> context;        // [C]
  double baseline = 0.0;              // f(b): the target's score for the baseline. f(x) is the
                                      // score ScoreAll gives the input.
};

// A sequential recommender of a bundle, behind the model contract of tools/recsys_models.py:
// embed(items, event_features) -> [B,L,D]; encode(embedded, mask, context) -> [B,H];
// item_table() -> [N,H]; item_bias() -> [N]; score = encode . item_table^T + item_bias.
// No Torch type appears here: the TorchScript implementation lives in torch_model_runner.cc.
//
// Implementations are thread-safe: ScoreAll may run concurrently.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  // The source name (ModelSpec::name).
  virtual const std::string& name() const = 0;
  virtual const ModelShape& shape() const = 0;
  // The device it runs on ("cpu", "cuda:0").
  virtual const std::string& device() const = 0;

  // Scores of all N catalogue items for one request, in catalogue order.
  // REQUIRES: `input` has the sizes of shape(). Errors: INVALID_ARGUMENT for wrong sizes,
  // INTERNAL when the model fails.
  virtual absl::Status ScoreAll(const ModelInput& input, std::vector<float>* scores) const = 0;

  // Scores of `targets` for each of `inputs`, all inputs in one batched pass: scores[b * K + k]
  // is target k's score for input b (K = targets.size()). Used by the perturbation methods
  // (occlusion, KernelSHAP). REQUIRES: each input has the sizes of shape(), targets < N.
  // Errors: INVALID_ARGUMENT for wrong sizes, INTERNAL when the model fails.
  virtual absl::Status ScoreTargets(const std::vector<ModelInput>& inputs,
                                    const std::vector<ItemIndex>& targets,
                                    std::vector<float>* scores) const = 0;

  // Scores of all items for the attribution baseline: an empty history (all padding) and a
  // context of zeros. Computed once at load.
  virtual const std::vector<float>& baseline_scores() const = 0;

  // Integrated Gradients for each of `targets` with the quadrature `alphas` / `weights` on
  // [0, 1] (weights sum to 1), all steps and targets in one batched forward and backward pass.
  // Appends one PathAttribution per target to `out`. Uses autograd, not inference mode.
  virtual absl::Status IntegratedGradients(const ModelInput& input,
                                           const std::vector<ItemIndex>& targets,
                                           const std::vector<double>& alphas,
                                           const std::vector<double>& weights,
                                           std::vector<PathAttribution>* out) const = 0;
};

// Loads the model file `path` described by `spec`, checks the contract and the shapes with a
// warm-up call, and returns it ready to score. Errors name the file and what is wrong.
using ModelLoader = std::function<absl::StatusOr<std::unique_ptr<ModelRunner>>(
    const std::string& path, const ModelSpec& spec, const ModelShape& shape)>;

}  // namespace recsys::core

#endif  // RECSYS_CORE_MODEL_RUNNER_H_
