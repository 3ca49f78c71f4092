#ifndef RECSYS_SERVER_FEEDBACK_H_
#define RECSYS_SERVER_FEEDBACK_H_

// Feedback and served records at the domain level, without gRPC or protobuf: what the Feedback
// RPC carries once converted (server/proto_convert.h), its validation, and what the feedback log
// (server/feedback_log.h) writes about a served recommendation.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/types.h"
#include "pipeline/request_validator.h"

namespace recsys::server {

// What the shopper did with an item; the numbers are the proto's FeedbackEvent numbers, so an
// unknown number on the wire stays unknown here (ValidateFeedback refuses it).
enum class FeedbackEvent : int {
  kUnspecified = 0,
  kShown = 1,
  kClicked = 2,
  kAddedToCart = 3,
  kPurchased = 4,
  kExplanationHelpful = 5,
  kExplanationNotHelpful = 6,
  kExplanationHidden = 7,
};
inline constexpr int kNumFeedbackEvents = 8;  // kUnspecified .. kExplanationHidden.

// The log's name of `event`: the proto enum without FEEDBACK_EVENT_, lower case ("clicked").
// "unspecified" for kUnspecified and for numbers outside the enum.
const char* FeedbackEventName(FeedbackEvent event);

// One event of a Feedback call.
struct FeedbackEntry {
  std::string item_id;
  FeedbackEvent event = FeedbackEvent::kUnspecified;
  std::optional<absl::Time> time;  // When it happened; required.
};

// A Feedback call: events about the response to RecommendRequest `request_id`.
struct FeedbackRequest {
  std::string request_id;
  std::vector<FeedbackEntry> events;
};

// What the feedback log stored of one Feedback call.
struct FeedbackResult {
  int accepted = 0;    // Events written by this call.
  int duplicates = 0;  // Events already in the log (or earlier in the same call), not written.
  // accepted, by FeedbackEvent number.
  std::array<int, kNumFeedbackEvents> accepted_by_event{};
};

// Most events one Feedback call may carry.
inline constexpr int kMaxFeedbackEvents = 100;

// Checks `request` as ValidateRequest checks a RecommendRequest, with the same limits on ids
// (limits.max_request_id_bytes, limits.max_id_bytes): request_id non-empty; 1 to
// kMaxFeedbackEvents events; each with a non-empty item id, a known event and a time between
// 1970 and 9999. Returns INVALID_ARGUMENT naming the first bad field, e.g.
// "events[3].event: unspecified". Thread-safe.
absl::Status ValidateFeedback(const FeedbackRequest& request,
                              const pipeline::RequestLimits& limits);

// One recommended item as the served record shows it.
struct ServedItem {
  std::string item_id;
  int rank = 0;
  std::string reason;
  std::string reason_kind;    // core::RecommendedItem::reason_kind.
  double reason_share = 0.0;  // core::RecommendedItem::reason_share.
};

// A successful Recommend response, as the feedback log records it so that feedback can be
// joined with what was shown and why.
struct ServedRecord {
  std::string request_id;
  absl::Time time;  // When it was served.
  std::string bundle_version;
  std::string method;  // pipeline::AttributionMethodFlagName of the method that ran.
  std::vector<ServedItem> items;
};

// The served record of `response`, served at `time`.
ServedRecord ServedRecordOf(const core::RecommendResponse& response, absl::Time time);

// Whether the response to `request_id` is logged when a share `rate` (in [0, 1]) of responses
// is: decided by a hash of the request id that is the same in every process and replica, so a
// retried request gets the same answer. Never for an empty request id (feedback cannot name
// it). Thread-safe.
bool ShouldLogServed(absl::string_view request_id, double rate);

}  // namespace recsys::server

#endif  // RECSYS_SERVER_FEEDBACK_H_
