#include "tests/testutil/model_fixtures.h"

#include <cstdlib>

#include "core/bundle_builder.h"
#include "core/torch_model_runner.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::testing {

std::string MakeTinyModelBundleDir() {
  const std::string root = MakeTempDir("tiny_models");
  WriteFile(root + "/tiny.csv", TinyRetailCsv());
  core::BundleBuildOptions options;
  options.input = root + "/tiny.csv";
  options.out_root = root;
  options.version = "m1";
  options.cutoff_time = *core::ParseDateTime("2010-02-01");
  options.cf.shrinkage = 1.0;
  options.recency_decay = 0.5;
  options.self_recency_decay = 0.5;
  options.self_similarity = 0.0;
  absl::StatusOr<core::BundleBuildResult> built = core::BuildCfBundle(options);
  EXPECT_TRUE(built.ok()) << built.status();
  const std::string command = "/usr/bin/python3 " +
                              SourcePath("tests/testutil/make_tiny_models.py") +
                              " --bundle=" + built->dir;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  return built->dir;
}

std::shared_ptr<const core::Bundle> TinyModelBundle() {
  absl::StatusOr<std::shared_ptr<const core::Bundle>> bundle =
      core::Bundle::Load(MakeTinyModelBundleDir(), core::TorchScriptLoader("cpu"));
  EXPECT_TRUE(bundle.ok()) << bundle.status();
  return bundle.ok() ? *bundle : nullptr;
}

}  // namespace recsys::testing
