#ifndef RECSYS_TESTS_TESTUTIL_FAKE_MODEL_H_
#define RECSYS_TESTS_TESTUTIL_FAKE_MODEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/manifest.h"
#include "core/model_runner.h"

namespace recsys::testing {

struct FakeModelOptions {
  int32_t embedding_dim = 4;
  // Seeds the parameters; a model's name is mixed in, so two sources differ.
  uint64_t seed = 1;
  // Every entry of the padding item's embedding (trained models embed padding to 0).
  float pad_embedding = 0.0f;
  // Every position weighs 1: an event's share of the score does not depend on where it sits,
  // so that leaving events out (without timestamps, which make gaps) is an additive game.
  bool equal_positions = false;
  // What ScoresPrefixesInOnePass says (ScorePrefixes stays the default: one input per row).
  bool one_pass_prefixes = false;
  // Called at the start of every ScoreAll, ScoreTargets, Embed and Gradients call: a non-OK
  // status makes the call fail with it (failure injection); a test may also advance a FakeClock
  // here, so that "the model took 5 ms" needs no wall clock.
  std::function<absl::Status()> on_call;
};

// A model linear in its inputs, behind core::ModelRunner, with exact gradients and no LibTorch:
//   embed(i, f)[p] = item_embedding[i] + sum_e f[p, e] * feature_embedding[e]
//   user = sum_p mask[p] * position_weight[p] * embedded[p] + sum_c context[c] *
//   context_embedding[c] score(j) = user . table[j] + bias[j]
// Parameters are pseudo-random in [-0.5, 0.5) from the seed (position weights in [0.5, 1.5)).
// Because the score is linear, Integrated Gradients with any quadrature equals gradient x
// (input - baseline) and every attribution is exact: tests can compare with the closed form.
// Thread-safe.
class FakeModelRunner final : public core::ModelRunner {
 public:
  FakeModelRunner(std::string name, const core::ModelShape& shape, FakeModelOptions options);

  const std::string& name() const override { return name_; }
  const core::ModelShape& shape() const override { return shape_; }
  const std::string& device() const override { return device_; }
  int32_t embedding_dim() const override { return options_.embedding_dim; }
  const std::vector<float>& baseline_scores() const override { return baseline_; }
  bool ScoresPrefixesInOnePass() const override { return options_.one_pass_prefixes; }
  absl::Status ScoreAll(const core::ModelInput& input, std::vector<float>* scores) const override;
  absl::Status ScoreTargets(const std::vector<core::ModelInput>& inputs,
                            const std::vector<core::ItemIndex>& targets,
                            std::vector<float>* scores) const override;
  absl::Status Embed(const std::vector<int64_t>& items, const std::vector<float>& event_features,
                     std::vector<float>* embedded) const override;
  // The default (ScoreAll, nothing saved), counted in saving_calls().
  absl::Status ScoreAllSavingRows(const core::ModelInput& whole, const core::ModelInput& input,
                                  const std::vector<core::PrefixRow>& rows,
                                  std::vector<float>* scores,
                                  core::SavedRows* saved) const override;
  absl::Status Gradients(const core::EmbeddedPoints& points,
                         const std::vector<core::ItemIndex>& targets,
                         core::ScoreGradients* out) const override;

  // The user vector of one input (the closed form above), for tests that check scores.
  std::vector<double> User(const core::ModelInput& input) const;
  // d score(target) / d context[c], exact.
  double ContextGradient(core::ItemIndex target, int c) const;
  // Calls of ScoreAll / ScoreTargets / Embed / Gradients so far.
  int calls() const;
  // Calls of ScoreAllSavingRows so far (the ranker asked to save rows).
  int saving_calls() const;

 private:
  absl::Status Enter() const;
  absl::Status CheckInput(const core::ModelInput& input) const;
  double Score(const std::vector<double>& user, core::ItemIndex item) const;

  std::string name_;
  core::ModelShape shape_;
  FakeModelOptions options_;
  std::string device_ = "cpu";
  std::vector<float> item_embedding_;     // [(N + 1) * D]; row N is the padding item.
  std::vector<float> feature_embedding_;  // [E * D]
  std::vector<float> position_weight_;    // [L]
  std::vector<float> context_embedding_;  // [C * D]
  std::vector<float> table_;              // [N * D]
  std::vector<float> bias_;               // [N]
  std::vector<float> baseline_;
  mutable absl::Mutex mu_;
  mutable int calls_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int saving_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// A core::ModelLoader that ignores the file and returns a FakeModelRunner of the spec's name.
core::ModelLoader FakeModelLoader(FakeModelOptions options = {});

// Adds model sources to the manifest.json of the bundle in `dir`: a "rnn"-kind model per
// source (file <name>.pt, never read by FakeModelLoader; the manifest's embedding_dim 4 is not
// what FakeModelRunner uses, its options' is), with max history `max_history`, and
// the feature schema the featurizer computes (log_quantity, log_price, log_gap_days; hour and
// weekday sin/cos, log_recency_days, country=<each of countries>, country=other).
// Errors: the manifest cannot be read, parsed or written.
absl::Status AddModelSources(const std::string& dir, const std::vector<core::SourceSpec>& models,
                             int max_history, const std::vector<std::string>& countries);

// A clock for the pipeline's options whose time moves only when told to. Thread-safe.
class FakeClock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : now_(start) {}
  absl::Time Now() const;
  void Advance(absl::Duration d);
  // A std::function reading this clock (valid while the clock lives).
  std::function<absl::Time()> AsFunction() const {
    return [this] { return Now(); };
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace recsys::testing

#endif  // RECSYS_TESTS_TESTUTIL_FAKE_MODEL_H_
