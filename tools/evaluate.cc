// Offline evaluation on a time split: next-basket prediction ranked against the full catalogue,
// scored through the same C++ ranking code the server runs.
//
//   recsys_evaluate --bundle=bundles-eval/test --end=2011-12-10
//
// The bundle must have been built with a cut-off (recsys_build_bundle --cutoff); its cut-off
// starts the held-out window, --end closes it. Every basket in the window of a customer who
// bought before the cut-off is one case (core::MakeNextBasketCases): the history is all of the
// customer's purchases before the basket, the targets its items. Variant "all": every basket
// item is a target; variant "new": only items the customer never bought before, and their past
// items are not recommended. Prints a Markdown table with, per method, the paired 95% bootstrap
// interval over customers of NDCG@10 against --compare_to; or, with --format=tsv, one line per
// method and variant (for the bundle builder's tuning): method, variant, cases, NDCG@10,
// Recall@10, Recall@20, MRR@20, and where --compare_to is among the methods evaluated (not on
// its own line), that interval of --compare_to minus the method: mean, low, high.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
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
#include "absl/synchronization/mutex.h"
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
ABSL_FLAG(std::string, methods, "popular,recent_popular,repeat,cf,pop,cnn,rnn,blend",
          "Methods: popular, recent_popular, recent_popular_country, repeat, a source name alone "
          "(cf, pop, cnn, rnn), blend (the bundle's weights and defaults), or a label of "
          "--settings or --bundles");
ABSL_FLAG(std::string, weights, "",
          "Fusion weights of 'blend' as source=weight,... (default: the bundle's)");
ABSL_FLAG(double, popularity_penalty, -1,
          "ranking.popularity_penalty of the bundle methods; < 0: the bundle's default");
ABSL_FLAG(std::string, settings, "",
          "File of further blends, one per line: label<TAB>weights<TAB>penalty[<TAB>"
          "exclude_history] (weights as source=weight,...; exclude_history true or false, of "
          "variant all; '-' for the bundle's weights or defaults)");
ABSL_FLAG(std::string, bundles, "",
          "Further bundles with the same cut-off as label=DIR,...; method 'label' is that "
          "bundle's blend with its own weights and defaults (e.g. an untuned build, or other CF "
          "settings)");
ABSL_FLAG(std::string, variants, "all,new",
          "Variants to evaluate: all, new (items new to the customer), cold (customers new at "
          "the cut-off: empty history, their first basket)");
ABSL_FLAG(std::string, compare_to, "blend",
          "Markdown: each row's paired interval of NDCG@10 is this method's minus the row's");
ABSL_FLAG(std::string, format, "markdown", "markdown or tsv");
ABSL_FLAG(double, head_share, 0.5,
          "The head: the most popular items that make this share of the purchase lines before "
          "the cut-off; the rest is the long tail");
ABSL_FLAG(int, recent_days, 28, "Window of recent_popular, in days before the cut-off");
ABSL_FLAG(int, max_cases, 0, "Evaluate at most this many cases (every k-th); 0 = all");
ABSL_FLAG(std::string, item_tables,
          recsys::core::ItemTablePrecisionName(recsys::core::kDefaultItemTablePrecision),
          "Precision of the models' item tables, as recsys_server's --item_tables");
ABSL_FLAG(int, threads, 2, "Threads ranking cases in parallel (each runs models on one thread)");
ABSL_FLAG(bool, requests_from_stdin, false,
          "With --format=tsv, without --bundles: load the data and the bundle once, then answer "
          "requests from stdin, one a line: methods<TAB>variants<TAB>settings file (each as its "
          "flag; the file may be empty), each answered by its TSV lines and an empty line, or by "
          "'error<TAB>message' and an empty line (for a tuner that evaluates many blends of one "
          "bundle: the models' scores are remembered across requests)");

namespace {

using recsys::core::Bundle;
using recsys::core::EvalCase;
using recsys::core::ItemIndex;

constexpr int kListLength = 20;

// A blend of a bundle's sources: the method the server would run.
struct Blend {
  const Bundle* bundle = nullptr;
  std::vector<std::pair<std::string, double>> weights;  // Empty: the bundle's.
  std::optional<double> penalty;                        // Unset: the bundle's default.
  // Of variant "all" (variant "new" always excludes); unset: the bundle's default.
  std::optional<bool> exclude_history;
};

// A model runner that remembers its catalogue scores per input: evaluating many blends of one
// bundle ranks each case many times with the same model inputs. Thread-safe.
class MemoizingRunner : public recsys::core::ModelRunner {
 public:
  explicit MemoizingRunner(std::unique_ptr<recsys::core::ModelRunner> inner)
      : inner_(std::move(inner)) {}

  const std::string& name() const override { return inner_->name(); }
  const recsys::core::ModelShape& shape() const override { return inner_->shape(); }
  const std::string& device() const override { return inner_->device(); }
  const std::vector<float>& baseline_scores() const override { return inner_->baseline_scores(); }
  int32_t embedding_dim() const override { return inner_->embedding_dim(); }

  absl::Status ScoreAll(const recsys::core::ModelInput& input,
                        std::vector<float>* scores) const override {
    std::string key = Key(input);
    {
      absl::MutexLock lock(&mu_);
      auto it = memo_.find(key);
      if (it != memo_.end()) {
        *scores = it->second;
        return absl::OkStatus();
      }
    }
    if (absl::Status s = inner_->ScoreAll(input, scores); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    memo_.emplace(std::move(key), *scores);
    return absl::OkStatus();
  }
  absl::Status ScoreTargets(const std::vector<recsys::core::ModelInput>& inputs,
                            const std::vector<ItemIndex>& targets,
                            std::vector<float>* scores) const override {
    return inner_->ScoreTargets(inputs, targets, scores);
  }
  absl::Status Embed(const std::vector<int64_t>& items, const std::vector<float>& features,
                     std::vector<float>* embedded) const override {
    return inner_->Embed(items, features, embedded);
  }
  absl::Status Gradients(const recsys::core::EmbeddedPoints& points,
                         const std::vector<ItemIndex>& targets,
                         recsys::core::ScoreGradients* out) const override {
    return inner_->Gradients(points, targets, out);
  }

 private:
  template <typename T>
  static void Append(const std::vector<T>& v, std::string* key) {
    key->append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  static std::string Key(const recsys::core::ModelInput& input) {
    std::string key;
    Append(input.items, &key);
    Append(input.event_features, &key);
    Append(input.mask, &key);
    Append(input.context, &key);
    return key;
  }

  std::unique_ptr<recsys::core::ModelRunner> inner_;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, std::vector<float>> memo_ ABSL_GUARDED_BY(mu_);
};

recsys::core::ModelLoader MemoizingLoader(recsys::core::ItemTablePrecision precision) {
  return [torch = recsys::core::TorchScriptLoader("cpu", precision)](const std::string& path,
                                                          const recsys::core::ModelSpec& spec,
                                                          const recsys::core::ModelShape& shape)
             -> absl::StatusOr<std::unique_ptr<recsys::core::ModelRunner>> {
    absl::StatusOr<std::unique_ptr<recsys::core::ModelRunner>> runner = torch(path, spec, shape);
    if (!runner.ok()) return runner.status();
    return std::make_unique<MemoizingRunner>(*std::move(runner));
  };
}

// Rankings that do not depend on the case's history: popularity before the cut-off.
struct Baselines {
  std::vector<std::string> popular, recent_popular;
  absl::flat_hash_map<std::string, std::vector<std::string>> recent_popular_country;
  absl::flat_hash_set<std::string> head;
};

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

Baselines MakeBaselines(const recsys::core::RetailData& data, const Bundle& bundle) {
  const recsys::core::Catalog& catalog = bundle.catalog();
  const int64_t cutoff = bundle.manifest().train_cutoff_unix;
  std::vector<int64_t> popularity(catalog.size()), recent(catalog.size(), 0);
  for (ItemIndex i = 0; i < catalog.size(); ++i) popularity[i] = catalog.item(i).popularity;
  const int64_t recent_start = cutoff - int64_t{86400} * absl::GetFlag(FLAGS_recent_days);
  absl::flat_hash_map<std::string, std::vector<int64_t>> recent_by_country;
  for (const auto& customer : data.customers) {
    for (const auto& p : customer.purchases) {
      if (p.time < recent_start || p.time >= cutoff) continue;
      if (auto i = catalog.Find(data.catalog.item(p.item).id)) {
        ++recent[*i];
        auto& counts = recent_by_country[customer.country];
        counts.resize(catalog.size(), 0);
        ++counts[*i];
      }
    }
  }
  Baselines b;
  b.popular = RankByCount(catalog, popularity);
  b.recent_popular = RankByCount(catalog, recent);
  // The customer's country's recent items where it has 100 recent lines (the bundle builder's
  // rule), else recent_popular.
  for (const auto& [country, counts] : recent_by_country) {
    int64_t lines = 0;
    for (int64_t n : counts) lines += n;
    if (lines >= 100) b.recent_popular_country[country] = RankByCount(catalog, counts);
  }
  // The head: most popular items until head_share of the lines.
  int64_t total = 0, sum = 0;
  for (int64_t n : popularity) total += n;
  for (const std::string& id : b.popular) {
    if (sum >= absl::GetFlag(FLAGS_head_share) * total) break;
    b.head.insert(id);
    sum += catalog.item(*catalog.Find(id)).popularity;
  }
  return b;
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

absl::StatusOr<std::vector<std::string>> RankWithBundle(const Blend& blend, const EvalCase& c,
                                                        bool exclude_bought,
                                                        recsys::core::RankMemo* memo) {
  recsys::core::RecommendRequest request;
  request.fusion_weights = blend.weights;
  request.history = c.history;
  request.context.country = c.country;
  request.context.time = c.time;
  request.exclude_history = exclude_bought ? std::optional<bool>(true) : blend.exclude_history;
  request.popularity_penalty = blend.penalty;
  if (exclude_bought) request.exclude_item_ids.assign(c.bought.begin(), c.bought.end());
  recsys::core::RankedList ranked;
  absl::Status s = recsys::core::Ranker::Rank(*blend.bundle, request, kListLength, &ranked,
                                              /*now_unix=*/0, /*rows_to_save=*/nullptr, memo);
  if (!s.ok())
    return absl::Status(s.code(), absl::StrCat("customer ", c.customer_id, ": ", s.message()));
  std::vector<std::string> ids;
  for (const auto& item : ranked.items) ids.push_back(item.item_id);
  return ids;
}

absl::StatusOr<std::vector<std::pair<std::string, double>>> ParseWeights(absl::string_view text) {
  std::vector<std::pair<std::string, double>> weights;
  if (text.empty() || text == "-") return weights;
  for (absl::string_view kv : absl::StrSplit(text, ',')) {
    std::pair<std::string, std::string> parts = absl::StrSplit(kv, '=');
    double w;
    if (!absl::SimpleAtod(parts.second, &w)) {
      return absl::InvalidArgumentError(absl::StrCat("bad weight entry '", kv, "'"));
    }
    weights.emplace_back(parts.first, w);
  }
  return weights;
}

// The labelled blends of --settings.
absl::StatusOr<std::vector<std::pair<std::string, Blend>>> ReadSettings(const std::string& path,
                                                                        const Bundle& bundle) {
  std::vector<std::pair<std::string, Blend>> out;
  if (path.empty()) return out;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("--settings: cannot read " + path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": ", why));
    };
    if (fields.size() != 3 && fields.size() != 4) {
      return bad("expected label<TAB>weights<TAB>penalty[<TAB>exclude_history]");
    }
    Blend blend{&bundle, {}, std::nullopt, std::nullopt};
    absl::StatusOr<std::vector<std::pair<std::string, double>>> weights = ParseWeights(fields[1]);
    if (!weights.ok()) return bad(weights.status().message());
    blend.weights = *std::move(weights);
    double penalty;
    if (fields[2] != "-") {
      if (!absl::SimpleAtod(fields[2], &penalty) || penalty < 0) return bad("bad penalty");
      blend.penalty = penalty;
    }
    if (fields.size() == 4 && fields[3] != "-") {
      if (fields[3] != "true" && fields[3] != "false") return bad("bad exclude_history");
      blend.exclude_history = fields[3] == "true";
    }
    out.emplace_back(fields[0], std::move(blend));
  }
  return out;
}

// Per case, what ranking it on the bundle under evaluation computes under any blend.
using Memos = absl::flat_hash_map<const EvalCase*, recsys::core::RankMemo>;

// Memos for every case of `lists`, to be filled by Methods::Rank.
Memos MemosFor(std::initializer_list<const std::vector<EvalCase>*> lists) {
  Memos memos;
  for (const std::vector<EvalCase>* list : lists) {
    for (const EvalCase& c : *list) memos[&c];
  }
  return memos;
}

// How each method ranks a case. Rank is thread-safe for distinct cases.
class Methods {
 public:
  // `memos`: one for each case to rank, kept across calls (blends of `bundle` share them).
  Methods(const Bundle& bundle, const Baselines& baselines, Memos* memos)
      : bundle_(bundle), b_(baselines), memos_(*memos) {}

  void AddBlend(const std::string& name, Blend blend) { blends_[name] = std::move(blend); }

  // Whether `name` is a method here (a model source missing from the bundle is not).
  bool Has(const std::string& name) const {
    return name == "popular" || name == "recent_popular" || name == "recent_popular_country" ||
           name == "repeat" || blends_.contains(name);
  }

  absl::StatusOr<std::vector<std::string>> Rank(const std::string& name, const EvalCase& c,
                                                bool only_new) const {
    if (name == "popular") return TopAllowed(b_.popular, c, only_new);
    if (name == "recent_popular") return TopAllowed(b_.recent_popular, c, only_new);
    if (name == "recent_popular_country") {
      auto it = b_.recent_popular_country.find(c.country);
      return TopAllowed(it == b_.recent_popular_country.end() ? b_.recent_popular : it->second, c,
                        only_new);
    }
    if (name == "repeat") return only_new ? std::vector<std::string>() : Repeat(c);
    const Blend& blend = blends_.at(name);
    return RankWithBundle(blend, c, only_new, blend.bundle == &bundle_ ? &memos_.at(&c) : nullptr);
  }

 private:
  const Bundle& bundle_;
  const Baselines& b_;
  Memos& memos_;
  absl::flat_hash_map<std::string, Blend> blends_;
};

// One method's result on one variant: the metrics and each case's NDCG@10 (in case order).
struct MethodResult {
  recsys::core::RankingMetrics metrics;
  std::vector<double> ndcg;
};

absl::StatusOr<MethodResult> RunMethod(const Methods& methods, const std::string& name,
                                       const std::vector<const EvalCase*>& cases, bool only_new,
                                       const absl::flat_hash_set<std::string>& head,
                                       int64_t catalog_size) {
  std::vector<std::vector<std::string>> ranked(cases.size());
  std::vector<absl::Status> errors(absl::GetFlag(FLAGS_threads));
  auto work = [&](int t) {
    for (size_t n = t; n < cases.size() && errors[t].ok(); n += errors.size()) {
      absl::StatusOr<std::vector<std::string>> r = methods.Rank(name, *cases[n], only_new);
      if (r.ok())
        ranked[n] = *std::move(r);
      else
        errors[t] = r.status();
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 0; t < errors.size(); ++t) threads.emplace_back(work, static_cast<int>(t));
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : errors) {
    if (!s.ok()) return s;
  }
  MethodResult out;
  recsys::core::MetricsAccumulator metrics(catalog_size, head);
  for (size_t n = 0; n < cases.size(); ++n) {
    const EvalCase& c = *cases[n];
    out.ndcg.push_back(metrics.Add(ranked[n], only_new ? c.new_targets : c.targets));
  }
  out.metrics = metrics.Result();
  return out;
}

// The cases of a variant (those with targets), and each one's customer as a group index.
struct VariantCases {
  std::vector<const EvalCase*> cases;
  std::vector<int> group;
  int groups = 0;
};

VariantCases SelectCases(const std::vector<EvalCase>& all, bool only_new) {
  VariantCases v;
  absl::flat_hash_map<std::string, int> customers;
  for (const EvalCase& c : all) {
    if ((only_new ? c.new_targets : c.targets).empty()) continue;
    v.cases.push_back(&c);
    auto [it, added] = customers.emplace(c.customer_id, v.groups);
    if (added) ++v.groups;
    v.group.push_back(it->second);
  }
  return v;
}

std::string VariantTitle(const std::string& variant) {
  if (variant == "new") {
    return "Variant **new** (targets: items new to the customer; their past items are not "
           "recommended)";
  }
  if (variant == "cold") {
    return "Variant **cold** (customers new at the cut-off: empty history; targets: their first "
           "basket)";
  }
  return "Variant **all** (targets: every item of the basket)";
}

int Fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}

// Evaluates `names` on one variant and prints its table (or TSV lines).
absl::Status EvaluateVariant(const Methods& methods, const std::vector<std::string>& names,
                             const std::string& variant, const VariantCases& v,
                             const Baselines& baselines, int64_t catalog_size) {
  const bool only_new = variant == "new";
  const bool tsv = absl::GetFlag(FLAGS_format) == "tsv";
  const std::string compare_to = absl::GetFlag(FLAGS_compare_to);
  absl::flat_hash_map<std::string, MethodResult> results;
  for (const std::string& name : names) {
    if (isatty(STDERR_FILENO))
      std::fprintf(stderr, "\r%s/%s ...%20s", variant.c_str(), name.c_str(), "");
    absl::StatusOr<MethodResult> r =
        RunMethod(methods, name, v.cases, only_new, baselines.head, catalog_size);
    if (!r.ok()) return r.status();
    results[name] = *std::move(r);
  }
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\r%60s\r", "");
  if (!tsv) {
    std::cout << VariantTitle(variant)
              << "\n\n| method | cases | Recall@10 | Recall@20 | NDCG@10 | " << compare_to
              << " minus method, NDCG@10 [95% CI] | MRR@20 | Coverage@10 | "
              << "Long tail@10 |\n|---|---:|---:|---:|---:|---|---:|---:|---:|\n";
  }
  for (const std::string& name : names) {
    const recsys::core::RankingMetrics& m = results[name].metrics;
    std::optional<recsys::core::Interval> d;
    if (results.contains(compare_to) && name != compare_to) {
      d = recsys::core::PairedBootstrap(results[compare_to].ndcg, results[name].ndcg, v.group,
                                        v.groups);
    }
    if (tsv) {
      std::cout << absl::StrFormat("%s\t%s\t%d\t%.5f\t%.5f\t%.5f\t%.5f", name, variant, m.cases,
                                   m.ndcg_at_10, m.recall_at_10, m.recall_at_20, m.mrr_at_20);
      if (d) std::cout << absl::StrFormat("\t%.5f\t%.5f\t%.5f", d->mean, d->low, d->high);
      std::cout << "\n";
      continue;
    }
    std::string delta = "";
    if (d) {
      delta = absl::StrFormat("%+.4f [%+.4f, %+.4f]%s", d->mean, d->low, d->high,
                              d->low > 0    ? " above 0"
                              : d->high < 0 ? " below 0"
                                            : "");
    }
    std::cout << absl::StrFormat("| %s | %d | %.4f | %.4f | %.4f | %s | %.4f | %.3f | %.3f |\n",
                                 name, m.cases, m.recall_at_10, m.recall_at_20, m.ndcg_at_10, delta,
                                 m.mrr_at_20, m.coverage_at_10, m.long_tail_at_10);
  }
  if (!tsv) std::cout << "\n";
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Bundle>> LoadBundle(const std::string& dir) {
  absl::StatusOr<recsys::core::ItemTablePrecision> tables =
      recsys::core::ParseItemTablePrecision(absl::GetFlag(FLAGS_item_tables));
  if (!tables.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--item_tables: ", tables.status().message()));
  }
  absl::StatusOr<std::shared_ptr<const Bundle>> bundle =
      Bundle::Load(dir, MemoizingLoader(*tables));
  if (bundle.ok() && (*bundle)->manifest().train_cutoff_unix == 0) {
    return absl::FailedPreconditionError(dir + ": built without --cutoff: nothing is held out");
  }
  return bundle;
}

// "weights a 1, b 2, popularity penalty p" of `o` over the general defaults, or "the same".
std::string DescribeOverrides(const recsys::core::BundleManifest& m,
                              const recsys::core::DefaultOverrides& o) {
  if (o.empty()) return "the same";
  std::string weights;
  for (const auto& [name, weight] : o.weights) {
    absl::StrAppend(&weights, weights.empty() ? "" : ", ", name, " ", weight);
  }
  return absl::StrFormat("weights %s, popularity penalty %g",
                         weights.empty() ? "the same" : weights,
                         o.popularity_penalty.value_or(m.popularity_penalty_default));
}

std::string Describe(const Bundle& bundle, const Baselines& b, size_t cases) {
  std::string sources;
  for (const auto& s : bundle.manifest().sources) {
    absl::StrAppend(&sources, sources.empty() ? "" : ", ", s.name, " ", s.weight);
  }
  const auto& m = bundle.manifest();
  return absl::StrFormat(
      "Bundle %s, %d cases (baskets in the window of customers who bought before it), catalogue "
      "%d items, head %d items (%.0f%% of the purchase lines). The bundle's popularity window: "
      "%d days. Its defaults: weights %s, popularity penalty %g, exclude_history %s; with the "
      "history excluded (variant new): %s; for a new shopper (variant cold): %s.\n\n",
      m.version, cases, bundle.catalog().size(), b.head.size(), m.recent_days,
      100 * absl::GetFlag(FLAGS_head_share), sources, m.popularity_penalty_default,
      m.exclude_history_default ? "true" : "false", DescribeOverrides(m, m.new_items),
      DescribeOverrides(m, m.new_shoppers));
}

// The held-out cases of [cutoff, end): at most --max_cases (every k-th).
std::vector<EvalCase> ReadCases(const recsys::core::RetailData& data, int64_t cutoff, int64_t end) {
  std::vector<EvalCase> cases =
      recsys::core::MakeNextBasketCases(data, cutoff, end, absl::GetFlag(FLAGS_max_history));
  if (const int max = absl::GetFlag(FLAGS_max_cases); max > 0 && cases.size() > size_t(max)) {
    std::vector<EvalCase> kept;
    const size_t step = (cases.size() + max - 1) / max;
    for (size_t i = 0; i < cases.size(); i += step) kept.push_back(std::move(cases[i]));
    cases = std::move(kept);
  }
  return cases;
}

// Registers the bundle's methods: blend (--weights, --popularity_penalty), each source alone
// (every other source at 0, no penalty unless asked), the labels of the settings file
// `settings` (--settings' format) and of --bundles (loaded into `others`, which must outlive
// `methods`).
absl::Status AddBundleMethods(const std::shared_ptr<const Bundle>& bundle,
                              const std::string& settings_file, Methods* methods,
                              std::vector<std::shared_ptr<const Bundle>>* others) {
  absl::StatusOr<std::vector<std::pair<std::string, double>>> weights =
      ParseWeights(absl::GetFlag(FLAGS_weights));
  if (!weights.ok()) return absl::InvalidArgumentError("--weights: " + weights.status().ToString());
  std::optional<double> penalty;
  if (absl::GetFlag(FLAGS_popularity_penalty) >= 0) {
    penalty = absl::GetFlag(FLAGS_popularity_penalty);
  }
  methods->AddBlend("blend", {bundle.get(), *weights, penalty, std::nullopt});
  const auto& sources = bundle->manifest().sources;
  for (const auto& s : sources) {
    Blend alone{bundle.get(), {}, penalty.value_or(0.0), std::nullopt};
    for (const auto& other : sources) {
      alone.weights.emplace_back(other.name, other.name == s.name ? 1.0 : 0.0);
    }
    methods->AddBlend(s.name, std::move(alone));
  }
  absl::StatusOr<std::vector<std::pair<std::string, Blend>>> settings =
      ReadSettings(settings_file, *bundle);
  if (!settings.ok()) return settings.status();
  for (auto& [label, blend] : *settings) {
    if (methods->Has(label))
      return absl::InvalidArgumentError("--settings: " + label + " is taken");
    methods->AddBlend(label, std::move(blend));
  }
  for (absl::string_view entry :
       absl::StrSplit(absl::GetFlag(FLAGS_bundles), ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> label_dir = absl::StrSplit(entry, absl::MaxSplits('=', 1));
    absl::StatusOr<std::shared_ptr<const Bundle>> other = LoadBundle(label_dir.second);
    if (!other.ok()) return absl::InvalidArgumentError("--bundles: " + other.status().ToString());
    if ((*other)->manifest().train_cutoff_unix != bundle->manifest().train_cutoff_unix) {
      return absl::InvalidArgumentError("--bundles: " + label_dir.second + " has another cut-off");
    }
    if (methods->Has(label_dir.first)) {
      return absl::InvalidArgumentError("--bundles: " + label_dir.first + " is taken");
    }
    others->push_back(*other);
    methods->AddBlend(label_dir.first, {others->back().get(), {}, std::nullopt, std::nullopt});
  }
  return absl::OkStatus();
}

// The methods of `list` (--methods' format) that `methods` has (a model missing from the
// bundle is skipped).
absl::StatusOr<std::vector<std::string>> MethodNames(const Methods& methods,
                                                     const std::string& list) {
  std::vector<std::string> names;
  for (const std::string& name : std::vector<std::string>(absl::StrSplit(list, ','))) {
    if (methods.Has(name)) {
      names.push_back(name);
    } else if (name != "cnn" && name != "rnn") {
      return absl::InvalidArgumentError("--methods: unknown method " + name);
    }
  }
  return names;
}

// What to evaluate: --methods, --variants and --settings, or one line of --requests_from_stdin.
struct Request {
  std::string methods, variants, settings_file;
};

// Evaluates `request` on the cases and prints its tables (or TSV lines).
absl::Status Evaluate(const std::shared_ptr<const Bundle>& bundle, const Baselines& baselines,
                      const std::vector<EvalCase>& cases, const std::vector<EvalCase>& cold_cases,
                      const Request& request, Memos* memos) {
  Methods methods(*bundle, baselines, memos);
  std::vector<std::shared_ptr<const Bundle>> others;
  if (absl::Status s = AddBundleMethods(bundle, request.settings_file, &methods, &others);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::vector<std::string>> names = MethodNames(methods, request.methods);
  if (!names.ok()) return names.status();
  const std::vector<std::string> variants = absl::StrSplit(request.variants, ',');
  for (const std::string& variant : variants) {  // Checked before anything is printed.
    if (variant != "all" && variant != "new" && variant != "cold") {
      return absl::InvalidArgumentError("--variants: unknown variant " + variant);
    }
  }
  for (const std::string& variant : variants) {
    const VariantCases v = SelectCases(variant == "cold" ? cold_cases : cases, variant == "new");
    absl::Status s =
        EvaluateVariant(methods, *names, variant, v, baselines, bundle->catalog().size());
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Time-split evaluation of a bundle against simple baselines.");
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = recsys::core::SetTorchThreads(1, 1); !s.ok()) return Fail(s.ToString());
  if (absl::GetFlag(FLAGS_threads) < 1) return Fail("--threads must be >= 1");
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "markdown" && format != "tsv") return Fail("--format: markdown or tsv");
  const bool serve = absl::GetFlag(FLAGS_requests_from_stdin);
  if (serve && (format != "tsv" || !absl::GetFlag(FLAGS_bundles).empty())) {
    return Fail("--requests_from_stdin needs --format=tsv and no --bundles");
  }
  absl::StatusOr<std::shared_ptr<const Bundle>> bundle = LoadBundle(absl::GetFlag(FLAGS_bundle));
  if (!bundle.ok()) return Fail(bundle.status().ToString());
  const int64_t cutoff = (*bundle)->manifest().train_cutoff_unix;
  absl::StatusOr<int64_t> end = recsys::core::ParseDateTime(absl::GetFlag(FLAGS_end));
  if (!end.ok()) return Fail("--end: " + std::string(end.status().message()));
  if (*end <= cutoff) return Fail("--end must be after the bundle's cut-off");

  absl::StatusOr<recsys::core::RetailData> data =
      recsys::core::ReadRetailCsv(absl::GetFlag(FLAGS_input), {});
  if (!data.ok()) return Fail(data.status().ToString());
  const std::vector<EvalCase> cases = ReadCases(*data, cutoff, *end);
  const std::vector<EvalCase> cold_cases = recsys::core::MakeNewCustomerCases(*data, cutoff, *end);
  const Baselines baselines = MakeBaselines(*data, **bundle);

  const Request flags = {absl::GetFlag(FLAGS_methods), absl::GetFlag(FLAGS_variants),
                         absl::GetFlag(FLAGS_settings)};
  if (format == "markdown") std::cout << Describe(**bundle, baselines, cases.size());
  // Every request ranks the same cases on the same bundle: the memos serve them all.
  Memos memos = MemosFor({&cases, &cold_cases});
  if (!serve) {
    const absl::Status s = Evaluate(*bundle, baselines, cases, cold_cases, flags, &memos);
    return s.ok() ? 0 : Fail(s.ToString());
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    absl::Status s =
        fields.size() == 3
            ? Evaluate(*bundle, baselines, cases, cold_cases, {fields[0], fields[1], fields[2]},
                       &memos)
            : absl::InvalidArgumentError("a request is methods<TAB>variants<TAB>settings file");
    if (!s.ok()) std::cout << "error\t" << s.ToString() << "\n";
    std::cout << std::endl;  // The empty line that ends an answer, flushed.
  }
  return 0;
}
