// Recommend through the real server (in-process, loopback, real channel) on the bundle built
// from the vendored Online Retail II sample: real customers, bad requests, the documented
// example and the storefront scenarios of docs/scenarios.md.
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using testing::kServerMaxHistory;
using testing::RealCustomerRequest;
using testing::Retail;
using testing::SharedServerTest;

using RecommendTest = SharedServerTest;

TEST_F(RecommendTest, RecommendsRealProductsWithCfContributionsThatSumToTheScore) {
  v1::RecommendRequest request = RealCustomerRequest(20);
  request.mutable_explain()->set_method(v1::ATTRIBUTION_METHOD_CF_EXACT);
  request.mutable_explain()->set_include_source_attributions(true);
  request.mutable_explain()->set_max_attributions(50);  // All 20 events: the sums are complete.
  v1::RecommendResponse response;
  grpc::Status status = Recommend(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  EXPECT_EQ(response.request_id(), request.request_id());
  EXPECT_EQ(response.metadata().bundle_version(), Retail().version);
  EXPECT_EQ(response.metadata().attribution_method(), v1::ATTRIBUTION_METHOD_CF_EXACT);
  ASSERT_EQ(response.items_size(), 10);
  std::vector<std::string> history_ids;
  for (const v1::HistoryEvent& e : request.history()) history_ids.push_back(e.item_id());
  double previous = 1e300;
  for (const v1::RecommendedItem& item : response.items()) {
    SCOPED_TRACE(item.item_id());
    // A real product of the catalogue, with its real description.
    std::optional<core::ItemIndex> index = Retail().bundle->catalog().Find(item.item_id());
    ASSERT_TRUE(index.has_value());
    EXPECT_EQ(item.info().description(), Retail().bundle->catalog().item(*index).description);
    EXPECT_LE(item.score(), previous);
    previous = item.score();

    ASSERT_EQ(item.sources_size(), 2);  // cf, and pop with weight 0.
    const v1::SourceScore& cf = item.sources(0);
    EXPECT_EQ(cf.source(), "cf");
    EXPECT_GT(cf.raw_score(), 0.0);
    double sum = 0.0;
    for (const v1::Attribution& a : cf.attributions()) {
      EXPECT_EQ(a.kind(), v1::FEATURE_KIND_HISTORY_EVENT);
      ASSERT_GE(a.history_index(), 0);
      ASSERT_LT(a.history_index(), request.history_size());
      EXPECT_EQ(a.item_id(), request.history(a.history_index()).item_id());
      sum += a.attribution();
    }
    EXPECT_NEAR(sum, cf.raw_score(), 1e-12);
    double fused = 0.0;
    for (const v1::Attribution& a : item.attributions()) fused += a.attribution();
    EXPECT_NEAR(fused, item.score() - item.baseline_score(), 1e-12);
    EXPECT_THAT(item.reason(), HasSubstr("you bought"));
  }
}

TEST_F(RecommendTest, BadRequestsAreInvalidArgumentNamingTheField) {
  struct Case {
    const char* name;
    std::function<void(v1::RecommendRequest*)> mutate;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"empty item id", [](v1::RecommendRequest* r) { r->mutable_history(2)->set_item_id(""); },
       "history[2].item_id: empty"},
      {"negative top_k", [](v1::RecommendRequest* r) { r->set_top_k(-3); },
       "top_k: -3 is negative"},
      {"absurd top_k", [](v1::RecommendRequest* r) { r->set_top_k(1000000); },
       "top_k: 1000000 exceeds the limit of 100"},
      {"history over the cap",
       [](v1::RecommendRequest* r) {
         while (r->history_size() <= kServerMaxHistory) r->add_history()->set_item_id("85123A");
       },
       "history: 51 entries exceed the limit of 50"},
      {"unknown fusion source",
       [](v1::RecommendRequest* r) { (*r->mutable_fusion()->mutable_weights())["gnn"] = 1; },
       "fusion.weights[\"gnn\"]: unknown source"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::RecommendRequest request = RealCustomerRequest(5);
    c.mutate(&request);
    v1::RecommendResponse response;
    grpc::Status status = Recommend(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  // The server is still fine afterwards.
  v1::RecommendResponse response;
  EXPECT_TRUE(Recommend(RealCustomerRequest(5), &response).ok());
}

// Sends raw bytes as a Recommend request, the way a broken client would.
grpc::Status SendRawRecommend(const std::shared_ptr<grpc::Channel>& channel,
                              const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::CompletionQueue cq;
  grpc::Slice slice(bytes);
  auto call = stub.PrepareUnaryCall(&context, "/recsys.v1.Recommender/Recommend",
                                    grpc::ByteBuffer(&slice, 1), &cq);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&reply, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  return status;
}

TEST_F(RecommendTest, BytesThatAreNoRequestAreInvalidArgumentSayingSo) {
  // Not protobuf at all; then a request_id (field 1) that is not UTF-8.
  for (const std::string& bytes :
       {std::string("\xff\xff\xff\xff", 4), std::string("\x0a\x02\xc3\x28", 4)}) {
    grpc::Status status = SendRawRecommend(server_->channel(), bytes);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("not a recsys.v1.RecommendRequest"));
  }
  // The same path still answers well-formed bytes.
  EXPECT_TRUE(
      SendRawRecommend(server_->channel(), RealCustomerRequest(3).SerializeAsString()).ok());
}

TEST_F(RecommendTest, UnknownHistoryIdsAreReportedNotFatal) {
  v1::RecommendRequest request = RealCustomerRequest(5);
  request.add_history()->set_item_id("NO-SUCH-ITEM");
  v1::RecommendResponse response;
  ASSERT_TRUE(Recommend(request, &response).ok());
  EXPECT_THAT(response.metadata().ignored_history_item_ids(), Contains("NO-SUCH-ITEM"));
  EXPECT_GT(response.items_size(), 0);
}

// The README's grpcurl example sends this file: it must parse and get a real answer.
TEST_F(RecommendTest, TheDocumentedExampleRequestWorks) {
  std::ifstream in(testing::SourcePath("docs/examples/recommend_request.json"));
  ASSERT_TRUE(in) << "docs/examples/recommend_request.json missing";
  const std::string json((std::istreambuf_iterator<char>(in)), {});
  v1::RecommendRequest request;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &request).ok());
  v1::RecommendResponse response;
  grpc::Status status = Recommend(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.items_size(), request.top_k());
  EXPECT_TRUE(response.metadata().ignored_history_item_ids().empty());
  for (const v1::RecommendedItem& item : response.items()) {
    EXPECT_FALSE(item.attributions().empty()) << item.item_id();
  }
}

// The storefront scenarios: each sends the example file the docs show (docs/scenarios.md) and
// checks the contract a storefront relies on.
class ScenarioTest : public SharedServerTest {
 protected:
  v1::RecommendRequest Example(const std::string& name) {
    std::ifstream in(testing::SourcePath("docs/examples/scenarios/" + name));
    EXPECT_TRUE(in) << name << " missing";
    const std::string json((std::istreambuf_iterator<char>(in)), {});
    v1::RecommendRequest request;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &request).ok()) << name;
    return request;
  }
  static std::map<std::string, int> Categories(const v1::RecommendResponse& response) {
    std::map<std::string, int> counts;
    for (const v1::RecommendedItem& item : response.items()) ++counts[item.info().category()];
    return counts;
  }
};

TEST_F(ScenarioTest, ANewShopperGetsAFullListFlaggedAsFallback) {
  v1::RecommendRequest request = Example("new_shopper.json");
  v1::RecommendResponse response;
  ASSERT_TRUE(Recommend(request, &response).ok());
  EXPECT_EQ(response.items_size(), request.top_k());
  EXPECT_TRUE(response.metadata().fallback_used());
  EXPECT_THAT(response.metadata().fallback_reason(), HasSubstr("empty history"));
  // With the popularity source on, the list is the shopper's country's recent favourites, and
  // the explanation says so.
  (*request.mutable_fusion()->mutable_weights())["pop"] = 1.0;
  ASSERT_TRUE(Recommend(request, &response).ok());
  EXPECT_EQ(response.items_size(), request.top_k());
  EXPECT_THAT(response.metadata().fallback_reason(),
              HasSubstr("recent popularity in United Kingdom"));
  EXPECT_EQ(response.items(0).reason(), "popular in United Kingdom right now");
  for (int i = 1; i < response.items_size(); ++i) {
    EXPECT_LE(response.items(i).score(), response.items(i - 1).score());
  }
}

TEST_F(ScenarioTest, ACampaignIsRankedWithinItselfAndUnknownItemsAreReported) {
  v1::RecommendRequest request = Example("campaign.json");
  v1::RecommendResponse response;
  ASSERT_TRUE(Recommend(request, &response).ok());
  ASSERT_EQ(response.items_size(), 3);
  for (const v1::RecommendedItem& item : response.items()) {
    EXPECT_THAT(request.candidate_item_ids(), Contains(item.item_id()));
    EXPECT_FALSE(item.attributions().empty());
  }
  EXPECT_THAT(response.metadata().ignored_candidate_item_ids(),
              ::testing::ElementsAre("NOT-IN-CATALOGUE"));
  EXPECT_FALSE(response.metadata().backfilled());
  // None known: INVALID_ARGUMENT, naming the field.
  request.clear_candidate_item_ids();
  request.add_candidate_item_ids("NOT-IN-CATALOGUE");
  grpc::Status status = Recommend(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("candidate_item_ids"));
}

TEST_F(ScenarioTest, TheCategoryCapHoldsAndMmrSpreadsTheList) {
  v1::RecommendRequest request = Example("diversity.json");
  v1::RecommendResponse diverse, plain;
  ASSERT_TRUE(Recommend(request, &diverse).ok());
  request.clear_diversity();
  ASSERT_TRUE(Recommend(request, &plain).ok());
  ASSERT_EQ(diverse.items_size(), 10);
  for (const auto& [category, n] : Categories(diverse)) {
    EXPECT_FALSE(category.empty());
    EXPECT_LE(n, 2) << category;
  }
  EXPECT_GT(Categories(diverse).size(), Categories(plain).size());
}

TEST_F(ScenarioTest, ThePopularityPenaltyMovesTheListIntoTheLongTail) {
  v1::RecommendRequest request = Example("long_tail.json");
  v1::RecommendResponse tail, plain;
  ASSERT_TRUE(Recommend(request, &tail).ok());
  request.clear_ranking();
  ASSERT_TRUE(Recommend(request, &plain).ok());
  auto mean_popularity = [](const v1::RecommendResponse& r) {
    double sum = 0;
    for (const v1::RecommendedItem& item : r.items()) sum += item.info().popularity();
    return sum / r.items_size();
  };
  EXPECT_LT(mean_popularity(tail), 0.8 * mean_popularity(plain));
  // The penalty is part of the explanation: a PRIOR entry that adds up with the rest.
  bool penalty_explained = false;
  for (const v1::Attribution& a : tail.items(0).attributions()) {
    penalty_explained |= a.feature() == "popularity" && a.attribution() < 0;
  }
  EXPECT_TRUE(penalty_explained);
}

TEST_F(ScenarioTest, FiltersHoldAndSayWhatTheyRemoved) {
  v1::RecommendRequest request = Example("filters.json");
  v1::RecommendResponse response;
  ASSERT_TRUE(Recommend(request, &response).ok());
  ASSERT_EQ(response.items_size(), 10);
  std::set<std::string> history;
  for (const v1::HistoryEvent& e : request.history()) history.insert(e.item_id());
  for (const v1::RecommendedItem& item : response.items()) {
    EXPECT_THAT(request.exclude_item_ids(), ::testing::Not(Contains(item.item_id())));
    EXPECT_EQ(history.count(item.item_id()), 0u) << item.item_id();
    EXPECT_THAT(request.filters().allow_categories(), Contains(item.info().category()));
    EXPECT_LE(item.info().price(), 5.0);
  }
  const auto& counts = response.metadata().filtered_counts();
  for (const char* filter : {"history", "category", "price"}) {
    EXPECT_GT(counts.count(filter) ? counts.at(filter) : 0, 0) << filter;
  }
}

}  // namespace
}  // namespace recsys::server
