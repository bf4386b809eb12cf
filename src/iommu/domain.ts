// struct iommu_domain (include/linux/iommu.h, drivers/iommu/iommu.c): what a device's DMA
// goes through. Three types: a paging domain translates IOVAs through its page table; an
// identity domain passes bus addresses through untranslated; a blocked domain refuses all.
//
// The page table maps IOVA pages (4 KiB; the pgsize bitmap is reported, not used to build
// large entries) to Page objects of src/kernel/mm.ts with read/write permission. The table
// never pins: whoever maps a page (type1, iommufd) pinned it first and unpins it after the
// unmap. "last" is inclusive, "end" exclusive, IOVAs are bigint.

import { EEXIST, EINVAL } from "../uapi/errno.js";
import { type Page, PAGE_SHIFT, PAGE_SIZE } from "../kernel/mm.js";

export const IOMMU_READ = 1;
export const IOMMU_WRITE = 2;

export type IommuDomainType = "paging" | "identity" | "blocked";

export interface IoPte {
  readonly page: Page;
  readonly prot: number;
}

let nextDomainId = 1;

export class IommuDomain {
  readonly id = nextDomainId++;
  /** IOVA page number -> entry; page numbers < 2^52 are exact as numbers */
  private readonly pt = new Map<number, IoPte>();
  /** groups currently attached (group.domain === this) */
  readonly groups = new Set<{ readonly id: number }>();
  /** what allocated the domain, for reports: "vfio_iommu_type1", "iommufd hwpt 4", "default" */
  owner: string;

  constructor(
    readonly type: IommuDomainType,
    /** supported page sizes; its lowest bit is the mapping granule */
    readonly pgsizeBitmap: bigint,
    /** geometry.aperture_start / aperture_end (inclusive) */
    readonly apertureStart: bigint,
    readonly apertureEnd: bigint,
    /** the domain blocks no-snoop DMA (enforce_cache_coherency() succeeded) */
    public enforceCacheCoherency: boolean,
    owner: string,
  ) {
    this.owner = owner;
  }

  get mappedPages(): number {
    return this.pt.size;
  }

  /**
   * iommu_map(): map `pages` at `iova` (page aligned, inside the aperture) with `prot`.
   * -EEXIST if any page is already mapped; nothing changes on failure.
   */
  map(iova: bigint, pages: readonly Page[], prot: number): number {
    if (this.type !== "paging") return -EINVAL;
    if (iova & BigInt(PAGE_SIZE - 1)) return -EINVAL;
    const last = iova + BigInt(pages.length * PAGE_SIZE) - 1n;
    if (pages.length === 0 || iova < this.apertureStart || last > this.apertureEnd) return -EINVAL;
    const first = Number(iova >> BigInt(PAGE_SHIFT));
    for (let i = 0; i < pages.length; i++) if (this.pt.has(first + i)) return -EEXIST;
    for (let i = 0; i < pages.length; i++) this.pt.set(first + i, { page: pages[i]!, prot });
    return 0;
  }

  /** iommu_unmap(): unmap [iova, iova + size); returns bytes that were mapped (-ENOENT never). */
  unmap(iova: bigint, size: bigint): number {
    const first = Number(iova >> BigInt(PAGE_SHIFT));
    const n = Number(size >> BigInt(PAGE_SHIFT));
    let done = 0;
    for (let i = 0; i < n; i++) if (this.pt.delete(first + i)) done += PAGE_SIZE;
    return done;
  }

  /** iommu_iova_to_phys() in page terms: the entry for the page holding `iova`, or null. */
  lookup(iova: bigint): IoPte | null {
    if (this.type !== "paging") return null;
    return this.pt.get(Number(iova >> BigInt(PAGE_SHIFT))) ?? null;
  }

  /** Every mapped IOVA page number (for invariants). */
  *entries(): IterableIterator<[number, IoPte]> {
    yield* this.pt.entries();
  }

  describe(): string {
    return `iommu_domain ${this.id} (${this.type}, ${this.owner})`;
  }
}
