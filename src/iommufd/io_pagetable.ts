// struct io_pagetable (drivers/iommu/iommufd/io_pagetable.c): the IOVA space of one IOAS.
//
// - areas: IOVA ranges backed by a slice of an IoptPages, non-overlapping, in the kernel's
//   interval tree, here a B+tree (area_tree.ts: it copies each area's range into its leaves,
//   so an area is removed before its range changes). `startByte` is the area's first byte
//   counted from pages.uptr, so index = startByte / PAGE_SIZE and page_offset = startByte %
//   PAGE_SIZE.
// - reserved: ranges no area may cover (domain apertures, device MSI windows), with owners;
//   they may overlap each other. allowed: if non-empty, automatic IOVA allocation stays
//   inside it (it limits neither FIXED maps nor IOVA_RANGES, as the oracle showed).
// - domains: the iommu domains attached through HWPTs; while there is at least one, every
//   area is "filled": its pages are pinned once (pages.pinRange) and mapped in each domain.
// - iovaAlignment: 1 with no domain, the largest minimum page size of the domains, PAGE_SIZE
//   when huge pages are disabled. All IOVAs, lengths and page offsets are multiples of it.
//
// IOVAs are bigint at this interface ("last" is inclusive, "end" exclusive). The paths are
// plain functions: each runs to completion under the scheduler, the twin's equivalent of
// holding iova_rwsem + domains_rwsem for the whole call. Failing calls leave everything as
// before, except the one kernel quirk kept on purpose: an unmap that removes some areas and
// then meets one it would cut returns -ENOENT with the first ones gone (6.12 does so).

import { EADDRINUSE, EBUSY, EDEADLK, EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC, EOVERFLOW, EPERM } from "../uapi/errno.js";
import { shouldFail } from "./fail_nth.js";
import { PAGE_SIZE, type Page } from "../kernel/mm.js";
import type { Process } from "../kernel/process.js";
import type { KGen } from "../kernel/sched.js";
import {
  BIAS,
  fromHalves,
  hiOf,
  IntervalNode,
  IntervalTree,
  type IovaRange,
  loOf,
  setRangeHalves,
} from "./interval_tree.js";
import { AreaTree } from "./area_tree.js";
import { allocPages, IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER, IoptPages } from "./pages.js";

export const U64_MAX = 0xffffffffffffffffn;
/** ULONG_MAX on x86-64: iova and length must stay below it (uapi checks use >=). */
export const ULONG_MAX = U64_MAX;
const PAGE = BigInt(PAGE_SIZE);
/** HPAGE_SIZE with THP: the cap on the automatic IOVA alignment */
const HPAGE_SIZE = 2n * 1024n * 1024n;

export const IOMMU_READ = 1;
export const IOMMU_WRITE = 2;
export const IOMMU_CACHE = 4;
const AREA_FILLED = 8;
/** unmap has started on the area: no new access may pin it (area->prevent_access) */
const AREA_PREVENT_ACCESS = 16;
/** area->num_accesses lives in the bits above */
const ACCESS_SHIFT = 5;
const ACCESS_ONE = 1 << ACCESS_SHIFT;

/** What the io_pagetable needs of an attached access (struct iommufd_access). */
export interface IoptAccess {
  readonly iovaAlignment: number;
}

/** What the io_pagetable needs of an iommu_domain (the IOMMU core's domain adapts to it). */
export interface IoptDomain {
  /** domain->pgsize_bitmap */
  readonly pgsizeBitmap: bigint;
  readonly apertureStart: bigint;
  readonly apertureEnd: bigint;
  /** map [iova, iova + pages.length * PAGE_SIZE - pageOffset) (already pinned); 0 or -errno */
  map(iova: bigint, length: bigint, pageOffset: number, pages: readonly Page[], prot: number): number;
  unmap(iova: bigint, length: bigint): void;
  /** what a map answers at a fail_nth point: -ENOMEM unless the driver says otherwise (the
   * selftest's mock_domain_map_pages() fails with -ENOENT) */
  readonly mapFailErrno?: number;
}

/**
 * struct iopt_area. An area made by a plain FIXED map is also the iopt_pages it slices
 * (pages === this): one object per IOMMU_IOAS_MAP instead of two, which at 1M live areas is
 * what the GC's promotion of them costs most (bench/iommufd.ts). Areas made by COPY, a split
 * or a kernel-chosen IOVA point at another object's pages and leave their own pages part
 * unused (users 0, no pins).
 */
export class IoptArea extends IoptPages {
  // Assigned in the constructor, as IoptPages's fields are (pages.ts says why): class fields
  // are initialized by a function of their own, which TurboFan did not always inline into a
  // MAP path that had seen other callers.
  // The range as biased halves (IovaRange's fields: the area tree reads them).
  declare sh: number;
  declare sl: number;
  declare lh: number;
  declare ll: number;
  declare pages: IoptPages | null;
  declare startByte: number;
  /** iommu_prot | AREA_FILLED */
  declare bits: number;

  constructor(uptr: number, npages: number, writable: boolean, source: Process) {
    super(uptr, npages, writable, source);
    this.sh = 0;
    this.sl = 0;
    this.lh = 0;
    this.ll = 0;
    this.pages = null;
    this.startByte = 0;
    this.bits = 0;
  }

  /** An area over another object's pages (set .pages). */
  static over(pages: IoptPages): IoptArea {
    const a = new IoptArea(pages.uptr, 0, false, pages.source);
    a.users = 0;
    return a;
  }

  setRange(start: bigint, last: bigint): void {
    setRangeHalves(this, start, last);
  }
  get start(): bigint {
    return fromHalves(this.sh, this.sl);
  }
  get last(): bigint {
    return fromHalves(this.lh, this.ll);
  }

  get prot(): number {
    return this.bits & 7;
  }
  get filled(): boolean {
    return (this.bits & AREA_FILLED) !== 0;
  }
  get numAccesses(): number {
    return this.bits >>> ACCESS_SHIFT;
  }
  get preventAccess(): boolean {
    return (this.bits & AREA_PREVENT_ACCESS) !== 0;
  }
  addAccessUser(): void {
    this.bits += ACCESS_ONE;
  }
  removeAccessUser(): void {
    this.bits -= ACCESS_ONE;
  }
  get length(): bigint {
    return this.last - this.start + 1n;
  }
  get pageOffset(): number {
    return this.startByte % PAGE_SIZE;
  }
  get index(): number {
    return Math.floor(this.startByte / PAGE_SIZE);
  }
  get lastIndex(): number {
    return Number((BigInt(this.startByte) + this.length - 1n) / PAGE);
  }
}

export class IoptReserved extends IntervalNode {
  constructor(readonly owner: unknown) {
    super();
  }
}

/** One slice of pages for iopt_map_pages (struct iopt_pages_list). */
export interface PagesSlice {
  pages: IoptPages;
  startByte: number;
  length: bigint;
}

/** below this, iova / uptr / length arithmetic is exact in numbers (sums stay below 2^53) */
const SMALL = 1n << 52n;
const SMALL_N = 2 ** 52;
function hiN(v: number): number {
  return Math.floor(v / 4294967296) ^ BIAS;
}
function loN(v: number): number {
  return (v >>> 0) ^ BIAS;
}

/** the bytes an unmap removed, from its bigint and number parts: a number below 2^53 (big
 * is non-zero only from 2^52 bytes up) */
function unmappedOf(big: bigint, small: number): number | bigint {
  return big === 0n ? small : big + BigInt(small);
}

/** __ffs64 as a power of two: the lowest set bit of v (v != 0). */
function lowBit(v: bigint): bigint {
  return v & -v;
}

function roundupPow2(v: bigint): bigint {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
}

export class IoPagetable {
  readonly areas = new AreaTree<IoptArea>();
  readonly reserved = new IntervalTree<IoptReserved>();
  allowed = new IntervalTree<IntervalNode>();
  readonly domains: IoptDomain[] = [];
  /** iopt->access_list */
  readonly accesses: IoptAccess[] = [];
  /** iommufd_access_notify_unmap(): set by the IOAS, asks accesses to unpin a range */
  notifyUnmap: ((iova: bigint, length: bigint) => void) | null = null;
  /** the same as a path (IOMMU_IOAS_UNMAP's, with the IOAS's locks dropped: ./ioas.ts) */
  notifyUnmapPath: ((iova: bigint, length: bigint) => KGen<void>) | null = null;
  /**
   * Set by IOMMU_IOAS_UNMAP (ioas.ts) around its call: instead of notifying the accesses of
   * an area they pin from inside the unmap, the unmap stops at that area (prevent_access
   * set) and leaves it in `pendingNotify`, so the caller can drop iova_rwsem, notify and
   * retry, as iopt_unmap_iova_range() does; the areas it frees are listed in `freedAreas`.
   */
  deferNotify = false;
  pendingNotify: IoptArea | null = null;
  readonly freedAreas: IoptArea[] = [];
  /** list freed areas in `freedAreas` (set with deferNotify while the kernel poisons freed
   * objects; otherwise nobody reads the list, and an array refilled per unmap was ~150 B) */
  recordFreed = false;
  iovaAlignment = 1;
  disableLargePages = false;
  /** the bytes the last unmap*Num() call removed (also on an error after some removals):
   * a number below 2^53, a bigint above (NumU64) */
  unmappedBytes: number | bigint = 0;

  /** iopt_check_iova(): alignment, overflow, reserved (EINVAL) and area (EEXIST) overlap. */
  private checkIova(sh: number, sl: number, lh: number, ll: number): number {
    if (((sl ^ BIAS) & (this.iovaAlignment - 1)) !== 0) return -EINVAL;
    if (this.reserved.root !== null && this.reserved.firstH(sh, sl, lh, ll) !== null) return -EINVAL;
    if (this.areas.firstH(sh, sl, lh, ll) !== null) return -EEXIST;
    return 0;
  }

  /**
   * iopt_map_user_pages(): record [uptr, uptr + length) at iova (or at an IOVA the kernel
   * picks), filling the domains if there are any. Returns the IOVA or -errno.
   */
  mapUserPages(
    iova: bigint,
    uptr: bigint,
    length: bigint,
    prot: number,
    allocIova: boolean,
    source: Process,
    ctxAccountMm: boolean,
  ): bigint | number {
    if (!allocIova && iova < SMALL && uptr < SMALL && length < SMALL) {
      const r = this.mapUserPagesSmall(Number(iova), Number(uptr), Number(length), prot, source, ctxAccountMm);
      return r < 0 ? r : iova;
    }
    // iopt_alloc_pages()
    if (length > U64_MAX - PAGE || length === 0n) return -EINVAL;
    if (uptr + length > U64_MAX) return -EOVERFLOW;
    if (shouldFail()) return -ENOMEM; // kzalloc of the iopt_pages
    const pages = allocPages(uptr, length, (prot & IOMMU_WRITE) !== 0, source);
    if (ctxAccountMm && pages.accountMode === IOPT_PAGES_ACCOUNT_USER) pages.accountMode = IOPT_PAGES_ACCOUNT_MM;
    const slice: PagesSlice = { pages, startByte: Number(uptr % PAGE), length };
    const r = this.mapPages([slice], length, iova, prot, allocIova, uptr);
    if (typeof r === "number") pages.users--;
    return r;
  }

  /**
   * mapUserPages() with iova, uptr and length as IOMMU_IOAS_MAP decodes them (NumU64: numbers
   * below 2^53, bigints above): the IOVA (a number when all three are numbers below 2^52,
   * a bigint otherwise) or -errno.
   */
  mapUserPagesNum(
    iova: number | bigint,
    uptr: number | bigint,
    length: number | bigint,
    prot: number,
    allocIova: boolean,
    source: Process,
    ctxAccountMm: boolean,
  ): number | bigint {
    if (
      !allocIova &&
      typeof iova === "number" &&
      typeof uptr === "number" &&
      typeof length === "number" &&
      iova < SMALL_N &&
      uptr < SMALL_N &&
      length < SMALL_N
    ) {
      const r = this.mapUserPagesSmall(iova, uptr, length, prot, source, ctxAccountMm);
      return r < 0 ? r : iova;
    }
    return this.mapUserPages(BigInt(iova), BigInt(uptr), BigInt(length), prot, allocIova, source, ctxAccountMm);
  }

  /**
   * The same for a FIXED map whose iova, uptr and length are below 2^52 (every realistic
   * one): number arithmetic instead of bigint, the same checks in the same order.
   */
  private mapUserPagesSmall(iova: number, uptr: number, length: number, prot: number, source: Process, mm: boolean) {
    if (length === 0) return -EINVAL;
    if (shouldFail()) return -ENOMEM; // kzalloc of the iopt_pages
    const off = uptr % PAGE_SIZE;
    // the area is its own iopt_pages (see IoptArea)
    const a = new IoptArea(uptr - off, Math.ceil((length + off) / PAGE_SIZE), (prot & IOMMU_WRITE) !== 0, source);
    if (mm && a.accountMode === IOPT_PAGES_ACCOUNT_USER) a.accountMode = IOPT_PAGES_ACCOUNT_MM;
    const align = this.iovaAlignment;
    if (length % align !== 0) return -EINVAL;
    const last = iova + length - 1;
    const sh = hiN(iova);
    const sl = loN(iova);
    const lh = hiN(last);
    const ll = loN(last);
    if (iova % align !== 0) return -EINVAL;
    if (this.reserved.root !== null && this.reserved.firstH(sh, sl, lh, ll) !== null) return -EINVAL;
    if (this.areas.firstH(sh, sl, lh, ll) !== null) return -EEXIST;
    if (shouldFail()) return -ENOMEM; // iopt_area_alloc()
    if (off % align !== 0) return -EINVAL;
    a.bits = prot;
    a.startByte = off;
    a.sh = sh;
    a.sl = sl;
    a.lh = lh;
    a.ll = ll;
    a.pages = a;
    this.areas.insert(a);
    if (this.domains.length > 0) {
      const rc = this.fillArea(a);
      if (rc) {
        this.areas.remove(a);
        a.pages = null;
        return rc;
      }
    }
    return 0;
  }

  /**
   * iopt_map_pages(): place the slices one after another from dst (or a chosen IOVA). The
   * slices' page references move into the new areas on success; on failure the caller
   * keeps them.
   */
  mapPages(
    list: readonly PagesSlice[],
    length: bigint,
    dst: bigint,
    prot: number,
    allocIova: boolean,
    uptrHint?: bigint,
  ): bigint | number {
    // iopt_alloc_area_pages(): the areas are allocated first
    for (let i = 0; i < list.length; i++) if (shouldFail()) return -ENOMEM;
    if (length === 0n || (Number(length & 0xfffn) & (this.iovaAlignment - 1)) !== 0) return -EINVAL;
    let iova = dst;
    if (allocIova) {
      const first = list[0]!;
      const hint = uptrHint ?? BigInt(first.pages.uptr) + BigInt(first.startByte);
      const r = this.allocIova(hint, length);
      if (typeof r === "number") return r;
      iova = r;
    } else {
      const last = iova + length - 1n;
      if (last > U64_MAX) return -EOVERFLOW;
      const rc = this.checkIova(hiOf(iova), loOf(iova), hiOf(last), loOf(last));
      if (rc) return rc;
    }
    const made: IoptArea[] = [];
    const undo = (): void => {
      for (const m of made) {
        this.areas.remove(m);
        m.pages = null;
      }
    };
    let at = iova;
    for (const s of list) {
      const a = IoptArea.over(s.pages);
      const rc = this.insertArea(a, s.pages, at, s.startByte, s.length, prot);
      if (rc) {
        undo();
        return rc;
      }
      made.push(a);
      at += s.length;
    }
    // iopt_fill_domains_pages()
    if (this.domains.length > 0) {
      for (let i = 0; i < made.length; i++) {
        const rc = this.fillArea(made[i]!);
        if (rc) {
          for (let j = 0; j < i; j++) this.unfillArea(made[j]!);
          undo();
          return rc;
        }
      }
    }
    return iova;
  }

  /** iopt_insert_area() */
  private insertArea(a: IoptArea, pages: IoptPages, iova: bigint, startByte: number, length: bigint, prot: number) {
    if (prot & IOMMU_WRITE && !pages.writable) return -EPERM;
    a.bits = prot;
    a.startByte = startByte;
    if ((startByte % PAGE_SIZE) & (this.iovaAlignment - 1)) return -EINVAL;
    const last = iova + length - 1n;
    if (last > U64_MAX) return -EOVERFLOW;
    a.setRange(iova, last);
    a.pages = pages;
    this.areas.insert(a);
    return 0;
  }

  /** iopt_alloc_iova(): the lowest fitting IOVA (never 0), or -errno. */
  private allocIova(uptr: bigint, length: bigint): bigint | number {
    const pageOffset = uptr % PAGE;
    if (length === 0n || length >= ULONG_MAX / 2n) return -EOVERFLOW;
    // keep the alignment the user address has (a THP stays mappable), capped at HPAGE_SIZE
    let align = roundupPow2(length);
    if (uptr !== 0n && lowBit(uptr) < align) align = lowBit(uptr);
    if (align >= HPAGE_SIZE) align = HPAGE_SIZE;
    if (align < BigInt(this.iovaAlignment)) return -EINVAL;

    const fit = (start: bigint, last: bigint): bigint | null => {
      // __alloc_iova_check_range()
      const up = start + align - 1n;
      if (up > U64_MAX) return null;
      const s = (up & ~(align - 1n)) | pageOffset;
      if (s >= last || last - s < length - 1n) return null;
      return s;
    };
    const lo = PAGE;
    const hi = ULONG_MAX - PAGE;
    const allowedSpans = this.allowed.isEmpty() ? [[lo, hi] as const] : usedSpans([this.allowed], lo, hi);
    for (const [as, al] of allowedSpans) {
      if (fit(as, al) === null) continue;
      for (const [hs, hl] of holes([this.reserved, this.areas], as, al)) {
        const s = fit(hs, hl);
        if (s !== null) return s;
      }
    }
    return -ENOSPC;
  }

  /** iopt_unmap_iova(): 0 or -errno, with the bytes unmapped (also on the ENOENT quirk). */
  unmapIova(iova: bigint, length: bigint): { rc: number; unmapped: bigint } {
    const rc = this.unmapIovaBig(iova, length);
    return { rc, unmapped: BigInt(this.unmappedBytes) };
  }

  private unmapIovaBig(iova: bigint, length: bigint): number {
    this.unmappedBytes = 0;
    if (length === 0n) return -EINVAL;
    if (iova < SMALL && length < SMALL) {
      const n = Number(iova);
      const last = n + Number(length) - 1;
      return this.unmapRangeH(hiN(n), loN(n), hiN(last), loN(last));
    }
    const last = iova + length - 1n;
    if (last > U64_MAX) return -EOVERFLOW;
    return this.unmapRangeNum(iova, last);
  }

  unmapAll(): { rc: number; unmapped: bigint } {
    const rc = this.unmapRangeNum(0n, U64_MAX);
    return { rc, unmapped: BigInt(this.unmappedBytes) };
  }

  /** unmapIova() for NumU64 arguments (IOMMU_IOAS_UNMAP's): the rc, with the bytes removed in
   * `unmappedBytes` (no result object, no bigint below 2^53). */
  unmapIovaNum(iova: number | bigint, length: number | bigint): number {
    if (typeof iova === "number" && typeof length === "number" && iova < SMALL_N && length < SMALL_N) {
      this.unmappedBytes = 0;
      if (length === 0) return -EINVAL;
      const last = iova + length - 1;
      return this.unmapRangeH(hiN(iova), loN(iova), hiN(last), loN(last));
    }
    return this.unmapIovaBig(BigInt(iova), BigInt(length));
  }

  /** iopt_unmap_iova_range(): every area must lie inside [start, last]; the rc, the bytes
   * removed in `unmappedBytes`. */
  unmapRangeNum(start: bigint, last: bigint): number {
    return this.unmapRangeH(hiOf(start), loOf(start), hiOf(last), loOf(last));
  }

  private unmapRangeH(sh: number, sl: number, lh: number, ll: number): number {
    // bytes unmapped: a number while exact, folded into a bigint beyond 2^52
    let small = 0;
    let big = 0n;
    let tries = 0;
    for (;;) {
      const a = this.areas.firstH(sh, sl, lh, ll);
      if (a === null) break;
      if (a.pages === null) return this.unmapped(-EBUSY, big, small);
      if (a.sh < sh || (a.sh === sh && a.sl < sl) || a.lh > lh || (a.lh === lh && a.ll > ll)) {
        return this.unmapped(-ENOENT, big, small);
      }
      if (a.sh !== sh || a.sl !== sl) tries = 0;
      if (a.bits >>> ACCESS_SHIFT !== 0) {
        // accesses pin this area: ask them to unpin, then look again from the area's start
        sh = a.sh;
        sl = a.sl;
        a.bits |= AREA_PREVENT_ACCESS;
        if (this.deferNotify) {
          this.pendingNotify = a;
          return this.unmapped(0, big, small);
        }
        this.notifyUnmap?.(a.start, a.length);
        if (++tries > 100) return this.unmapped(-EDEADLK, big, small);
        continue;
      }
      const pages = a.pages;
      this.unfillArea(a);
      this.areas.remove(a);
      a.pages = null;
      pages.users--;
      // freed (kfree(area)) unless it is itself the pages object of other areas
      if (this.recordFreed && (pages !== a || pages.users === 0)) this.freedAreas.push(a);
      // area length - 1 from the halves: exact as a number below 2^53
      const hiDiff = ((a.lh ^ BIAS) >>> 0) - ((a.sh ^ BIAS) >>> 0);
      if (hiDiff < 0x100000) small += hiDiff * 4294967296 + (((a.ll ^ BIAS) >>> 0) - ((a.sl ^ BIAS) >>> 0)) + 1;
      else big += fromHalves(a.lh, a.ll) - fromHalves(a.sh, a.sl) + 1n;
      if (small > 2 ** 52) {
        big += BigInt(small);
        small = 0;
      }
      if (a.lh > lh || (a.lh === lh && a.ll >= ll)) break;
      // start = area_last + 1
      if (a.ll === (0x7fffffff | 0)) {
        sh = a.lh + 1;
        sl = BIAS;
      } else {
        sh = a.lh;
        sl = a.ll + 1;
      }
    }
    return this.unmapped(0, big, small);
  }

  /** unmapRangeH()'s exit: the bytes removed into unmappedBytes, the rc back */
  private unmapped(rc: number, big: bigint, small: number): number {
    this.unmappedBytes = unmappedOf(big, small);
    return rc;
  }

  /** iopt_get_pages(): the slices behind [iova, iova + length), each with a page reference. */
  getPages(iova: bigint, length: bigint): PagesSlice[] | number {
    if (length === 0n) return -EINVAL;
    const last = iova + length - 1n;
    if (last > U64_MAX) return -EOVERFLOW;
    const out: PagesSlice[] = [];
    let cur = iova;
    let a = this.areas.first(cur, cur);
    while (a !== null && a.pages !== null) {
      if (shouldFail()) return -ENOMEM; // kzalloc of the list element
      const aLast = a.last;
      const end = aLast < last ? aLast : last;
      out.push({ pages: a.pages, startByte: a.startByte + Number(cur - a.start), length: end - cur + 1n });
      if (last <= aLast) {
        for (const s of out) s.pages.users++;
        return out;
      }
      cur = aLast + 1n;
      a = this.areas.first(cur, last);
      if (a !== null && a.start !== cur) break;
    }
    return -ENOENT;
  }

  /** iopt_area_split(): make `iova` the last byte of an area (VFIO type1 hole punching). */
  private areaSplit(a: IoptArea, iova: bigint): number {
    const start = a.start;
    const last = a.last;
    if (iova === start || iova === last) return 0;
    const pages = a.pages;
    if (pages === null) return -EBUSY;
    const newStart = iova + 1n;
    const m = BigInt(this.iovaAlignment - 1);
    const newStartByte = a.startByte + Number(newStart - start);
    if (newStart & m || BigInt(newStartByte) & m) return -EINVAL;
    if (a.numAccesses) return -EINVAL;
    if (a.filled && !this.disableLargePages) return -EINVAL;
    this.areas.remove(a);
    const lhs = IoptArea.over(pages);
    const rhs = IoptArea.over(pages);
    lhs.bits = rhs.bits = a.bits;
    lhs.startByte = a.startByte;
    rhs.startByte = newStartByte;
    lhs.setRange(start, iova);
    rhs.setRange(newStart, last);
    lhs.pages = rhs.pages = pages;
    a.pages = null;
    this.areas.insert(lhs);
    this.areas.insert(rhs);
    pages.users++;
    return 0;
  }

  /** iopt_cut_iova() */
  cutIova(iovas: readonly bigint[]): number {
    for (const iova of iovas) {
      const v = iova & U64_MAX;
      const a = this.areas.first(v, v);
      if (a === null) continue;
      const rc = this.areaSplit(a, v);
      if (rc) return rc;
    }
    return 0;
  }

  /** iopt_set_allow_iova(): swap in a new allowed tree unless a reserved range meets it. */
  setAllowIova(tree: IntervalTree<IntervalNode>): number {
    for (const n of tree.all()) if (this.reserved.first(n.start, n.last) !== null) return -EADDRINUSE;
    this.allowed = tree;
    return 0;
  }

  /** iopt_reserve_iova() */
  reserveIova(start: bigint, last: bigint, owner: unknown): number {
    if (this.areas.first(start, last) !== null || this.allowed.first(start, last) !== null) return -EADDRINUSE;
    const r = new IoptReserved(owner);
    r.setRange(start, last);
    this.reserved.insert(r);
    return 0;
  }

  removeReservedIova(owner: unknown): void {
    for (const r of this.reserved.all()) if (r.owner === owner) this.reserved.remove(r);
  }

  /** iopt_table_enforce_dev_resv_regions(): all the device's regions, or none. */
  enforceDevResvRegions(regions: readonly { start: bigint; length: bigint }[], dev: unknown): number {
    if (shouldFail()) return -EINVAL; // iommufd_should_fail()
    for (const r of regions) {
      const rc = this.reserveIova(r.start, r.start + r.length - 1n, dev);
      if (rc) {
        this.removeReservedIova(dev);
        return rc;
      }
    }
    return 0;
  }

  /** iopt_table_add_domain() */
  addDomain(domain: IoptDomain): number {
    if (this.domains.includes(domain)) return -EEXIST;
    const min = Number(lowBit(domain.pgsizeBitmap));
    const newAlign = Math.max(min, this.iovaAlignment);
    if (newAlign > PAGE_SIZE) return -EINVAL;
    if (newAlign !== this.iovaAlignment) {
      const rc = this.checkAlignment(newAlign);
      if (rc) return rc;
    }
    if (domain.apertureStart !== 0n) {
      const rc = this.reserveIova(0n, domain.apertureStart - 1n, domain);
      if (rc) return rc;
    }
    if (domain.apertureEnd !== ULONG_MAX) {
      const rc = this.reserveIova(domain.apertureEnd + 1n, ULONG_MAX, domain);
      if (rc) {
        this.removeReservedIova(domain);
        return rc;
      }
    }
    // iopt_fill_domain(): pin (once per area) and map every area
    const all = this.areas.all();
    for (let i = 0; i < all.length; i++) {
      const a = all[i]!;
      const rc = this.fillOne(a, domain, !a.filled);
      if (rc) {
        for (let j = 0; j < i; j++) {
          const b = all[j]!;
          domain.unmap(b.start, b.length);
          if (this.domains.length === 0) this.unpinArea(b);
        }
        this.removeReservedIova(domain);
        return rc;
      }
    }
    this.iovaAlignment = newAlign;
    this.domains.push(domain);
    return 0;
  }

  /** iopt_table_remove_domain() */
  removeDomain(domain: IoptDomain): void {
    const i = this.domains.indexOf(domain);
    if (i < 0) return;
    this.domains.splice(i, 1);
    for (const a of this.areas.all()) {
      if (!a.filled) continue;
      domain.unmap(a.start, a.length);
      if (this.domains.length === 0) this.unpinArea(a);
    }
    this.removeReservedIova(domain);
    this.recalcAlignment();
  }

  /** iopt_check_iova_alignment(): EADDRINUSE if an area does not fit the new alignment. */
  private checkAlignment(align: number): number {
    const m = BigInt(align - 1);
    for (const a of this.areas.all())
      if ((a.start & m) !== 0n || (a.length & m) !== 0n || (a.pageOffset & (align - 1)) !== 0) return -EADDRINUSE;
    return 0;
  }

  /** iopt_calculate_iova_alignment() */
  recalcAlignment(): number {
    let align = this.disableLargePages ? PAGE_SIZE : 1;
    for (const d of this.domains) align = Math.max(align, Number(lowBit(d.pgsizeBitmap)));
    for (const x of this.accesses) align = Math.max(align, x.iovaAlignment);
    if (align > this.iovaAlignment) {
      const rc = this.checkAlignment(align);
      if (rc) return rc;
    }
    this.iovaAlignment = align;
    return 0;
  }

  /** iopt_add_access(): the access's alignment joins the IOAS's (EADDRINUSE if areas do not fit). */
  addAccess(x: IoptAccess): number {
    this.accesses.push(x);
    const rc = this.recalcAlignment();
    if (rc) this.accesses.pop();
    return rc;
  }

  /** iopt_remove_access() */
  removeAccess(x: IoptAccess): void {
    const i = this.accesses.indexOf(x);
    if (i >= 0) this.accesses.splice(i, 1);
    this.recalcAlignment();
  }

  /** iopt_disable_large_pages() */
  disableLarge(): number {
    if (this.disableLargePages) return 0;
    if (this.domains.length > 0 && !this.areas.isEmpty()) return -EINVAL;
    this.disableLargePages = true;
    const rc = this.recalcAlignment();
    if (rc) this.disableLargePages = false;
    return rc;
  }

  enableLarge(): void {
    this.disableLargePages = false;
    this.recalcAlignment();
  }

  /** Fill a new area into every domain (pin once, map in each). */
  private fillArea(a: IoptArea): number {
    for (let i = 0; i < this.domains.length; i++) {
      const rc = this.fillOne(a, this.domains[i]!, i === 0);
      if (rc) {
        for (let j = 0; j < i; j++) this.domains[j]!.unmap(a.start, a.length);
        if (i > 0) this.unpinArea(a);
        return rc;
      }
    }
    return 0;
  }

  private fillOne(a: IoptArea, d: IoptDomain, pin: boolean): number {
    const pages = a.pages!;
    const first = a.index;
    const lastIdx = a.lastIndex;
    if (pin) {
      const rc = pages.pinRange(first, lastIdx);
      if (rc) return rc;
      a.bits |= AREA_FILLED;
    }
    const list: Page[] = [];
    for (let i = first; i <= lastIdx; i++) list.push(pages.pageAt(i));
    const rc = shouldFail() ? (d.mapFailErrno ?? -ENOMEM) : d.map(a.start, a.length, a.pageOffset, list, a.prot);
    if (rc) {
      if (pin) this.unpinArea(a);
      return rc;
    }
    return 0;
  }

  private unpinArea(a: IoptArea): void {
    if (!a.filled) return;
    a.pages!.unpinRange(a.index, a.lastIndex);
    a.bits &= ~AREA_FILLED;
  }

  /** Unmap an area from every domain and unpin it (before removing it). */
  private unfillArea(a: IoptArea): void {
    if (!a.filled) return;
    for (const d of this.domains) d.unmap(a.start, a.length);
    this.unpinArea(a);
  }
}

/** What holes() needs of a tree: the first range meeting [start, last] (IntervalTree, AreaTree). */
export interface RangeIndex {
  first(start: bigint, last: bigint): IovaRange | null;
}

/** The used spans (unions of touching/overlapping nodes) of `trees` within [first, last]. */
export function usedSpans(trees: readonly RangeIndex[], first: bigint, last: bigint): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  let pos = first;
  for (;;) {
    const span = nextUsed(trees, pos, last);
    if (span === null) return out;
    out.push([span[0] < first ? first : span[0], span[1] > last ? last : span[1]]);
    if (span[1] >= last) return out;
    pos = span[1] + 1n;
  }
}

/** The holes (ranges covered by no node of `trees`) within [first, last], lazily. */
export function* holes(trees: readonly RangeIndex[], first: bigint, last: bigint): Generator<[bigint, bigint]> {
  let pos = first;
  for (;;) {
    const span = nextUsed(trees, pos, last);
    if (span === null) {
      yield [pos, last];
      return;
    }
    if (span[0] > pos) yield [pos, span[0] - 1n];
    if (span[1] >= last) return;
    pos = span[1] + 1n;
  }
}

/** The first used span meeting [pos, last]: the union of nodes chained by touching. */
function nextUsed(trees: readonly RangeIndex[], pos: bigint, last: bigint): [bigint, bigint] | null {
  const earliest = (from: bigint): IovaRange | null => {
    let best: IovaRange | null = null;
    for (const t of trees) {
      const n = t.first(from, last);
      if (n !== null && (best === null || n.start < best.start)) best = n;
    }
    return best;
  };
  const n = earliest(pos);
  if (n === null) return null;
  const start = n.start;
  let end = n.last;
  while (end < last) {
    const m = earliest(end + 1n);
    if (m === null || m.start > end + 1n) break;
    if (m.last > end) end = m.last;
    else break;
  }
  return [start, end];
}

export { fromHalves };
