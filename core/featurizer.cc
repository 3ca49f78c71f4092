#include "core/featurizer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"

namespace recsys::core {

namespace {

constexpr double kPi = 3.14159265358979323846;

// The value of `name` in a sorted-or-not list of (name, value) pairs, or 0.
double Lookup(const std::vector<std::pair<std::string, double>>& values, const std::string& name) {
  for (const auto& [key, value] : values) {
    if (key == name) return value;
  }
  return 0.0;
}

bool KnownCountry(const BundleManifest& manifest, const std::string& country) {
  for (const FeatureSpec& f : manifest.context_features) {
    if (f.name == "country=" + country) return true;
  }
  return false;
}

}  // namespace

std::vector<ContextGroup> ContextGroups(const BundleManifest& manifest) {
  std::vector<ContextGroup> groups;
  for (size_t c = 0; c < manifest.context_features.size(); ++c) {
    const std::string& name = manifest.context_features[c].name;
    std::string group = name;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      group = name.substr(0, eq);
    } else if (absl::EndsWith(name, "_sin") || absl::EndsWith(name, "_cos")) {
      group = name.substr(0, name.size() - 4);
    }
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const ContextGroup& g) { return g.name == group; });
    if (it == groups.end()) it = groups.insert(groups.end(), ContextGroup{group, {}});
    it->features.push_back(static_cast<int>(c));
  }
  return groups;
}

std::string DescribeContextGroup(const BundleManifest& manifest, const ContextGroup& group,
                                 const std::vector<float>& context) {
  const std::vector<FeatureSpec>& specs = manifest.context_features;
  if (group.features.size() == 2 && specs[group.features[0]].name == group.name + "_sin") {
    double turn = std::atan2(context[group.features[0]], context[group.features[1]]) / (2 * kPi);
    if (turn < 0) turn += 1.0;
    if (group.name == "hour")
      return absl::StrFormat("%02d:00 UTC", static_cast<int>(turn * 24 + 0.5) % 24);
    if (group.name == "dow") {
      static constexpr const char* kDays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                              "Friday", "Saturday", "Sunday"};
      return kDays[static_cast<int>(turn * 7 + 0.5) % 7];
    }
    return absl::StrFormat("%.2f of the cycle", turn);
  }
  for (int c : group.features) {
    const std::string& name = specs[c].name;
    if (const size_t eq = name.find('='); eq != std::string::npos && context[c] != 0.0f) {
      return name.substr(eq + 1);
    }
  }
  if (group.features.size() != 1) return "";
  const double value = context[group.features[0]];
  if (absl::StartsWith(group.name, "log_") && absl::EndsWith(group.name, "_days")) {
    return absl::StrFormat("%.1f days", std::expm1(value));
  }
  return absl::StrFormat("%.3g", value);
}

double AgeDays(int64_t request_time, const std::optional<int64_t>& timestamp) {
  return timestamp ? std::max<double>(0, request_time - *timestamp) / 86400.0 : 0.0;
}

int KnownEventAt(int position, int num_known, int max_history) {
  const int k = num_known - (max_history - position);
  return k >= 0 && position < max_history ? k : -1;
}

ModelInput Featurize(const BundleManifest& manifest, const ModelShape& shape,
                     const RecommendRequest& request, const std::vector<int32_t>& known,
                     const std::vector<ItemIndex>& item_indices, int64_t request_time) {
  const int L = shape.max_history;
  const int E = static_cast<int>(manifest.event_features.size());
  ModelInput input;
  input.items.assign(L, shape.num_items);
  input.event_features.assign(static_cast<size_t>(L) * E, 0.0f);
  input.mask.assign(L, 0.0f);

  const int n = static_cast<int>(known.size());
  for (int pos = 0; pos < L; ++pos) {
    const int k = KnownEventAt(pos, n, L);
    if (k < 0) continue;
    const HistoryEvent& event = request.history[known[k]];
    input.items[pos] = item_indices[k];
    input.mask[pos] = 1.0f;
    double gap_days = 0.0;
    if (k > 0) {
      const HistoryEvent& previous = request.history[known[k - 1]];
      if (event.timestamp && previous.timestamp) {
        gap_days = std::max<double>(0, *event.timestamp - *previous.timestamp) / 86400.0;
      }
    }
    for (int e = 0; e < E; ++e) {
      const std::string& name = manifest.event_features[e].name;
      double value;
      if (name == "log_quantity") {
        value = std::log1p(std::max(0.0, event.quantity.value_or(0.0)));
      } else if (name == "log_price") {
        value = std::log1p(std::max(0.0, event.price.value_or(0.0)));
      } else if (name == "log_gap_days") {
        value = std::log1p(gap_days);
      } else {
        value = Lookup(event.features, name);
      }
      input.event_features[static_cast<size_t>(pos) * E + e] = static_cast<float>(value);
    }
  }

  // Time of day and week of the request, reading the clock as UTC like the training data.
  const int64_t day_seconds = ((request_time % 86400) + 86400) % 86400;
  const double hour = static_cast<double>(day_seconds) / 3600.0;
  const int64_t days = (request_time - day_seconds) / 86400;
  const int weekday = static_cast<int>(((days % 7) + 7 + 3) % 7);  // 1970-01-01 was a Thursday.
  const double recency_days =
      n > 0 ? AgeDays(request_time, request.history[known[n - 1]].timestamp) : 0.0;
  const bool known_country = KnownCountry(manifest, request.context.country);
  for (const FeatureSpec& f : manifest.context_features) {
    double value;
    if (f.name == "hour_sin") {
      value = std::sin(2 * kPi * hour / 24);
    } else if (f.name == "hour_cos") {
      value = std::cos(2 * kPi * hour / 24);
    } else if (f.name == "dow_sin") {
      value = std::sin(2 * kPi * weekday / 7);
    } else if (f.name == "dow_cos") {
      value = std::cos(2 * kPi * weekday / 7);
    } else if (f.name == "log_recency_days") {
      value = std::log1p(recency_days);
    } else if (f.name == "country=other") {
      value = known_country ? 0.0 : 1.0;
    } else if (absl::StartsWith(f.name, "country=")) {
      value = f.name == "country=" + request.context.country ? 1.0 : 0.0;
    } else {
      value = Lookup(request.context.numeric_features, f.name);
    }
    input.context.push_back(static_cast<float>(value));
  }
  return input;
}

}  // namespace recsys::core
