#ifndef RECSYS_CORE_INTEREST_PROFILE_H_
#define RECSYS_CORE_INTEREST_PROFILE_H_

#include <string>
#include <vector>

#include "core/catalog.h"

namespace recsys::core {

// One category the shopper's history leans to.
struct InterestEntry {
  std::string category;
  // Recency-weighted share of the known history events in the category, in (0, 1]. The
  // shares of every category of the history (those cut by max_entries included) add up to the
  // weight of the events whose item has a category: 1 when every item has one.
  double share = 0.0;
  // The history items that define the entry: its most recent distinct items, newest first.
  std::vector<std::string> item_ids;
};

// What the shopper's history says they like: derived in the request from the history and the
// catalogue alone (no model, no state), so it is exact and costs microseconds.
struct InterestProfile {
  // Largest share first (ties: category name); empty when the catalogue has no categories or
  // no event is known.
  std::vector<InterestEntry> entries;
  // Recency-weighted quartiles of the unit prices the shopper paid (the event's price, else the
  // item's reference price): for each q, the lowest price p such that the events priced <= p
  // weigh at least q of the total. All 0 without a known event.
  double price_low = 0.0;     // q = 0.25.
  double price_median = 0.0;  // q = 0.5.
  double price_high = 0.0;    // q = 0.75.
};

// The profile of the known events `items` (catalogue indices, oldest first) with recency
// weights `weights` (summing to 1, as core::RecencyWeights gives) and the unit prices `prices`
// (negative or NaN: unknown, the item's reference price is used; 0 is a price paid). At most
// `max_entries` entries of at most `max_items` items each. Every event counts with its weight
// whatever its type: the profile describes the evidence the CF source ranked from.
// REQUIRES: the three vectors have one entry per event; items < catalog.size(). Thread-safe.
// Cost: O(n log C) for n events and C catalogue categories, a few vectors of n or C elements.
InterestProfile BuildInterestProfile(const Catalog& catalog, const std::vector<ItemIndex>& items,
                                     const std::vector<double>& weights,
                                     const std::vector<double>& prices, int max_entries = 5,
                                     int max_items = 3);

// The index in profile.entries of the entry `item` serves (the entry of its category), or -1.
int ProfileEntryOf(const InterestProfile& profile, const ItemInfo& item);

}  // namespace recsys::core

#endif  // RECSYS_CORE_INTEREST_PROFILE_H_
