#include "server/cpu_quota.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <thread>

namespace recsys::server {

namespace {

// Quota / period as CPUs, or 0 when unlimited or unreadable.
double Ratio(double quota, double period) { return quota > 0 && period > 0 ? quota / period : 0.0; }

double ReadQuota(const std::string& root) {
  {
    std::ifstream in(root + "/cpu.max");  // cgroup v2: "max 100000" or "150000 100000".
    std::string quota;
    double period = 0;
    if (in >> quota >> period)
      return quota == "max" ? 0.0 : Ratio(std::atof(quota.c_str()), period);
  }
  std::ifstream quota_in(root + "/cpu/cpu.cfs_quota_us"),
      period_in(root + "/cpu/cpu.cfs_period_us");
  double quota = 0, period = 0;
  if (quota_in >> quota && period_in >> period) return Ratio(quota, period);
  return 0.0;
}

}  // namespace

int CpuQuota(const std::string& cgroup_root) {
  const int machine = std::max(1u, std::thread::hardware_concurrency());
  const double quota = ReadQuota(cgroup_root);
  if (quota <= 0) return machine;
  return std::clamp(static_cast<int>(std::ceil(quota)), 1, machine);
}

}  // namespace recsys::server
