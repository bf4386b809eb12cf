// The selftest's nested mock domain (drivers/iommu/iommufd/selftest.c struct
// mock_iommu_domain_nested, mock_domain_alloc_user() with a parent,
// mock_domain_cache_invalidate_user()): a stage-1 over a mock parent whose only state is a
// 4-entry IOTLB that IOMMU_HWPT_INVALIDATE clears and MD_CHECK_IOTLB reads.

import { EFAULT, EINVAL, EOPNOTSUPP } from "../uapi/errno.js";
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_TEST_INVALIDATE_FLAG_ALL,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
  MOCK_NESTED_DOMAIN_IOTLB_NUM,
} from "../uapi/iommufd_test.js";
import type { Process } from "../kernel/process.js";
import { IommuDomain } from "../iommu/domain.js";
import { uaddr } from "./pages.js";
import { MockDomain } from "./selftest_mock_domain.js";

/** struct mock_iommu_domain_nested: a stage-1 over a mock parent, with a 4-entry "IOTLB". */
export class MockNestedDomain extends IommuDomain {
  readonly iotlb: number[];
  constructor(
    readonly parent: MockDomain,
    iotlb: number,
    owner: string,
  ) {
    super("nested", 0n, 0n, 0n, false, owner);
    this.iotlb = new Array<number>(MOCK_NESTED_DOMAIN_IOTLB_NUM).fill(iotlb);
  }

  /**
   * mock_domain_cache_invalidate_user(): entries of struct iommu_hwpt_invalidate_selftest,
   * each copied with iommu_copy_struct_from_user_array() (entry_len must be exactly 8);
   * `done` counts the entries handled before the first error.
   */
  cacheInvalidateUser(
    proc: Process,
    a: { type: number; uptr: bigint; entryLen: number; entryNum: number },
  ): { rc: number; done: number } {
    if (a.type !== IOMMU_HWPT_INVALIDATE_DATA_SELFTEST) return { rc: -EINVAL, done: 0 };
    const size = iommu_hwpt_invalidate_selftest.size;
    let done = 0;
    for (let i = 0; i < a.entryNum; i++) {
      if (a.entryLen < size || size < a.entryLen) return { rc: -EINVAL, done };
      const b = proc.mm.copyFromUser(uaddr(a.uptr + BigInt(a.entryLen * i)), size);
      if (typeof b === "number") return { rc: -EFAULT, done };
      const inv = iommu_hwpt_invalidate_selftest.decode(b);
      if (inv.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) return { rc: -EOPNOTSUPP, done };
      if (inv.iotlb_id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) return { rc: -EINVAL, done };
      if (inv.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) this.iotlb.fill(0);
      else this.iotlb[inv.iotlb_id] = 0;
      done++;
    }
    return { rc: 0, done };
  }
}

/**
 * mock_domain_alloc_user() with a parent: a nested mock domain from struct
 * iommu_hwpt_selftest (iommu_copy_struct_from_user(): the type must match, 4 <= len <= 4).
 */
export function mockDomainAllocNested(
  proc: Process,
  parent: IommuDomain,
  flags: number,
  data: { type: number; uptr: bigint; len: number },
  owner: string,
): MockNestedDomain | number {
  if (data.type !== IOMMU_HWPT_DATA_SELFTEST || flags) return -EOPNOTSUPP;
  if (!(parent instanceof MockDomain)) return -EINVAL;
  const size = iommu_hwpt_selftest.size;
  if (data.len < size || size < data.len) return -EINVAL;
  const b = proc.mm.copyFromUser(uaddr(data.uptr), data.len);
  if (typeof b === "number") return -EFAULT;
  return new MockNestedDomain(parent, iommu_hwpt_selftest.decode(b).iotlb, owner);
}
