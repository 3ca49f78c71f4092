#ifndef RECSYS_CORE_FEATURIZER_H_
#define RECSYS_CORE_FEATURIZER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/manifest.h"
#include "core/model_runner.h"
#include "core/types.h"

namespace recsys::core {

// The known event (an index into `known` of Featurize, oldest first) at model input position
// `position` when `num_known` events are left-padded to `max_history` positions, or -1 for a
// padding position. The one definition of the padding: the explainer maps positions back with it.
int KnownEventAt(int position, int num_known, int max_history);

// How many days before `request_time` (seconds since the epoch) an event at `timestamp`
// happened; 0 for an undated event or one after the request.
double AgeDays(int64_t request_time, const std::optional<int64_t>& timestamp);

// Context features that only mean something together, explained as one: a periodic time's sin
// and cos ("hour": hour_sin, hour_cos), the one-hots of one categorical ("country":
// country=United Kingdom, ..., country=other). Any other feature is a group of its own.
struct ContextGroup {
  std::string name;
  std::vector<int> features;  // Indices into BundleManifest::context_features, ascending.
};

// The context groups of the bundle's schema, in the order of their first feature. Pure.
std::vector<ContextGroup> ContextGroups(const BundleManifest& manifest);

// How `group`'s value in a featurised `context` reads to a person, decoded the way Featurize
// encodes it: "15:00 UTC" and "Tuesday" for the hour and weekday sin/cos pairs, the category
// of a one-hot group ("France", "other"), "12.0 days" for a log1p of days, else the value; ""
// for a one-hot group with none set. REQUIRES: `group` is one of ContextGroups(manifest) and
// `context` has its features. Pure.
std::string DescribeContextGroup(const BundleManifest& manifest, const ContextGroup& group,
                                 const std::vector<float>& context);

// Turns a request into model inputs by the bundle's feature schema, computing each feature the
// way tools/recsys_models.py does in training:
// - event features: log_quantity, log_price, log_gap_days (days since the previous known
//   event; 0 for the first or without timestamps); any other name is read from the event's
//   `features` map;
// - context: hour_sin, hour_cos, dow_sin, dow_cos of the request time, log_recency_days (from
//   the last known event to the request time), "country=X" one-hots (and "country=other"),
//   any other name from the context's numeric_features map.
// A missing value is 0. `known` lists, oldest first, the request.history indices of the events
// whose item is in the catalogue, with `item_indices` their catalogue indices; only the last
// shape.max_history are used, left-padded with shape.num_items. `request_time` is the request's
// time in seconds since the epoch (the caller resolves the default). Thread-safe.
ModelInput Featurize(const BundleManifest& manifest, const ModelShape& shape,
                     const RecommendRequest& request, const std::vector<int32_t>& known,
                     const std::vector<ItemIndex>& item_indices, int64_t request_time);

}  // namespace recsys::core

#endif  // RECSYS_CORE_FEATURIZER_H_
