#include "tests/testutil/fixtures.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/bundle_builder.h"
#include "gtest/gtest.h"

namespace recsys::testing {

namespace fs = std::filesystem;

std::string MakeTempDir(const std::string& name) {
  // Unique per process and call: CTest runs tests of one binary in parallel processes.
  static std::atomic<int> counter{0};
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      ("recsys_" + name + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::string TinyRetailCsv() {
  return "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,CustomerID,Country\n"
         // Customer 1 buys A, B, C.
         "100,21A,ITEM A,1,2010-01-01 10:00:00,1.0,1,United Kingdom\n"
         "100,21B,\"ITEM B, \"\"QUOTED\"\"\",2,2010-01-01 10:00:00,2.0,1,United Kingdom\n"
         "100,21C,ITEM C,1,2010-01-01 10:00:00,3.0,1,United Kingdom\n"
         // Customer 2 buys A, B.
         "101,21A,ITEM A,1,2010-01-02 10:00:00,1.5,2,France\n"
         "101,21B,ITEM B,1,2010-01-02 10:00:00,2.0,2,France\n"
         // Customer 3 buys B, C.
         "102,21B,ITEM B,1,2010-01-03 10:00:00,2.0,3,Germany\n"
         "102,21C,ITEM C,1,2010-01-03 10:00:00,3.0,3,Germany\n"
         // Customer 4 buys A twice (repeat purchases do not count twice in similarities).
         "103,21A,ITEM A,1,2010-01-04 10:00:00,1.0,4,United Kingdom\n"
         "104,21A,ITEM A,1,2010-01-05 10:00:00,1.0,4,United Kingdom\n"
         // Customer 5 buys D only.
         "105,21D,ITEM D,1,2010-01-06 10:00:00,9.0,5,United Kingdom\n"
         // Dropped by the filter: cancellation, no customer, zero price, postage, after cut-off
         // tests use 2010-02-01.
         "C106,21A,ITEM A,-1,2010-01-07 10:00:00,1.0,1,United Kingdom\n"
         "107,21B,ITEM B,1,2010-01-07 10:00:00,2.0,,United Kingdom\n"
         "108,21C,ITEM C,1,2010-01-07 10:00:00,0,2,France\n"
         "109,POST,POSTAGE,1,2010-01-07 10:00:00,18.0,2,France\n"
         "110,21E,ITEM E,1,2010-03-01 10:00:00,5.0,3,Germany\n";
}

std::shared_ptr<const core::Bundle> TinyBundle(double recency_decay, int neighbors_per_item,
                                               double self_similarity, double self_half_life_days) {
  const std::string root = MakeTempDir("tiny_bundle");
  const std::string csv = root + "/tiny.csv";
  WriteFile(csv, TinyRetailCsv());
  core::BundleBuildOptions options;
  options.input = csv;
  options.out_root = root;
  options.version = "v1";
  options.cutoff_time = *core::ParseDateTime("2010-02-01");
  options.cf.shrinkage = 1.0;
  options.cf.neighbors_per_item = neighbors_per_item;
  options.recency_decay = recency_decay;
  options.self_similarity = self_similarity;
  options.self_recency_decay = recency_decay;
  options.self_half_life_days = self_half_life_days;
  absl::StatusOr<core::BundleBuildResult> built = core::BuildCfBundle(options);
  EXPECT_TRUE(built.ok()) << built.status();
  absl::StatusOr<std::shared_ptr<const core::Bundle>> bundle = core::Bundle::Load(built->dir);
  EXPECT_TRUE(bundle.ok()) << bundle.status();
  return *bundle;
}

core::RecommendRequest RequestWithHistory(const std::vector<std::string>& ids) {
  core::RecommendRequest r;
  for (const std::string& id : ids) r.history.emplace_back().item_id = id;
  return r;
}

std::string SourcePath(const std::string& relative) {
  return std::string(RECSYS_SOURCE_DIR) + "/" + relative;
}

std::string SmallRetailCsvPath() {
  return SourcePath("data/online-retail-ii/online_retail_ii_small.csv.gz");
}

void EditManifest(const std::string& dir, const std::function<void(core::BundleManifest*)>& edit) {
  std::ifstream in(dir + "/manifest.json");
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<core::BundleManifest> manifest = core::ParseManifest(text.str());
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  edit(&*manifest);
  WriteFile(dir + "/manifest.json", core::SerializeManifest(*manifest));
}

}  // namespace recsys::testing
