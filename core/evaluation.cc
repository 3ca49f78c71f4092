#include "core/evaluation.h"

#include <algorithm>
#include <cmath>

namespace recsys::core {

std::vector<EvalCase> MakeNextBasketCases(const RetailData& data, int64_t cutoff, int64_t end,
                                          int max_history) {
  std::vector<EvalCase> cases;
  for (const CustomerHistory& customer : data.customers) {
    const auto& p = customer.purchases;
    // Purchases are in time order: [0, split) before the cut-off.
    const size_t split = std::partition_point(p.begin(), p.end(),
                                              [&](const Purchase& x) { return x.time < cutoff; }) -
                         p.begin();
    if (split == 0 || split == p.size() || p[split].time >= end) continue;
    EvalCase c;
    c.customer_id = customer.customer_id;
    c.country = customer.country;
    c.time = p[split].time;
    for (size_t i = 0; i < split; ++i) c.bought.insert(data.catalog.item(p[i].item).id);
    const size_t first = split > static_cast<size_t>(max_history) ? split - max_history : 0;
    for (size_t i = first; i < split; ++i) {
      HistoryEvent& e = c.history.emplace_back();
      e.item_id = data.catalog.item(p[i].item).id;
      e.timestamp = p[i].time;
      e.event_type = EventType::kPurchase;
      e.quantity = p[i].quantity;
      e.price = p[i].price;
    }
    absl::flat_hash_set<std::string> seen;
    for (size_t i = split; i < p.size() && p[i].invoice == p[split].invoice; ++i) {
      const std::string& id = data.catalog.item(p[i].item).id;
      if (!seen.insert(id).second) continue;
      c.targets.push_back(id);
      if (!c.bought.contains(id)) c.new_targets.push_back(id);
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

std::vector<EvalCase> MakeNewCustomerCases(const RetailData& data, int64_t cutoff, int64_t end) {
  std::vector<EvalCase> cases;
  for (const CustomerHistory& customer : data.customers) {
    const auto& p = customer.purchases;
    if (p.empty() || p[0].time < cutoff || p[0].time >= end) continue;
    EvalCase c;
    c.customer_id = customer.customer_id;
    c.country = customer.country;
    c.time = p[0].time;
    for (size_t i = 0; i < p.size() && p[i].invoice == p[0].invoice; ++i) {
      const std::string& id = data.catalog.item(p[i].item).id;
      if (!c.bought.insert(id).second) continue;  // `bought` only deduplicates here.
      c.targets.push_back(id);
      c.new_targets.push_back(id);
    }
    c.bought.clear();
    cases.push_back(std::move(c));
  }
  return cases;
}

void MetricsAccumulator::Add(const std::vector<std::string>& ranked,
                             const std::vector<std::string>& targets) {
  const absl::flat_hash_set<std::string> target_set(targets.begin(), targets.end());
  int hits10 = 0, hits20 = 0;
  double dcg = 0, rr = 0;
  for (size_t r = 0; r < ranked.size() && r < 20; ++r) {
    if (r < 10) {
      top10_items_.insert(ranked[r]);
      ++top10_slots_;
      if (!head_.empty() && !head_.contains(ranked[r])) ++sums_.long_tail_at_10;
    }
    if (!target_set.contains(ranked[r])) continue;
    ++hits20;
    if (rr == 0) rr = 1.0 / static_cast<double>(r + 1);
    if (r < 10) {
      ++hits10;
      dcg += 1.0 / std::log2(static_cast<double>(r + 2));
    }
  }
  double ideal = 0;
  for (size_t r = 0; r < std::min<size_t>(10, targets.size()); ++r) {
    ideal += 1.0 / std::log2(static_cast<double>(r + 2));
  }
  const double n = static_cast<double>(targets.size());
  ++sums_.cases;
  sums_.recall_at_10 += hits10 / n;
  sums_.recall_at_20 += hits20 / n;
  sums_.ndcg_at_10 += dcg / ideal;
  sums_.mrr_at_20 += rr;
}

RankingMetrics MetricsAccumulator::Result() const {
  RankingMetrics m = sums_;
  if (m.cases > 0) {
    const double n = static_cast<double>(m.cases);
    m.recall_at_10 /= n;
    m.recall_at_20 /= n;
    m.ndcg_at_10 /= n;
    m.mrr_at_20 /= n;
  }
  m.long_tail_at_10 = top10_slots_ > 0 ? sums_.long_tail_at_10 / top10_slots_ : 0;
  m.coverage_at_10 =
      catalog_size_ > 0 ? static_cast<double>(top10_items_.size()) / catalog_size_ : 0;
  return m;
}

}  // namespace recsys::core
