#include "core/torch_model_runner.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "core/ranker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/model_fixtures.h"

// What only LibTorch can test: the TorchScript runner against the Python reference of
// tests/testutil/make_tiny_models.py, its gradient primitive, the contract checks, threads and
// devices. The ranker's fusion over model sources is tested on the fake model in
// tests/core/ranker_test.cc.

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
      reference_ =
          new nlohmann::json(nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false));
      // Float tables: these tests hold the runner to Python's float reference; the compact
      // (int8, half) tables are held to the float ones (CompactTables... below).
      absl::StatusOr<std::shared_ptr<const Bundle>> bundle =
          Bundle::Load(*dir_, TorchScriptLoader("cpu", ItemTablePrecision::kFloat));
      EXPECT_TRUE(bundle.ok()) << bundle.status();
      if (bundle.ok()) bundle_ = new std::shared_ptr<const Bundle>(*bundle);
      absl::StatusOr<std::shared_ptr<const Bundle>> compact =
          Bundle::Load(*dir_, TorchScriptLoader("cpu"));  // The server's default tables.
      EXPECT_TRUE(compact.ok()) << compact.status();
      if (compact.ok()) default_bundle_ = new std::shared_ptr<const Bundle>(*compact);
    }
    ASSERT_FALSE(reference_->is_discarded()) << "reference.json missing or malformed";
    ASSERT_NE(bundle_, nullptr) << "the tiny model bundle did not load";
    ASSERT_NE(default_bundle_, nullptr) << "the tiny model bundle did not load by default";
    ASSERT_EQ((*bundle_)->models().size(), 2u);
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

  // The model input Python computed for the reference request.
  static ModelInput ReferenceInput() {
    ModelInput input;
    input.items = (*reference_)["items"].get<std::vector<int64_t>>();
    input.mask = (*reference_)["mask"].get<std::vector<float>>();
    input.event_features = (*reference_)["event_features"].get<std::vector<float>>();
    input.context = (*reference_)["context"].get<std::vector<float>>();
    return input;
  }

  static std::vector<double> ReferenceScores(const std::string& model) {
    return (*reference_)["scores"][model].get<std::vector<double>>();
  }

  // The embedded-space point of `input` (Embed of its items and features, its context).
  static void AddPoint(const ModelRunner& model, const ModelInput& input, double weight,
                       EmbeddedPoints* points) {
    std::vector<float> embedded;
    ASSERT_TRUE(model.Embed(input.items, input.event_features, &embedded).ok());
    points->embedded.insert(points->embedded.end(), embedded.begin(), embedded.end());
    points->context.insert(points->context.end(), input.context.begin(), input.context.end());
    points->mask = input.mask;
    points->weights.push_back(weight);
  }

  static const RankedSource& SourceNamed(const RankedList& ranked, const std::string& name) {
    for (const RankedSource& s : ranked.sources) {
      if (s.source.spec.name == name) return s;
    }
    ADD_FAILURE() << "no source " << name;
    return ranked.sources.front();
  }

  static inline std::string* dir_ = nullptr;
  static inline nlohmann::json* reference_ = nullptr;
  static inline std::shared_ptr<const Bundle>* bundle_ = nullptr;          // Float tables.
  static inline std::shared_ptr<const Bundle>* default_bundle_ = nullptr;  // Int8 tables.
  // Both bundles: the self-consistency tests hold for every precision.
  static std::vector<const Bundle*> Bundles() { return {bundle_->get(), default_bundle_->get()}; }
};

TEST_F(TorchModelTest, FeaturesAndScoresMatchThePythonReference) {
  const Bundle& bundle = **bundle_;
  RankedList ranked;
  ASSERT_TRUE(Ranker::Rank(bundle, ReferenceRequest(), 10, &ranked).ok());
  const ModelInput reference = ReferenceInput();
  for (const auto& model : bundle.models()) {
    SCOPED_TRACE(model->name());
    EXPECT_EQ(model->device(), "cpu");
    const RankedSource& source = SourceNamed(ranked, model->name());
    const ModelInput& input = source.input;
    EXPECT_EQ(input.items, reference.items);
    EXPECT_EQ(input.mask, reference.mask);
    ASSERT_EQ(input.event_features.size(), reference.event_features.size());
    for (size_t i = 0; i < reference.event_features.size(); ++i) {
      EXPECT_NEAR(input.event_features[i], reference.event_features[i], 1e-6)
          << "event feature " << i;
    }
    ASSERT_EQ(input.context.size(), reference.context.size());
    for (size_t i = 0; i < reference.context.size(); ++i) {
      EXPECT_NEAR(input.context[i], reference.context[i], 1e-6) << "context feature " << i;
    }
    const std::vector<double> expected = ReferenceScores(model->name());
    ASSERT_EQ(source.scores.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(source.scores[i], expected[i], 1e-4);
    EXPECT_EQ(model->baseline_scores().size(), expected.size());
  }
}

TEST_F(TorchModelTest, CompactTablesScoreNearFloatAndAgreeWithThemselves) {
  std::vector<std::vector<float>> first_scores;  // Per precision, the first model's.
  // Halves keep 11 significant bits, int8 rows 8: the score moves by a few steps of its size.
  for (auto [precision, tolerance] :
       {std::pair{ItemTablePrecision::kHalf, 2e-3}, std::pair{ItemTablePrecision::kInt8, 3e-2}}) {
    absl::StatusOr<std::shared_ptr<const Bundle>> compact =
        Bundle::Load(*dir_, TorchScriptLoader("cpu", precision));
    ASSERT_TRUE(compact.ok()) << compact.status();
    const ModelInput reference = ReferenceInput();
    for (size_t m = 0; m < (*compact)->models().size(); ++m) {
      const ModelRunner& model = *(*compact)->models()[m];
      SCOPED_TRACE(model.name() + (precision == ItemTablePrecision::kHalf ? " half" : " int8"));
      std::vector<float> exact, rounded;
      ASSERT_TRUE((*bundle_)->models()[m]->ScoreAll(reference, &exact).ok());
      ASSERT_TRUE(model.ScoreAll(reference, &rounded).ok());
      ASSERT_EQ(rounded.size(), exact.size());
      float largest = 0.0f;
      for (size_t i = 0; i < exact.size(); ++i) {
        EXPECT_NEAR(rounded[i], exact[i], tolerance * (1.0 + std::abs(exact[i]))) << i;
        largest = std::max(largest, std::abs(rounded[i] - exact[i]));
      }
      EXPECT_GT(largest, 0.0f) << "the compact table was not used";
      // Re-scoring (what explanations do) reads the same rows as the catalogue pass.
      std::vector<ItemIndex> all(exact.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<ItemIndex>(i);
      std::vector<float> targets;
      ASSERT_TRUE(model.ScoreTargets({reference}, all, &targets).ok());
      ASSERT_EQ(targets.size(), rounded.size());
      for (size_t i = 0; i < rounded.size(); ++i) EXPECT_NEAR(targets[i], rounded[i], 1e-5) << i;
      if (m == 0) first_scores.push_back(rounded);
      // A negative index is refused, not read before the table.
      absl::Status s = model.ScoreTargets({reference}, {-1}, &targets);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(s.message(), HasSubstr("target -1 is outside the catalogue"));
    }
  }
  ASSERT_EQ(first_scores.size(), 2u);
  EXPECT_NE(first_scores[0], first_scores[1]) << "int8 and half tables scored alike";
}

TEST_F(TorchModelTest, BatchedTargetScoresEqualTheSingleRequestScores) {
  for (const Bundle* each : Bundles()) {
    const Bundle& bundle = *each;
    RecommendRequest request = ReferenceRequest();
    RankedList ranked;
    ASSERT_TRUE(Ranker::Rank(bundle, request, 10, &ranked).ok());
    RecommendRequest shorter = request;
    shorter.history.pop_back();
    RankedList ranked_shorter;
    ASSERT_TRUE(Ranker::Rank(bundle, shorter, 10, &ranked_shorter).ok());
    const std::vector<ItemIndex> targets = {3, 0, 2};
    for (const auto& model : bundle.models()) {
      SCOPED_TRACE(model->name());
      const RankedSource& full = SourceNamed(ranked, model->name());
      const RankedSource& part = SourceNamed(ranked_shorter, model->name());
      ASSERT_NE(full.input.mask, part.input.mask);  // Two different requests.
      std::vector<float> batched;
      ASSERT_TRUE(model->ScoreTargets({full.input, part.input}, targets, &batched).ok());
      ASSERT_EQ(batched.size(), 6u);
      for (size_t k = 0; k < targets.size(); ++k) {
        EXPECT_NEAR(batched[k], full.scores[targets[k]], 1e-5);
        EXPECT_NEAR(batched[3 + k], part.scores[targets[k]], 1e-5);
      }
    }
  }
}

TEST_F(TorchModelTest, PrefixScoresAreTheScoresOfTheShorterRequests) {
  // The reference input's 3 events at positions 2..4 of L = 5; each row written out by hand.
  const ModelInput input = ReferenceInput();
  ASSERT_EQ(input.mask, std::vector<float>({0, 0, 1, 1, 1}));
  const std::vector<float> no_context(input.context.size(), 0.0f);
  std::vector<float> other_features = input.event_features;  // Rows with their own.
  for (float& f : other_features) f = 0.5f - f;
  const std::vector<PrefixRow> rows = {{0, no_context},
                                       {0, input.context},
                                       {1, input.context},
                                       {3, input.context, other_features},
                                       {2, no_context},
                                       {3, input.context},
                                       {2, no_context, other_features},
                                       // Rows with an event left out: the older ones move up.
                                       {3, input.context, {}, 1},
                                       {3, no_context, other_features, 0},
                                       {2, input.context, {}, 1}};
  std::vector<ModelInput> shorter;
  for (const PrefixRow& row : rows) {
    const std::vector<float>& features =
        row.event_features.empty() ? input.event_features : row.event_features;
    std::vector<size_t> from;  // The input positions shown, oldest first.
    for (int i = 0; i < row.events; ++i) {
      if (i != row.left_out) from.push_back(2 + i);
    }
    ModelInput& x = shorter.emplace_back();
    x.items.assign(5, 4);  // N = 4: the padding item.
    x.mask.assign(5, 0.0f);
    x.event_features.assign(input.event_features.size(), 0.0f);
    x.context = row.context;
    const size_t E = input.event_features.size() / 5;
    for (size_t i = 0; i < from.size(); ++i) {  // In the last positions.
      const size_t to = 5 - from.size() + i;
      x.items[to] = input.items[from[i]];
      x.mask[to] = 1.0f;
      std::copy_n(features.begin() + from[i] * E, E, x.event_features.begin() + to * E);
    }
  }
  // The bundles' models, and one whose prefix_sequences() gives the first input's rows only
  // (as modules made before further inputs were part of the contract): it is run per such row.
  const ModelShape& shape = (*bundle_)->models()[0]->shape();
  absl::StatusOr<std::unique_ptr<ModelRunner>> legacy = TorchScriptLoader("cpu")(
      *dir_ + "/unbatched_prefix.pt", {"legacy", "rnn", "unbatched_prefix.pt", 8, 5}, shape);
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  std::vector<const ModelRunner*> models = {legacy->get()};
  for (const Bundle* bundle : Bundles()) {
    for (const auto& model : bundle->models()) models.push_back(model.get());
  }
  const std::vector<ItemIndex> targets = {3, 0, 2};
  for (const ModelRunner* model : models) {
    SCOPED_TRACE(model->name());
    EXPECT_TRUE(model->ScoresPrefixesInOnePass());  // All export prefix_sequences.
    std::vector<float> prefixes, expected;
    ASSERT_TRUE(model->ScorePrefixes(input, rows, targets, &prefixes).ok());
    ASSERT_TRUE(model->ScoreTargets(shorter, targets, &expected).ok());
    ASSERT_EQ(prefixes.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(prefixes[i], expected[i], 1e-5) << i;
    for (const PrefixRow& wrong :
         std::vector<PrefixRow>{{4, input.context},  // Only 3 events.
                                {-1, input.context},
                                {1, {0.5f}},
                                {1, input.context, {0.5f}},
                                {2, input.context, {}, 2},  // Leaves out an event it does not have.
                                {2, input.context, {}, -2}}) {
      EXPECT_EQ(model->ScorePrefixes(input, {wrong}, targets, &prefixes).code(),
                absl::StatusCode::kInvalidArgument);
    }
  }
}

// A model that sees one event loads with its one-pass rows checked and scores them as the
// inputs they stand for: the event, no event, and the event left out (which is no event).
TEST_F(TorchModelTest, AOneEventWindowScoresItsRowsInOnePass) {
  const ModelInput reference = ReferenceInput();
  ModelShape shape = (*bundle_)->models()[0]->shape();
  shape.max_history = 1;
  absl::StatusOr<std::unique_ptr<ModelRunner>> model =
      TorchScriptLoader("cpu")(*dir_ + "/window1.pt", {"w1", "rnn", "window1.pt", 8, 1}, shape);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE((*model)->ScoresPrefixesInOnePass());
  const size_t E = reference.event_features.size() / reference.items.size();
  ModelInput input;  // The reference's newest event.
  input.items = {reference.items.back()};
  input.mask = {1.0f};
  input.event_features.assign(reference.event_features.end() - E, reference.event_features.end());
  input.context = reference.context;
  ModelInput none = input;
  none.items = {shape.num_items};  // The padding item.
  none.mask = {0.0f};
  std::fill(none.event_features.begin(), none.event_features.end(), 0.0f);
  std::vector<float> other_features = input.event_features;
  for (float& f : other_features) f = 0.5f - f;
  ModelInput other = input;
  other.event_features = other_features;
  const std::vector<PrefixRow> rows = {{0, input.context},
                                       {1, input.context},
                                       {1, input.context, {}, 0},
                                       {1, input.context, other_features}};
  const std::vector<ItemIndex> targets = {3, 0, 2};
  std::vector<float> scores, expected;
  ASSERT_TRUE((*model)->ScorePrefixes(input, rows, targets, &scores).ok());
  ASSERT_TRUE((*model)->ScoreTargets({none, input, none, other}, targets, &expected).ok());
  ASSERT_EQ(scores.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(scores[i], expected[i], 1e-5) << i;
  // The rows differ (no event, the event, its own side-features): the check tells them apart.
  EXPECT_NE(expected[0], expected[3]);
  EXPECT_NE(expected[3], expected[9]);
}

// ScoreAllSavingRows: ScoreAll's scores of the whole input, and rows that ScoreSavedRows
// scores as ScorePrefixes does, whether or not the last row is the whole input.
TEST_F(TorchModelTest, SavedRowsScoreAsScorePrefixesAndTheWholeAsScoreAll) {
  const ModelInput input = ReferenceInput();
  ModelInput bare = input;
  std::fill(bare.event_features.begin(), bare.event_features.end(), 0.0f);
  const std::vector<PrefixRow> with_whole = {{0, input.context},
                                             {2, input.context},
                                             {3, input.context},
                                             {3, input.context, input.event_features}};
  const std::vector<PrefixRow> without_whole(with_whole.begin(), with_whole.end() - 1);
  const std::vector<ItemIndex> targets = {3, 0, 2};
  absl::StatusOr<std::unique_ptr<ModelRunner>> legacy =  // One pass per side-featured row.
      TorchScriptLoader("cpu")(*dir_ + "/unbatched_prefix.pt",
                               {"legacy", "rnn", "unbatched_prefix.pt", 8, 5},
                               (*bundle_)->models()[0]->shape());
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  std::vector<const ModelRunner*> models = {legacy->get()};
  for (const Bundle* bundle : Bundles()) {
    for (const auto& model : bundle->models()) models.push_back(model.get());
  }
  for (const ModelRunner* model : models) {
    SCOPED_TRACE(model->name());
    std::vector<float> all, expected_all;
    ASSERT_TRUE(model->ScoreAll(input, &expected_all).ok());
    for (const std::vector<PrefixRow>* rows : {&with_whole, &without_whole}) {
      SavedRows saved;
      ASSERT_TRUE(model->ScoreAllSavingRows(input, bare, *rows, &all, &saved).ok());
      ASSERT_EQ(all.size(), expected_all.size());
      for (size_t i = 0; i < all.size(); ++i) EXPECT_NEAR(all[i], expected_all[i], 1e-5) << i;
      EXPECT_FALSE(saved.users.empty());  // The rows' pass is done: nothing left to run.
      std::vector<float> scores, expected;
      ASSERT_TRUE(model->ScoreSavedRows(saved, targets, &scores).ok());
      ASSERT_TRUE(model->ScorePrefixes(bare, *rows, targets, &expected).ok());
      ASSERT_EQ(scores.size(), expected.size());
      for (size_t i = 0; i < scores.size(); ++i) EXPECT_NEAR(scores[i], expected[i], 1e-5) << i;
      saved.rows.pop_back();  // Rows this pass did not save.
      EXPECT_EQ(model->ScoreSavedRows(saved, targets, &scores).code(),
                absl::StatusCode::kInvalidArgument);
    }
  }
}

// With rows to save, each weighted model ranks through ScoreAllSavingRows with the rows the
// caller made for its input: its ranked source keeps them with their pass's user vectors, and
// the scores are ScoreAll's within float rounding.
TEST_F(TorchModelTest, TheRankerSavesTheRowsItIsGivenFromItsPass) {
  const Bundle& bundle = **default_bundle_;
  std::vector<const ModelInput*> asked;
  const RowsToSave rows_to_save = [&](const ModelShape& shape, const ModelInput& whole,
                                      ModelInput* input, std::vector<PrefixRow>* rows) {
    asked.push_back(&whole);
    *input = whole;
    *rows = {{0, whole.context}, {1, whole.context}};
    return true;
  };
  RankedList plain, saving;
  ASSERT_TRUE(Ranker::Rank(bundle, ReferenceRequest(), 10, &plain).ok());
  ASSERT_TRUE(Ranker::Rank(bundle, ReferenceRequest(), 10, &saving, 0, rows_to_save).ok());
  ASSERT_EQ(asked.size(), bundle.models().size());
  for (size_t s = 0; s < saving.sources.size(); ++s) {
    const RankedSource& source = saving.sources[s];
    if (source.source.kind != SourceKind::kModel) continue;
    SCOPED_TRACE(source.source.spec.name);
    EXPECT_EQ(source.saved.input, source.input);
    EXPECT_EQ(source.saved.rows,
              (std::vector<PrefixRow>{{0, source.input.context}, {1, source.input.context}}));
    EXPECT_FALSE(source.saved.users.empty());
    ASSERT_EQ(source.scores.size(), plain.sources[s].scores.size());
    for (size_t i = 0; i < source.scores.size(); ++i) {
      EXPECT_NEAR(source.scores[i], plain.sources[s].scores[i], 1e-5) << i;
    }
    EXPECT_TRUE(plain.sources[s].saved.rows.empty());
  }
}

TEST_F(TorchModelTest, EmbedFeedsEncodeWhatPythonsEmbedDoes) {
  // reference.json has no embed() output; its scores are encode(embed(...)), so Embed is
  // checked through them: Gradients' scores at the embedded reference input are Python's.
  const ModelInput reference = ReferenceInput();
  const size_t L = reference.items.size();
  for (const auto& model : (*bundle_)->models()) {
    SCOPED_TRACE(model->name());
    const size_t D = model->embedding_dim();
    EXPECT_EQ(D, 8u);  // make_tiny_models.py's DIM.
    std::vector<float> embedded;
    ASSERT_TRUE(model->Embed(reference.items, reference.event_features, &embedded).ok());
    ASSERT_EQ(embedded.size(), L * D);

    EmbeddedPoints point{embedded, reference.context, reference.mask, {1.0}};
    const std::vector<ItemIndex> all = {0, 1, 2, 3};
    ScoreGradients out;
    ASSERT_TRUE(model->Gradients(point, all, &out).ok());
    const std::vector<double> expected = ReferenceScores(model->name());
    ASSERT_EQ(out.scores.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(out.scores[i], expected[i], 1e-4);

    // A batch [reference; empty history] embeds the reference as alone, and every padding
    // position (index N, no features) to the same vector, whatever the row and position.
    std::vector<int64_t> items = reference.items;
    items.insert(items.end(), L, model->shape().num_items);
    std::vector<float> features = reference.event_features;
    features.insert(features.end(), reference.event_features.size(), 0.0f);
    std::vector<float> batch;
    ASSERT_TRUE(model->Embed(items, features, &batch).ok());
    ASSERT_EQ(batch.size(), 2 * L * D);
    for (size_t j = 0; j < L * D; ++j) EXPECT_NEAR(batch[j], embedded[j], 1e-6) << j;
    const std::vector<float> pad(batch.begin() + L * D, batch.begin() + (L + 1) * D);
    for (size_t row = 0; row < 2 * L; ++row) {
      if (row < L && reference.mask[row] != 0.0f) continue;  // A real event.
      for (size_t d = 0; d < D; ++d) EXPECT_EQ(batch[row * D + d], pad[d]) << row << "," << d;
    }
  }
}

TEST_F(TorchModelTest, GradientsScoreLikeScoreTargetsAtTheSamePoints) {
  const ModelInput first = ReferenceInput();
  ModelInput second = first;  // Same history and mask, other quantities and another context.
  for (float& f : second.event_features) f = 0.5f * f + 0.25f;
  for (size_t c = 0; c < second.context.size(); ++c) second.context[c] = 0.3f * c - 0.4f;
  const std::vector<ItemIndex> targets = {3, 0, 2};
  for (const auto& model : (*bundle_)->models()) {
    SCOPED_TRACE(model->name());
    EmbeddedPoints points;
    AddPoint(*model, first, 0.25, &points);
    AddPoint(*model, second, 0.75, &points);
    ScoreGradients out;
    ASSERT_TRUE(model->Gradients(points, targets, &out).ok());
    std::vector<float> expected;
    ASSERT_TRUE(model->ScoreTargets({first, second}, targets, &expected).ok());
    ASSERT_EQ(out.scores.size(), expected.size());
    for (size_t j = 0; j < expected.size(); ++j) EXPECT_NEAR(out.scores[j], expected[j], 1e-5) << j;
  }
}

TEST_F(TorchModelTest, GradientsAreWeightedSumsThatAgreeWithCentralDifferences) {
  const ModelInput reference = ReferenceInput();
  ModelInput other = reference;
  for (float& f : other.event_features) f = -f;
  const std::vector<ItemIndex> targets = {2, 1};
  const size_t K = targets.size();
  for (const auto& model : (*bundle_)->models()) {
    SCOPED_TRACE(model->name());
    const size_t L = model->shape().max_history, C = model->shape().num_context;
    const size_t D = model->embedding_dim();
    EmbeddedPoints at;
    AddPoint(*model, reference, 1.0, &at);
    ScoreGradients g;
    ASSERT_TRUE(model->Gradients(at, targets, &g).ok());
    ASSERT_EQ(g.embedded.size(), K * L * D);
    ASSERT_EQ(g.context.size(), K * C);

    // The score at `point` with coordinate j of the embedded history (or of the context)
    // moved by `h`, for each target.
    auto scores_moved = [&](bool context, size_t j, float h) {
      EmbeddedPoints moved = at;
      (context ? moved.context : moved.embedded)[j] += h;
      ScoreGradients out;
      EXPECT_TRUE(model->Gradients(moved, targets, &out).ok());
      return out.scores;
    };
    // Central differences with h = 1e-2 in float32: truncation ~h^2 and rounding ~1e-7/h,
    // both well inside 1e-3 + 1% of the gradient.
    const float h = 1e-2f;
    auto check = [&](bool context, size_t j) {
      const std::vector<float> up = scores_moved(context, j, h);
      const std::vector<float> down = scores_moved(context, j, -h);
      for (size_t k = 0; k < K; ++k) {
        const double fd = (up[k] - down[k]) / (2.0 * h);
        const double grad = context ? g.context[k * C + j] : g.embedded[k * L * D + j];
        EXPECT_NEAR(grad, fd, 1e-3 + 1e-2 * std::abs(fd))
            << (context ? "context " : "embedded ") << j << ", target " << targets[k];
      }
    };
    // Positions 2..4 hold the three events (0 and 1 are padding); a few coordinates of each.
    for (size_t l : {0u, 2u, 3u, 4u}) {
      for (size_t d : {0u, 5u}) check(false, l * D + d);
    }
    for (size_t c : {size_t{0}, size_t{2}, C - 1}) check(true, c);
    bool moves = false;  // The check above is not vacuous.
    for (float x : g.embedded) moves |= std::abs(x) > 1e-3f;
    EXPECT_TRUE(moves);

    // Two points: the weighted sum of each point's gradient.
    EmbeddedPoints second;
    AddPoint(*model, other, 1.0, &second);
    ScoreGradients g2;
    ASSERT_TRUE(model->Gradients(second, targets, &g2).ok());
    EmbeddedPoints both;
    AddPoint(*model, reference, 0.25, &both);
    AddPoint(*model, other, 0.75, &both);
    ScoreGradients sum;
    ASSERT_TRUE(model->Gradients(both, targets, &sum).ok());
    ASSERT_EQ(sum.embedded.size(), g.embedded.size());
    for (size_t j = 0; j < g.embedded.size(); ++j) {
      EXPECT_NEAR(sum.embedded[j], 0.25 * g.embedded[j] + 0.75 * g2.embedded[j], 1e-5) << j;
    }
    ASSERT_EQ(sum.context.size(), g.context.size());
    for (size_t j = 0; j < g.context.size(); ++j) {
      EXPECT_NEAR(sum.context[j], 0.25 * g.context[j] + 0.75 * g2.context[j], 1e-5) << j;
    }
  }
}

TEST_F(TorchModelTest, WrongSizesAndIndicesAreInvalidArguments) {
  const ModelRunner& model = *(*bundle_)->models()[0];
  const ModelInput input = ReferenceInput();
  const int64_t N = model.shape().num_items;
  std::vector<float> embedded;
  auto embed = [&](std::vector<int64_t> items, std::vector<float> features) {
    return model.Embed(items, features, &embedded).code();
  };
  std::vector<int64_t> items = input.items;
  std::vector<float> features = input.event_features;
  EXPECT_EQ(embed(std::vector<int64_t>(items.begin(), items.end() - 1),
                  std::vector<float>(features.begin(),
                                     features.end() - model.shape().num_event_features)),
            absl::StatusCode::kInvalidArgument);  // Not a multiple of L.
  EXPECT_EQ(embed(items, std::vector<float>(features.begin(), features.end() - 1)),
            absl::StatusCode::kInvalidArgument);
  items[4] = N + 1;
  EXPECT_EQ(embed(items, features), absl::StatusCode::kInvalidArgument);
  items[4] = -1;
  EXPECT_EQ(embed(items, features), absl::StatusCode::kInvalidArgument);

  EmbeddedPoints good;
  AddPoint(model, input, 1.0, &good);
  ScoreGradients out;
  ASSERT_TRUE(model.Gradients(good, {0}, &out).ok());
  auto gradients = [&](const EmbeddedPoints& points, std::vector<ItemIndex> targets) {
    return model.Gradients(points, targets, &out);
  };
  EXPECT_EQ(gradients(EmbeddedPoints{}, {0}).code(), absl::StatusCode::kInvalidArgument);
  EmbeddedPoints bad = good;
  bad.embedded.pop_back();
  EXPECT_EQ(gradients(bad, {0}).code(), absl::StatusCode::kInvalidArgument);
  bad = good;
  bad.context.push_back(0.0f);
  EXPECT_EQ(gradients(bad, {0}).code(), absl::StatusCode::kInvalidArgument);
  bad = good;
  bad.mask.pop_back();
  EXPECT_EQ(gradients(bad, {0}).code(), absl::StatusCode::kInvalidArgument);
  bad = good;
  bad.weights.push_back(1.0);  // Two weights, one point.
  EXPECT_EQ(gradients(bad, {0}).code(), absl::StatusCode::kInvalidArgument);
  absl::Status s = gradients(good, {0, static_cast<ItemIndex>(N)});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("target 4 is outside the catalogue"));
}

TEST_F(TorchModelTest, AModelThatBreaksTheContractIsRejectedWithTheReason) {
  ModelShape shape = (*bundle_)->models()[0]->shape();
  ModelSpec spec{"rnn", "rnn", "x.pt", 8, 5};
  ModelLoader loader = TorchScriptLoader("cpu");
  absl::Status s = loader(*dir_ + "/wrong_table.pt", spec, shape).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("item_bias() is [5], expected [4]"));
  // A table one row too long beside a bias of the right size, read whole and in slices.
  s = TorchScriptLoader("cpu", ItemTablePrecision::kFloat)(*dir_ + "/long_table.pt", spec, shape)
          .status();
  EXPECT_THAT(s.message(), HasSubstr("item_table() is [5,8], the catalogue has 4 items"));
  s = loader(*dir_ + "/long_table.pt", spec, shape).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("item_table_rows(4, 5) is [1,8]: the table has more rows"));
  s = loader(*dir_ + "/no_encode.pt", spec, shape).status();
  EXPECT_THAT(s.message(), HasSubstr("no method encode()"));
  s = loader(*dir_ + "/padded.pt", {"linear", "linear", "padded.pt", 8, 5}, shape).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(),
              HasSubstr("embed() of the padding item without side-features must be 0"));
  absl::StatusOr<std::unique_ptr<ModelRunner>> linear =
      loader(*dir_ + "/linear.pt", {"linear", "linear", "linear.pt", 8, 5}, shape);
  ASSERT_TRUE(linear.ok()) << linear.status();
  EXPECT_FALSE((*linear)->ScoresPrefixesInOnePass());  // No prefix_sequences: one input a row.
  for (ItemTablePrecision precision :  // A NaN would turn a whole int8 row into garbage.
       {ItemTablePrecision::kFloat, ItemTablePrecision::kHalf, ItemTablePrecision::kInt8}) {
    s = TorchScriptLoader("cpu", precision)(*dir_ + "/nan_table.pt", spec, shape).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(s.message(), HasSubstr(precision == ItemTablePrecision::kFloat
                                           ? "item_table() has entries that are not finite"
                                           : "item_table_rows(0, 4) has entries that are not"));
    s = TorchScriptLoader("cpu", precision)(*dir_ + "/inf_bias.pt", spec, shape).status();
    EXPECT_THAT(s.message(), HasSubstr("item_bias() has entries that are not finite"));
  }
  // An entry beyond half's range: refused in half, served in int8 and float.
  s = TorchScriptLoader("cpu", ItemTablePrecision::kHalf)(*dir_ + "/huge_table.pt", spec, shape)
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("beyond half precision's 65504"));
  EXPECT_TRUE(
      TorchScriptLoader("cpu", ItemTablePrecision::kInt8)(*dir_ + "/huge_table.pt", spec, shape)
          .ok());
  s = loader(*dir_ + "/stale_prefix.pt", spec, shape).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("prefix_sequences() does not match encode()"));
  s = loader(*dir_ + "/manifest.json", spec, shape).status();
  EXPECT_THAT(s.message(), HasSubstr("manifest.json: not a model of this bundle"));
  shape.num_context += 1;  // A context the model was not trained on.
  s = loader(*dir_ + "/cnn.pt", spec, shape).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TorchModelTest, OnCudaScoresAndGradientsMatchTheCpu) {
  if (absl::Status cuda = CheckTorchDevice("cuda:0"); !cuda.ok()) {
    GTEST_SKIP() << "no CUDA device for this LibTorch: " << cuda;
  }
  absl::StatusOr<std::shared_ptr<const Bundle>> gpu =
      Bundle::Load(*dir_, TorchScriptLoader("cuda:0"));
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  const ModelInput reference = ReferenceInput();
  for (size_t m = 0; m < (*gpu)->models().size(); ++m) {
    const ModelRunner& model = *(*gpu)->models()[m];
    const ModelRunner& cpu = *(*bundle_)->models()[m];
    SCOPED_TRACE(model.name());
    EXPECT_EQ(model.device(), "cuda:0");
    std::vector<float> scores;
    ASSERT_TRUE(model.ScoreAll(reference, &scores).ok());
    const std::vector<double> expected = ReferenceScores(model.name());
    ASSERT_EQ(scores.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(scores[i], expected[i], 1e-4);
    EmbeddedPoints point;
    AddPoint(cpu, reference, 1.0, &point);
    ScoreGradients on_gpu, on_cpu;
    ASSERT_TRUE(model.Gradients(point, {0, 3}, &on_gpu).ok());  // cuDNN's RNN would refuse.
    ASSERT_TRUE(cpu.Gradients(point, {0, 3}, &on_cpu).ok());
    ASSERT_EQ(on_gpu.embedded.size(), on_cpu.embedded.size());
    for (size_t j = 0; j < on_cpu.embedded.size(); ++j) {
      EXPECT_NEAR(on_gpu.embedded[j], on_cpu.embedded[j], 1e-4) << j;
    }
  }
}

TEST(TorchThreadsTest, OpenBlasGetsTheIntraOpBudget) {
  if (BlasThreads() == -1) GTEST_SKIP() << "the BLAS is not OpenBLAS: no thread count to set";
  // A count that differs from OpenBLAS's own (the core count), so that it must have been set.
  // LibTorch allows one SetTorchThreads a process.
  const int want = BlasThreads() == 3 ? 2 : 3;
  ASSERT_TRUE(SetTorchThreads(want, 1).ok());
  EXPECT_EQ(BlasThreads(), want);
}

TEST(TorchDeviceTest, DeviceNamesAreChecked) {
  EXPECT_TRUE(CheckTorchDevice("cpu").ok());
  for (const char* name : {"gpu", "CPU", "cuda", "cuda:", "cuda:x", "cpu:0", ""}) {
    SCOPED_TRACE(name);
    absl::Status s = CheckTorchDevice(name);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("expected cpu or cuda:N"));
  }
  // No machine has this device: a refusal that names CUDA, never a fallback to the CPU.
  absl::Status s = CheckTorchDevice("cuda:999");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("CUDA"));
}

TEST(ItemTablePrecisionTest, NamesAreParsedAndAWrongOneListsTheChoices) {
  EXPECT_EQ(*ParseItemTablePrecision("int8"), ItemTablePrecision::kInt8);
  EXPECT_EQ(*ParseItemTablePrecision("half"), ItemTablePrecision::kHalf);
  EXPECT_EQ(*ParseItemTablePrecision("float"), ItemTablePrecision::kFloat);
  for (ItemTablePrecision p :
       {ItemTablePrecision::kFloat, ItemTablePrecision::kHalf, ItemTablePrecision::kInt8}) {
    EXPECT_EQ(*ParseItemTablePrecision(ItemTablePrecisionName(p)), p);
  }
  for (const char* name : {"int4", "Half", "fp16", ""}) {
    absl::StatusOr<ItemTablePrecision> p = ParseItemTablePrecision(name);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(p.status().message(), HasSubstr("expected half, int8 or float")) << name;
  }
}

TEST(TorchDeviceTest, CudaIsAClearRefusalWhereItIsUnavailable) {
  absl::Status cuda = CheckTorchDevice("cuda:0");
  if (cuda.ok()) {
    GTEST_SKIP() << "CUDA is available here (TorchModelTest.OnCudaScoresAndGradientsMatchTheCpu "
                    "runs instead)";
  }
  EXPECT_EQ(cuda.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(cuda.message(), HasSubstr("CUDA is not available"));
}

}  // namespace
}  // namespace recsys::core
