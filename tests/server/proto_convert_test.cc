#include "server/proto_convert.h"

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::server {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

TEST(ProtoConvertTest, RequestFieldsReachTheDomainStruct) {
  v1::RecommendRequest p;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        request_id: "r1"
        history {
          item_id: "85123A"
          timestamp { seconds: 1291191960 }
          event_type: EVENT_TYPE_VIEW
          quantity: 6
          features { key: "z" value: 1 }
          features { key: "a" value: 2 }
        }
        history { item_id: "22423" }
        context {
          country: "France"
          numeric_features { key: "n" value: 3 }
        }
        top_k: 7
        exclude_item_ids: "x"
        candidate_item_ids: "c1"
        candidates_only: true
        explain {
          method: ATTRIBUTION_METHOD_OCCLUSION
          steps: 8
          max_attributions: 4
          include_source_attributions: true
        }
        fusion { weights { key: "cf" value: 0.5 } }
        filters { exclude_history: false max_price: 9.5 }
        ranking { popularity_penalty: 0.1 }
      )pb",
      &p));
  core::RecommendRequest r = ToDomain(p);
  EXPECT_EQ(r.request_id, "r1");
  ASSERT_EQ(r.history.size(), 2u);
  EXPECT_EQ(r.history[0].item_id, "85123A");
  EXPECT_EQ(r.history[0].timestamp, 1291191960);
  EXPECT_EQ(r.history[0].event_type, core::EventType::kView);
  EXPECT_EQ(r.history[0].quantity, 6.0);
  EXPECT_FALSE(r.history[0].price.has_value());
  EXPECT_THAT(r.history[0].features, ElementsAre(Pair("a", 2.0), Pair("z", 1.0)));  // Sorted.
  EXPECT_FALSE(r.history[1].timestamp.has_value());
  EXPECT_EQ(r.context.country, "France");
  EXPECT_FALSE(r.context.time.has_value());
  EXPECT_EQ(r.top_k, 7);
  EXPECT_THAT(r.exclude_item_ids, ElementsAre("x"));
  EXPECT_TRUE(r.candidates_only);
  EXPECT_EQ(r.explain.method, core::AttributionMethod::kOcclusion);
  EXPECT_EQ(r.explain.steps, 8);
  EXPECT_TRUE(r.explain.include_source_attributions);
  EXPECT_THAT(r.fusion_weights, ElementsAre(Pair("cf", 0.5)));
  EXPECT_EQ(r.exclude_history, false);  // Set to false, not unset.
  EXPECT_FALSE(r.min_price.has_value());
  EXPECT_EQ(r.max_price, 9.5);
  EXPECT_DOUBLE_EQ(r.popularity_penalty.value_or(-1), 0.1);
}

TEST(ProtoConvertTest, ResponseFieldsReachTheWire) {
  core::RecommendResponse r;
  r.request_id = "r1";
  core::RecommendedItem& item = r.items.emplace_back();
  item.item_id = "C";
  item.rank = 1;
  item.score = 0.75;
  item.reason = "because you bought ITEM A";
  item.info.description = "ITEM C";
  item.info.popularity = 12;
  core::SourceScore& s = item.sources.emplace_back();
  s.source = "cf";
  s.raw_score = 0.75;
  s.weight = 1.0;
  core::Attribution& a = item.attributions.emplace_back();
  a.feature = "history_item";
  a.kind = core::FeatureKind::kHistoryEvent;
  a.history_index = 3;
  a.item_id = "A";
  a.attribution = 0.5;
  r.metadata.bundle_version = "v1";
  r.metadata.attribution_method = core::AttributionMethod::kCfExact;
  r.metadata.filtered_counts = {{"history", 2}};
  r.metadata.ignored_history_item_ids = {"zzz"};
  r.metadata.stage_timings = {{"rank", 0.001}};

  v1::RecommendResponse p;
  ToProto(r, &p);
  EXPECT_EQ(p.request_id(), "r1");
  ASSERT_EQ(p.items_size(), 1);
  EXPECT_EQ(p.items(0).item_id(), "C");
  EXPECT_EQ(p.items(0).info().description(), "ITEM C");
  EXPECT_EQ(p.items(0).info().popularity(), 12);
  EXPECT_EQ(p.items(0).sources(0).source(), "cf");
  EXPECT_EQ(p.items(0).attributions(0).kind(), v1::FEATURE_KIND_HISTORY_EVENT);
  EXPECT_EQ(p.items(0).attributions(0).history_index(), 3);
  EXPECT_EQ(p.items(0).reason(), "because you bought ITEM A");
  EXPECT_EQ(p.metadata().attribution_method(), v1::ATTRIBUTION_METHOD_CF_EXACT);
  EXPECT_EQ(p.metadata().filtered_counts().at("history"), 2);
  EXPECT_EQ(p.metadata().ignored_history_item_ids(0), "zzz");
  EXPECT_EQ(p.metadata().stage_timings(0).stage(), "rank");
  EXPECT_FALSE(p.items(0).has_surrogate_r_squared());  // Only LIME sets it.
  EXPECT_FALSE(p.items(0).has_attribution_standard_error());  // Only KernelSHAP sets it.

  item.surrogate_r_squared = 0.0;  // A fit that explains nothing is still reported.
  r.metadata.attribution_method = core::AttributionMethod::kLime;
  v1::RecommendResponse lime;
  ToProto(r, &lime);
  ASSERT_TRUE(lime.items(0).has_surrogate_r_squared());
  EXPECT_EQ(lime.items(0).surrogate_r_squared(), 0.0);
  EXPECT_EQ(lime.metadata().attribution_method(), v1::ATTRIBUTION_METHOD_LIME);

  item.surrogate_r_squared.reset();
  item.attribution_standard_error = 0.0;  // Exact Shapley values: reported as 0, not left out.
  v1::RecommendResponse shap;
  ToProto(r, &shap);
  ASSERT_TRUE(shap.items(0).has_attribution_standard_error());
  EXPECT_EQ(shap.items(0).attribution_standard_error(), 0.0);
}

TEST(ProtoConvertTest, TheProfileAndEachItemsLinkToItReachTheWire) {
  core::RecommendResponse r;
  r.profile.entries = {{"candles", 0.7, {"A", "C"}}, {"bags", 0.2, {"B"}}};
  r.profile.price_low = 1.25;
  r.profile.price_median = 2.5;
  r.profile.price_high = 4.0;
  r.items.emplace_back().profile_entry = 1;
  r.items.emplace_back().profile_entry = -1;
  r.items.emplace_back().profile_entry = 0;

  v1::RecommendResponse p;
  ToProto(r, &p);
  const v1::InterestProfile& profile = p.profile();
  ASSERT_EQ(profile.entries_size(), 2);
  EXPECT_EQ(profile.entries(0).category(), "candles");
  EXPECT_EQ(profile.entries(0).share(), 0.7);
  EXPECT_THAT(profile.entries(0).item_ids(), ElementsAre("A", "C"));
  EXPECT_EQ(profile.entries(1).category(), "bags");
  EXPECT_EQ(profile.entries(1).share(), 0.2);
  EXPECT_THAT(profile.entries(1).item_ids(), ElementsAre("B"));
  EXPECT_EQ(profile.price_low(), 1.25);
  EXPECT_EQ(profile.price_median(), 2.5);
  EXPECT_EQ(profile.price_high(), 4.0);
  ASSERT_EQ(p.items_size(), 3);
  EXPECT_EQ(p.items(0).profile_entry(), 1);
  EXPECT_EQ(p.items(1).profile_entry(), -1);  // Not the proto default 0: no entry.
  EXPECT_EQ(p.items(2).profile_entry(), 0);
}

TEST(ProtoConvertTest, ModelInfoDescribesTheBundleAndTheLimits) {
  std::shared_ptr<const core::Bundle> bundle = testing::TinyBundle(0.5, 100, 2.0, 30.0);
  pipeline::PipelineOptions options;
  options.limits.max_history = 42;
  v1::GetModelInfoResponse p;
  ToModelInfo(*bundle, options, &p);
  EXPECT_EQ(p.bundle_version(), "v1");
  EXPECT_EQ(p.catalog_size(), 4);
  ASSERT_EQ(p.sources_size(), 2);
  EXPECT_EQ(p.sources(0).name(), "cf");
  EXPECT_EQ(p.limits().max_history(), 42);
  EXPECT_EQ(p.defaults().top_k(), 10);
  EXPECT_EQ(p.defaults().attribution_method(), v1::ATTRIBUTION_METHOD_REPLAY);
  EXPECT_DOUBLE_EQ(p.cf_index().recency_decay(), 0.5);
  EXPECT_DOUBLE_EQ(p.cf_index().shrinkage(), 1.0);
  EXPECT_DOUBLE_EQ(p.cf_index().self_similarity(), 2.0);
  EXPECT_DOUBLE_EQ(p.cf_index().self_half_life_days(), 30.0);
}

TEST(ProtoConvertTest, StatusCodesMapOneToOne) {
  grpc::Status s = ToGrpcStatus(absl::InvalidArgumentError("top_k: bad"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "top_k: bad");
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace recsys::server
