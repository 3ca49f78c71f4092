#include "tests/testutil/server_fixtures.h"

#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/bundle_builder.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/testutil/fake_model.h"
#include "tests/testutil/fixtures.h"

namespace recsys::testing {

namespace {

RetailFixture* BuildRetail() {
  auto* r = new RetailFixture();
  r->root = MakeTempDir("server_bundles");
  r->version = "20240101T000000Z";
  core::BundleBuildOptions options;
  options.input = SmallRetailCsvPath();
  options.out_root = r->root;
  options.version = r->version;
  absl::StatusOr<core::BundleBuildResult> built = core::BuildCfBundle(options);
  if (!built.ok()) {
    r->status = built.status();
    return r;
  }
  absl::StatusOr<std::shared_ptr<const core::Bundle>> bundle = core::Bundle::Load(built->dir);
  if (!bundle.ok()) {
    r->status = bundle.status();
    return r;
  }
  r->bundle = *std::move(bundle);
  absl::StatusOr<core::RetailData> data = core::ReadRetailCsv(options.input, {});
  if (!data.ok()) {
    r->status = data.status();
    return r;
  }
  r->data = *std::move(data);
  return r;
}

// Owns the shared server; gtest calls TearDown after the last test, so the server shuts down
// while gRPC is still alive (not in a static destructor at exit).
class SharedServerEnvironment : public ::testing::Environment {
 public:
  const TestServer* Get() {
    absl::MutexLock lock(&mu_);
    if (!started_) {
      started_ = true;
      const RetailFixture& retail = Retail();
      if (!retail.status.ok()) {
        status_ = retail.status;
      } else {
        server::ServerOptions options = LoopbackOptions(retail.root);
        options.metrics_port = 0;
        options.pipeline.limits.max_history = kServerMaxHistory;
        absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start(options);
        if (server.ok()) {
          server_ = *std::move(server);
        } else {
          status_ = server.status();
        }
      }
    }
    if (server_ == nullptr) ADD_FAILURE() << "the shared server did not start: " << status_;
    return server_.get();
  }

  void TearDown() override {
    absl::MutexLock lock(&mu_);
    server_.reset();
  }

 private:
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<TestServer> server_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

const RetailFixture& Retail() {
  static const RetailFixture* const retail = BuildRetail();
  return *retail;
}

v1::RecommendRequest RealCustomerRequest(size_t n) {
  const RetailFixture& retail = Retail();
  for (const core::CustomerHistory& c : retail.data.customers) {
    if (c.purchases.size() < n) continue;
    v1::RecommendRequest request;
    request.set_request_id("customer-" + c.customer_id);
    for (size_t i = c.purchases.size() - n; i < c.purchases.size(); ++i) {
      const core::Purchase& p = c.purchases[i];
      v1::HistoryEvent* e = request.add_history();
      e->set_item_id(retail.bundle->catalog().item(p.item).id);
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

server::ServerOptions LoopbackOptions(const std::string& bundle_path) {
  server::ServerOptions options;
  options.address = "127.0.0.1:0";
  options.metrics_port = -1;
  options.bundle_path = bundle_path;
  return options;
}

TestServer::TestServer(std::unique_ptr<server::RecsysServer> server)
    : server_(std::move(server)),
      channel_(grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials())) {}

absl::StatusOr<std::unique_ptr<TestServer>> TestServer::Start(
    const server::ServerOptions& options) {
  absl::StatusOr<std::unique_ptr<server::RecsysServer>> server =
      server::RecsysServer::Start(options);
  if (!server.ok()) return server.status();
  return std::unique_ptr<TestServer>(new TestServer(*std::move(server)));
}

std::string TestServer::address() const { return absl::StrCat("127.0.0.1:", server_->port()); }

grpc::Status TestServer::Recommend(const v1::RecommendRequest& request,
                                   v1::RecommendResponse* response, absl::Duration timeout) const {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return v1::Recommender::NewStub(channel_)->Recommend(&context, request, response);
}

grpc::Status TestServer::GetModelInfo(v1::GetModelInfoResponse* info) const {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return v1::Recommender::NewStub(channel_)->GetModelInfo(&context, {}, info);
}

absl::StatusOr<std::string> TestServer::ScrapeMetrics() const {
  if (server_->metrics_port() < 0) {
    return absl::FailedPreconditionError("this server has no /metrics endpoint");
  }
  httplib::Client client("127.0.0.1", server_->metrics_port());
  httplib::Result result = client.Get("/metrics");
  if (!result) {
    return absl::UnavailableError(
        absl::StrCat("GET /metrics failed: ", httplib::to_string(result.error())));
  }
  if (result->status != 200) {
    return absl::UnavailableError(absl::StrCat("GET /metrics answered ", result->status));
  }
  return result->body;
}

const TestServer* SharedRetailServer() {
  // gtest owns the environment; one registered lazily still gets its TearDown at the end.
  static SharedServerEnvironment* const environment = static_cast<SharedServerEnvironment*>(
      ::testing::AddGlobalTestEnvironment(new SharedServerEnvironment()));
  return environment->Get();
}

std::optional<double> Sample(const std::string& exposition, const std::string& name,
                             const std::vector<std::string>& labels) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, name) || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;
    bool all = true;
    for (const std::string& label : labels) all = all && absl::StrContains(line, label);
    double value;
    if (all && absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) return value;
  }
  return std::nullopt;
}

std::string MakeFakeModelBundleDir(const std::vector<core::SourceSpec>& models) {
  const std::string root = MakeTempDir("fake_model_bundle");
  const std::string csv = root + "/tiny.csv";
  WriteFile(csv, TinyRetailCsv());
  core::BundleBuildOptions options;
  options.input = csv;
  options.out_root = root;
  options.version = "v1";
  options.cutoff_time = *core::ParseDateTime("2010-02-01");
  absl::StatusOr<core::BundleBuildResult> built = core::BuildCfBundle(options);
  if (!built.ok()) {
    ADD_FAILURE() << built.status();
    return "";
  }
  absl::Status added =
      AddModelSources(built->dir, models, /*max_history=*/5, {"United Kingdom", "France"});
  if (!added.ok()) {
    ADD_FAILURE() << added;
    return "";
  }
  return built->dir;
}

std::function<absl::Status()> ModelGate::Hook() {
  return [this] { return Enter(); };
}

absl::Status ModelGate::Enter() {
  absl::MutexLock lock(&mu_);
  ++calls_;
  if (closed_) {
    ++held_;
    mu_.Await(absl::Condition(
        +[](bool* closed) { return !*closed; }, &closed_));
    --held_;
  }
  return absl::OkStatus();
}

void ModelGate::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

void ModelGate::Open() {
  absl::MutexLock lock(&mu_);
  closed_ = false;
}

bool ModelGate::AwaitHeld(int n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  struct Args {
    const int* held;
    int n;
  } args{&held_, n};
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Args* a) { return *a->held >= a->n; }, &args),
                              timeout);
}

int ModelGate::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

bool Eventually(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace recsys::testing
