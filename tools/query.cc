// A small JSON client for the service, for machines without grpcurl:
//
//   recsys_query --method=Recommend < docs/examples/recommend_request.json
//   recsys_query --method=GetModelInfo
//
// Reads the request as protobuf JSON from stdin (GetModelInfo takes none), prints the response
// as JSON. Exits 1 with the gRPC status code and message when the call fails.
#include <iostream>
#include <iterator>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "recsys/v1/recommender.grpc.pb.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "Server address");
ABSL_FLAG(std::string, method, "Recommend", "Recommend or GetModelInfo");
ABSL_FLAG(int, timeout_ms, 5000, "Call deadline");

namespace {

int Print(const grpc::Status& status, const google::protobuf::Message& response) {
  if (!status.ok()) {
    std::cerr << "error: code " << status.error_code() << ": " << status.error_message() << "\n";
    return 1;
  }
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(response, &json, options);
  std::cout << json;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("JSON client for recsys.v1.Recommender.");
  absl::ParseCommandLine(argc, argv);
  auto stub = recsys::v1::Recommender::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_address), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(absl::GetFlag(FLAGS_timeout_ms)));
  const std::string method = absl::GetFlag(FLAGS_method);
  if (method == "GetModelInfo") {
    recsys::v1::GetModelInfoResponse response;
    return Print(stub->GetModelInfo(&context, {}, &response), response);
  }
  if (method != "Recommend") {
    std::cerr << "error: --method must be Recommend or GetModelInfo\n";
    return 2;
  }
  const std::string json((std::istreambuf_iterator<char>(std::cin)), {});
  recsys::v1::RecommendRequest request;
  if (auto s = google::protobuf::util::JsonStringToMessage(json, &request); !s.ok()) {
    std::cerr << "error: request JSON: " << s.ToString() << "\n";
    return 2;
  }
  recsys::v1::RecommendResponse response;
  return Print(stub->Recommend(&context, request, &response), response);
}
