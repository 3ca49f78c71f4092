// Faithfulness of the explanations, by deletion through a running server: for each held-out
// request and attribution method, take the top recommended item, delete the history event the
// method attributes most to it, and measure how much the item's score drops (re-scored by the
// server, the same request without that event). A faithful method picks events whose deletion
// costs more than deleting a random event.
//
//   recsys_faithfulness --address=127.0.0.1:50051 --cutoff=2011-11-09 --end=2011-12-10
//
// Cases: customers who bought before the bundle's cut-off and in [cutoff, end), with their last
// --max_history purchases before the cut-off as the history (held out: the bundle never saw
// their later purchases). Prints a Markdown table; progress goes to stderr.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/evaluation.h"
#include "core/retail_data.h"
#include "grpcpp/grpcpp.h"
#include "recsys/v1/recommender.grpc.pb.h"
#include "tools/heldout.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "Server address");
ABSL_FLAG(std::string, input, "data/online-retail-ii/online_retail_ii.csv.gz",
          "Purchase data in the Online Retail II layout (uncut)");
ABSL_FLAG(std::string, cutoff, "", "The served bundle's training cut-off, 'YYYY-MM-DD'");
ABSL_FLAG(std::string, end, "", "End of the held-out window (exclusive), 'YYYY-MM-DD'");
ABSL_FLAG(int, cases, 300, "Held-out requests (the first ones by customer id)");
ABSL_FLAG(int, max_history, 50, "Most recent purchases sent as the history");
ABSL_FLAG(std::string, methods,
          "replay,cf_exact,gradient_x_input,integrated_gradients,occlusion,kernel_shap,lime",
          "Attribution methods to compare; kernel_shap@N or lime@N asks for N coalitions "
          "(explain.samples)");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the random-event baseline");
ABSL_FLAG(bool, exclude_history, false,
          "Recommend only items new to the shopper (filters.exclude_history)");

namespace {

namespace v1 = recsys::v1;

struct MethodResult {
  std::string name;  // As in --methods, e.g. "kernel_shap@2048".
  v1::AttributionMethod method;
  int samples = 0;  // explain.samples; 0: the server's default.
  int cases = 0;
  double top_drop = 0, random_drop = 0;  // Sums of score drops.
  int top_wins = 0;                      // Cases where the top event's drop >= the random one's.
  int top_raises = 0;                    // Cases where deleting the top event raises the score.
  double abs_completeness = 0;           // Sum of |completeness_error| of the explained item.
  double max_relative_completeness = 0;  // Of |completeness_error| / |score - baseline_score|.
  double r_squared = 0;                  // Sum of surrogate_r_squared (LIME).
  int r_squared_cases = 0;
  std::vector<double> explain_ms, rank_ms;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

class Client {
 public:
  explicit Client(const std::string& address)
      : stub_(v1::Recommender::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

  bool Recommend(const v1::RecommendRequest& request, v1::RecommendResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status status = stub_->Recommend(&context, request, response);
    if (!status.ok()) {
      std::cerr << "error: code " << status.error_code() << ": " << status.error_message() << "\n";
    }
    return status.ok();
  }

  // The score of `item` for `request` without history event `drop`.
  bool ScoreWithout(const v1::RecommendRequest& request, int drop, const std::string& item,
                    double* score) {
    v1::RecommendRequest reduced = request;
    reduced.mutable_history()->erase(reduced.mutable_history()->begin() + drop);
    reduced.clear_candidate_item_ids();
    reduced.add_candidate_item_ids(item);
    reduced.set_candidates_only(true);
    reduced.mutable_explain()->set_method(v1::ATTRIBUTION_METHOD_NONE);
    v1::RecommendResponse response;
    if (!Recommend(reduced, &response) || response.items_size() != 1) return false;
    *score = response.items(0).score();
    return true;
  }

 private:
  std::unique_ptr<v1::Recommender::Stub> stub_;
};

// The --methods list, each with its proto enum; errors name the flag.
absl::StatusOr<std::vector<MethodResult>> ParseMethods() {
  std::vector<MethodResult> results;
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_methods), ',')) {
    MethodResult r;
    r.name = std::string(name);
    const std::vector<std::string> parts = absl::StrSplit(name, absl::MaxSplits('@', 1));
    absl::StatusOr<v1::AttributionMethod> method = recsys::tools::ProtoMethodNamed(parts[0]);
    if (!method.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--methods: ", method.status().message()));
    }
    if (parts.size() == 2) {
      if (*method != v1::ATTRIBUTION_METHOD_KERNEL_SHAP && *method != v1::ATTRIBUTION_METHOD_LIME) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--methods: \"", name, "\": @N (explain.samples) applies to kernel_shap and lime"));
      }
      if (!absl::SimpleAtoi(parts[1], &r.samples) || r.samples < 2) {
        return absl::InvalidArgumentError(
            absl::StrCat("--methods: \"", name, "\": the count after @ must be an integer >= 2"));
      }
    }
    r.method = *method;
    results.push_back(r);
  }
  return results;
}

// Adds one explained item's deletion drops, completeness, R^2 and timings to `r`.
void Accumulate(const v1::RecommendResponse& response, double top_drop, double random_drop,
                MethodResult* r) {
  const v1::RecommendedItem& item = response.items(0);
  ++r->cases;
  r->top_drop += top_drop;
  r->random_drop += random_drop;
  r->top_wins += top_drop >= random_drop;
  r->top_raises += top_drop < 0;
  r->abs_completeness += std::fabs(item.completeness_error());
  if (const double explained = std::fabs(item.score() - item.baseline_score()); explained > 0) {
    r->max_relative_completeness =
        std::max(r->max_relative_completeness, std::fabs(item.completeness_error()) / explained);
  }
  if (item.has_surrogate_r_squared()) {
    r->r_squared += item.surrogate_r_squared();
    ++r->r_squared_cases;
  }
  for (const v1::StageTiming& t : response.metadata().stage_timings()) {
    if (t.stage() == "explain") r->explain_ms.push_back(t.seconds() * 1e3);
    if (t.stage() == "rank") r->rank_ms.push_back(t.seconds() * 1e3);
  }
}

void PrintTable(const std::vector<MethodResult>& results, int used) {
  std::cout << absl::StrFormat(
      "%d held-out requests (customers with a basket in [%s, %s), last %d purchases before "
      "the cut-off as history%s), top-1 item of each, top_k 10.\n\n",
      used, absl::GetFlag(FLAGS_cutoff), absl::GetFlag(FLAGS_end), absl::GetFlag(FLAGS_max_history),
      absl::GetFlag(FLAGS_exclude_history) ? ", only items new to the shopper" : "");
  std::cout
      << "| method | mean score drop, top-attributed event deleted | mean score drop, random "
         "event deleted | top >= random | top's deletion raises the score | mean abs completeness "
         "error | max completeness error / (score - baseline) | mean surrogate R^2 | median "
         "explain ms | median rank ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const MethodResult& r : results) {
    const std::string r_squared =
        r.r_squared_cases > 0 ? absl::StrFormat("%.3f", r.r_squared / r.r_squared_cases) : "-";
    std::cout << absl::StrFormat(
        "| %s | %.4f | %.4f | %.0f%% | %.0f%% | %.2g | %.2g | %s | %.2f | %.2f |\n", r.name,
        r.top_drop / r.cases, r.random_drop / r.cases, 100.0 * r.top_wins / r.cases,
        100.0 * r.top_raises / r.cases, r.abs_completeness / r.cases, r.max_relative_completeness,
        r_squared, Median(r.explain_ms), Median(r.rank_ms));
  }
}

// Explains `request` with r's method, deletes its top-attributed history event and
// `random_event`, and adds the item's score drops to `r`. False when the call failed, the
// method was degraded or nothing in the history explains the item.
bool DeletionCase(Client* client, v1::RecommendRequest request, int random_event, MethodResult* r) {
  request.mutable_explain()->set_method(r->method);
  request.mutable_explain()->set_samples(r->samples);
  v1::RecommendResponse response;
  if (!client->Recommend(request, &response) || response.items_size() == 0) {
    return false;
  }
  const v1::RecommendedItem& item = response.items(0);
  int top_event = -1;
  double best = 0;
  for (const v1::Attribution& a : item.attributions()) {
    if (a.kind() == v1::FEATURE_KIND_HISTORY_EVENT && a.attribution() > best) {
      best = a.attribution();
      top_event = a.history_index();
    }
  }
  if (response.metadata().attribution_method() != r->method || top_event < 0) {
    return false;  // Degraded, or nothing in the history explains the item.
  }
  double top_score, random_score;
  if (!client->ScoreWithout(request, top_event, item.item_id(), &top_score) ||
      !client->ScoreWithout(request, random_event, item.item_id(), &random_score)) {
    return false;
  }
  Accumulate(response, item.score() - top_score, item.score() - random_score, r);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Deletion test of the explanations through a running server.");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<int64_t> cutoff = recsys::core::ParseDateTime(absl::GetFlag(FLAGS_cutoff));
  absl::StatusOr<int64_t> end = recsys::core::ParseDateTime(absl::GetFlag(FLAGS_end));
  if (!cutoff.ok() || !end.ok()) {
    std::cerr << "error: --cutoff and --end must be dates (YYYY-MM-DD)\n";
    return 2;
  }
  absl::StatusOr<std::vector<MethodResult>> parsed = ParseMethods();
  if (!parsed.ok()) {
    std::cerr << "error: " << parsed.status().message() << "\n";
    return 2;
  }
  std::vector<MethodResult> results = *std::move(parsed);
  absl::StatusOr<recsys::core::RetailData> data =
      recsys::core::ReadRetailCsv(absl::GetFlag(FLAGS_input), {});
  if (!data.ok()) {
    std::cerr << "error: " << data.status() << "\n";
    return 1;
  }
  std::vector<recsys::core::EvalCase> cases =
      recsys::core::MakeNextBasketCases(*data, *cutoff, *end, absl::GetFlag(FLAGS_max_history));
  if (cases.size() > static_cast<size_t>(absl::GetFlag(FLAGS_cases))) {
    cases.resize(absl::GetFlag(FLAGS_cases));
  }
  Client client(absl::GetFlag(FLAGS_address));
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  int used = 0, skipped = 0;
  for (size_t c = 0; c < cases.size(); ++c) {
    if (c % 50 == 0) std::cerr << "case " << c << " / " << cases.size() << "\n";
    const recsys::core::EvalCase& ec = cases[c];
    v1::RecommendRequest request = recsys::tools::ToRequest(ec);
    request.set_request_id("faithfulness-" + ec.customer_id);
    request.set_top_k(10);
    request.mutable_explain()->set_max_attributions(50);
    request.mutable_filters()->set_exclude_history(absl::GetFlag(FLAGS_exclude_history));
    // Deleting the only event leaves nothing to compare with.
    if (request.history_size() < 2) {
      ++skipped;
      continue;
    }
    // The random event: one history position, the same for every method.
    const int random_event = static_cast<int>(rng() % request.history_size());
    bool ok = true;
    std::vector<MethodResult> row = results;
    for (MethodResult& r : row) {
      if (!DeletionCase(&client, request, random_event, &r)) {
        ok = false;
        break;
      }
    }
    if (!ok) {
      ++skipped;
      continue;
    }
    results = row;
    ++used;
  }
  std::cerr << used << " cases used, " << skipped << " skipped\n";
  if (used == 0) return 1;

  PrintTable(results, used);
  return 0;
}
