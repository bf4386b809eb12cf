// Fault injection in the manner of /proc/self/task/<tid>/fail-nth (lib/fault-inject.c,
// mm/failslab.c) and iommufd_should_fail() (tools/testing/selftests/iommu/iommufd_fail_nth.c):
// armed with n, the n-th fallible step after arming fails, once. The fallible steps are the
// ones that can fail in the kernel for reasons userspace does not control, each marked with
// a shouldFail() where the kernel allocates or may fail: iommufd's object and area
// allocation (ENOMEM), page pinning and IOMMU mapping (ENOMEM), reserved-region lookup
// (iommufd_should_fail() in iopt_table_enforce_dev_resv_regions: EINVAL) and object lookup
// (iommufd_should_fail() in iommufd_get_object(): ENOENT); type1's pinning and iommu_map;
// VFIO's container, device file and IOMMU driver allocations; KVM's device and KVM-VFIO
// file list allocations (docs/explorer.md lists them).
//
// One countdown for the whole twin: tests arm it around one call at a time. It lives in the
// kernel layer so that every subsystem (KVM too, which may not import iommufd) marks its own.

let countdown = 0;
let hits = 0;

/** Arm: the n-th fallible step from now fails (n >= 1); 0 disarms. */
export function setFailNth(n: number): void {
  countdown = n;
  hits = 0;
}

/** Fallible steps passed since arming (how far a run got). */
export function failNthSteps(): number {
  return hits;
}

/** What /proc/self/task/TID/fail-nth reads: the steps left before the failure, 0 once it
 * fired (or when disarmed), as task->fail_nth counts down in should_fail_ex(). */
export function failNthRemaining(): number {
  return countdown;
}

/** True when this fallible step is the one to fail. */
export function shouldFail(): boolean {
  if (countdown === 0) return false;
  hits++;
  if (--countdown === 0) return true;
  return false;
}
