#include "explain/replay.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace recsys::explain {

namespace {

// What a replay step adds, and so what its score change is credited to.
enum class Credit { kContext, kEvent, kFeature };
struct Step {
  Credit credit;
  int index;  // The context group, input position or side-feature kind.
};

// The rows of ModelRunner::ScorePrefixes over the request's events without side-features that
// Replay scores: first the request without each of its m events in turn (leave-one-out rows,
// with the request's side-features), then the steps' inputs after the baseline: those that add
// context groups and the events (a prefix of that history: none of its events, or all), then
// those that add the side-feature kinds (the whole history with side-features of its own).
struct ReplaySteps {
  int left_out = 0;  // The leave-one-out rows: rows[0, left_out).
  std::vector<core::PrefixRow> rows;
  // steps[i] leads from input i to input i + 1 (input 0: the baseline, input i > 0:
  // rows[left_out + i - 1]).
  std::vector<Step> steps;
};

ReplaySteps MakeSteps(const core::ModelShape& shape, const core::ModelInput& input, int m,
                      const std::vector<core::ContextGroup>& groups) {
  const int L = shape.max_history, E = shape.num_event_features;
  ReplaySteps out;
  if (m > 1) {  // One event needs no split.
    for (int j = 0; j < m; ++j) out.rows.push_back({m, input.context, input.event_features, j});
    out.left_out = m;
  }
  std::vector<float> context = core::BaselineInput(shape).context;
  for (size_t g = 0; g < groups.size(); ++g) {
    bool changes = false;
    for (int c : groups[g].features) {
      changes |= input.context[c] != context[c];
      context[c] = input.context[c];
    }
    if (!changes) continue;
    out.rows.push_back({0, context});
    out.steps.push_back({Credit::kContext, static_cast<int>(g)});
  }
  if (m > 0) {  // The events, all at once: Replay splits what they add among them.
    out.rows.push_back({m, input.context});
    out.steps.push_back({Credit::kEvent, L - m});
  }
  std::vector<float> features(input.event_features.size(), 0.0f);
  for (int e = 0; e < E; ++e) {
    bool changes = false;
    for (int p = 0; p < L; ++p) {
      changes |= input.event_features[p * E + e] != 0.0f;
      features[p * E + e] = input.event_features[p * E + e];
    }
    if (!changes) continue;
    out.rows.push_back({m, input.context, features});
    out.steps.push_back({Credit::kFeature, e});
  }
  return out;
}

// The checks of Replay's arguments; returns the number of real events of `input`.
absl::StatusOr<int> CheckArguments(const core::ModelShape& shape, const core::ModelInput& input,
                                   const std::vector<core::ContextGroup>& groups, size_t targets,
                                   const std::vector<double>& start,
                                   const std::vector<double>& end) {
  const size_t L = shape.max_history, E = shape.num_event_features, C = shape.num_context;
  if (input.items.size() != L || input.mask.size() != L || input.event_features.size() != L * E ||
      input.context.size() != C) {
    return absl::InvalidArgumentError("replay: the input does not have the model's sizes");
  }
  std::vector<int> covered(C, 0);
  for (const core::ContextGroup& group : groups) {
    for (int c : group.features) {
      if (c < 0 || static_cast<size_t>(c) >= C || covered[c]++ > 0) {
        return absl::InvalidArgumentError(absl::StrCat("replay: context group \"", group.name,
                                                       "\" has feature ", c,
                                                       " out of range or twice"));
      }
    }
  }
  if (std::find(covered.begin(), covered.end(), 0) != covered.end()) {
    return absl::InvalidArgumentError("replay: a context feature is in no group");
  }
  if (start.size() != targets || end.size() != targets) {
    return absl::InvalidArgumentError("replay: one start and one end score per target");
  }
  absl::StatusOr<int32_t> m = core::CountRealEvents(input);
  if (!m.ok()) return m.status();
  // The steps rebuild the input from its real events: its padding must be the empty history's,
  // so that the last step is the input itself, whose score the caller gave as `end`.
  for (size_t p = 0; p < L - *m; ++p) {
    const auto features = input.event_features.begin() + p * E;
    if (input.items[p] != shape.num_items ||
        std::any_of(features, features + E, [](float f) { return f != 0.0f; })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "replay: padding position ", p, " must hold the padding item without side-features"));
    }
  }
  return *m;
}

// The input without its side-features: what the rows' prefixes are taken from.
core::ModelInput Bare(const core::ModelInput& input) {
  core::ModelInput bare = input;
  bare.event_features.assign(input.event_features.size(), 0.0f);
  return bare;
}

// chain[r * K + k]: target k at step input r, the first and last rows `start` and `end` (the
// last step is the input itself); left_out[j * K + k]: target k without event j. Scored from
// `saved` when it holds these rows, else with one ScorePrefixes call.
absl::Status ScoreSteps(const core::ModelRunner& model, const core::ModelInput& input,
                        const core::SavedRows* saved, ReplaySteps* steps,
                        const std::vector<core::ItemIndex>& targets,
                        const std::vector<double>& start, const std::vector<double>& end,
                        std::vector<double>* chain, std::vector<double>* left_out) {
  *chain = start;
  left_out->clear();
  if (steps->steps.empty()) return absl::OkStatus();
  const size_t K = targets.size(), scored_rows = steps->rows.size() - 1;
  const core::ModelInput bare = Bare(input);
  std::vector<float> scored;
  absl::Status s;
  if (saved != nullptr && saved->rows == steps->rows && saved->input == bare) {
    s = model.ScoreSavedRows(*saved, targets, &scored);
    if (s.ok() && scored.size() == steps->rows.size() * K) scored.resize(scored_rows * K);
  } else if (scored_rows > 0) {
    steps->rows.pop_back();
    s = model.ScorePrefixes(bare, steps->rows, targets, &scored);
  }
  if (!s.ok()) return s;
  if (scored.size() != scored_rows * K) {
    return absl::InternalError("replay: the model scored a batch of the wrong size");
  }
  const auto inner = scored.begin() + static_cast<size_t>(steps->left_out) * K;
  left_out->assign(scored.begin(), inner);
  chain->insert(chain->end(), inner, scored.end());
  chain->insert(chain->end(), end.begin(), end.end());
  return absl::OkStatus();
}

// The events step's score change `added`, split into each event's leave-one-out effect
// all - without[j * stride] (`all`: the request's score) plus an equal share of what those
// effects leave out of it, into event[L - m, L).
void SplitEvents(int m, double added, double all, const double* without, size_t stride,
                 std::vector<double>* event) {
  const size_t first = event->size() - m;
  double rest = added;
  for (int j = 0; j < m; ++j) {
    (*event)[first + j] = all - without[j * stride];
    rest -= (*event)[first + j];
  }
  for (int j = 0; j < m; ++j) (*event)[first + j] += rest / m;
}

}  // namespace

absl::Status ReplayRows(const core::ModelShape& shape, const core::ModelInput& input,
                        const std::vector<core::ContextGroup>& groups, core::ModelInput* base,
                        std::vector<core::PrefixRow>* rows) {
  absl::StatusOr<int> m = CheckArguments(shape, input, groups, 0, {}, {});
  if (!m.ok()) return m.status();
  *base = Bare(input);
  *rows = MakeSteps(shape, input, *m, groups).rows;
  return absl::OkStatus();
}

absl::Status Replay(const core::ModelRunner& model, const core::ModelInput& input,
                    const std::vector<core::ContextGroup>& groups,
                    const std::vector<core::ItemIndex>& targets, const std::vector<double>& start,
                    const std::vector<double>& end, const core::SavedRows* saved,
                    std::vector<ReplayAttribution>* out) {
  const core::ModelShape& shape = model.shape();
  absl::StatusOr<int> m = CheckArguments(shape, input, groups, targets.size(), start, end);
  if (!m.ok()) return m.status();
  ReplaySteps steps = MakeSteps(shape, input, *m, groups);
  std::vector<double> scores, left_out;
  if (absl::Status s =
          ScoreSteps(model, input, saved, &steps, targets, start, end, &scores, &left_out);
      !s.ok()) {
    return s;
  }
  const size_t K = targets.size();
  for (size_t k = 0; k < K; ++k) {
    ReplayAttribution& a = out->emplace_back();
    a.event.assign(shape.max_history, 0.0);
    a.feature.assign(shape.num_event_features, 0.0);
    a.context.assign(groups.size(), 0.0);
    a.baseline = start[k];
    for (size_t i = 0; i < steps.steps.size(); ++i) {
      const double change = scores[(i + 1) * K + k] - scores[i * K + k];
      const Step& step = steps.steps[i];
      if (step.credit == Credit::kEvent && steps.left_out > 0) {
        SplitEvents(*m, change, end[k], left_out.data() + k, K, &a.event);
        continue;
      }
      std::vector<double>& credited = step.credit == Credit::kContext ? a.context
                                      : step.credit == Credit::kEvent ? a.event
                                                                      : a.feature;
      credited[step.index] += change;
    }
  }
  return absl::OkStatus();
}

}  // namespace recsys::explain
