#ifndef RECSYS_CORE_RANKER_H_
#define RECSYS_CORE_RANKER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "core/bundle.h"
#include "core/model_runner.h"
#include "core/sources.h"
#include "core/types.h"

namespace recsys::core {

// The known events of a request's history, with their CF recency weights.
struct ResolvedHistory {
  std::vector<ItemIndex> items;      // Catalogue index of each known event, oldest first.
  std::vector<int32_t> positions;    // Index of each known event in RecommendRequest.history.
  std::vector<double> weights;       // CF weight of each known event; they sum to 1.
  std::vector<double> self_weights;  // The repeat terms' (SelfWeights); they sum to 1.
  std::vector<double> age_days;      // Each known event's age at the request's time (0: undated).
};

// One source of a ranked request: the source with the weight in effect and, for a model, its
// input and its scores of every catalogue item (empty for a model that weighs 0 in this
// request: it is not run over the catalogue).
struct RankedSource {
  Source source;
  ModelInput input;
  std::vector<float> scores;
  SavedRows saved;  // What ScoreAllSavingRows kept, when the caller asked (RowsToSave).
};

// Rows a caller will want scored later from a model's encoder pass while ranking: given the
// model's shape and the request's input, sets ModelRunner::ScoreAllSavingRows' `input` and
// `rows` and returns true, or returns false for none. The pipeline passes the replay
// attribution's (explain::ReplayRows).
using RowsToSave = std::function<bool(const ModelShape& shape, const ModelInput& whole,
                                      ModelInput* input, std::vector<PrefixRow>* rows)>;

// The outcome of ranking: the top items with their per-source scores, before explanation. It
// points into the Bundle it was ranked on (models, country popularity): valid while it lives.
struct RankedList {
  ResolvedHistory history;
  int64_t request_time = 0;  // The context's time, or the server clock without one.
  // The country whose recent purchases the popularity source read (a new shopper's, when the
  // bundle has them), or "" for the whole catalogue's; its counts, or nullptr.
  std::string popularity_country;
  const CountryPopularity* country_popularity = nullptr;  // Points into the Bundle.
  // The request's source table, in manifest order; items[i].sources[s] is sources[s]'s score.
  std::vector<RankedSource> sources;
  double popularity_penalty = 0.0;     // The request's, or the bundle's default (ResolveOptions).
  std::vector<RecommendedItem> items;  // Best first; attributions still empty.
  ResponseMetadata metadata;           // Ids ignored, filter counts, candidates scored.

  // The input of the first model source (every model reads the same context), or nullptr.
  const ModelInput* first_model_input() const;
};

// CF recency weights for `n` known events, oldest first: proportional to decay^(n-1-i), summing
// to 1, so that scores are comparable across history lengths.
std::vector<double> RecencyWeights(size_t n, double decay);

// Repeat-term weights of known events aged `age_days` (oldest first): proportional to
// self_recency_decay^(n-1-i) * 2^(-age_i / self_half_life_days) (no age factor at half-life 0),
// summing to 1.
std::vector<double> SelfWeights(const BundleManifest& manifest,
                                const std::vector<double>& age_days);

// Known event t's exact share of `item`'s CF raw score: self_weights[t] * self_similarity when
// the event is the item itself, else weights[t] * sim(item_t, item).
double CfContribution(const Bundle& bundle, const ResolvedHistory& history, size_t t,
                      ItemIndex item);

// Catalogues of at most this many items sum CF scores in an array (AddCfScores).
inline constexpr size_t kDenseCfLimit = size_t{1} << 16;

// Adds to `out` the CF raw score of every item a known event of `history` links to (its
// neighbours and, with self_similarity, the event's item): the sum over events t of
// CfContribution(t, item), added in history order. Into an empty `out` on a catalogue of at
// most `dense_limit` items, with at least one term per 16 items (else clearing the array would
// cost more than it saves), the sums are kept in an array first (one insertion per item);
// otherwise each term goes into `out` directly. Either way the same sums to the bit.
void AddCfScores(const Bundle& bundle, const ResolvedHistory& history,
                 absl::flat_hash_map<ItemIndex, double>* out, size_t dense_limit = kDenseCfLimit);

// The popularity source's raw score of `item` in `ranked`: PopularityScore of its recent lines
// in ranked.popularity_country when set, else in the whole catalogue.
double PopularityRaw(const Bundle& bundle, const RankedList& ranked, ItemIndex item);

// The indices of the min(m, scores.size()) highest scores (ties: lower index first), in no
// particular order. One pass with a bounded heap: most items lose one comparison with the
// heap's worst. tools/microbench.cc, m = 100: 7x faster than nth_element over an index array
// at 1M items, 2x slower (5 us) at the default bundle's 4,620.
std::vector<ItemIndex> BestItems(const std::vector<float>& scores, size_t m);

// What ranking a request computes that no fusion weight, popularity penalty or filter changes:
// the CF scores of the items its history links to (AddCfScores) and each model's best
// kModelCandidates items, kept by Ranker::Rank for its next call with the same memo. For
// searches over those options (tools/evaluate.cc ranks each held-out request under many).
// Not thread-safe: one Rank at a time per memo.
struct RankMemo {
  std::optional<std::vector<std::pair<ItemIndex, double>>> cf_scores;
  absl::flat_hash_map<std::string, std::vector<ItemIndex>> best_items;  // By model source name.
};

// Candidate generation, scoring, fusion, filters and top-k selection over one bundle.
//
// Candidates: CF neighbours (and, with self_similarity, the items) of the history, each model's
// top kModelCandidates over the whole catalogue (models whose source weighs 0 in the request
// are not run over it and add none), the kModelCandidates most recently popular
// items when the popularity source weighs > 0, and the caller's candidates (only those with
// candidates_only). Raw scores: CF, sum over known history events t of CfContribution(t, c);
// a model, its logit for c; popularity, PopularityScore(c's recent lines), or for a shopper without
// known history whose country the bundle has recent data on, log(1 + c's recent lines in that
// country) (and that country's most popular items are the pop candidates). Fused score: sum over
// sources of weight * (slope * raw + intercept), minus popularity_penalty * log(1 + popularity); it
// depends only on the request and the item, never on the other candidates (core/sources.h: Fuse).
// Filters (exclude ids, the history when exclude_history, categories, price) remove candidates and
// are counted per filter. Selection: the top_k by fused score; with max_per_category, an item whose
// category already has that many is passed over; with mmr_lambda > 0, Maximal Marginal Relevance
// picks greedily among the best max(5 top_k, 50) candidates the one maximising lambda * relevance -
// (1 - lambda) * (largest similarity to the items already picked), relevance being the fused score
// rescaled to [0, 1] in that pool and similarity 1 within a category, else the CF similarity.
// The result is in selection order; scores stay the items' own. Back-fill: when fewer than
// top_k survive (and the request is not candidates_only), the most recently popular items that
// pass the filters join as candidates and metadata.backfilled says so. Ties break by catalogue
// index, so results are deterministic. Stateless and thread-safe (a RankMemo is the caller's
// state: one Rank at a time per memo).
class Ranker {
 public:
  static constexpr int kModelCandidates = 100;

  // `now_unix` is the request time when the request's context has none.
  // REQUIRES: `request` passed validation (pipeline::ValidateRequest) and top_k >= 1.
  // Errors: INVALID_ARGUMENT for fusion weights naming an unknown source, or a candidates_only
  // request none of whose candidates is known, or a category the bundle does not have;
  // FAILED_PRECONDITION for category options on a bundle without categories.
  // With `rows_to_save`, each active model's rows are saved in its RankedSource. With `memo`,
  // what it holds is reused and what it lacks is added. REQUIRES: every Rank with one memo is
  // on the same bundle and the same request at the same time (context.time, else now_unix)
  // but for its fusion_weights, popularity_penalty, exclude_history, exclude_item_ids,
  // category and price filters, diversity options and top_k.
  static absl::Status Rank(const Bundle& bundle, const RecommendRequest& request, int32_t top_k,
                           RankedList* out, int64_t now_unix = 0,
                           const RowsToSave& rows_to_save = nullptr, RankMemo* memo = nullptr);
};

}  // namespace recsys::core

#endif  // RECSYS_CORE_RANKER_H_
