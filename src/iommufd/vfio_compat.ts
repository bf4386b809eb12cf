// The VFIO container API on an iommufd (drivers/iommu/iommufd/vfio_compat.c): ioctl numbers
// outside iommufd's table reach iommufd_vfio_ioctl(). The container's IOAS is the one
// IOMMU_VFIO_IOAS SET chose (or that a VFIO group's SET_CONTAINER will create later); with
// none, everything that needs it answers ENODEV. Unknown numbers and VFIO_IOMMU_DIRTY_PAGES
// are ENOIOCTLCMD, which the VFS turns into ENOTTY.

import { EFAULT, EINVAL, ENODEV, ENOENT, ENOTTY, EOPNOTSUPP } from "../uapi/errno.js";
import {
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  type iommu_vfio_ioas,
} from "../uapi/iommufd.js";
import * as V from "../uapi/vfio.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import type { Process } from "../kernel/process.js";
import { holes, IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, ULONG_MAX } from "./io_pagetable.js";
import { getIoas, type IommufdIoas } from "./ioas.js";
import type { IommufdCtx, Ucmd } from "./main.js";
import { IOPT_PAGES_ACCOUNT_MM } from "./pages.js";

const dma_map = V.vfio_iommu_type1_dma_map;
const dma_unmap = V.vfio_iommu_type1_dma_unmap;
const type1_info = V.vfio_iommu_type1_info;
const {
  VFIO_GET_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_SET_IOMMU,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_DMA_CC_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_NOIOMMU_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
} = V;

/** get_compat_ioas(): the compat IOAS with a short-term reference, or -ENODEV. */
function getCompatIoas(ictx: IommufdCtx): IommufdIoas | number {
  const ioas = ictx.vfioIoas;
  if (!ioas || ioas.dead) return -ENODEV;
  ioas.get();
  return ioas;
}

/** iommufd_vfio_ioas(): IOMMU_VFIO_IOAS GET / SET / CLEAR. */
export function iommufdVfioIoas(u: Ucmd<ReturnType<typeof iommu_vfio_ioas.decode>>): number {
  const cmd = u.cmd;
  if (cmd.__reserved) return -EOPNOTSUPP;
  switch (cmd.op) {
    case IOMMU_VFIO_IOAS_GET: {
      const ioas = getCompatIoas(u.ictx);
      if (typeof ioas === "number") return ioas;
      cmd.ioas_id = ioas.id;
      ioas.put();
      return u.respond();
    }
    case IOMMU_VFIO_IOAS_SET: {
      const ioas = getIoas(u.ictx, cmd.ioas_id);
      if (!ioas) return -ENOENT; // iommufd_get_ioas()
      u.ictx.vfioIoas = ioas;
      ioas.put();
      return 0;
    }
    case IOMMU_VFIO_IOAS_CLEAR:
      u.ictx.vfioIoas = null;
      return 0;
    default:
      return -EOPNOTSUPP;
  }
}

function checkExtension(ictx: IommufdCtx, type: number): number {
  switch (type) {
    case VFIO_TYPE1_IOMMU:
    case VFIO_TYPE1v2_IOMMU:
    case VFIO_UNMAP_ALL:
      return 1;
    case VFIO_NOIOMMU_IOMMU:
      return 1; // CONFIG_VFIO_NOIOMMU=y on the oracle's kernel
    case VFIO_DMA_CC_IOMMU: {
      // iommufd_vfio_cc_iommu(): every HWPT of the compat IOAS enforces coherency
      const ioas = getCompatIoas(ictx);
      if (typeof ioas === "number") return ioas;
      const rc = ioas.hwptList.every((h) => h.enforceCacheCoherency) ? 1 : 0;
      ioas.put();
      return rc;
    }
    case VFIO_TYPE1_NESTING_IOMMU:
    default:
      return 0;
  }
}

function setIommu(ictx: IommufdCtx, type: number): number {
  if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU) return -EINVAL;
  const ioas = getCompatIoas(ictx);
  if (typeof ioas === "number") return ioas;
  const rc = type === VFIO_TYPE1_IOMMU ? ioas.iopt.disableLarge() : 0;
  ioas.put();
  return rc;
}

function mapDma(ictx: IommufdCtx, proc: Process, arg: number): number {
  const minsz = dma_map.offsetOfEnd("size");
  const map = proc.mm.readStruct(dma_map, arg, minsz);
  if (map === null) return -EFAULT;
  if (map.argsz < minsz || map.flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) return -EINVAL;
  let prot = IOMMU_CACHE;
  if (map.flags & VFIO_DMA_MAP_FLAG_READ) prot |= IOMMU_READ;
  if (map.flags & VFIO_DMA_MAP_FLAG_WRITE) prot |= IOMMU_WRITE;
  const ioas = getCompatIoas(ictx);
  if (typeof ioas === "number") return ioas;
  const r = ioas.iopt.mapUserPages(
    map.iova,
    map.vaddr,
    map.size,
    prot,
    false,
    proc,
    ictx.accountMode === IOPT_PAGES_ACCOUNT_MM,
  );
  ioas.put();
  return typeof r === "number" ? r : 0;
}

function unmapDma(ictx: IommufdCtx, proc: Process, arg: number): number {
  const minsz = dma_unmap.offsetOfEnd("size");
  const unmap = proc.mm.readStruct(dma_unmap, arg, minsz);
  if (unmap === null) return -EFAULT;
  if (unmap.argsz < minsz || unmap.flags & ~VFIO_DMA_UNMAP_FLAG_ALL) return -EINVAL;
  const ioas = getCompatIoas(ictx);
  if (typeof ioas === "number") return ioas;
  try {
    let r: { rc: number; unmapped: bigint };
    if (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
      if (unmap.iova !== 0n || unmap.size !== 0n) return -EINVAL;
      r = ioas.iopt.unmapAll();
    } else {
      if (ioas.iopt.disableLargePages) {
        const rc = ioas.iopt.cutIova(
          unmap.iova ? [unmap.iova + unmap.size - 1n, unmap.iova - 1n] : [unmap.iova + unmap.size - 1n],
        );
        if (rc) return rc;
      }
      r = ioas.iopt.unmapIova(unmap.iova, unmap.size);
    }
    unmap.size = r.unmapped;
    const out = dma_unmap.encode(unmap);
    if (proc.mm.copyToUser(arg, out, minsz)) return -EFAULT;
    return r.rc;
  } finally {
    ioas.put();
  }
}

/** iommufd_vfio_iommu_get_info() with its two capabilities (dma_avail, iova ranges). */
function getInfo(ictx: IommufdCtx, proc: Process, arg: number): number {
  let minsz = type1_info.offsetOfEnd("iova_pgsizes");
  const b = proc.mm.copyFromUser(arg, minsz);
  if (typeof b === "number") return -EFAULT;
  const info = type1_info.decode(b);
  if (info.argsz < minsz) return -EINVAL;
  minsz = Math.min(info.argsz, type1_info.size);
  const ioas = getCompatIoas(ictx);
  if (typeof ioas === "number") return ioas;
  try {
    const iopt = ioas.iopt;
    // iommufd_get_pagesizes()
    let pg = ULONG_MAX;
    for (const d of iopt.domains) pg &= d.pgsizeBitmap;
    const pageMask = ~BigInt(PAGE_SIZE - 1) & ULONG_MAX;
    if (pg & ~pageMask & ULONG_MAX) pg = (pg & pageMask) | BigInt(PAGE_SIZE);
    if (pg < BigInt(iopt.iovaAlignment)) pg = BigInt(iopt.iovaAlignment);
    info.flags = VFIO_IOMMU_INFO_PGSIZES;
    info.iova_pgsizes = pg;
    info.cap_offset = 0;
    const ranges = [...holes([iopt.reserved], 0n, ULONG_MAX)];
    const caps: Uint8Array[] = [];
    // dma_avail: header(8) + u32 avail, 12 bytes
    const dma = new Uint8Array(12);
    const dv = new DataView(dma.buffer);
    dv.setUint16(0, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, true);
    dv.setUint16(2, 1, true);
    dv.setUint32(8, 0xffffffff, true);
    caps.push(dma);
    // iova range: header(8) + u32 nr_iovas + u32 reserved + 16 per range
    const iov = new Uint8Array(16 + 16 * ranges.length);
    const iv = new DataView(iov.buffer);
    iv.setUint16(0, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, true);
    iv.setUint16(2, 1, true);
    iv.setUint32(8, ranges.length, true);
    ranges.forEach(([s, l], i) => {
      iv.setBigUint64(16 + 16 * i, s, true);
      iv.setBigUint64(24 + 16 * i, l, true);
    });
    caps.push(iov);
    let total = type1_info.size;
    let lastCap = -1;
    for (const cap of caps) {
      const avail = info.argsz - total;
      if (info.argsz > total) {
        if (cap === iov) {
          // the ranges that fit, then the header if the whole cap fits
          for (let i = 0; i < ranges.length; i++) {
            if (
              avail >= 16 + 16 * (i + 1) &&
              proc.mm.copyToUser(arg + total + 16 + 16 * i, iov.subarray(16 + 16 * i, 32 + 16 * i))
            )
              return -EFAULT;
          }
          if (avail >= iov.length && proc.mm.copyToUser(arg + total, iov.subarray(0, 16))) return -EFAULT;
        } else if (avail >= cap.length && proc.mm.copyToUser(arg + total, cap)) return -EFAULT;
      }
      const size = Math.ceil(cap.length / 8) * 8;
      if (lastCap >= 0 && info.argsz >= total) {
        const nb = new Uint8Array(4);
        new DataView(nb.buffer).setUint32(0, total, true);
        if (proc.mm.copyToUser(arg + lastCap + 4, nb)) return -EFAULT;
      }
      lastCap = total;
      total += size;
    }
    if (info.argsz >= total) info.cap_offset = type1_info.size;
    info.argsz = total;
    info.flags |= VFIO_IOMMU_INFO_CAPS;
    if (proc.mm.copyToUser(arg, type1_info.encode(info), minsz)) return -EFAULT;
    return 0;
  } finally {
    ioas.put();
  }
}

/** iommufd_vfio_ioctl() */
export function iommufdVfioIoctl(ictx: IommufdCtx, proc: Process, cmd: number, arg: number): number {
  switch (cmd) {
    case VFIO_GET_API_VERSION:
      return 0;
    case VFIO_SET_IOMMU:
      return setIommu(ictx, arg);
    case VFIO_CHECK_EXTENSION:
      return checkExtension(ictx, arg);
    case VFIO_IOMMU_GET_INFO:
      return getInfo(ictx, proc, arg);
    case VFIO_IOMMU_MAP_DMA:
      return mapDma(ictx, proc, arg);
    case VFIO_IOMMU_UNMAP_DMA:
      return unmapDma(ictx, proc, arg);
    default:
      return -ENOTTY;
  }
}
