// The interest profile through the real server (in-process, loopback, real channel) on the
// bundle built from the vendored Online Retail II sample: the shares add up and follow the
// history's recency weights, the price band is the history's, and each recommended item links
// to the entry of its category. Expected values are computed here from the bundle's catalogue
// and the recency decay GetModelInfo reports, not by the server's code.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using ::testing::ElementsAreArray;
using testing::RealCustomerRequest;
using testing::Retail;
using testing::SharedServerTest;

const core::ItemInfo& CatalogItem(const std::string& id) {
  const core::Catalog& catalog = Retail().bundle->catalog();
  return catalog.item(*catalog.Find(id));
}

// What the profile of `request` must be: every event of the request is a catalogue item, and
// event t of n weighs decay^(n-1-t) / sum_s decay^s.
struct Expected {
  std::map<std::string, double> shares;                   // By category.
  std::map<std::string, std::vector<std::string>> items;  // Newest distinct first, at most 3.
  double price_low = 0, price_median = 0, price_high = 0;
};

Expected ExpectedProfile(const v1::RecommendRequest& request, double decay) {
  const int n = request.history_size();
  std::vector<double> weights(n);
  double total = 0;
  for (int t = 0; t < n; ++t) total += weights[t] = std::pow(decay, n - 1 - t);
  Expected e;
  std::vector<std::pair<double, double>> paid;
  for (int t = n - 1; t >= 0; --t) {
    const v1::HistoryEvent& event = request.history(t);
    const core::ItemInfo& info = CatalogItem(event.item_id());
    e.shares[info.category] += weights[t] / total;
    std::vector<std::string>& items = e.items[info.category];
    if (items.size() < 3 && std::find(items.begin(), items.end(), info.id) == items.end()) {
      items.push_back(info.id);
    }
    paid.emplace_back(event.has_price() ? event.price() : info.price, weights[t] / total);
  }
  std::sort(paid.begin(), paid.end());
  auto quartile = [&paid](double q) {
    double cumulative = 0;
    for (const auto& [price, weight] : paid) {
      cumulative += weight;
      if (cumulative >= q - 1e-9) return price;
    }
    return paid.back().first;
  };
  e.price_low = quartile(0.25);
  e.price_median = quartile(0.5);
  e.price_high = quartile(0.75);
  return e;
}

class ProfileTest : public SharedServerTest {
 protected:
  void SetUp() override {
    SharedServerTest::SetUp();
    v1::GetModelInfoResponse info;
    grpc::Status status = server_->GetModelInfo(&info);
    ASSERT_TRUE(status.ok()) << status.error_message();
    decay_ = info.cf_index().recency_decay();
    ASSERT_GT(decay_, 0.0);
    ASSERT_LT(decay_, 1.0);  // Otherwise recency would not tell the events apart.
  }

  // Checks the response's profile against ExpectedProfile: the entries are the categories with
  // the largest expected shares, at those shares, with their newest items.
  void ExpectProfileOf(const v1::RecommendRequest& request, const v1::RecommendResponse& r) {
    const Expected e = ExpectedProfile(request, decay_);
    std::vector<std::pair<double, std::string>> ranked;
    for (const auto& [category, share] : e.shares) ranked.emplace_back(-share, category);
    std::sort(ranked.begin(), ranked.end());
    const v1::InterestProfile& profile = r.profile();
    ASSERT_EQ(profile.entries_size(), std::min<int>(5, static_cast<int>(ranked.size())));
    for (int i = 0; i < profile.entries_size(); ++i) {
      const v1::InterestProfile::Entry& entry = profile.entries(i);
      SCOPED_TRACE(entry.category());
      EXPECT_EQ(entry.category(), ranked[i].second);
      EXPECT_NEAR(entry.share(), -ranked[i].first, 1e-12);
      EXPECT_THAT(entry.item_ids(), ElementsAreArray(e.items.at(entry.category())));
    }
    EXPECT_DOUBLE_EQ(profile.price_low(), e.price_low);
    EXPECT_DOUBLE_EQ(profile.price_median(), e.price_median);
    EXPECT_DOUBLE_EQ(profile.price_high(), e.price_high);
  }

  // The entry of `category` in the response's profile, or nullptr.
  static const v1::InterestProfile::Entry* EntryOf(const v1::RecommendResponse& r,
                                                   const std::string& category) {
    for (const v1::InterestProfile::Entry& entry : r.profile().entries()) {
      if (entry.category() == category) return &entry;
    }
    return nullptr;
  }
  // The share of `category` in the response's profile; 0 when no entry has it.
  static double ShareOf(const v1::RecommendResponse& r, const std::string& category) {
    const v1::InterestProfile::Entry* entry = EntryOf(r, category);
    return entry == nullptr ? 0.0 : entry->share();
  }

  double decay_ = 0;
};

// Catalogue items by category, in catalogue order; the categories with the most items first.
std::vector<std::pair<std::string, std::vector<std::string>>> LargestCategories() {
  std::map<std::string, std::vector<std::string>> by_category;
  const core::Catalog& catalog = Retail().bundle->catalog();
  for (core::ItemIndex i = 0; i < catalog.size(); ++i) {
    by_category[catalog.item(i).category].push_back(catalog.item(i).id);
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> sorted(by_category.begin(),
                                                                       by_category.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  return sorted;
}

v1::RecommendRequest RequestOf(const std::vector<std::string>& ids) {
  v1::RecommendRequest request;
  request.set_request_id("profile");
  for (const std::string& id : ids) request.add_history()->set_item_id(id);
  return request;
}

TEST_F(ProfileTest, EveryItemOfTheRetailBundleHasACategory) {
  // What makes the shares of an Online Retail history add up to 1.
  const core::Catalog& catalog = Retail().bundle->catalog();
  for (core::ItemIndex i = 0; i < catalog.size(); ++i) {
    ASSERT_FALSE(catalog.item(i).category.empty()) << catalog.item(i).id;
  }
}

TEST_F(ProfileTest, ARealHistoryGivesItsRecencyWeightedSharesItemsAndPriceBand) {
  v1::RecommendRequest request = RealCustomerRequest(20);
  // One event without a price: the band takes the item's reference price for it.
  request.mutable_history(19)->clear_price();
  v1::RecommendResponse response;
  grpc::Status status = Recommend(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectProfileOf(request, response);
}

TEST_F(ProfileTest, TheSharesAddUpAndNewerEventsMoveThemAsTheRecencyWeightsSay) {
  const auto categories = LargestCategories();
  ASSERT_GE(categories.size(), 3u);
  const auto& [x, x_items] = categories[0];
  const auto& [y, y_items] = categories[1];
  const auto& [z, z_items] = categories[2];
  ASSERT_GE(z_items.size(), 6u);  // And so x and y too.
  // Six of eight events in x: x leads the profile.
  v1::RecommendRequest request = RequestOf({x_items[0], y_items[0], x_items[1], x_items[2],
                                            z_items[0], x_items[3], x_items[4], x_items[5]});
  v1::RecommendResponse before;
  grpc::Status status = Recommend(request, &before);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(before.profile().entries_size(), 3);
  EXPECT_EQ(before.profile().entries(0).category(), x);
  double sum = 0;
  for (const v1::InterestProfile::Entry& entry : before.profile().entries()) sum += entry.share();
  EXPECT_NEAR(sum, 1.0, 1e-12);
  ExpectProfileOf(request, before);

  // Three newer events in y: y gains what the recency weights give the new events, the older
  // categories keep their relative weights.
  for (int i = 1; i <= 3; ++i) request.add_history()->set_item_id(y_items[i]);
  v1::RecommendResponse after;
  status = Recommend(request, &after);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectProfileOf(request, after);
  sum = 0;
  for (const v1::InterestProfile::Entry& entry : after.profile().entries()) sum += entry.share();
  EXPECT_NEAR(sum, 1.0, 1e-12);
  const double d = decay_;
  // The eight older events weigh sum_{s=3..10} d^s / sum_{s=0..10} d^s together now.
  const double older = (std::pow(d, 3) - std::pow(d, 11)) / (1 - std::pow(d, 11));
  EXPECT_NEAR(ShareOf(after, x), ShareOf(before, x) * older, 1e-12);
  EXPECT_NEAR(ShareOf(after, z), ShareOf(before, z) * older, 1e-12);
  EXPECT_NEAR(ShareOf(after, y), ShareOf(before, y) * older + (1 - older), 1e-12);
  EXPECT_GT(ShareOf(after, y), ShareOf(before, y));
  // The y entry shows the newest three y items, newest first.
  const v1::InterestProfile::Entry* y_entry = EntryOf(after, y);
  ASSERT_NE(y_entry, nullptr);
  EXPECT_THAT(y_entry->item_ids(), ElementsAreArray({y_items[3], y_items[2], y_items[1]}));
}

TEST_F(ProfileTest, EachItemLinksToTheEntryOfItsCategory) {
  // A real shopper's history spans several categories; two items of one category leave most
  // recommendations outside the profile.
  const std::vector<std::string> x_items = LargestCategories()[0].second;
  ASSERT_GE(x_items.size(), 2u);
  int linked = 0, unlinked = 0;
  for (const v1::RecommendRequest& request :
       {RealCustomerRequest(20), RequestOf({x_items[0], x_items[1]})}) {
    SCOPED_TRACE(request.history_size());
    v1::RecommendResponse response;
    grpc::Status status = Recommend(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_GT(response.profile().entries_size(), 0);
    for (const v1::RecommendedItem& item : response.items()) {
      SCOPED_TRACE(item.item_id());
      int expected = -1;
      for (int i = 0; i < response.profile().entries_size(); ++i) {
        if (response.profile().entries(i).category() == item.info().category()) expected = i;
      }
      EXPECT_EQ(item.profile_entry(), expected);
      ++(expected >= 0 ? linked : unlinked);
    }
  }
  // Both answers occur, so that neither is taken on trust.
  EXPECT_GT(linked, 0);
  EXPECT_GT(unlinked, 0);
}

}  // namespace
}  // namespace recsys::server
