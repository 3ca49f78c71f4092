// Offline evaluation on a time split: next-basket prediction ranked against the full catalogue,
// scored through the same C++ ranking code the server runs.
//
//   recsys_evaluate --bundle=bundles-eval/test --end=2011-12-10
//
// The bundle must have been built with a cut-off (recsys_build_bundle --cutoff); its cut-off
// starts the held-out window, --end closes it. Each customer who bought before the cut-off and
// in the window is one case: the history is their purchases before the cut-off, the targets the
// items of their first basket in the window. Variant "all": every basket item is a target;
// variant "new": only items the customer never bought before, and their past items are not
// recommended. Prints a Markdown table, or with --metric one number (for tuning scripts).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/bundle.h"
#include "core/evaluation.h"
#include "core/ranker.h"
#include "core/retail_data.h"
#include "core/torch_model_runner.h"

ABSL_FLAG(std::string, input, "data/online-retail-ii/online_retail_ii.csv.gz",
          "Purchase data in the Online Retail II layout (uncut)");
ABSL_FLAG(std::string, bundle, "", "Bundle version directory built with --cutoff");
ABSL_FLAG(std::string, end, "", "End of the held-out window (exclusive), 'YYYY-MM-DD'");
ABSL_FLAG(int, max_history, 200, "Most recent purchases sent as the history");
ABSL_FLAG(std::string, methods, "popular,recent_popular,repeat,cf,cnn,rnn,blend",
          "Methods: popular, recent_popular, recent_popular_country, repeat, a source name alone "
          "(cf, pop, cnn, rnn), blend");
ABSL_FLAG(std::string, weights, "",
          "Fusion weights of 'blend' as source=weight,... (default: the bundle's)");
ABSL_FLAG(std::string, variants, "all,new",
          "Variants to evaluate: all, new (items new to the customer), cold (customers new at "
          "the cut-off: empty history, their first basket)");
ABSL_FLAG(double, popularity_penalty, 0.0,
          "ranking.popularity_penalty of the bundle methods (the long-tail knob)");
ABSL_FLAG(double, head_share, 0.5,
          "The head: the most popular items that make this share of the purchase lines before "
          "the cut-off; the rest is the long tail");
ABSL_FLAG(int, recent_days, 28, "Window of recent_popular, in days before the cut-off");
ABSL_FLAG(std::string, metric, "",
          "Print only this metric (ndcg10, recall10, recall20, mrr20) of the first method and "
          "variant");

namespace {

using recsys::core::EvalCase;
using recsys::core::ItemIndex;

constexpr int kListLength = 20;

// Items by descending count (ties by index), as external ids.
std::vector<std::string> RankByCount(const recsys::core::Catalog& catalog,
                                     const std::vector<int64_t>& counts) {
  std::vector<ItemIndex> order(catalog.size());
  for (ItemIndex i = 0; i < catalog.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](ItemIndex a, ItemIndex b) { return counts[a] > counts[b]; });
  std::vector<std::string> ids;
  for (ItemIndex i : order) {
    if (counts[i] > 0) ids.push_back(catalog.item(i).id);
  }
  return ids;
}

// The first kListLength of `ranked` that the case allows.
std::vector<std::string> TopAllowed(const std::vector<std::string>& ranked, const EvalCase& c,
                                    bool exclude_bought) {
  std::vector<std::string> out;
  for (const std::string& id : ranked) {
    if (exclude_bought && c.bought.contains(id)) continue;
    out.push_back(id);
    if (out.size() == kListLength) break;
  }
  return out;
}

// The customer's own items, most bought first, ties to the most recent.
std::vector<std::string> Repeat(const EvalCase& c) {
  absl::flat_hash_map<std::string, std::pair<int, int>> stats;  // id -> (count, last position)
  for (size_t t = 0; t < c.history.size(); ++t) {
    auto& s = stats[c.history[t].item_id];
    ++s.first;
    s.second = static_cast<int>(t);
  }
  std::vector<std::pair<std::string, std::pair<int, int>>> items(stats.begin(), stats.end());
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::vector<std::string> out;
  for (size_t i = 0; i < items.size() && i < kListLength; ++i) out.push_back(items[i].first);
  return out;
}

std::vector<std::string> RankWithBundle(
    const recsys::core::Bundle& bundle, const EvalCase& c, bool exclude_bought,
    const std::vector<std::pair<std::string, double>>& weights) {
  recsys::core::RecommendRequest request;
  request.fusion_weights = weights;
  request.history = c.history;
  request.context.country = c.country;
  request.context.time = c.time;
  request.exclude_history = exclude_bought;
  request.popularity_penalty = absl::GetFlag(FLAGS_popularity_penalty);
  if (exclude_bought) request.exclude_item_ids.assign(c.bought.begin(), c.bought.end());
  recsys::core::RankedList ranked;
  absl::Status s = recsys::core::Ranker::Rank(bundle, request, kListLength, &ranked);
  if (!s.ok()) {
    std::cerr << "error: customer " << c.customer_id << ": " << s << "\n";
    std::exit(1);
  }
  std::vector<std::string> ids;
  for (const auto& item : ranked.items) ids.push_back(item.item_id);
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Time-split evaluation of a bundle against simple baselines.");
  absl::ParseCommandLine(argc, argv);

  auto fail = [](const std::string& message) {
    std::cerr << "error: " << message << "\n";
    return 1;
  };
  absl::StatusOr<std::shared_ptr<const recsys::core::Bundle>> bundle = recsys::core::Bundle::Load(
      absl::GetFlag(FLAGS_bundle), recsys::core::TorchScriptLoader("cpu"));
  if (!bundle.ok()) return fail(bundle.status().ToString());
  const int64_t cutoff = (*bundle)->manifest().train_cutoff_unix;
  if (cutoff == 0) return fail("the bundle was built without --cutoff: nothing is held out");
  absl::StatusOr<int64_t> end = recsys::core::ParseDateTime(absl::GetFlag(FLAGS_end));
  if (!end.ok()) return fail("--end: " + std::string(end.status().message()));
  if (*end <= cutoff) return fail("--end must be after the bundle's cut-off");

  absl::StatusOr<recsys::core::RetailData> data =
      recsys::core::ReadRetailCsv(absl::GetFlag(FLAGS_input), {});
  if (!data.ok()) return fail(data.status().ToString());
  const std::vector<EvalCase> cases =
      recsys::core::MakeNextBasketCases(*data, cutoff, *end, absl::GetFlag(FLAGS_max_history));
  const std::vector<EvalCase> cold_cases = recsys::core::MakeNewCustomerCases(*data, cutoff, *end);

  // Popularity before the cut-off, overall and recent, in the bundle's catalogue.
  const recsys::core::Catalog& catalog = (*bundle)->catalog();
  std::vector<int64_t> popularity(catalog.size()), recent(catalog.size(), 0);
  for (ItemIndex i = 0; i < catalog.size(); ++i) popularity[i] = catalog.item(i).popularity;
  const int64_t recent_start = cutoff - int64_t{86400} * absl::GetFlag(FLAGS_recent_days);
  absl::flat_hash_map<std::string, std::vector<int64_t>> recent_by_country;
  for (const auto& customer : data->customers) {
    for (const auto& p : customer.purchases) {
      if (p.time < recent_start || p.time >= cutoff) continue;
      if (auto i = catalog.Find(data->catalog.item(p.item).id)) {
        ++recent[*i];
        auto& counts = recent_by_country[customer.country];
        counts.resize(catalog.size(), 0);
        ++counts[*i];
      }
    }
  }
  const std::vector<std::string> popular = RankByCount(catalog, popularity);
  const std::vector<std::string> recent_popular = RankByCount(catalog, recent);
  // recent_popular_country: the customer's country's recent items where it has 100 recent lines
  // (the bundle builder's rule), else recent_popular.
  absl::flat_hash_map<std::string, std::vector<std::string>> recent_popular_country;
  for (const auto& [country, counts] : recent_by_country) {
    int64_t lines = 0;
    for (int64_t n : counts) lines += n;
    if (lines >= 100) recent_popular_country[country] = RankByCount(catalog, counts);
  }
  // The head: most popular items until head_share of the lines.
  absl::flat_hash_set<std::string> head;
  {
    int64_t total = 0, sum = 0;
    for (int64_t n : popularity) total += n;
    for (const std::string& id : popular) {
      if (sum >= absl::GetFlag(FLAGS_head_share) * total) break;
      head.insert(id);
      sum += catalog.item(*catalog.Find(id)).popularity;
    }
  }

  std::vector<std::pair<std::string, double>> blend_weights;
  if (!absl::GetFlag(FLAGS_weights).empty()) {
    for (absl::string_view kv : absl::StrSplit(absl::GetFlag(FLAGS_weights), ',')) {
      std::pair<std::string, std::string> parts = absl::StrSplit(kv, '=');
      double w;
      if (!absl::SimpleAtod(parts.second, &w))
        return fail("--weights: bad entry " + std::string(kv));
      blend_weights.emplace_back(parts.first, w);
    }
  }
  const std::vector<std::string> methods = absl::StrSplit(absl::GetFlag(FLAGS_methods), ',');
  const std::vector<std::string> variants = absl::StrSplit(absl::GetFlag(FLAGS_variants), ',');
  const std::string metric = absl::GetFlag(FLAGS_metric);
  const bool tty = isatty(STDERR_FILENO);
  if (metric.empty()) {
    std::string sources;
    for (const auto& s : (*bundle)->manifest().sources) {
      absl::StrAppend(&sources, sources.empty() ? "" : ", ", s.name, " ", s.weight);
    }
    std::cout << absl::StrFormat(
        "Bundle %s, %d cases (customers with a basket in the window), catalogue %d items, "
        "head %d items (%.0f%% of the purchase lines); blend weights: %s; popularity penalty "
        "%g.\n\n",
        (*bundle)->manifest().version, cases.size(), catalog.size(), head.size(),
        100 * absl::GetFlag(FLAGS_head_share),
        absl::GetFlag(FLAGS_weights).empty() ? sources : absl::GetFlag(FLAGS_weights),
        absl::GetFlag(FLAGS_popularity_penalty));
  }
  for (const std::string& variant : variants) {
    const bool only_new = variant == "new", cold = variant == "cold";
    if (variant != "all" && !only_new && !cold) {
      return fail("--variants: unknown variant " + variant);
    }
    const std::vector<EvalCase>& variant_cases = cold ? cold_cases : cases;
    if (metric.empty()) {
      std::cout << "Variant **" << variant << "**"
                << (only_new ? " (targets: items new to the customer; their past items are not "
                               "recommended)"
                    : cold   ? " (customers new at the cut-off: empty history; targets: their "
                               "first basket)"
                             : " (targets: every item of the basket)")
                << "\n\n| method | cases | Recall@10 | Recall@20 | NDCG@10 | MRR@20 | "
                   "Coverage@10 | Long tail@10 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
    }
    for (const std::string& method : methods) {
      recsys::core::MetricsAccumulator metrics(catalog.size(), head);
      for (size_t n = 0; n < variant_cases.size(); ++n) {
        const EvalCase& c = variant_cases[n];
        const std::vector<std::string>& targets = only_new ? c.new_targets : c.targets;
        if (targets.empty()) continue;
        std::vector<std::string> ranked;
        if (method == "popular") {
          ranked = TopAllowed(popular, c, only_new);
        } else if (method == "recent_popular") {
          ranked = TopAllowed(recent_popular, c, only_new);
        } else if (method == "recent_popular_country") {
          auto it = recent_popular_country.find(c.country);
          ranked = TopAllowed(it == recent_popular_country.end() ? recent_popular : it->second, c,
                              only_new);
        } else if (method == "repeat") {
          ranked = only_new ? std::vector<std::string>() : Repeat(c);
        } else if (method == "blend") {
          ranked = RankWithBundle(**bundle, c, only_new, blend_weights);
        } else if ((*bundle)->manifest().FindSource(method) != nullptr) {
          // One source alone: every other source weighs 0.
          std::vector<std::pair<std::string, double>> alone;
          for (const auto& s : (*bundle)->manifest().sources) {
            alone.emplace_back(s.name, s.name == method ? 1.0 : 0.0);
          }
          ranked = RankWithBundle(**bundle, c, only_new, alone);
        } else if (method == "cnn" || method == "rnn") {
          continue;  // Not in this bundle.
        } else {
          return fail("--methods: unknown method " + method);
        }
        metrics.Add(ranked, targets);
        if (tty && n % 64 == 0) {
          std::fprintf(stderr, "\r%s/%s %5.1f%%", variant.c_str(), method.c_str(),
                       100.0 * n / variant_cases.size());
        }
      }
      if (tty) std::fprintf(stderr, "\r%40s\r", "");
      const recsys::core::RankingMetrics m = metrics.Result();
      if (m.cases == 0) continue;
      if (!metric.empty()) {
        const double value = metric == "ndcg10"     ? m.ndcg_at_10
                             : metric == "recall10" ? m.recall_at_10
                             : metric == "recall20" ? m.recall_at_20
                             : metric == "mrr20"    ? m.mrr_at_20
                                                    : -1;
        if (value < 0) return fail("--metric: unknown metric " + metric);
        std::cout << absl::StrFormat("%.4f\n", value);
        return 0;
      }
      std::cout << absl::StrFormat("| %s | %d | %.4f | %.4f | %.4f | %.4f | %.3f | %.3f |\n",
                                   method, m.cases, m.recall_at_10, m.recall_at_20, m.ndcg_at_10,
                                   m.mrr_at_20, m.coverage_at_10, m.long_tail_at_10);
    }
    if (metric.empty()) std::cout << "\n";
  }
  return 0;
}
