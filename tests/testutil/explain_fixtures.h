#ifndef RECSYS_TESTS_TESTUTIL_EXPLAIN_FIXTURES_H_
#define RECSYS_TESTS_TESTUTIL_EXPLAIN_FIXTURES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/bundle.h"
#include "core/manifest.h"
#include "core/types.h"
#include "tests/testutil/fake_model.h"

namespace recsys::testing {

// How FakeModelBundle builds its bundle.
struct FakeModelBundleOptions {
  double recency_decay = 0.5;
  double self_similarity = 0.0;
  // Fusion weight of the "pop" source.
  double popularity_weight = 0.0;
  // Countries with fewer recent lines get no popularity list of their own. Every tiny purchase
  // is recent here: United Kingdom has 6 lines (A 3, B, C, D 1 each), France 2 (A, B), Germany
  // 2 (B, C); 1 gives each its own list, the builder's default 100 none.
  int64_t min_country_recent_lines = 100;
  // The model sources added to the manifest, each a FakeModelRunner of that name.
  std::vector<core::SourceSpec> models = {{"rnn", 1.0, 1.0, 0.0}};
  int max_history = 4;
  // The countries with a one-hot context feature (plus country=other).
  std::vector<std::string> countries = {"United Kingdom", "France"};
  FakeModelOptions model;
};

// A bundle built from TinyRetailCsv() (shrinkage 1; items 21A=0, 21B=1, 21C=2, 21D=3) with a
// cut-off of 2010-01-07, so that every purchase is in the recent window (recent popularity A 4,
// B 3, C 2, D 1, the same as all-time popularity), with fake model sources (testutil/fake_model.h)
// and the featurizer's schema, loaded through FakeModelLoader. No LibTorch. Fails the test and
// returns nullptr on error.
std::shared_ptr<const core::Bundle> FakeModelBundle(const FakeModelBundleOptions& options = {});

// A request for the tiny data with timestamps, quantities and prices on its events (so that
// every event feature and context feature the featurizer computes is in play), a context time
// (2010-01-05 15:00 UTC) and country France. Ids not in the catalogue are allowed.
core::RecommendRequest TimedRequest(const std::vector<std::string>& ids);

}  // namespace recsys::testing

#endif  // RECSYS_TESTS_TESTUTIL_EXPLAIN_FIXTURES_H_
