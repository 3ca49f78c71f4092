#include "core/bundle.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace recsys::core {

namespace {

namespace fs = std::filesystem;

// Reads a country_popularity file (country, item id, purchase lines per line, after a header).
// Errors: DATA_LOSS naming the file and line.
absl::Status ReadCountryPopularity(const std::string& path, const Catalog& catalog,
                                   absl::flat_hash_map<std::string, CountryPopularity>* out) {
  std::ifstream file(path);
  std::string line;
  if (!file || !std::getline(file, line)) {
    return absl::DataLossError(absl::StrCat(path, ": cannot read"));
  }
  for (int number = 2; std::getline(file, line); ++number) {
    const std::vector<std::string> cols = absl::StrSplit(line, '\t');
    std::optional<ItemIndex> item = cols.size() == 3 ? catalog.Find(cols[1]) : std::nullopt;
    int64_t count = 0;
    if (!item || !absl::SimpleAtoi(cols[2], &count) || count <= 0) {
      return absl::DataLossError(
          absl::StrCat(path, ":", number, ": expected country, a catalogue item id, a count"));
    }
    CountryPopularity& country = (*out)[cols[0]];
    country.counts[*item] += count;
    country.items.push_back(*item);
  }
  for (auto& entry : *out) {
    CountryPopularity& country = entry.second;
    std::stable_sort(country.items.begin(), country.items.end(), [&](ItemIndex a, ItemIndex b) {
      return country.counts[a] != country.counts[b] ? country.counts[a] > country.counts[b] : a < b;
    });
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Bundle>> Bundle::Load(const std::string& dir,
                                                           const ModelLoader& loader) {
  const std::string manifest_path = (fs::path(dir) / "manifest.json").string();
  std::ifstream in(manifest_path);
  if (!in) return absl::NotFoundError(absl::StrCat(manifest_path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<BundleManifest> manifest = ParseManifest(text.str());
  if (!manifest.ok()) {
    return absl::Status(manifest.status().code(),
                        absl::StrCat(manifest_path, ": ", manifest.status().message()));
  }
  // The models load first: a model's load holds its file's float tables for a moment, and at
  // large catalogues that moment is the peak of the bundle's memory, so the catalogue and the
  // CF index load after them (measured at 1M items: 1.21 -> 1.11 GiB peak with the catalogue
  // after). The parts' item counts are checked first, so that a mismatched bundle fails before
  // minutes of model loading.
  const std::string items_path = (fs::path(dir) / manifest->items_file).string();
  absl::StatusOr<int32_t> listed = Catalog::CountTsvItems(items_path);
  if (!listed.ok()) return listed.status();
  const std::string cf_path = (fs::path(dir) / manifest->cf_index_file).string();
  absl::StatusOr<int32_t> cf_items = CfIndex::ReadItemCount(cf_path);
  if (!cf_items.ok()) return cf_items.status();
  if (*cf_items != *listed) {
    return absl::DataLossError(
        absl::StrCat(cf_path, ": covers ", *cf_items, " items, the catalogue has ", *listed));
  }
  std::vector<std::unique_ptr<ModelRunner>> models;
  for (const ModelSpec& spec : manifest->models) {
    if (loader == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          manifest_path, ": lists model \"", spec.name, "\" but no model loader was given"));
    }
    ModelShape shape;
    shape.num_items = *listed;
    shape.max_history = spec.max_history;
    shape.num_event_features = static_cast<int32_t>(manifest->event_features.size());
    shape.num_context = static_cast<int32_t>(manifest->context_features.size());
    shape.context_baseline = ContextBaseline(*manifest);
    absl::StatusOr<std::unique_ptr<ModelRunner>> model =
        loader((fs::path(dir) / spec.file).string(), spec, shape);
    if (!model.ok()) return model.status();
    models.push_back(*std::move(model));
  }
  absl::StatusOr<Catalog> catalog = Catalog::LoadTsv(items_path);
  if (!catalog.ok()) return catalog.status();
  if (catalog->size() != *listed) {  // The file changed while the models loaded.
    return absl::DataLossError(
        absl::StrCat(items_path, ": now has ", catalog->size(), " items, had ", *listed));
  }
  absl::StatusOr<CfIndex> cf = CfIndex::Load(cf_path);  // Its item count is the header's.
  if (!cf.ok()) return cf.status();
  absl::StatusOr<std::vector<Source>> sources = ResolveSources(*manifest, models);
  if (!sources.ok()) {
    return absl::Status(sources.status().code(),
                        absl::StrCat(manifest_path, ": ", sources.status().message()));
  }
  absl::flat_hash_map<std::string, CountryPopularity> by_country;
  if (!manifest->country_popularity_file.empty()) {
    absl::Status read = ReadCountryPopularity(
        (fs::path(dir) / manifest->country_popularity_file).string(), *catalog, &by_country);
    if (!read.ok()) return read;
  }
  std::shared_ptr<Bundle> bundle(
      new Bundle(dir, *std::move(manifest), *std::move(catalog), *std::move(cf)));
  bundle->country_popularity_ = std::move(by_country);
  bundle->models_ = std::move(models);
  bundle->sources_ = *std::move(sources);
  const Catalog& items = bundle->catalog_;
  bundle->recent_popular_.resize(items.size());
  for (ItemIndex i = 0; i < items.size(); ++i) bundle->recent_popular_[i] = i;
  std::stable_sort(bundle->recent_popular_.begin(), bundle->recent_popular_.end(),
                   [&](ItemIndex a, ItemIndex b) {
                     const ItemInfo& x = items.item(a);
                     const ItemInfo& y = items.item(b);
                     return x.recent_popularity != y.recent_popularity
                                ? x.recent_popularity > y.recent_popularity
                                : x.popularity > y.popularity;
                   });
  return std::shared_ptr<const Bundle>(std::move(bundle));
}

absl::StatusOr<std::string> ResolveBundleDir(const std::string& path) {
  std::error_code ec;
  if (fs::exists(fs::path(path) / "manifest.json", ec)) return path;
  if (!fs::is_directory(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such bundle directory"));
  }
  std::string best;
  for (const fs::directory_entry& entry : fs::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // Skips half-written ".tmp-*" versions.
    if (entry.is_directory(ec) && fs::exists(entry.path() / "manifest.json", ec) && name > best) {
      best = name;
    }
  }
  if (best.empty()) {
    return absl::NotFoundError(
        absl::StrCat(path, ": holds no manifest.json and no version directory with one"));
  }
  return (fs::path(path) / best).string();
}

}  // namespace recsys::core
