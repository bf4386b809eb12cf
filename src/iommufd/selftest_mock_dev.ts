// The selftest's mock bus (drivers/iommu/iommufd/selftest.c struct mock_dev and the device
// side of mock_ops): devices "iommufd_mockN" (N from mock_dev_ida, lowest free), each in an
// IOMMU group of its own, with no reserved regions, IOMMU_CAP_CACHE_COHERENCY, dirty
// tracking unless MOCK_FLAGS_DEVICE_NO_DIRTY, and no DMA port (a mock device never does DMA).

import { EINVAL } from "../uapi/errno.js";
import { MOCK_FLAGS_DEVICE_HUGE_IOVA, MOCK_FLAGS_DEVICE_NO_DIRTY } from "../uapi/iommufd_test.js";
import type { Kernel } from "../kernel/kernel.js";
import type { IommuDomain } from "../iommu/domain.js";
import { type IommuCap, IommuCore, IommuDevice, type ResvRegion } from "../iommu/iommu.js";
import { MockDomain } from "./selftest_mock_domain.js";
import { MockNestedDomain } from "./selftest_mock_nested.js";
import { SideTable, SideSet } from "../kernel/side_table.js";

/** mock_dev_ida per kernel: the ids of the mock devices alive */
const idas = new SideTable<Kernel, Set<number>>();
/** kernels where a platform IOMMU claims the mock bus (see setMockIommuProbes()) */
const unprobed = new SideSet<Kernel>();

/**
 * Whether the mock IOMMU probes the mock bus's devices (default: yes, as on the oracle's
 * --no-viommu kernel the selftest was recorded on). On a kernel where intel-iommu registered
 * first with a NULL fwnode (the oracle's VT-d machine), __iommu_probe_device() hands a mock
 * device to intel_iommu_probe_device(), which refuses a non-PCI device: the device has no
 * IOMMU and MOCK_DOMAIN fails in iommufd_device_bind() with EINVAL. The twin's machine is
 * VT-d in every other respect; pass false for that kernel's answers.
 */
export function setMockIommuProbes(k: Kernel, probes: boolean): void {
  if (probes) unprobed.delete(k);
  else unprobed.add(k);
}

/** device_iommu_capable(IOMMU_CAP_CACHE_COHERENCY) of a mock device: false when it has no IOMMU */
export function mockDevHasIommu(dev: MockDev): boolean {
  return !unprobed.has(dev.core.k);
}

/** struct mock_dev */
export class MockDev extends IommuDevice {
  constructor(
    core: IommuCore,
    readonly mockId: number,
    readonly flags: number,
  ) {
    super(core, `iommufd_mock${mockId}`, null, core.allocGroup(), { coherent: false, pasid: false });
  }

  /** mock_domain_capable(): IOMMU_CAP_ENFORCE_CACHE_COHERENCY is not among its answers */
  override capable(cap: IommuCap): boolean {
    return cap === "dirty-tracking" ? (this.flags & MOCK_FLAGS_DEVICE_NO_DIRTY) === 0 : false;
  }

  /** mock_ops has no get_resv_regions */
  override resvRegions(): ResvRegion[] {
    return [];
  }
}

/** mock_dev_create(): EINVAL for unknown flags. */
export function mockDevCreate(k: Kernel, flags: number): MockDev | number {
  if (flags & ~(MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_HUGE_IOVA)) return -EINVAL;
  let ida = idas.get(k);
  if (!ida) idas.set(k, (ida = new Set()));
  let id = 0;
  while (ida.has(id)) id++;
  ida.add(id);
  const core = IommuCore.of(k);
  const dev = new MockDev(core, id, flags);
  core.addDevice(dev);
  return dev;
}

/** mock_dev_destroy(): device_unregister(), then mock_dev_release() frees the id. */
export function mockDevDestroy(dev: MockDev): void {
  dev.core.removeDevice(dev);
  idas.get(dev.core.k)?.delete(dev.mockId);
}

/** The mock devices alive in k (for invariant checks). */
export function mockDevIds(k: Kernel): number[] {
  return [...(idas.get(k) ?? [])].sort((a, b) => a - b);
}

/**
 * The driver's part of attaching `dev` to `domain`: __iommu_attach_group() refuses a domain
 * of another IOMMU driver (domain->owner != dev_iommu_ops(dev)), then mock_domain_nop_attach()
 * refuses a domain with dirty ops for a device without dirty tracking.
 */
export function driverAttachDev(domain: IommuDomain, dev: IommuDevice): number {
  const mockDomain = domain instanceof MockDomain || domain instanceof MockNestedDomain;
  if (dev instanceof MockDev !== mockDomain) return -EINVAL;
  if (domain instanceof MockDomain && domain.dirtyOps && (dev as MockDev).flags & MOCK_FLAGS_DEVICE_NO_DIRTY)
    return -EINVAL;
  return 0;
}
