// CONFIG_IOMMUFD_TEST per twin kernel, and the selftest's module globals
// (drivers/iommu/iommufd/selftest.c iommufd_test_memory_limit).

import type { Kernel } from "../kernel/kernel.js";
import { SideTable } from "../kernel/side_table.js";

interface SelftestState {
  enabled: boolean;
  /** iommufd_test_memory_limit: sizes pages.c's pfn batches, which the twin does not have */
  memoryLimit: number;
}

const states = new SideTable<Kernel, SelftestState>();

export function selftestState(k: Kernel): SelftestState {
  let s = states.get(k);
  if (!s) states.set(k, (s = { enabled: true, memoryLimit: 65536 }));
  return s;
}

/** CONFIG_IOMMUFD_TEST for kernel k (set before iommufd is used). */
export function setIommufdTest(k: Kernel, enabled: boolean): void {
  selftestState(k).enabled = enabled;
}

export function iommufdTestEnabled(k: Kernel): boolean {
  return selftestState(k).enabled;
}
