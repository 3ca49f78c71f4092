// Integration tests: the real server, started in-process on loopback port 0, over real
// channels; a bundle built from the vendored Online Retail II sample; the real /metrics
// endpoint scraped over HTTP.
#include "server/server.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/bundle_builder.h"
#include "core/retail_data.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/model_fixtures.h"

namespace recsys::server {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using ::testing::Contains;
using ::testing::HasSubstr;

constexpr int kMaxHistory = 50;

// The bundle and the real customers' histories, made once for the whole binary.
struct SharedData {
  std::string bundle_root;
  std::shared_ptr<const core::Bundle> bundle;
  core::RetailData data;
};

const SharedData& Shared() {
  static const SharedData* shared = [] {
    auto* s = new SharedData();
    s->bundle_root = testing::MakeTempDir("server_bundles");
    core::BundleBuildOptions options;
    options.input = testing::SmallRetailCsvPath();
    options.out_root = s->bundle_root;
    options.version = "20240101T000000Z";
    absl::StatusOr<core::BundleBuildResult> built = core::BuildCfBundle(options);
    EXPECT_TRUE(built.ok()) << built.status();
    s->bundle = *core::Bundle::Load(built->dir);
    s->data = *core::ReadRetailCsv(options.input, {});
    return s;
  }();
  return *shared;
}

// Options for a server on a free loopback port, without a metrics endpoint.
ServerOptions LoopbackOptions(const std::string& bundle_path) {
  ServerOptions options;
  options.address = "127.0.0.1:0";
  options.metrics_port = -1;
  options.bundle_path = bundle_path;
  return options;
}

// A plaintext channel to `server`.
std::shared_ptr<grpc::Channel> ChannelTo(const RecsysServer& server) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(server.port()),
                             grpc::InsecureChannelCredentials());
}

std::unique_ptr<RecsysServer> StartServer() {
  ServerOptions options = LoopbackOptions(Shared().bundle_root);
  options.metrics_port = 0;
  options.pipeline.limits.max_history = kMaxHistory;
  absl::StatusOr<std::unique_ptr<RecsysServer>> server = RecsysServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

// The last `n` purchases of the first customer with at least that many.
v1::RecommendRequest RealCustomerRequest(size_t n) {
  for (const core::CustomerHistory& c : Shared().data.customers) {
    if (c.purchases.size() < n) continue;
    v1::RecommendRequest request;
    request.set_request_id("customer-" + c.customer_id);
    for (size_t i = c.purchases.size() - n; i < c.purchases.size(); ++i) {
      const core::Purchase& p = c.purchases[i];
      v1::HistoryEvent* e = request.add_history();
      e->set_item_id(Shared().bundle->catalog().item(p.item).id);
      e->mutable_timestamp()->set_seconds(p.time);
      e->set_quantity(p.quantity);
      e->set_price(p.price);
    }
    request.mutable_context()->set_country(c.country);
    return request;
  }
  ADD_FAILURE() << "no customer with " << n << " purchases";
  return {};
}

// Value of the sample `name{...}` whose labels include all of `labels`, or -1.
double Sample(const std::string& exposition, const std::string& name,
              const std::vector<std::string>& labels) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, name + "{")) continue;
    bool all = true;
    for (const std::string& label : labels) all = all && absl::StrContains(line, label);
    double value;
    if (all && absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) return value;
  }
  return -1;
}

// One server per process, started in the first test's SetUp (not SetUpTestSuite, whose
// failures CTest would report as skipped tests rather than failed ones).
class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (server_ == nullptr) {
      server_ = StartServer().release();
      ASSERT_NE(server_, nullptr) << "the server did not start";
      channel_ = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
          "127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
    }
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
    channel_ = nullptr;
    server_ = nullptr;
  }

  grpc::Status Recommend(const v1::RecommendRequest& request, v1::RecommendResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return v1::Recommender::NewStub(*channel_)->Recommend(&context, request, response);
  }

  std::string ScrapeMetrics() {
    httplib::Client client("127.0.0.1", server_->metrics_port());
    httplib::Result result = client.Get("/metrics");
    EXPECT_TRUE(result) << "scrape failed";
    if (!result) return "";
    EXPECT_EQ(result->status, 200);
    return result->body;
  }

  static inline RecsysServer* server_ = nullptr;
  static inline std::shared_ptr<grpc::Channel>* channel_ = nullptr;
};

TEST_F(ServerTest, RecommendsRealProductsWithCfContributionsThatSumToTheScore) {
  v1::RecommendRequest request = RealCustomerRequest(20);
  request.mutable_explain()->set_method(v1::ATTRIBUTION_METHOD_CF_EXACT);
  request.mutable_explain()->set_include_source_attributions(true);
  request.mutable_explain()->set_max_attributions(50);  // All 20 events: the sums are complete.
  v1::RecommendResponse response;
  grpc::Status status = Recommend(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  EXPECT_EQ(response.request_id(), request.request_id());
  EXPECT_EQ(response.metadata().bundle_version(), "20240101T000000Z");
  EXPECT_EQ(response.metadata().attribution_method(), v1::ATTRIBUTION_METHOD_CF_EXACT);
  ASSERT_EQ(response.items_size(), 10);
  std::vector<std::string> history_ids;
  for (const v1::HistoryEvent& e : request.history()) history_ids.push_back(e.item_id());
  double previous = 1e300;
  for (const v1::RecommendedItem& item : response.items()) {
    SCOPED_TRACE(item.item_id());
    // A real product of the catalogue, with its real description.
    std::optional<core::ItemIndex> index = Shared().bundle->catalog().Find(item.item_id());
    ASSERT_TRUE(index.has_value());
    EXPECT_EQ(item.info().description(), Shared().bundle->catalog().item(*index).description);
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

TEST_F(ServerTest, BadRequestsAreInvalidArgumentNamingTheField) {
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
         while (r->history_size() <= kMaxHistory) r->add_history()->set_item_id("85123A");
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
grpc::Status SendRawRecommend(grpc::Channel* channel, const std::string& bytes) {
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
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

TEST_F(ServerTest, BytesThatAreNoRequestAreInvalidArgumentSayingSo) {
  // Not protobuf at all; then a request_id (field 1) that is not UTF-8.
  for (const std::string& bytes :
       {std::string("\xff\xff\xff\xff", 4), std::string("\x0a\x02\xc3\x28", 4)}) {
    grpc::Status status = SendRawRecommend(channel_->get(), bytes);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("not a recsys.v1.RecommendRequest"));
  }
  // The same path still answers well-formed bytes.
  EXPECT_TRUE(SendRawRecommend(channel_->get(), RealCustomerRequest(3).SerializeAsString()).ok());
}

TEST_F(ServerTest, UnknownHistoryIdsAreReportedNotFatal) {
  v1::RecommendRequest request = RealCustomerRequest(5);
  request.add_history()->set_item_id("NO-SUCH-ITEM");
  v1::RecommendResponse response;
  ASSERT_TRUE(Recommend(request, &response).ok());
  EXPECT_THAT(response.metadata().ignored_history_item_ids(), Contains("NO-SUCH-ITEM"));
  EXPECT_GT(response.items_size(), 0);
}

// The README's grpcurl example sends this file: it must parse and get a real answer.
TEST_F(ServerTest, TheDocumentedExampleRequestWorks) {
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
class ScenarioTest : public ServerTest {
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

TEST_F(ServerTest, GetModelInfoDescribesTheServedBundle) {
  grpc::ClientContext context;
  v1::GetModelInfoResponse info;
  ASSERT_TRUE(v1::Recommender::NewStub(*channel_)->GetModelInfo(&context, {}, &info).ok());
  EXPECT_EQ(info.bundle_version(), "20240101T000000Z");
  EXPECT_EQ(info.catalog_size(), 3755);
  EXPECT_EQ(info.limits().max_history(), kMaxHistory);
  EXPECT_EQ(info.cf_index().neighbors_per_item(), 100);
  ASSERT_EQ(info.sources_size(), 2);
  EXPECT_EQ(info.sources(0).name(), "cf");
  EXPECT_EQ(info.category_method(), "description-keywords-v1");
  EXPECT_THAT(info.categories(), Contains("kitchen & dining"));
  EXPECT_TRUE(std::is_sorted(info.categories().begin(), info.categories().end()));
}

TEST_F(ServerTest, HealthCheckSaysServingForTheServerAndTheService) {
  auto stub = grpc::health::v1::Health::NewStub(*channel_);
  for (const char* service : {"", "recsys.v1.Recommender"}) {
    SCOPED_TRACE(service);
    grpc::ClientContext context;
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, request, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  }
  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("no.such.Service");
  HealthCheckResponse response;
  EXPECT_EQ(stub->Check(&context, request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

// A reflection client as grpcurl uses it: grpc.reflection.v1alpha over a bidi stream. The
// message types come from the descriptors that the reflection library registers.
class ReflectionClient {
 public:
  explicit ReflectionClient(std::shared_ptr<grpc::Channel> channel) : stub_(channel) {
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    request_type_ = pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest");
    response_type_ =
        pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse");
  }

  // Sends one request with `field` set to `value`; returns the response, or nullptr.
  std::unique_ptr<google::protobuf::Message> Ask(const std::string& field,
                                                 const std::string& value) {
    if (request_type_ == nullptr || response_type_ == nullptr) return nullptr;
    std::unique_ptr<google::protobuf::Message> request(factory_.GetPrototype(request_type_)->New());
    request->GetReflection()->SetString(request.get(), request_type_->FindFieldByName(field),
                                        value);
    grpc::ClientContext context;
    grpc::CompletionQueue cq;
    auto call = stub_.PrepareCall(
        &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    auto step = [&cq](intptr_t expected) {
      void* tag;
      bool ok;
      return cq.Next(&tag, &ok) && ok && reinterpret_cast<intptr_t>(tag) == expected;
    };
    call->StartCall(reinterpret_cast<void*>(1));
    if (!step(1)) return nullptr;
    grpc::Slice slice(request->SerializeAsString());
    call->Write(grpc::ByteBuffer(&slice, 1), reinterpret_cast<void*>(2));
    if (!step(2)) return nullptr;
    grpc::ByteBuffer reply;
    call->Read(&reply, reinterpret_cast<void*>(3));
    if (!step(3)) return nullptr;
    call->WritesDone(reinterpret_cast<void*>(4));
    step(4);
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(5));
    step(5);
    std::vector<grpc::Slice> slices;
    reply.Dump(&slices);
    std::string bytes;
    for (const grpc::Slice& s : slices)
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    std::unique_ptr<google::protobuf::Message> response(
        factory_.GetPrototype(response_type_)->New());
    if (!response->ParseFromString(bytes)) return nullptr;
    return response;
  }

 private:
  grpc::GenericStub stub_;
  google::protobuf::DynamicMessageFactory factory_;
  const google::protobuf::Descriptor* request_type_ = nullptr;
  const google::protobuf::Descriptor* response_type_ = nullptr;
};

TEST_F(ServerTest, ReflectionListsAndDescribesTheServices) {
  ReflectionClient client(*channel_);
  std::unique_ptr<google::protobuf::Message> listed = client.Ask("list_services", "*");
  ASSERT_NE(listed, nullptr);
  std::vector<std::string> names;
  const auto* list_field = listed->GetDescriptor()->FindFieldByName("list_services_response");
  const google::protobuf::Message& list = listed->GetReflection()->GetMessage(*listed, list_field);
  const auto* service_field = list.GetDescriptor()->FindFieldByName("service");
  for (int i = 0; i < list.GetReflection()->FieldSize(list, service_field); ++i) {
    const google::protobuf::Message& s =
        list.GetReflection()->GetRepeatedMessage(list, service_field, i);
    names.push_back(s.GetReflection()->GetString(s, s.GetDescriptor()->FindFieldByName("name")));
  }
  EXPECT_THAT(names, Contains("recsys.v1.Recommender"));
  EXPECT_THAT(names, Contains("grpc.health.v1.Health"));
  EXPECT_THAT(names, Contains("grpc.reflection.v1alpha.ServerReflection"));

  // grpcurl can describe Health only if its descriptor is registered: ask for the file.
  for (const char* symbol : {"grpc.health.v1.Health", "recsys.v1.RecommendRequest"}) {
    SCOPED_TRACE(symbol);
    std::unique_ptr<google::protobuf::Message> file = client.Ask("file_containing_symbol", symbol);
    ASSERT_NE(file, nullptr);
    const auto* fd_field = file->GetDescriptor()->FindFieldByName("file_descriptor_response");
    EXPECT_TRUE(file->GetReflection()->HasField(*file, fd_field)) << file->DebugString();
  }
}

TEST_F(ServerTest, MetricsCountEachRequestByMethodAndCode) {
  const std::vector<std::string> ok_labels = {"method=\"Recommend\"", "code=\"OK\""};
  const std::vector<std::string> bad_labels = {"method=\"Recommend\"", "code=\"INVALID_ARGUMENT\""};
  const std::string before = ScrapeMetrics();
  const double ok_before = Sample(before, "recsys_requests_total", ok_labels);
  const double bad_before = Sample(before, "recsys_requests_total", bad_labels);
  const double count_before =
      Sample(before, "recsys_request_duration_seconds_count", {"method=\"Recommend\""});
  ASSERT_GE(ok_before, 0);

  v1::RecommendResponse response;
  ASSERT_TRUE(Recommend(RealCustomerRequest(10), &response).ok());
  v1::RecommendRequest bad = RealCustomerRequest(10);
  bad.set_top_k(-1);
  ASSERT_FALSE(Recommend(bad, &response).ok());

  const std::string after = ScrapeMetrics();
  EXPECT_EQ(Sample(after, "recsys_requests_total", ok_labels), ok_before + 1);
  EXPECT_EQ(Sample(after, "recsys_requests_total", bad_labels), bad_before + 1);
  EXPECT_EQ(Sample(after, "recsys_request_duration_seconds_count", {"method=\"Recommend\""}),
            count_before + 2);
  EXPECT_GT(Sample(after, "recsys_stage_duration_seconds_count", {"stage=\"rank\""}), 0);
  EXPECT_THAT(after, HasSubstr("# TYPE recsys_request_duration_seconds histogram"));
  EXPECT_THAT(after, HasSubstr("recsys_bundle_items 3755"));
}

TEST(ServerShutdownTest, HealthWatchSeesNotServingThenTheStreamEnds) {
  std::unique_ptr<RecsysServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("recsys.v1.Recommender");
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader = stub->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  std::thread stopper([&] { server->Shutdown(absl::Seconds(5)); });
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_TRUE(reader->Finish().ok());
  stopper.join();

  // New calls are refused once the server is down.
  v1::RecommendResponse out;
  grpc::ClientContext late;
  late.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_FALSE(
      v1::Recommender::NewStub(channel)->Recommend(&late, RealCustomerRequest(5), &out).ok());
}

TEST(ServerModelsTest, EveryResponseShowsCfCnnAndRnn) {
  ServerOptions options = LoopbackOptions(testing::MakeTinyModelBundleDir());
  absl::StatusOr<std::unique_ptr<RecsysServer>> server = RecsysServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Recommender::NewStub(ChannelTo(**server));
  v1::RecommendRequest request;
  request.add_history()->set_item_id("21A");
  request.add_history()->set_item_id("21D");
  request.mutable_context()->set_country("France");
  grpc::ClientContext context;
  v1::RecommendResponse response;
  ASSERT_TRUE(stub->Recommend(&context, request, &response).ok());
  ASSERT_EQ(response.items_size(), 4);
  EXPECT_EQ(response.metadata().device(), "cpu");
  for (const v1::RecommendedItem& item : response.items()) {
    ASSERT_EQ(item.sources_size(), 3) << item.item_id();
    EXPECT_EQ(item.sources(0).source(), "cf");
    EXPECT_EQ(item.sources(1).source(), "cnn");
    EXPECT_EQ(item.sources(2).source(), "rnn");
    double sum = 0.0;
    for (const v1::SourceScore& s : item.sources()) sum += s.contribution();
    EXPECT_NEAR(item.score(), sum, 1e-9);
  }

  grpc::ClientContext info_context;
  v1::GetModelInfoResponse info;
  ASSERT_TRUE(stub->GetModelInfo(&info_context, {}, &info).ok());
  ASSERT_EQ(info.models_size(), 2);
  EXPECT_EQ(info.models(0).kind(), "cnn");
  EXPECT_EQ(info.models(0).max_history(), 5);
  EXPECT_EQ(info.models(0).device(), "cpu");
  EXPECT_EQ(info.feature_schema().event_features_size(), 3);
  EXPECT_EQ(info.feature_schema().context_features(0).name(), "hour_sin");
}

TEST(ServerModelsTest, OcclusionOfAnEventIsTheScoreChangeOfTheRequestWithoutIt) {
  ServerOptions options = LoopbackOptions(testing::MakeTinyModelBundleDir());
  absl::StatusOr<std::unique_ptr<RecsysServer>> server = RecsysServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Recommender::NewStub(ChannelTo(**server));
  auto recommend = [&](const v1::RecommendRequest& request) {
    grpc::ClientContext context;
    v1::RecommendResponse response;
    EXPECT_TRUE(stub->Recommend(&context, request, &response).ok());
    return response;
  };
  v1::RecommendRequest request;
  const char* ids[] = {"21A", "21C", "21B", "21A"};
  for (int i = 0; i < 4; ++i) {
    v1::HistoryEvent* e = request.add_history();
    e->set_item_id(ids[i]);
    e->mutable_timestamp()->set_seconds(1262340000 + i * 86400);
    e->set_quantity(1 + i);
  }
  request.mutable_context()->set_country("France");
  request.mutable_context()->mutable_time()->set_seconds(1262703600);
  request.mutable_filters()->set_exclude_history(false);
  request.mutable_explain()->set_method(v1::ATTRIBUTION_METHOD_OCCLUSION);
  request.mutable_explain()->set_max_attributions(50);
  const v1::RecommendResponse response = recommend(request);
  EXPECT_EQ(response.metadata().attribution_method(), v1::ATTRIBUTION_METHOD_OCCLUSION);
  ASSERT_GT(response.items_size(), 0);
  int checked = 0;
  for (const v1::RecommendedItem& item : response.items()) {
    for (const v1::Attribution& a : item.attributions()) {
      if (a.kind() != v1::FEATURE_KIND_HISTORY_EVENT) continue;
      v1::RecommendRequest without = request;
      without.mutable_history()->erase(without.mutable_history()->begin() + a.history_index());
      without.add_candidate_item_ids(item.item_id());
      without.set_candidates_only(true);
      const v1::RecommendResponse other = recommend(without);
      ASSERT_EQ(other.items_size(), 1);
      EXPECT_NEAR(a.attribution(), item.score() - other.items(0).score(), 1e-4)
          << item.item_id() << " without history[" << a.history_index() << "]";
      ++checked;
    }
  }
  EXPECT_GE(checked, response.items_size() * 3);  // Every item depends on most events.
}

TEST(ServerReloadTest, NewVersionsSwapInUnderLoadWithoutAFailedRequestAndABrokenOneIsRejected) {
  const std::string root = testing::MakeTempDir("reload_root");
  auto build = [&](const std::string& version) {
    core::BundleBuildOptions options;
    options.input = testing::SmallRetailCsvPath();
    options.out_root = root;
    options.version = version;
    ASSERT_TRUE(core::BuildCfBundle(options).ok());  // Appears atomically (a rename).
  };
  build("v1");
  ServerOptions options = LoopbackOptions(root);
  options.metrics_port = 0;
  options.bundle_poll_interval = absl::Milliseconds(20);
  absl::StatusOr<std::unique_ptr<RecsysServer>> server = RecsysServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = ChannelTo(**server);

  // Four callers send requests back to back for the whole test.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  absl::Mutex mu;
  std::set<std::string> versions;
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      auto stub = v1::Recommender::NewStub(channel);
      while (!stop) {
        v1::RecommendRequest request = RealCustomerRequest(5);
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        v1::RecommendResponse response;
        if (stub->Recommend(&context, request, &response).ok() && response.items_size() > 0) {
          ++ok;
          absl::MutexLock lock(&mu);
          versions.insert(response.metadata().bundle_version());
        } else {
          ++failed;
        }
      }
    });
  }
  auto wait_for = [&](const std::string& version) {
    for (int i = 0; i < 500 && (*server)->bundle_version() != version; ++i) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    return (*server)->bundle_version() == version;
  };
  // Some answers from each version before the next one comes.
  auto answers = [&](int n) {
    const int target = ok + n;
    for (int i = 0; i < 1000 && ok < target; ++i) absl::SleepFor(absl::Milliseconds(20));
  };
  answers(10);
  build("v2");
  EXPECT_TRUE(wait_for("v2"));
  answers(10);
  // A broken version: the old one keeps serving, and the rejection is counted.
  std::filesystem::create_directories(root + "/v3");
  testing::WriteFile(root + "/v3/manifest.json", "{\"format_version\": 1, \"version\":");
  absl::Status rejected = (*server)->ReloadNow();
  EXPECT_FALSE(rejected.ok());
  EXPECT_THAT(std::string(rejected.message()), HasSubstr("manifest.json"));
  absl::SleepFor(absl::Milliseconds(200));  // The watcher does not retry it meanwhile.
  EXPECT_EQ((*server)->bundle_version(), "v2");
  build("v4");
  EXPECT_TRUE(wait_for("v4"));
  answers(10);
  stop = true;
  for (std::thread& t : callers) t.join();

  EXPECT_EQ(failed, 0);
  EXPECT_GT(ok, 20);
  EXPECT_THAT(versions, ::testing::IsSupersetOf({"v1", "v2", "v4"}));
  EXPECT_EQ(versions.count("v3"), 0u);
  httplib::Client metrics("127.0.0.1", (*server)->metrics_port());
  httplib::Result scrape = metrics.Get("/metrics");
  ASSERT_TRUE(scrape);
  EXPECT_EQ(Sample(scrape->body, "recsys_bundle_reloads_total", {"result=\"loaded\""}), 2);
  EXPECT_EQ(Sample(scrape->body, "recsys_bundle_reloads_total", {"result=\"rejected\""}), 1);
}

// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
struct TestPki {
  std::string dir, ca, server_cert, server_key, client_cert, client_key;
};

TestPki MakePki() {
  TestPki pki;
  pki.dir = testing::MakeTempDir("pki");
  const std::string script = absl::StrCat(
      "cd ", pki.dir, " && set -e && exec >openssl.log 2>&1 && ",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
      "-subj /CN=test-ca && ",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=server && ",
      "printf 'subjectAltName=IP:127.0.0.1' > san.ext && ",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile san.ext -out server.pem && ",
      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client && ",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-out client.pem");
  EXPECT_EQ(std::system(script.c_str()), 0) << "openssl failed; see " << pki.dir;
  auto read = [&](const std::string& name) {
    std::ifstream in(pki.dir + "/" + name);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  pki.ca = read("ca.pem");
  pki.server_cert = read("server.pem");
  pki.server_key = read("server.key");
  pki.client_cert = read("client.pem");
  pki.client_key = read("client.key");
  return pki;
}

// A GetModelInfo call with `credentials`; its status.
grpc::Status Call(int port, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  auto stub = v1::Recommender::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), credentials));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::GetModelInfoResponse info;
  return stub->GetModelInfo(&context, {}, &info);
}

TEST(ServerTlsTest, TlsAndMutualTlsAdmitOnlyTheRightClients) {
  const TestPki pki = MakePki();
  ASSERT_FALSE(pki.server_cert.empty());
  ServerOptions options = LoopbackOptions(Shared().bundle_root);
  options.tls_cert_file = pki.dir + "/server.pem";
  options.tls_key_file = pki.dir + "/server.key";
  grpc::SslCredentialsOptions trusting;
  trusting.pem_root_certs = pki.ca;
  {
    absl::StatusOr<std::unique_ptr<RecsysServer>> server = RecsysServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_TRUE(Call((*server)->port(), grpc::SslCredentials(trusting)).ok());
    EXPECT_FALSE(Call((*server)->port(), grpc::InsecureChannelCredentials()).ok());
  }
  options.tls_client_ca_file = pki.dir + "/ca.pem";
  absl::StatusOr<std::unique_ptr<RecsysServer>> server = RecsysServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_FALSE(Call((*server)->port(), grpc::SslCredentials(trusting)).ok());  // No client cert.
  grpc::SslCredentialsOptions with_cert = trusting;
  with_cert.pem_cert_chain = pki.client_cert;
  with_cert.pem_private_key = pki.client_key;
  EXPECT_TRUE(Call((*server)->port(), grpc::SslCredentials(with_cert)).ok());

  options.tls_key_file = pki.dir + "/missing.key";
  absl::Status s = RecsysServer::Start(options).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("missing.key: cannot read"));
}

TEST(ServerProcessTest, SigtermDrainsTheCallsInFlightAndExitsZero) {
  const std::string dir = testing::MakeTempDir("sigterm");
  const std::string log = dir + "/stderr.log";
  const std::vector<std::string> args = {
      RECSYS_SERVER_BINARY,    "--bundle=" + Shared().bundle_root,
      "--address=127.0.0.1:0", "--plaintext",
      "--metrics_port=-1",     "--workers=1",
      "--queue_capacity=256",  "--shutdown_grace=30s"};
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen(log.c_str(), "w", stderr);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    const size_t at = text.find(" on port ");
    if (at != std::string::npos) port = std::atoi(text.c_str() + at + 9);
  }
  ASSERT_GT(port, 0) << "the server did not start; see " << log;

  // Slow requests (KernelSHAP over a long history, one worker) keep the queue busy.
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  v1::RecommendRequest request = RealCustomerRequest(kMaxHistory);
  request.mutable_explain()->set_method(v1::ATTRIBUTION_METHOD_KERNEL_SHAP);
  request.mutable_explain()->set_samples(1024);
  request.set_top_k(100);
  constexpr int kCalls = 120;
  std::atomic<int> ok{0}, done{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      v1::RecommendResponse response;
      if (v1::Recommender::NewStub(channel)->Recommend(&context, request, &response).ok() &&
          response.items_size() > 0) {
        ++ok;
      }
      ++done;
    });
  }
  absl::SleepFor(absl::Milliseconds(300));  // All sent; most wait in the queue.
  const int done_before_term = done;
  kill(pid, SIGTERM);
  for (std::thread& t : callers) t.join();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_LT(done_before_term, kCalls) << "nothing was in flight: make the requests slower";
  EXPECT_EQ(ok, kCalls);  // Every accepted call finished, none was cut off.
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  // Gone: a new call is refused.
  grpc::ClientContext late;
  late.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::RecommendResponse out;
  EXPECT_FALSE(v1::Recommender::NewStub(channel)->Recommend(&late, request, &out).ok());
}

TEST(ServerOverloadTest, AFullQueueIsResourceExhaustedAndExpiredCallsAreDroppedUnworked) {
  ServerOptions options = LoopbackOptions(Shared().bundle_root);
  options.metrics_port = 0;
  options.pipeline.limits.max_history = kMaxHistory;
  options.workers = 1;
  options.queue_capacity = 2;
  absl::StatusOr<std::unique_ptr<RecsysServer>> server = RecsysServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = ChannelTo(**server);
  httplib::Client metrics("127.0.0.1", (*server)->metrics_port());
  // The value of an unlabelled series, or -1.
  auto sample = [&](const std::string& name) {
    httplib::Result r = metrics.Get("/metrics");
    if (!r) return -1.0;
    for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
      double value;
      if (absl::StartsWith(line, name + " ") &&
          absl::SimpleAtod(line.substr(name.size() + 1), &value)) {
        return value;
      }
    }
    return -1.0;
  };
  v1::RecommendRequest slow = RealCustomerRequest(kMaxHistory);
  slow.mutable_explain()->set_method(v1::ATTRIBUTION_METHOD_KERNEL_SHAP);
  slow.mutable_explain()->set_samples(1024);
  slow.set_top_k(100);

  constexpr int kCalls = 40;
  std::atomic<int> ok{0}, exhausted{0}, other{0};
  std::atomic<bool> flooding{true};
  double deepest = 0;
  std::thread watcher([&] {  // The queue never grows past its capacity.
    while (flooding) deepest = std::max(deepest, sample("recsys_queue_depth"));
  });
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      v1::RecommendResponse response;
      grpc::Status status = v1::Recommender::NewStub(channel)->Recommend(&context, slow, &response);
      if (status.ok()) {
        ++ok;
      } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                 absl::StrContains(status.error_message(), "queue is full")) {
        ++exhausted;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& t : callers) t.join();
  flooding = false;
  watcher.join();
  EXPECT_GT(exhausted, 0);
  EXPECT_GE(ok, 1);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(ok + exhausted, kCalls);
  EXPECT_GE(deepest, 0);  // Scraped.
  EXPECT_LE(deepest, 2);
  EXPECT_EQ(sample("recsys_rejected_total"), exhausted);

  // A call whose deadline passes while it waits behind slow ones is dropped without work. It
  // must reach the server before its deadline and expire in the queue, so a few deadlines are
  // tried, shortest first (on a loaded machine the short ones expire on the client already).
  for (int deadline_ms : {3, 6, 12, 25}) {
    std::vector<std::thread> busy;
    for (int i = 0; i < 2; ++i) {
      busy.emplace_back([&] {
        grpc::ClientContext context;
        v1::RecommendResponse response;
        (void)v1::Recommender::NewStub(channel)->Recommend(&context, slow, &response);
      });
    }
    absl::SleepFor(absl::Milliseconds(5));
    grpc::ClientContext hurried;
    hurried.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(deadline_ms));
    v1::RecommendResponse response;
    (void)v1::Recommender::NewStub(channel)->Recommend(&hurried, slow, &response);
    for (std::thread& t : busy) t.join();
    absl::SleepFor(absl::Milliseconds(50));  // The worker has reached the expired call.
    if (sample("recsys_dropped_total") >= 1) break;
  }
  EXPECT_GE(sample("recsys_dropped_total"), 1);
}

TEST(ServerStartTest, AMissingBundleIsAClearStartUpError) {
  ServerOptions options = LoopbackOptions(testing::MakeTempDir("empty_root"));
  absl::Status s = RecsysServer::Start(options).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("no manifest.json"));
}

}  // namespace
}  // namespace recsys::server
