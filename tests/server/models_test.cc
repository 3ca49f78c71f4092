// Models through the server: the tiny TorchScript cnn and rnn of make_tiny_models.py on the
// real loader, and the fake model of tests/testutil/fake_model.h through ServerOptions::loader.
#include <atomic>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/server.h"
#include "tests/testutil/fake_model.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/model_fixtures.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using testing::LoopbackOptions;
using ::testing::Optional;
using testing::TestServer;

TEST(ServerModelsTest, EveryResponseShowsCfCnnAndRnn) {
  absl::StatusOr<std::unique_ptr<TestServer>> server =
      TestServer::Start(LoopbackOptions(testing::MakeTinyModelBundleDir()));
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Recommender::NewStub((*server)->channel());
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
  // The attribution baseline's context, as tests/testutil/make_tiny_models.py wrote it.
  EXPECT_NEAR(info.feature_schema().context_features(0).baseline(), 0.4 * std::sin(1.0), 1e-4);
}

// The default response explains every weighted source: the models' attributions per history
// event, per side-feature and per context group sit beside CF's, and every item's attributions
// add up to score - baseline_score within 1%, over varied requests (histories with repeats,
// unknown ids and side-features, countries known and not, times of day and week).
TEST(ServerModelsTest, TheDefaultResponseAttributesEverySourceAndAddsUp) {
  absl::StatusOr<std::unique_ptr<TestServer>> server =
      TestServer::Start(LoopbackOptions(testing::MakeTinyModelBundleDir()));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::vector<std::vector<std::string>> histories = {
      {"21A"}, {"21B", "21C"}, {"21A", "21C", "21B", "21A", "no-such-item", "21D", "21C"}};
  const char* countries[] = {"France", "United Kingdom", "Narnia"};
  int checked = 0, models_checked = 0;
  for (size_t h = 0; h < histories.size(); ++h) {
    v1::RecommendRequest request;
    for (size_t i = 0; i < histories[h].size(); ++i) {
      v1::HistoryEvent* e = request.add_history();
      e->set_item_id(histories[h][i]);
      e->mutable_timestamp()->set_seconds(1262340000 + 90000 * static_cast<int64_t>(i));
      e->set_quantity(1.0 + 3.0 * (i % 2));
      e->set_price(0.5 + i);
    }
    request.mutable_context()->set_country(countries[h]);
    request.mutable_context()->mutable_time()->set_seconds(1262703600 + 40000 * h);
    request.mutable_explain()->set_max_attributions(50);  // All of them, to add them up.
    request.mutable_explain()->set_include_source_attributions(true);
    v1::RecommendResponse response;
    grpc::Status status = (*server)->Recommend(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.metadata().attribution_method(), v1::ATTRIBUTION_METHOD_REPLAY);
    EXPECT_EQ(response.metadata().explanation_note(), "");
    for (const v1::RecommendedItem& item : response.items()) {
      SCOPED_TRACE(absl::StrCat("history ", h, ", item ", item.item_id()));
      const double explained = item.score() - item.baseline_score();
      double sum = 0.0;
      std::set<v1::FeatureKind> kinds;
      for (const v1::Attribution& a : item.attributions()) {
        sum += a.attribution();
        kinds.insert(a.kind());
      }
      EXPECT_LE(std::fabs(sum - explained), 0.01 * std::fabs(explained));
      EXPECT_NEAR(item.completeness_error(), sum - explained, 1e-9);
      EXPECT_THAT(kinds, ::testing::IsSupersetOf({v1::FEATURE_KIND_HISTORY_EVENT,
                                                  v1::FEATURE_KIND_EVENT_FEATURE,
                                                  v1::FEATURE_KIND_CONTEXT}));
      for (const v1::SourceScore& source : item.sources()) {
        if (source.weight() == 0.0 || source.source() == "cf") continue;
        SCOPED_TRACE(source.source());
        std::set<v1::FeatureKind> own;
        double own_sum = 0.0;
        for (const v1::Attribution& a : source.attributions()) {
          own_sum += a.attribution();
          own.insert(a.kind());
        }
        EXPECT_THAT(own, ::testing::IsSupersetOf({v1::FEATURE_KIND_HISTORY_EVENT,
                                                  v1::FEATURE_KIND_EVENT_FEATURE,
                                                  v1::FEATURE_KIND_CONTEXT}));
        // Sum(own) - (raw_score - the model's baseline): float rounding only.
        EXPECT_LE(std::fabs(source.completeness_error()), 1e-4 * (1 + std::fabs(own_sum)));
        ++models_checked;
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 9);
  EXPECT_EQ(models_checked, 2 * checked);  // cnn and rnn, both weighted.
}

TEST(ServerModelsTest, OcclusionOfAnEventIsTheScoreChangeOfTheRequestWithoutIt) {
  absl::StatusOr<std::unique_ptr<TestServer>> server =
      TestServer::Start(LoopbackOptions(testing::MakeTinyModelBundleDir()));
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Recommender::NewStub((*server)->channel());
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

// ServerOptions::loader: the fake model serves where no TorchScript file exists, and its
// scores reach the response as a source of their own.
TEST(ServerModelsTest, AnInjectedLoaderServesAFakeModelWithoutATorchScriptFile) {
  const std::string dir = testing::MakeFakeModelBundleDir({{"fake_rnn", 0.5, 1.0, 0.0}});
  ASSERT_FALSE(dir.empty());
  ASSERT_FALSE(std::filesystem::exists(dir + "/fake_rnn.pt"));
  // Without the loader the manifest's model file is missing: the TorchScript loader refuses.
  EXPECT_FALSE(RecsysServer::Start(LoopbackOptions(dir)).ok());

  ServerOptions options = LoopbackOptions(dir);
  options.loader = testing::FakeModelLoader();
  absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  v1::RecommendRequest request;
  request.add_history()->set_item_id("21A");
  request.mutable_context()->set_country("France");
  v1::RecommendResponse response;
  grpc::Status status = (*server)->Recommend(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GT(response.items_size(), 0);
  for (const v1::RecommendedItem& item : response.items()) {
    SCOPED_TRACE(item.item_id());
    std::vector<std::string> names;
    double sum = 0.0;
    for (const v1::SourceScore& s : item.sources()) {
      names.push_back(s.source());
      sum += s.contribution();
    }
    EXPECT_THAT(names, Contains("fake_rnn"));
    EXPECT_NEAR(item.score(), sum, 1e-9);
  }
  v1::GetModelInfoResponse info;
  ASSERT_TRUE((*server)->GetModelInfo(&info).ok());
  ASSERT_EQ(info.models_size(), 1);
  EXPECT_EQ(info.models(0).name(), "fake_rnn");
}

// What the bundle builder chose on validation reaches the caller: GetModelInfo reports the
// validation table, its notes and the default popularity penalty, and a request that leaves
// ranking.popularity_penalty unset is ranked with that default (its explanation carries the
// penalty's prior), while an explicit 0 turns it off.
TEST(ServerModelsTest, GetModelInfoReportsTheValidationAndRequestsGetTheTunedPenalty) {
  const std::string dir = testing::MakeFakeModelBundleDir({{"fake_rnn", 0.0, 1.0, 0.0}});
  ASSERT_FALSE(dir.empty());
  testing::EditManifest(dir, [](core::BundleManifest* m) {
    m->popularity_penalty_default = 0.25;
    m->new_items.weights = {{"fake_rnn", 0.75}};
    m->new_items.popularity_penalty = 0.5;
    m->new_shoppers.weights = {{"fake_rnn", 0.125}};
    m->validation = {1000,
                     2000,
                     {{"blend", "new", 0.0625, 31}, {"fake_rnn", "all", 0.5, 40}},
                     {"fake_rnn: weight 0, not above recent_popular"},
                     "validation.md"};
  });
  ServerOptions options = LoopbackOptions(dir);
  options.loader = testing::FakeModelLoader();
  absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();

  v1::GetModelInfoResponse info;
  ASSERT_TRUE((*server)->GetModelInfo(&info).ok());
  EXPECT_DOUBLE_EQ(info.defaults().popularity_penalty(), 0.25);
  EXPECT_THAT(info.defaults().new_items().weights(),
              ::testing::UnorderedElementsAre(::testing::Pair("fake_rnn", 0.75)));
  EXPECT_DOUBLE_EQ(info.defaults().new_items().popularity_penalty(), 0.5);
  EXPECT_THAT(info.defaults().new_shoppers().weights(),
              ::testing::UnorderedElementsAre(::testing::Pair("fake_rnn", 0.125)));
  EXPECT_FALSE(info.defaults().new_shoppers().has_popularity_penalty());
  const v1::ValidationReport& v = info.validation();
  EXPECT_EQ(v.window_start().seconds(), 1000);
  EXPECT_EQ(v.window_end().seconds(), 2000);
  ASSERT_EQ(v.rows_size(), 2);
  EXPECT_EQ(v.rows(0).method(), "blend");
  EXPECT_EQ(v.rows(0).variant(), "new");
  EXPECT_DOUBLE_EQ(v.rows(0).ndcg_at_10(), 0.0625);
  EXPECT_EQ(v.rows(1).cases(), 40);
  EXPECT_THAT(v.notes(), ::testing::ElementsAre("fake_rnn: weight 0, not above recent_popular"));
  EXPECT_EQ(v.report_file(), "validation.md");

  auto has_penalty = [&](const v1::RecommendRequest& request) {
    v1::RecommendResponse response;
    grpc::Status status = (*server)->Recommend(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_GT(response.items_size(), 0);
    for (const v1::RecommendedItem& item : response.items()) {
      for (const v1::Attribution& a : item.attributions()) {
        if (a.feature() == "popularity") return true;
      }
    }
    return false;
  };
  v1::RecommendRequest request;
  request.add_history()->set_item_id("21A");
  EXPECT_TRUE(has_penalty(request));
  request.mutable_ranking()->set_popularity_penalty(0.0);
  EXPECT_FALSE(has_penalty(request));

  // A new shopper's request is ranked with the new-shopper weights.
  v1::RecommendRequest new_shopper;
  v1::RecommendResponse response;
  ASSERT_TRUE((*server)->Recommend(new_shopper, &response).ok());
  ASSERT_GT(response.items_size(), 0);
  std::vector<std::pair<std::string, double>> weights;
  for (const v1::SourceScore& s : response.items(0).sources()) {
    weights.emplace_back(s.source(), s.weight());
  }
  EXPECT_THAT(weights, ::testing::Contains(::testing::Pair("fake_rnn", 0.125)));
}

// A model that throws (a bug, or a library that throws where it should return a status) costs
// the request it runs for, not the process: the call gets INTERNAL with the exception's
// message, the worker survives, and the next call is answered.
TEST(ServerModelsTest, AModelThatThrowsFailsItsCallWithInternalAndTheNextCallWorks) {
  const std::string dir = testing::MakeFakeModelBundleDir({{"fake_rnn", 0.5, 1.0, 0.0}});
  ASSERT_FALSE(dir.empty());
  std::atomic<bool> throwing{false};
  testing::FakeModelOptions model;
  model.on_call = [&throwing]() -> absl::Status {
    if (throwing) throw std::runtime_error("fake_rnn: the model threw");
    return absl::OkStatus();
  };
  ServerOptions options = LoopbackOptions(dir);
  options.loader = testing::FakeModelLoader(model);
  options.workers = 1;  // The one worker must survive the throw to answer the next call.
  options.metrics_port = 0;
  absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  v1::RecommendRequest request;
  request.add_history()->set_item_id("21A");
  v1::RecommendResponse response;

  throwing = true;
  grpc::Status status = (*server)->Recommend(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("fake_rnn: the model threw"));

  throwing = false;
  status = (*server)->Recommend(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GT(response.items_size(), 0);
  absl::StatusOr<std::string> metrics = (*server)->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(testing::Sample(*metrics, "recsys_requests_total",
                              {"method=\"Recommend\"", "code=\"INTERNAL\""}),
              Optional(1.0));
}

}  // namespace
}  // namespace recsys::server
