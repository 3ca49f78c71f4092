#include "server/feedback.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "pipeline/attribution_methods.h"

namespace recsys::server {

namespace {

constexpr std::array<const char*, kNumFeedbackEvents> kEventNames = {"unspecified",
                                                                     "shown",
                                                                     "clicked",
                                                                     "added_to_cart",
                                                                     "purchased",
                                                                     "explanation_helpful",
                                                                     "explanation_not_helpful",
                                                                     "explanation_hidden"};

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckId(absl::string_view field, const std::string& id, int32_t max_bytes) {
  if (id.empty()) return Invalid(field, "empty");
  if (id.size() > static_cast<size_t>(max_bytes)) {
    return Invalid(field, absl::StrCat(id.size(), " bytes exceed the limit of ", max_bytes));
  }
  return absl::OkStatus();
}

// protobuf Timestamp's range, as ValidateRequest checks times.
absl::Status CheckTime(absl::string_view field, const std::optional<absl::Time>& time) {
  if (!time.has_value()) return Invalid(field, "required");
  if (*time < absl::UnixEpoch() || *time >= absl::FromUnixSeconds(253402300800)) {
    return Invalid(field, absl::StrCat(absl::FormatTime(*time, absl::UTCTimeZone()),
                                       " is not a time between 1970 and 9999"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* FeedbackEventName(FeedbackEvent event) {
  const int n = static_cast<int>(event);
  return n > 0 && n < kNumFeedbackEvents ? kEventNames[n] : kEventNames[0];
}

absl::Status ValidateFeedback(const FeedbackRequest& request,
                              const pipeline::RequestLimits& limits) {
  if (absl::Status s = CheckId("request_id", request.request_id, limits.max_request_id_bytes);
      !s.ok()) {
    return s;
  }
  if (request.events.empty()) return Invalid("events", "empty: give 1 to 100 events");
  if (request.events.size() > static_cast<size_t>(kMaxFeedbackEvents)) {
    return Invalid("events", absl::StrCat(request.events.size(), " entries exceed the limit of ",
                                          kMaxFeedbackEvents));
  }
  for (size_t i = 0; i < request.events.size(); ++i) {
    const FeedbackEntry& e = request.events[i];
    const std::string field = absl::StrCat("events[", i, "]");
    if (absl::Status s = CheckId(field + ".item_id", e.item_id, limits.max_id_bytes); !s.ok()) {
      return s;
    }
    const int event = static_cast<int>(e.event);
    if (event == 0) return Invalid(field + ".event", "unspecified");
    if (event < 0 || event >= kNumFeedbackEvents) {
      return Invalid(field + ".event", absl::StrCat("unknown value ", event));
    }
    if (absl::Status s = CheckTime(field + ".time", e.time); !s.ok()) return s;
  }
  return absl::OkStatus();
}

ServedRecord ServedRecordOf(const core::RecommendResponse& response, absl::Time time) {
  ServedRecord record;
  record.request_id = response.request_id;
  record.time = time;
  record.bundle_version = response.metadata.bundle_version;
  record.method = pipeline::AttributionMethodFlagName(response.metadata.attribution_method);
  record.items.reserve(response.items.size());
  for (const core::RecommendedItem& item : response.items) {
    record.items.push_back(
        {item.item_id, item.rank, item.reason, item.reason_kind, item.reason_share});
  }
  return record;
}

bool ShouldLogServed(absl::string_view request_id, double rate) {
  if (request_id.empty() || !(rate > 0.0)) return false;
  // 64-bit FNV-1a: fixed by its definition, unlike std::hash or absl::Hash (seeded per process).
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : request_id) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  // MurmurHash3's finaliser: FNV's high bits mix poorly over short, similar ids ("r1", "r2").
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdull;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ull;
  hash ^= hash >> 33;
  const double unit = static_cast<double>(hash >> 11) * 0x1.0p-53;  // Uniform in [0, 1).
  return unit < rate;
}

}  // namespace recsys::server
