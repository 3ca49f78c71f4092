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

  bool operator==(const ModelInput& o) const {
    return items == o.items && event_features == o.event_features && mask == o.mask &&
           context == o.context;
  }
};

// Shapes every model of a bundle agrees on.
struct ModelShape {
  int32_t num_items = 0;           // N
  int32_t max_history = 0;         // L
  int32_t num_event_features = 0;  // E
  int32_t num_context = 0;         // C
  // The context of the attribution baseline, [C]: each context feature's mean over the
  // bundle's training examples (FeatureSpec::baseline); empty means zeros.
  std::vector<float> context_baseline;
};

// The attribution baseline's input: the empty history (the padding item without side-features
// in every position, mask 0) under shape.context_baseline (a bundle's models get
// core::ContextBaseline of its manifest), or a context of zeros when that is empty (a shape
// made by hand). The warm-up request too. REQUIRES: context_baseline is empty or of size
// num_context.
ModelInput BaselineInput(const ModelShape& shape);

// Points of a model's embedded input space at which Gradients evaluates the score: P points,
// each an embedded history [L, D] (what embed() returns) and a context [C], all under one mask.
struct EmbeddedPoints {
  std::vector<float> embedded;  // [P * L * D]
  std::vector<float> context;   // [P * C]
  std::vector<float> mask;      // [L]
  std::vector<double> weights;  // [P]: each point's weight in the gradient sums.
  size_t size() const { return weights.size(); }
};

// What Gradients returns for K targets at P points.
struct ScoreGradients {
  std::vector<float> scores;    // [P * K]: scores[p * K + k], target k's score at point p.
  std::vector<float> embedded;  // [K * L * D]: sum over p of weights[p] * d score_k / d embedded.
  std::vector<float> context;   // [K * C]: the same for the context.
};

// One input of ModelRunner::ScorePrefixes: the history of a request's first `events` real
// events (oldest first, left-padded as a shorter request would be) under `context`, with the
// request input's side-features or, where given, with `event_features` instead (laid out as the
// request input's: replay's steps that add one side-feature kind at a time), and without the
// one at `left_out` (0 = the oldest of them; the older ones move one place toward the present,
// padding in front: replay's leave-one-out rows) unless it is -1.
struct PrefixRow {
  int32_t events = 0;
  std::vector<float> context;         // [C]
  std::vector<float> event_features;  // [L * E], or empty: the request input's.
  int32_t left_out = -1;              // In [0, events), or -1.

  bool operator==(const PrefixRow& o) const {
    return events == o.events && context == o.context && event_features == o.event_features &&
           left_out == o.left_out;
  }
  // Whether the row's history is a prefix of the request's as it stands (so a one-pass
  // implementation reads it from the pass over the request's prefixes).
  bool IsPrefix() const { return event_features.empty() && left_out < 0; }
};

// ScorePrefixes' arguments (without the targets) kept by ModelRunner::ScoreAllSavingRows, with
// what the model computed for them in the ranker's pass, for ScoreSavedRows to score later.
// Empty (no rows) when nothing was saved.
struct SavedRows {
  ModelInput input;
  std::vector<PrefixRow> rows;
  std::vector<float> users;  // Implementation-defined (TorchScript: user vectors, [R * H]).
};

// The number m of real events of `input` (mask != 0), which must fill its last positions.
// Errors: INVALID_ARGUMENT when a padding position comes after a real event.
absl::StatusOr<int32_t> CountRealEvents(const ModelInput& input);

// The checks of a ModelRunner::ScorePrefixes call on model `name` of `shape`; returns the
// input's number of real events. Errors: INVALID_ARGUMENT naming the model and what is wrong.
absl::StatusOr<int32_t> CheckPrefixRequest(const std::string& name, const ModelShape& shape,
                                           const ModelInput& input,
                                           const std::vector<PrefixRow>& rows);

// The input `row` of a ScorePrefixes call on `input` stands for. REQUIRES: CheckPrefixRequest
// accepted them and returned m.
ModelInput PrefixInput(const ModelShape& shape, const ModelInput& input, int32_t m,
                       const PrefixRow& row);

// A sequential recommender of a bundle, behind the model contract of tools/recsys_models.py:
// embed(items, event_features) -> [B,L,D]; encode(embedded, mask, context) -> [B,H];
// item_table() -> [N,H]; item_bias() -> [N]; score = encode . item_table^T + item_bias; and,
// optionally, prefix_sequences / user_vectors (every prefix of a history from one pass).
// No Torch type appears here: the TorchScript implementation lives in torch_model_runner.cc.
//
// Implementations are thread-safe: every method may run concurrently from several threads.
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

  // Scores of `targets` for each of `rows`, made from one request `input` (the replay
  // attribution's inputs, explain/replay.h): scores[r * K + k]. This default builds every
  // row's input (PrefixInput) and calls ScoreTargets; a model whose encoder gives the sequence
  // vector of every prefix of a history, and of further whole inputs, from one pass overrides
  // it. REQUIRES: `input` has the sizes of shape() with its m real events in the last
  // positions; per row 0 <= events <= m, -1 <= left_out < events, a context of size C and
  // event_features empty or of size L * E; targets < N. Errors: INVALID_ARGUMENT for a violated
  // requirement, INTERNAL when the model fails.
  virtual absl::Status ScorePrefixes(const ModelInput& input, const std::vector<PrefixRow>& rows,
                                     const std::vector<ItemIndex>& targets,
                                     std::vector<float>* scores) const;
  // Whether ScorePrefixes costs one pass of the encoder whatever the number of rows (else one
  // input per row).
  virtual bool ScoresPrefixesInOnePass() const { return false; }

  // ScoreAll(`whole`, scores), and, where the model can do it in the same encoder pass, what
  // ScoreSavedRows needs to score ScorePrefixes(`input`, `rows`, targets) for any targets later,
  // in `saved` (else `saved` is left empty: this default). The TorchScript runner with a
  // one-pass ScorePrefixes does: the scores of `whole` then come from the row that stands for it
  // (the last of replay's rows, or one more row of the batch), within float rounding of
  // ScoreAll's, so that the replay attribution (explain/replay.h) adds no encoder pass to
  // ranking. REQUIRES: those of ScoreAll and of ScorePrefixes. Errors: theirs.
  virtual absl::Status ScoreAllSavingRows(const ModelInput& whole, const ModelInput& input,
                                          const std::vector<PrefixRow>& rows,
                                          std::vector<float>* scores, SavedRows* saved) const;
  // ScorePrefixes(saved.input, saved.rows, targets, scores), from what ScoreAllSavingRows of
  // this model saved. Errors: INVALID_ARGUMENT for targets outside the catalogue or a `saved`
  // whose size does not fit this model; those of ScorePrefixes.
  virtual absl::Status ScoreSavedRows(const SavedRows& saved, const std::vector<ItemIndex>& targets,
                                      std::vector<float>* scores) const;

  // Scores of all items for the attribution baseline, BaselineInput(shape()). Computed once at
  // load.
  virtual const std::vector<float>& baseline_scores() const = 0;

  // Width D of the embedding embed() returns.
  virtual int32_t embedding_dim() const = 0;

  // embed(items, event_features) of B inputs in one pass: `items` is [B * L] (padding index N
  // allowed), `event_features` [B * L * E]; `embedded` receives [B * L * D].
  // REQUIRES: items.size() is a multiple of L and event_features.size() == items.size() * E.
  // Errors: INVALID_ARGUMENT for wrong sizes or an item index > N, INTERNAL when the model fails.
  virtual absl::Status Embed(const std::vector<int64_t>& items,
                             const std::vector<float>& event_features,
                             std::vector<float>* embedded) const = 0;

  // The scores of `targets` at every point and their weighted gradients with respect to the
  // embedded history and the context, all points and targets in one batched forward and
  // backward pass (the gradient primitive the attribution methods of explain/ build on). Uses
  // autograd, not inference mode. REQUIRES: `points` holds P >= 1 points of the sizes of
  // shape() and embedding_dim(); targets < N. Errors: INVALID_ARGUMENT for wrong sizes or
  // targets, INTERNAL when the model fails.
  virtual absl::Status Gradients(const EmbeddedPoints& points,
                                 const std::vector<ItemIndex>& targets,
                                 ScoreGradients* out) const = 0;
};

// Loads the model file `path` described by `spec`, checks the contract and the shapes with a
// warm-up call, and returns it ready to score. Errors name the file and what is wrong. Called at
// start-up and on the reload thread: must be thread-safe.
using ModelLoader = std::function<absl::StatusOr<std::unique_ptr<ModelRunner>>(
    const std::string& path, const ModelSpec& spec, const ModelShape& shape)>;

}  // namespace recsys::core

#endif  // RECSYS_CORE_MODEL_RUNNER_H_
