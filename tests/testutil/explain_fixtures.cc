#include "tests/testutil/explain_fixtures.h"

#include "core/bundle_builder.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::testing {

std::shared_ptr<const core::Bundle> FakeModelBundle(const FakeModelBundleOptions& options) {
  const std::string root = MakeTempDir("fake_model_bundle");
  const std::string csv = root + "/tiny.csv";
  WriteFile(csv, TinyRetailCsv());
  core::BundleBuildOptions build;
  build.input = csv;
  build.out_root = root;
  build.version = "f1";
  // The 28-day recent window before the cut-off then holds every purchase (2010-01-01 to 06).
  build.cutoff_time = *core::ParseDateTime("2010-01-07");
  build.cf.shrinkage = 1.0;
  build.recency_decay = options.recency_decay;
  build.self_recency_decay = options.recency_decay;
  build.self_similarity = options.self_similarity;
  build.popularity_weight = options.popularity_weight;
  build.min_country_recent_lines = options.min_country_recent_lines;
  absl::StatusOr<core::BundleBuildResult> built = core::BuildCfBundle(build);
  EXPECT_TRUE(built.ok()) << built.status();
  if (!built.ok()) return nullptr;
  const absl::Status added =
      AddModelSources(built->dir, options.models, options.max_history, options.countries);
  EXPECT_TRUE(added.ok()) << added;
  if (!added.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<const core::Bundle>> bundle =
      core::Bundle::Load(built->dir, FakeModelLoader(options.model));
  EXPECT_TRUE(bundle.ok()) << bundle.status();
  return bundle.ok() ? *bundle : nullptr;
}

core::RecommendRequest TimedRequest(const std::vector<std::string>& ids) {
  core::RecommendRequest r;
  for (size_t i = 0; i < ids.size(); ++i) {
    core::HistoryEvent& e = r.history.emplace_back();
    e.item_id = ids[i];
    e.timestamp = 1262340000 + static_cast<int64_t>(i) * 86400;
    e.quantity = 2.0 + static_cast<double>(i);
    e.price = 1.5 + 0.5 * static_cast<double>(i);
  }
  r.context.country = "France";
  r.context.time = 1262703600;
  return r;
}

}  // namespace recsys::testing
