#ifndef RECSYS_EXPLAIN_REPLAY_H_
#define RECSYS_EXPLAIN_REPLAY_H_

#include <vector>

#include "absl/status/status.h"
#include "core/featurizer.h"
#include "core/model_runner.h"

namespace recsys::explain {

// Replay attributions of a model's score: the request's input rebuilt step by step from the
// attribution baseline (core::BaselineInput: the empty history under the bundle's baseline
// context), each step's score change credited to what the step adds:
//   1. the context, one group at a time (core::ContextGroups), under the empty history;
//   2. the events the model sees, all at once, with their side-features at 0;
//   3. the side-features, one kind at a time (quantity, price, ...) for every event at once.
// The last step is the request's input itself, so the attributions telescope: they add up to
// score(input) - score(baseline) exactly, up to float rounding (no integration error, no
// sampling). Like Integrated Gradients' path, the inner steps leave the data: events with
// side-features 0 (no quantity, no price), a context with some groups still at the baseline.
// What step 2 adds is split among the m events by their leave-one-out effects: event j gets
// score(input) - score(input without event j, the older ones moving up and padding in front:
// the input holds no older event to move in) plus an equal share of what those effects leave
// out of the step (the events' interactions, and the side-features' part of the effects,
// which step 3 credits to their kinds): the "equal non-separable costs" split of cooperative
// game theory. Its largest entry is the event whose deletion costs the score most, give or
// take that shared rest. (Adding the events one at a time and crediting each its own step
// would give the first the jump from no history to some.) With one event there is nothing to
// split and no leave-one-out input.
// The inputs are scored with one ScorePrefixes call (one pass of the encoder for a model that
// overrides it): steps 1-2 are prefixes of the history without side-features (none of its
// events, or all), steps 3 and the leave-one-out inputs that whole history with side-features
// of their own (and one event left out); the first and last steps are the baseline's and the
// request's scores, which the caller already has. Steps that add nothing (a group equal to its
// baseline, a kind that is 0 everywhere) are skipped and credited 0.
struct ReplayAttribution {
  std::vector<double> event;    // [L]: per input position (0 for padding).
  std::vector<double> feature;  // [E]: per side-feature kind, summed over the events.
  std::vector<double> context;  // [groups.size()]: per context group.
  double baseline = 0.0;        // The score at the first step.
};

// Replays `input` for each of `targets` and appends one ReplayAttribution per target, in
// order, to `out`. `start` and `end` are the targets' scores at the baseline
// (model.baseline_scores()) and at `input` (the ranker's), one per target. `saved` (may be
// null): what ModelRunner::ScoreAllSavingRows kept while ranking with ReplayRows' rows of this
// input; the steps are then scored from it, without an encoder pass (a `saved` for other rows
// is ignored). REQUIRES: `input` has the sizes of model.shape() with its real events in the
// last positions (as core::Featurize makes it); targets < N. Errors: INVALID_ARGUMENT for wrong
// sizes, `groups` that do not partition the context features, or an input whose padding
// positions do not hold the padding item without side-features; those of the model otherwise.
// Thread-safe when the model is.
absl::Status Replay(const core::ModelRunner& model, const core::ModelInput& input,
                    const std::vector<core::ContextGroup>& groups,
                    const std::vector<core::ItemIndex>& targets, const std::vector<double>& start,
                    const std::vector<double>& end, const core::SavedRows* saved,
                    std::vector<ReplayAttribution>* out);

// The inputs Replay scores for `input`, as ModelRunner::ScorePrefixes arguments: `base` (the
// input without its side-features), the leave-one-out rows, then one row per step, the last
// standing for `input` itself (none for the baseline's input). For ScoreAllSavingRows while
// ranking. REQUIRES and errors: Replay's, for the input and groups.
absl::Status ReplayRows(const core::ModelShape& shape, const core::ModelInput& input,
                        const std::vector<core::ContextGroup>& groups, core::ModelInput* base,
                        std::vector<core::PrefixRow>* rows);

}  // namespace recsys::explain

#endif  // RECSYS_EXPLAIN_REPLAY_H_
