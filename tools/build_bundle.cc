// Builds an item-CF model bundle version from a CSV in the Online Retail II layout.
//
//   recsys_build_bundle --input=data/online-retail-ii/online_retail_ii.csv.gz --out_root=bundles
//
// The CF defaults are the settings tools/evaluate.sh chose on the validation month
// (docs/evaluation.md). Prints progress on a terminal and one summary line at the end; exits
// non-zero with one clear line on error.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/bundle_builder.h"
#include "core/catalog.h"

ABSL_FLAG(std::string, input, "data/online-retail-ii/online_retail_ii.csv.gz",
          "CSV (plain or .gz) in the Online Retail II column layout");
ABSL_FLAG(std::string, out_root, "bundles", "Directory that receives the version directory");
ABSL_FLAG(std::string, version, "",
          "Version directory name. Default: UTC time of the build, e.g. 20261129T080000Z");
ABSL_FLAG(std::string, cutoff, "",
          "Train only on purchases strictly before this date ('YYYY-MM-DD' or "
          "'YYYY-MM-DD HH:MM:SS'). Default: all purchases");
ABSL_FLAG(int, neighbors, 100, "Neighbours kept per item");
ABSL_FLAG(double, shrinkage, 10.0, "Cosine shrinkage: c_ij / (sqrt(c_i c_j) + shrinkage)");
ABSL_FLAG(double, recency_decay, 0.8, "CF weight of the i-th most recent event is decay^i");
ABSL_FLAG(double, self_recency_decay, 1.0,
          "Like --recency_decay, for an item's contribution to itself (repeat purchases)");
ABSL_FLAG(double, self_similarity, 64.0,
          "CF similarity of an item to itself: weight of repeat purchases (0: off)");
ABSL_FLAG(bool, exclude_history_default, false,
          "Default of the request option filters.exclude_history");
ABSL_FLAG(double, self_half_life_days, 0.0,
          "Half-life in days of a past purchase's repeat term, by its age (0: none)");
ABSL_FLAG(int, threads, 2, "Threads for the similarity computation");
ABSL_FLAG(int, recent_days, 28,
          "Window of the popularity source (and per-country counts), in days before the cut-off");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Builds an item-CF bundle from Online Retail II purchase data.");
  absl::ParseCommandLine(argc, argv);

  recsys::core::BundleBuildOptions options;
  options.input = absl::GetFlag(FLAGS_input);
  options.out_root = absl::GetFlag(FLAGS_out_root);
  const absl::Time now = absl::Now();
  options.created_unix = absl::ToUnixSeconds(now);
  options.version = absl::GetFlag(FLAGS_version);
  if (options.version.empty()) {
    options.version = absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());
  }
  if (!absl::GetFlag(FLAGS_cutoff).empty()) {
    absl::StatusOr<int64_t> cutoff = recsys::core::ParseDateTime(absl::GetFlag(FLAGS_cutoff));
    if (!cutoff.ok()) {
      std::cerr << "error: --cutoff: " << cutoff.status().message() << "\n";
      return 2;
    }
    options.cutoff_time = *cutoff;
  }
  options.cf.neighbors_per_item = absl::GetFlag(FLAGS_neighbors);
  options.cf.shrinkage = absl::GetFlag(FLAGS_shrinkage);
  options.cf.threads = absl::GetFlag(FLAGS_threads);
  options.recency_decay = absl::GetFlag(FLAGS_recency_decay);
  options.self_similarity = absl::GetFlag(FLAGS_self_similarity);
  options.self_recency_decay = absl::GetFlag(FLAGS_self_recency_decay);
  options.self_half_life_days = absl::GetFlag(FLAGS_self_half_life_days);
  options.exclude_history_default = absl::GetFlag(FLAGS_exclude_history_default);
  options.recent_days = absl::GetFlag(FLAGS_recent_days);

  const bool tty = isatty(STDERR_FILENO);
  recsys::core::ProgressFn progress = nullptr;
  if (tty) {
    progress = [](absl::string_view stage, int64_t done, int64_t total) {
      const double pct = total > 0 ? 100.0 * static_cast<double>(done) / total : 0.0;
      std::fprintf(stderr, "\r%-10s %5.1f%%", std::string(stage).c_str(), pct);
      if (done >= total) std::fputc('\n', stderr);
    };
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<recsys::core::BundleBuildResult> result =
      recsys::core::BuildCfBundle(options, progress);
  if (!result.ok()) {
    std::cerr << "error: " << result.status().message() << "\n";
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto& s = result->stats;
  std::cout << absl::StrFormat(
      "bundle %s: %d items, %d customers, %d neighbours from %d of %d rows (dropped: %d no "
      "customer, %d not an invoice, %d non-positive, %d non-product, %d after cut-off) in %.1f s\n",
      result->dir, result->items, result->customers, result->neighbors, s.kept, s.rows,
      s.no_customer, s.not_an_invoice, s.non_positive, s.non_product, s.after_cutoff, seconds);
  // The derived categories, so that their coverage is visible (docs/categories.md).
  absl::StatusOr<recsys::core::Catalog> catalog =
      recsys::core::Catalog::LoadTsv(result->dir + "/items.tsv");
  if (catalog.ok() && catalog->has_categories()) {
    std::map<std::string, std::pair<int64_t, int64_t>> counts;  // Items, purchase lines.
    int64_t lines = 0;
    for (recsys::core::ItemIndex i = 0; i < catalog->size(); ++i) {
      auto& [items, purchases] = counts[catalog->item(i).category];
      ++items;
      purchases += catalog->item(i).popularity;
      lines += catalog->item(i).popularity;
    }
    std::cout << "| category | items | share of items | share of purchase lines |\n"
                 "|---|---:|---:|---:|\n";
    for (const auto& [category, count] : counts) {
      std::cout << absl::StrFormat("| %s | %d | %.1f%% | %.1f%% |\n", category, count.first,
                                   100.0 * count.first / catalog->size(),
                                   100.0 * count.second / std::max<int64_t>(1, lines));
    }
  }
  return 0;
}
