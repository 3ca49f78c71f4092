#ifndef RECSYS_CORE_CATEGORIZER_H_
#define RECSYS_CORE_CATEGORIZER_H_

#include <string>

#include "absl/strings/string_view.h"

namespace recsys::core {

// Name of the rule set below, recorded in the bundle manifest so that a bundle says how its
// categories were made.
inline constexpr char kCategoryMethod[] = "description-keywords-v1";

// The category of a product from its description, for catalogues without one (Online Retail II
// has none). Deterministic and documented (docs/categories.md): the description is split into
// upper-case words (runs of letters and digits), and an ordered list of (category, keywords)
// rules is tried first to last; the first rule with a keyword among the words (a keyword of
// several words must appear as consecutive words) wins, else "other". Earlier rules win
// conflicts on purpose: "CHRISTMAS CARD" is seasonal, "LUNCH BAG" a bag, "HANGING HEART
// T-LIGHT HOLDER" lighting. Thread-safe.
std::string CategoryOfDescription(absl::string_view description);

}  // namespace recsys::core

#endif  // RECSYS_CORE_CATEGORIZER_H_
