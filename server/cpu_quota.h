#ifndef RECSYS_SERVER_CPU_QUOTA_H_
#define RECSYS_SERVER_CPU_QUOTA_H_

#include <string>

namespace recsys::server {

// The CPUs this process may use: the cgroup CPU quota (cgroup v2 "cpu.max", or v1
// "cpu.cfs_quota_us" / "cpu.cfs_period_us" under `cgroup_root`), rounded up, capped by the CPUs
// the machine has; the machine's CPUs when no quota is set. At least 1. On Kubernetes this is
// the container's CPU limit, which std::thread::hardware_concurrency() does not see.
int CpuQuota(const std::string& cgroup_root = "/sys/fs/cgroup");

}  // namespace recsys::server

#endif  // RECSYS_SERVER_CPU_QUOTA_H_
