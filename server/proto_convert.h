#ifndef RECSYS_SERVER_PROTO_CONVERT_H_
#define RECSYS_SERVER_PROTO_CONVERT_H_

// The one place where wire messages and domain structs meet.

#include "absl/status/status.h"
#include "core/bundle.h"
#include "core/types.h"
#include "grpcpp/support/status.h"
#include "pipeline/recommend_pipeline.h"
#include "recsys/v1/recommender.pb.h"
#include "server/feedback.h"

namespace recsys::server {

// Copies the request into domain form. Map fields become vectors sorted by key, so that the
// result does not depend on map iteration order. Never fails: checks are ValidateRequest's job.
core::RecommendRequest ToDomain(const v1::RecommendRequest& proto);

void ToProto(const core::RecommendResponse& response, v1::RecommendResponse* proto);

// Describes `bundle` as served with `options`.
void ToModelInfo(const core::Bundle& bundle, const pipeline::PipelineOptions& options,
                 v1::GetModelInfoResponse* proto);

v1::AttributionMethod ToProto(core::AttributionMethod method);
core::AttributionMethod ToDomain(v1::AttributionMethod method);

// The Feedback call in domain form; the event keeps its number (ValidateFeedback refuses
// unknown ones). Never fails.
FeedbackRequest ToDomain(const v1::FeedbackRequest& proto);
void ToProto(const FeedbackResult& result, v1::FeedbackResponse* proto);

// absl::Status -> grpc::Status, code for code, message kept.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace recsys::server

#endif  // RECSYS_SERVER_PROTO_CONVERT_H_
