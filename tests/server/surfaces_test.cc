// The server's other surfaces, through the real server on the Online Retail II bundle:
// GetModelInfo, grpc.health.v1 (Check and Watch through shutdown), reflection as grpcurl uses
// it, and the Prometheus /metrics endpoint scraped over HTTP.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/server.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using ::testing::Contains;
using ::testing::Gt;
using ::testing::HasSubstr;
using testing::kServerMaxHistory;
using ::testing::Optional;
using testing::RealCustomerRequest;
using testing::Retail;
using testing::Sample;

using SurfacesTest = testing::SharedServerTest;

TEST_F(SurfacesTest, GetModelInfoDescribesTheServedBundle) {
  v1::GetModelInfoResponse info;
  ASSERT_TRUE(server_->GetModelInfo(&info).ok());
  EXPECT_EQ(info.bundle_version(), Retail().version);
  // The catalogue the bundle holds (loaded independently of the server), all of it.
  ASSERT_GT(Retail().bundle->catalog().size(), 1000u);
  EXPECT_EQ(info.catalog_size(), Retail().bundle->catalog().size());
  EXPECT_EQ(info.limits().max_history(), kServerMaxHistory);
  EXPECT_EQ(info.cf_index().neighbors_per_item(), 100);
  ASSERT_EQ(info.sources_size(), 2);
  EXPECT_EQ(info.sources(0).name(), "cf");
  EXPECT_EQ(info.category_method(), "description-keywords-v1");
  EXPECT_THAT(info.categories(), Contains("kitchen & dining"));
  EXPECT_TRUE(std::is_sorted(info.categories().begin(), info.categories().end()));
  EXPECT_FALSE(info.has_validation());  // Built by recsys_build_bundle alone: not tuned.
}

TEST_F(SurfacesTest, HealthCheckSaysServingForTheServerAndTheService) {
  auto stub = grpc::health::v1::Health::NewStub(server_->channel());
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

TEST_F(SurfacesTest, ReflectionListsAndDescribesTheServices) {
  ReflectionClient client(server_->channel());
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

TEST_F(SurfacesTest, MetricsCountEachRequestByMethodAndCode) {
  const std::vector<std::string> ok_labels = {"method=\"Recommend\"", "code=\"OK\""};
  const std::vector<std::string> bad_labels = {"method=\"Recommend\"", "code=\"INVALID_ARGUMENT\""};
  const std::vector<std::string> all_labels = {"method=\"Recommend\""};
  absl::StatusOr<std::string> before = server_->ScrapeMetrics();
  ASSERT_TRUE(before.ok()) << before.status();
  const std::optional<double> ok_before = Sample(*before, "recsys_requests_total", ok_labels);
  const std::optional<double> bad_before = Sample(*before, "recsys_requests_total", bad_labels);
  const std::optional<double> count_before =
      Sample(*before, "recsys_request_duration_seconds_count", all_labels);
  ASSERT_TRUE(ok_before && bad_before && count_before) << *before;

  v1::RecommendResponse response;
  ASSERT_TRUE(Recommend(RealCustomerRequest(10), &response).ok());
  v1::RecommendRequest bad = RealCustomerRequest(10);
  bad.set_top_k(-1);
  ASSERT_FALSE(Recommend(bad, &response).ok());

  absl::StatusOr<std::string> after = server_->ScrapeMetrics();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(Sample(*after, "recsys_requests_total", ok_labels), Optional(*ok_before + 1));
  EXPECT_THAT(Sample(*after, "recsys_requests_total", bad_labels), Optional(*bad_before + 1));
  EXPECT_THAT(Sample(*after, "recsys_request_duration_seconds_count", all_labels),
              Optional(*count_before + 2));
  EXPECT_THAT(Sample(*after, "recsys_stage_duration_seconds_count", {"stage=\"rank\""}),
              Optional(Gt(0)));
  EXPECT_THAT(*after, HasSubstr("# TYPE recsys_request_duration_seconds histogram"));
  EXPECT_THAT(Sample(*after, "recsys_bundle_items"),
              Optional(static_cast<double>(Retail().bundle->catalog().size())));
}

TEST(ServerShutdownTest, HealthWatchSeesNotServingThenTheStreamEnds) {
  ASSERT_TRUE(Retail().status.ok()) << Retail().status;
  absl::StatusOr<std::unique_ptr<testing::TestServer>> server =
      testing::TestServer::Start(testing::LoopbackOptions(Retail().root));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::shared_ptr<grpc::Channel> channel = (*server)->channel();
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("recsys.v1.Recommender");
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader = stub->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  std::thread stopper([&] { (*server)->server().Shutdown(absl::Seconds(5)); });
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

}  // namespace
}  // namespace recsys::server
