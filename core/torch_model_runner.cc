// The only translation unit of core/ that includes LibTorch.
#include "core/torch_model_runner.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>
#include <torch/script.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/compact_table.h"

namespace recsys::core {

namespace {

class TorchModelRunner final : public ModelRunner {
 public:
  TorchModelRunner(std::string name, ModelShape shape, std::string device,
                   torch::jit::Module module, torch::Tensor table,
                   std::optional<CompactTable> compact, torch::Tensor bias)
      : name_(std::move(name)),
        shape_(shape),
        device_name_(std::move(device)),
        device_(device_name_),
        module_(std::move(module)),
        table_(std::move(table)),
        compact_(std::move(compact)),
        bias_(std::move(bias)) {}

  const std::string& name() const override { return name_; }
  const ModelShape& shape() const override { return shape_; }
  const std::string& device() const override { return device_name_; }
  const std::vector<float>& baseline_scores() const override { return baseline_scores_; }
  void set_baseline_scores(std::vector<float> scores) { baseline_scores_ = std::move(scores); }

  absl::Status ScoreAll(const ModelInput& input, std::vector<float>* scores) const override {
    if (absl::Status s = CheckSizes(input); !s.ok()) return s;
    return Guarded("score", [&] {
      c10::InferenceMode guard;
      ScoreCatalogue(Encode(input), scores);
    });
  }

  // The scores of every item for one user vector [1, H] or [H].
  void ScoreCatalogue(const torch::Tensor& user, std::vector<float>* scores) const {
    if (compact_) return ScoreCatalogueCompact(user, scores);
    // A matrix-vector product reads the [N, D] table once, row by row; addmm against the
    // transposed table made BLAS pack (copy) the table on every call.
    CopyOut(torch::addmv(bias_, table_, user.reshape({-1})), scores);
  }

  // ScoreAll's catalogue pass over the compact table (CPU), on LibTorch's intra-op threads as
  // addmv would run.
  void ScoreCatalogueCompact(const torch::Tensor& user, std::vector<float>* scores) const {
    const torch::Tensor x = user.reshape({compact_->width()}).contiguous();
    scores->resize(compact_->rows());
    at::parallel_for(0, compact_->rows(), /*grain_size=*/32768, [&](int64_t begin, int64_t end) {
      compact_->Score(x.data_ptr<float>(), bias_.data_ptr<float>(), begin, end, scores->data());
    });
  }

  // Rows `index` of the item table as floats, [K, H]: the values the catalogue pass uses.
  torch::Tensor TableRows(const torch::Tensor& index) const {
    if (!compact_) return table_.index_select(0, index);
    TORCH_CHECK(index.device().is_cpu(), "compact item tables live on the CPU");
    const torch::Tensor rows = index.contiguous();
    torch::Tensor out = torch::empty({rows.size(0), compact_->width()}, FloatOptions());
    for (int64_t k = 0; k < rows.size(0); ++k) {
      compact_->Row(rows.data_ptr<int64_t>()[k], out.data_ptr<float>() + k * compact_->width());
    }
    return out;
  }

  absl::Status ScoreTargets(const std::vector<ModelInput>& inputs,
                            const std::vector<ItemIndex>& targets,
                            std::vector<float>* scores) const override {
    scores->clear();
    if (inputs.empty() || targets.empty()) return absl::OkStatus();
    if (absl::Status s = CheckTargets(targets); !s.ok()) return s;
    for (const ModelInput& input : inputs) {
      if (absl::Status s = CheckSizes(input); !s.ok()) return s;
    }
    return Guarded("score", [&] {
      c10::InferenceMode guard;
      const Batch x = Stack(inputs);
      torch::Tensor user = Method("encode")({EmbedTensor(x.items, x.features), x.mask, x.context})
                               .toTensor();
      CopyOut(TargetScores(user, targets), scores);
    });
  }

  // With prefix_sequences() and user_vectors(): one embed, one pass over the input's prefixes
  // (and the other rows, with side-features of their own or an event left out, as further
  // inputs of the batch) and one user head for all rows, instead of a pass per row.
  absl::Status ScorePrefixes(const ModelInput& input, const std::vector<PrefixRow>& rows,
                             const std::vector<ItemIndex>& targets,
                             std::vector<float>* scores) const override {
    if (!scores_prefixes_) return ModelRunner::ScorePrefixes(input, rows, targets, scores);
    scores->clear();
    absl::StatusOr<int32_t> m = CheckPrefixRequest(name_, shape_, input, rows);
    if (!m.ok()) return m.status();
    if (absl::Status s = CheckTargets(targets); !s.ok()) return s;
    if (rows.empty() || targets.empty()) return absl::OkStatus();
    return Guarded("score prefixes", [&] {
      c10::InferenceMode guard;
      CopyOut(TargetScores(PrefixUsers(input, *m, rows), targets), scores);
    });
  }

  // One pass for the rows and `whole`: its scores come from the row that stands for it (the
  // last, in replay's rows), or from one more row of the batch; when no row over `input` can
  // stand for it (other items), nothing is saved and ScoreAll runs.
  absl::Status ScoreAllSavingRows(const ModelInput& whole, const ModelInput& input,
                                  const std::vector<PrefixRow>& rows, std::vector<float>* scores,
                                  SavedRows* saved) const override {
    *saved = SavedRows();
    if (!scores_prefixes_ || rows.empty()) {
      return ModelRunner::ScoreAllSavingRows(whole, input, rows, scores, saved);
    }
    if (absl::Status s = CheckSizes(whole); !s.ok()) return s;
    absl::StatusOr<int32_t> m = CheckPrefixRequest(name_, shape_, input, rows);
    if (!m.ok()) return m.status();
    saved->input = input;
    saved->rows = rows;
    std::vector<PrefixRow> all = rows;
    if (!(PrefixInput(shape_, input, *m, all.back()) == whole)) {
      const PrefixRow row{*m, whole.context, whole.event_features};
      if (!(PrefixInput(shape_, input, *m, row) == whole)) {
        return ModelRunner::ScoreAllSavingRows(whole, input, rows, scores, saved);
      }
      all.push_back(row);
    }
    return Guarded("score", [&] {
      c10::InferenceMode guard;
      const torch::Tensor users = PrefixUsers(input, *m, all);
      ScoreCatalogue(users[static_cast<int64_t>(all.size()) - 1], scores);
      CopyOut(users.slice(0, 0, static_cast<int64_t>(rows.size())), &saved->users);
    });
  }

  absl::Status ScoreSavedRows(const SavedRows& saved, const std::vector<ItemIndex>& targets,
                              std::vector<float>* scores) const override {
    if (saved.users.empty()) return ModelRunner::ScoreSavedRows(saved, targets, scores);
    const int64_t R = static_cast<int64_t>(saved.rows.size()), H = item_width();
    scores->clear();
    if (static_cast<int64_t>(saved.users.size()) != R * H) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": saved rows of another model (",
                                                     saved.users.size(), " values for ", R,
                                                     " rows of width ", H, ")"));
    }
    if (absl::Status s = CheckTargets(targets); !s.ok()) return s;
    if (targets.empty()) return absl::OkStatus();
    return Guarded("score saved rows", [&] {
      c10::InferenceMode guard;
      CopyOut(TargetScores(ToDevice(saved.users, {R, H}), targets), scores);
    });
  }

  // The user vectors of `rows` of `input` (m real events), [R, H], from one PrefixSequences
  // pass. REQUIRES: CheckPrefixRequest accepted them; rows is not empty; inference mode.
  torch::Tensor PrefixUsers(const ModelInput& input, int32_t m,
                            const std::vector<PrefixRow>& rows) const {
    const int64_t L = shape_.max_history, C = shape_.num_context;
    const int64_t R = static_cast<int64_t>(rows.size());
    std::vector<ModelInput> batch = {input};
    std::vector<int64_t> pick;  // The row of PrefixSequences(batch) each row reads.
    std::vector<float> context;
    for (const PrefixRow& row : rows) {
      if (row.IsPrefix()) {
        pick.push_back(L - m + row.events);  // The input's first so many positions.
      } else {
        pick.push_back(L + static_cast<int64_t>(batch.size()));
        batch.push_back(PrefixInput(shape_, input, m, row));
      }
      context.insert(context.end(), row.context.begin(), row.context.end());
    }
    torch::Tensor user =
        Method("user_vectors")(
            {PrefixSequences(batch).index_select(0, torch::tensor(pick, LongOptions()).to(device_)),
             ToDevice(context, {R, C})})
            .toTensor();
    TORCH_CHECK(user.dim() == 2 && user.size(0) == R && user.size(1) == item_width(),
                "user_vectors() gave ", user.sizes(), " for ", R, " rows");
    return user;
  }

  // prefix_sequences() of `batch`, [L + B, S]: input 0's L + 1 prefixes, then each further
  // input whole. A module made before further inputs were part of the contract gives input 0's
  // rows only; it is then run once per further input, which takes that run's row L.
  torch::Tensor PrefixSequences(const std::vector<ModelInput>& batch) const {
    const int64_t L = shape_.max_history;
    auto run = [&](absl::Span<const ModelInput> inputs) {
      torch::Tensor rows = RunPrefixSequences(inputs);
      const int64_t expected = L + (batched_prefixes_ ? static_cast<int64_t>(inputs.size()) : 1);
      TORCH_CHECK(rows.dim() == 2 && rows.size(0) == expected, "prefix_sequences() gave ",
                  rows.sizes(), " for ", inputs.size(), " inputs, expected [", expected, ", S]");
      return rows;
    };
    if (batched_prefixes_ || batch.size() == 1) return run(batch);
    std::vector<torch::Tensor> parts = {run(absl::MakeConstSpan(&batch[0], 1))};
    for (size_t b = 1; b < batch.size(); ++b) {
      parts.push_back(run(absl::MakeConstSpan(&batch[b], 1)).slice(0, L, L + 1));
    }
    return torch::cat(parts);
  }

  // prefix_sequences(embed(inputs), their masks), unchecked.
  torch::Tensor RunPrefixSequences(absl::Span<const ModelInput> inputs) const {
    const Batch x = Stack(inputs);
    return Method("prefix_sequences")({EmbedTensor(x.items, x.features), x.mask}).toTensor();
  }

  // The number of rows prefix_sequences() gives for two empty histories: L + 2 from a module
  // that scores further inputs whole, L + 1 from one made before.
  absl::StatusOr<int64_t> PrefixRowsOfTwo() const {
    int64_t rows = 0;
    absl::Status s = Guarded("prefix_sequences", [&] {
      c10::InferenceMode guard;
      const ModelInput empty = BaselineInput(shape_);
      rows = RunPrefixSequences({empty, empty}).size(0);
    });
    if (!s.ok()) return s;
    return rows;
  }
  void set_batched_prefixes(bool on) { batched_prefixes_ = on; }

  bool ScoresPrefixesInOnePass() const override { return scores_prefixes_; }
  void set_scores_prefixes(bool on) { scores_prefixes_ = on; }

  bool HasMethod(const char* name) const { return module_.find_method(name).has_value(); }
  // Width H of item_table().
  int64_t item_width() const { return compact_ ? compact_->width() : table_.size(1); }

  int32_t embedding_dim() const override { return embedding_dim_; }
  void set_embedding_dim(int32_t d) { embedding_dim_ = d; }

  absl::Status Embed(const std::vector<int64_t>& items, const std::vector<float>& event_features,
                     std::vector<float>* embedded) const override {
    const int64_t L = shape_.max_history, E = shape_.num_event_features;
    const int64_t B = static_cast<int64_t>(items.size()) / L;
    if (B * L != static_cast<int64_t>(items.size()) ||
        static_cast<int64_t>(event_features.size()) != B * L * E) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": embed input has the wrong size"));
    }
    for (int64_t item : items) {
      if (item < 0 || item > shape_.num_items) {
        return absl::InvalidArgumentError(
            absl::StrCat(name_, ": item index ", item, " is outside the catalogue"));
      }
    }
    return Guarded("embed", [&] {
      c10::InferenceMode guard;
      torch::Tensor out = EmbedTensor(
          torch::from_blob(const_cast<int64_t*>(items.data()), {B, L}, LongOptions()),
          torch::from_blob(const_cast<float*>(event_features.data()), {B, L, E}, FloatOptions()));
      CopyOut(out, embedded);
    });
  }

  absl::Status Gradients(const EmbeddedPoints& points, const std::vector<ItemIndex>& targets,
                         ScoreGradients* out) const override {
    const int64_t L = shape_.max_history, C = shape_.num_context, D = embedding_dim_;
    const int64_t P = static_cast<int64_t>(points.size());
    const int64_t K = static_cast<int64_t>(targets.size());
    if (P == 0 || points.embedded.size() != static_cast<size_t>(P * L * D) ||
        points.context.size() != static_cast<size_t>(P * C) ||
        points.mask.size() != static_cast<size_t>(L)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_, ": gradient points have the wrong size"));
    }
    if (absl::Status s = CheckTargets(targets); !s.ok()) return s;
    return Guarded("gradients", [&] {
      torch::NoGradGuard no_grad;  // Only the forward pass below records gradients.
      // Rows point-major, target-minor: row p*K + k is target k at point p.
      torch::Tensor path = ToDevice(points.embedded, {P, L, D}).repeat_interleave(K, 0);
      torch::Tensor context = ToDevice(points.context, {P, C}).repeat_interleave(K, 0);
      path.set_requires_grad(true);
      context.set_requires_grad(true);
      torch::Tensor mask = ToDevice(points.mask, {1, L}).expand({P * K, L});
      torch::Tensor index = TargetIndex(targets);
      torch::Tensor rows = index.repeat({P});
      torch::AutoGradMode enable(true);
      torch::Tensor user = Method("encode")({path, mask, context}).toTensor();
      torch::Tensor logits =
          (user * TableRows(index).repeat({P, 1})).sum(1) + bias_.index_select(0, rows);  // [P*K]
      std::vector<torch::Tensor> grads = torch::autograd::grad({logits.sum()}, {path, context});
      torch::Tensor w =
          torch::tensor(std::vector<float>(points.weights.begin(), points.weights.end()))
              .to(device_)
              .repeat_interleave(K);
      CopyOut(logits.detach(), &out->scores);
      CopyOut((grads[0] * w.view({P * K, 1, 1})).view({P, K, L, D}).sum(0), &out->embedded);
      CopyOut((grads[1] * w.view({P * K, 1})).view({P, K, C}).sum(0), &out->context);
    });
  }

  absl::Status CheckSizes(const ModelInput& input) const {
    const size_t L = shape_.max_history, E = shape_.num_event_features, C = shape_.num_context;
    if (input.items.size() != L || input.event_features.size() != L * E || input.mask.size() != L ||
        input.context.size() != C) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": model input has the wrong size"));
    }
    return absl::OkStatus();
  }

  // B inputs' tensors on the model's device, shaped [B, ...]. REQUIRES: each has the sizes of
  // shape().
  struct Batch {
    torch::Tensor items, features, mask, context;
  };
  Batch Stack(absl::Span<const ModelInput> inputs) const {
    const int64_t L = shape_.max_history, E = shape_.num_event_features, C = shape_.num_context;
    const int64_t B = static_cast<int64_t>(inputs.size());
    Batch x = {torch::empty({B, L}, LongOptions()), torch::empty({B, L, E}, FloatOptions()),
               torch::empty({B, L}, FloatOptions()), torch::empty({B, C}, FloatOptions())};
    for (int64_t b = 0; b < B; ++b) {
      const ModelInput& input = inputs[b];
      std::copy(input.items.begin(), input.items.end(), x.items.data_ptr<int64_t>() + b * L);
      std::copy(input.event_features.begin(), input.event_features.end(),
                x.features.data_ptr<float>() + b * L * E);
      std::copy(input.mask.begin(), input.mask.end(), x.mask.data_ptr<float>() + b * L);
      std::copy(input.context.begin(), input.context.end(), x.context.data_ptr<float>() + b * C);
    }
    return {x.items.to(device_), x.features.to(device_), x.mask.to(device_),
            x.context.to(device_)};
  }

  // The scores of `targets` for each user vector of `user` [B, H]: [B, K].
  torch::Tensor TargetScores(const torch::Tensor& user,
                             const std::vector<ItemIndex>& targets) const {
    torch::Tensor index = TargetIndex(targets);
    return torch::addmm(bias_.index_select(0, index), user, TableRows(index).t());
  }

  // Runs `body`, mapping LibTorch's exceptions (and any other) to INTERNAL naming the step.
  template <typename Body>
  absl::Status Guarded(const char* step, Body body) const {
    try {
      body();
      return absl::OkStatus();
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(name_, ": ", step, ": ", e.what_without_backtrace()));
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat(name_, ": ", step, ": ", e.what()));
    }
  }

  absl::Status CheckTargets(const std::vector<ItemIndex>& targets) const {
    for (ItemIndex t : targets) {
      if (t < 0 || t >= static_cast<ItemIndex>(shape_.num_items)) {
        return absl::InvalidArgumentError(
            absl::StrCat(name_, ": target ", t, " is outside the catalogue"));
      }
    }
    return absl::OkStatus();
  }

  static torch::TensorOptions LongOptions() { return torch::TensorOptions().dtype(torch::kLong); }
  static torch::TensorOptions FloatOptions() { return torch::TensorOptions().dtype(torch::kFloat); }

  // A copy of `data` on the model's device, shaped `sizes`.
  torch::Tensor ToDevice(const std::vector<float>& data, at::IntArrayRef sizes) const {
    return torch::from_blob(const_cast<float*>(data.data()), sizes, FloatOptions())
        .to(device_)
        .clone();
  }

  torch::Tensor TargetIndex(const std::vector<ItemIndex>& targets) const {
    return torch::tensor(std::vector<int64_t>(targets.begin(), targets.end()), LongOptions())
        .to(device_);
  }

  // Copies a float tensor to `out`, row-major, from any device.
  static void CopyOut(const torch::Tensor& t, std::vector<float>* out) {
    torch::Tensor cpu = t.to(torch::kCPU).contiguous();
    out->assign(cpu.data_ptr<float>(), cpu.data_ptr<float>() + cpu.numel());
  }

  // TorchScript modules are safe to run from several threads; get_method is const-safe.
  torch::jit::Method Method(const char* name) const {
    return const_cast<torch::jit::Module&>(module_).get_method(name);
  }

  torch::Tensor EmbedTensor(const torch::Tensor& items, const torch::Tensor& features) const {
    return Method("embed")({items.to(device_), features.to(device_)}).toTensor();
  }

  // encode(embed(items, features), mask, context) for one request: [1, H].
  torch::Tensor Encode(const ModelInput& input) const {
    const Batch x = Stack(absl::MakeConstSpan(&input, 1));
    return Method("encode")({EmbedTensor(x.items, x.features), x.mask, x.context}).toTensor();
  }

 private:
  const std::string name_;
  const ModelShape shape_;
  const std::string device_name_;
  const torch::Device device_;
  const torch::jit::Module module_;
  const torch::Tensor table_;  // item_table(), [N, H], contiguous float; undefined with compact_.
  const std::optional<CompactTable> compact_;  // item_table() in fewer bytes (CPU only).
  const torch::Tensor bias_;                   // [N]
  std::vector<float> baseline_scores_;
  int32_t embedding_dim_ = 0;
  bool scores_prefixes_ = false;
  bool batched_prefixes_ = false;  // prefix_sequences() scores further inputs whole.
};

std::string Shape(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) absl::StrAppend(&s, i ? "," : "", t.size(i));
  return s + "]";
}

// A made-up request of `m` events (items spread over the catalogue, side-features and context
// non-zero) and every prefix of it, each row under a context of its own, and rows of the other
// kinds: side-features of their own, an event left out.
void MadeUpPrefixes(const ModelShape& shape, int32_t m, ModelInput* input,
                    std::vector<PrefixRow>* rows) {
  const int32_t L = shape.max_history, E = shape.num_event_features, C = shape.num_context;
  input->items.assign(L, shape.num_items);
  input->event_features.assign(static_cast<size_t>(L) * E, 0.0f);
  input->mask.assign(L, 0.0f);
  input->context.assign(C, 0.5f);
  for (int32_t i = 0; i < m; ++i) {
    const int32_t p = L - m + i;
    input->items[p] = (7919 * i) % shape.num_items;
    input->mask[p] = 1.0f;
    for (int32_t e = 0; e < E; ++e) input->event_features[p * E + e] = 0.25f * (1 + (i + e) % 3);
  }
  rows->clear();
  for (int32_t j = 0; j <= m; ++j) {
    std::vector<float> context(C);
    for (int32_t c = 0; c < C; ++c) context[c] = 0.1f * ((j + c) % 7);
    rows->push_back({j, std::move(context)});
  }
  // Two rows with side-features of their own (other values, the whole history and half of it).
  for (int32_t j : {m, m / 2}) {
    PrefixRow& row = rows->emplace_back(PrefixRow{j, input->context});
    row.event_features = input->event_features;
    for (float& f : row.event_features) f = 0.75f - f;
  }
  // Rows with the oldest, a middle and the newest event left out (each once, if m > 0).
  std::vector<int32_t> left_out = {0, m / 2, m - 1};
  left_out.erase(std::unique(left_out.begin(), left_out.end()), left_out.end());
  for (int32_t j : left_out) {
    if (j >= 0 && j < m) rows->push_back(PrefixRow{m, input->context, {}, j});
  }
}

// Switches on `runner`'s one-pass ScorePrefixes when its module exports prefix_sequences and
// user_vectors, after checking them against encode() on every prefix of two made-up histories
// (one filling the window, one shorter) and on rows of the other kinds (MadeUpPrefixes): a module
// whose one-pass rows are not its encoder's would give wrong attributions silently.
absl::Status EnablePrefixPath(const ModelShape& shape, TorchModelRunner* runner) {
  if (!runner->HasMethod("prefix_sequences") || !runner->HasMethod("user_vectors") ||
      shape.num_items == 0) {
    return absl::OkStatus();
  }
  const int32_t longest = std::min(shape.max_history, shape.num_items);
  std::vector<ItemIndex> targets;
  for (int32_t t = 0; t < std::min(shape.num_items, 8); ++t) targets.push_back(t);
  // A module that fails on two inputs, or gives other rows, is run one input at a time.
  absl::StatusOr<int64_t> rows_of_two = runner->PrefixRowsOfTwo();
  runner->set_batched_prefixes(rows_of_two.ok() && *rows_of_two == shape.max_history + 2);
  for (int32_t m : {longest, longest / 2}) {
    ModelInput input;
    std::vector<PrefixRow> rows;
    MadeUpPrefixes(shape, m, &input, &rows);
    std::vector<float> each, once;
    runner->set_scores_prefixes(false);
    if (absl::Status s = runner->ScorePrefixes(input, rows, targets, &each); !s.ok()) return s;
    runner->set_scores_prefixes(true);
    if (absl::Status s = runner->ScorePrefixes(input, rows, targets, &once); !s.ok()) return s;
    for (size_t i = 0; i < each.size(); ++i) {
      const bool close = once.size() == each.size() &&
                         std::abs(each[i] - once[i]) <= 1e-4f * (1.0f + std::abs(each[i]));
      if (!close) {  // Also a NaN.
        runner->set_scores_prefixes(false);
        const PrefixRow& row = rows[i / targets.size()];
        return absl::FailedPreconditionError(absl::StrCat(
            "prefix_sequences() does not match encode(): the history of the first ", row.events,
            " of ", m, " events",
            row.left_out >= 0 ? absl::StrCat(" without event ", row.left_out) : std::string(),
            row.event_features.empty() ? "" : " with side-features of its own", " scores item ",
            targets[i % targets.size()], " ", i < once.size() ? once[i] : NAN, " through it, ",
            each[i], " through encode()"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckTorchDevice(const std::string& device) {
  static const std::regex kPattern("cpu|cuda:[0-9]+");
  if (!std::regex_match(device, kPattern)) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", device, "': expected cpu or cuda:N"));
  }
  if (device == "cpu") return absl::OkStatus();
  const int index = std::stoi(device.substr(5));
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device '", device, "': CUDA is not available to this LibTorch build or machine"));
  }
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    return absl::FailedPreconditionError(
        absl::StrCat("device '", device, "': only ", torch::cuda::device_count(), " CUDA devices"));
  }
  return absl::OkStatus();
}

absl::Status SetTorchThreads(int intra_op, int inter_op) {
  try {
    at::set_num_threads(intra_op);
    at::set_num_interop_threads(inter_op);
  } catch (const c10::Error& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("LibTorch thread counts: ", e.what_without_backtrace()));
  }
  // Debian's LibTorch calls the system BLAS; OpenBLAS keeps a pool of its own sized to the
  // machine whose threads spin while they wait, fighting the request threads for the same
  // cores (measured: 2.8x less throughput with occlusion on 2 cores). Give BLAS the same
  // budget as LibTorch. Looked up at run time: the BLAS may not be OpenBLAS.
  using SetBlasThreads = void (*)(int);
  auto set = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set != nullptr) set(intra_op);
  return absl::OkStatus();
}

absl::Status KeepFreedMemoryForReuse() {
#if defined(__GLIBC__)
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit machines; a fixed threshold
  // also switches off its adaptive one.
  if (mallopt(M_MMAP_THRESHOLD, 32 << 20) != 1 || mallopt(M_TRIM_THRESHOLD, 64 << 20) != 1) {
    return absl::FailedPreconditionError("glibc refused the malloc thresholds (mallopt)");
  }
#endif
  return absl::OkStatus();
}

int BlasThreads() {
  using GetBlasThreads = int (*)();
  auto get = reinterpret_cast<GetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get == nullptr ? -1 : get();
}

namespace {

// The module at `path` on `device`, in eval mode, with the contract's methods. cuDNN's RNN
// refuses a backward pass in eval mode ("cudnn RNN backward can only be called in training
// mode", the failure Captum users meet), and switching a shared module to train mode per
// request is neither thread-safe nor right for dropout. The attribution pass needs that
// backward, so models on CUDA run on LibTorch's native CUDA kernels: cuDNN is switched off for
// the process, once, before any model loads. For this service's small recurrent and
// convolutional encoders the native kernels cost little; see docs/explanations.md.
// Errors: FAILED_PRECONDITION naming the missing method; LibTorch's exceptions pass through.
absl::StatusOr<torch::jit::Module> LoadModule(const std::string& path, const std::string& device) {
  if (device != "cpu") at::globalContext().setUserEnabledCuDNN(false);
  torch::jit::Module module = torch::jit::load(path, torch::Device(device));
  module.eval();
  for (const char* method : {"embed", "encode", "item_table", "item_bias"}) {
    if (!module.find_method(method)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no method ", method, "() (the contract is embed / encode / item_table / item_bias)"));
    }
  }
  return module;
}

// Every entry of `values` finite, and with `half` within half's range. `what` names the
// method that returned them. Errors: FAILED_PRECONDITION saying which. The extremes propagate
// a NaN and need no table-sized temporary (a load's peak memory).
absl::Status CheckTableValues(const torch::Tensor& values, bool half, absl::string_view what) {
  const double largest = std::max(values.max().item<double>(), -values.min().item<double>());
  if (!std::isfinite(largest)) {
    return absl::FailedPreconditionError(absl::StrCat(what, " has entries that are not finite"));
  }
  if (half && largest > kLargestHalf) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " has an entry of size ", largest, ", beyond half precision's ",
                     kLargestHalf, ": serve it with --item_tables=int8 or float"));
  }
  return absl::OkStatus();
}

// The module's item table encoded from item_table_rows(begin, end) slice by slice, so that
// the float table is never held whole (at 1M items it is as large as the model file's output
// table again). Errors: FAILED_PRECONDITION for a slice of the wrong shape or values
// CheckTableValues refuses.
absl::StatusOr<CompactTable> ReadCompactTable(torch::jit::Module& module, TableEncoding encoding,
                                              int64_t rows) {
  torch::jit::Method rows_of = module.get_method("item_table_rows");
  const torch::Tensor first = rows_of({int64_t{0}, std::min<int64_t>(rows, 1)}).toTensor();
  if (first.dim() != 2) {
    return absl::FailedPreconditionError(
        absl::StrCat("item_table_rows(0, 1) is ", Shape(first), ", expected 2 dimensions"));
  }
  const int64_t width = first.size(1);
  const torch::Tensor beyond = rows_of({rows, rows + 1}).toTensor();
  if (beyond.dim() != 2 || beyond.size(0) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("item_table_rows(", rows, ", ", rows + 1, ") is ", Shape(beyond),
                     ": the table has more rows than the catalogue's ", rows, " items"));
  }
  return CompactTable::Encode(
      encoding, rows, width, [&](int64_t begin, int64_t end, float* out) -> absl::Status {
        torch::Tensor values = rows_of({begin, end}).toTensor();
        if (values.dim() != 2 || values.size(0) != end - begin || values.size(1) != width) {
          return absl::FailedPreconditionError(
              absl::StrCat("item_table_rows(", begin, ", ", end, ") is ", Shape(values),
                           ", expected [", end - begin, ", ", width, "]"));
        }
        const std::string what = absl::StrCat("item_table_rows(", begin, ", ", end, ")");
        if (absl::Status s = CheckTableValues(values, encoding == TableEncoding::kHalf, what);
            !s.ok()) {
          return s;
        }
        values = values.to(torch::kFloat).contiguous();
        std::memcpy(out, values.data_ptr<float>(), values.numel() * sizeof(float));
        return absl::OkStatus();
      });
}

// A runner over `module` once its item table and bias fit the catalogue. The runner keeps its
// own copy of the table (compact on CPU unless `precision` is kFloat; read in slices when the
// module exports item_table_rows); a module that exports release_item_table() then frees its
// copies (and, with compact tables, keeps its input embedding in half).
absl::StatusOr<std::unique_ptr<TorchModelRunner>> MakeRunner(torch::jit::Module module,
                                                             const std::string& device,
                                                             ItemTablePrecision precision,
                                                             const ModelSpec& spec,
                                                             const ModelShape& shape) {
  torch::Tensor bias = module.get_method("item_bias")({}).toTensor();
  if (bias.dim() != 1 || bias.size(0) != shape.num_items) {
    return absl::FailedPreconditionError(
        absl::StrCat("item_bias() is ", Shape(bias), ", expected [", shape.num_items, "]"));
  }
  if (absl::Status s = CheckTableValues(bias, false, "item_bias()"); !s.ok()) return s;
  const bool compact = precision != ItemTablePrecision::kFloat && device == "cpu";
  const TableEncoding encoding =
      precision == ItemTablePrecision::kInt8 ? TableEncoding::kInt8 : TableEncoding::kHalf;
  torch::Tensor table;
  std::optional<CompactTable> packed;
  if (compact && module.find_method("item_table_rows")) {
    absl::StatusOr<CompactTable> read = ReadCompactTable(module, encoding, shape.num_items);
    if (!read.ok()) return read.status();
    packed = *std::move(read);
  } else {
    table = module.get_method("item_table")({}).toTensor();
    if (table.dim() != 2 || table.size(0) != shape.num_items) {
      return absl::FailedPreconditionError(absl::StrCat(
          "item_table() is ", Shape(table), ", the catalogue has ", shape.num_items, " items"));
    }
    const bool half = compact && encoding == TableEncoding::kHalf;
    if (absl::Status s = CheckTableValues(table, half, "item_table()"); !s.ok()) return s;
  }
  // Released before the conversion, so that the module's tables and the converted one are
  // never all held at once (the peak memory of a load). A compact table goes with a half
  // input embedding.
  if (module.find_method("release_item_table")) {
    module.get_method("release_item_table")({compact});
  }
  bias = bias.to(torch::kFloat).contiguous();
  if (table.defined()) table = table.to(torch::kFloat).contiguous();
  if (compact && !packed) {
    packed = CompactTable::Encode(encoding, table.data_ptr<float>(), table.size(0), table.size(1));
    table = torch::Tensor();
  }
  return std::make_unique<TorchModelRunner>(spec.name, shape, device, std::move(module),
                                            std::move(table), std::move(packed), std::move(bias));
}

// Warm-up: the empty history through encode() and embed() checks their shapes, sets the
// embedding width, and checks that padding embeds to 0. Every attribution method starts from
// the empty history; the gradient methods reach it through the embedding, which they can only
// do when padding embeds to 0 (as a padding row and a bias-free side-feature projection make
// it). Errors: FAILED_PRECONDITION naming the mismatch.
absl::Status WarmUp(const ModelShape& shape, TorchModelRunner* runner) {
  const int64_t width = runner->item_width();
  torch::Tensor user = runner->Encode(BaselineInput(shape));
  if (user.dim() != 2 || user.size(0) != 1 || user.size(1) != width) {
    return absl::FailedPreconditionError(
        absl::StrCat("encode() gives ", Shape(user), ", item_table() has width ", width));
  }
  const torch::Tensor padding =
      runner->EmbedTensor(torch::full({1, shape.max_history}, shape.num_items, torch::kLong),
                          torch::zeros({1, shape.max_history, shape.num_event_features}));
  runner->set_embedding_dim(static_cast<int32_t>(padding.size(2)));
  if (const double most = padding.abs().max().item<double>(); most > 1e-6) {
    return absl::FailedPreconditionError(
        absl::StrCat("embed() of the padding item without side-features must be 0 "
                     "(the attribution baseline), its largest entry is ",
                     most));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ItemTablePrecision> ParseItemTablePrecision(const std::string& name) {
  if (name == "half") return ItemTablePrecision::kHalf;
  if (name == "float") return ItemTablePrecision::kFloat;
  if (name == "int8") return ItemTablePrecision::kInt8;
  return absl::InvalidArgumentError(
      absl::StrCat("item table precision '", name, "': expected half, int8 or float"));
}

std::string ItemTablePrecisionName(ItemTablePrecision precision) {
  switch (precision) {
    case ItemTablePrecision::kFloat:
      return "float";
    case ItemTablePrecision::kHalf:
      return "half";
    case ItemTablePrecision::kInt8:
      return "int8";
  }
  return "float";
}

ModelLoader TorchScriptLoader(const std::string& device, ItemTablePrecision precision) {
  return
      [device, precision](const std::string& path, const ModelSpec& spec,
                          const ModelShape& shape) -> absl::StatusOr<std::unique_ptr<ModelRunner>> {
        if (absl::Status s = CheckTorchDevice(device); !s.ok()) return s;
        auto wrong = [&](const absl::Status& why) {
          return absl::FailedPreconditionError(
              absl::StrCat(path, ": not a model of this bundle: ", why.message()));
        };
        try {
          absl::StatusOr<torch::jit::Module> module = LoadModule(path, device);
          if (!module.ok()) return wrong(module.status());
          c10::InferenceMode guard;
          absl::StatusOr<std::unique_ptr<TorchModelRunner>> runner =
              MakeRunner(*std::move(module), device, precision, spec, shape);
          if (!runner.ok()) return wrong(runner.status());
          if (absl::Status s = WarmUp(shape, runner->get()); !s.ok()) return wrong(s);
          if (absl::Status s = EnablePrefixPath(shape, runner->get()); !s.ok()) return wrong(s);
          std::vector<float> scores;
          if (absl::Status s = (*runner)->ScoreAll(BaselineInput(shape), &scores); !s.ok()) {
            return wrong(absl::FailedPreconditionError(s.ToString()));
          }
          (*runner)->set_baseline_scores(std::move(scores));
          return std::unique_ptr<ModelRunner>(*std::move(runner));
        } catch (const c10::Error& e) {
          return wrong(absl::FailedPreconditionError(e.what_without_backtrace()));
        } catch (const std::exception& e) {
          return wrong(absl::FailedPreconditionError(e.what()));
        }
      };
}

}  // namespace recsys::core
