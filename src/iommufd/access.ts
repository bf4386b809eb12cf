// In-kernel accesses to an IOAS (drivers/iommu/iommufd/device.c iommufd_access_*, pages.c
// iopt_area_add_access()): what an emulated device (an mdev) uses instead of DMA. There is
// no uAPI; VFIO's emulated-device binding would call these.
//
//   iommufdAccessCreate(ictx, ops)       an ACCESS object held by the driver; needsPinPages
//                                        makes the IOAS alignment PAGE_SIZE while attached
//   iommufdAccessAttach / Replace / Detach(access[, ioasId])
//   iommufdAccessPinPages(access, iova, length, write)   the pinned Pages, or -errno
//   iommufdAccessUnpinPages(access, iova, length)        exactly a range pinned before
//   iommufdAccessRw(access, iova, data, flags)           copy through the IOAS (flags:
//                                        IOMMUFD_ACCESS_RW_WRITE / _KTHREAD / __SLOW_PATH)
//   iommufdAccessDestroy(access)
//
// Pins by accesses are per iopt_pages and per exact index range (the kernel's access_itree),
// counted in users; the first pins the pages (and charges them), the last unpins. An unmap
// that meets an area with access pins marks it prevent_access, calls every access's
// ops.unmap(iova, length) and retries; an access that never unpins makes it EDEADLK after
// 100 tries, as the kernel does.
//
// Locks (device.c:1106, 1188, 1271): pin, unpin and rw take access->ioas_lock, then the
// IOAS's iova_rwsem for read; pin and unpin take each area's pages mutex under it
// (iopt_area_add_access() / iopt_area_remove_access(), pages.c:1927, 1978). They are paths
// (accessPinPagesPath, ...); the plain functions run them to their end. The notification of
// an unmap (accessNotifyUnmap) is a path too: the driver's unmap callback may unpin, which
// sleeps on those locks. Attach, replace and detach are paths too (device.c:875-1050): under
// ioas_lock, iopt_add_access()/iopt_remove_access() take domains_rwsem and iova_rwsem for
// write (io_pagetable.c:1358, 1384), and the driver's unmap of everything runs with ioas_lock
// dropped, so a pin racing a replace finds ioas NULL (ENOENT) while an unpin still works on
// ioas_unpin.

import { EBUSY, EFAULT, EINVAL, ENOENT, EOVERFLOW, EPERM } from "../uapi/errno.js";
import { type Page, PAGE_SIZE, unpinPages } from "../kernel/mm.js";
import { gatePagesMutexes, getIoas, type IommufdIoas } from "./ioas.js";
import { IOMMU_READ, IOMMU_WRITE, type IoptArea, U64_MAX, ULONG_MAX } from "./io_pagetable.js";
import type { IommufdCtx } from "./main.js";
import { IommufdObject, iommufdPutObject } from "./object.js";
import type { IoptPages } from "./pages.js";
import { SideTable } from "../kernel/side_table.js";
import { Mutex } from "../kernel/locks.js";
import { type KGen, type KRet, runToEnd } from "../kernel/sched.js";

export const ACCESS_DRIVER_HOLDER = "access driver";

export interface IommufdAccessOps {
  /** the driver pins pages (iova_alignment PAGE_SIZE) */
  readonly needsPinPages: boolean;
  /** stop using [iova, iova + length): unpin whatever was pinned there (a path when it
   * unpins through accessUnpinPagesPath) */
  unmap?(iova: bigint, length: bigint): KRet<void>;
}

/** Access pins of one iopt_pages: "first:last" -> users (pages->access_itree). */
const accessRanges = new SideTable<IoptPages, Map<string, number>>();

/** The index ranges accesses have pinned on `pages`, each pinned once (for invariant checks). */
export function accessRangesOf(pages: IoptPages): [number, number][] {
  return [...(accessRanges.get(pages)?.keys() ?? [])].map((k) => k.split(":").map(Number) as [number, number]);
}

export class IommufdAccess extends IommufdObject {
  ioas: IommufdIoas | null = null;
  /** access->ioas_unpin: where unpin works even while ioas is being changed */
  ioasUnpin: IommufdIoas | null = null;
  readonly iovaAlignment: number;
  /** access->ioas_lock: guards ioas and ioas_unpin for pin, unpin and rw */
  readonly ioasLock: Mutex;

  constructor(
    readonly ictx: IommufdCtx,
    readonly ops: IommufdAccessOps,
  ) {
    super(ictx.k, "access", ictx.name);
    this.iovaAlignment = ops.needsPinPages ? PAGE_SIZE : 1;
    this.ioasLock = new Mutex(ictx.k, "iommufd_access.ioas_lock", `ioas_lock of access ${this.serial}`);
  }

  /** iommufd_access_destroy_object()'s change away from its IOAS under ioas_lock
   * (device.c:939), run as a path by the table's destroy */
  override beforeDestroy(): KRet<void> | null {
    return this.ioas ? accessDestroyChange(this) : null;
  }

  /** iommufd_access_destroy_object(); the change is done unless another route destroys it */
  protected destroyObj(): void {
    if (this.ioas) runToEnd(this.k, accessChangeLockedPath(this, "destroy"));
    this.ictx.file.put(`iommufd access ${this.id}`);
  }
}

/**
 * iommufd_access_notify_unmap() (device.c:1063): every access of the IOAS, held by a
 * short-term reference, is asked to stop using [iova, iova + length); called with the
 * IOAS's locks dropped, so the driver's callback may unpin (and wait for the locks).
 */
export function* accessNotifyUnmap(ioas: IommufdIoas, iova: bigint, length: bigint): KGen<void> {
  for (const x of [...ioas.iopt.accesses] as IommufdAccess[]) {
    if (x.dead) continue; // iommufd_lock_obj() fails
    x.get();
    const r = x.ops.unmap?.(iova, length);
    if (r) yield* r;
    x.put();
  }
}

/** iommufd_access_change_ioas() (device.c:875), access->ioas_lock held */
function* changeIoas(access: IommufdAccess, next: IommufdIoas | null): KGen<number> {
  const cur = access.ioas;
  if (cur !== access.ioasUnpin) return -EBUSY; // racing a concurrent detach
  if (cur === next) return 0;
  access.ioas = null; // pins fail from here; unpins use ioas_unpin
  if (next) {
    yield* next.domainsRwsem.downWrite();
    yield* next.iovaRwsem.downWrite();
    const rc = next.iopt.addAccess(access);
    next.iovaRwsem.upWrite();
    next.domainsRwsem.upWrite();
    if (rc) {
      access.ioas = cur;
      return rc;
    }
    next.iopt.notifyUnmap = (iova, length) => runToEnd(next.k, accessNotifyUnmap(next, iova, length));
    next.iopt.notifyUnmapPath = (iova, length) => accessNotifyUnmap(next, iova, length);
    next.get(`access ${access.id}`);
  }
  if (cur) {
    const unmap = access.ops.unmap;
    if (unmap) {
      access.ioasLock.unlock();
      const r = unmap(0n, ULONG_MAX);
      if (r) yield* r;
      yield* access.ioasLock.lock();
    }
    yield* cur.domainsRwsem.downWrite();
    yield* cur.iovaRwsem.downWrite();
    cur.iopt.removeAccess(access);
    cur.iovaRwsem.upWrite();
    cur.domainsRwsem.upWrite();
    cur.put(`access ${access.id}`);
  }
  access.ioas = next;
  access.ioasUnpin = next;
  return 0;
}

/** iommufd_access_change_ioas_id(): the IOAS looked up (a short-term user) for the change */
function* changeIoasId(access: IommufdAccess, id: number): KGen<number> {
  const ioas = getIoas(access.ictx, id);
  if (!ioas) return -ENOENT;
  const rc = yield* changeIoas(access, ioas);
  yield* iommufdPutObject(ioas);
  return rc;
}

/**
 * iommufd_access_attach() / _replace() / _detach() and the destroy's change (device.c:939-1050):
 * under ioas_lock, the state checked, then the change. Attach: EINVAL when attached (a WARN in
 * the kernel); replace: ENOENT when not; detach: ENOENT when not (a WARN, the caller's bug);
 * destroy: nothing to do when not.
 */
function* accessChangeLockedPath(
  access: IommufdAccess,
  op: "attach" | "replace" | "detach" | "destroy",
  ioasId = 0,
): KGen<number> {
  yield* access.ioasLock.lock();
  let rc: number;
  if (op === "attach") rc = access.ioas ? -EINVAL : yield* changeIoasId(access, ioasId);
  else if (op === "replace") rc = access.ioas ? yield* changeIoasId(access, ioasId) : -ENOENT;
  else if (access.ioas) rc = yield* changeIoas(access, null);
  else rc = op === "detach" ? -ENOENT : 0;
  access.ioasLock.unlock();
  return rc;
}

/** iommufd_access_create() */
export function iommufdAccessCreate(ictx: IommufdCtx, ops: IommufdAccessOps): IommufdAccess | number {
  const access = new IommufdAccess(ictx, ops);
  const rc = ictx.objects.alloc(access);
  if (rc) return rc;
  access.get(ACCESS_DRIVER_HOLDER);
  ictx.file.get(`iommufd access ${access.id}`);
  ictx.objects.finalize(access);
  return access;
}

/** iommufd_access_destroy(): the driver's reference goes, and the object with it. */
export function iommufdAccessDestroy(access: IommufdAccess): void {
  runToEnd(access.k, iommufdAccessDestroyPath(access));
}

/** iommufd_access_destroy() as a path (device.c:1000, iommufd_object_destroy_user()): it
 * waits for an unmap notification that holds the access short-term */
export function* iommufdAccessDestroyPath(access: IommufdAccess): KGen<void> {
  const rc = yield* access.ictx.objects.destroyUser(access, ACCESS_DRIVER_HOLDER);
  if (rc) throw access.k.bug("iommufd", `destroy of ${access.describe()} that is still referenced`);
}

function* accessDestroyChange(access: IommufdAccess): KGen<void> {
  yield* accessChangeLockedPath(access, "destroy");
}

/** iommufd_access_attach() (device.c:1024): EINVAL when already attached */
export function* accessAttachPath(access: IommufdAccess, ioasId: number): KGen<number> {
  return yield* accessChangeLockedPath(access, "attach", ioasId);
}

/** iommufd_access_replace() (device.c:1040): ENOENT when not attached */
export function* accessReplacePath(access: IommufdAccess, ioasId: number): KGen<number> {
  return yield* accessChangeLockedPath(access, "replace", ioasId);
}

/** iommufd_access_detach() (device.c:1010) */
export function* accessDetachPath(access: IommufdAccess): KGen<void> {
  const rc = yield* accessChangeLockedPath(access, "detach");
  if (rc) throw access.k.bug("iommufd", `detach of ${access.describe()} that is not attached`);
}

/** iommufd_access_attach() run to its end */
export function iommufdAccessAttach(access: IommufdAccess, ioasId: number): number {
  return runToEnd(access.k, accessAttachPath(access, ioasId));
}

/** iommufd_access_replace() run to its end */
export function iommufdAccessReplace(access: IommufdAccess, ioasId: number): number {
  return runToEnd(access.k, accessReplacePath(access, ioasId));
}

/** iommufd_access_detach() run to its end */
export function iommufdAccessDetach(access: IommufdAccess): void {
  runToEnd(access.k, accessDetachPath(access));
}

/** The contiguous areas over [iova, last] with the byte range each covers, or null on a hole. */
function contig(ioas: IommufdIoas, iova: bigint, last: bigint): { area: IoptArea; cur: bigint; end: bigint }[] | null {
  const out: { area: IoptArea; cur: bigint; end: bigint }[] = [];
  let cur = iova;
  let a = ioas.iopt.areas.first(cur, cur);
  while (a !== null && a.pages !== null) {
    const aLast = a.last;
    const end = aLast < last ? aLast : last;
    out.push({ area: a, cur, end });
    if (last <= aLast) return out;
    cur = aLast + 1n;
    a = ioas.iopt.areas.first(cur, last);
    if (a !== null && a.start !== cur) break;
  }
  return null;
}

function indexOf(a: IoptArea, iova: bigint): number {
  return Math.floor((a.startByte + Number(iova - a.start)) / PAGE_SIZE);
}

function checkProt(a: IoptArea, write: boolean): boolean {
  return (a.prot & (write ? IOMMU_WRITE : IOMMU_READ)) !== 0;
}

/** iopt_area_add_access() */
function areaAddAccess(a: IoptArea, first: number, last: number, write: boolean): number {
  const pages = a.pages!;
  if (write && !pages.writable) return -EPERM;
  let m = accessRanges.get(pages);
  const key = `${first}:${last}`;
  const users = m?.get(key) ?? 0;
  if (users === 0) {
    const rc = pages.pinRange(first, last);
    if (rc) return rc;
  }
  if (!m) accessRanges.set(pages, (m = new Map()));
  m.set(key, users + 1);
  a.addAccessUser();
  return 0;
}

/** iopt_area_remove_access() */
function areaRemoveAccess(a: IoptArea, first: number, last: number): void {
  const pages = a.pages!;
  const m = accessRanges.get(pages);
  const key = `${first}:${last}`;
  const users = m?.get(key) ?? 0;
  if (!m || users === 0) throw a.pages && pagesBug(key);
  a.removeAccessUser();
  if (users > 1) m.set(key, users - 1);
  else {
    m.delete(key);
    pages.unpinRange(first, last);
  }
}

function pagesBug(key: string): Error {
  return new Error(`iopt_area_remove_access of ${key} that was never added`);
}

/** iommufd_access_pin_pages(): the Pages under [iova, iova + length), pinned. */
export function iommufdAccessPinPages(
  access: IommufdAccess,
  iova: bigint,
  length: bigint,
  write: boolean,
): Page[] | number {
  return runToEnd(access.k, accessPinPagesPath(access, iova, length, write));
}

/** iommufd_access_pin_pages() as a path (device.c:1188): ioas_lock, iova_rwsem for read,
 * each area's pages mutex */
export function* accessPinPagesPath(
  access: IommufdAccess,
  iova: bigint,
  length: bigint,
  write: boolean,
): KGen<Page[] | number> {
  if (access.iovaAlignment !== PAGE_SIZE || !access.ops.unmap) return -EINVAL;
  if (!length) return -EINVAL;
  const last = iova + length - 1n;
  if (last > U64_MAX) return -EOVERFLOW;
  yield* access.ioasLock.lock();
  const ioas = access.ioas;
  if (!ioas) {
    access.ioasLock.unlock();
    return -ENOENT;
  }
  yield* ioas.iovaRwsem.downRead();
  yield* gatePagesMutexes(ioas, [iova, length]);
  const r = pinLocked(ioas, iova, last, write);
  ioas.iovaRwsem.upRead();
  access.ioasLock.unlock();
  return r;
}

/** the pin with the locks held */
function pinLocked(ioas: IommufdIoas, iova: bigint, last: bigint, write: boolean): Page[] | number {
  const spans = contig(ioas, iova, last);
  const done: [IoptArea, number, number][] = [];
  const out: Page[] = [];
  const fail = (rc: number): number => {
    for (const [a, f, l] of done) areaRemoveAccess(a, f, l);
    return rc;
  };
  for (const s of spans ?? partialSpans(ioas, iova, last)) {
    const a = s.area;
    // iopt_area_contig_is_aligned()
    const startByte = a.startByte + Number(s.cur - a.start);
    const lastByte = a.startByte + Number(a.last - a.start);
    const aligned = startByte % PAGE_SIZE === 0 && (s.end === last || lastByte % PAGE_SIZE === PAGE_SIZE - 1);
    if (a.preventAccess || !aligned) return fail(-EINVAL);
    if (!checkProt(a, write)) return fail(-EPERM);
    const f = indexOf(a, s.cur);
    const l = indexOf(a, s.end);
    const rc = areaAddAccess(a, f, l, write);
    if (rc) return fail(rc);
    done.push([a, f, l]);
    for (let i = f; i <= l; i++) out.push(a.pages!.pageAt(i));
  }
  if (!spans) return fail(-ENOENT);
  return out;
}

/** The contiguous prefix of areas when the range has a hole (the kernel pins it, then undoes). */
function partialSpans(ioas: IommufdIoas, iova: bigint, last: bigint): { area: IoptArea; cur: bigint; end: bigint }[] {
  const out: { area: IoptArea; cur: bigint; end: bigint }[] = [];
  let cur = iova;
  let a = ioas.iopt.areas.first(cur, cur);
  while (a !== null && a.pages !== null && a.start <= cur) {
    const aLast = a.last;
    const end = aLast < last ? aLast : last;
    out.push({ area: a, cur, end });
    if (last <= aLast) break;
    cur = aLast + 1n;
    a = ioas.iopt.areas.first(cur, last);
    if (a !== null && a.start !== cur) break;
  }
  return out;
}

/** iommufd_access_unpin_pages(): exactly a range pinned before. */
export function iommufdAccessUnpinPages(access: IommufdAccess, iova: bigint, length: bigint): void {
  runToEnd(access.k, accessUnpinPagesPath(access, iova, length));
}

/** iommufd_access_unpin_pages() as a path (device.c:1106): ioas_lock, ioas_unpin's
 * iova_rwsem for read, each area's pages mutex */
export function* accessUnpinPagesPath(access: IommufdAccess, iova: bigint, length: bigint): KGen<void> {
  if (!length) throw access.k.bug("iommufd", `unpin by ${access.describe()} without a pin`);
  yield* access.ioasLock.lock();
  const ioas = access.ioasUnpin;
  if (!ioas) {
    access.ioasLock.unlock();
    throw access.k.bug("iommufd", `unpin by ${access.describe()} without a pin`);
  }
  yield* ioas.iovaRwsem.downRead();
  yield* gatePagesMutexes(ioas, [iova, length]);
  const spans = contig(ioas, iova, iova + length - 1n);
  if (spans) for (const s of spans) areaRemoveAccess(s.area, indexOf(s.area, s.cur), indexOf(s.area, s.end));
  ioas.iovaRwsem.upRead();
  access.ioasLock.unlock();
  if (!spans) throw access.k.bug("iommufd", `unpin by ${access.describe()} of a range with holes`);
}

export const IOMMUFD_ACCESS_RW_WRITE = 1 << 0;
export const IOMMUFD_ACCESS_RW_KTHREAD = 1 << 1;
/** CONFIG_IOMMUFD_TEST only: take the path of a caller without the source mm */
export const __IOMMUFD_ACCESS_RW_SLOW_PATH = 1 << 2;

/**
 * iommufd_access_rw(): copy between `data` and the memory behind [iova, iova + data.length).
 * flags: IOMMUFD_ACCESS_RW_WRITE, IOMMUFD_ACCESS_RW_KTHREAD, __IOMMUFD_ACCESS_RW_SLOW_PATH.
 */
export function iommufdAccessRw(access: IommufdAccess, iova: bigint, data: Uint8Array, flags: number): number {
  return runToEnd(access.k, accessRwPath(access, iova, data, flags));
}

/** iommufd_access_rw() as a path (device.c:1271): ioas_lock, then iova_rwsem for read */
export function* accessRwPath(access: IommufdAccess, iova: bigint, data: Uint8Array, flags: number): KGen<number> {
  if (!data.length) return -EINVAL;
  const last = iova + BigInt(data.length) - 1n;
  if (last > U64_MAX) return -EOVERFLOW;
  yield* access.ioasLock.lock();
  const ioas = access.ioas;
  if (!ioas) {
    access.ioasLock.unlock();
    return -ENOENT;
  }
  yield* ioas.iovaRwsem.downRead();
  const rc = rwLocked(access, ioas, iova, last, data, flags);
  ioas.iovaRwsem.upRead();
  access.ioasLock.unlock();
  return rc;
}

/** the copy with the locks held */
function rwLocked(
  access: IommufdAccess,
  ioas: IommufdIoas,
  iova: bigint,
  last: bigint,
  data: Uint8Array,
  flags: number,
): number {
  const write = (flags & IOMMUFD_ACCESS_RW_WRITE) !== 0;
  let off = 0;
  for (const s of contig(ioas, iova, last) ?? partialSpans(ioas, iova, last)) {
    const a = s.area;
    if (a.preventAccess) return -EINVAL;
    if (!checkProt(a, write)) return -EPERM;
    const n = Number(s.end - s.cur) + 1;
    const rc = pagesRwAccess(
      access,
      a.pages!,
      a.startByte + Number(s.cur - a.start),
      data.subarray(off, off + n),
      flags,
    );
    if (rc) return rc;
    off += n;
  }
  return off === data.length ? 0 : -ENOENT;
}

/**
 * iopt_pages_rw_access(): copy_to_user()/copy_from_user() when the caller runs in the
 * source mm (or a kthread can borrow it); otherwise, as the kernel's pfn reader does, page
 * by page through the pinned pages (a page not pinned yet is pinned for the copy), so a
 * mapping made by another process, or by one that exited with its pages pinned, still reads.
 */
function pagesRwAccess(access: IommufdAccess, pages: IoptPages, startByte: number, data: Uint8Array, flags: number) {
  const write = (flags & IOMMUFD_ACCESS_RW_WRITE) !== 0;
  if (write && !pages.writable) return -EPERM;
  const current = access.k.current?.process ?? null;
  const source = pages.source;
  const changeMm = current !== source || (flags & __IOMMUFD_ACCESS_RW_SLOW_PATH) !== 0;
  if (changeMm && (!(flags & IOMMUFD_ACCESS_RW_KTHREAD) || source.exited))
    return pagesRwSlow(pages, startByte, data, write);
  const addr = pages.uptr + startByte;
  if (write) return source.mm.copyToUser(addr, data) < 0 ? -EFAULT : 0;
  return source.mm.copyFromUserInto(data, addr, data.length) ? 0 : -EFAULT;
}

/** iopt_pages_rw_slow() / iopt_pages_rw_page(): through struct page, never the mm's mapping. */
function pagesRwSlow(pages: IoptPages, startByte: number, data: Uint8Array, write: boolean): number {
  let done = 0;
  while (done < data.length) {
    const byte = startByte + done;
    const index = Math.floor(byte / PAGE_SIZE);
    const off = byte % PAGE_SIZE;
    const n = Math.min(data.length - done, PAGE_SIZE - off);
    let page = pages.pinned?.get(index)?.page ?? null;
    let temp: Page[] | null = null;
    if (!page) {
      // pfn_reader_user_pin(): pinned for the copy only (FOLL_WRITE if the pages are writable)
      if (pages.source.exited) return -EFAULT;
      const r = pages.source.mm.pinPages(pages.uptr + index * PAGE_SIZE, 1, pages.writable);
      if (typeof r === "number") return -EFAULT;
      temp = r;
      page = r[0]!;
    }
    const ok = write ? page.store(off, n, data, done) : page.load(off, n, data, done);
    if (temp) unpinPages(temp);
    if (!ok) return -EFAULT;
    done += n;
  }
  return 0;
}
