#include "server/metrics.h"

#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "prometheus/text_serializer.h"

namespace recsys::server {

namespace {

const char* const kRpcNames[kNumRpcs] = {"Recommend", "GetModelInfo", "Feedback"};
const char* const kCodeNames[kNumCodes] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};
const char* const kStages[] = {"validate", "rank", "explain"};

// From 50 us to 10 s: sub-millisecond requests and slow outliers both land in a bucket.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0};
}

}  // namespace

ServiceMetrics::ServiceMetrics(prometheus::Registry& registry)
    : reloads_family_(prometheus::BuildCounter()
                          .Name("recsys_bundle_reloads_total")
                          .Help("New bundle versions found in the bundle root, by outcome: "
                                "loaded (now serving) or rejected (the old version kept serving)")
                          .Register(registry)),
      queue_depth(prometheus::BuildGauge()
                      .Name("recsys_queue_depth")
                      .Help("Requests waiting for a worker thread")
                      .Register(registry)
                      .Add({})),
      recommend_in_flight(prometheus::BuildGauge()
                              .Name("recsys_recommend_in_flight")
                              .Help("Recommend calls received and not yet answered (running, "
                                    "queued, or being refused); after SIGTERM they get "
                                    "--shutdown_grace to finish")
                              .Register(registry)
                              .Add({})),
      rejected_total(
          prometheus::BuildCounter()
              .Name("recsys_rejected_total")
              .Help("Requests refused with RESOURCE_EXHAUSTED because the queue was full")
              .Register(registry)
              .Add({})),
      dropped_total(prometheus::BuildCounter()
                        .Name("recsys_dropped_total")
                        .Help("Requests dropped before work because their deadline passed or "
                              "they were cancelled")
                        .Register(registry)
                        .Add({})),
      bundle_items(prometheus::BuildGauge()
                       .Name("recsys_bundle_items")
                       .Help("Items in the catalogue of the bundle being served")
                       .Register(registry)
                       .Add({})),
      bundle_loaded_unix(prometheus::BuildGauge()
                             .Name("recsys_bundle_loaded_timestamp_seconds")
                             .Help("When the bundle being served was loaded (Unix time)")
                             .Register(registry)
                             .Add({})),
      bundle_reloads(reloads_family_.Add({{"result", "loaded"}})),
      bundle_rejections(reloads_family_.Add({{"result", "rejected"}})),
      served_logged(prometheus::BuildCounter()
                        .Name("recsys_served_logged_total")
                        .Help("Recommend responses logged as served records to the feedback log "
                              "(sampled by --served_log_sample)")
                        .Register(registry)
                        .Add({})),
      feedback_duplicates_(prometheus::BuildCounter()
                               .Name("recsys_feedback_duplicates_total")
                               .Help("Feedback events already in the log (a retried call), not "
                                     "stored again")
                               .Register(registry)
                               .Add({})),
      feedback_log_errors_(prometheus::BuildCounter()
                               .Name("recsys_feedback_log_errors_total")
                               .Help("Feedback log writes, fdatasyncs or rotations that failed "
                                     "(their calls answered UNAVAILABLE)")
                               .Register(registry)
                               .Add({})),
      feedback_log_rotations_(prometheus::BuildCounter()
                                  .Name("recsys_feedback_log_rotations_total")
                                  .Help("Feedback log files rotated by size")
                                  .Register(registry)
                                  .Add({})),
      feedback_log_sync_(prometheus::BuildHistogram()
                             .Name("recsys_feedback_log_sync_duration_seconds")
                             .Help("Time of one group commit of the feedback log: write and "
                                   "fdatasync of the events of every call waiting")
                             .Register(registry)
                             .Add({}, LatencyBuckets())) {
  auto& events = prometheus::BuildCounter()
                     .Name("recsys_feedback_events_total")
                     .Help("Feedback events stored in the log, by event")
                     .Register(registry);
  for (int e = 1; e < kNumFeedbackEvents; ++e) {
    feedback_events_[e] =
        &events.Add({{"event", FeedbackEventName(static_cast<FeedbackEvent>(e))}});
  }
  auto& requests = prometheus::BuildCounter()
                       .Name("recsys_requests_total")
                       .Help("Finished RPCs by method and gRPC status code")
                       .Register(registry);
  auto& latency = prometheus::BuildHistogram()
                      .Name("recsys_request_duration_seconds")
                      .Help("RPC latency from receipt to response, by method")
                      .Register(registry);
  for (int r = 0; r < kNumRpcs; ++r) {
    for (int c = 0; c < kNumCodes; ++c) {
      requests_[r][c] = &requests.Add({{"method", kRpcNames[r]}, {"code", kCodeNames[c]}});
    }
    latency_[r] = &latency.Add({{"method", kRpcNames[r]}}, LatencyBuckets());
  }
  auto& stages = prometheus::BuildHistogram()
                     .Name("recsys_stage_duration_seconds")
                     .Help("Time spent in each stage of Recommend")
                     .Register(registry);
  for (const char* stage : kStages) {
    stages_.emplace_back(stage, &stages.Add({{"stage", stage}}, LatencyBuckets()));
  }
}

void ServiceMetrics::RecordRpc(Rpc rpc, grpc::StatusCode code, double seconds) {
  const int r = static_cast<int>(rpc);
  const int c = static_cast<int>(code);
  requests_[r][c >= 0 && c < kNumCodes ? c : grpc::StatusCode::UNKNOWN]->Increment();
  latency_[r]->Observe(seconds);
}

void ServiceMetrics::RecordStages(const std::vector<core::StageTiming>& timings) {
  for (const core::StageTiming& t : timings) {
    for (auto& [name, histogram] : stages_) {
      if (name == t.stage) histogram->Observe(t.seconds);
    }
  }
}

void ServiceMetrics::RecordFeedback(const FeedbackResult& result) {
  for (int e = 1; e < kNumFeedbackEvents; ++e) {
    if (result.accepted_by_event[e] > 0)
      feedback_events_[e]->Increment(result.accepted_by_event[e]);
  }
  if (result.duplicates > 0) feedback_duplicates_.Increment(result.duplicates);
}

void ServiceMetrics::RecordFeedbackCommit(const FeedbackLogCommit& commit) {
  if (!commit.ok) feedback_log_errors_.Increment();
  if (commit.rotated) feedback_log_rotations_.Increment();
  if (commit.synced) feedback_log_sync_.Observe(commit.seconds);
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& host, int port, std::shared_ptr<prometheus::Registry> registry) {
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  endpoint->registry_ = std::move(registry);
  endpoint->http_ = std::make_unique<httplib::Server>();
  prometheus::Registry* reg = endpoint->registry_.get();
  endpoint->http_->Get("/metrics", [reg](const httplib::Request&, httplib::Response& res) {
    res.set_content(prometheus::TextSerializer().Serialize(reg->Collect()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  endpoint->http_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("recsys metrics: see /metrics\n", "text/plain");
  });
  if (port == 0) {
    endpoint->port_ = endpoint->http_->bind_to_any_port(host);
  } else if (endpoint->http_->bind_to_port(host, port)) {
    endpoint->port_ = port;
  } else {
    endpoint->port_ = -1;
  }
  if (endpoint->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics endpoint: cannot listen on ", host, ":", port));
  }
  httplib::Server* http = endpoint->http_.get();
  endpoint->thread_ = std::thread([http] { http->listen_after_bind(); });
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() {
  http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace recsys::server
