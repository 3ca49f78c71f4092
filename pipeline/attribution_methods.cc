#include "pipeline/attribution_methods.h"

#include "absl/strings/str_cat.h"

namespace recsys::pipeline {

using core::AttributionMethod;

const std::vector<AttributionMethodName>& AttributionMethodNames() {
  static const auto* const kNames = new std::vector<AttributionMethodName>{
      {AttributionMethod::kNone, "none", "no attribution"},
      {AttributionMethod::kCfExact, "cf_exact", "exact contributions (cf, pop)"},
      {AttributionMethod::kGradientXInput, "gradient_x_input", "gradient x input"},
      {AttributionMethod::kIntegratedGradients, "integrated_gradients", "Integrated Gradients"},
      {AttributionMethod::kOcclusion, "occlusion", "occlusion"},
      {AttributionMethod::kKernelShap, "kernel_shap", "KernelSHAP"},
      {AttributionMethod::kReplay, "replay", "replay of the history"},
      {AttributionMethod::kLime, "lime", "LIME"},
  };
  return *kNames;
}

absl::StatusOr<AttributionMethod> ParseAttributionMethod(absl::string_view name) {
  for (const AttributionMethodName& m : AttributionMethodNames()) {
    if (name == m.name) return m.method;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown attribution method \"", name, "\"; expected one of ", AttributionMethodNameList()));
}

const char* AttributionMethodFlagName(AttributionMethod method) {
  for (const AttributionMethodName& m : AttributionMethodNames()) {
    if (m.method == method) return m.name;
  }
  return "default";
}

const char* AttributionMethodTitle(AttributionMethod method) {
  for (const AttributionMethodName& m : AttributionMethodNames()) {
    if (m.method == method) return m.title;
  }
  return "no attribution";
}

std::string AttributionMethodNameList() {
  std::string list;
  for (const AttributionMethodName& m : AttributionMethodNames()) {
    absl::StrAppend(&list, list.empty() ? "" : ", ", m.name);
  }
  return list;
}

}  // namespace recsys::pipeline
