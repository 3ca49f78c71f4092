#include "explain/integrated_gradients.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace recsys::explain {

namespace {

absl::Status CheckInput(const core::ModelRunner& model, const core::ModelInput& input,
                        const std::vector<core::ItemIndex>& targets, const Quadrature& rule) {
  const core::ModelShape& shape = model.shape();
  const size_t L = shape.max_history, E = shape.num_event_features, C = shape.num_context;
  if (input.items.size() != L || input.event_features.size() != L * E || input.mask.size() != L ||
      input.context.size() != C) {
    return absl::InvalidArgumentError(
        absl::StrCat(model.name(), ": attribution input has ", input.items.size(), " positions, ",
                     input.event_features.size(), " event features, ", input.mask.size(),
                     " mask entries and ", input.context.size(),
                     " context features; the model takes ", L, ", ", L * E, ", ", L, " and ", C));
  }
  for (core::ItemIndex t : targets) {
    if (t >= static_cast<core::ItemIndex>(shape.num_items)) {
      return absl::InvalidArgumentError(
          absl::StrCat(model.name(), ": target ", t, " is outside the catalogue"));
    }
  }
  if (rule.nodes.empty() || rule.nodes.size() != rule.weights.size()) {
    return absl::InvalidArgumentError("attribution: empty or malformed quadrature rule");
  }
  return absl::OkStatus();
}

// embed() of the rows Integrated Gradients needs, in one pass: the baseline (all padding, no
// side-features), the items without side-features, the full input, and the items with only
// side-feature e, for each e. Row r is at embedded[r * L * D].
absl::Status EmbedRows(const core::ModelRunner& model, const core::ModelInput& input,
                       std::vector<float>* embedded) {
  const core::ModelShape& shape = model.shape();
  const size_t L = shape.max_history, E = shape.num_event_features;
  std::vector<int64_t> items(L, shape.num_items);
  items.insert(items.end(), input.items.begin(), input.items.end());
  items.insert(items.end(), input.items.begin(), input.items.end());
  std::vector<float> features(2 * L * E, 0.0f);
  features.insert(features.end(), input.event_features.begin(), input.event_features.end());
  for (size_t e = 0; e < E; ++e) {
    items.insert(items.end(), input.items.begin(), input.items.end());
    const size_t row = features.size();
    features.resize(row + L * E, 0.0f);
    for (size_t p = 0; p < L; ++p) features[row + p * E + e] = input.event_features[p * E + e];
  }
  return model.Embed(items, features, embedded);
}

// The points of the path, one per quadrature node; the context goes from `context_start` to
// the input's.
core::EmbeddedPoints PathPoints(const std::vector<float>& rows, size_t row_size,
                                const core::ModelInput& input,
                                const std::vector<float>& context_start, const Quadrature& rule) {
  const float* base = rows.data();
  const float* full = rows.data() + 2 * row_size;
  core::EmbeddedPoints points;
  points.mask = input.mask;
  for (size_t s = 0; s < rule.nodes.size(); ++s) {
    const float alpha = static_cast<float>(rule.nodes[s]);
    for (size_t i = 0; i < row_size; ++i) {
      points.embedded.push_back(base[i] + alpha * (full[i] - base[i]));
    }
    for (size_t c = 0; c < input.context.size(); ++c) {
      points.context.push_back(context_start[c] + alpha * (input.context[c] - context_start[c]));
    }
    points.weights.push_back(rule.weights[s]);
  }
  return points;
}

// sum_i g[i] * (a[i] - b[i]) over one position's D entries.
double Dot(const float* g, const float* a, const float* b, size_t d) {
  double sum = 0.0;
  for (size_t i = 0; i < d; ++i) sum += static_cast<double>(g[i]) * (a[i] - b[i]);
  return sum;
}

}  // namespace

Quadrature GaussLegendre(int n) {
  std::vector<std::pair<double, double>> nodes;
  for (int i = 0; i < n; ++i) {
    // Newton's method on the Legendre polynomial P_n from the Chebyshev guess.
    double x = std::cos(3.14159265358979323846 * (i + 0.75) / (n + 0.5));
    double dp = 1.0;
    for (int iter = 0; iter < 100; ++iter) {
      double p0 = 1.0, p1 = x;
      for (int k = 2; k <= n; ++k) {
        const double p2 = ((2.0 * k - 1) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      if (n == 1) p0 = 1.0;
      dp = n * (x * p1 - p0) / (x * x - 1.0);
      const double dx = p1 / dp;
      x -= dx;
      if (std::fabs(dx) < 1e-15) break;
    }
    const double w = 2.0 / ((1.0 - x * x) * dp * dp);
    nodes.emplace_back((x + 1.0) / 2.0, w / 2.0);  // Mapped from [-1, 1] to [0, 1].
  }
  std::sort(nodes.begin(), nodes.end());
  Quadrature rule;
  for (const auto& [x, w] : nodes) {
    rule.nodes.push_back(x);
    rule.weights.push_back(w);
  }
  return rule;
}

Quadrature GradientTimesInput() { return {{1.0}, {1.0}}; }

absl::Status IntegratedGradients(const core::ModelRunner& model, const core::ModelInput& input,
                                 const std::vector<core::ItemIndex>& targets,
                                 const Quadrature& rule, std::vector<PathAttribution>* out) {
  if (absl::Status s = CheckInput(model, input, targets, rule); !s.ok()) return s;
  if (targets.empty()) return absl::OkStatus();
  const core::ModelShape& shape = model.shape();
  const size_t L = shape.max_history, E = shape.num_event_features, C = shape.num_context;
  const size_t D = model.embedding_dim(), K = targets.size();
  std::vector<float> rows;
  if (absl::Status s = EmbedRows(model, input, &rows); !s.ok()) return s;
  if (rows.size() != (3 + E) * L * D) {
    return absl::InternalError(absl::StrCat(model.name(), ": embed() gave ", rows.size(),
                                            " values, expected ", (3 + E) * L * D));
  }
  // The path's start, the padding embedded under the request's mask with the baseline context,
  // is the baseline input under that mask: one forward pass without gradients scores it.
  core::ModelInput start = core::BaselineInput(shape);
  start.mask = input.mask;
  core::ScoreGradients g;
  if (absl::Status s =
          model.Gradients(PathPoints(rows, L * D, input, start.context, rule), targets, &g);
      !s.ok()) {
    return s;
  }
  if (g.embedded.size() != K * L * D || g.context.size() != K * C) {
    return absl::InternalError(absl::StrCat(model.name(), ": Gradients() gave ", g.embedded.size(),
                                            " and ", g.context.size(), " values, expected ",
                                            K * L * D, " and ", K * C));
  }
  std::vector<float> baseline;
  if (absl::Status s = model.ScoreTargets({start}, targets, &baseline); !s.ok()) return s;
  if (baseline.size() != K) {
    return absl::InternalError(absl::StrCat(model.name(), ": ScoreTargets() gave ", baseline.size(),
                                            " scores, expected ", K));
  }
  const float* base = rows.data();
  const float* items = rows.data() + L * D;
  for (size_t k = 0; k < K; ++k) {
    PathAttribution& a = out->emplace_back();
    a.event.assign(L, 0.0);
    a.event_feature.assign(L * E, 0.0);
    a.context.resize(C);
    for (size_t p = 0; p < L; ++p) {
      const float* grad = g.embedded.data() + (k * L + p) * D;
      a.event[p] = Dot(grad, items + p * D, base + p * D, D);
      for (size_t e = 0; e < E; ++e) {
        const float* only = rows.data() + (3 + e) * L * D;
        a.event_feature[p * E + e] = Dot(grad, only + p * D, items + p * D, D);
      }
    }
    for (size_t c = 0; c < C; ++c) {
      a.context[c] = g.context[k * C + c] * (input.context[c] - start.context[c]);
    }
    a.baseline = baseline[k];
  }
  return absl::OkStatus();
}

}  // namespace recsys::explain
