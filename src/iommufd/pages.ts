// struct iopt_pages (drivers/iommu/iommufd/pages.c): a linear chunk of user VA that one
// IOMMU_IOAS_MAP recorded, shared by every area that slices it (areas made by COPY point at
// the same pages). Indexes are PAGE_SIZE units from `uptr` (page aligned down).
//
// Pinning is lazy: nothing is pinned at MAP time; an area pins its slice when the IOAS gets
// its first domain (or at MAP when a domain already exists) and unpins it when the last
// domain goes or the area is unmapped. A page index is pinned once per iopt_pages however
// many areas and domains use it (`pinned` counts users per index), so COPY never pins or
// charges twice, while two MAPs of the same memory make two iopt_pages and are charged
// twice (kernel-facts.md §11).
//
// Accounting (do_update_pinned()): ACCOUNT_USER charges user->locked_vm against the source
// task's RLIMIT_MEMLOCK, ACCOUNT_MM charges mm->locked_vm (__account_locked_vm()), NONE
// (CAP_IPC_LOCK) charges nothing; every mode adds to mm->pinned_vm. Exceeding -> ENOMEM.
//
// Not a RefCounted: a 1M-area IOAS has 1M of these and the leak registry would double their
// cost. `users` is the kref; src/check/iommufd_invariants.ts recomputes it from the areas.

import { EFAULT, ENOMEM } from "../uapi/errno.js";
import { shouldFail } from "./fail_nth.js";
import { PAGE_SIZE, type Page } from "../kernel/mm.js";
import { CAP_IPC_LOCK, type Process } from "../kernel/process.js";

export const IOPT_PAGES_ACCOUNT_NONE = 0;
export const IOPT_PAGES_ACCOUNT_USER = 1;
export const IOPT_PAGES_ACCOUNT_MM = 2;

const WRITABLE = 4;
const ACCOUNT_MASK = 3;

interface PinnedPage {
  readonly page: Page;
  users: number;
}

export class IoptPages {
  // The fields are assigned in the constructor, not declared with initializers: a base class
  // with class fields makes `new IoptArea()` (every IOMMU_IOAS_MAP) a generic construct call
  // that TurboFan does not inline, ~34 ns against ~21 ns (docs/performance.md).
  /** page-aligned start of the user VA */
  declare readonly uptr: number;
  declare readonly npages: number;
  /** source_task / source_mm / source_user in one: the mapping process */
  declare readonly source: Process;
  /** the kref: areas (and in-flight COPY lists) holding this */
  declare users: number;
  /** writable | account mode */
  declare private pbits: number;
  /** page index -> pinned page with its user count; null while nothing is pinned */
  declare pinned: Map<number, PinnedPage> | null;

  constructor(uptr: number, npages: number, writable: boolean, source: Process) {
    this.uptr = uptr;
    this.npages = npages;
    this.source = source;
    this.users = 1;
    const mode = source.capable(CAP_IPC_LOCK) ? IOPT_PAGES_ACCOUNT_NONE : IOPT_PAGES_ACCOUNT_USER;
    this.pbits = (writable ? WRITABLE : 0) | mode;
    this.pinned = null;
  }

  get writable(): boolean {
    return (this.pbits & WRITABLE) !== 0;
  }
  get accountMode(): number {
    return this.pbits & ACCOUNT_MASK;
  }
  set accountMode(m: number) {
    this.pbits = (this.pbits & ~ACCOUNT_MASK) | m;
  }
  get npinned(): number {
    return this.pinned === null ? 0 : this.pinned.size;
  }

  /**
   * Pin indexes [first, last] for one more user (an area filling domains, or an access):
   * pages already pinned gain a user, others are pinned and charged. On failure (-EFAULT for
   * memory that cannot be pinned, -ENOMEM over the limit) nothing changes.
   */
  pinRange(first: number, last: number): number {
    if (shouldFail()) return -ENOMEM; // the pfn batch / pin_user_pages allocation
    const map = this.pinned ?? new Map<number, PinnedPage>();
    const fresh: number[] = [];
    const mm = this.source.mm;
    for (let i = first; i <= last; i++) {
      const pp = map.get(i);
      if (pp) continue;
      const r = mm.pinPages(this.uptr + i * PAGE_SIZE, 1, this.writable);
      if (typeof r === "number") {
        this.unpinFresh(map, fresh);
        return -EFAULT;
      }
      map.set(i, { page: r[0]!, users: 0 });
      fresh.push(i);
    }
    const rc = this.charge(fresh.length);
    if (rc < 0) {
      this.unpinFresh(map, fresh);
      return rc;
    }
    for (let i = first; i <= last; i++) map.get(i)!.users++;
    this.pinned = map;
    return 0;
  }

  /** Drop one user of [first, last]; pages losing their last user are unpinned and uncharged. */
  unpinRange(first: number, last: number): void {
    const map = this.pinned;
    if (map === null) return;
    let n = 0;
    for (let i = first; i <= last; i++) {
      const pp = map.get(i);
      if (!pp) continue;
      if (--pp.users === 0) {
        pp.page.pins--;
        map.delete(i);
        n++;
      }
    }
    this.uncharge(n);
    if (map.size === 0) this.pinned = null;
  }

  /** The pinned page at index i (it must be pinned). */
  pageAt(i: number): Page {
    return this.pinned!.get(i)!.page;
  }

  private unpinFresh(map: Map<number, PinnedPage>, fresh: number[]): void {
    for (const i of fresh) {
      map.get(i)!.page.pins--;
      map.delete(i);
    }
  }

  private limitPages(): number {
    return Math.floor(this.source.memlock.cur / PAGE_SIZE);
  }

  private charge(n: number): number {
    if (n === 0) return 0;
    const p = this.source;
    switch (this.accountMode) {
      case IOPT_PAGES_ACCOUNT_USER:
        if (p.user.lockedVm + n > this.limitPages()) return -ENOMEM;
        p.user.lockedVm += n;
        break;
      case IOPT_PAGES_ACCOUNT_MM:
        if (p.mm.lockedVm + n > this.limitPages()) return -ENOMEM;
        p.mm.lockedVm += n;
        break;
    }
    p.mm.pinnedVm += n;
    return 0;
  }

  private uncharge(n: number): void {
    if (n === 0) return;
    const p = this.source;
    if (this.accountMode === IOPT_PAGES_ACCOUNT_USER) p.user.lockedVm -= n;
    else if (this.accountMode === IOPT_PAGES_ACCOUNT_MM) p.mm.lockedVm -= n;
    p.mm.pinnedVm -= n;
  }
}

/** A user address the model can pin: addresses at or past 2^53 (never user memory) become
 * 2^53, which every pin refuses with EFAULT. */
export function uaddr(v: bigint): number {
  return v < 1n << 53n ? Number(v) : 2 ** 53;
}

/** iopt_alloc_pages(): uptr and length as the user gave them; the caller checked length. */
export function allocPages(uptr: bigint, length: bigint, writable: boolean, source: Process): IoptPages {
  const off = uptr % BigInt(PAGE_SIZE);
  const npages = Number((length + off + BigInt(PAGE_SIZE - 1)) / BigInt(PAGE_SIZE));
  return new IoptPages(uaddr(uptr - off), npages, writable, source);
}
