#ifndef RECSYS_CORE_TYPES_H_
#define RECSYS_CORE_TYPES_H_

// Domain form of a recommendation request and response, free of gRPC and protobuf. The fields
// mirror proto/recsys/v1/recommender.proto, whose comments define their meaning; the server
// converts between the two in server/proto_convert.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/catalog.h"
#include "core/interest_profile.h"

namespace recsys::core {

enum class AttributionMethod {
  kDefault,
  kNone,
  kIntegratedGradients,
  kGradientXInput,
  kOcclusion,
  kKernelShap,
  kCfExact,
  kReplay,
  kLime,
};

enum class EventType { kUnspecified, kPurchase, kView, kAddToCart };

enum class FeatureKind { kUnspecified, kHistoryEvent, kEventFeature, kContext, kPrior };

struct HistoryEvent {
  std::string item_id;
  std::optional<int64_t> timestamp;  // Seconds since the epoch.
  EventType event_type = EventType::kUnspecified;
  std::optional<double> quantity;
  std::optional<double> price;
  std::vector<std::pair<std::string, double>> features;
};

struct RequestContext {
  std::optional<int64_t> time;  // Seconds since the epoch.
  std::string country;
  std::vector<std::pair<std::string, double>> numeric_features;
  std::vector<std::pair<std::string, std::string>> categorical_features;
};

struct ExplainOptions {
  AttributionMethod method = AttributionMethod::kDefault;
  int32_t steps = 0;
  int32_t samples = 0;
  uint64_t seed = 0;
  int32_t max_attributions = 0;
  bool include_source_attributions = false;
};

struct RecommendRequest {
  std::string request_id;
  std::vector<HistoryEvent> history;  // Oldest first.
  RequestContext context;
  int32_t top_k = 0;
  std::vector<std::string> exclude_item_ids;
  std::vector<std::string> candidate_item_ids;
  bool candidates_only = false;
  ExplainOptions explain;
  std::vector<std::pair<std::string, double>> fusion_weights;
  // Filters.
  std::optional<bool> exclude_history;
  std::vector<std::string> allow_categories;
  std::vector<std::string> deny_categories;
  std::optional<double> min_price;
  std::optional<double> max_price;
  // Diversity and long tail.
  int32_t max_per_category = 0;
  double mmr_lambda = 0.0;
  // Unset: the bundle's default (BundleManifest::popularity_penalty_default).
  std::optional<double> popularity_penalty;
};

struct Attribution {
  std::string feature;
  FeatureKind kind = FeatureKind::kUnspecified;
  int32_t history_index = -1;
  std::string item_id;
  std::string display_value;
  double attribution = 0.0;
};

struct SourceScore {
  std::string source;
  double raw_score = 0.0;
  double normalized_score = 0.0;
  double weight = 0.0;
  double contribution = 0.0;
  std::vector<Attribution> attributions;
  double completeness_error = 0.0;
};

struct RecommendedItem {
  ItemIndex index = 0;
  std::string item_id;
  int32_t rank = 0;
  double score = 0.0;
  std::vector<SourceScore> sources;
  std::vector<Attribution> attributions;
  double baseline_score = 0.0;
  double completeness_error = 0.0;
  std::string reason;
  // What the reason cites: "history_event", "repeat_purchase" (a past purchase of the item
  // itself), "popularity", "context" (a context group), "side_feature" (a side-feature kind),
  // or "none"; and the cited attribution's share of score - baseline_score (0 without a reason).
  std::string reason_kind = "none";
  double reason_share = 0.0;
  ItemInfo info;
  int32_t profile_entry = -1;  // Index into RecommendResponse::profile.entries, or -1.
  std::optional<double> surrogate_r_squared;  // LIME only: the weighted R^2 of its fit.
  // KernelSHAP only: the estimated error of its attributions (explain::KernelShap).
  std::optional<double> attribution_standard_error;
};

struct StageTiming {
  std::string stage;
  double seconds = 0.0;
};

struct ResponseMetadata {
  std::string bundle_version;
  AttributionMethod attribution_method = AttributionMethod::kNone;
  std::string explanation_note;
  std::vector<StageTiming> stage_timings;
  std::vector<std::string> ignored_history_item_ids;
  std::vector<std::string> ignored_candidate_item_ids;
  std::map<std::string, int32_t> filtered_counts;
  int32_t candidates_scored = 0;
  bool backfilled = false;
  bool fallback_used = false;
  std::string fallback_reason;
  std::string device;
};

struct RecommendResponse {
  std::string request_id;
  std::vector<RecommendedItem> items;
  ResponseMetadata metadata;
  InterestProfile profile;
};

}  // namespace recsys::core

#endif  // RECSYS_CORE_TYPES_H_
