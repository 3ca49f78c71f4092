#include "core/interest_profile.h"

#include <algorithm>
#include <utility>

namespace recsys::core {

namespace {

// The lowest value whose cumulative weight reaches q of `total`, over (value, weight) pairs
// sorted by value. REQUIRES: `sorted` is not empty.
double WeightedQuantile(const std::vector<std::pair<double, double>>& sorted, double total,
                        double q) {
  const double target = q * total * (1 - 1e-12);  // Rounding must not skip an exact boundary.
  double cumulative = 0.0;
  for (const auto& [value, weight] : sorted) {
    cumulative += weight;
    if (cumulative >= target) return value;
  }
  return sorted.back().first;
}

void SetPriceBand(const Catalog& catalog, const std::vector<ItemIndex>& items,
                  const std::vector<double>& weights, const std::vector<double>& prices,
                  InterestProfile* profile) {
  std::vector<std::pair<double, double>> paid(items.size());
  double total = 0.0;
  for (size_t t = 0; t < items.size(); ++t) {
    paid[t] = {prices[t] >= 0 ? prices[t] : catalog.item(items[t]).price, weights[t]};
    total += weights[t];
  }
  std::sort(paid.begin(), paid.end());
  profile->price_low = WeightedQuantile(paid, total, 0.25);
  profile->price_median = WeightedQuantile(paid, total, 0.5);
  profile->price_high = WeightedQuantile(paid, total, 0.75);
}

// Index of `category` in the sorted catalog.categories(), or -1 for an item without one.
int CategoryId(const Catalog& catalog, const std::string& category) {
  if (category.empty()) return -1;
  const std::vector<std::string>& all = catalog.categories();
  return static_cast<int>(std::lower_bound(all.begin(), all.end(), category) - all.begin());
}

}  // namespace

InterestProfile BuildInterestProfile(const Catalog& catalog, const std::vector<ItemIndex>& items,
                                     const std::vector<double>& weights,
                                     const std::vector<double>& prices, int max_entries,
                                     int max_items) {
  InterestProfile profile;
  if (items.empty()) return profile;
  SetPriceBand(catalog, items, weights, prices, &profile);
  if (!catalog.has_categories() || max_entries <= 0) return profile;

  // Shares by category id; ids follow the category names, so a stable sort by share breaks
  // ties by name.
  const size_t num_categories = catalog.categories().size();
  std::vector<int> category_of(items.size());
  std::vector<double> share(num_categories, 0.0);
  std::vector<int> shown;
  for (size_t t = 0; t < items.size(); ++t) {
    category_of[t] = CategoryId(catalog, catalog.item(items[t]).category);
    if (category_of[t] < 0 || weights[t] <= 0) continue;
    if (share[category_of[t]] == 0.0) shown.push_back(category_of[t]);
    share[category_of[t]] += weights[t];
  }
  std::sort(shown.begin(), shown.end());
  std::stable_sort(shown.begin(), shown.end(),
                   [&share](int a, int b) { return share[a] > share[b]; });
  if (static_cast<int>(shown.size()) > max_entries) shown.resize(max_entries);

  // The entries, then their items: a pass newest first over the events of listed categories.
  std::vector<int> entry_of(num_categories, -1);
  profile.entries.resize(shown.size());
  for (size_t e = 0; e < shown.size(); ++e) {
    entry_of[shown[e]] = static_cast<int>(e);
    profile.entries[e].category = catalog.categories()[shown[e]];
    profile.entries[e].share = share[shown[e]];
  }
  for (size_t t = items.size(); t-- > 0;) {
    if (category_of[t] < 0 || weights[t] <= 0 || entry_of[category_of[t]] < 0) continue;
    std::vector<std::string>& ids = profile.entries[entry_of[category_of[t]]].item_ids;
    const std::string& id = catalog.item(items[t]).id;
    if (static_cast<int>(ids.size()) < max_items &&
        std::find(ids.begin(), ids.end(), id) == ids.end()) {
      ids.push_back(id);
    }
  }
  return profile;
}

int ProfileEntryOf(const InterestProfile& profile, const ItemInfo& item) {
  if (item.category.empty()) return -1;
  for (size_t i = 0; i < profile.entries.size(); ++i) {
    if (profile.entries[i].category == item.category) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace recsys::core
