#include "core/catalog.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace recsys::core {

namespace {
constexpr absl::string_view kHeader =
    "id\tdescription\tprice\tcategory\tpopularity\trecent_popularity";

// Opens the items.tsv at `path` and reads its header line into `line`. Errors: NOT_FOUND when
// it cannot be opened, DATA_LOSS naming line 1 when the header is not kHeader.
absl::Status OpenItemsTsv(const std::string& path, std::ifstream* in, std::string* line) {
  in->open(path);
  if (!*in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  if (!std::getline(*in, *line) || *line != kHeader) {
    return absl::DataLossError(absl::StrCat(path, ":1: expected header '", kHeader, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

Catalog::Catalog(std::vector<ItemInfo> items)
    : items_(std::make_unique<const std::vector<ItemInfo>>(std::move(items))),
      index_(items_->size(), IdHash{items_.get()}, IdEq{items_.get()}) {
  absl::flat_hash_set<std::string> categories;
  for (size_t i = 0; i < items_->size(); ++i) {
    index_.insert(static_cast<ItemIndex>(i));
    const std::string& category = (*items_)[i].category;
    if (!category.empty()) categories.insert(category);
  }
  categories_.assign(categories.begin(), categories.end());
  std::sort(categories_.begin(), categories_.end());
}

std::optional<ItemIndex> Catalog::Find(absl::string_view id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return *it;
}

absl::StatusOr<Catalog> Catalog::LoadTsv(const std::string& path) {
  std::ifstream in;
  std::string line;
  if (absl::Status s = OpenItemsTsv(path, &in, &line); !s.ok()) return s;
  std::vector<ItemInfo> items;
  absl::flat_hash_set<std::string> seen;
  for (int line_no = 2; std::getline(in, line); ++line_no) {
    std::vector<absl::string_view> cols = absl::StrSplit(line, '\t');
    auto where = [&] { return absl::StrCat(path, ":", line_no, ": "); };
    if (cols.size() != 6) {
      return absl::DataLossError(absl::StrCat(where(), "expected 6 columns, got ", cols.size()));
    }
    ItemInfo item;
    item.id = std::string(cols[0]);
    item.description = std::string(cols[1]);
    item.category = std::string(cols[3]);
    if (item.id.empty()) return absl::DataLossError(absl::StrCat(where(), "empty id"));
    if (!absl::SimpleAtod(cols[2], &item.price) || !std::isfinite(item.price)) {
      return absl::DataLossError(absl::StrCat(where(), "bad price '", cols[2], "'"));
    }
    if (!absl::SimpleAtoi(cols[4], &item.popularity) || item.popularity < 0) {
      return absl::DataLossError(absl::StrCat(where(), "bad popularity '", cols[4], "'"));
    }
    if (!absl::SimpleAtoi(cols[5], &item.recent_popularity) || item.recent_popularity < 0) {
      return absl::DataLossError(absl::StrCat(where(), "bad recent_popularity '", cols[5], "'"));
    }
    if (!seen.insert(item.id).second) {
      return absl::DataLossError(absl::StrCat(where(), "duplicate id '", item.id, "'"));
    }
    items.push_back(std::move(item));
  }
  return Catalog(std::move(items));
}

absl::StatusOr<int32_t> Catalog::CountTsvItems(const std::string& path) {
  std::ifstream in;
  std::string line;
  if (absl::Status s = OpenItemsTsv(path, &in, &line); !s.ok()) return s;
  int32_t items = 0;
  while (std::getline(in, line)) ++items;
  return items;
}

absl::Status Catalog::WriteTsv(const std::string& path) const {
  std::ofstream out(path);
  if (!out) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write"));
  out << kHeader << '\n';
  for (const ItemInfo& item : *items_) {
    out << item.id << '\t' << item.description << '\t' << item.price << '\t' << item.category
        << '\t' << item.popularity << '\t' << item.recent_popularity << '\n';
  }
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace recsys::core
