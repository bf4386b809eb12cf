// The host PASID space (drivers/iommu/iommu.c iommu_alloc_global_pasid(), iommu_free_global_pasid():
// one IDA, iommu_global_pasid_ida, from IOMMU_FIRST_GLOBAL_PASID = 1). A PASID that a CPU's
// ENQCMD can carry names one address space machine-wide, so it must come from here.
//
// alloc(owner) is the kernel's allocator (the lowest free PASID). claim(pasid, owner) is the
// twin's: iommufd's PASID attach takes a user-chosen PASID for ENQCMD authorization
// (docs/pasid.md), which is granted only while no other owner holds that PASID; claims by one
// owner are counted, and the PASID is free again when its owner's last claim is put.

import { EBUSY, EINVAL, ENOSPC } from "../uapi/errno.js";
import type { Kernel } from "../kernel/kernel.js";
import { SideTable } from "../kernel/side_table.js";

export const IOMMU_FIRST_GLOBAL_PASID = 1;

interface Entry {
  readonly owner: unknown;
  count: number;
}

export class GlobalPasidSpace {
  private readonly used = new Map<number, Entry>();
  constructor(readonly max: number) {}

  /** iommu_alloc_global_pasid(): the lowest free PASID for `owner`, or -ENOSPC. */
  alloc(owner: unknown): number {
    for (let p = IOMMU_FIRST_GLOBAL_PASID; p <= this.max; p++) {
      if (this.used.has(p)) continue;
      this.used.set(p, { owner, count: 1 });
      return p;
    }
    return -ENOSPC;
  }

  /** Take `pasid` for `owner` (again): -EBUSY while another owner holds it. */
  claim(pasid: number, owner: unknown): number {
    if (!Number.isInteger(pasid) || pasid < IOMMU_FIRST_GLOBAL_PASID || pasid > this.max) return -EINVAL;
    const e = this.used.get(pasid);
    if (e && e.owner !== owner) return -EBUSY;
    if (e) e.count++;
    else this.used.set(pasid, { owner, count: 1 });
    return 0;
  }

  /** iommu_free_global_pasid(), or one claim fewer. */
  put(pasid: number, owner: unknown): void {
    const e = this.used.get(pasid);
    if (!e || e.owner !== owner) throw new Error(`global PASID ${pasid} put by a non-owner`);
    if (--e.count === 0) this.used.delete(pasid);
  }

  ownerOf(pasid: number): unknown {
    return this.used.get(pasid)?.owner;
  }

  get size(): number {
    return this.used.size;
  }
}

const spaces = new SideTable<Kernel, GlobalPasidSpace>();

/** The host's PASID space (20-bit PASIDs, as VT-d and the PCIe PASID prefix have them). */
export function globalPasids(k: Kernel): GlobalPasidSpace {
  let s = spaces.get(k);
  if (!s) spaces.set(k, (s = new GlobalPasidSpace((1 << 20) - 1)));
  return s;
}
