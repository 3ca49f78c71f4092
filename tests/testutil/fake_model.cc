#include "tests/testutil/fake_model.h"

#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace recsys::testing {

namespace {

// A deterministic pseudo-random value in [-0.5, 0.5) from a seed and two indices.
float Param(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t h =
      (seed * 0x9E3779B97F4A7C15ULL) ^ (a * 0xBF58476D1CE4E5B9ULL) ^ (b + 0x94D049BB133111EBULL);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 29;
  return static_cast<float>(static_cast<double>(h >> 11) * 0x1.0p-53 - 0.5);
}

uint64_t NameSeed(uint64_t seed, const std::string& name) {
  uint64_t h = seed;
  for (char c : name) h = h * 131 + static_cast<unsigned char>(c);
  return h;
}

}  // namespace

FakeModelRunner::FakeModelRunner(std::string name, const core::ModelShape& shape,
                                 FakeModelOptions options)
    : name_(std::move(name)), shape_(shape), options_(std::move(options)) {
  const uint64_t seed = NameSeed(options_.seed, name_);
  const int N = shape.num_items, D = options_.embedding_dim, E = shape.num_event_features;
  const int L = shape.max_history, C = shape.num_context;
  auto fill = [&](std::vector<float>* v, int rows, uint64_t tag) {
    v->resize(static_cast<size_t>(rows) * D);
    for (size_t i = 0; i < v->size(); ++i) (*v)[i] = Param(seed, tag, i);
  };
  fill(&item_embedding_, N + 1, 1);
  for (int d = 0; d < D; ++d)
    item_embedding_[static_cast<size_t>(N) * D + d] = options_.pad_embedding;
  fill(&feature_embedding_, E, 2);
  fill(&context_embedding_, C, 3);
  fill(&table_, N, 4);
  bias_.resize(N);
  for (int i = 0; i < N; ++i) bias_[i] = Param(seed, 5, i);
  position_weight_.resize(L);
  for (int p = 0; p < L; ++p) {
    position_weight_[p] = options_.equal_positions ? 1.0f : 1.0f + Param(seed, 6, p);
  }
  const std::vector<double> user = User(core::BaselineInput(shape_));
  for (int i = 0; i < N; ++i) baseline_.push_back(static_cast<float>(Score(user, i)));
}

absl::Status FakeModelRunner::Enter() const {
  {
    absl::MutexLock lock(&mu_);
    ++calls_;
  }
  return options_.on_call ? options_.on_call() : absl::OkStatus();
}

int FakeModelRunner::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

absl::Status FakeModelRunner::ScoreAllSavingRows(const core::ModelInput& whole,
                                                 const core::ModelInput& input,
                                                 const std::vector<core::PrefixRow>& rows,
                                                 std::vector<float>* scores,
                                                 core::SavedRows* saved) const {
  {
    absl::MutexLock lock(&mu_);
    ++saving_calls_;
  }
  return ModelRunner::ScoreAllSavingRows(whole, input, rows, scores, saved);
}

int FakeModelRunner::saving_calls() const {
  absl::MutexLock lock(&mu_);
  return saving_calls_;
}

absl::Status FakeModelRunner::CheckInput(const core::ModelInput& input) const {
  const size_t L = shape_.max_history, E = shape_.num_event_features, C = shape_.num_context;
  if (input.items.size() != L || input.event_features.size() != L * E || input.mask.size() != L ||
      input.context.size() != C) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": model input has the wrong size"));
  }
  return absl::OkStatus();
}

std::vector<double> FakeModelRunner::User(const core::ModelInput& input) const {
  const int D = options_.embedding_dim, E = shape_.num_event_features;
  std::vector<double> user(D, 0.0);
  for (int p = 0; p < shape_.max_history; ++p) {
    if (input.mask[p] == 0.0f) continue;
    for (int d = 0; d < D; ++d) {
      double e = item_embedding_[static_cast<size_t>(input.items[p]) * D + d];
      for (int f = 0; f < E; ++f) {
        e += input.event_features[static_cast<size_t>(p) * E + f] * feature_embedding_[f * D + d];
      }
      user[d] += input.mask[p] * position_weight_[p] * e;
    }
  }
  for (int c = 0; c < shape_.num_context; ++c) {
    for (int d = 0; d < D; ++d) user[d] += input.context[c] * context_embedding_[c * D + d];
  }
  return user;
}

double FakeModelRunner::Score(const std::vector<double>& user, core::ItemIndex item) const {
  double s = bias_[item];
  for (size_t d = 0; d < user.size(); ++d) s += user[d] * table_[item * user.size() + d];
  return s;
}

double FakeModelRunner::ContextGradient(core::ItemIndex target, int c) const {
  const int D = options_.embedding_dim;
  double g = 0.0;
  for (int d = 0; d < D; ++d) g += context_embedding_[c * D + d] * table_[target * D + d];
  return g;
}

absl::Status FakeModelRunner::ScoreAll(const core::ModelInput& input,
                                       std::vector<float>* scores) const {
  if (absl::Status s = Enter(); !s.ok()) return s;
  if (absl::Status s = CheckInput(input); !s.ok()) return s;
  const std::vector<double> user = User(input);
  scores->resize(shape_.num_items);
  for (int i = 0; i < shape_.num_items; ++i) (*scores)[i] = static_cast<float>(Score(user, i));
  return absl::OkStatus();
}

absl::Status FakeModelRunner::ScoreTargets(const std::vector<core::ModelInput>& inputs,
                                           const std::vector<core::ItemIndex>& targets,
                                           std::vector<float>* scores) const {
  if (absl::Status s = Enter(); !s.ok()) return s;
  scores->clear();
  for (const core::ModelInput& input : inputs) {
    if (absl::Status s = CheckInput(input); !s.ok()) return s;
    const std::vector<double> user = User(input);
    for (core::ItemIndex t : targets) {
      if (t >= static_cast<core::ItemIndex>(shape_.num_items)) {
        return absl::InvalidArgumentError(absl::StrCat(name_, ": target ", t, " out of range"));
      }
      scores->push_back(static_cast<float>(Score(user, t)));
    }
  }
  return absl::OkStatus();
}

absl::Status FakeModelRunner::Embed(const std::vector<int64_t>& items,
                                    const std::vector<float>& event_features,
                                    std::vector<float>* embedded) const {
  if (absl::Status s = Enter(); !s.ok()) return s;
  const size_t D = options_.embedding_dim, E = shape_.num_event_features;
  if (shape_.max_history <= 0 || items.size() % shape_.max_history != 0 ||
      event_features.size() != items.size() * E) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": embed input has the wrong size"));
  }
  embedded->assign(items.size() * D, 0.0f);
  for (size_t r = 0; r < items.size(); ++r) {
    if (items[r] < 0 || items[r] > shape_.num_items) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": item ", items[r], " out of range"));
    }
    for (size_t d = 0; d < D; ++d) {
      float e = item_embedding_[items[r] * D + d];
      for (size_t f = 0; f < E; ++f) e += event_features[r * E + f] * feature_embedding_[f * D + d];
      (*embedded)[r * D + d] = e;
    }
  }
  return absl::OkStatus();
}

absl::Status FakeModelRunner::Gradients(const core::EmbeddedPoints& points,
                                        const std::vector<core::ItemIndex>& targets,
                                        core::ScoreGradients* out) const {
  if (absl::Status s = Enter(); !s.ok()) return s;
  const size_t L = shape_.max_history, C = shape_.num_context, D = options_.embedding_dim;
  const size_t P = points.size(), K = targets.size();
  if (P == 0 || points.embedded.size() != P * L * D || points.context.size() != P * C ||
      points.mask.size() != L) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": gradient points have the wrong size"));
  }
  for (core::ItemIndex t : targets) {
    if (t >= static_cast<core::ItemIndex>(shape_.num_items)) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": target ", t, " out of range"));
    }
  }
  double weight_sum = 0.0;
  for (double w : points.weights) weight_sum += w;
  out->scores.clear();
  for (size_t p = 0; p < P; ++p) {
    std::vector<double> user(D, 0.0);
    for (size_t l = 0; l < L; ++l) {
      for (size_t d = 0; d < D; ++d) {
        user[d] += points.mask[l] * position_weight_[l] * points.embedded[(p * L + l) * D + d];
      }
    }
    for (size_t c = 0; c < C; ++c) {
      for (size_t d = 0; d < D; ++d)
        user[d] += points.context[p * C + c] * context_embedding_[c * D + d];
    }
    for (core::ItemIndex t : targets) out->scores.push_back(static_cast<float>(Score(user, t)));
  }
  // The gradient is the same at every point: the weighted sum is it times the weights' sum.
  out->embedded.assign(K * L * D, 0.0f);
  out->context.assign(K * C, 0.0f);
  for (size_t k = 0; k < K; ++k) {
    for (size_t l = 0; l < L; ++l) {
      for (size_t d = 0; d < D; ++d) {
        out->embedded[(k * L + l) * D + d] = static_cast<float>(
            weight_sum * points.mask[l] * position_weight_[l] * table_[targets[k] * D + d]);
      }
    }
    for (size_t c = 0; c < C; ++c) {
      out->context[k * C + c] = static_cast<float>(weight_sum * ContextGradient(targets[k], c));
    }
  }
  return absl::OkStatus();
}

core::ModelLoader FakeModelLoader(FakeModelOptions options) {
  return [options](
             const std::string&, const core::ModelSpec& spec,
             const core::ModelShape& shape) -> absl::StatusOr<std::unique_ptr<core::ModelRunner>> {
    return std::make_unique<FakeModelRunner>(spec.name, shape, options);
  };
}

absl::Status AddModelSources(const std::string& dir, const std::vector<core::SourceSpec>& models,
                             int max_history, const std::vector<std::string>& countries) {
  const std::string path = dir + "/manifest.json";
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  absl::StatusOr<core::BundleManifest> manifest = core::ParseManifest(text);
  if (!manifest.ok()) return manifest.status();
  for (const core::SourceSpec& source : models) {
    manifest->models.push_back({source.name, "rnn", source.name + ".pt", 4, max_history});
    manifest->sources.push_back(source);
  }
  manifest->event_features.clear();
  for (const char* name : {"log_quantity", "log_price", "log_gap_days"}) {
    manifest->event_features.push_back({name, "numeric", ""});
  }
  // Baselines as training means would be: off 0, the country shares adding up to 1.
  manifest->context_features.clear();
  const double share = 1.0 / static_cast<double>(countries.size() + 1);
  for (const auto& [name, mean] : std::vector<std::pair<const char*, double>>{
           {"hour_sin", -0.3}, {"hour_cos", -0.6}, {"dow_sin", 0.2}, {"dow_cos", 0.1},
           {"log_recency_days", 2.5}}) {
    manifest->context_features.push_back({name, "numeric", "", mean});
  }
  for (const std::string& country : countries) {
    manifest->context_features.push_back({"country=" + country, "numeric", "", share});
  }
  manifest->context_features.push_back({"country=other", "numeric", "", share});
  std::ofstream out(path);
  out << core::SerializeManifest(*manifest);
  if (!out.flush()) return absl::DataLossError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
}

}  // namespace recsys::testing
