#include "server/cpu_quota.h"

#include <filesystem>
#include <thread>

#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::server {
namespace {

TEST(CpuQuotaTest, ReadsCgroupV2AndV1Quotas) {
  const int machine = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::string v2 = testing::MakeTempDir("cgroup_v2");
  testing::WriteFile(v2 + "/cpu.max", "100000 100000\n");
  EXPECT_EQ(CpuQuota(v2), 1);
  testing::WriteFile(v2 + "/cpu.max", "150000 100000\n");  // 1.5 CPUs: rounded up.
  EXPECT_EQ(CpuQuota(v2), std::min(2, machine));
  testing::WriteFile(v2 + "/cpu.max", "max 100000\n");
  EXPECT_EQ(CpuQuota(v2), machine);
  testing::WriteFile(v2 + "/cpu.max", "6400000 100000\n");  // More than the machine has.
  EXPECT_EQ(CpuQuota(v2), machine);

  const std::string v1 = testing::MakeTempDir("cgroup_v1");
  std::filesystem::create_directories(v1 + "/cpu");
  testing::WriteFile(v1 + "/cpu/cpu.cfs_quota_us", "50000\n");
  testing::WriteFile(v1 + "/cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(CpuQuota(v1), 1);
  testing::WriteFile(v1 + "/cpu/cpu.cfs_quota_us", "-1\n");  // Unlimited.
  EXPECT_EQ(CpuQuota(v1), machine);

  EXPECT_EQ(CpuQuota(testing::MakeTempDir("no_cgroup")), machine);
}

}  // namespace
}  // namespace recsys::server
