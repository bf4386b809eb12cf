// HWPT commands (drivers/iommu/iommufd/hw_pagetable.c): HWPT_ALLOC, SET_DIRTY_TRACKING,
// GET_DIRTY_BITMAP, INVALIDATE. The emulated Intel IOMMU of the oracle has neither dirty
// tracking nor nesting: DIRTY_TRACKING / NEST_PARENT allocations fail with EOPNOTSUPP, a
// paging domain has no dirty_ops (SET_DIRTY_TRACKING and GET_DIRTY_BITMAP answer EOPNOTSUPP
// after their argument checks) and no HWPT_NESTED can exist (INVALIDATE answers ENOENT).

import { EINVAL, ENOENT, EOPNOTSUPP, EOVERFLOW } from "../uapi/errno.js";
import {
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  type iommu_hwpt_alloc,
  type iommu_hwpt_get_dirty_bitmap,
  type iommu_hwpt_invalidate,
  type iommu_hwpt_set_dirty_tracking,
} from "../uapi/iommufd.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import { U64_MAX } from "./io_pagetable.js";
import type { Ucmd } from "./main.js";
import type { IommufdObject } from "./object.js";

type V<T> = T extends { decode(b: Uint8Array): infer R } ? R : never;

const IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX = 1 << 19;

/** The device half of HWPT_ALLOC, provided by ./device.ts once devices exist. */
export type HwptAllocFn = (u: Ucmd<V<typeof iommu_hwpt_alloc>>, dev: IommufdObject, pt: IommufdObject) => number;
let hwptAllocImpl: HwptAllocFn | null = null;
export function setHwptAllocImpl(f: HwptAllocFn): void {
  hwptAllocImpl = f;
}

/** iommufd_hwpt_alloc(): argument checks, then device (ENOENT) and pt (EINVAL) lookups. */
export function hwptAlloc(u: Ucmd<V<typeof iommu_hwpt_alloc>>): number {
  const cmd = u.cmd;
  if (cmd.__reserved) return -EOPNOTSUPP;
  if (
    (cmd.data_type === IOMMU_HWPT_DATA_NONE && cmd.data_len) ||
    (cmd.data_type !== IOMMU_HWPT_DATA_NONE && !cmd.data_len)
  )
    return -EINVAL;
  const dev = u.ictx.objects.get(cmd.dev_id, "device");
  if (!dev) return -ENOENT;
  try {
    const pt = u.ictx.objects.get(cmd.pt_id);
    if (!pt) return -EINVAL;
    try {
      if (pt.type !== "ioas" && pt.type !== "hwpt_paging") return -EINVAL;
      if (!hwptAllocImpl) return -EINVAL;
      return hwptAllocImpl(u, dev, pt);
    } finally {
      pt.put();
    }
  } finally {
    dev.put();
  }
}

/** iommufd_hwpt_set_dirty_tracking(): no dirty_ops on the emulated VT-d. */
export function setDirtyTracking(u: Ucmd<V<typeof iommu_hwpt_set_dirty_tracking>>): number {
  const cmd = u.cmd;
  if (cmd.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) return -EOPNOTSUPP;
  const hwpt = u.ictx.objects.get(cmd.hwpt_id, "hwpt_paging");
  if (!hwpt) return -ENOENT;
  hwpt.put();
  return -EOPNOTSUPP;
}

/** iommufd_hwpt_get_dirty_bitmap(): iommufd_check_iova_range(), then no dirty_ops. */
export function getDirtyBitmap(u: Ucmd<V<typeof iommu_hwpt_get_dirty_bitmap>>): number {
  const cmd = u.cmd;
  if (cmd.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR || cmd.__reserved) return -EOPNOTSUPP;
  const hwpt = u.ictx.objects.get(cmd.hwpt_id, "hwpt_paging") as (IommufdObject & { iovaAlignment(): number }) | null;
  if (!hwpt) return -ENOENT;
  try {
    const pg = BigInt(hwpt.iovaAlignment());
    if (!cmd.length) return -EINVAL;
    const last = cmd.iova + cmd.length - 1n;
    if (last > U64_MAX) return -EOVERFLOW;
    if (cmd.iova & (pg - 1n) || (last + 1n) & (pg - 1n)) return -EINVAL;
    if (!cmd.page_size) return -EINVAL;
    if (cmd.iova % cmd.page_size || (last + 1n) % cmd.page_size) return -EINVAL;
    return -EOPNOTSUPP;
  } finally {
    hwpt.put();
  }
}

/** iommufd_hwpt_invalidate(): entry_num is written back (0) whatever happens. */
export function invalidate(u: Ucmd<V<typeof iommu_hwpt_invalidate>>): number {
  const cmd = u.cmd;
  let rc: number;
  if (cmd.__reserved) rc = -EOPNOTSUPP;
  else if (
    cmd.entry_num &&
    (!cmd.data_uptr ||
      !cmd.entry_len ||
      cmd.entry_len > PAGE_SIZE ||
      cmd.entry_num > IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX)
  )
    rc = -EINVAL;
  else rc = -ENOENT; // iommufd_get_hwpt_nested(): none can exist without nesting support
  cmd.entry_num = 0;
  if (u.respond()) return -14;
  return rc;
}
