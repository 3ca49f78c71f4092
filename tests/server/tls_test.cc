// TLS and mutual TLS on the gRPC listener of the real server, with a CA and certificates made
// by openssl for the test.
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "server/server.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/server_fixtures.h"

namespace recsys::server {
namespace {

using ::testing::HasSubstr;

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
  ASSERT_TRUE(testing::Retail().status.ok()) << testing::Retail().status;
  const TestPki pki = MakePki();
  ASSERT_FALSE(pki.server_cert.empty());
  ServerOptions options = testing::LoopbackOptions(testing::Retail().root);
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

}  // namespace
}  // namespace recsys::server
