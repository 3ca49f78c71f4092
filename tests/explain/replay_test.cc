// Replay attributions (explain/replay.h) on the torch-free FakeModelRunner: every step's input is
// written out by hand here, so the expected attributions do not come from the code under test.
#include "explain/replay.h"

#include <vector>

#include "core/featurizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fake_model.h"

namespace recsys::explain {
namespace {

constexpr int kItems = 6;
constexpr int kPad = kItems;

// Position weights make the score depend on where an event sits, so that replaying a shorter
// history (shifted to the last positions) differs from masking events in place.
testing::FakeModelRunner Model() {
  core::ModelShape shape;
  shape.num_items = kItems;
  shape.max_history = 4;
  shape.num_event_features = 2;
  shape.num_context = 3;
  testing::FakeModelOptions options;
  options.seed = 5;
  return testing::FakeModelRunner("fake", shape, options);
}

// Groups: "hour" = context 0 and 1, "recency" = context 2.
std::vector<core::ContextGroup> Groups() { return {{"hour", {0, 1}}, {"recency", {2}}}; }

// Three events (items 2, 0, 5) in the last three positions, with side-features.
core::ModelInput Input() {
  core::ModelInput x;
  x.items = {kPad, 2, 0, 5};
  x.mask = {0, 1, 1, 1};
  x.event_features = {0, 0, 0.5f, -1.0f, 1.5f, 0.0f, -0.5f, 2.0f};
  x.context = {0.5f, -0.8f, 1.2f};
  return x;
}

core::ModelInput Make(std::vector<int64_t> items, std::vector<float> mask,
                      std::vector<float> features, std::vector<float> context) {
  return {std::move(items), std::move(features), std::move(mask), std::move(context)};
}

// The empty history under a zero context: the baseline.
core::ModelInput Baseline() {
  return Make({kPad, kPad, kPad, kPad}, {0, 0, 0, 0}, std::vector<float>(8, 0.0f), {0, 0, 0});
}

std::vector<double> Scores(const core::ModelRunner& model, const core::ModelInput& x,
                           const std::vector<core::ItemIndex>& targets) {
  std::vector<float> scores;
  EXPECT_TRUE(model.ScoreTargets({x}, targets, &scores).ok());
  return {scores.begin(), scores.end()};
}

double Score(const core::ModelRunner& model, const core::ModelInput& x, core::ItemIndex target) {
  std::vector<float> scores;
  EXPECT_TRUE(model.ScoreTargets({x}, {target}, &scores).ok());
  return scores.at(0);
}

TEST(ReplayTest, CreditsEachStepItsScoreChangeAndEventsTheirLeaveOneOutShares) {
  const testing::FakeModelRunner model = Model();
  const std::vector<core::ItemIndex> targets = {1, 4};
  std::vector<ReplayAttribution> out;
  ASSERT_TRUE(Replay(model, Input(), Groups(), targets, Scores(model, Baseline(), targets),
                     Scores(model, Input(), targets), nullptr, &out)
                  .ok());
  ASSERT_EQ(out.size(), 2u);
  const std::vector<float> none(8, 0.0f);
  // The steps, by hand: baseline; + hour; + recency; + the events, side-features 0; + feature
  // 0 of every event; + feature 1.
  const core::ModelInput s0 = Make({kPad, kPad, kPad, kPad}, {0, 0, 0, 0}, none, {0, 0, 0});
  const core::ModelInput s1 = Make({kPad, kPad, kPad, kPad}, {0, 0, 0, 0}, none, {0.5f, -0.8f, 0});
  const core::ModelInput s2 = Make({kPad, kPad, kPad, kPad}, {0, 0, 0, 0}, none, Input().context);
  const core::ModelInput s3 = Make({kPad, 2, 0, 5}, {0, 1, 1, 1}, none, Input().context);
  const core::ModelInput s4 =
      Make({kPad, 2, 0, 5}, {0, 1, 1, 1}, {0, 0, 0.5f, 0, 1.5f, 0, -0.5f, 0}, Input().context);
  const core::ModelInput s5 = Input();
  // The request without each event, the older ones moving up, with their side-features.
  const std::vector<core::ModelInput> without = {
      Make({kPad, kPad, 0, 5}, {0, 0, 1, 1}, {0, 0, 0, 0, 1.5f, 0, -0.5f, 2.0f}, Input().context),
      Make({kPad, kPad, 2, 5}, {0, 0, 1, 1}, {0, 0, 0, 0, 0.5f, -1.0f, -0.5f, 2.0f},
           Input().context),
      Make({kPad, kPad, 2, 0}, {0, 0, 1, 1}, {0, 0, 0, 0, 0.5f, -1.0f, 1.5f, 0}, Input().context)};
  for (size_t k = 0; k < targets.size(); ++k) {
    SCOPED_TRACE(targets[k]);
    auto delta = [&](const core::ModelInput& a, const core::ModelInput& b) {
      return Score(model, b, targets[k]) - Score(model, a, targets[k]);
    };
    const ReplayAttribution& a = out[k];
    EXPECT_NEAR(a.baseline, model.baseline_scores()[targets[k]], 1e-6);
    EXPECT_NEAR(a.baseline, Score(model, s0, targets[k]), 1e-6);
    EXPECT_THAT(a.context, ::testing::ElementsAre(::testing::DoubleNear(delta(s0, s1), 1e-5),
                                                  ::testing::DoubleNear(delta(s1, s2), 1e-5)));
    // The events' step s2 -> s3, split: each event's leave-one-out effect plus an equal share
    // of what those leave out.
    double rest = delta(s2, s3);
    std::vector<double> loo;
    for (const core::ModelInput& x : without) {
      loo.push_back(delta(x, s5));
      rest -= loo.back();
    }
    EXPECT_THAT(a.event, ::testing::ElementsAre(0.0, ::testing::DoubleNear(loo[0] + rest / 3, 1e-5),
                                                ::testing::DoubleNear(loo[1] + rest / 3, 1e-5),
                                                ::testing::DoubleNear(loo[2] + rest / 3, 1e-5)));
    EXPECT_THAT(a.feature, ::testing::ElementsAre(::testing::DoubleNear(delta(s3, s4), 1e-5),
                                                  ::testing::DoubleNear(delta(s4, s5), 1e-5)));
    // The steps telescope: everything adds up to the input's score change.
    double sum = 0.0;
    for (double v : a.event) sum += v;
    for (double v : a.feature) sum += v;
    for (double v : a.context) sum += v;
    EXPECT_NEAR(sum, Score(model, Input(), targets[k]) - a.baseline, 1e-5);
  }
}

TEST(ReplayTest, SkipsStepsThatAddNothing) {
  const testing::FakeModelRunner model = Model();
  core::ModelInput x = Input();
  x.context = {0, 0, 0};
  x.event_features.assign(8, 0.0f);
  const int before = model.calls();
  std::vector<ReplayAttribution> out;
  ASSERT_TRUE(Replay(model, x, Groups(), {3}, Scores(model, Baseline(), {3}), Scores(model, x, {3}),
                     nullptr, &out)
                  .ok());
  EXPECT_EQ(model.calls(), before + 3);  // The start, the end (above) and one batch.
  EXPECT_THAT(out[0].context, ::testing::ElementsAre(0.0, 0.0));
  EXPECT_THAT(out[0].feature, ::testing::ElementsAre(0.0, 0.0));
  EXPECT_NEAR(out[0].event[1] + out[0].event[2] + out[0].event[3],
              Score(model, x, 3) - out[0].baseline, 1e-5);
}

// One event takes the whole events step: nothing to split, and no leave-one-out input is scored.
TEST(ReplayTest, OneEventTakesTheEventsStepWithoutLeaveOneOutInputs) {
  const testing::FakeModelRunner model = Model();
  const std::vector<float> none(8, 0.0f);
  const core::ModelInput x =
      Make({kPad, kPad, kPad, 5}, {0, 0, 0, 1}, {0, 0, 0, 0, 0, 0, -0.5f, 2.0f}, Input().context);
  core::ModelInput base;
  std::vector<core::PrefixRow> rows;
  ASSERT_TRUE(ReplayRows(model.shape(), x, Groups(), &base, &rows).ok());
  for (const core::PrefixRow& row : rows) EXPECT_EQ(row.left_out, -1);
  ASSERT_TRUE(ReplayRows(model.shape(), Input(), Groups(), &base, &rows).ok());
  std::vector<int32_t> left_out;
  for (const core::PrefixRow& row : rows) left_out.push_back(row.left_out);
  EXPECT_THAT(left_out, ::testing::IsSupersetOf({0, 1, 2}));

  std::vector<ReplayAttribution> out;
  ASSERT_TRUE(Replay(model, x, Groups(), {3}, Scores(model, Baseline(), {3}), Scores(model, x, {3}),
                     nullptr, &out)
                  .ok());
  const core::ModelInput context_only =
      Make({kPad, kPad, kPad, kPad}, {0, 0, 0, 0}, none, Input().context);
  const core::ModelInput event_only = Make({kPad, kPad, kPad, 5}, {0, 0, 0, 1}, none, x.context);
  EXPECT_THAT(out[0].event,
              ::testing::ElementsAre(
                  0.0, 0.0, 0.0,
                  ::testing::DoubleNear(Score(model, event_only, 3) - Score(model, context_only, 3),
                                        1e-5)));
}

TEST(ReplayTest, WithoutEventsOnlyTheContextGroupsAreCredited) {
  const testing::FakeModelRunner model = Model();
  core::ModelInput x = Baseline();
  x.context = {0.5f, -0.8f, 1.2f};
  std::vector<ReplayAttribution> out;
  ASSERT_TRUE(Replay(model, x, Groups(), {3}, Scores(model, Baseline(), {3}), Scores(model, x, {3}),
                     nullptr, &out)
                  .ok());
  const core::ModelInput hour = Make({kPad, kPad, kPad, kPad}, {0, 0, 0, 0},
                                     std::vector<float>(8, 0.0f), {0.5f, -0.8f, 0});
  EXPECT_NEAR(out[0].context[0], Score(model, hour, 3) - Score(model, Baseline(), 3), 1e-5);
  EXPECT_NEAR(out[0].context[1], Score(model, x, 3) - Score(model, hour, 3), 1e-5);
  EXPECT_THAT(out[0].event, ::testing::Each(0.0));
  EXPECT_THAT(out[0].feature, ::testing::Each(0.0));
}

TEST(ReplayTest, RejectsInputsItCannotReplay) {
  const testing::FakeModelRunner model = Model();
  std::vector<ReplayAttribution> out;
  core::ModelInput gap = Input();
  gap.mask = {1, 0, 1, 1};  // A real event before padding.
  const std::vector<double> one = {0.0};
  EXPECT_EQ(Replay(model, gap, Groups(), {1}, one, one, nullptr, &out).code(),
            absl::StatusCode::kInvalidArgument);
  core::ModelInput short_context = Input();
  short_context.context.pop_back();
  EXPECT_EQ(Replay(model, short_context, Groups(), {1}, one, one, nullptr, &out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Replay(model, Input(), {{"x", {3}}}, {1}, one, one, nullptr, &out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Replay(model, Input(), Groups(), {1, 2}, one, one, nullptr, &out).code(),
            absl::StatusCode::kInvalidArgument);
  // A context feature in no group would be credited to no step.
  EXPECT_EQ(Replay(model, Input(), {{"hour", {0, 1}}}, {1}, one, one, nullptr, &out).code(),
            absl::StatusCode::kInvalidArgument);
  // An item on a padding position: the last step would not be the input.
  core::ModelInput stray = Input();
  stray.items[0] = 3;
  EXPECT_EQ(Replay(model, stray, Groups(), {1}, one, one, nullptr, &out).code(),
            absl::StatusCode::kInvalidArgument);
  core::ModelInput featured_padding = Input();
  featured_padding.event_features[1] = 1.0f;  // A side-feature on the padding position.
  EXPECT_EQ(Replay(model, featured_padding, Groups(), {1}, one, one, nullptr, &out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace recsys::explain
