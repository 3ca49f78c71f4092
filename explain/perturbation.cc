#include "explain/perturbation.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/featurizer.h"

namespace recsys::explain {

namespace {

// The context groups of the request with a feature off its baseline (a group at its baseline
// adds nothing; the same for every model: the featurizer computes the context from the
// bundle's schema alone, and the baseline is the bundle's).
std::vector<core::ContextGroup> ChangedContext(const core::BundleManifest& manifest,
                                               const core::RankedList& ranked) {
  std::vector<core::ContextGroup> out;
  const core::ModelInput* input = ranked.first_model_input();
  if (input == nullptr) return out;  // Without models no source reads the context.
  const std::vector<float> baseline = core::ContextBaseline(manifest);
  for (core::ContextGroup& group : core::ContextGroups(manifest)) {
    if (std::any_of(group.features.begin(), group.features.end(),
                    [&](int c) { return input->context[c] != baseline[c]; })) {
      out.push_back(std::move(group));
    }
  }
  return out;
}

// Solves A x = B for symmetric positive definite A (n x n) and `rhs` right-hand sides, B and
// the result stored column-major in b (n * rhs). A is overwritten by its Cholesky factor.
void CholeskySolve(int n, int rhs, std::vector<double>* a, std::vector<double>* b) {
  std::vector<double>& A = *a;
  for (int j = 0; j < n; ++j) {
    double d = A[j * n + j];
    for (int k = 0; k < j; ++k) d -= A[j * n + k] * A[j * n + k];
    d = std::sqrt(std::max(d, 1e-300));
    A[j * n + j] = d;
    for (int i = j + 1; i < n; ++i) {
      double s = A[i * n + j];
      for (int k = 0; k < j; ++k) s -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = s / d;
    }
  }
  for (int r = 0; r < rhs; ++r) {
    double* x = b->data() + static_cast<size_t>(r) * n;
    for (int i = 0; i < n; ++i) {  // L y = b
      for (int k = 0; k < i; ++k) x[i] -= A[i * n + k] * x[k];
      x[i] /= A[i * n + i];
    }
    for (int i = n - 1; i >= 0; --i) {  // L^T x = y
      for (int k = i + 1; k < n; ++k) x[i] -= A[k * n + i] * x[k];
      x[i] /= A[i * n + i];
    }
  }
}

// Uniform double in [0, 1) from 53 random bits (the same on every platform, unlike the
// standard distributions).
double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

CoalitionScorer::CoalitionScorer(const core::Bundle& bundle, const core::RecommendRequest& request,
                                 const core::RankedList& ranked)
    : bundle_(bundle), request_(request), ranked_(ranked) {
  const size_t n = ranked.history.items.size(), K = ranked.items.size();
  players_.events.resize(n);
  std::iota(players_.events.begin(), players_.events.end(), 0);
  players_.context = ChangedContext(bundle.manifest(), ranked);
  cf_terms_.resize(n * K);
  is_self_.resize(n * K);
  for (size_t t = 0; t < n; ++t) {
    const core::ItemIndex from = ranked.history.items[t];
    for (size_t k = 0; k < K; ++k) {
      const core::ItemIndex to = ranked.items[k].index;
      is_self_[t * K + k] = from == to;
      cf_terms_[t * K + k] =
          from == to ? bundle.manifest().self_similarity : bundle.cf_index().Similarity(from, to);
    }
  }
}

absl::Status CoalitionScorer::Score(const std::vector<std::vector<bool>>& coalitions,
                                    std::vector<double>* values) const {
  const size_t B = coalitions.size(), K = ranked_.items.size();
  values->assign(B * K, 0.0);

  // The reduced history of each coalition: known events that are present, in order.
  std::vector<std::vector<size_t>> present(B);
  for (size_t b = 0; b < B; ++b) {
    for (size_t t = 0; t < players_.events.size(); ++t) {
      if (coalitions[b][t]) present[b].push_back(t);
    }
  }
  // Each source as the ranker fuses it; popularity, which no player changes, is left out.
  std::vector<double> raw;
  for (const core::RankedSource& source : ranked_.sources) {
    if (!source.source.active()) continue;  // Adds 0; an unweighted model is not run.
    switch (source.source.kind) {
      case core::SourceKind::kCf:
        CfRaw(present, &raw);
        break;
      case core::SourceKind::kModel:
        if (absl::Status s = ModelRaw(source, present, coalitions, &raw); !s.ok()) return s;
        break;
      case core::SourceKind::kPopularity:
        continue;
    }
    for (size_t i = 0; i < B * K; ++i) (*values)[i] += core::Fuse(source.source.spec, raw[i]);
  }
  return absl::OkStatus();
}

void CoalitionScorer::CfRaw(const std::vector<std::vector<size_t>>& present,
                            std::vector<double>* raw) const {
  const core::BundleManifest& manifest = bundle_.manifest();
  const size_t K = ranked_.items.size();
  raw->assign(present.size() * K, 0.0);
  for (size_t b = 0; b < present.size(); ++b) {
    const std::vector<double> w = core::RecencyWeights(present[b].size(), manifest.recency_decay);
    std::vector<double> ages;
    for (size_t t : present[b]) ages.push_back(ranked_.history.age_days[t]);
    const std::vector<double> self_w = core::SelfWeights(manifest, ages);
    for (size_t i = 0; i < present[b].size(); ++i) {
      const size_t t = present[b][i];
      for (size_t k = 0; k < K; ++k) {
        (*raw)[b * K + k] += (is_self_[t * K + k] ? self_w[i] : w[i]) * cf_terms_[t * K + k];
      }
    }
  }
}

absl::Status CoalitionScorer::ModelRaw(const core::RankedSource& source,
                                       const std::vector<std::vector<size_t>>& present,
                                       const std::vector<std::vector<bool>>& coalitions,
                                       std::vector<double>* raw) const {
  const core::ResolvedHistory& history = ranked_.history;
  const core::ModelRunner& model = *source.source.model;
  const size_t n = players_.events.size();
  const std::vector<float> baseline = core::ContextBaseline(bundle_.manifest());
  std::vector<core::ModelInput> inputs;
  inputs.reserve(present.size());
  for (size_t b = 0; b < present.size(); ++b) {
    std::vector<int32_t> positions;
    std::vector<core::ItemIndex> known;
    for (size_t t : present[b]) {
      positions.push_back(history.positions[t]);
      known.push_back(history.items[t]);
    }
    core::ModelInput input = core::Featurize(bundle_.manifest(), model.shape(), request_, positions,
                                             known, ranked_.request_time);
    // Context features are present only as players of the coalition; the rest are at the
    // baseline.
    std::vector<float> context = baseline;
    for (size_t c = 0; c < players_.context.size(); ++c) {
      if (!coalitions[b][n + c]) continue;
      for (int feature : players_.context[c].features) context[feature] = input.context[feature];
    }
    input.context = std::move(context);
    inputs.push_back(std::move(input));
  }
  std::vector<core::ItemIndex> items;
  for (const core::RecommendedItem& item : ranked_.items) items.push_back(item.index);
  std::vector<float> scores;
  if (absl::Status s = model.ScoreTargets(inputs, items, &scores); !s.ok()) return s;
  raw->assign(scores.begin(), scores.end());
  return absl::OkStatus();
}

absl::Status Occlusion(const CoalitionScorer& scorer, PlayerAttributions* phi) {
  const size_t M = scorer.players().size(), K = scorer.num_items();
  std::vector<std::vector<bool>> coalitions(M + 1, std::vector<bool>(M, true));
  for (size_t p = 0; p < M; ++p) coalitions[p + 1][p] = false;
  std::vector<double> v;
  if (absl::Status s = scorer.Score(coalitions, &v); !s.ok()) return s;
  phi->assign(K, std::vector<double>(M));
  for (size_t k = 0; k < K; ++k) {
    for (size_t p = 0; p < M; ++p) (*phi)[k][p] = v[k] - v[(p + 1) * K + k];
  }
  return absl::OkStatus();
}

namespace {

// Coalitions and their weights in the fit: rows 0 and 1 are all players and none (KernelSHAP's
// weight 0: efficiency fixes them), then the others (see ShapleyDesign). `exact`: every
// coalition is there. Rows from `first_draw` on are drawn, each pair a coalition and its
// complement.
struct Design {
  std::vector<std::vector<bool>> coalitions;
  std::vector<double> weights;
  bool exact = false;
  size_t first_draw = 0;
};

// C(n, k) as a double (it may be far beyond any integer type).
double Binomial(int n, int k) {
  double c = 1.0;
  for (int i = 1; i <= k; ++i) c = c * (n - k + i) / i;
  return c;
}

// Adds every coalition of `size` of the M players, each with `weight`.
void AddEveryCoalition(int M, int size, double weight, Design* d) {
  std::vector<int> pick(size);  // The players in, increasing: the next combination each time.
  std::iota(pick.begin(), pick.end(), 0);
  while (true) {
    std::vector<bool>& z = d->coalitions.emplace_back(M, false);
    for (int p : pick) z[p] = true;
    d->weights.push_back(weight);
    int i = size - 1;
    while (i >= 0 && pick[i] == M - size + i) --i;
    if (i < 0) return;
    ++pick[i];
    for (int j = i + 1; j < size; ++j) pick[j] = pick[j - 1] + 1;
  }
}

// Adds `pairs` coalitions drawn with their complements: a size s with probability proportional
// to mass[s] (0 for sizes not to draw), the players uniformly within it; each coalition weighs
// an equal share of the total mass. REQUIRES: mass has M entries, some positive.
void AddDraws(int M, const std::vector<double>& mass, int pairs, uint64_t seed, Design* d) {
  std::vector<double> cumulative(M, 0.0);
  for (int s = 1; s < M; ++s) cumulative[s] = cumulative[s - 1] + mass[s];
  std::mt19937_64 rng(seed);
  std::vector<int> order(M);
  for (int pair = 0; pair < pairs; ++pair) {
    const double u = Uniform(rng) * cumulative[M - 1];
    const int size = static_cast<int>(
        std::upper_bound(cumulative.begin() + 1, cumulative.end(), u) - cumulative.begin());
    std::iota(order.begin(), order.end(), 0);
    std::vector<bool> z(M, false);
    for (int i = 0; i < std::min(size, M - 1); ++i) {  // Partial Fisher-Yates.
      const int j = i + static_cast<int>(Uniform(rng) * (M - i));
      std::swap(order[i], order[j]);
      z[order[i]] = true;
    }
    std::vector<bool> complement(M);
    for (int p = 0; p < M; ++p) complement[p] = !z[p];
    d->coalitions.push_back(std::move(z));
    d->coalitions.push_back(std::move(complement));
    d->weights.insert(d->weights.end(), 2, cumulative[M - 1] / (2.0 * pairs));
  }
}

// The Shapley kernel's coalitions within a budget of `samples` proper coalitions. As in the
// shap library's KernelExplainer, sizes are taken in pairs (s, M - s) from the outside in (the
// sizes of most kernel mass (M - 1) / (s (M - s)) first) and enumerated whole, each coalition
// weighing the Shapley kernel (M - 1) / (C(M, s) s (M - s)), and the rest of the budget is
// drawn from the sizes left (AddDraws). Unlike shap, which enumerates a size only when its share
// of the budget by kernel mass would cover it, a size is enumerated whenever it fits and leaves
// at least one pair of draws for the sizes left (measured: at 50 events the default 128 samples
// then enumerate sizes 1 and M - 1, which shap's rule would not, and KernelSHAP's deletion wins
// on new items rose from 64% to 79%). Either way the expectation is the kernel's: enumeration
// only takes a stratum out of the draws. With 2^M - 2 <= samples every coalition is enumerated
// (with M < 2 there are none but all players and none).
Design ShapleyDesign(int M, int samples, uint64_t seed) {
  Design d{{std::vector<bool>(M, true), std::vector<bool>(M, false)}, {0.0, 0.0}};
  std::vector<double> mass(M, 0.0);  // Of the sizes 1..M-1 not enumerated.
  for (int s = 1; s < M; ++s) mass[s] = (M - 1.0) / (s * (M - s));
  double budget = samples;
  int s = 1;
  for (; 2 * s <= M; ++s) {
    const double coalitions = Binomial(M, s);
    const double count = (2 * s == M ? 1.0 : 2.0) * coalitions;
    const bool last = 2 * (s + 1) > M;
    if (count > budget || (!last && budget - count < 2.0)) break;
    budget -= count;
    AddEveryCoalition(M, s, mass[s] / coalitions, &d);
    if (2 * s != M) AddEveryCoalition(M, M - s, mass[s] / coalitions, &d);
    mass[s] = mass[M - s] = 0.0;
  }
  d.exact = 2 * s > M;
  d.first_draw = d.coalitions.size();
  if (!d.exact) AddDraws(M, mass, static_cast<int>(budget) / 2, seed, &d);
  return d;
}

// The constrained weighted least-squares fit of the coalition values `v` (v[r * K + k]: row r,
// item k): efficiency eliminates the last player, phi_M = delta - sum_{j<M} phi_j, leaving a
// fit of y - z_M delta on (z_j - z_M), j < M, with one normal matrix for all items. `ridge`
// keeps it defined when the rows do not span every player (unspanned directions get 0).
// REQUIRES: M >= 2.
void FitShapley(const Design& d, const std::vector<double>& v, size_t K, int M, bool ridge,
                PlayerAttributions* phi) {
  std::vector<double> delta(K);  // v(all) - v(none) per item.
  for (size_t k = 0; k < K; ++k) delta[k] = v[k] - v[K + k];
  const int n = M - 1;
  std::vector<double> A(static_cast<size_t>(n) * n, 0.0), rhs(static_cast<size_t>(n) * K, 0.0);
  std::vector<double> x(n);
  for (size_t r = 2; r < d.coalitions.size(); ++r) {
    const std::vector<bool>& z = d.coalitions[r];
    const double last = z[n] ? 1.0 : 0.0;
    for (int j = 0; j < n; ++j) x[j] = (z[j] ? 1.0 : 0.0) - last;
    for (int i = 0; i < n; ++i) {
      if (x[i] == 0.0) continue;
      for (int j = 0; j < n; ++j) A[i * n + j] += d.weights[r] * x[i] * x[j];
      for (size_t k = 0; k < K; ++k) {
        const double y = v[r * K + k] - v[K + k] - last * delta[k];
        rhs[k * n + i] += d.weights[r] * x[i] * y;
      }
    }
  }
  if (ridge) {
    double trace = 0.0;
    for (int i = 0; i < n; ++i) trace += A[i * n + i];
    for (int i = 0; i < n; ++i) A[i * n + i] += 1e-9 * trace / n + 1e-12;
  }
  CholeskySolve(n, static_cast<int>(K), &A, &rhs);
  for (size_t k = 0; k < K; ++k) {
    double sum = 0.0;
    for (int j = 0; j < n; ++j) sum += (*phi)[k][j] = rhs[k * n + j];
    (*phi)[k][n] = delta[k] - sum;
  }
}

// Per item, the split-half estimate of the sampled fit's standard error (see KernelShap), or
// nothing with fewer than two pairs of draws. REQUIRES: M >= 2, !d.exact.
std::vector<double> SplitHalfError(const Design& d, const std::vector<double>& v, size_t K, int M) {
  if (d.coalitions.size() - d.first_draw < 4) return {};
  PlayerAttributions half[2];
  for (int h = 0; h < 2; ++h) {
    Design part = d;
    for (size_t r = d.first_draw; r < d.coalitions.size(); ++r) {
      part.weights[r] *= (r - d.first_draw) / 2 % 2 == static_cast<size_t>(h) ? 2.0 : 0.0;
    }
    half[h].assign(K, std::vector<double>(M, 0.0));
    FitShapley(part, v, K, M, /*ridge=*/true, &half[h]);
  }
  std::vector<double> error(K, 0.0);
  for (size_t k = 0; k < K; ++k) {
    double sum = 0.0;
    for (int p = 0; p < M; ++p) sum += std::pow((half[0][k][p] - half[1][k][p]) / 2.0, 2);
    error[k] = std::sqrt(sum / M);
  }
  return error;
}

}  // namespace

absl::Status KernelShap(const CoalitionScorer& scorer, int samples, uint64_t seed,
                        PlayerAttributions* phi, int* evaluated,
                        std::vector<double>* standard_error) {
  const int M = static_cast<int>(scorer.players().size());
  const size_t K = scorer.num_items();
  Design design = ShapleyDesign(M, samples, seed);
  std::vector<double> v;
  if (absl::Status s = scorer.Score(design.coalitions, &v); !s.ok()) return s;
  *evaluated = static_cast<int>(design.coalitions.size());
  phi->assign(K, std::vector<double>(M, 0.0));
  standard_error->assign(K, 0.0);
  if (M == 1) {
    for (size_t k = 0; k < K; ++k) (*phi)[k][0] = v[k] - v[K + k];
  } else if (M >= 2) {
    FitShapley(design, v, K, M, /*ridge=*/!design.exact, phi);
    if (!design.exact) *standard_error = SplitHalfError(design, v, K, M);
  }
  return absl::OkStatus();
}

namespace {

// LIME's coalitions: KernelSHAP's (ShapleyDesign), each weighing LIME's exponential kernel of
// its cosine distance from all players, sqrt(exp(-d^2 / 25^2)) with d = 100 x (1 - sqrt(|S| / M))
// (the cosine distance of a presence vector with |S| ones from all-ones; 100 for none).
// The weights are then scaled to sum to `samples`: lime fits `samples` rows against its ridge
// penalty, and an exact design (few players) has fewer rows, which would let the penalty
// shrink the fit (at 3 players, an additive game's effects to a third).
Design LimeDesign(int M, int samples, uint64_t seed) {
  Design d = ShapleyDesign(M, samples, seed);
  double total = 0.0;
  for (size_t r = 0; r < d.coalitions.size(); ++r) {
    const int present =
        static_cast<int>(std::count(d.coalitions[r].begin(), d.coalitions[r].end(), true));
    const double distance = 100.0 * (1.0 - std::sqrt(static_cast<double>(present) / M));
    total += d.weights[r] = std::sqrt(std::exp(-distance * distance / (25.0 * 25.0)));
  }
  for (double& w : d.weights) w *= samples / total;
  return d;
}

// The weighted ridge fit of LIME for every item at once: centred by the weighted means, so the
// intercept is not penalised (as scikit-learn's Ridge does).
void FitLime(const Design& d, const std::vector<double>& v, size_t K, int M,
             PlayerAttributions* phi, std::vector<double>* r_squared) {
  const size_t R = d.coalitions.size();
  double total = 0.0;
  std::vector<double> zmean(M, 0.0), ymean(K, 0.0);
  for (size_t r = 0; r < R; ++r) {
    total += d.weights[r];
    for (int j = 0; j < M; ++j) zmean[j] += d.weights[r] * d.coalitions[r][j];
    for (size_t k = 0; k < K; ++k) ymean[k] += d.weights[r] * v[r * K + k];
  }
  for (double& z : zmean) z /= total;
  for (double& y : ymean) y /= total;
  std::vector<double> A(static_cast<size_t>(M) * M, 0.0), b(static_cast<size_t>(M) * K, 0.0);
  std::vector<double> x(M);
  for (size_t r = 0; r < R; ++r) {
    for (int j = 0; j < M; ++j) x[j] = d.coalitions[r][j] - zmean[j];
    for (int i = 0; i < M; ++i) {
      for (int j = 0; j < M; ++j) A[i * M + j] += d.weights[r] * x[i] * x[j];
      for (size_t k = 0; k < K; ++k)
        b[k * M + i] += d.weights[r] * x[i] * (v[r * K + k] - ymean[k]);
    }
  }
  for (int i = 0; i < M; ++i) A[i * M + i] += 1.0;  // alpha = 1
  CholeskySolve(M, static_cast<int>(K), &A, &b);
  r_squared->assign(K, 0.0);
  for (size_t k = 0; k < K; ++k) {
    for (int j = 0; j < M; ++j) (*phi)[k][j] = b[k * M + j];
    double residual = 0.0, spread = 0.0;
    for (size_t r = 0; r < R; ++r) {
      double fit = ymean[k];
      for (int j = 0; j < M; ++j) fit += b[k * M + j] * (d.coalitions[r][j] - zmean[j]);
      const double y = v[r * K + k];
      residual += d.weights[r] * (y - fit) * (y - fit);
      spread += d.weights[r] * (y - ymean[k]) * (y - ymean[k]);
    }
    (*r_squared)[k] = spread > 0 ? 1.0 - residual / spread : 1.0;
  }
}

}  // namespace

absl::Status Lime(const CoalitionScorer& scorer, int samples, uint64_t seed,
                  PlayerAttributions* phi, std::vector<double>* r_squared) {
  const int M = static_cast<int>(scorer.players().size());
  const size_t K = scorer.num_items();
  phi->assign(K, std::vector<double>(M, 0.0));
  r_squared->assign(K, 1.0);
  if (M == 0) return absl::OkStatus();
  const Design design = LimeDesign(M, samples, seed);
  std::vector<double> v;
  if (absl::Status s = scorer.Score(design.coalitions, &v); !s.ok()) return s;
  if (M == 1) {  // Two coalitions: the line through them fits exactly (a ridge would shrink it).
    for (size_t k = 0; k < K; ++k) (*phi)[k][0] = v[k] - v[K + k];
    return absl::OkStatus();
  }
  FitLime(design, v, K, M, phi, r_squared);
  return absl::OkStatus();
}

}  // namespace recsys::explain
