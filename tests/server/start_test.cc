// RecsysServer::Start: bad options are refused before anything loads, naming the option; a
// missing bundle is a clear error; an address another server listens on is refused.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/server.h"
#include "tests/testutil/fake_model.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ServerStartTest, AMissingBundleIsAClearStartUpError) {
  ServerOptions options = testing::LoopbackOptions(testing::MakeTempDir("empty_root"));
  absl::Status s = RecsysServer::Start(options).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("no manifest.json"));
}

struct BadOption {
  const char* name;
  std::function<void(ServerOptions*)> mutate;
  const char* field;  // The message starts with it.
};

std::vector<BadOption> BadOptions() {
  return {
      {"no bundle", [](ServerOptions* o) { o->bundle_path.clear(); }, "bundle_path"},
      {"no worker", [](ServerOptions* o) { o->workers = 0; }, "workers"},
      {"negative queue", [](ServerOptions* o) { o->queue_capacity = -1; }, "queue_capacity"},
      {"no message size", [](ServerOptions* o) { o->max_receive_message_bytes = 0; },
       "max_receive_message_bytes"},
      {"top_k 0", [](ServerOptions* o) { o->pipeline.default_top_k = 0; }, "default_top_k"},
      {"top_k over the limit",
       [](ServerOptions* o) { o->pipeline.default_top_k = o->pipeline.limits.max_top_k + 1; },
       "default_top_k"},
      {"no attributions", [](ServerOptions* o) { o->pipeline.default_max_attributions = 0; },
       "default_max_attributions"},
      {"ig steps 0", [](ServerOptions* o) { o->pipeline.default_ig_steps = 0; },
       "default_ig_steps"},
      {"ig steps over the limit",
       [](ServerOptions* o) { o->pipeline.default_ig_steps = o->pipeline.limits.max_steps + 1; },
       "default_ig_steps"},
      {"one shap sample", [](ServerOptions* o) { o->pipeline.default_shap_samples = 1; },
       "default_shap_samples"},
      {"reason share above 1", [](ServerOptions* o) { o->pipeline.reason_min_share = 1.5; },
       "reason_min_share"},
      {"negative reason share", [](ServerOptions* o) { o->pipeline.reason_min_share = -0.1; },
       "reason_min_share"},
      {"shap samples over the limit",
       [](ServerOptions* o) {
         o->pipeline.default_shap_samples = o->pipeline.limits.max_samples + 1;
       },
       "default_shap_samples"},
      {"one coalition allowed", [](ServerOptions* o) { o->pipeline.limits.max_samples = 1; },
       "max_samples"},
      {"no method",
       [](ServerOptions* o) { o->pipeline.default_method = core::AttributionMethod::kDefault; },
       "default_method"},
      {"certificate without key", [](ServerOptions* o) { o->tls_cert_file = "server.pem"; },
       "tls_cert_file, tls_key_file"},
      {"key without certificate", [](ServerOptions* o) { o->tls_key_file = "server.key"; },
       "tls_cert_file, tls_key_file"},
      {"client CA without certificate", [](ServerOptions* o) { o->tls_client_ca_file = "ca.pem"; },
       "tls_client_ca_file"},
  };
}

TEST(ServerStartTest, EachBadOptionIsInvalidArgumentNamingIt) {
  const ServerOptions good = testing::LoopbackOptions("/some/bundle");
  EXPECT_TRUE(ValidateServerOptions(good).ok()) << ValidateServerOptions(good);
  for (const BadOption& bad : BadOptions()) {
    SCOPED_TRACE(bad.name);
    ServerOptions options = good;
    bad.mutate(&options);
    absl::Status s = ValidateServerOptions(options);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), StartsWith(std::string(bad.field) + ":"));
  }
  // The limits themselves are valid choices.
  ServerOptions edge = good;
  edge.queue_capacity = 0;
  edge.pipeline.default_top_k = edge.pipeline.limits.max_top_k;
  edge.pipeline.default_ig_steps = edge.pipeline.limits.max_steps;
  edge.pipeline.default_shap_samples = 2;
  edge.pipeline.reason_min_share = 1.0;
  EXPECT_TRUE(ValidateServerOptions(edge).ok()) << ValidateServerOptions(edge);
}

// Start checks the options first: a bad one is refused with the same error before the bundle
// or its models are loaded.
TEST(ServerStartTest, StartRefusesBadOptionsBeforeLoadingAnything) {
  const std::string dir = testing::MakeFakeModelBundleDir({{"fake_rnn", 0.5, 1.0, 0.0}});
  ASSERT_FALSE(dir.empty());
  int loads = 0;
  const core::ModelLoader fake = testing::FakeModelLoader();
  ServerOptions good = testing::LoopbackOptions(dir);
  good.loader = [&loads, fake](const std::string& file, const core::ModelSpec& spec,
                               const core::ModelShape& shape) {
    ++loads;
    return fake(file, spec, shape);
  };
  {
    absl::StatusOr<std::unique_ptr<RecsysServer>> server = RecsysServer::Start(good);
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_EQ(loads, 1);  // The loader counts: this bundle's one model.
  }
  for (const BadOption& bad : BadOptions()) {
    SCOPED_TRACE(bad.name);
    ServerOptions options = good;
    bad.mutate(&options);
    loads = 0;
    absl::Status s = RecsysServer::Start(options).status();
    EXPECT_EQ(s, ValidateServerOptions(options));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(loads, 0);
  }
}

// SO_REUSEPORT is off: a second server on the address the first one listens on would otherwise
// start and silently take a share of its calls.
TEST(ServerStartTest, ASecondServerOnTheSameAddressIsUnavailableAndTheFirstKeepsServing) {
  const testing::TestServer* first = testing::SharedRetailServer();
  ASSERT_NE(first, nullptr);
  ServerOptions options = testing::LoopbackOptions(testing::Retail().root);
  options.address = first->address();
  absl::StatusOr<std::unique_ptr<RecsysServer>> second = RecsysServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(first->address()));
  v1::RecommendResponse response;
  for (int i = 0; i < 3; ++i) {
    grpc::Status status = first->Recommend(testing::RealCustomerRequest(5), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
}

}  // namespace
}  // namespace recsys::server
