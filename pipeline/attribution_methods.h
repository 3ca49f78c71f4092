#ifndef RECSYS_PIPELINE_ATTRIBUTION_METHODS_H_
#define RECSYS_PIPELINE_ATTRIBUTION_METHODS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/types.h"

namespace recsys::pipeline {

// An attribution method's names: `name` for flags, tools and reports ("integrated_gradients";
// the proto enum is ATTRIBUTION_METHOD_ + its upper case), `title` for notes to people.
struct AttributionMethodName {
  core::AttributionMethod method;
  const char* name;
  const char* title;
};

// Every method a caller can choose (all but kDefault), cheapest explanation first: the one
// name table of the project.
const std::vector<AttributionMethodName>& AttributionMethodNames();

// The method named `name`. Errors: INVALID_ARGUMENT listing the names.
absl::StatusOr<core::AttributionMethod> ParseAttributionMethod(absl::string_view name);

// The `name` of `method` ("default" for kDefault).
const char* AttributionMethodFlagName(core::AttributionMethod method);

// The `title` of `method` ("no attribution" for kDefault).
const char* AttributionMethodTitle(core::AttributionMethod method);

// The names, comma-separated, for help texts and errors.
std::string AttributionMethodNameList();

}  // namespace recsys::pipeline

#endif  // RECSYS_PIPELINE_ATTRIBUTION_METHODS_H_
