// vfio_iommu_type1 (drivers/vfio/vfio_iommu_type1.c): the container backend for TYPE1 and
// TYPE1v2. It keeps the user's DMA mappings (struct vfio_dma) in an IOVA tree, pins their
// pages and maps them into one IOMMU domain per kind of group (groups whose domains would be
// alike share one), and accounts pinned pages in the mapping process's mm->locked_vm against
// its RLIMIT_MEMLOCK (skipped, not the accounting, with CAP_IPC_LOCK).
//
// Pages are pinned only while the container has an IOMMU-backed domain: a MAP_DMA with only
// emulated (mdev) groups records the range, and attaching the first real group replays every
// mapping (pin + account + map). Removing a mapping unmaps it from every domain, unpins and
// un-accounts it. Every failing call leaves the tree, pins and accounting as they were.
//
// iommu.lock (a mutex) guards everything in VfioIommu.

import { EACCES, EBUSY, EEXIST, EFAULT, EINVAL, ENODEV, ENOENT, ENOMEM, ENOSPC, ENOTTY } from "../uapi/errno.js";
import * as V from "../uapi/vfio.js";
import type { Kernel } from "../kernel/kernel.js";
import { Mutex } from "../kernel/locks.js";
import { shouldFail } from "../iommufd/fail_nth.js";
import { type Page, PAGE_SIZE, PROT_READ, PROT_WRITE, type MmStruct, unpinPages } from "../kernel/mm.js";
import type { ModuleDef } from "../kernel/module.js";
import { CAP_IPC_LOCK, type Process } from "../kernel/process.js";
import type { KGen } from "../kernel/sched.js";
import { IOMMU_READ, IOMMU_WRITE, type IommuDomain } from "../iommu/domain.js";
import type { IommuGroup } from "../iommu/iommu.js";
import { type VfioIommuDriverOps, vfioRegisterIommuDriver, vfioUnregisterIommuDriver } from "./container.js";
import type { VfioGroupType } from "./group.js";
import { clearOut, copyIn, copyOut, copyStructIn, copyStructOut, curProc } from "./uaccess.js";
import { DIRTY_BITMAP_PAGES_MAX, DmaBitmap } from "./vfio_dma_bitmap.js";
import { DmaList } from "./vfio_dma_list.js";
import { VfioCore, VfioInfoCap } from "./vfio_main.js";
import { iommufdMmLockedVm } from "../iommufd/invariants.js";
import { SideTable } from "../kernel/side_table.js";

/** module parameter dma_entry_limit (U16_MAX) */
export const DMA_ENTRY_LIMIT = 65535;

/**
 * The module's writable parameters (module_param(dma_entry_limit, uint, 0644)): a new
 * container backend reads them at SET_IOMMU, as vfio_iommu_type1_open() does.
 */
export const type1Params = { dmaEntryLimit: DMA_ENTRY_LIMIT };
/** DIRTY_BITMAP_SIZE_MAX: DIRTY_BITMAP_PAGES_MAX (INT_MAX) / 8, rounded as the kernel does */
export const DIRTY_BITMAP_SIZE_MAX = 0x10000000n;
const U64_MAX = 0xffffffffffffffffn;
/** PAGE_MASK as an unsigned long */
const PAGE_MASK = U64_MAX ^ BigInt(PAGE_SIZE - 1);
const PAGE_SHIFT_N = 12n;
const PAGE_LOW_N = BigInt(PAGE_SIZE - 1);
/** the first vaddr no user pointer reaches (numbers are exact below it) */
const VADDR_LIMIT = 2n ** 53n;
/** below it iova, size, vaddr and their sums are exact as numbers: MAP/UNMAP_DMA check them
 * in numbers, no bigint made per check (an IOVA up to 2^64 - 1 takes the bigint checks) */
const SMALL = 2n ** 52n;

/** the page number of an IOVA (below 2^52: exact); a mapping overlaps bytes [s, l] exactly
 * when it overlaps pages [pfnOf(s), pfnOf(l)] */
export function pfnOf(iova: bigint): number {
  return Number(iova >> PAGE_SHIFT_N);
}

const MAP_MINSZ = V.vfio_iommu_type1_dma_map.offsetOfEnd("size");
const UNMAP_MINSZ = V.vfio_iommu_type1_dma_unmap.offsetOfEnd("size");

/** struct vfio_dma. Its range is kept as page numbers: every mapping is page aligned, and
 * the page number of a u64 is below 2^52, exact as a number; iova and size (u64, exact) are
 * made from them where a path wants bytes. */
export class VfioDma {
  /** pinned pages while the container has a domain; null before */
  pages: Page[] | null = null;
  vaddrInvalid = false;
  /** dma->bitmap while dirty tracking is on (bit n = page n; kept between reports) */
  bitmap: DmaBitmap | null = null;
  /** iova >> PAGE_SHIFT, size >> PAGE_SHIFT, and the last page (the range never changes) */
  readonly pfn: number;
  readonly npages: number;
  readonly lastPfn: number;
  constructor(
    pfn: number,
    npages: number,
    public vaddr: number,
    readonly prot: number,
    /** dma->task (group leader) and dma->mm: accounting goes there */
    readonly proc: Process,
    readonly mm: MmStruct,
    readonly lockCap: boolean,
  ) {
    this.pfn = pfn;
    this.npages = npages;
    this.lastPfn = pfn + npages - 1;
  }
  get iova(): bigint {
    return BigInt(this.pfn) << PAGE_SHIFT_N;
  }
  get size(): bigint {
    return BigInt(this.npages) << PAGE_SHIFT_N;
  }
  /** the last byte, iova + size - 1 */
  get last(): bigint {
    return ((BigInt(this.lastPfn) + 1n) << PAGE_SHIFT_N) - 1n;
  }
}

/** struct vfio_domain */
interface VfioDomain {
  readonly domain: IommuDomain;
  readonly groups: IommuGroup[];
  readonly enforceCacheCoherency: boolean;
}

interface IovaRange {
  start: bigint;
  last: bigint;
}

/** An IOVA range's whole pages, [first, last] (what MAP_DMA of page-aligned mappings checks
 * against): the first page starting in it, the last page ending in it. */
function pageSpan(r: IovaRange): [number, number] {
  return [Number((r.start + PAGE_LOW_N) >> PAGE_SHIFT_N), Number((r.last + 1n) >> PAGE_SHIFT_N) - 1];
}

/** struct vfio_iommu */
export class VfioIommu {
  readonly dmaList = new DmaList<VfioDma>();
  readonly domains: VfioDomain[] = [];
  readonly emulatedGroups: IommuGroup[] = [];
  /** the usable IOVA ranges (aperture minus reserved regions); empty = no restriction */
  get iovaList(): readonly IovaRange[] {
    return this.iovaList_;
  }
  set iovaList(list: IovaRange[]) {
    this.iovaList_ = list;
    this.iovaPages = list.map(pageSpan);
  }
  private iovaList_: IovaRange[] = [];
  /** iovaList in whole pages, for MAP_DMA's check */
  iovaPages: [number, number][] = [];
  /** the dma_entry_limit this instance started with */
  readonly dmaLimit = type1Params.dmaEntryLimit;
  dmaAvail = this.dmaLimit;
  pgsizeBitmap = PAGE_MASK;
  vaddrInvalidCount = 0;
  dirtyPageTracking = false;
  readonly lock: Mutex;
  constructor(
    readonly k: Kernel,
    readonly v2: boolean,
    readonly nesting: boolean,
  ) {
    this.lock = new Mutex(k, "vfio_iommu.lock");
  }

  /** the smallest page size: the lowest set bit of pgsizeBitmap (kept with the bitmap it
   * was computed from: MAP_DMA asks on every call) */
  get minPgsize(): bigint {
    if (this.minPgsizeOf !== this.pgsizeBitmap) this.updateMinPgsize();
    return this.minPgsize_;
  }
  /** minPgsize as a number (exact: a power of two, or 0) */
  get minPgsizeNum(): number {
    if (this.minPgsizeOf !== this.pgsizeBitmap) this.updateMinPgsize();
    return this.minPgsizeNum_;
  }
  private updateMinPgsize(): void {
    this.minPgsizeOf = this.pgsizeBitmap;
    this.minPgsize_ = this.pgsizeBitmap & -this.pgsizeBitmap;
    this.minPgsizeNum_ = Number(this.minPgsize_);
  }
  private minPgsizeOf = -1n;
  private minPgsize_ = 0n;
  private minPgsizeNum_ = 0;

  /** pages this container holds pinned (for invariants) */
  pinnedPages(): number {
    let n = 0;
    for (const d of this.dmaList) if (d.pages) n += d.pages.length;
    return n;
  }
}

/** vfio_lock_acct() on release: un-charge what the mapping charged. */
function lockAcct(dma: VfioDma, npage: number): void {
  dma.mm.lockedVm += npage;
}

/**
 * Pin a mapping's pages and charge them (vfio_pin_pages_remote for the whole range): page by
 * page, each is pinned (EFAULT where it cannot be) and then checked against the limit
 * (ENOMEM), so which error wins depends on which page comes first, as on the oracle.
 * Nothing stays pinned or charged on failure.
 */
function pinDma(dma: VfioDma): number {
  const write = (dma.prot & IOMMU_WRITE) !== 0;
  const limit = Math.floor(dma.proc.memlock.cur / PAGE_SIZE);
  const npages = dma.npages;
  // the whole range in one pinPages() when no page can cross the limit: it pins all or none,
  // and a failure (a page it cannot pin, perhaps device memory) takes the page-by-page path
  // below, which then meets the same pages in the same order
  if (dma.lockCap || dma.mm.lockedVm + npages <= limit) {
    const got = dma.mm.pinPages(dma.vaddr, npages, write);
    if (typeof got !== "number") {
      // the fallible step of each page, as below
      for (let i = 0; i < npages; i++)
        if (shouldFail()) {
          unpinPages(got);
          return -ENOMEM;
        }
      dma.mm.lockedVm += chargedPages(got);
      dma.pages = got;
      return 0;
    }
  }
  // sized for a small map at once (push() from [] reserves room for 17 pages: a one-page map
  // made 150 B more); a large one grows as it is filled (npages may exceed any array length)
  const pages: Page[] = new Array<Page>(Math.min(npages, 64));
  let charged = 0;
  for (let i = 0; i < npages; i++) {
    const va = dma.vaddr + i * PAGE_SIZE;
    // pinPages() of one page (a bridged client's mm overrides it)
    const got = dma.mm.pinPages(va, 1, write);
    let pg = typeof got === "number" ? got : got[0]!;
    if (pg === -EFAULT) {
      // vaddr_get_pfns(): a VM_PFNMAP mapping (a device BAR) gives its pfn, unpinned and
      // uncharged (is_invalid_reserved_pfn()), for peer-to-peer DMA
      const io = dma.mm.pfnmapPage(va, write);
      if (io) {
        io.pins++;
        pg = io;
      }
    }
    // a fallible step for fault injection (src/check/fault.ts): the page allocation or GUP
    // of this page fails with ENOMEM
    if (typeof pg !== "number" && shouldFail()) {
      pg.pins--;
      pg = -ENOMEM;
    }
    let rc = typeof pg === "number" ? pg : 0;
    if (typeof pg !== "number") {
      pages[i] = pg;
      if (!pg.reserved) charged++;
      if (!dma.lockCap && dma.mm.lockedVm + charged > limit) rc = -ENOMEM;
    }
    if (rc < 0) {
      // the pages pinned so far: [0, i], or [0, i) where page i failed
      pages.length = typeof pg === "number" ? i : i + 1;
      unpinPages(pages);
      return rc;
    }
  }
  dma.mm.lockedVm += charged;
  dma.pages = pages;
  return 0;
}

/** The pages of a mapping that were charged to locked_vm (device pfns are not). */
function chargedPages(pages: readonly Page[]): number {
  let n = 0;
  for (const p of pages) if (!p.reserved) n++;
  return n;
}

function unpinDma(dma: VfioDma): void {
  if (!dma.pages) return;
  unpinPages(dma.pages);
  lockAcct(dma, -chargedPages(dma.pages));
  dma.pages = null;
}

/** vfio_remove_dma(): unmap from every domain, unpin, un-account, free. */
function removeDma(iommu: VfioIommu, dma: VfioDma, unmapIoctl = false): void {
  const domains = iommu.domains;
  for (let i = 0; i < domains.length; i++) domains[i]!.domain.unmapPfn(dma.pfn, dma.npages);
  // broken variant "unmap-no-unpin": UNMAP_DMA frees the mapping and forgets to unpin and
  // un-account its pages (vfio_unmap_unpin() without the unpin)
  const broken = iommu.k.broken;
  if (!(unmapIoctl && broken.size !== 0 && broken.has("unmap-no-unpin"))) unpinDma(dma);
  iommu.dmaList.remove(dma);
  iommu.dmaAvail++;
}

function mapIntoDomain(d: IommuDomain, dma: VfioDma): number {
  // iommu_map() can fail allocating page-table pages (a fallible step for fault injection)
  if (shouldFail()) return -ENOMEM;
  return d.mapPfn(dma.pfn, dma.pages!, dma.prot);
}

/** vfio_iommu_iova_dma_valid() of the pages [first, last] (a page-aligned range lies in an
 * IOVA range exactly when its pages lie in the range's whole pages) */
function iovaDmaValid(iommu: VfioIommu, first: number, last: number): boolean {
  const list = iommu.iovaPages;
  if (list.length === 0) return true;
  for (let i = 0; i < list.length; i++) if (first >= list[i]![0] && last <= list[i]![1]) return true;
  return false;
}

// ---- ioctls ----

/** vfio_iommu_type1_check_extension() */
function checkExtension(iommu: VfioIommu | null, arg: number): number {
  switch (arg) {
    case V.VFIO_TYPE1_IOMMU:
    case V.VFIO_TYPE1v2_IOMMU:
    case V.VFIO_TYPE1_NESTING_IOMMU:
    case V.VFIO_UNMAP_ALL:
      return 1;
    case V.VFIO_UPDATE_VADDR:
      return iommu && iommu.emulatedGroups.length === 0 ? 1 : 0;
    case V.VFIO_DMA_CC_IOMMU:
      if (!iommu) return 0;
      return iommu.domains.length > 0 && iommu.domains.every((d) => d.enforceCacheCoherency) ? 1 : 0;
    default:
      return 0;
  }
}

/** vfio_iommu_type1_get_info() */
function* getInfo(iommu: VfioIommu, arg: number): KGen<number> {
  const k = iommu.k;
  let minsz = V.vfio_iommu_type1_info.offsetOfEnd("iova_pgsizes");
  const info = copyStructIn(k, V.vfio_iommu_type1_info, arg, minsz);
  if (typeof info === "number") return info;
  if (info.argsz < minsz) return -EINVAL;
  minsz = Math.min(info.argsz, V.vfio_iommu_type1_info.size);
  yield* iommu.lock.lock();
  const out = {
    argsz: info.argsz,
    flags: V.VFIO_IOMMU_INFO_PGSIZES,
    iova_pgsizes: iommu.pgsizeBitmap,
    cap_offset: 0,
    pad: 0,
  };
  const caps = new VfioInfoCap();
  // vfio_iommu_migration_build_caps()
  const mig = V.vfio_iommu_type1_info_cap_migration;
  caps.add(
    V.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
    1,
    mig.encode({ flags: 0, pgsize_bitmap: iommu.minPgsize, max_dirty_bitmap_size: DIRTY_BITMAP_SIZE_MAX }).subarray(8),
  );
  // vfio_iommu_dma_avail_build_caps()
  caps.add(
    V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
    1,
    V.vfio_iommu_type1_info_dma_avail.encode({ avail: iommu.dmaAvail }).subarray(8),
  );
  // vfio_iommu_iova_build_caps(): none when the list is empty (only emulated groups)
  if (iommu.iovaList.length) {
    const body = new Uint8Array(8 + 16 * iommu.iovaList.length);
    const dv = new DataView(body.buffer);
    dv.setUint32(0, iommu.iovaList.length, true);
    iommu.iovaList.forEach((r, i) => V.vfio_iova_range.encodeInto(body, { start: r.start, end: r.last }, 8 + 16 * i));
    void dv;
    caps.add(V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, body);
  }
  iommu.lock.unlock();
  const infoSize = V.vfio_iommu_type1_info.size;
  if (caps.size) {
    out.flags |= V.VFIO_IOMMU_INFO_CAPS;
    if (info.argsz < infoSize + caps.size) out.argsz = infoSize + caps.size;
    else {
      caps.shift(infoSize);
      if (copyOut(k, arg + infoSize, caps.buf) < 0) return -EFAULT;
      out.cap_offset = infoSize;
    }
  }
  return copyStructOut(k, V.vfio_iommu_type1_info, arg, out, minsz);
}

/**
 * The u64 at `off` as a number when it is below 2^52 (exact, and sums of two stay exact),
 * else -1. MAP/UNMAP_DMA read their arguments this way in place from the user page; a value
 * at or above 2^52 takes the decoded struct and bigint checks, exact up to 2^64 - 1.
 */
function u64Small(dv: DataView, off: number): number {
  const hi = dv.getUint32(off + 4, true);
  return hi < 0x100000 ? hi * 0x100000000 + dv.getUint32(off, true) : -1;
}

const MAP = V.vfio_iommu_type1_dma_map;
const MAP_VADDR = MAP.offsetOf("vaddr");
const MAP_IOVA = MAP.offsetOf("iova");
const MAP_SIZE = MAP.offsetOf("size");
const UNMAP = V.vfio_iommu_type1_dma_unmap;
const UNMAP_IOVA = UNMAP.offsetOf("iova");
const UNMAP_SIZE = UNMAP.offsetOf("size");
const ARGSZ = MAP.offsetOf("argsz");
const FLAGS = MAP.offsetOf("flags");

/** readInPlace()'s answer: the caller copies it out at once (no yield in between) */
const IN = { argsz: 0, flags: 0, u0: -1, u1: -1, u2: -1 };

/**
 * copy_from_user() of the `minsz` bytes at `arg` where they lie in one user page of current:
 * argsz, flags and the u64s at offsets o0, o1 and o2 (o2 < 0: none) as u64Small() numbers,
 * read where they are into IN; false when the bytes are not so (the decoding path decides).
 */
function readInPlace(proc: Process | null, arg: number, minsz: number, o0: number, o1: number, o2: number): boolean {
  const dv = proc !== null ? proc.mm.userView(arg, minsz, PROT_READ) : null;
  if (dv === null) return false;
  const o = proc!.mm.viewOff;
  IN.argsz = dv.getUint32(o + ARGSZ, true);
  IN.flags = dv.getUint32(o + FLAGS, true);
  IN.u0 = u64Small(dv, o + o0);
  IN.u1 = u64Small(dv, o + o1);
  IN.u2 = o2 < 0 ? 0 : u64Small(dv, o + o2);
  return true;
}

/**
 * The alignment checks of MAP/UNMAP_DMA on numbers below 2^52 (nothing wraps below 2^53):
 * x is a multiple of the page size np (a power of two, at least a page) when x / np, an exact
 * quotient, is whole.
 */
function aligned(x: number, np: number): boolean {
  const q = x / np;
  return Math.floor(q) === q;
}

/** vfio_iommu_type1_map_dma() + vfio_dma_do_map() */
function* mapDma(iommu: VfioIommu, arg: number): KGen<number> {
  const k = iommu.k;
  const minsz = MAP_MINSZ;
  const proc = curProc(k);
  const inPlace = readInPlace(proc, arg, minsz, MAP_VADDR, MAP_IOVA, MAP_SIZE);
  let argsz = inPlace ? IN.argsz : 0;
  let flags = inPlace ? IN.flags : 0;
  // the u64s as numbers below 2^52 (-1: not read so, or too large), else the decoded bigints
  let nv = inPlace ? IN.u0 : -1;
  let ni = inPlace ? IN.u1 : -1;
  let ns = inPlace ? IN.u2 : -1;
  let big: { vaddr: bigint; iova: bigint; size: bigint } | null = null;
  if (nv < 0 || ni < 0 || ns < 0) {
    const map = copyStructIn(k, MAP, arg, minsz);
    if (typeof map === "number") return map;
    argsz = map.argsz;
    flags = map.flags;
    if (map.vaddr < SMALL && map.iova < SMALL && map.size < SMALL) {
      nv = Number(map.vaddr);
      ni = Number(map.iova);
      ns = Number(map.size);
    } else big = map;
  }
  const mask = V.VFIO_DMA_MAP_FLAG_READ | V.VFIO_DMA_MAP_FLAG_WRITE | V.VFIO_DMA_MAP_FLAG_VADDR;
  if (argsz < minsz || flags & ~mask) return -EINVAL;
  const setVaddr = (flags & V.VFIO_DMA_MAP_FLAG_VADDR) !== 0;
  let prot = 0;
  if (flags & V.VFIO_DMA_MAP_FLAG_WRITE) prot |= IOMMU_WRITE;
  if (flags & V.VFIO_DMA_MAP_FLAG_READ) prot |= IOMMU_READ;
  if ((prot && setVaddr) || (!prot && !setVaddr)) return -EINVAL;
  yield* iommu.lock.lock();
  try {
    // the range in pages from here on (aligned to the smallest page, at least a page)
    let pfn: number;
    let npages: number;
    const np = iommu.minPgsizeNum;
    if (big === null && np >= PAGE_SIZE) {
      if (ns === 0 || !aligned(ns, np) || !aligned(ni, np) || !aligned(nv, np)) return -EINVAL;
      pfn = ni / PAGE_SIZE;
      npages = ns / PAGE_SIZE;
    } else {
      const { iova, size, vaddr } = big ?? { iova: BigInt(ni), size: BigInt(ns), vaddr: BigInt(nv) };
      const pgmask = iommu.minPgsize - 1n;
      if (size === 0n || (size | iova | vaddr) & pgmask) return -EINVAL;
      // iova or vaddr wrap (and vaddr beyond what a user pointer can be)
      if (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX) return -EINVAL;
      pfn = pfnOf(iova);
      npages = pfnOf(size);
      // a vaddr past TASK_SIZE cannot be pinned: the kernel's GUP fails it with EFAULT (below)
      nv = vaddr >= VADDR_LIMIT ? -1 : Number(vaddr);
    }
    const lastPfn = pfn + npages - 1;
    // vfio_find_dma() (size is not 0 here)
    const dma = iommu.dmaList.firstOverlap(pfn, lastPfn);
    if (setVaddr) {
      if (!dma) return -ENOENT;
      if (!dma.vaddrInvalid || dma.pfn !== pfn || dma.npages !== npages) return -EINVAL;
      // (a vaddr of 2^53 or more is kept as a number, as a user pointer never is one)
      dma.vaddr = nv >= 0 ? nv : Number(big!.vaddr);
      dma.vaddrInvalid = false;
      iommu.vaddrInvalidCount--;
      return 0;
    }
    if (dma) return -EEXIST;
    if (!iommu.dmaAvail) return -ENOSPC;
    if (!iovaDmaValid(iommu, pfn, lastPfn)) return -EINVAL;
    if (nv < 0) return -EFAULT;
    if (!proc) return -EFAULT; // no mm to pin from
    const d = new VfioDma(pfn, npages, nv, prot, proc, proc.mm, proc.capable(CAP_IPC_LOCK));
    if (iommu.domains.length) {
      const rc = pinDma(d);
      if (rc < 0) return rc;
      for (let i = 0; i < iommu.domains.length; i++) {
        const r = mapIntoDomain(iommu.domains[i]!.domain, d);
        if (r < 0) {
          for (let j = 0; j < i; j++) iommu.domains[j]!.domain.unmapPfn(d.pfn, d.npages);
          unpinDma(d);
          return r;
        }
      }
    }
    // vfio_dma_bitmap_alloc(): a mapping of more than DIRTY_BITMAP_PAGES_MAX pages cannot be
    // tracked, and vfio_remove_dma() undoes it
    if (iommu.dirtyPageTracking) {
      if (!bitmapAllowed(iommu, d)) {
        for (const x of iommu.domains) x.domain.unmapPfn(d.pfn, d.npages);
        if (d.pages) unpinDma(d);
        return -EINVAL;
      }
      d.bitmap = new DmaBitmap();
    }
    iommu.dmaAvail--;
    iommu.dmaList.insert(d);
    return 0;
  } finally {
    iommu.lock.unlock();
  }
}

/** vfio_iommu_type1_unmap_dma() + vfio_dma_do_unmap() */
function* unmapDma(iommu: VfioIommu, arg: number): KGen<number> {
  const k = iommu.k;
  const minsz = UNMAP_MINSZ;
  // a plain unmap (no flags) whose struct lies in one user page with iova and size below
  // 2^52 is read in place as numbers; everything else is decoded (bigints)
  let unmap: { argsz: number; flags: number; iova: bigint; size: bigint } | null = null;
  const proc = curProc(k);
  const inPlace = readInPlace(proc, arg, minsz, UNMAP_IOVA, UNMAP_SIZE, -1);
  let argsz = inPlace ? IN.argsz : 0;
  let flags = inPlace ? IN.flags : 0;
  let ni = inPlace ? IN.u0 : -1;
  let ns = inPlace ? IN.u1 : -1;
  if (flags !== 0 || ni < 0 || ns < 0) {
    const u = copyStructIn(k, UNMAP, arg, minsz);
    if (typeof u === "number") return u;
    unmap = u;
    argsz = u.argsz;
    flags = u.flags;
    ni = ns = -1;
  }
  const mask = V.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | V.VFIO_DMA_UNMAP_FLAG_VADDR | V.VFIO_DMA_UNMAP_FLAG_ALL;
  if (argsz < minsz || flags & ~mask) return -EINVAL;
  const dirty = (flags & V.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
  if (dirty && flags & (V.VFIO_DMA_UNMAP_FLAG_ALL | V.VFIO_DMA_UNMAP_FLAG_VADDR)) return -EINVAL;
  let bitmap: { pgsize: bigint; size: bigint; data: bigint } | null = null;
  if (dirty) {
    if (argsz < minsz + V.vfio_bitmap.size) return -EINVAL;
    const b = copyStructIn(k, V.vfio_bitmap, arg + minsz);
    if (typeof b === "number") return b;
    if (!accessOk(b.data, b.size)) return -EINVAL;
    const rc = verifyBitmapSize(unmap!.size >> ffs(b.pgsize), b.size);
    if (rc < 0) return rc;
    bitmap = b;
  }
  const unmapAll = (flags & V.VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
  const invalidateVaddr = (flags & V.VFIO_DMA_UNMAP_FLAG_VADDR) !== 0;
  /** pages unmapped (or invalidated): disjoint mappings, so below 2^52 */
  let unmappedPages = 0;
  let ret = -EINVAL;
  yield* iommu.lock.lock();
  try {
    if (invalidateVaddr && iommu.emulatedGroups.length) return -EBUSY;
    // the range's first and last page (the range is aligned to the smallest page, at least a
    // page; the last byte of unmap-all is 2^64 - 2, what iova + size - 1 is for it)
    let pfn: number;
    let lastPfn: number;
    const np = iommu.minPgsizeNum;
    if (unmap === null && np >= PAGE_SIZE) {
      if (!aligned(ni, np)) return ret;
      if (ns === 0 || !aligned(ns, np)) return ret;
      pfn = ni / PAGE_SIZE;
      lastPfn = pfn + ns / PAGE_SIZE - 1;
    } else {
      const iova = unmap ? unmap.iova : BigInt(ni);
      let size = unmap ? unmap.size : BigInt(ns);
      const pgmask = iommu.minPgsize - 1n;
      if (iova & pgmask) return ret;
      if (unmapAll) {
        if (iova || size) return ret;
        size = U64_MAX;
      } else if (!size || size & pgmask || iova + size - 1n > U64_MAX) return ret;
      pfn = pfnOf(iova);
      lastPfn = pfnOf(iova + size - 1n);
    }
    if (dirty && (!iommu.dirtyPageTracking || bitmap!.pgsize !== iommu.minPgsize)) return ret;
    // the mapping holding the first page, when v2 looked for it
    let first: VfioDma | null = null;
    if (iommu.v2 && !unmapAll) {
      first = iommu.dmaList.find(pfn);
      if (first && first.pfn !== pfn) return ret;
      const dma = first && first.lastPfn >= lastPfn ? first : iommu.dmaList.find(lastPfn);
      // dma ends where the range ends: dma.iova + dma.size === iova + size
      if (dma && dma.lastPfn !== lastPfn) return ret;
    }
    ret = 0;
    let dma = first ?? iommu.dmaList.firstOverlap(pfn, lastPfn);
    let invalidated: VfioDma[] | null = null;
    while (dma) {
      if (dma.pfn > lastPfn) break;
      if (!iommu.v2 && pfn > dma.pfn) break;
      // the next mapping, looked up only when this one ends before the range does (one
      // starting after dma.lastPfn >= lastPfn is past the range: the loop would stop there)
      const next = dma.lastPfn < lastPfn ? iommu.dmaList.next(dma) : null;
      if (invalidateVaddr) {
        if (dma.vaddrInvalid) {
          for (const x of invalidated ?? []) {
            x.vaddrInvalid = false;
            iommu.vaddrInvalidCount--;
          }
          ret = -EINVAL;
          unmappedPages = 0;
          break;
        }
        dma.vaddrInvalid = true;
        iommu.vaddrInvalidCount++;
        (invalidated ??= []).push(dma);
        unmappedPages += dma.npages;
      } else {
        if (bitmap) {
          const rc = updateUserBitmap(iommu, Number(bitmap.data), dma, unmap!.iova);
          if (rc < 0) {
            ret = rc;
            break;
          }
        }
        unmappedPages += dma.npages;
        removeDma(iommu, dma, true);
      }
      dma = next;
    }
  } finally {
    iommu.lock.unlock();
  }
  if (ret < 0) return ret;
  // copy_to_user() of minsz bytes: the struct as read, with the size unmapped
  if (unmap === null) {
    // in place (a page of the same process: write access is its own question)
    const w = proc!.mm.userView(arg, minsz, PROT_WRITE);
    if (w !== null) {
      const o = proc!.mm.viewOff;
      const bytes = unmappedPages * PAGE_SIZE;
      w.setUint32(o + ARGSZ, argsz, true);
      w.setUint32(o + FLAGS, flags, true);
      w.setUint32(o + UNMAP_IOVA, ni % 0x100000000, true);
      w.setUint32(o + UNMAP_IOVA + 4, Math.floor(ni / 0x100000000), true);
      w.setUint32(o + UNMAP_SIZE, bytes % 0x100000000, true);
      w.setUint32(o + UNMAP_SIZE + 4, Math.floor(bytes / 0x100000000), true);
      return 0;
    }
    unmap = { argsz, flags, iova: BigInt(ni), size: 0n };
  }
  // the decoded struct is this call's own: it goes back with the size unmapped
  unmap.size = BigInt(unmappedPages) << PAGE_SHIFT_N;
  return copyStructOut(k, UNMAP, arg, unmap, minsz);
}

/**
 * vfio_iommu_type1_dirty_pages(): START/STOP dirty tracking, GET_BITMAP of a range. No
 * modelled device reports what it dirtied, so (as the kernel does while a group is not in
 * pinned-page scope) every page of a mapping that is mapped in a domain is reported dirty,
 * every time; mappings of an emulated-only container have no dirty page.
 */
function* dirtyPages(iommu: VfioIommu, arg: number): KGen<number> {
  const k = iommu.k;
  if (!iommu.v2) return -EACCES;
  const minsz = V.vfio_iommu_type1_dirty_bitmap.offsetOfEnd("flags");
  const d = copyStructIn(k, V.vfio_iommu_type1_dirty_bitmap, arg, minsz);
  if (typeof d === "number") return d;
  const mask =
    V.VFIO_IOMMU_DIRTY_PAGES_FLAG_START | V.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP | V.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
  if (d.argsz < minsz || d.flags & ~mask) return -EINVAL;
  if (d.flags === 0 || (d.flags & (d.flags - 1)) !== 0) return -EINVAL;
  if (d.flags & V.VFIO_IOMMU_DIRTY_PAGES_FLAG_START || d.flags & V.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
    const start = (d.flags & V.VFIO_IOMMU_DIRTY_PAGES_FLAG_START) !== 0;
    yield* iommu.lock.lock();
    try {
      if (start === iommu.dirtyPageTracking) return 0;
      // vfio_dma_bitmap_alloc_all(): EINVAL, and tracking stays off, for a mapping too large
      if (start) for (const x of iommu.dmaList) if (!bitmapAllowed(iommu, x)) return -EINVAL;
      // vfio_dma_bitmap_alloc_all() / vfio_dma_bitmap_free_all(), only on a change of state
      for (const x of iommu.dmaList) x.bitmap = start ? new DmaBitmap() : null;
      iommu.dirtyPageTracking = start;
      return 0;
    } finally {
      iommu.lock.unlock();
    }
  }
  // GET_BITMAP: struct vfio_iommu_type1_dirty_bitmap_get follows the header
  const dataSize = d.argsz - minsz;
  if (!dataSize || dataSize < V.vfio_iommu_type1_dirty_bitmap_get.size) return -EINVAL;
  const range = copyStructIn(k, V.vfio_iommu_type1_dirty_bitmap_get, arg + minsz);
  if (typeof range === "number") return range;
  if (range.iova + range.size > U64_MAX) return -EINVAL;
  const bm = range.bitmap;
  if (!accessOk(bm.data, bm.size)) return -EINVAL;
  let rc = verifyBitmapSize(range.size >> ffs(bm.pgsize), bm.size);
  if (rc < 0) return rc;
  yield* iommu.lock.lock();
  try {
    const pg = iommu.minPgsize;
    if (bm.pgsize !== pg || range.iova & (pg - 1n) || !range.size || range.size & (pg - 1n)) return -EINVAL;
    if (!iommu.dirtyPageTracking) return -EINVAL;
    // vfio_iova_dirty_bitmap(): the range may not cut a mapping
    const last = range.iova + range.size - 1n;
    let dma = iommu.dmaList.find(pfnOf(range.iova));
    if (dma && dma.iova !== range.iova) return -EINVAL;
    dma = iommu.dmaList.find(pfnOf(last));
    if (dma && dma.last !== last) return -EINVAL;
    for (let x = iommu.dmaList.ceil(pfnOf(range.iova)); x && x.iova <= last; x = iommu.dmaList.next(x)) {
      rc = updateUserBitmap(iommu, Number(bm.data), x, range.iova);
      if (rc < 0) return rc;
    }
    return 0;
  } finally {
    iommu.lock.unlock();
  }
}

/** __ffs() of a u64 (64 for 0, where the kernel's result is undefined) */
function ffs(v: bigint): bigint {
  if (v === 0n) return 64n;
  let n = 0n;
  while (!((v >> n) & 1n)) n++;
  return n;
}

/** DIRTY_BITMAP_BYTES(): whole u64 words */
function bitmapBytes(npages: bigint): bigint {
  return ((npages + 63n) / 64n) * 8n;
}

/** verify_bitmap_size() */
function verifyBitmapSize(npages: bigint, size: bigint): number {
  if (!npages || !size || size > DIRTY_BITMAP_SIZE_MAX || size < bitmapBytes(npages)) return -EINVAL;
  return 0;
}

/** access_ok() on x86-64 6.12 (uaccess_64.h): the end of the range is not a kernel address */
function accessOk(addr: bigint, size: bigint): boolean {
  const sum = addr + size;
  return sum < 1n << 63n;
}

/** vfio_dma_bitmap_alloc(): the mapping has at most DIRTY_BITMAP_PAGES_MAX pages */
function bitmapAllowed(iommu: VfioIommu, dma: VfioDma): boolean {
  return dma.size / iommu.minPgsize <= BigInt(DIRTY_BITMAP_PAGES_MAX);
}

/**
 * update_user_bitmap(): writes the u64 words of the user bitmap that `dma` covers (bit 0 =
 * base_iova). Done on the mapping's own bitmap exactly as the kernel does, stale bits
 * included: set every page when the mapping is in a domain, shift left by the mapping's bit
 * offset within its first word (without masking the top, as __bitmap_shift_left), OR in the
 * low bits of the user word already there, copy, then clear only the first nbits bits. Bits
 * shifted past nbits therefore reappear in later reports (observed on the oracle).
 *
 * The copy is the kernel's DIRTY_BITMAP_BYTES(nbits + shift) bytes; the words with no bit set
 * are cleared (clear_user(), which costs the user pages present, not the length) and only
 * the others are built and copied, so a 2^31-page mapping costs what is set in it.
 */
function updateUserBitmap(iommu: VfioIommu, data: number, dma: VfioDma, base: bigint): number {
  const k = iommu.k;
  const pgshift = ffs(iommu.minPgsize);
  const nbits = Number(dma.size >> pgshift);
  const bitOffset = Number((dma.iova - base) >> pgshift);
  const word0 = Math.floor(bitOffset / 64);
  const shift = bitOffset % 64;
  const lim = Math.ceil((nbits + shift) / 64);
  const bm = (dma.bitmap ??= new DmaBitmap());
  if (dma.pages !== null && iommu.domains.length > 0) bm.set(0, nbits);
  if (shift) {
    bm.shiftLeft(shift, nbits + shift);
    const cur = copyIn(k, data + word0 * 8, 8);
    if (typeof cur === "number") return -EFAULT;
    bm.orWord0(new DataView(cur.buffer, cur.byteOffset).getBigUint64(0, true) & ((1n << BigInt(shift)) - 1n));
  }
  const at = data + word0 * 8;
  let rc = clearOut(k, at, lim * 8);
  if (rc < 0) return rc;
  for (const [a, b] of bm.wordSpans(lim)) {
    const out = new Uint8Array((b - a) * 8);
    const dv = new DataView(out.buffer);
    for (let w = a; w < b; w++) dv.setBigUint64((w - a) * 8, bm.word(w), true);
    rc = copyOut(k, at + a * 8, out);
    if (rc < 0) return rc;
  }
  bm.clear(0, nbits);
  return 0;
}

// ---- attach / detach ----

/** vfio_iommu_type1_attach_group() */
function* attachGroup(iommu: VfioIommu, ig: IommuGroup | null, type: VfioGroupType): KGen<number> {
  yield* iommu.lock.lock();
  try {
    if (iommu.vaddrInvalidCount) return -EBUSY;
    if (type === "emulated" || !ig) {
      if (ig && iommu.emulatedGroups.includes(ig)) return -EINVAL;
      if (ig) iommu.emulatedGroups.push(ig);
      return 0;
    }
    if (iommu.domains.some((d) => d.groups.includes(ig)) || iommu.emulatedGroups.includes(ig)) return -EINVAL;
    const core = ig.core;
    const dev = ig.devices[0];
    if (!dev) return -ENODEV;
    const domain = core.domainAllocPaging(dev, "vfio_iommu_type1");
    // iommu_enable_nesting(): the VT-d driver of 6.12 has no enable_nesting op
    if (iommu.nesting) return -EINVAL;
    let rc = core.attachGroup(domain, ig);
    if (rc < 0) return rc;
    // vfio_iommu_aper_conflict(): existing mappings outside the new aperture
    const first = iommu.dmaList.first();
    const lastDma = iommu.dmaList.last();
    if (
      (first && first.iova < domain.apertureStart) ||
      (lastDma && lastDma.last > domain.apertureEnd) ||
      iommu.iovaList.some((r) => r.last < domain.apertureStart || r.start > domain.apertureEnd)
    ) {
      core.detachGroup(domain, ig);
      return -EINVAL;
    }
    const resv = ig.devices.flatMap((d) => d.resvRegions());
    // vfio_iommu_resv_conflict(): existing mappings over a reserved region
    for (const r of resv) {
      if (r.type === "direct") continue;
      if (iommu.dmaList.firstOverlap(pfnOf(r.start), pfnOf(r.last))) {
        core.detachGroup(domain, ig);
        return -EINVAL;
      }
    }
    // the new iova list: aperture resize, then reserved regions cut out
    let list: IovaRange[] = iommu.iovaList.length
      ? iommu.iovaList
          .map((r) => ({
            start: r.start > domain.apertureStart ? r.start : domain.apertureStart,
            last: r.last < domain.apertureEnd ? r.last : domain.apertureEnd,
          }))
          .filter((r) => r.start <= r.last)
      : [{ start: domain.apertureStart, last: domain.apertureEnd }];
    for (const r of resv) list = excludeRange(list, r.start, r.last);
    if (list.length === 0) {
      core.detachGroup(domain, ig);
      return -EINVAL;
    }
    const enforceCC = core.enforceCacheCoherency(domain, ig);
    // try an existing compatible domain
    for (const d of iommu.domains) {
      if (d.enforceCacheCoherency === enforceCC) {
        core.detachGroup(domain, ig);
        if (core.attachGroup(d.domain, ig) === 0) {
          d.groups.push(ig);
          iommu.iovaList = list;
          return 0;
        }
        rc = core.attachGroup(domain, ig);
        if (rc < 0) return rc;
      }
    }
    // vfio_iommu_replay(): pin (the first domain) and map every mapping into the new domain
    const newlyPinned: VfioDma[] = [];
    const mapped: VfioDma[] = [];
    for (const dma of iommu.dmaList) {
      if (!dma.pages) {
        rc = pinDma(dma);
        if (rc < 0) break;
        newlyPinned.push(dma);
      }
      rc = mapIntoDomain(domain, dma);
      if (rc < 0) break;
      mapped.push(dma);
    }
    if (rc < 0) {
      for (const dma of mapped) domain.unmapPfn(dma.pfn, dma.npages);
      for (const dma of newlyPinned) unpinDma(dma);
      core.detachGroup(domain, ig);
      return rc;
    }
    iommu.domains.push({ domain, groups: [ig], enforceCacheCoherency: enforceCC });
    updatePgsizeBitmap(iommu);
    iommu.iovaList = list;
    return 0;
  } finally {
    iommu.lock.unlock();
  }
}

function excludeRange(list: IovaRange[], start: bigint, last: bigint): IovaRange[] {
  const out: IovaRange[] = [];
  for (const r of list) {
    if (last < r.start || start > r.last) {
      out.push(r);
      continue;
    }
    if (r.start < start) out.push({ start: r.start, last: start - 1n });
    if (r.last > last) out.push({ start: last + 1n, last: r.last });
  }
  return out;
}

/** vfio_update_pgsize_bitmap() */
function updatePgsizeBitmap(iommu: VfioIommu): void {
  let b = U64_MAX;
  for (const d of iommu.domains) b &= d.domain.pgsizeBitmap;
  if (!iommu.domains.length) b = PAGE_MASK;
  if (b & BigInt(PAGE_SIZE - 1)) {
    b &= PAGE_MASK;
    b |= BigInt(PAGE_SIZE);
  }
  iommu.pgsizeBitmap = b;
}

/** vfio_iommu_unmap_unpin_all() */
function unmapUnpinAll(iommu: VfioIommu): void {
  for (const dma of [...iommu.dmaList]) removeDma(iommu, dma);
}

/** vfio_iommu_type1_detach_group() */
function* detachGroup(iommu: VfioIommu, ig: IommuGroup | null): KGen<void> {
  yield* iommu.lock.lock();
  try {
    const ei = ig ? iommu.emulatedGroups.indexOf(ig) : -1;
    if (ei >= 0 || !ig) {
      if (ei >= 0) iommu.emulatedGroups.splice(ei, 1);
      if (iommu.emulatedGroups.length === 0 && iommu.domains.length === 0) unmapUnpinAll(iommu);
      return;
    }
    for (let i = 0; i < iommu.domains.length; i++) {
      const d = iommu.domains[i]!;
      const gi = d.groups.indexOf(ig);
      if (gi < 0) continue;
      ig.core.detachGroup(d.domain, ig);
      d.groups.splice(gi, 1);
      if (d.groups.length === 0) {
        if (iommu.domains.length === 1) {
          if (iommu.emulatedGroups.length === 0) unmapUnpinAll(iommu);
          else {
            // vfio_iommu_unmap_unpin_reaccount(): mappings stay, pages are no longer pinned
            for (const dma of iommu.dmaList) {
              d.domain.unmapPfn(dma.pfn, dma.npages);
              unpinDma(dma);
            }
          }
        } else {
          for (const dma of iommu.dmaList) d.domain.unmapPfn(dma.pfn, dma.npages);
        }
        iommu.domains.splice(i, 1);
        updatePgsizeBitmap(iommu);
      }
      break;
    }
    // vfio_iommu_resv_refresh() + aper_expand(): recompute the list from what remains
    let list: IovaRange[] = [];
    if (iommu.domains.length) {
      const d0 = iommu.domains[0]!.domain;
      list = [{ start: d0.apertureStart, last: d0.apertureEnd }];
      for (const d of iommu.domains)
        for (const g of d.groups)
          for (const dev of g.devices) for (const r of dev.resvRegions()) list = excludeRange(list, r.start, r.last);
    }
    iommu.iovaList = list;
  } finally {
    iommu.lock.unlock();
  }
}

/** vfio_iommu_type1_release() */
function release(iommu: VfioIommu): void {
  unmapUnpinAll(iommu);
  for (const d of iommu.domains) for (const g of d.groups) g.core.detachGroup(d.domain, g);
  iommu.domains.length = 0;
  iommu.emulatedGroups.length = 0;
}

function* ioctl(iommu: VfioIommu | null, cmd: number, arg: number): KGen<number> {
  if (cmd === V.VFIO_CHECK_EXTENSION) return checkExtension(iommu, arg);
  if (!iommu) return -ENOTTY;
  switch (cmd) {
    case V.VFIO_IOMMU_GET_INFO:
      return yield* getInfo(iommu, arg);
    case V.VFIO_IOMMU_MAP_DMA:
      return yield* mapDma(iommu, arg);
    case V.VFIO_IOMMU_UNMAP_DMA:
      return yield* unmapDma(iommu, arg);
    case V.VFIO_IOMMU_DIRTY_PAGES:
      return yield* dirtyPages(iommu, arg);
    default:
      return -ENOTTY;
  }
}

const live = new SideTable<Kernel, Set<VfioIommu>>();

/**
 * The type1 invariants (registered in Kernel.checks while the module is loaded): each
 * mapping's pinned pages are mapped in every domain of its container, page by page, with
 * its permission; each process's mm->locked_vm equals what type1 mappings charged it; a
 * Page's pin count is at least the number of mappings holding it; dma_avail + mappings is
 * the limit. Assumes no other subsystem charges locked_vm (iommufd charges pinned_vm or the
 * user unless in VFIO-compatible mode).
 */
export function type1Violations(k: Kernel): string[] {
  const out: string[] = [];
  const charged = new Map<unknown, number>();
  const holdCount = new Map<Page, number>();
  for (const iommu of type1Instances(k)) {
    let n = 0;
    for (const dma of iommu.dmaList) {
      n++;
      if (dma.pages) {
        charged.set(dma.mm, (charged.get(dma.mm) ?? 0) + chargedPages(dma.pages));
        const iova = dma.iova;
        // page numbers, and the entries compared in place (lookup() would make an IoPte)
        const pfn0 = Number(iova >> PAGE_SHIFT_N);
        const pages = dma.pages;
        for (let i = 0; i < pages.length; i++) {
          const pg = pages[i]!;
          holdCount.set(pg, (holdCount.get(pg) ?? 0) + 1);
          for (const d of iommu.domains) {
            if (!d.domain.mapsPage(pfn0 + i, pg, dma.prot))
              out.push(
                `type1: iova 0x${(iova + BigInt(i * 4096)).toString(16)} not mapped as pinned in ${d.domain.describe()}`,
              );
          }
        }
      } else if (iommu.domains.length)
        out.push(`type1: mapping at 0x${dma.iova.toString(16)} unpinned with a domain present`);
    }
    if (n + iommu.dmaAvail !== iommu.dmaLimit) out.push(`type1: ${n} mappings but dma_avail ${iommu.dmaAvail}`);
    for (const d of iommu.domains) {
      let pages = 0;
      for (const dma of iommu.dmaList) pages += dma.npages;
      if (d.domain.mappedPages !== pages)
        out.push(`type1: ${d.domain.describe()} maps ${d.domain.mappedPages} pages, mappings hold ${pages}`);
    }
  }
  for (const p of k.processes.values()) {
    // mm->locked_vm is shared with iommufd's per-mm accounting (RLIMIT_MODE 1)
    const type1 = charged.get(p.mm) ?? 0;
    const fd = iommufdMmLockedVm(k, p.mm);
    if (p.mm.lockedVm !== type1 + fd)
      out.push(
        `pid ${p.pid}: locked_vm ${p.mm.lockedVm} pages, type1 charged ${type1}${fd ? ` (+ iommufd ${fd})` : ""}`,
      );
  }
  for (const [pg, n] of holdCount)
    if (pg.pins < n) out.push(`page pfn ${pg.pfn}: ${pg.pins} pins but ${n} mappings hold it`);
  return out;
}

/** The type1 instances alive in kernel k (for invariants and benchmarks). */
export function type1Instances(k: Kernel): Set<VfioIommu> {
  let s = live.get(k);
  if (!s) live.set(k, (s = new Set()));
  return s;
}

export const vfioIommuType1Module: ModuleDef = {
  name: "vfio_iommu_type1",
  requires: ["vfio"],
  init(k, m) {
    const core = VfioCore.of(k);
    if (!core) return -ENOENT;
    const ops: VfioIommuDriverOps = {
      name: "vfio-iommu-type1",
      owner: m,
      // vfio_iommu_type1_open()
      open(arg) {
        if (shouldFail()) return -ENOMEM; // kzalloc of the vfio_iommu (vfio_iommu_type1.c:2544)
        switch (arg) {
          case V.VFIO_TYPE1_IOMMU:
            return track(new VfioIommu(k, false, false));
          case V.VFIO_TYPE1_NESTING_IOMMU:
            return track(new VfioIommu(k, true, true));
          case V.VFIO_TYPE1v2_IOMMU:
            return track(new VfioIommu(k, true, false));
          default:
            return -EINVAL;
        }
      },
      release(data) {
        release(data as VfioIommu);
        type1Instances(k).delete(data as VfioIommu);
      },
      ioctl: (data, cmd, arg) => ioctl(data as VfioIommu | null, cmd, arg),
      attachGroup: (data, ig, type) => attachGroup(data as VfioIommu, ig, type),
      detachGroup: (data, ig) => detachGroup(data as VfioIommu, ig),
    };
    m.export("__vfio_iommu_type1_ops", ops);
    k.checks.set("vfio_iommu_type1", () => type1Violations(k));
    return vfioRegisterIommuDriver(core, ops);
  },
  exit(k, m) {
    const core = VfioCore.of(k);
    const ops = m.exports.get("__vfio_iommu_type1_ops") as VfioIommuDriverOps;
    if (core) vfioUnregisterIommuDriver(core, ops);
    k.checks.delete("vfio_iommu_type1");
  },
};

function track(i: VfioIommu): VfioIommu {
  type1Instances(i.k).add(i);
  return i;
}
