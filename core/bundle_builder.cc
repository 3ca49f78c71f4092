#include "core/bundle_builder.h"

#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/bundle.h"
#include "core/categorizer.h"
#include "core/sources.h"

namespace recsys::core {

namespace fs = std::filesystem;

namespace {

// The manifest of a CF bundle built with `options` (file names left at their defaults).
BundleManifest ManifestFor(const BundleBuildOptions& options) {
  BundleManifest manifest;
  manifest.version = options.version;
  manifest.created_unix = options.created_unix;
  manifest.data_source = absl::StrCat(
      fs::path(options.input).filename().string(),
      "; filter: CustomerID present, Invoice numeric, Quantity > 0, Price > 0, products only",
      options.cutoff_time == INT64_MAX ? "" : absl::StrCat("; cutoff_unix: ", options.cutoff_time));
  manifest.category_method = kCategoryMethod;
  manifest.recency_decay = options.recency_decay;
  manifest.self_similarity = options.self_similarity;
  manifest.self_recency_decay = options.self_recency_decay;
  manifest.self_half_life_days = options.self_half_life_days;
  if (options.cutoff_time != INT64_MAX) manifest.train_cutoff_unix = options.cutoff_time;
  manifest.exclude_history_default = options.exclude_history_default;
  manifest.recent_days = options.recent_days;
  manifest.sources.push_back(SourceSpec{kCfSourceName, 1.0, 1.0, 0.0});
  manifest.sources.push_back(
      SourceSpec{kPopularitySourceName, options.popularity_weight, 1.0, 0.0});

  return manifest;
}

// Recent popularity per country, for new shoppers: countries with at least `min_lines` recent
// lines only. Errors: DATA_LOSS when the file cannot be written.
absl::Status WriteCountryPopularity(const RetailData& data, int64_t min_lines,
                                    const fs::path& path) {
  std::ofstream out(path);
  out << "country\titem_id\trecent_purchases\n";
  for (const auto& [country, counts] : data.recent_by_country) {
    int64_t lines = 0;
    for (const auto& [item, n] : counts) lines += n;
    if (country.empty() || lines < min_lines) continue;
    for (const auto& [item, n] : counts) {
      out << country << '\t' << data.catalog.item(item).id << '\t' << n << '\n';
    }
  }
  if (!out.flush()) return absl::DataLossError("country_popularity.tsv: write failed");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BundleBuildResult> BuildCfBundle(const BundleBuildOptions& options,
                                                const ProgressFn& progress) {
  if (options.input.empty()) return absl::InvalidArgumentError("input: required");
  if (options.out_root.empty()) return absl::InvalidArgumentError("out_root: required");
  if (options.version.empty() || options.version[0] == '.' ||
      options.version.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("version: '", options.version, "' is not a directory name"));
  }
  const fs::path final_dir = fs::path(options.out_root) / options.version;
  const fs::path tmp_dir = fs::path(options.out_root) / (".tmp-" + options.version);
  std::error_code ec;
  if (fs::exists(final_dir, ec)) {
    return absl::AlreadyExistsError(absl::StrCat(final_dir.string(), ": already exists"));
  }

  if (options.recent_days < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("recent_days: ", options.recent_days, " is not >= 1"));
  }
  RetailReadOptions read_options;
  read_options.cutoff_time = options.cutoff_time;
  read_options.recent_days = options.recent_days;
  absl::StatusOr<RetailData> data = ReadRetailCsv(options.input, read_options, progress);
  if (!data.ok()) return data.status();
  if (data->catalog.size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.input, ": no purchase rows left after the filter and cut-off"));
  }

  std::vector<std::vector<ItemIndex>> baskets;
  baskets.reserve(data->customers.size());
  for (const CustomerHistory& c : data->customers) {
    baskets.emplace_back();
    for (const Purchase& p : c.purchases) baskets.back().push_back(p.item);
  }
  CfIndex index = CfIndex::Build(data->catalog.size(), baskets, options.cf, progress);

  fs::remove_all(tmp_dir, ec);
  if (!fs::create_directories(tmp_dir, ec)) {
    return absl::PermissionDeniedError(
        absl::StrCat(tmp_dir.string(), ": cannot create: ", ec.message()));
  }
  BundleManifest manifest = ManifestFor(options);
  if (absl::Status s = data->catalog.WriteTsv((tmp_dir / manifest.items_file).string()); !s.ok()) {
    return s;
  }
  if (absl::Status s = index.Save((tmp_dir / manifest.cf_index_file).string()); !s.ok()) return s;
  manifest.country_popularity_file = "country_popularity.tsv";
  if (absl::Status s = WriteCountryPopularity(*data, options.min_country_recent_lines,
                                              tmp_dir / manifest.country_popularity_file);
      !s.ok()) {
    return s;
  }
  {
    std::ofstream out(tmp_dir / "manifest.json");
    out << SerializeManifest(manifest);
    if (!out.flush()) return absl::DataLossError("manifest.json: write failed");
  }
  // Check that what was written loads, before it becomes visible.
  if (absl::StatusOr<std::shared_ptr<const Bundle>> check = Bundle::Load(tmp_dir.string());
      !check.ok()) {
    return check.status();
  }
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("rename ", tmp_dir.string(), ": ", ec.message()));
  }

  BundleBuildResult result;
  result.dir = final_dir.string();
  result.stats = data->stats;
  result.items = data->catalog.size();
  result.customers = static_cast<int32_t>(data->customers.size());
  result.neighbors = index.num_neighbors();
  return result;
}

}  // namespace recsys::core
