// Micro-benchmarks (Google Benchmark) of the request path's parts on the default bundle and
// real held-out requests (customers' last 50 purchases before 2011-11-09, top 10 unless the
// benchmark says otherwise):
//
//   CfScoring           Ranker on the bundle's CF and pop sources only (no models)
//   ModelScoreAll/m     one model's scores of the whole catalogue (m: 0 cnn, 1 rnn)
//   Rank                the full ranker: CF, both models, fusion, filters, top-k
//   BestItems/n etc.    top-100 of n random scores: the ranker's bounded heap against
//                       std::nth_element and std::partial_sort
//   Explain/method/k    explaining k ranked items (the ranked list's copy included, ~1 us)
//   IgSteps/s           Integrated Gradients with s steps, 10 items
//   PipelineRun         pipeline::RecommendPipeline::Run, the default method
//   ParseRequest, RequestToDomain, ResponseToProto: wire and conversion costs
//   ReadBandwidth       summing a 1M x 64 float table (256 MB): the memory bandwidth one core
//                       gets, the limit of scoring a large catalogue
//
//   build/tools/recsys_microbench --bundle=bundles [--input=CSV] [benchmark flags]
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "core/bundle.h"
#include "core/ranker.h"
#include "core/torch_model_runner.h"
#include "explain/explainer.h"
#include "nlohmann/json.hpp"
#include "pipeline/attribution_methods.h"
#include "pipeline/recommend_pipeline.h"
#include "server/proto_convert.h"
#include "tools/heldout.h"

namespace {

namespace core = recsys::core;
namespace v1 = recsys::v1;
namespace fs = std::filesystem;

constexpr int64_t kNow = 1320000000;  // Requests carry context.time; this is never read.

struct Fixture {
  std::shared_ptr<const core::Bundle> bundle;
  std::shared_ptr<const core::Bundle> cf_only;  // The same bundle without its models.
  std::vector<v1::RecommendRequest> wire;
  std::vector<core::RecommendRequest> requests;
};
Fixture* fixture = nullptr;

// A copy of bundle `dir` in a temporary directory whose manifest lists no models and only the
// cf and pop sources; the data files are links.
std::string CfOnlyCopy(const std::string& dir) {
  const fs::path out = fs::temp_directory_path() / "recsys_microbench_cf_only";
  fs::remove_all(out);
  fs::create_directories(out);
  nlohmann::json manifest = nlohmann::json::parse(std::ifstream(fs::path(dir) / "manifest.json"));
  manifest["models"] = nlohmann::json::array();
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& s : manifest["sources"]) {
    if (s["name"] == core::kCfSourceName || s["name"] == core::kPopularitySourceName) {
      sources.push_back(s);
    }
  }
  manifest["sources"] = sources;
  // The new-item and new-shopper defaults may weigh the models that are gone.
  if (manifest.contains("defaults")) {
    manifest["defaults"].erase("new_items");
    manifest["defaults"].erase("new_shoppers");
  }
  std::ofstream(out / "manifest.json") << manifest.dump(2);
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name != "manifest.json" && !absl::EndsWith(name, ".pt")) {
      fs::create_symlink(fs::absolute(entry.path()), out / name);
    }
  }
  return out.string();
}

const core::RecommendRequest& RequestAt(int64_t n) {
  return fixture->requests[n % fixture->requests.size()];
}

void BM_CfScoring(benchmark::State& state) {
  int64_t n = 0;
  for (auto _ : state) {
    core::RankedList ranked;
    benchmark::DoNotOptimize(
        core::Ranker::Rank(*fixture->cf_only, RequestAt(n++), 10, &ranked, kNow));
  }
}
BENCHMARK(BM_CfScoring);

void BM_ModelScoreAll(benchmark::State& state) {
  const core::ModelRunner& model = *fixture->bundle->models()[state.range(0)];
  core::RankedList ranked;
  if (!core::Ranker::Rank(*fixture->bundle, RequestAt(0), 10, &ranked, kNow).ok()) {
    state.SkipWithError("rank failed");
    return;
  }
  const core::ModelInput* input = nullptr;
  for (const core::RankedSource& s : ranked.sources) {
    if (s.source.model == &model) input = &s.input;
  }
  std::vector<float> scores;
  for (auto _ : state) benchmark::DoNotOptimize(model.ScoreAll(*input, &scores));
  state.SetLabel(model.name());
}
BENCHMARK(BM_ModelScoreAll)->Arg(0)->Arg(1);

void BM_Rank(benchmark::State& state) {
  int64_t n = 0;
  for (auto _ : state) {
    core::RankedList ranked;
    benchmark::DoNotOptimize(
        core::Ranker::Rank(*fixture->bundle, RequestAt(n++), state.range(0), &ranked, kNow));
  }
}
BENCHMARK(BM_Rank)->Arg(10)->Arg(50);

std::vector<float> RandomScores(size_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> scores(n);
  for (float& x : scores) x = normal(rng);
  return scores;
}

void BM_BestItems(benchmark::State& state) {
  const std::vector<float> scores = RandomScores(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(core::BestItems(scores, 100));
}
// Top 100 of n scores by `select` (an STL selection) over an index array, as the ranker did
// before BestItems.
template <typename Select>
void SelectOverIndices(benchmark::State& state, Select select) {
  const std::vector<float> scores = RandomScores(state.range(0));
  for (auto _ : state) {
    std::vector<core::ItemIndex> order(scores.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<core::ItemIndex>(i);
    select(order.begin(), order.begin() + 100, order.end(),
           [&](int a, int b) { return scores[a] != scores[b] ? scores[a] > scores[b] : a < b; });
    benchmark::DoNotOptimize(order.data());
  }
}
void BM_NthElement(benchmark::State& state) {
  SelectOverIndices(state, [](auto first, auto nth, auto last, auto less) {
    std::nth_element(first, nth, last, less);
  });
}
void BM_PartialSort(benchmark::State& state) {
  SelectOverIndices(state, [](auto first, auto middle, auto last, auto less) {
    std::partial_sort(first, middle, last, less);
  });
}
BENCHMARK(BM_BestItems)->Arg(4620)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_NthElement)->Arg(4620)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_PartialSort)->Arg(4620)->Arg(100000)->Arg(1000000);

// The attribution methods that explain something, by index: pipeline/attribution_methods.h's
// table without its first entry, "none" (0 is cf_exact).
const recsys::pipeline::AttributionMethodName& MethodAt(int64_t index) {
  return recsys::pipeline::AttributionMethodNames()[index + 1];
}

// Explains `top_k` items of a few requests ranked once, with `settings`.
void RunExplain(benchmark::State& state, const recsys::explain::ExplainSettings& settings,
                int top_k) {
  std::vector<core::RankedList> ranked(16);
  for (size_t i = 0; i < ranked.size(); ++i) {
    if (!core::Ranker::Rank(*fixture->bundle, RequestAt(i), top_k, &ranked[i], kNow).ok()) {
      state.SkipWithError("rank failed");
      return;
    }
  }
  int64_t n = 0;
  for (auto _ : state) {
    const size_t i = n++ % ranked.size();
    core::RankedList copy = ranked[i];
    benchmark::DoNotOptimize(
        recsys::explain::ExplainItems(*fixture->bundle, RequestAt(i), settings, &copy));
  }
}

void BM_Explain(benchmark::State& state) {
  recsys::explain::ExplainSettings settings;
  settings.method = MethodAt(state.range(0)).method;
  state.SetLabel(MethodAt(state.range(0)).name);
  RunExplain(state, settings, state.range(1));
}
BENCHMARK(BM_Explain)->ArgsProduct({{0, 1, 2, 3, 4, 5}, {1, 10, 50}});

void BM_IgSteps(benchmark::State& state) {
  recsys::explain::ExplainSettings settings;
  settings.method = core::AttributionMethod::kIntegratedGradients;
  settings.steps = state.range(0);
  RunExplain(state, settings, 10);
}
BENCHMARK(BM_IgSteps)->Arg(1)->Arg(4)->Arg(16)->Arg(64);

void BM_PipelineRun(benchmark::State& state) {
  const recsys::pipeline::RecommendPipeline pipeline{recsys::pipeline::PipelineOptions()};
  int64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        pipeline.Run(RequestAt(n++), *fixture->bundle, absl::Now() + absl::Seconds(10)));
  }
}
BENCHMARK(BM_PipelineRun);

void BM_ParseRequest(benchmark::State& state) {
  std::vector<std::string> bytes;
  for (const v1::RecommendRequest& r : fixture->wire) bytes.push_back(r.SerializeAsString());
  int64_t n = 0;
  for (auto _ : state) {
    v1::RecommendRequest request;
    benchmark::DoNotOptimize(request.ParseFromString(bytes[n++ % bytes.size()]));
  }
}
BENCHMARK(BM_ParseRequest);

void BM_RequestToDomain(benchmark::State& state) {
  int64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(recsys::server::ToDomain(fixture->wire[n++ % fixture->wire.size()]));
  }
}
BENCHMARK(BM_RequestToDomain);

// Response conversion and serialisation of a default (cf_exact) response with 10 items.
void BM_ResponseToProto(benchmark::State& state) {
  const recsys::pipeline::RecommendPipeline pipeline{recsys::pipeline::PipelineOptions()};
  std::vector<core::RecommendResponse> responses;
  for (int i = 0; i < 16; ++i) {
    auto r = pipeline.Run(RequestAt(i), *fixture->bundle, absl::Now() + absl::Seconds(10));
    if (!r.ok()) {
      state.SkipWithError("pipeline failed");
      return;
    }
    responses.push_back(*std::move(r));
  }
  int64_t n = 0;
  for (auto _ : state) {
    v1::RecommendResponse proto;
    recsys::server::ToProto(responses[n++ % responses.size()], &proto);
    benchmark::DoNotOptimize(proto.SerializeAsString());
  }
}
BENCHMARK(BM_ResponseToProto);

void BM_ReadBandwidth(benchmark::State& state) {
  const std::vector<float> table(size_t{1000000} * 64, 1.0f);
  for (auto _ : state) {
    float sum[8] = {};
    for (size_t i = 0; i < table.size(); i += 8) {
      for (int j = 0; j < 8; ++j) sum[j] += table[i + j];
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * table.size() * sizeof(float));
}
BENCHMARK(BM_ReadBandwidth);

}  // namespace

int main(int argc, char** argv) {
  std::string bundle_path = "bundles";
  std::string input = "data/online-retail-ii/online_retail_ii.csv.gz";
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--bundle=")) {
      bundle_path = arg.substr(9);
    } else if (absl::StartsWith(arg, "--input=")) {
      input = arg.substr(8);
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 2;

  // As recsys_server's workers.
  for (absl::Status s : {core::KeepFreedMemoryForReuse(), core::SetTorchThreads(1, 1)}) {
    if (!s.ok()) {
      std::cerr << "error: " << s << "\n";
      return 1;
    }
  }
  absl::StatusOr<std::string> dir = core::ResolveBundleDir(bundle_path);
  absl::StatusOr<std::shared_ptr<const core::Bundle>> bundle =
      dir.ok() ? core::Bundle::Load(*dir, core::TorchScriptLoader("cpu")) : dir.status();
  if (!bundle.ok()) {
    std::cerr << "error: --bundle: " << bundle.status() << "\n";
    return 1;
  }
  absl::StatusOr<std::shared_ptr<const core::Bundle>> cf_only =
      core::Bundle::Load(CfOnlyCopy(*dir));
  absl::StatusOr<std::vector<v1::RecommendRequest>> wire =
      recsys::tools::HeldOutRequests(input, "2011-11-09", 50);
  if (!cf_only.ok() || !wire.ok()) {
    std::cerr << "error: " << (cf_only.ok() ? wire.status() : cf_only.status()) << "\n";
    return 1;
  }
  Fixture f{*bundle, *cf_only, *wire, {}};
  for (v1::RecommendRequest& r : f.wire) r.set_top_k(10);
  for (const v1::RecommendRequest& r : f.wire) f.requests.push_back(recsys::server::ToDomain(r));
  fixture = &f;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
