#include "server/recommender_service.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/proto_convert.h"

namespace recsys::server {

namespace {

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// Parses the request bytes. False when they are not a `Message`.
template <typename Message>
bool ParseRequest(const grpc::ByteBuffer& buffer, Message* request) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  bytes.reserve(buffer.Length());
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return request->ParseFromString(bytes);
}

}  // namespace

grpc::ServerUnaryReactor* RecommenderService::Recommend(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request_bytes,
                                                        grpc::ByteBuffer* response_bytes) {
  const absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  metrics_->recommend_in_flight.Increment();
  // Called exactly once per call. The in-flight gauge drops before the answer goes out, so a
  // caller that has its answer never sees its call still counted.
  auto finish = [this, reactor, start](const grpc::Status& status) {
    metrics_->RecordRpc(Rpc::kRecommend, status.error_code(),
                        absl::ToDoubleSeconds(absl::Now() - start));
    metrics_->recommend_in_flight.Decrement();
    reactor->Finish(status);
  };
  auto request = std::make_shared<v1::RecommendRequest>();
  if (!ParseRequest(*request_bytes, request.get())) {
    finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "request: the bytes are not a recsys.v1.RecommendRequest (malformed "
                        "protobuf, or a string field that is not valid UTF-8)"));
    return reactor;
  }
  std::shared_ptr<const core::Bundle> bundle = bundles_->Get();
  if (bundle == nullptr) {
    finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no model bundle loaded yet"));
    return reactor;
  }
  const bool accepted = pool_->TrySubmit(
      [this, context, request, response_bytes, bundle, finish] {
        metrics_->queue_depth.Set(pool_->queue_depth());
        const absl::Time deadline = DeadlineOf(*context);
        if (context->IsCancelled()) {
          metrics_->dropped_total.Increment();
          finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled before work started"));
          return;
        }
        if (absl::Now() >= deadline) {
          metrics_->dropped_total.Increment();
          finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                              "deadline passed while the request was queued"));
          return;
        }
        absl::StatusOr<core::RecommendResponse> result =
            pipeline_->Run(ToDomain(*request), *bundle, deadline, pool_->load());
        if (!result.ok()) {
          finish(ToGrpcStatus(result.status()));
          return;
        }
        metrics_->RecordStages(result->metadata.stage_timings);
        v1::RecommendResponse response;
        ToProto(*result, &response);
        // Before the response goes out: a Feedback call about it then finds it logged.
        LogServed(*result);
        bool own_buffer;
        finish(grpc::SerializationTraits<v1::RecommendResponse>::Serialize(response, response_bytes,
                                                                           &own_buffer));
      },
      [finish](const std::string& what) {
        finish(grpc::Status(grpc::StatusCode::INTERNAL, absl::StrCat("internal error: ", what)));
      });
  metrics_->queue_depth.Set(pool_->queue_depth());
  if (!accepted) {
    metrics_->rejected_total.Increment();
    finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "server overloaded: the request queue is full, retry with backoff"));
  }
  return reactor;
}

void RecommenderService::LogServed(const core::RecommendResponse& response) {
  if (feedback_log_ == nullptr || !ShouldLogServed(response.request_id, served_log_sample_)) {
    return;
  }
  feedback_log_->AppendServed(ServedRecordOf(response, absl::Now()));
  metrics_->served_logged.Increment();
}

grpc::ServerUnaryReactor* RecommenderService::Feedback(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request_bytes,
                                                       grpc::ByteBuffer* response_bytes) {
  const absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto finish = [this, reactor, start](const grpc::Status& status) {
    metrics_->RecordRpc(Rpc::kFeedback, status.error_code(),
                        absl::ToDoubleSeconds(absl::Now() - start));
    reactor->Finish(status);
  };
  if (feedback_log_ == nullptr) {
    finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "Feedback is not enabled on this server: it has no feedback log "
                        "(--feedback_log_dir)"));
    return reactor;
  }
  v1::FeedbackRequest request;
  if (!ParseRequest(*request_bytes, &request)) {
    finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "request: the bytes are not a recsys.v1.FeedbackRequest (malformed "
                        "protobuf, or a string field that is not valid UTF-8)"));
    return reactor;
  }
  FeedbackRequest feedback = ToDomain(request);
  if (absl::Status valid = ValidateFeedback(feedback, pipeline_->options().limits); !valid.ok()) {
    finish(ToGrpcStatus(valid));
    return reactor;
  }
  // Finished on the log's writer thread once the events are on disk.
  feedback_log_->Append(std::move(feedback),
                        [this, finish, response_bytes](absl::StatusOr<FeedbackResult> result) {
                          if (!result.ok()) {
                            finish(ToGrpcStatus(result.status()));
                            return;
                          }
                          metrics_->RecordFeedback(*result);
                          v1::FeedbackResponse response;
                          ToProto(*result, &response);
                          bool own_buffer;
                          finish(grpc::SerializationTraits<v1::FeedbackResponse>::Serialize(
                              response, response_bytes, &own_buffer));
                        });
  return reactor;
}

grpc::ServerUnaryReactor* RecommenderService::GetModelInfo(grpc::CallbackServerContext* context,
                                                           const v1::GetModelInfoRequest*,
                                                           v1::GetModelInfoResponse* response) {
  const absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  grpc::Status status;
  if (std::shared_ptr<const core::Bundle> bundle = bundles_->Get()) {
    ToModelInfo(*bundle, pipeline_->options(), response);
  } else {
    status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "no model bundle loaded yet");
  }
  metrics_->RecordRpc(Rpc::kGetModelInfo, status.error_code(),
                      absl::ToDoubleSeconds(absl::Now() - start));
  reactor->Finish(status);
  return reactor;
}

}  // namespace recsys::server
