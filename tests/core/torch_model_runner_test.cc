#include "core/torch_model_runner.h"

#include <fstream>

#include "core/featurizer.h"
#include "core/ranker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/model_fixtures.h"

namespace recsys::core {
namespace {

using ::testing::HasSubstr;

// The fixture is made once per process, in the first test's SetUp (not SetUpTestSuite, whose
// failures CTest would report as skipped tests rather than failed ones).
class TorchModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (dir_ == nullptr) {
      dir_ = new std::string(testing::MakeTinyModelBundleDir());
      std::ifstream in(*dir_ + "/reference.json");
      reference_ = new nlohmann::json(nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false));
      absl::StatusOr<std::shared_ptr<const Bundle>> bundle =
          Bundle::Load(*dir_, TorchScriptLoader("cpu"));
      EXPECT_TRUE(bundle.ok()) << bundle.status();
      if (bundle.ok()) bundle_ = new std::shared_ptr<const Bundle>(*bundle);
    }
    ASSERT_FALSE(reference_->is_discarded()) << "reference.json missing or malformed";
    ASSERT_NE(bundle_, nullptr) << "the tiny model bundle did not load";
  }

  // The reference request of make_tiny_models.py.
  static RecommendRequest ReferenceRequest() {
    RecommendRequest r;
    for (const auto& e : (*reference_)["history"]) {
      HistoryEvent& h = r.history.emplace_back();
      h.item_id = e["item_id"].get<std::string>();
      h.timestamp = e["timestamp"].get<int64_t>();
      h.quantity = e["quantity"].get<double>();
      h.price = e["price"].get<double>();
    }
    r.context.country = (*reference_)["country"].get<std::string>();
    r.context.time = (*reference_)["request_time"].get<int64_t>();
    return r;
  }

  static inline std::string* dir_ = nullptr;
  static inline nlohmann::json* reference_ = nullptr;
  static inline std::shared_ptr<const Bundle>* bundle_ = nullptr;
};

TEST_F(TorchModelTest, FeaturesAndScoresMatchThePythonReference) {
  const Bundle& bundle = **bundle_;
  ASSERT_EQ(bundle.models().size(), 2u);
  RecommendRequest request = ReferenceRequest();
  RankedList ranked;
  ASSERT_TRUE(Ranker::Rank(bundle, request, 10, &ranked).ok());
  for (size_t m = 0; m < bundle.models().size(); ++m) {
    const ModelRunner& model = *bundle.models()[m];
    SCOPED_TRACE(model.name());
    EXPECT_EQ(model.device(), "cpu");
    const ModelInput& input = ranked.model_inputs[m];
    EXPECT_EQ(input.items, (*reference_)["items"].get<std::vector<int64_t>>());
    EXPECT_EQ(input.mask, (*reference_)["mask"].get<std::vector<float>>());
    const auto features = (*reference_)["event_features"].get<std::vector<double>>();
    ASSERT_EQ(input.event_features.size(), features.size());
    for (size_t i = 0; i < features.size(); ++i) {
      EXPECT_NEAR(input.event_features[i], features[i], 1e-6) << "event feature " << i;
    }
    const auto context = (*reference_)["context"].get<std::vector<double>>();
    ASSERT_EQ(input.context.size(), context.size());
    for (size_t i = 0; i < context.size(); ++i) {
      EXPECT_NEAR(input.context[i], context[i], 1e-6) << "context feature " << i;
    }
    const auto expected = (*reference_)["scores"][model.name()].get<std::vector<double>>();
    const std::vector<float>& scores = ranked.model_scores[m];
    ASSERT_EQ(scores.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(scores[i], expected[i], 1e-4);
    EXPECT_EQ(model.baseline_scores().size(), expected.size());
  }
}

TEST_F(TorchModelTest, FusedScoreIsTheWeightedSumOfNormalisedSourceScores) {
  const Bundle& bundle = **bundle_;
  RankedList ranked;
  ASSERT_TRUE(Ranker::Rank(bundle, ReferenceRequest(), 10, &ranked).ok());
  ASSERT_FALSE(ranked.items.empty());
  for (const RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    ASSERT_EQ(item.sources.size(), 3u);
    double sum = 0.0, baseline = 0.0;
    for (size_t s = 0; s < item.sources.size(); ++s) {
      const SourceScore& source = item.sources[s];
      const SourceSpec& spec = *bundle.manifest().FindSource(source.source);
      EXPECT_DOUBLE_EQ(source.normalized_score, spec.slope * source.raw_score + spec.intercept);
      EXPECT_DOUBLE_EQ(source.contribution, spec.weight * source.normalized_score);
      sum += source.contribution;
      if (s > 0) {
        EXPECT_FLOAT_EQ(source.raw_score, ranked.model_scores[s - 1][item.index]);
        baseline += spec.weight *
                    (spec.slope * bundle.models()[s - 1]->baseline_scores()[item.index] +
                     spec.intercept);
      } else {
        baseline += spec.weight * spec.intercept;
      }
    }
    EXPECT_NEAR(item.score, sum, 1e-9);
    EXPECT_NEAR(item.baseline_score, baseline, 1e-9);
  }
}

TEST_F(TorchModelTest, AZeroWeightModelIsNotRunOverTheCatalogueButItsRawScoresAreReported) {
  const Bundle& bundle = **bundle_;
  RecommendRequest request = ReferenceRequest();
  request.fusion_weights = {{"cnn", 0.0}};
  RankedList ranked;
  ASSERT_TRUE(Ranker::Rank(bundle, request, 10, &ranked).ok());
  ASSERT_FALSE(ranked.items.empty());
  EXPECT_TRUE(ranked.model_scores[0].empty());    // cnn: not run over the catalogue.
  EXPECT_FALSE(ranked.model_scores[1].empty());   // rnn: weighted, run.
  std::vector<float> cnn_scores;
  ASSERT_TRUE(bundle.models()[0]->ScoreAll(ranked.model_inputs[0], &cnn_scores).ok());
  for (const RecommendedItem& item : ranked.items) {
    SCOPED_TRACE(item.item_id);
    ASSERT_EQ(item.sources.size(), 3u);
    EXPECT_EQ(item.sources[1].source, "cnn");
    EXPECT_EQ(item.sources[1].weight, 0.0);
    EXPECT_EQ(item.sources[1].contribution, 0.0);
    EXPECT_NEAR(item.sources[1].raw_score, cnn_scores[item.index], 1e-5);
    EXPECT_NEAR(item.score, item.sources[0].contribution + item.sources[2].contribution, 1e-9);
  }
}

TEST_F(TorchModelTest, ModelsBringCandidatesThatCfHasNot) {
  // 21D shares no customer with any item: CF alone has no candidate for it.
  RecommendRequest request;
  request.history.emplace_back().item_id = "21D";
  RankedList ranked;
  ASSERT_TRUE(Ranker::Rank(**bundle_, request, 10, &ranked).ok());
  EXPECT_EQ(ranked.items.size(), 4u);  // The whole (tiny) catalogue, from the models' top-M.
}

TEST_F(TorchModelTest, AnItemsScoreDoesNotDependOnTheOtherCandidates) {
  RecommendRequest one = ReferenceRequest();
  one.candidates_only = true;
  one.candidate_item_ids = {"21D"};
  RecommendRequest many = one;
  many.candidate_item_ids = {"21A", "21B", "21C", "21D"};
  RankedList a, b;
  ASSERT_TRUE(Ranker::Rank(**bundle_, one, 10, &a).ok());
  ASSERT_TRUE(Ranker::Rank(**bundle_, many, 10, &b).ok());
  ASSERT_EQ(a.items.size(), 1u);
  bool found = false;
  for (const RecommendedItem& item : b.items) {
    if (item.item_id != "21D") continue;
    found = true;
    EXPECT_EQ(item.score, a.items[0].score);
  }
  EXPECT_TRUE(found);
}

TEST_F(TorchModelTest, BatchedTargetScoresEqualTheSingleRequestScores) {
  const Bundle& bundle = **bundle_;
  RecommendRequest request = ReferenceRequest();
  RankedList ranked;
  ASSERT_TRUE(Ranker::Rank(bundle, request, 10, &ranked).ok());
  RecommendRequest shorter = request;
  shorter.history.pop_back();
  RankedList ranked_shorter;
  ASSERT_TRUE(Ranker::Rank(bundle, shorter, 10, &ranked_shorter).ok());
  const std::vector<ItemIndex> targets = {3, 0, 2};
  for (size_t m = 0; m < bundle.models().size(); ++m) {
    std::vector<float> batched;
    ASSERT_TRUE(bundle.models()[m]
                    ->ScoreTargets({ranked.model_inputs[m], ranked_shorter.model_inputs[m]},
                                   targets, &batched)
                    .ok());
    ASSERT_EQ(batched.size(), 6u);
    for (size_t k = 0; k < targets.size(); ++k) {
      EXPECT_NEAR(batched[k], ranked.model_scores[m][targets[k]], 1e-5);
      EXPECT_NEAR(batched[3 + k], ranked_shorter.model_scores[m][targets[k]], 1e-5);
    }
  }
}

TEST_F(TorchModelTest, AModelThatBreaksTheContractIsRejectedWithTheReason) {
  ModelShape shape = (*bundle_)->models()[0]->shape();
  ModelSpec spec{"rnn", "rnn", "x.pt", 8, 5};
  ModelLoader loader = TorchScriptLoader("cpu");
  absl::Status s = loader(*dir_ + "/wrong_table.pt", spec, shape).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("item_table() is [5,8], the catalogue has 4 items"));
  s = loader(*dir_ + "/no_encode.pt", spec, shape).status();
  EXPECT_THAT(s.message(), HasSubstr("no method encode()"));
  s = loader(*dir_ + "/manifest.json", spec, shape).status();
  EXPECT_THAT(s.message(), HasSubstr("manifest.json: not a model of this bundle"));
  shape.num_context += 1;  // A context the model was not trained on.
  s = loader(*dir_ + "/cnn.pt", spec, shape).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(TorchThreadsTest, OpenBlasGetsTheIntraOpBudget) {
  SetTorchThreads(1, 1);
  const int blas = BlasThreads();
  if (blas != -1) {  // -1: the BLAS is not OpenBLAS (nothing to set).
    EXPECT_EQ(blas, 1);
  }
}

TEST(TorchDeviceTest, CudaIsAClearErrorWhereItIsUnavailableAndNamesAreChecked) {
  EXPECT_TRUE(CheckTorchDevice("cpu").ok());
  EXPECT_EQ(CheckTorchDevice("gpu").code(), absl::StatusCode::kInvalidArgument);
  absl::Status cuda = CheckTorchDevice("cuda:0");
  if (!cuda.ok()) {  // CPU-only LibTorch (CI): a clear refusal, never a silent fallback.
    EXPECT_EQ(cuda.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(cuda.message(), HasSubstr("CUDA"));
  }
}

}  // namespace
}  // namespace recsys::core
