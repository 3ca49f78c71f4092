#include "pipeline/request_validator.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys::pipeline {
namespace {

using ::testing::HasSubstr;

core::RecommendRequest Valid() {
  core::RecommendRequest r;
  r.history.emplace_back().item_id = "85123A";
  r.history.emplace_back().item_id = "22423";
  return r;
}

// Expects INVALID_ARGUMENT whose message contains `message`.
void ExpectInvalid(const core::RecommendRequest& r, const std::string& message,
                   const RequestLimits& limits = {}) {
  absl::Status s = ValidateRequest(r, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr(message));
}

TEST(ValidateRequestTest, AcceptsAPlainRequest) {
  EXPECT_TRUE(ValidateRequest(Valid(), {}).ok());
  EXPECT_TRUE(ValidateRequest(core::RecommendRequest(), {}).ok());  // New shopper.
}

TEST(ValidateRequestTest, NamesTheFieldAndTheLimit) {
  core::RecommendRequest r = Valid();
  r.history[1].item_id = "";
  ExpectInvalid(r, "history[1].item_id: empty");

  r = Valid();
  r.top_k = -1;
  ExpectInvalid(r, "top_k: -1 is negative");
  r.top_k = 5000;
  ExpectInvalid(r, "top_k: 5000 exceeds the limit of 100");

  r = Valid();
  RequestLimits limits;
  limits.max_history = 1;
  ExpectInvalid(r, "history: 2 entries exceed the limit of 1", limits);

  r = Valid();
  r.history[0].item_id = std::string(65, 'x');
  ExpectInvalid(r, "history[0].item_id: 65 bytes exceed the limit of 64");

  r = Valid();
  r.history[0].quantity = std::nan("");
  ExpectInvalid(r, "history[0].quantity: must be finite");
  r.history[0].quantity = -2;
  ExpectInvalid(r, "history[0].quantity: -2 is negative");

  r = Valid();
  r.history[0].features = {{"gap_days", std::numeric_limits<double>::infinity()}};
  ExpectInvalid(r, "history[0].features[\"gap_days\"]: must be finite");

  r = Valid();
  r.exclude_item_ids = {"a", ""};
  ExpectInvalid(r, "exclude_item_ids[1]: empty");

  r = Valid();
  r.candidates_only = true;
  ExpectInvalid(r, "candidate_item_ids: empty, but candidates_only is set");

  r = Valid();
  r.explain.steps = 100000;
  ExpectInvalid(r, "explain.steps: 100000 exceeds the limit of 256");

  r = Valid();
  r.fusion_weights = {{"cf", -1}};
  ExpectInvalid(r, "fusion.weights[\"cf\"]: -1 is negative");

  r = Valid();
  r.min_price = 5;
  r.max_price = 1;
  ExpectInvalid(r, "filters.min_price: 5 exceeds filters.max_price 1");

  r = Valid();
  r.mmr_lambda = 1.5;
  ExpectInvalid(r, "diversity.mmr_lambda: 1.5 is not in [0, 1]");

  r = Valid();
  r.popularity_penalty = std::nan("");
  ExpectInvalid(r, "ranking.popularity_penalty: must be finite");

  // Finite but huge numbers would overflow downstream (found by the fuzzer: a penalty of
  // 1.8e308 made every score -inf).
  r = Valid();
  r.popularity_penalty = 1.7e308;
  ExpectInvalid(r, "ranking.popularity_penalty: 1.7e+308 exceeds the limit of 1e9 in magnitude");
  r = Valid();
  r.fusion_weights = {{"cf", 1e12}};
  ExpectInvalid(r, "fusion.weights[\"cf\"]: 1e+12 exceeds the limit of 1e9 in magnitude");
  r = Valid();
  r.context.time = -5;
  ExpectInvalid(r, "context.time: -5 is not a time between 1970 and 9999");
  r = Valid();
  r.history[0].timestamp = int64_t{1} << 62;
  ExpectInvalid(r, "history[0].timestamp: 4611686018427387904 is not a time between 1970 and 9999");

  r = Valid();
  r.request_id = std::string(200, 'r');
  ExpectInvalid(r, "request_id: 200 bytes exceed the limit of 128");
}

}  // namespace
}  // namespace recsys::pipeline
