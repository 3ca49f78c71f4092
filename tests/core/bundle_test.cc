#include "core/bundle.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/bundle_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fake_model.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/ranking_fixtures.h"

namespace recsys::core {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(ManifestTest, RoundTripsThroughJson) {
  BundleManifest m;
  m.version = "v7";
  m.created_unix = 123;
  m.recency_decay = 0.8;
  m.self_half_life_days = 180;
  m.exclude_history_default = true;
  m.popularity_penalty_default = 0.05;
  m.new_items.weights = {{"rnn", 2.0}};
  m.new_items.popularity_penalty = 0.2;
  m.new_shoppers.weights = {{"cf", 0.0}};
  m.recent_days = 14;
  m.validation.start_unix = 100;
  m.validation.end_unix = 200;
  m.validation.rows = {{"blend", "new", 0.25, 17}, {"rnn", "all", 0.125, 20}};
  m.validation.notes = {"cnn: weight 0"};
  m.validation.report_file = "validation.md";
  m.sources = {{"cf", 0.5, 2.0, -1.0}, {"rnn", 1.0, 0.1, 0.0}};
  m.event_features = {{"quantity", "numeric", "units bought"}};
  m.context_features = {{"hour_sin", "numeric", "", -0.25}, {"country=FR", "numeric", "", 0.0}};
  m.models = {{"rnn", "rnn", "rnn.pt", 32, 20}};
  absl::StatusOr<BundleManifest> parsed = ParseManifest(SerializeManifest(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->version, "v7");
  EXPECT_EQ(parsed->created_unix, 123);
  EXPECT_DOUBLE_EQ(parsed->recency_decay, 0.8);
  EXPECT_DOUBLE_EQ(parsed->self_half_life_days, 180);
  EXPECT_TRUE(parsed->exclude_history_default);
  EXPECT_DOUBLE_EQ(parsed->popularity_penalty_default, 0.05);
  ASSERT_EQ(parsed->new_items.weights.size(), 1u);
  EXPECT_EQ(parsed->new_items.weights[0].first, "rnn");
  EXPECT_DOUBLE_EQ(parsed->new_items.weights[0].second, 2.0);
  EXPECT_THAT(parsed->new_items.popularity_penalty, ::testing::Optional(0.2));
  EXPECT_EQ(parsed->recent_days, 14);
  ASSERT_EQ(parsed->new_shoppers.weights.size(), 1u);
  EXPECT_EQ(parsed->new_shoppers.weights[0].first, "cf");
  EXPECT_EQ(parsed->new_shoppers.popularity_penalty, std::nullopt);
  EXPECT_EQ(parsed->validation.start_unix, 100);
  EXPECT_EQ(parsed->validation.end_unix, 200);
  ASSERT_EQ(parsed->validation.rows.size(), 2u);
  EXPECT_EQ(parsed->validation.rows[1].method, "rnn");
  EXPECT_EQ(parsed->validation.rows[1].variant, "all");
  EXPECT_DOUBLE_EQ(parsed->validation.rows[1].ndcg_at_10, 0.125);
  EXPECT_EQ(parsed->validation.rows[0].cases, 17);
  EXPECT_THAT(parsed->validation.notes, ::testing::ElementsAre("cnn: weight 0"));
  EXPECT_EQ(parsed->validation.report_file, "validation.md");
  ASSERT_EQ(parsed->sources.size(), 2u);
  EXPECT_DOUBLE_EQ(parsed->FindSource("cf")->slope, 2.0);
  EXPECT_DOUBLE_EQ(parsed->FindSource("cf")->intercept, -1.0);
  EXPECT_EQ(parsed->event_features[0].name, "quantity");
  EXPECT_THAT(ContextBaseline(*parsed), ::testing::ElementsAre(-0.25f, 0.0f));
  EXPECT_EQ(parsed->models[0].max_history, 20);
}

TEST(ManifestTest, RejectsBadManifestsWithAReason) {
  EXPECT_THAT(ParseManifest("{").status().message(), HasSubstr("malformed manifest"));
  EXPECT_THAT(
      ParseManifest(R"({"format_version": 2, "version": "x", "sources": []})").status().message(),
      HasSubstr("format_version 2"));
  EXPECT_THAT(
      ParseManifest(R"({"format_version": 1, "version": "x", "sources": []})").status().message(),
      HasSubstr("no \"cf\""));
  EXPECT_THAT(ParseManifest(R"({"format_version": 1, "version": "x", "cf": {"recency_decay": 0},
                                "sources": [{"name": "cf"}]})")
                  .status()
                  .message(),
              HasSubstr("recency_decay"));
  EXPECT_THAT(ParseManifest(R"({"format_version": 1, "version": "x",
                                "cf": {"self_half_life_days": -1}, "sources": [{"name": "cf"}]})")
                  .status()
                  .message(),
              HasSubstr("cf.self_half_life_days must be"));
  EXPECT_THAT(ParseManifest(R"({"format_version": 1, "version": "x",
                                "defaults": {"popularity_penalty": -0.1},
                                "sources": [{"name": "cf"}]})")
                  .status()
                  .message(),
              HasSubstr("defaults.popularity_penalty must be"));
  EXPECT_THAT(ParseManifest(R"({"format_version": 1, "version": "x",
                                "defaults": {"new_items": {"popularity_penalty": -1}},
                                "sources": [{"name": "cf"}]})")
                  .status()
                  .message(),
              HasSubstr("defaults.new_items.popularity_penalty must be"));
  EXPECT_THAT(ParseManifest(R"({"format_version": 1, "version": "x",
                                "defaults": {"new_items": {"weights": {"gnn": 1}}},
                                "sources": [{"name": "cf"}]})")
                  .status()
                  .message(),
              HasSubstr("defaults.new_items.weights[\"gnn\"]"));
  EXPECT_THAT(ParseManifest(R"({"format_version": 1, "version": "x",
                                "defaults": {"new_shoppers": {"weights": {"cf": -1}}},
                                "sources": [{"name": "cf"}]})")
                  .status()
                  .message(),
              HasSubstr("defaults.new_shoppers.weights[\"cf\"]"));
  // JSON has no infinity: a baseline beyond double's range is a malformed manifest.
  EXPECT_THAT(ParseManifest(R"({"format_version": 1, "version": "x", "sources": [{"name": "cf"}],
                                "feature_schema": {"context_features":
                                    [{"name": "hour_sin", "baseline": 1e999}]}})")
                  .status()
                  .message(),
              HasSubstr("malformed manifest"));
}

TEST(BundleTest, BuildsAndLoadsAVersionDirectory) {
  std::shared_ptr<const Bundle> bundle = testing::TinyBundle();
  ASSERT_NE(bundle, nullptr);
  EXPECT_EQ(bundle->manifest().version, "v1");
  EXPECT_EQ(bundle->catalog().size(), 4);
  EXPECT_EQ(bundle->catalog().Find("21C"), 2);
  EXPECT_FALSE(bundle->catalog().Find("21E").has_value());  // Bought after the cut-off.
  EXPECT_EQ(bundle->catalog().item(0).description, "ITEM A");
  EXPECT_EQ(bundle->cf_index().num_items(), 4);
  EXPECT_THAT(bundle->manifest().data_source, HasSubstr("cutoff_unix"));
}

// Options that build from the tiny retail CSV into a fresh temporary directory `name`.
BundleBuildOptions TinyBuildOptions(const std::string& name) {
  const std::string root = testing::MakeTempDir(name);
  testing::WriteFile(root + "/tiny.csv", testing::TinyRetailCsv());
  BundleBuildOptions options;
  options.input = root + "/tiny.csv";
  options.out_root = root;
  return options;
}

TEST(BundleTest, TheRecentWindowIsTheBuildersChoice) {
  BundleBuildOptions options = TinyBuildOptions("bundle_recent");
  options.cutoff_time = *ParseDateTime("2010-01-07");
  auto recent = [&](int days) {
    options.version = absl::StrCat("d", days);
    options.recent_days = days;
    std::vector<int64_t> lines;
    absl::StatusOr<BundleBuildResult> built = BuildCfBundle(options);
    EXPECT_TRUE(built.ok()) << built.status();
    if (!built.ok()) return lines;
    absl::StatusOr<std::shared_ptr<const Bundle>> bundle = Bundle::Load(built->dir);
    EXPECT_TRUE(bundle.ok()) << bundle.status();
    if (!bundle.ok()) return lines;
    EXPECT_EQ((*bundle)->manifest().recent_days, days);
    for (ItemIndex i = 0; i < (*bundle)->catalog().size(); ++i) {
      lines.push_back((*bundle)->catalog().item(i).recent_popularity);
    }
    return lines;
  };
  // 21A, 21B, 21C, 21D: every line of 2010-01-01 .. 06, or those of 01-05 and 01-06 only.
  EXPECT_THAT(recent(28), ::testing::ElementsAre(4, 3, 2, 1));
  EXPECT_THAT(recent(2), ::testing::ElementsAre(1, 0, 0, 1));
  options.version = "zero";
  options.recent_days = 0;
  EXPECT_THAT(BuildCfBundle(options).status().message(), HasSubstr("recent_days: 0 is not >= 1"));
}

TEST(BundleTest, RefusesToOverwriteAVersion) {
  BundleBuildOptions options = TinyBuildOptions("bundle_twice");
  options.version = "v1";
  ASSERT_TRUE(BuildCfBundle(options).ok());
  EXPECT_EQ(BuildCfBundle(options).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(BundleTest, LoadNamesTheBrokenFile) {
  BundleBuildOptions options = TinyBuildOptions("bundle_broken");
  options.version = "v1";
  absl::StatusOr<BundleBuildResult> built = BuildCfBundle(options);
  ASSERT_TRUE(built.ok());

  // As many items as the CF index covers (5), the first with a price that does not parse.
  testing::WriteFile(built->dir + "/items.tsv",
                     "id\tdescription\tprice\tcategory\tpopularity\trecent_popularity\n"
                     "A\tx\tcheap\t\t1\t0\nB\tx\t1\t\t1\t0\nC\tx\t1\t\t1\t0\n"
                     "D\tx\t1\t\t1\t0\nE\tx\t1\t\t1\t0\n");
  absl::Status s = Bundle::Load(built->dir).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("items.tsv:2: bad price 'cheap'"));

  testing::WriteFile(built->dir + "/items.tsv",
                     "id\tdescription\tprice\tcategory\tpopularity\trecent_popularity\n"
                     "A\tx\t1\t\t1\t0\n");
  EXPECT_THAT(Bundle::Load(built->dir).status().message(),
              HasSubstr("covers 5 items, the catalogue has 1"));
  // Found before any model loads (a large model takes minutes).
  ASSERT_TRUE(
      testing::AddModelSources(built->dir, testing::TinyFakeModelSources(), 5, {"France"}).ok());
  int loads = 0;
  const ModelLoader loader =
      [&](const std::string&, const ModelSpec&,
          const ModelShape&) -> absl::StatusOr<std::unique_ptr<ModelRunner>> {
    ++loads;
    return absl::InternalError("no model here");
  };
  EXPECT_THAT(Bundle::Load(built->dir, loader).status().message(),
              HasSubstr("covers 5 items, the catalogue has 1"));
  EXPECT_EQ(loads, 0);
}

TEST(ResolveBundleDirTest, PicksTheGreatestCompleteVersion) {
  const std::string root = testing::MakeTempDir("resolve");
  for (const char* v : {"20240101T000000Z", "20250101T000000Z", ".tmp-20990101T000000Z"}) {
    fs::create_directories(fs::path(root) / v);
    testing::WriteFile((fs::path(root) / v / "manifest.json").string(), "{}");
  }
  fs::create_directories(fs::path(root) / "20260101T000000Z");  // No manifest: incomplete.
  EXPECT_EQ(*ResolveBundleDir(root), root + "/20250101T000000Z");
  EXPECT_EQ(*ResolveBundleDir(root + "/20240101T000000Z"), root + "/20240101T000000Z");
  EXPECT_EQ(ResolveBundleDir(root + "/nope").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace recsys::core
