#ifndef RECSYS_CORE_EVALUATION_H_
#define RECSYS_CORE_EVALUATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "core/retail_data.h"
#include "core/types.h"

namespace recsys::core {

// One held-out prediction task of a time split: a customer's purchases before the cut-off, and
// the items of their first basket (invoice) in [cut-off, end).
struct EvalCase {
  std::string customer_id;
  std::string country;
  std::vector<HistoryEvent> history;      // The last max_history purchases, oldest first.
  std::vector<std::string> targets;       // Distinct items of the basket, in basket order.
  std::vector<std::string> new_targets;   // Those the customer never bought before the cut-off.
  absl::flat_hash_set<std::string> bought;  // Every item bought before the cut-off.
  int64_t time = 0;                       // Time of the target basket.
};

// Builds the cases from uncut purchase data (ReadRetailCsv without a cut-off): customers with
// at least one purchase before `cutoff` and one in [cutoff, end). Ordered by customer id.
std::vector<EvalCase> MakeNextBasketCases(const RetailData& data, int64_t cutoff, int64_t end,
                                          int max_history);

struct RankingMetrics {
  int64_t cases = 0;
  double recall_at_10 = 0;
  double recall_at_20 = 0;
  double ndcg_at_10 = 0;
  double mrr_at_20 = 0;
  double coverage_at_10 = 0;  // Distinct items in all top-10 lists / catalogue size.
};

// Averages ranking metrics over cases. A case's recall@K is hits in the top K / targets;
// NDCG@10 uses binary gains with the ideal DCG of min(targets, 10) hits; MRR@20 is 1 / rank of
// the first hit (0 when none is in the top 20). Thread-compatible.
class MetricsAccumulator {
 public:
  explicit MetricsAccumulator(int64_t catalog_size) : catalog_size_(catalog_size) {}

  // `ranked`: recommended ids, best first; `targets`: distinct. REQUIRES: !targets.empty().
  void Add(const std::vector<std::string>& ranked, const std::vector<std::string>& targets);
  RankingMetrics Result() const;

 private:
  int64_t catalog_size_;
  RankingMetrics sums_;
  absl::flat_hash_set<std::string> top10_items_;
};

}  // namespace recsys::core

#endif  // RECSYS_CORE_EVALUATION_H_
