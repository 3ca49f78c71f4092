#include "core/evaluation.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace recsys::core {

namespace {

// The case of the basket that starts at purchase `begin` of `customer`: the history is every
// purchase before it.
EvalCase BasketCase(const RetailData& data, const CustomerHistory& customer, size_t begin,
                    int max_history) {
  const auto& p = customer.purchases;
  EvalCase c;
  c.customer_id = customer.customer_id;
  c.country = customer.country;
  c.time = p[begin].time;
  for (size_t i = 0; i < begin; ++i) c.bought.insert(data.catalog.item(p[i].item).id);
  const size_t first = begin > static_cast<size_t>(max_history) ? begin - max_history : 0;
  for (size_t i = first; i < begin; ++i) {
    HistoryEvent& e = c.history.emplace_back();
    e.item_id = data.catalog.item(p[i].item).id;
    e.timestamp = p[i].time;
    e.event_type = EventType::kPurchase;
    e.quantity = p[i].quantity;
    e.price = p[i].price;
  }
  absl::flat_hash_set<std::string> seen;
  for (size_t i = begin; i < p.size() && p[i].invoice == p[begin].invoice; ++i) {
    const std::string& id = data.catalog.item(p[i].item).id;
    if (!seen.insert(id).second) continue;
    c.targets.push_back(id);
    if (!c.bought.contains(id)) c.new_targets.push_back(id);
  }
  return c;
}

}  // namespace

std::vector<EvalCase> MakeNextBasketCases(const RetailData& data, int64_t cutoff, int64_t end,
                                          int max_history) {
  std::vector<EvalCase> cases;
  for (const CustomerHistory& customer : data.customers) {
    const auto& p = customer.purchases;
    // Purchases are in time order: [0, split) before the cut-off.
    const size_t split = std::partition_point(p.begin(), p.end(),
                                              [&](const Purchase& x) { return x.time < cutoff; }) -
                         p.begin();
    if (split == 0) continue;
    for (size_t begin = split; begin < p.size() && p[begin].time < end;) {
      cases.push_back(BasketCase(data, customer, begin, max_history));
      const int32_t invoice = p[begin].invoice;
      while (begin < p.size() && p[begin].invoice == invoice) ++begin;
    }
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

double MetricsAccumulator::Add(const std::vector<std::string>& ranked,
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
  return dcg / ideal;
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

Interval PairedBootstrap(const std::vector<double>& a, const std::vector<double>& b,
                         const std::vector<int>& group, int groups, int resamples, uint64_t seed) {
  // Per group: the sum of the differences and the number of cases.
  std::vector<double> diff(groups, 0.0), count(groups, 0.0);
  double total = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff[group[i]] += a[i] - b[i];
    count[group[i]] += 1;
    total += a[i] - b[i];
  }
  Interval out;
  if (a.empty()) return out;
  out.mean = total / static_cast<double>(a.size());
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, groups - 1);
  std::vector<double> means;
  means.reserve(resamples);
  for (int r = 0; r < resamples; ++r) {
    double sum = 0, n = 0;
    for (int g = 0; g < groups; ++g) {
      const int k = pick(rng);
      sum += diff[k];
      n += count[k];
    }
    means.push_back(n > 0 ? sum / n : 0.0);
  }
  std::sort(means.begin(), means.end());
  out.low = means[static_cast<size_t>(0.025 * (resamples - 1))];
  out.high = means[static_cast<size_t>(0.975 * (resamples - 1))];
  return out;
}

}  // namespace recsys::core
