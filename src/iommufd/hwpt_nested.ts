// HWPT_NESTED objects (drivers/iommu/iommufd/hw_pagetable.c iommufd_hwpt_nested_alloc()):
// a user-managed stage-1 domain over a NEST_PARENT paging HWPT. Only the selftest's mock
// driver makes them in the twin (the emulated VT-d has no nesting): IOMMU_HWPT_ALLOC on a
// HWPT_PAGING parent with IOMMU_HWPT_DATA_SELFTEST data, optionally with a FAULT object
// (IOMMU_HWPT_FAULT_ID_VALID). Devices attach to it like to any HWPT (reserved regions go to
// the parent's IOAS); IOMMU_HWPT_INVALIDATE reaches its domain's cache_invalidate_user.
//
// References: it holds its parent ("nested hwpt <id>") and its fault ("hwpt <id>").

import { EINVAL, EOPNOTSUPP } from "../uapi/errno.js";
import { IOMMU_HWPT_FAULT_ID_VALID } from "../uapi/iommufd.js";
import type { Process } from "../kernel/process.js";
import type { IommufdDevice } from "./device.js";
import type { IommufdFault } from "./fault.js";
import type { IommufdHwptPaging } from "./hw_pagetable.js";
import type { IommufdCtx } from "./main.js";
import { IommufdObject } from "./object.js";
import { MockDev } from "./selftest_mock_dev.js";
import { mockDomainAllocNested, type MockNestedDomain } from "./selftest_mock_nested.js";

/** struct iommufd_hwpt_nested */
export class IommufdHwptNested extends IommufdObject {
  /** never an automatic HWPT */
  readonly autoDomain = false;
  fault: IommufdFault | null = null;

  constructor(
    readonly ictx: IommufdCtx,
    readonly parent: IommufdHwptPaging,
    readonly domain: MockNestedDomain,
  ) {
    super(ictx.k, "hwpt_nested", ictx.name);
  }

  /** find_hwpt_paging(): reserved regions and replace checks use the parent's IOAS */
  get ioas(): IommufdHwptPaging["ioas"] {
    return this.parent.ioas;
  }

  /** iommufd_hwpt_nested_destroy() */
  protected destroyObj(): void {
    this.fault?.put(`hwpt ${this.id}`);
    this.parent.put(`nested hwpt ${this.id}`);
  }
}

/** iommufd_hwpt_nested_alloc(): not finalized (the caller finalizes or aborts). */
export function hwptNestedAlloc(
  ictx: IommufdCtx,
  proc: Process,
  parent: IommufdHwptPaging,
  idev: IommufdDevice,
  flags: number,
  data: { type: number; uptr: bigint; len: number },
): IommufdHwptNested | number {
  // the emulated VT-d: intel_iommu_domain_alloc_user() exists, nesting does not
  const mock = idev.dev instanceof MockDev;
  if (flags & ~IOMMU_HWPT_FAULT_ID_VALID || !data.len) return -EOPNOTSUPP;
  if (parent.autoDomain || !parent.nestParent || !mock) return -EINVAL;
  // domain_alloc_user() runs after the object's id is reserved in the kernel; a failure
  // there frees the id again, so allocating the domain first answers the same
  const d = mockDomainAllocNested(proc, parent.domain, flags & ~IOMMU_HWPT_FAULT_ID_VALID, data, "iommufd nested hwpt");
  if (typeof d === "number") return d;
  const hwpt = new IommufdHwptNested(ictx, parent, d);
  const rc = ictx.objects.alloc(hwpt);
  if (rc) return rc;
  parent.get(`nested hwpt ${hwpt.id}`);
  d.owner = `iommufd hwpt ${hwpt.id}`;
  return hwpt;
}
