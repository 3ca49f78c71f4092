#ifndef RECSYS_TESTS_TESTUTIL_RANKING_FIXTURES_H_
#define RECSYS_TESTS_TESTUTIL_RANKING_FIXTURES_H_

#include <memory>
#include <string>
#include <vector>

#include "core/bundle.h"
#include "core/manifest.h"
#include "core/types.h"
#include "tests/testutil/fake_model.h"

namespace recsys::testing {

// The history length of the fake models' inputs in TinyBundleWithFakeModels.
inline constexpr int kTinyFakeMaxHistory = 5;

// The model sources TinyBundleWithFakeModels adds by default: "cnn" (weight 0.5, slope 2,
// intercept -0.25) and "rnn" (0.25, 0.5, 0.1), the fusion parameters make_tiny_models.py gives
// its TorchScript models.
std::vector<core::SourceSpec> TinyFakeModelSources();

// TinyBundle(0.5) (items 21A=0, 21B=1, 21C=2, 21D=3; sources "cf" weighing 1 and "pop"
// weighing 0) with one FakeModelRunner per entry of `models`, appended to the sources in that
// order (max history kTinyFakeMaxHistory, context features for the countries "United Kingdom"
// and "France"), all made by FakeModelLoader(options). Fails the test and returns nullptr when
// the bundle does not load.
std::shared_ptr<const core::Bundle> TinyBundleWithFakeModels(
    const FakeModelOptions& options = {},
    const std::vector<core::SourceSpec>& models = TinyFakeModelSources());

// The bundle's model named `name` as the FakeModelRunner it is; nullptr when there is none or
// it is not a fake.
const FakeModelRunner* FakeModel(const core::Bundle& bundle, const std::string& name);

// The request of make_tiny_models.py on the tiny data: history 21A, 21C, 21B (oldest first,
// with times, quantities and prices), from France, at 2010-01-05 15:00 UTC.
core::RecommendRequest TinyModelRequest();

}  // namespace recsys::testing

#endif  // RECSYS_TESTS_TESTUTIL_RANKING_FIXTURES_H_
