// Syzkaller's IOVAs (drivers/iommu/iommufd/selftest.c iommufd_test_syz_conv_iova()): with
// MOCK_FLAGS_ACCESS_SYZ a u64 IOVA is { u32 nth_area; u32 offset }, the start of the IOAS's
// nth area (in IOVA order) plus offset, or 0 when there is no such area. The access ops use
// it, and with CONFIG_IOMMUFD_TEST so does IOMMU_IOAS_COPY for its source IOVA.

import { MOCK_FLAGS_ACCESS_SYZ } from "../uapi/iommufd_test.js";
import { getIoas } from "./ioas.js";
import type { IoPagetable } from "./io_pagetable.js";
import type { IommufdCtx } from "./main.js";

/** __iommufd_test_syz_conv_iova() */
export function syzConvIova(iopt: IoPagetable, v: bigint): bigint {
  let nth = Number(v & 0xffffffffn);
  for (const a of iopt.areas.all()) if (nth-- === 0) return a.start + (v >> 32n);
  return 0n;
}

/** iommufd_test_syz_conv_iova_id(): the flag is dropped even when the IOAS is not found. */
export function syzConvIovaId(
  ictx: IommufdCtx,
  ioasId: number,
  iova: bigint,
  flags: number,
): { iova: bigint; flags: number } {
  if (!(flags & MOCK_FLAGS_ACCESS_SYZ)) return { iova, flags };
  flags &= ~MOCK_FLAGS_ACCESS_SYZ;
  const ioas = getIoas(ictx, ioasId);
  if (!ioas) return { iova, flags };
  iova = syzConvIova(ioas.iopt, iova);
  ioas.put();
  return { iova, flags };
}
