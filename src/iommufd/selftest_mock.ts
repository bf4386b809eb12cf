// The selftest's mock IOMMU driver (drivers/iommu/iommufd/selftest.c mock_ops): devices on
// the "iommufd_mock" bus (struct mock_dev) and the mock paging domain.
//
// - MockDev: an IommuDevice "iommufd_mockN" (N from mock_dev_ida, lowest free) in an IOMMU
//   group of its own, no reserved regions, IOMMU_CAP_CACHE_COHERENCY, dirty tracking unless
//   MOCK_FLAGS_DEVICE_NO_DIRTY; no DMA port (it never does DMA).
// - MockDomain: aperture MOCK_APERTURE_START..LAST, page size MOCK_IO_PAGE_SIZE (PAGE_SIZE/2,
//   plus MOCK_HUGE_PAGE_SIZE with MOCK_FLAGS_DEVICE_HUGE_IOVA), its "page table" the pfn
//   xarray: one entry per 2 KiB IOVA chunk holding the physical address / 2 KiB and the
//   START/LAST/DIRTY/HUGE bits. A physical address is the Page's pfn * PAGE_SIZE + offset.
//   It is an IommuDomain for the core (groups attach to it) and an IoptDomain for the
//   io_pagetable (`iopt`), which maps areas with their sub-page offset.
// - MockNestedDomain: a nested domain over a mock parent (IOMMU_HWPT_DATA_SELFTEST) whose
//   only state is a 4-entry IOTLB that IOMMU_HWPT_INVALIDATE clears and MD_CHECK_IOTLB reads.

import { EFAULT, EINVAL, ENOENT, EOPNOTSUPP } from "../uapi/errno.js";
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_TEST_INVALIDATE_FLAG_ALL,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  MOCK_APERTURE_LAST,
  MOCK_APERTURE_START,
  MOCK_FLAGS_DEVICE_HUGE_IOVA,
  MOCK_FLAGS_DEVICE_NO_DIRTY,
  MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
  MOCK_NESTED_DOMAIN_IOTLB_NUM,
} from "../uapi/iommufd_test.js";
import type { Kernel } from "../kernel/kernel.js";
import { type Page, PAGE_SIZE } from "../kernel/mm.js";
import { IommuDomain } from "../iommu/domain.js";
import { type IommuCap, IommuCore, IommuDevice, type ResvRegion } from "../iommu/iommu.js";
import type { Process } from "../kernel/process.js";
import type { IoptDomain } from "./io_pagetable.js";
import { uaddr } from "./pages.js";

export const MOCK_IO_PAGE_SIZE = PAGE_SIZE / 2;
export const MOCK_HUGE_PAGE_SIZE = 512 * MOCK_IO_PAGE_SIZE;
const CHUNK = BigInt(MOCK_IO_PAGE_SIZE);

/** The metadata bits above the pfn (MOCK_PFN_START_IOVA == MOCK_PFN_LAST_IOVA). */
export const MOCK_PFN_START_IOVA = 1;
export const MOCK_PFN_LAST_IOVA = 1;
export const MOCK_PFN_DIRTY_IOVA = 2;
export const MOCK_PFN_HUGE_IOVA = 4;

/** IOMMU_DIRTY_NO_CLEAR (== IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) */
export const IOMMU_DIRTY_NO_CLEAR = 1;

/** One xarray entry: the 2 KiB of physical memory an IOVA chunk maps, and its bits. */
export interface MockPfn {
  readonly page: Page;
  /** which half of the page (0 or 1) */
  readonly half: number;
  flags: number;
}

/** mock_dev_ida per kernel: the ids of the mock devices alive */
const idas = new WeakMap<Kernel, Set<number>>();
/** kernels where a platform IOMMU claims the mock bus (see setMockIommuProbes()) */
const unprobed = new WeakSet<Kernel>();

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

/** struct mock_iommu_domain */
export class MockDomain extends IommuDomain {
  /** the pfn xarray, by IOVA / MOCK_IO_PAGE_SIZE */
  readonly pfns = new Map<number, MockPfn>();
  /** domain->dirty_ops: allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING */
  readonly dirtyOps: boolean;
  /** MOCK_DIRTY_TRACK in mock->flags */
  dirtyTrack = false;
  readonly iopt: IoptDomain;

  constructor(dev: MockDev | null, dirtyOps: boolean, owner: string) {
    let pgsize = BigInt(MOCK_IO_PAGE_SIZE);
    if (dev && dev.flags & MOCK_FLAGS_DEVICE_HUGE_IOVA) pgsize |= BigInt(MOCK_HUGE_PAGE_SIZE);
    super("paging", pgsize, MOCK_APERTURE_START, MOCK_APERTURE_LAST, false, owner);
    this.dirtyOps = dirtyOps;
    this.iopt = {
      pgsizeBitmap: pgsize,
      apertureStart: MOCK_APERTURE_START,
      apertureEnd: MOCK_APERTURE_LAST,
      map: (iova, length, pageOffset, pages) => this.mapArea(iova, length, pageOffset, pages),
      unmap: (iova, length) => this.unmapRange(iova, length),
      // mock_domain_map_pages(): "put our own failure point" (iommufd_should_fail())
      mapFailErrno: -ENOENT,
    };
  }

  get huge(): boolean {
    return (this.pgsizeBitmap & BigInt(MOCK_HUGE_PAGE_SIZE)) !== 0n;
  }

  /**
   * What iopt's batch_to_domain() and iommu_map() make of an area: one iommu_map() per
   * physically contiguous run of pages, split by __iommu_map() into map_pages() calls of
   * one page size each (MOCK_HUGE_PAGE_SIZE where iova and paddr allow it).
   */
  private mapArea(iova: bigint, length: bigint, pageOffset: number, pages: readonly Page[]): number {
    const n = Number(length);
    if (Number(iova % CHUNK) !== 0 || n % MOCK_IO_PAGE_SIZE !== 0 || pageOffset % MOCK_IO_PAGE_SIZE !== 0)
      return -EINVAL; // __iommu_map(): not aligned to the minimum page size
    let at = Number(iova);
    let off = 0;
    while (off < n) {
      // a physically contiguous run from byte `off` of the area
      const first = Math.floor((pageOffset + off) / PAGE_SIZE);
      let last = first;
      const lastByteIdx = Math.floor((pageOffset + n - 1) / PAGE_SIZE);
      while (last < lastByteIdx && pages[last + 1]!.pfn === pages[last]!.pfn + 1) last++;
      const runEnd = Math.min(n, (last + 1) * PAGE_SIZE - pageOffset);
      this.mapRun(at, pages, pageOffset + off, runEnd - off);
      at += runEnd - off;
      off = runEnd;
    }
    return 0;
  }

  /** __iommu_map() of one contiguous run: `len` bytes from byte `pos` of `pages` at `iova`. */
  private mapRun(iova: number, pages: readonly Page[], pos: number, len: number): void {
    const H = MOCK_HUGE_PAGE_SIZE;
    const paddr = (p: number): number => pages[Math.floor(p / PAGE_SIZE)]!.pfn * PAGE_SIZE + (p % PAGE_SIZE);
    while (len > 0) {
      const pa = paddr(pos);
      let pgsize = MOCK_IO_PAGE_SIZE;
      let count: number;
      if (this.huge && len >= H && iova % H === 0 && pa % H === 0) {
        pgsize = H;
        count = Math.floor(len / H);
      } else if (this.huge && (iova - pa) % H === 0) {
        // up to where the huge size becomes reachable (iommu_pgsize())
        const toBoundary = H - (iova % H);
        count = Math.min(len, toBoundary) / MOCK_IO_PAGE_SIZE;
      } else count = len / MOCK_IO_PAGE_SIZE;
      this.mapPages(iova, pages, pos, pgsize, count);
      const done = pgsize * count;
      iova += done;
      pos += done;
      len -= done;
    }
  }

  /** mock_domain_map_pages() */
  private mapPages(iova: number, pages: readonly Page[], pos: number, pgsize: number, count: number): void {
    const total = (pgsize / MOCK_IO_PAGE_SIZE) * count;
    for (let i = 0; i < total; i++) {
      const p = pos + i * MOCK_IO_PAGE_SIZE;
      let flags = i === 0 || i === total - 1 ? MOCK_PFN_START_IOVA : 0;
      if (pgsize !== MOCK_IO_PAGE_SIZE) flags |= MOCK_PFN_HUGE_IOVA;
      const page = pages[Math.floor(p / PAGE_SIZE)]!;
      this.pfns.set(iova / MOCK_IO_PAGE_SIZE + i, { page, half: (p % PAGE_SIZE) / MOCK_IO_PAGE_SIZE, flags });
    }
  }

  /** mock_domain_unmap_pages() */
  private unmapRange(iova: bigint, length: bigint): void {
    const first = Number(iova / CHUNK);
    const n = Number(length / CHUNK);
    for (let i = 0; i < n; i++) this.pfns.delete(first + i);
  }

  /** The physical address / MOCK_IO_PAGE_SIZE an entry holds (xa_to_value() & MOCK_PFN_MASK). */
  static paddrOf(e: MockPfn): number {
    return e.page.pfn * 2 + e.half;
  }

  /** mock_domain_set_dirty_tracking() */
  setDirtyTracking(enable: boolean): number {
    if (enable && !this.dirtyOps) return -EINVAL;
    this.dirtyTrack = enable;
    return 0;
  }

  /** mock_test_and_clear_dirty() */
  private testAndClearDirty(iova: number, pageSize: number, flags: number): boolean {
    const end = iova + pageSize - 1;
    let dirty = false;
    for (let cur = iova; cur < end; cur += MOCK_IO_PAGE_SIZE) {
      const e = this.pfns.get(Math.floor(cur / MOCK_IO_PAGE_SIZE));
      if (!e || !(e.flags & MOCK_PFN_DIRTY_IOVA)) continue;
      dirty = true;
      if (!(flags & IOMMU_DIRTY_NO_CLEAR)) e.flags &= ~MOCK_PFN_DIRTY_IOVA;
    }
    return dirty;
  }

  /**
   * mock_domain_read_and_clear_dirty(): report [iova, iova + size) page by page through
   * `record` (null: clear only, as iopt_clear_dirty_data() does).
   */
  readAndClearDirty(
    iova: number,
    size: number,
    flags: number,
    record: ((iova: number, length: number) => void) | null,
  ): number {
    if (!this.dirtyTrack && record) return -EINVAL;
    const end = iova + size;
    do {
      let pgsize = MOCK_IO_PAGE_SIZE;
      const e = this.pfns.get(Math.floor(iova / MOCK_IO_PAGE_SIZE));
      if (!e) {
        iova += pgsize;
        continue;
      }
      if (e.flags & MOCK_PFN_HUGE_IOVA) pgsize = MOCK_HUGE_PAGE_SIZE;
      const head = iova - (iova % pgsize);
      if (this.testAndClearDirty(head, pgsize, flags)) record?.(iova, pgsize);
      iova += pgsize;
    } while (iova < end);
    return 0;
  }
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
