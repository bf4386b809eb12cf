// struct iommu_domain (include/linux/iommu.h, drivers/iommu/iommu.c): what a device's DMA
// goes through. Three types: a paging domain translates IOVAs through its page table; an
// identity domain passes bus addresses through untranslated; a blocked domain refuses all.
//
// The page table maps IOVA pages (4 KiB; the pgsize bitmap is reported, not used to build
// large entries) to Page objects of src/kernel/mm.ts with read/write permission. It is a
// two-level radix table as hardware walks: a directory of 512-entry leaf tables, a leaf
// freed when its last entry goes (a flat Map churned by map/unmap degrades badly in V8). The table
// never pins: whoever maps a page (type1, iommufd) pinned it first and unpins it after the
// unmap. "last" is inclusive, "end" exclusive, IOVAs are bigint.

import { EEXIST, EINVAL } from "../uapi/errno.js";
import { type Page, PAGE_SHIFT, PAGE_SIZE } from "../kernel/mm.js";
import { kzallocBytes } from "../kernel/slab.js";

/** the page shift and in-page mask as bigints, made once (a BigInt() per call allocates) */
const PAGE_SHIFT_N = BigInt(PAGE_SHIFT);
const PAGE_LOW_N = BigInt(PAGE_SIZE - 1);

export const IOMMU_READ = 1;
export const IOMMU_WRITE = 2;

export type IommuDomainType = "paging" | "identity" | "blocked" | "nested";

export interface IoPte {
  readonly page: Page;
  readonly prot: number;
}

/** entries per leaf table (a 4 KiB table of 8-byte PTEs) */
const LEAF = 512;

/** A leaf table: each entry's page and permission, stored apart so that a map stores no new
 * object (an entry object per map, written into a long-lived table, was ~2/3 of a one-page
 * map + unmap); lookup()'s IoPte is made on the first lookup of an entry and kept until the
 * entry changes, so DMA through a mapping allocates nothing after its first access. A new
 * leaf copies an empty one (filling 512 slots one by one cost three times as much), takes
 * its permissions from a slab, and gets its IoPte list at its first lookup: a leaf made and
 * dropped by one map and unmap (or one explorer execution) costs about a quarter of what it
 * did. */
interface Leaf {
  readonly pages: (Page | undefined)[];
  readonly prots: Uint8Array;
  ptes: (IoPte | undefined)[] | null;
  count: number;
}

/** a leaf's empty entries (packed, every slot undefined): copied, never written */
const EMPTY_LEAF: readonly undefined[] = new Array<undefined>(LEAF).fill(undefined);

let nextDomainId = 1;

export class IommuDomain {
  readonly id = nextDomainId++;
  /** IOVA page number >> 9 -> leaf table; page numbers < 2^52 are exact as numbers */
  private readonly dir = new Map<number, Leaf>();
  private n = 0;
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
    // the aperture in whole pages: the first page starting in it, the last page ending in it
    this.apStartPfn = Number((apertureStart + PAGE_LOW_N) >> PAGE_SHIFT_N);
    this.apLastPfn = Number((apertureEnd + 1n) >> PAGE_SHIFT_N) - 1;
  }
  private readonly apStartPfn: number;
  private readonly apLastPfn: number;

  get mappedPages(): number {
    return this.n;
  }

  /** the leaf table last reached and its directory key (map and unmap of neighbouring pages,
   * and a DMA's page after page, stay in one leaf) */
  private lastKey = -1;
  private lastLeaf: Leaf | undefined = undefined;

  private leaf(key: number): Leaf | undefined {
    if (key === this.lastKey) return this.lastLeaf;
    const leaf = this.dir.get(key);
    if (leaf !== undefined) {
      this.lastKey = key;
      this.lastLeaf = leaf;
    }
    return leaf;
  }

  private get(pfn: number): IoPte | undefined {
    const key = Math.floor(pfn / LEAF);
    const leaf = this.leaf(key);
    if (leaf === undefined) return undefined;
    const i = pfn - key * LEAF;
    const page = leaf.pages[i];
    if (page === undefined) return undefined;
    const ptes = (leaf.ptes ??= EMPTY_LEAF.slice());
    return (ptes[i] ??= { page, prot: leaf.prots[i]! });
  }

  private has(pfn: number): boolean {
    const key = Math.floor(pfn / LEAF);
    const leaf = this.leaf(key);
    return leaf !== undefined && leaf.pages[pfn - key * LEAF] !== undefined;
  }

  private set(pfn: number, page: Page, prot: number): void {
    const key = Math.floor(pfn / LEAF);
    let leaf = this.leaf(key);
    if (leaf === undefined) {
      leaf = { pages: EMPTY_LEAF.slice(), prots: kzallocBytes(LEAF), ptes: null, count: 0 };
      this.dir.set(key, leaf);
      this.lastKey = key;
      this.lastLeaf = leaf;
    }
    const i = pfn - key * LEAF;
    leaf.pages[i] = page;
    leaf.prots[i] = prot;
    leaf.count++;
    this.n++;
  }

  private del(pfn: number): boolean {
    const key = Math.floor(pfn / LEAF);
    const leaf = this.leaf(key);
    const i = pfn - key * LEAF;
    if (leaf === undefined || leaf.pages[i] === undefined) return false;
    leaf.pages[i] = undefined;
    if (leaf.ptes !== null) leaf.ptes[i] = undefined;
    this.n--;
    if (--leaf.count === 0) {
      this.dir.delete(key);
      this.lastKey = -1;
      this.lastLeaf = undefined;
    }
    return true;
  }

  /**
   * iommu_map(): map `pages` at `iova` (page aligned, inside the aperture) with `prot`.
   * -EEXIST if any page is already mapped; nothing changes on failure.
   */
  map(iova: bigint, pages: readonly Page[], prot: number): number {
    if (this.type !== "paging") return -EINVAL;
    if (iova & PAGE_LOW_N) return -EINVAL;
    return this.mapPfn(Number(iova >> PAGE_SHIFT_N), pages, prot);
  }

  /** map() at IOVA page number `first` (an IOVA's page number is below 2^52: exact, and no
   * bigint per call for a caller that keeps page numbers, as type1 does) */
  mapPfn(first: number, pages: readonly Page[], prot: number): number {
    if (this.type !== "paging") return -EINVAL;
    if (pages.length === 0 || first < this.apStartPfn || first + pages.length - 1 > this.apLastPfn) return -EINVAL;
    for (let i = 0; i < pages.length; i++) if (this.has(first + i)) return -EEXIST;
    for (let i = 0; i < pages.length; i++) this.set(first + i, pages[i]!, prot);
    return 0;
  }

  /** iommu_unmap(): unmap [iova, iova + size); returns bytes that were mapped (-ENOENT never). */
  unmap(iova: bigint, size: bigint): number {
    return this.unmapPfn(Number(iova >> PAGE_SHIFT_N), Number(size >> PAGE_SHIFT_N));
  }

  /** unmap() of `n` pages from IOVA page number `first` */
  unmapPfn(first: number, n: number): number {
    let done = 0;
    for (let i = 0; i < n; i++) if (this.del(first + i)) done += PAGE_SIZE;
    return done;
  }

  /** iommu_iova_to_phys() in page terms: the entry for the page holding `iova`, or null. */
  lookup(iova: bigint): IoPte | null {
    if (this.type !== "paging") return null;
    return this.get(Number(iova >> PAGE_SHIFT_N)) ?? null;
  }

  /** Whether IOVA page number `pfn` maps `page` with `prot`: lookup()'s entry compared in
   * place, with no IoPte made (the invariants ask it of every pinned page) */
  mapsPage(pfn: number, page: Page, prot: number): boolean {
    if (this.type !== "paging") return false;
    const key = Math.floor(pfn / LEAF);
    const leaf = this.leaf(key);
    if (leaf === undefined) return false;
    const i = pfn - key * LEAF;
    return leaf.pages[i] === page && leaf.prots[i] === prot;
  }

  /** Every mapped IOVA page number (for invariants). */
  *entries(): IterableIterator<[number, IoPte]> {
    for (const [key, leaf] of this.dir)
      for (let i = 0; i < LEAF; i++) if (leaf.pages[i] !== undefined) yield [key * LEAF + i, this.get(key * LEAF + i)!];
  }

  describe(): string {
    return `iommu_domain ${this.id} (${this.type}, ${this.owner})`;
  }
}
