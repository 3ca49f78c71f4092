// Fuzzes the request path below gRPC: arbitrary requests (ids, numbers including NaN and
// infinities, options in and out of range) go through validation, ranking and every
// attribution method on a small real bundle with a fake model source. A request either fails
// validation or ranking with a status, or gets a response whose numbers are all finite and
// whose list respects top_k, exclusions and campaign lists; anything else traps.
//
//   build-fuzz/tests/fuzz/recommend_fuzzer -max_total_time=60 tests/fuzz/corpus
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/bundle.h"
#include "core/bundle_builder.h"
#include "core/model_runner.h"
#include "pipeline/recommend_pipeline.h"
#include "tests/testutil/fake_model.h"

namespace {

using namespace recsys;  // NOLINT: a fuzzer's one file.

std::shared_ptr<const core::Bundle> MakeBundle() {
  const std::string root =
      (std::filesystem::temp_directory_path() / absl::StrCat("recsys_fuzz_", getpid())).string();
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  {
    std::ofstream csv(root + "/data.csv");
    csv << "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,CustomerID,Country\n"
           "100,21A,JUMBO BAG RED,1,2010-01-01 10:00:00,1.0,1,United Kingdom\n"
           "100,21B,CHRISTMAS CARD,2,2010-01-01 10:00:00,2.0,1,United Kingdom\n"
           "100,21C,HEART T-LIGHT HOLDER,1,2010-01-01 10:00:00,3.0,1,United Kingdom\n"
           "101,21A,JUMBO BAG RED,1,2010-01-02 10:00:00,1.5,2,France\n"
           "101,21B,CHRISTMAS CARD,1,2010-01-02 10:00:00,2.0,2,France\n"
           "102,21B,CHRISTMAS CARD,1,2010-01-03 10:00:00,2.0,3,Germany\n"
           "102,21C,HEART T-LIGHT HOLDER,1,2010-01-03 10:00:00,3.0,3,Germany\n"
           "103,21A,JUMBO BAG RED,1,2010-01-04 10:00:00,1.0,4,United Kingdom\n"
           "105,21D,CAKE STAND,1,2010-01-06 10:00:00,9.0,5,United Kingdom\n"
           "106,21E,TEA CUP,3,2010-01-06 11:00:00,0.5,5,United Kingdom\n";
  }
  core::BundleBuildOptions options;
  options.input = root + "/data.csv";
  options.out_root = root;
  options.version = "v1";
  options.self_similarity = 2.0;
  options.popularity_weight = 0.3;
  options.min_country_recent_lines = 1;
  absl::StatusOr<core::BundleBuildResult> built = core::BuildCfBundle(options);
  if (!built.ok()) std::abort();
  // A fake model source (tests/testutil/fake_model.h): a linear model with exact gradients.
  if (!testing::AddModelSources(built->dir, {{"rnn", 0.5, 2.0, -0.1}}, 5,
                                {"United Kingdom", "France"})
           .ok()) {
    std::abort();
  }
  absl::StatusOr<std::shared_ptr<const core::Bundle>> bundle =
      core::Bundle::Load(built->dir, testing::FakeModelLoader());
  if (!bundle.ok()) std::abort();
  return *bundle;
}

std::string Id(FuzzedDataProvider& in) {
  static const char* kIds[] = {"21A", "21B", "21C", "21D", "21E", "unknown", ""};
  return in.ConsumeBool() ? kIds[in.ConsumeIntegralInRange<int>(0, 6)]
                          : in.ConsumeRandomLengthString(80);
}

double Number(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0:
      return std::nan("");
    case 1:
      return in.ConsumeBool() ? INFINITY : -INFINITY;
    case 2:
      return in.ConsumeFloatingPoint<double>();
    default:
      return in.ConsumeFloatingPointInRange<double>(-10, 100);
  }
}

core::RecommendRequest MakeRequest(FuzzedDataProvider& in) {
  core::RecommendRequest r;
  r.request_id = in.ConsumeRandomLengthString(20);
  for (int n = in.ConsumeIntegralInRange<int>(0, 12); n > 0; --n) {
    core::HistoryEvent& e = r.history.emplace_back();
    e.item_id = Id(in);
    if (in.ConsumeBool()) e.timestamp = in.ConsumeIntegral<int64_t>();
    e.event_type = static_cast<core::EventType>(in.ConsumeIntegralInRange<int>(0, 3));
    if (in.ConsumeBool()) e.quantity = Number(in);
    if (in.ConsumeBool()) e.price = Number(in);
    if (in.ConsumeBool()) e.features.emplace_back(in.ConsumeRandomLengthString(10), Number(in));
  }
  if (in.ConsumeBool()) r.context.time = in.ConsumeIntegral<int64_t>();
  r.context.country = in.ConsumeBool() ? "France" : in.ConsumeRandomLengthString(20);
  if (in.ConsumeBool()) r.context.numeric_features.emplace_back("log_recency_days", Number(in));
  r.top_k = in.ConsumeIntegralInRange<int>(-2, 110);
  for (int n = in.ConsumeIntegralInRange<int>(0, 3); n > 0; --n)
    r.exclude_item_ids.push_back(Id(in));
  for (int n = in.ConsumeIntegralInRange<int>(0, 4); n > 0; --n)
    r.candidate_item_ids.push_back(Id(in));
  r.candidates_only = in.ConsumeBool();
  if (in.ConsumeBool()) r.fusion_weights.emplace_back(in.ConsumeBool() ? "rnn" : "cf", Number(in));
  if (in.ConsumeBool()) r.exclude_history = in.ConsumeBool();
  if (in.ConsumeBool()) r.allow_categories.push_back(in.ConsumeRandomLengthString(20));
  if (in.ConsumeBool()) r.deny_categories.push_back("bags");
  if (in.ConsumeBool()) r.min_price = Number(in);
  if (in.ConsumeBool()) r.max_price = Number(in);
  r.max_per_category = in.ConsumeIntegralInRange<int>(-1, 5);
  r.mmr_lambda = in.ConsumeBool() ? 0.0 : Number(in);
  r.popularity_penalty = in.ConsumeBool() ? 0.0 : Number(in);
  r.explain.method = static_cast<core::AttributionMethod>(in.ConsumeIntegralInRange<int>(0, 6));
  r.explain.steps = in.ConsumeIntegralInRange<int>(-1, 300);
  r.explain.samples = in.ConsumeIntegralInRange<int>(-1, 300);
  r.explain.seed = in.ConsumeIntegral<uint64_t>();
  r.explain.max_attributions = in.ConsumeIntegralInRange<int>(-1, 60);
  r.explain.include_source_attributions = in.ConsumeBool();
  return r;
}

// Traps with the failed condition and the request, so that a crash file explains itself.
#define CHECK_OR_TRAP(condition)                                                   \
  do {                                                                             \
    if (!(condition)) {                                                            \
      std::fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #condition); \
      __builtin_trap();                                                            \
    }                                                                              \
  } while (0)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const core::Bundle> bundle = MakeBundle();
  static const recsys::pipeline::RecommendPipeline pipeline{recsys::pipeline::PipelineOptions{}};
  FuzzedDataProvider in(data, size);
  const core::RecommendRequest request = MakeRequest(in);
  absl::StatusOr<core::RecommendResponse> response =
      pipeline.Run(request, *bundle, absl::InfiniteFuture());
  if (!response.ok()) {
    CHECK_OR_TRAP(!response.status().message().empty());  // Every refusal says why.
    return 0;
  }
  const int top_k = request.top_k > 0 ? request.top_k : pipeline.options().default_top_k;
  CHECK_OR_TRAP(static_cast<int>(response->items.size()) <= top_k);
  for (const core::RecommendedItem& item : response->items) {
    CHECK_OR_TRAP(std::isfinite(item.score) && std::isfinite(item.baseline_score) &&
                  std::isfinite(item.completeness_error));
    for (const core::Attribution& a : item.attributions)
      CHECK_OR_TRAP(std::isfinite(a.attribution));
    for (const std::string& id : request.exclude_item_ids) CHECK_OR_TRAP(item.item_id != id);
    if (request.candidates_only) {
      bool listed = false;
      for (const std::string& id : request.candidate_item_ids) listed |= item.item_id == id;
      CHECK_OR_TRAP(listed);
    }
    if (response->metadata.attribution_method == core::AttributionMethod::kKernelShap) {
      CHECK_OR_TRAP(std::fabs(item.completeness_error) <= 1e-6 * (1 + std::fabs(item.score)));
    }
  }
  return 0;
}
