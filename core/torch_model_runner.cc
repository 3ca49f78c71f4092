// The only translation unit of core/ that includes LibTorch.
#include "core/torch_model_runner.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <dlfcn.h>

#include <regex>

#include "absl/strings/str_cat.h"

namespace recsys::core {

namespace {

class TorchModelRunner final : public ModelRunner {
 public:
  TorchModelRunner(std::string name, ModelShape shape, std::string device,
                   torch::jit::Module module, torch::Tensor table, torch::Tensor bias)
      : name_(std::move(name)),
        shape_(shape),
        device_name_(std::move(device)),
        device_(device_name_),
        module_(std::move(module)),
        table_(std::move(table)),
        bias_(std::move(bias)) {}

  const std::string& name() const override { return name_; }
  const ModelShape& shape() const override { return shape_; }
  const std::string& device() const override { return device_name_; }
  const std::vector<float>& baseline_scores() const override { return baseline_scores_; }
  void set_baseline_scores(std::vector<float> scores) { baseline_scores_ = std::move(scores); }

  absl::Status ScoreAll(const ModelInput& input, std::vector<float>* scores) const override {
    if (absl::Status s = CheckSizes(input); !s.ok()) return s;
    try {
      c10::InferenceMode guard;
      torch::Tensor user = Encode(input);
      // A matrix-vector product reads the [N, D] table once, row by row; addmm against the
      // transposed table made BLAS pack (copy) the table on every call.
      torch::Tensor logits = torch::addmv(bias_, table_, user.squeeze(0)).to(torch::kCPU)
                                 .contiguous();
      scores->assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
      return absl::OkStatus();
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(name_, ": ", e.what_without_backtrace()));
    }
  }

  absl::Status ScoreTargets(const std::vector<ModelInput>& inputs,
                            const std::vector<ItemIndex>& targets,
                            std::vector<float>* scores) const override {
    const int64_t L = shape_.max_history, E = shape_.num_event_features, C = shape_.num_context;
    const int64_t B = static_cast<int64_t>(inputs.size());
    const int64_t K = static_cast<int64_t>(targets.size());
    scores->clear();
    if (B == 0 || K == 0) return absl::OkStatus();
    std::vector<int64_t> items;
    std::vector<float> features, mask, context;
    items.reserve(B * L);
    features.reserve(B * L * E);
    mask.reserve(B * L);
    context.reserve(B * C);
    for (const ModelInput& input : inputs) {
      if (absl::Status s = CheckSizes(input); !s.ok()) return s;
      items.insert(items.end(), input.items.begin(), input.items.end());
      features.insert(features.end(), input.event_features.begin(), input.event_features.end());
      mask.insert(mask.end(), input.mask.begin(), input.mask.end());
      context.insert(context.end(), input.context.begin(), input.context.end());
    }
    try {
      c10::InferenceMode guard;
      auto cpu_long = torch::TensorOptions().dtype(torch::kLong);
      auto cpu_float = torch::TensorOptions().dtype(torch::kFloat);
      torch::jit::Module& module = const_cast<torch::jit::Module&>(module_);
      torch::Tensor embedded =
          module.get_method("embed")({torch::from_blob(items.data(), {B, L}, cpu_long).to(device_),
                                      torch::from_blob(features.data(), {B, L, E}, cpu_float)
                                          .to(device_)})
              .toTensor();
      torch::Tensor user =
          module.get_method("encode")({embedded,
                                       torch::from_blob(mask.data(), {B, L}, cpu_float).to(device_),
                                       torch::from_blob(context.data(), {B, C}, cpu_float)
                                           .to(device_)})
              .toTensor();
      torch::Tensor index = torch::tensor(std::vector<int64_t>(targets.begin(), targets.end()),
                                          cpu_long).to(device_);
      torch::Tensor logits = torch::addmm(bias_.index_select(0, index), user,
                                          table_.index_select(0, index).t())
                                 .to(torch::kCPU).contiguous();  // [B, K]
      scores->assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
      return absl::OkStatus();
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(name_, ": ", e.what_without_backtrace()));
    }
  }

  absl::Status IntegratedGradients(const ModelInput& input, const std::vector<ItemIndex>& targets,
                                   const std::vector<double>& alphas,
                                   const std::vector<double>& weights,
                                   std::vector<PathAttribution>* out) const override {
    const int64_t L = shape_.max_history, E = shape_.num_event_features, C = shape_.num_context;
    const int64_t S = static_cast<int64_t>(alphas.size());
    const int64_t K = static_cast<int64_t>(targets.size());
    if (K == 0) return absl::OkStatus();
    try {
      torch::NoGradGuard no_grad;  // Only the path below records gradients.
      torch::jit::Module& module = const_cast<torch::jit::Module&>(module_);
      auto embed = [&](const torch::Tensor& items, const torch::Tensor& features) {
        return module.get_method("embed")({items, features}).toTensor();
      };
      Inputs x = ToTensors(input);
      torch::Tensor pad = torch::full({1, L}, shape_.num_items, x.items.options());
      torch::Tensor zeros = torch::zeros({1, L, E}, x.features.options());
      torch::Tensor e_base = embed(pad, zeros);              // [1, L, D]
      torch::Tensor e_items = embed(x.items, zeros);         // item part only
      torch::Tensor e_full = embed(x.items, x.features);     // [1, L, D]
      torch::Tensor delta_item = e_items - e_base;
      torch::Tensor delta_full = e_full - e_base;
      std::vector<torch::Tensor> delta_feature;              // per side-feature
      for (int64_t e = 0; e < E; ++e) {
        torch::Tensor only = torch::zeros_like(x.features);
        only.select(2, e).copy_(x.features.select(2, e));
        delta_feature.push_back(embed(x.items, only) - e_items);
      }

      // Rows: step-major, target-minor: row s*K + k is step s of target k.
      torch::Tensor alpha =
          torch::tensor(std::vector<float>(alphas.begin(), alphas.end()), x.features.options())
              .repeat_interleave(K);                                         // [S*K]
      torch::Tensor path = (e_base + alpha.view({S * K, 1, 1}) * delta_full).detach();
      torch::Tensor context = (alpha.view({S * K, 1}) * x.context).detach();
      path.set_requires_grad(true);
      context.set_requires_grad(true);
      torch::Tensor mask = x.mask.expand({S * K, L});
      torch::Tensor target_index = torch::tensor(std::vector<int64_t>(targets.begin(), targets.end()),
                                                 torch::TensorOptions().dtype(torch::kLong))
                                       .to(device_);
      torch::Tensor rows = target_index.repeat({S});                          // [S*K]
      {
        torch::AutoGradMode enable(true);
        torch::Tensor user = module.get_method("encode")({path, mask, context}).toTensor();
        torch::Tensor logits = (user * table_.index_select(0, rows)).sum(1) +
                               bias_.index_select(0, rows);                   // [S*K]
        std::vector<torch::Tensor> grads =
            torch::autograd::grad({logits.sum()}, {path, context});
        torch::Tensor w = torch::tensor(std::vector<float>(weights.begin(), weights.end()),
                                        x.features.options())
                              .repeat_interleave(K);
        // Quadrature-weighted mean gradient per target: [K, L, D] and [K, C].
        torch::Tensor g_path =
            (grads[0] * w.view({S * K, 1, 1})).view({S, K, L, -1}).sum(0).to(torch::kCPU);
        torch::Tensor g_context =
            (grads[1] * w.view({S * K, 1})).view({S, K, C}).sum(0).to(torch::kCPU);
        torch::Tensor event = (g_path * delta_item.to(torch::kCPU)).sum(2);     // [K, L]
        torch::Tensor context_attr = g_context * x.context.to(torch::kCPU);     // [K, C]
        std::vector<torch::Tensor> feature;
        for (int64_t e = 0; e < E; ++e) {
          feature.push_back((g_path * delta_feature[e].to(torch::kCPU)).sum(2));  // [K, L]
        }
        for (int64_t k = 0; k < K; ++k) {
          PathAttribution& a = out->emplace_back();
          auto ev = event[k].contiguous();
          a.event.assign(ev.data_ptr<float>(), ev.data_ptr<float>() + L);
          a.event_feature.resize(L * E);
          for (int64_t e = 0; e < E; ++e) {
            auto f = feature[e][k].contiguous();
            for (int64_t t = 0; t < L; ++t) a.event_feature[t * E + e] = f.data_ptr<float>()[t];
          }
          auto cv = context_attr[k].contiguous();
          a.context.assign(cv.data_ptr<float>(), cv.data_ptr<float>() + C);
        }
      }
      // f at the start of the path (the baseline embedding under the request's mask, zero
      // context), for the targets only; f(x) is the ranker's ScoreAll score.
      torch::Tensor start_user =
          module.get_method("encode")({e_base, x.mask, torch::zeros_like(x.context)}).toTensor();
      torch::Tensor start = torch::addmv(bias_.index_select(0, target_index),
                                         table_.index_select(0, target_index), start_user[0])
                                .to(torch::kCPU)
                                .contiguous();                                 // [K]
      for (int64_t k = 0; k < K; ++k) {
        (*out)[out->size() - K + k].baseline = start.data_ptr<float>()[k];
      }
      return absl::OkStatus();
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(name_, ": attribution: ", e.what_without_backtrace()));
    }
  }

  absl::Status CheckSizes(const ModelInput& input) const {
    const size_t L = shape_.max_history, E = shape_.num_event_features, C = shape_.num_context;
    if (input.items.size() != L || input.event_features.size() != L * E ||
        input.mask.size() != L || input.context.size() != C) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": model input has the wrong size"));
    }
    return absl::OkStatus();
  }

  struct Inputs {
    torch::Tensor items, features, mask, context;
  };
  // The request's tensors on the model's device, shaped [1, ...].
  Inputs ToTensors(const ModelInput& input) const {
    const int64_t L = shape_.max_history, E = shape_.num_event_features, C = shape_.num_context;
    auto cpu_long = torch::TensorOptions().dtype(torch::kLong);
    auto cpu_float = torch::TensorOptions().dtype(torch::kFloat);
    // from_blob does not copy; clone() keeps the tensors valid beyond `input`.
    return {torch::from_blob(const_cast<int64_t*>(input.items.data()), {1, L}, cpu_long)
                .to(device_).clone(),
            torch::from_blob(const_cast<float*>(input.event_features.data()), {1, L, E},
                             cpu_float).to(device_).clone(),
            torch::from_blob(const_cast<float*>(input.mask.data()), {1, L}, cpu_float)
                .to(device_).clone(),
            torch::from_blob(const_cast<float*>(input.context.data()), {1, C}, cpu_float)
                .to(device_).clone()};
  }

  // encode(embed(items, features), mask, context) for one request: [1, H].
  torch::Tensor Encode(const ModelInput& input) const {
    Inputs x = ToTensors(input);
    // TorchScript modules are safe to run from several threads; get_method is const-safe.
    torch::jit::Module& module = const_cast<torch::jit::Module&>(module_);
    torch::Tensor embedded = module.get_method("embed")({x.items, x.features}).toTensor();
    return module.get_method("encode")({embedded, x.mask, x.context}).toTensor();
  }

 private:
  const std::string name_;
  const ModelShape shape_;
  const std::string device_name_;
  const torch::Device device_;
  const torch::jit::Module module_;
  const torch::Tensor table_;  // item_table(), [N, D], contiguous float.
  const torch::Tensor bias_;   // [N]
  std::vector<float> baseline_scores_;
};

std::string Shape(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) absl::StrAppend(&s, i ? "," : "", t.size(i));
  return s + "]";
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
    return absl::FailedPreconditionError(absl::StrCat("device '", device, "': only ",
                                                      torch::cuda::device_count(),
                                                      " CUDA devices"));
  }
  return absl::OkStatus();
}

void SetTorchThreads(int intra_op, int inter_op) {
  at::set_num_threads(intra_op);
  at::set_num_interop_threads(inter_op);
  // Debian's LibTorch calls the system BLAS; OpenBLAS keeps a pool of its own sized to the
  // machine whose threads spin while they wait, fighting the request threads for the same
  // cores (measured: 2.8x less throughput with occlusion on 2 cores). Give BLAS the same
  // budget as LibTorch. Looked up at run time: the BLAS may not be OpenBLAS.
  using SetBlasThreads = void (*)(int);
  auto set = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set != nullptr) set(intra_op);
}

int BlasThreads() {
  using GetBlasThreads = int (*)();
  auto get = reinterpret_cast<GetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get == nullptr ? -1 : get();
}

ModelLoader TorchScriptLoader(const std::string& device) {
  return [device](const std::string& path, const ModelSpec& spec,
                  const ModelShape& shape) -> absl::StatusOr<std::unique_ptr<ModelRunner>> {
    if (absl::Status s = CheckTorchDevice(device); !s.ok()) return s;
    auto wrong = [&](const std::string& what) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": not a model of this bundle: ", what));
    };
    try {
      if (device != "cpu") {
        // cuDNN's RNN refuses a backward pass in eval mode ("cudnn RNN backward can only be
        // called in training mode", the failure Captum users meet), and switching a shared
        // module to train mode per request is neither thread-safe nor right for dropout. The
        // attribution pass needs that backward, so models on CUDA run on LibTorch's native
        // CUDA kernels: cuDNN is switched off for the process, once, before any model loads.
        // For this service's small recurrent and convolutional encoders the native kernels
        // cost little; see docs/explanations.md.
        at::globalContext().setUserEnabledCuDNN(false);
      }
      torch::jit::Module module = torch::jit::load(path, torch::Device(device));
      module.eval();
      for (const char* method : {"embed", "encode", "item_table", "item_bias"}) {
        if (!module.find_method(method)) {
          return wrong(absl::StrCat("no method ", method,
                                    "() (the contract is embed / encode / item_table / "
                                    "item_bias)"));
        }
      }
      c10::InferenceMode guard;
      torch::Tensor table = module.get_method("item_table")({}).toTensor();
      torch::Tensor bias = module.get_method("item_bias")({}).toTensor();
      if (table.dim() != 2 || table.size(0) != shape.num_items) {
        return wrong(absl::StrCat("item_table() is ", Shape(table), ", the catalogue has ",
                                  shape.num_items, " items"));
      }
      if (bias.dim() != 1 || bias.size(0) != shape.num_items) {
        return wrong(absl::StrCat("item_bias() is ", Shape(bias), ", expected [",
                                  shape.num_items, "]"));
      }
      auto runner = std::make_unique<TorchModelRunner>(
          spec.name, shape, device, module, table.contiguous().to(torch::kFloat),
          bias.contiguous().to(torch::kFloat));
      // Warm-up: an empty history with a neutral context exercises every method and shape.
      ModelInput input;
      input.items.assign(shape.max_history, shape.num_items);
      input.event_features.assign(static_cast<size_t>(shape.max_history) *
                                      shape.num_event_features, 0.0f);
      input.mask.assign(shape.max_history, 0.0f);
      input.context.assign(shape.num_context, 0.0f);
      torch::Tensor user = runner->Encode(input);
      if (user.dim() != 2 || user.size(0) != 1 || user.size(1) != table.size(1)) {
        return wrong(absl::StrCat("encode() gives ", Shape(user), ", item_table() has width ",
                                  table.size(1)));
      }
      std::vector<float> scores;
      if (absl::Status s = runner->ScoreAll(input, &scores); !s.ok()) return wrong(s.ToString());
      runner->set_baseline_scores(std::move(scores));
      return std::unique_ptr<ModelRunner>(std::move(runner));
    } catch (const c10::Error& e) {
      return wrong(e.what_without_backtrace());
    } catch (const std::exception& e) {
      return wrong(e.what());
    }
  };
}

}  // namespace recsys::core
