// Dirty-bit reporting to a user bitmap (drivers/iommu/iommufd/iova_bitmap.c and
// io_pagetable.c iopt_read_and_clear_dirty_data(), iopt_set_dirty_tracking()): what
// IOMMU_HWPT_GET_DIRTY_BITMAP and IOMMU_HWPT_SET_DIRTY_TRACKING do for a domain with
// dirty_ops (only the selftest's mock domain has them in the twin).
//
// The user bitmap has one bit per page_size of [iova, iova + length), bit i in u64 i / 64
// (little endian, so byte i / 8); bits are set (never cleared) for every IOVA the domain
// reports dirty. iova_bitmap_alloc() pins the bitmap's pages for writing first, so an
// unwritable bitmap fails with EFAULT before any dirty bit is read or cleared.

import { EFAULT, EINVAL } from "../uapi/errno.js";
import type { Process } from "../kernel/process.js";
import type { IoPagetable } from "./io_pagetable.js";
import { uaddr } from "./pages.js";

/** struct iommu_dirty_ops */
export interface DirtyOps {
  setDirtyTracking(enable: boolean): number;
  /** report dirty IOVA ranges of [iova, iova + size) through record (null: clear only) */
  readAndClearDirty(
    iova: number,
    size: number,
    flags: number,
    record: ((iova: number, length: number) => void) | null,
  ): number;
}

/** iopt_set_dirty_tracking(): enabling clears the dirty bits of every area first. */
export function ioptSetDirtyTracking(iopt: IoPagetable, ops: DirtyOps, enable: boolean): number {
  if (enable) {
    // iopt_clear_dirty_data()
    for (const a of iopt.areas.all()) {
      if (!a.pages) continue;
      const rc = ops.readAndClearDirty(Number(a.start), Number(a.length), 0, null);
      if (rc) return rc;
    }
  }
  return ops.setDirtyTracking(enable);
}

function ctz(v: bigint): bigint {
  let n = 0n;
  while (((v >> n) & 1n) === 0n) n++;
  return n;
}

/**
 * iommu_read_and_clear_dirty() after iommufd_check_iova_range(): walk the areas covering
 * [iova, iova + length) contiguously, set the bits of what the domain reports; EINVAL when
 * the range has a hole (after the bits before it were set, as the kernel does).
 */
export function ioptReadAndClearDirty(
  proc: Process,
  iopt: IoPagetable,
  ops: DirtyOps,
  flags: number,
  b: { iova: bigint; length: bigint; page_size: bigint; data: bigint },
): number {
  const shift = ctz(b.page_size);
  // iova_bitmap_alloc(): the u64 words covering the bitmap, pinned for writing
  const nbytes = (Number(((b.length - 1n) >> shift) / 64n) + 1) * 8;
  const addr = uaddr(b.data);
  const bytes = proc.mm.copyFromUser(addr, nbytes);
  if (typeof bytes === "number" || proc.mm.copyToUser(addr, bytes) < 0) return -EFAULT;
  const nbits = Number(((b.length - 1n) >> shift) + 1n);
  const base = Number(b.iova);
  const sh = Number(shift);
  const record = (iova: number, length: number): void => {
    const first = Math.max(0, Math.floor((iova - base) / 2 ** sh));
    const last = Math.min(nbits - 1, Math.floor((iova + length - 1 - base) / 2 ** sh));
    for (let i = first; i <= last; i++) bytes[i >> 3] = bytes[i >> 3]! | (1 << (i & 7));
  };
  // __iommu_read_and_clear_dirty(): iopt_for_each_contig_area()
  const last = b.iova + b.length - 1n;
  let cur = b.iova;
  let rc = 0;
  let a = iopt.areas.first(cur, cur);
  for (;;) {
    if (a === null || a.pages === null || a.start > cur) {
      rc = -EINVAL;
      break;
    }
    const end = a.last < last ? a.last : last;
    rc = ops.readAndClearDirty(Number(cur), Number(end - cur + 1n), flags, record);
    if (rc || end === last) break;
    cur = end + 1n;
    a = iopt.areas.first(cur, cur);
  }
  const w = proc.mm.copyToUser(addr, bytes);
  return rc || w;
}
