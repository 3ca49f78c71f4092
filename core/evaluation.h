#ifndef RECSYS_CORE_EVALUATION_H_
#define RECSYS_CORE_EVALUATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "core/retail_data.h"
#include "core/types.h"

namespace recsys::core {

// One held-out prediction task of a time split: one basket (invoice) of a customer, and what a
// storefront knows at its time: every purchase of the customer before it.
struct EvalCase {
  std::string customer_id;
  std::string country;
  std::vector<HistoryEvent> history;        // The last max_history purchases, oldest first.
  std::vector<std::string> targets;         // Distinct items of the basket, in basket order.
  std::vector<std::string> new_targets;     // Those the customer never bought before the basket.
  absl::flat_hash_set<std::string> bought;  // Every item bought before the basket.
  int64_t time = 0;                         // Time of the target basket.
};

// Builds the cases from uncut purchase data (ReadRetailCsv without a cut-off): every basket in
// [cutoff, end) of a customer who bought before `cutoff` is one case; its history is all of the
// customer's purchases before the basket (earlier baskets in the window included), the last
// `max_history` of them. Ordered by customer id, then time.
std::vector<EvalCase> MakeNextBasketCases(const RetailData& data, int64_t cutoff, int64_t end,
                                          int max_history);

// Cases of customers new at the cut-off: no purchase before it and one in [cut-off, end). The
// history is empty; the targets are the items of their first basket. Ordered by customer id.
std::vector<EvalCase> MakeNewCustomerCases(const RetailData& data, int64_t cutoff, int64_t end);

struct RankingMetrics {
  int64_t cases = 0;
  double recall_at_10 = 0;
  double recall_at_20 = 0;
  double ndcg_at_10 = 0;
  double mrr_at_20 = 0;
  double coverage_at_10 = 0;   // Distinct items in all top-10 lists / catalogue size.
  double long_tail_at_10 = 0;  // Share of top-10 slots holding items outside the head.
};

// Averages ranking metrics over cases. A case's recall@K is hits in the top K / targets;
// NDCG@10 uses binary gains with the ideal DCG of min(targets, 10) hits; MRR@20 is 1 / rank of
// the first hit (0 when none is in the top 20); long_tail_at_10 counts over all top-10 slots
// filled. Thread-compatible.
class MetricsAccumulator {
 public:
  // `head`: the short head of the catalogue (popular items), for long_tail_at_10.
  explicit MetricsAccumulator(int64_t catalog_size, absl::flat_hash_set<std::string> head = {})
      : catalog_size_(catalog_size), head_(std::move(head)) {}

  // `ranked`: recommended ids, best first; `targets`: distinct. Returns the case's NDCG@10 (for
  // paired comparisons, see PairedBootstrap). REQUIRES: !targets.empty().
  double Add(const std::vector<std::string>& ranked, const std::vector<std::string>& targets);
  RankingMetrics Result() const;

 private:
  int64_t catalog_size_;
  absl::flat_hash_set<std::string> head_;
  RankingMetrics sums_;
  int64_t top10_slots_ = 0;
  absl::flat_hash_set<std::string> top10_items_;
};

// A paired 95% bootstrap interval of mean(a) - mean(b) over cases, resampling groups (the
// customers: their baskets are not independent) with replacement.
struct Interval {
  double mean = 0;
  double low = 0;
  double high = 0;
};

// `a`, `b`: one value per case, paired; `group`: the case's group, in [0, groups).
// REQUIRES: a, b and group have the same size. Deterministic for a fixed `seed`.
Interval PairedBootstrap(const std::vector<double>& a, const std::vector<double>& b,
                         const std::vector<int>& group, int groups, int resamples = 1000,
                         uint64_t seed = 1);

}  // namespace recsys::core

#endif  // RECSYS_CORE_EVALUATION_H_
