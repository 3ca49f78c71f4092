#include "pipeline/request_validator.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace recsys::pipeline {

namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckCount(absl::string_view field, size_t n, int32_t limit) {
  if (n > static_cast<size_t>(limit)) {
    return Invalid(field, absl::StrCat(n, " entries exceed the limit of ", limit));
  }
  return absl::OkStatus();
}

absl::Status CheckId(const std::string& field, const std::string& id, int32_t max_bytes) {
  if (id.empty()) return Invalid(field, "empty");
  if (id.size() > static_cast<size_t>(max_bytes)) {
    return Invalid(field, absl::StrCat(id.size(), " bytes exceed the limit of ", max_bytes));
  }
  return absl::OkStatus();
}

absl::Status CheckIds(absl::string_view field, const std::vector<std::string>& ids,
                      int32_t max_count, int32_t max_bytes) {
  if (absl::Status s = CheckCount(field, ids.size(), max_count); !s.ok()) return s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (absl::Status s = CheckId(absl::StrCat(field, "[", i, "]"), ids[i], max_bytes); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// Every number of a request is finite and at most kMaxMagnitude in size, so that no sum,
// product or float conversion downstream overflows.
constexpr double kMaxMagnitude = 1e9;

absl::Status CheckNumber(const std::string& field, double value) {
  if (!std::isfinite(value)) return Invalid(field, "must be finite");
  if (std::fabs(value) > kMaxMagnitude) {
    return Invalid(field, absl::StrCat(value, " exceeds the limit of 1e9 in magnitude"));
  }
  return absl::OkStatus();
}

absl::Status CheckNonNegative(const std::string& field, double value) {
  if (absl::Status s = CheckNumber(field, value); !s.ok()) return s;
  if (value < 0) return Invalid(field, absl::StrCat(value, " is negative"));
  return absl::OkStatus();
}

// Seconds since the epoch: from 1970 to the end of year 9999 (protobuf Timestamp's range).
absl::Status CheckTime(const std::string& field, int64_t seconds) {
  if (seconds < 0 || seconds > 253402300799) {
    return Invalid(field, absl::StrCat(seconds, " is not a time between 1970 and 9999"));
  }
  return absl::OkStatus();
}

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t max) {
  if (value < 0) return Invalid(field, absl::StrCat(value, " is negative"));
  if (value > max) return Invalid(field, absl::StrCat(value, " exceeds the limit of ", max));
  return absl::OkStatus();
}

template <typename Value>
absl::Status CheckFeatures(absl::string_view field,
                           const std::vector<std::pair<std::string, Value>>& features,
                           const RequestLimits& limits) {
  if (absl::Status s = CheckCount(field, features.size(), limits.max_features); !s.ok()) return s;
  for (const auto& [name, value] : features) {
    const std::string key = absl::StrCat(field, "[\"", name, "\"]");
    if (absl::Status s = CheckId(key, name, limits.max_id_bytes); !s.ok()) return s;
    if constexpr (std::is_same_v<Value, double>) {
      if (absl::Status s = CheckNumber(key, value); !s.ok()) return s;
    } else {
      if (value.size() > static_cast<size_t>(limits.max_id_bytes)) {
        return Invalid(
            key, absl::StrCat(value.size(), " bytes exceed the limit of ", limits.max_id_bytes));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckHistory(const core::RecommendRequest& r, const RequestLimits& limits) {
  if (absl::Status s = CheckCount("history", r.history.size(), limits.max_history); !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < r.history.size(); ++i) {
    const core::HistoryEvent& e = r.history[i];
    const std::string prefix = absl::StrCat("history[", i, "].");
    if (absl::Status s = CheckId(prefix + "item_id", e.item_id, limits.max_id_bytes); !s.ok()) {
      return s;
    }
    if (e.timestamp) {
      if (absl::Status s = CheckTime(prefix + "timestamp", *e.timestamp); !s.ok()) return s;
    }
    if (e.quantity) {
      if (absl::Status s = CheckNonNegative(prefix + "quantity", *e.quantity); !s.ok()) return s;
    }
    if (e.price) {
      if (absl::Status s = CheckNonNegative(prefix + "price", *e.price); !s.ok()) return s;
    }
    if (absl::Status s = CheckFeatures(prefix + "features", e.features, limits); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CheckContext(const core::RequestContext& context, const RequestLimits& limits) {
  if (context.time) {
    if (absl::Status s = CheckTime("context.time", *context.time); !s.ok()) return s;
  }
  if (context.country.size() > static_cast<size_t>(limits.max_id_bytes)) {
    return Invalid(
        "context.country",
        absl::StrCat(context.country.size(), " bytes exceed the limit of ", limits.max_id_bytes));
  }
  if (absl::Status s = CheckFeatures("context.numeric_features", context.numeric_features, limits);
      !s.ok()) {
    return s;
  }
  return CheckFeatures("context.categorical_features", context.categorical_features, limits);
}

// top_k, the id lists and the explanation options.
absl::Status CheckListOptions(const core::RecommendRequest& r, const RequestLimits& limits) {
  if (r.top_k < 0) return Invalid("top_k", absl::StrCat(r.top_k, " is negative"));
  if (r.top_k > limits.max_top_k) {
    return Invalid("top_k", absl::StrCat(r.top_k, " exceeds the limit of ", limits.max_top_k));
  }
  if (absl::Status s =
          CheckIds("exclude_item_ids", r.exclude_item_ids, limits.max_exclude, limits.max_id_bytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckIds("candidate_item_ids", r.candidate_item_ids, limits.max_candidates,
                                limits.max_id_bytes);
      !s.ok()) {
    return s;
  }
  if (r.candidates_only && r.candidate_item_ids.empty()) {
    return Invalid("candidate_item_ids", "empty, but candidates_only is set");
  }
  if (absl::Status s = CheckRange("explain.steps", r.explain.steps, limits.max_steps); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRange("explain.samples", r.explain.samples, limits.max_samples);
      !s.ok()) {
    return s;
  }
  if (r.explain.samples == 1) {
    return Invalid("explain.samples", "1 is too few: 0 (the default) or at least 2");
  }
  return CheckRange("explain.max_attributions", r.explain.max_attributions,
                    limits.max_attributions);
}

// Fusion weights, filters, diversity and the long-tail knob.
absl::Status CheckRankingOptions(const core::RecommendRequest& r, const RequestLimits& limits) {
  for (const auto& [name, weight] : r.fusion_weights) {
    if (absl::Status s = CheckNonNegative(absl::StrCat("fusion.weights[\"", name, "\"]"), weight);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CheckIds("filters.allow_categories", r.allow_categories,
                                limits.max_categories, limits.max_id_bytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckIds("filters.deny_categories", r.deny_categories, limits.max_categories,
                                limits.max_id_bytes);
      !s.ok()) {
    return s;
  }
  if (r.min_price) {
    if (absl::Status s = CheckNonNegative("filters.min_price", *r.min_price); !s.ok()) return s;
  }
  if (r.max_price) {
    if (absl::Status s = CheckNonNegative("filters.max_price", *r.max_price); !s.ok()) return s;
  }
  if (r.min_price && r.max_price && *r.min_price > *r.max_price) {
    return Invalid("filters.min_price",
                   absl::StrCat(*r.min_price, " exceeds filters.max_price ", *r.max_price));
  }
  if (r.max_per_category < 0) {
    return Invalid("diversity.max_per_category", absl::StrCat(r.max_per_category, " is negative"));
  }
  if (!(r.mmr_lambda >= 0 && r.mmr_lambda <= 1)) {
    return Invalid("diversity.mmr_lambda", absl::StrCat(r.mmr_lambda, " is not in [0, 1]"));
  }
  if (!r.popularity_penalty) return absl::OkStatus();
  return CheckNonNegative("ranking.popularity_penalty", *r.popularity_penalty);
}

}  // namespace

absl::Status ValidateRequest(const core::RecommendRequest& r, const RequestLimits& limits) {
  if (r.request_id.size() > static_cast<size_t>(limits.max_request_id_bytes)) {
    return Invalid("request_id", absl::StrCat(r.request_id.size(), " bytes exceed the limit of ",
                                              limits.max_request_id_bytes));
  }
  if (absl::Status s = CheckHistory(r, limits); !s.ok()) return s;
  if (absl::Status s = CheckContext(r.context, limits); !s.ok()) return s;
  if (absl::Status s = CheckListOptions(r, limits); !s.ok()) return s;
  return CheckRankingOptions(r, limits);
}

}  // namespace recsys::pipeline
