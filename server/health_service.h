#ifndef RECSYS_SERVER_HEALTH_SERVICE_H_
#define RECSYS_SERVER_HEALTH_SERVICE_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace recsys::server {

// grpc.health.v1.Health (Check and Watch) built from the compiled health.proto, so that its
// descriptor is registered and grpcurl can describe and call it. gRPC's built-in health
// service registers none.
//
// Known services start NOT_SERVING; the server sets SERVING once the bundle is loaded and
// warmed up. Check of an unknown service is NOT_FOUND; Watch of one streams SERVICE_UNKNOWN
// until it becomes known. Thread-safe.
class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  HealthService();
  ~HealthService() override;

  // Sets the status of `service` ("" is the whole server) and notifies its watchers.
  void SetStatus(const std::string& service, ServingStatus status);

  // Sets every service NOT_SERVING, sends that to the watchers and ends their streams; later
  // SetStatus calls are ignored. Call before shutting the gRPC server down.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class Watcher;
  friend class Watcher;

  ServingStatus StatusLocked(const std::string& service) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unregister(Watcher* watcher);

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, ServingStatus> statuses_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar no_watchers_;
};

}  // namespace recsys::server

#endif  // RECSYS_SERVER_HEALTH_SERVICE_H_
