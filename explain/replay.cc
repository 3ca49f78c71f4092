#include "explain/replay.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace recsys::explain {

namespace {

// What a replay step adds, and so what its score change is credited to.
enum class Credit { kContext, kEvent, kFeature };
struct Step {
  Credit credit;
  int index;  // The context group, input position or side-feature kind.
};

// The steps' inputs, the baseline first, and what each later one adds.
struct ReplaySteps {
  std::vector<core::ModelInput> inputs;
  std::vector<Step> steps;  // steps[i] leads from inputs[i] to inputs[i + 1].

  void Add(const core::ModelInput& input, Step step) {
    inputs.push_back(input);
    steps.push_back(step);
  }
};

// The number of real events of `input`, which must fill its last positions.
absl::StatusOr<int> RealEvents(const core::ModelInput& input) {
  const int L = static_cast<int>(input.mask.size());
  int m = 0;
  while (m < L && input.mask[L - 1 - m] != 0.0f) ++m;
  for (int p = 0; p < L - m; ++p) {
    if (input.mask[p] != 0.0f) {
      return absl::InvalidArgumentError(
          absl::StrCat("replay: the real events must be the last positions; mask[", p, "] is set"));
    }
  }
  return m;
}

ReplaySteps MakeSteps(const core::ModelShape& shape, const core::ModelInput& input, int m,
                      const std::vector<core::ContextGroup>& groups) {
  const int L = shape.max_history, E = shape.num_event_features;
  core::ModelInput row;
  row.items.assign(L, shape.num_items);
  row.event_features.assign(static_cast<size_t>(L) * E, 0.0f);
  row.mask.assign(L, 0.0f);
  row.context.assign(shape.num_context, 0.0f);
  ReplaySteps out;
  out.inputs.push_back(row);
  for (size_t g = 0; g < groups.size(); ++g) {
    bool changes = false;
    for (int c : groups[g].features) {
      changes |= input.context[c] != 0.0f;
      row.context[c] = input.context[c];
    }
    if (changes) out.Add(row, {Credit::kContext, static_cast<int>(g)});
  }
  for (int j = 1; j <= m; ++j) {  // The history after its j-th event, left-padded.
    row.items.assign(L, shape.num_items);
    row.mask.assign(L, 0.0f);
    for (int i = 0; i < j; ++i) {
      row.items[L - j + i] = input.items[L - m + i];
      row.mask[L - j + i] = input.mask[L - m + i];
    }
    out.Add(row, {Credit::kEvent, L - m + j - 1});
  }
  for (int e = 0; e < E; ++e) {
    bool changes = false;
    for (int p = 0; p < L; ++p) {
      changes |= input.event_features[p * E + e] != 0.0f;
      row.event_features[p * E + e] = input.event_features[p * E + e];
    }
    if (changes) out.Add(row, {Credit::kFeature, e});
  }
  return out;
}

}  // namespace

namespace {

// The checks of Replay's arguments, but for those of the inputs' real events (RealEvents).
absl::Status CheckArguments(const core::ModelShape& shape, const core::ModelInput& input,
                            const std::vector<core::ContextGroup>& groups, size_t targets,
                            const std::vector<double>& start, const std::vector<double>& end) {
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
  return absl::OkStatus();
}

bool SameInput(const core::ModelInput& a, const core::ModelInput& b) {
  return a.items == b.items && a.event_features == b.event_features && a.mask == b.mask &&
         a.context == b.context;
}

// scores[r * K + k]: target k at step input r, the first and last rows from start and end, the
// inner ones scored in one batch.
absl::Status ScoreSteps(const core::ModelRunner& model, ReplaySteps* steps,
                        const std::vector<core::ItemIndex>& targets,
                        const std::vector<double>& start, const std::vector<double>& end,
                        std::vector<double>* scores) {
  const size_t K = targets.size(), rows = steps->inputs.size();
  scores->assign(rows * K, 0.0);
  std::copy(start.begin(), start.end(), scores->begin());
  std::copy(end.begin(), end.end(), scores->end() - K);
  if (rows <= 2) return absl::OkStatus();
  std::vector<core::ModelInput> inner(std::make_move_iterator(steps->inputs.begin() + 1),
                                      std::make_move_iterator(steps->inputs.end() - 1));
  std::vector<float> scored;
  if (absl::Status s = model.ScoreTargets(inner, targets, &scored); !s.ok()) return s;
  if (scored.size() != (rows - 2) * K) {
    return absl::InternalError("replay: the model scored a batch of the wrong size");
  }
  std::copy(scored.begin(), scored.end(), scores->begin() + K);
  return absl::OkStatus();
}

}  // namespace

absl::Status Replay(const core::ModelRunner& model, const core::ModelInput& input,
                    const std::vector<core::ContextGroup>& groups,
                    const std::vector<core::ItemIndex>& targets, const std::vector<double>& start,
                    const std::vector<double>& end, std::vector<ReplayAttribution>* out) {
  const core::ModelShape& shape = model.shape();
  if (absl::Status s = CheckArguments(shape, input, groups, targets.size(), start, end); !s.ok()) {
    return s;
  }
  absl::StatusOr<int> m = RealEvents(input);
  if (!m.ok()) return m.status();
  ReplaySteps steps = MakeSteps(shape, input, *m, groups);
  // The last step must be the input itself, whose score the caller gave as `end`.
  if (!SameInput(steps.inputs.back(), input)) {
    return absl::InvalidArgumentError(
        "replay: the input's padding positions must hold the padding item");
  }
  std::vector<double> scores;
  if (absl::Status s = ScoreSteps(model, &steps, targets, start, end, &scores); !s.ok()) return s;
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
      std::vector<double>& credited = step.credit == Credit::kContext ? a.context
                                      : step.credit == Credit::kEvent ? a.event
                                                                      : a.feature;
      credited[step.index] += change;
    }
  }
  return absl::OkStatus();
}

}  // namespace recsys::explain
