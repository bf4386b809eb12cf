// The selftest's mock paging domain (drivers/iommu/iommufd/selftest.c struct
// mock_iommu_domain, mock_domain_map_pages() / unmap_pages() and the dirty ops): aperture
// MOCK_APERTURE_START..LAST, page size MOCK_IO_PAGE_SIZE (PAGE_SIZE / 2, plus
// MOCK_HUGE_PAGE_SIZE with MOCK_FLAGS_DEVICE_HUGE_IOVA), its "page table" the pfn xarray:
// one entry per 2 KiB IOVA chunk holding the physical address / 2 KiB and the
// START/LAST/DIRTY/HUGE bits. A physical address is the Page's pfn * PAGE_SIZE + offset. It
// is an IommuDomain for the core (groups attach to it) and an IoptDomain for the
// io_pagetable (`iopt`), which maps areas with their sub-page offset.

import { EINVAL, ENOENT } from "../uapi/errno.js";
import { MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_FLAGS_DEVICE_HUGE_IOVA } from "../uapi/iommufd_test.js";
import { type Page, PAGE_SIZE } from "../kernel/mm.js";
import { IommuDomain } from "../iommu/domain.js";
import type { IoptDomain } from "./io_pagetable.js";
import type { MockDev } from "./selftest_mock_dev.js";

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
