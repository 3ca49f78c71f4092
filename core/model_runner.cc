#include "core/model_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace recsys::core {

ModelInput BaselineInput(const ModelShape& shape) {
  ModelInput input;
  input.items.assign(shape.max_history, shape.num_items);
  input.event_features.assign(static_cast<size_t>(shape.max_history) * shape.num_event_features,
                              0.0f);
  input.mask.assign(shape.max_history, 0.0f);
  input.context = shape.context_baseline;
  if (input.context.empty()) input.context.assign(shape.num_context, 0.0f);
  return input;
}

absl::StatusOr<int32_t> CountRealEvents(const ModelInput& input) {
  const int32_t L = static_cast<int32_t>(input.mask.size());
  int32_t m = 0;
  while (m < L && input.mask[L - 1 - m] != 0.0f) ++m;
  for (int32_t p = 0; p < L - m; ++p) {
    if (input.mask[p] != 0.0f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model input: the real events must be the last positions; mask[", p, "] is set"));
    }
  }
  return m;
}

absl::StatusOr<int32_t> CheckPrefixRequest(const std::string& name, const ModelShape& shape,
                                           const ModelInput& input,
                                           const std::vector<PrefixRow>& rows) {
  const size_t L = shape.max_history, E = shape.num_event_features, C = shape.num_context;
  if (input.items.size() != L || input.mask.size() != L || input.event_features.size() != L * E ||
      input.context.size() != C) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": model input has the wrong size"));
  }
  absl::StatusOr<int32_t> m = CountRealEvents(input);
  if (!m.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", m.status().message()));
  for (const PrefixRow& row : rows) {
    if (row.events < 0 || row.events > *m || row.context.size() != C ||
        (!row.event_features.empty() && row.event_features.size() != L * E) || row.left_out < -1 ||
        row.left_out >= row.events) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": a prefix row asks for ", row.events, " of ", *m,
                       " events (leaving out ", row.left_out, ") with ", row.context.size(),
                       " context features and ", row.event_features.size(), " side-features"));
    }
  }
  return m;
}

ModelInput PrefixInput(const ModelShape& shape, const ModelInput& input, int32_t m,
                       const PrefixRow& row) {
  const size_t L = shape.max_history, E = shape.num_event_features;
  const std::vector<float>& features =
      row.event_features.empty() ? input.event_features : row.event_features;
  ModelInput shorter;
  shorter.items.assign(L, shape.num_items);
  shorter.event_features.assign(L * E, 0.0f);
  shorter.mask.assign(L, 0.0f);
  shorter.context = row.context;
  const size_t shown = row.events - (row.left_out >= 0 ? 1 : 0);
  size_t from = L - m, to = L - shown;  // The first event, and where it goes.
  for (int32_t i = 0; i < row.events; ++i, ++from) {
    if (i == row.left_out) continue;
    shorter.items[to] = input.items[from];
    shorter.mask[to] = input.mask[from];
    std::copy_n(features.begin() + from * E, E, shorter.event_features.begin() + to * E);
    ++to;
  }
  return shorter;
}

absl::Status ModelRunner::ScorePrefixes(const ModelInput& input, const std::vector<PrefixRow>& rows,
                                        const std::vector<ItemIndex>& targets,
                                        std::vector<float>* scores) const {
  const ModelShape& s = shape();
  absl::StatusOr<int32_t> m = CheckPrefixRequest(name(), s, input, rows);
  if (!m.ok()) return m.status();
  std::vector<ModelInput> inputs;
  inputs.reserve(rows.size());
  for (const PrefixRow& row : rows) inputs.push_back(PrefixInput(s, input, *m, row));
  return ScoreTargets(inputs, targets, scores);
}

absl::Status ModelRunner::ScoreAllSavingRows(const ModelInput& whole, const ModelInput& input,
                                             const std::vector<PrefixRow>& rows,
                                             std::vector<float>* scores, SavedRows* saved) const {
  *saved = SavedRows();
  return ScoreAll(whole, scores);
}

absl::Status ModelRunner::ScoreSavedRows(const SavedRows& saved,
                                         const std::vector<ItemIndex>& targets,
                                         std::vector<float>* scores) const {
  return ScorePrefixes(saved.input, saved.rows, targets, scores);
}

}  // namespace recsys::core
