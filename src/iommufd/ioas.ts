// The IOAS object and its commands (drivers/iommu/iommufd/ioas.c): IOAS_ALLOC, IOVA_RANGES,
// ALLOW_IOVAS, MAP, COPY, UNMAP and the per-IOAS OPTION (HUGE_PAGES). The IOVA engine is
// ./io_pagetable.ts; an IOAS adds the object life and the list of HWPTs built on it.

import { EBUSY, EINVAL, EMSGSIZE, ENOENT, EOPNOTSUPP, EOVERFLOW, EPERM } from "../uapi/errno.js";
import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  iommu_iova_range,
  type iommu_ioas_alloc,
  type iommu_ioas_allow_iovas,
  type iommu_ioas_copy,
  type iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_unmap,
  type iommu_option,
} from "../uapi/iommufd.js";
import { CAP_SYS_RESOURCE, type Process } from "../kernel/process.js";
import { type KGen, preempt, SEQ } from "../kernel/sched.js";
import { Mutex, RwSem } from "../kernel/locks.js";
import type { Kernel } from "../kernel/kernel.js";
import { poisonFields } from "../kernel/kref.js";
import { SideTable } from "../kernel/side_table.js";
import { EDEADLK } from "../uapi/errno.js";
import { IntervalNode, IntervalTree } from "./interval_tree.js";
import {
  holes,
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
  type IoptArea,
  IoPagetable,
  U64_MAX,
  ULONG_MAX,
} from "./io_pagetable.js";
import { type IommufdCtx, respondEnd, respondOff, respondView, type Ucmd } from "./main.js";
import type { IommufdHwptPaging } from "./hw_pagetable.js";
import { IommufdObject, iommufdPutObject } from "./object.js";
import { IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER, type IoptPages } from "./pages.js";
import { iommufdTestEnabled } from "./selftest_config.js";
import { syzConvIovaId } from "./selftest_syz.js";
import { viewSet64 } from "../uapi/struct.js";

type V<T> = T extends { decode(b: Uint8Array): infer R } ? R : never;

export class IommufdIoas extends IommufdObject {
  readonly iopt = new IoPagetable();
  /** the HWPTs whose domains map this IOAS (ioas->hwpt_list) */
  readonly hwptList: IommufdHwptPaging[] = [];
  /**
   * The IOAS's locks, in the kernel's order (docs/explorer.md): ioas->mutex (the hwpt_list
   * and a HWPT's creation until it is finalized), then the iommufd_group's lock of an
   * attach, then iopt->domains_rwsem (the domain list: read by map and unmap, written by
   * adding and removing a domain), then iopt->iova_rwsem (the area and reserved trees), then
   * each iopt_pages mutex (pagesMutex()).
   */
  readonly mutex: Mutex;
  readonly domainsRwsem: RwSem;
  readonly iovaRwsem: RwSem;

  constructor(readonly ictx: IommufdCtx) {
    super(ictx.k, "ioas", ictx.name);
    const k = ictx.k;
    this.mutex = new Mutex(k, "iommufd_ioas.mutex", `ioas mutex of ${ictx.name}`);
    this.domainsRwsem = new RwSem(k, "io_pagetable.domains_rwsem", `domains_rwsem of ${ictx.name}`);
    this.iovaRwsem = new RwSem(k, "io_pagetable.iova_rwsem", `iova_rwsem of ${ictx.name}`);
  }

  /** iommufd_ioas_destroy(): unmap everything (no domain is left: HWPTs hold the IOAS) */
  protected destroyObj(): void {
    if (this.ictx.vfioIoas === this) this.ictx.vfioIoas = null;
    this.iopt.unmapAll();
    // iopt_destroy_table(): with CONFIG_IOMMUFD_TEST, the selftest's ownerless reservations go
    this.iopt.removeReservedIova(null);
  }
}

/** struct iopt_pages::mutex, made the first time a path takes it (a 1M-area IOAS mapped
 * sequentially never does) */
// a SideTable, not a WeakMap: the explorer's snapshot restores its entries (side_table.ts)
const pagesMutexes = new SideTable<IoptPages, Mutex>();
function pagesMutex(k: Kernel, p: IoptPages): Mutex {
  let m = pagesMutexes.get(p);
  if (!m) pagesMutexes.set(p, (m = new Mutex(k, "iopt_pages.mutex", `pages mutex of uptr 0x${p.uptr.toString(16)}`)));
  return m;
}

/**
 * The pages mutex of each area in `areas` (or of every area), taken and released in turn, as
 * iopt_fill_domain() / iopt_unfill_domain() / iopt_area_unfill_domains() take each around
 * their own area (pages.c:1424, 1501). The work under it runs after this without a yield,
 * so another task cannot tell it from holding the mutex across the work; this is where a
 * task waits for a mutex another task holds and where lockdep sees its order under the
 * IOAS rwsems. A sequential call has no other task to wait for and skips it.
 */
export function* gatePagesMutexes(ioas: IommufdIoas, range?: readonly [number | bigint, number | bigint]): KGen<void> {
  if (SEQ.on) return;
  const seen = new Set<IoptPages>();
  const all = ioas.iopt.areas.all();
  for (const a of range ? all.filter((x) => overlaps(x, range[0], range[1])) : all) {
    const p = a.pages;
    if (p === null || seen.has(p)) continue;
    seen.add(p);
    const m = pagesMutex(ioas.k, p);
    const t = ioas.k.current;
    if (m.owner === null && t) {
      // free: taken and dropped with nothing observable between this task's previous yield
      // and its work, so no preemption point of its own; lockdep still sees the order
      ioas.k.lockdep.acquire(t, m.cls, m.name);
      continue;
    }
    yield* m.lock();
    m.unlock();
  }
}

/** iommufd_ioas_alloc() without finalize: the caller finalizes or aborts. */
export function ioasAlloc(ictx: IommufdCtx): IommufdIoas | number {
  const ioas = new IommufdIoas(ictx);
  const rc = ictx.objects.alloc(ioas);
  if (rc) return rc;
  return ioas;
}

export function getIoas(ictx: IommufdCtx, id: number): IommufdIoas | null {
  return ictx.objects.get<IommufdIoas>(id, "ioas");
}

export function ioasAllocIoctl(u: Ucmd<V<typeof iommu_ioas_alloc>>): number {
  if (u.cmd.flags) return -EOPNOTSUPP;
  const ioas = ioasAlloc(u.ictx);
  if (typeof ioas === "number") return ioas;
  u.cmd.out_ioas_id = ioas.id;
  const rc = u.respond();
  if (rc) {
    u.ictx.objects.abort(ioas);
    return rc;
  }
  u.ictx.objects.finalize(ioas);
  return 0;
}

export function ioasIovaRanges(u: Ucmd<V<typeof iommu_ioas_iova_ranges>>): number {
  const cmd = u.cmd;
  if (cmd.__reserved) return -EOPNOTSUPP;
  const ioas = getIoas(u.ictx, cmd.ioas_id);
  if (!ioas) return -ENOENT;
  try {
    const max = cmd.num_iovas;
    const base = cmd.allowed_iovas;
    cmd.num_iovas = 0;
    cmd.out_iova_alignment = BigInt(ioas.iopt.iovaAlignment);
    for (const [start, last] of holes([ioas.iopt.reserved], 0n, ULONG_MAX)) {
      if (cmd.num_iovas < max) {
        const at = base + BigInt(cmd.num_iovas * iommu_iova_range.size);
        const rc = u.copyToUser(at, iommu_iova_range.encode({ start, last }));
        if (rc) return rc;
      }
      cmd.num_iovas++;
    }
    const rc = u.respond();
    if (rc) return rc;
    return cmd.num_iovas > max ? -EMSGSIZE : 0;
  } finally {
    ioas.put();
  }
}

/** iommufd_ioas_load_iovas() */
function loadIovas(u: Ucmd<unknown>, tree: IntervalTree<IntervalNode>, base: bigint, num: number): number {
  for (let i = 0; i < num; i++) {
    const b = u.copyFromUser(base + BigInt(i * iommu_iova_range.size), iommu_iova_range.size);
    if (typeof b === "number") return b;
    const r = iommu_iova_range.decode(b);
    if (r.start >= r.last) return -EINVAL;
    if (tree.first(r.start, r.last) !== null) return -EINVAL;
    const n = new IntervalNode();
    n.setRange(r.start, r.last);
    tree.insert(n);
  }
  return 0;
}

export function ioasAllowIovas(u: Ucmd<V<typeof iommu_ioas_allow_iovas>>): number {
  const cmd = u.cmd;
  if (cmd.__reserved) return -EOPNOTSUPP;
  const ioas = getIoas(u.ictx, cmd.ioas_id);
  if (!ioas) return -ENOENT;
  try {
    const tree = new IntervalTree<IntervalNode>();
    const rc = loadIovas(u, tree, cmd.allowed_iovas, cmd.num_iovas);
    if (rc) return rc;
    return ioas.iopt.setAllowIova(tree);
  } finally {
    ioas.put();
  }
}

/** conv_iommu_prot() */
function convProt(flags: number): number {
  let prot = IOMMU_CACHE;
  if (flags & IOMMU_IOAS_MAP_WRITEABLE) prot |= IOMMU_WRITE;
  if (flags & IOMMU_IOAS_MAP_READABLE) prot |= IOMMU_READ;
  return prot;
}

const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/** x >= ULONG_MAX for a NumU64 field (a number is below 2^53) */
function atLeastUlongMax(x: number | bigint): boolean {
  return typeof x !== "number" && x >= ULONG_MAX;
}

// IOMMU_IOAS_MAP and IOMMU_IOAS_UNMAP read their struct in place (main.ts InPlaceExecute):
// every field into a local at once, u64s as NumU64 (numbers below 2^53, bigints from there:
// the IOAS engine runs its arithmetic in numbers), and answer by writing the kernel's copy
// back whole from those locals, as iommufd_ucmd_respond() copies sizeof bytes.

/** a u64 field as NumU64 (below 2^32 the low word itself: an integer, where the sum with
 * the high word times 2^32 is a double everywhere it flows, boxed at each call it crosses) */
function u64At(dv: DataView, o: number): number | bigint {
  const h = dv.getUint32(o + 4, true);
  if (h === 0) return dv.getUint32(o, true);
  return h < 0x200000 ? h * 4294967296 + dv.getUint32(o, true) : dv.getBigUint64(o, true);
}

/** struct iommu_ioas_map: size, flags, ioas_id, __reserved (u32), user_va, length, iova (u64) */
const MAP_SIZE = iommu_ioas_map.size;

/**
 * IOMMU_IOAS_MAP's iommufd_ucmd_respond(): the kernel's copy written back whole, the chosen
 * IOVA in it; 0 or -EFAULT. A function of its own, not part of the path: the path's inlining
 * budget is spent before the answer, and its three u64 stores were calls there.
 */
function answerMap(
  proc: Process,
  arg: number,
  size: number,
  flags: number,
  ioasId: number,
  reserved: number,
  userVa: number | bigint,
  length: number | bigint,
  iova: number | bigint,
): number {
  const out = respondView(proc, arg, MAP_SIZE);
  const o = respondOff(arg);
  out.setUint32(o, size, true);
  out.setUint32(o + 4, flags, true);
  out.setUint32(o + 8, ioasId, true);
  out.setUint32(o + 12, reserved, true);
  viewSet64(out, o + 16, userVa);
  viewSet64(out, o + 24, length);
  viewSet64(out, o + 32, iova);
  return respondEnd(proc, out, arg, MAP_SIZE);
}

/** iommufd_ioas_map() */
export function* ioasMap(ictx: IommufdCtx, proc: Process, arg: number, dv: DataView, off: number): KGen<number> {
  const size = dv.getUint32(off, true);
  const flags = dv.getUint32(off + 4, true);
  const ioasId = dv.getUint32(off + 8, true);
  const reserved = dv.getUint32(off + 12, true);
  const userVa = u64At(dv, off + 16);
  const length = u64At(dv, off + 24);
  const iova = u64At(dv, off + 32);
  if (flags & ~MAP_FLAGS || reserved) return -EOPNOTSUPP;
  if (atLeastUlongMax(iova) || atLeastUlongMax(length)) return -EOVERFLOW;
  if (!(flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -EINVAL;
  const ioas = getIoas(ictx, ioasId);
  if (!ioas) return -ENOENT;
  try {
    // the IOAS is held (a short-term user) while the mapping is made: a concurrent DESTROY
    // of it is EBUSY until the put's first half, and then waits for its second
    yield* preempt("iommufd_ioas_map");
    // iopt_map_pages() (io_pagetable.c:374, 379): domains_rwsem for read, then iova_rwsem;
    // the new iopt_pages is no other task's yet, so its mutex is not waited for
    yield* ioas.domainsRwsem.downRead();
    yield* ioas.iovaRwsem.downWrite();
    const r = ioas.iopt.mapUserPagesNum(
      iova,
      userVa,
      length,
      convProt(flags),
      !(flags & IOMMU_IOAS_MAP_FIXED_IOVA),
      proc,
      ictx.accountMode === IOPT_PAGES_ACCOUNT_MM,
    );
    ioas.iovaRwsem.upWrite();
    ioas.domainsRwsem.upRead();
    if (typeof r === "number" && r < 0) return r;
    // cmd->iova = iova; iommufd_ucmd_respond()
    return answerMap(proc, arg, size, flags, ioasId, reserved, userVa, length, r);
  } finally {
    yield* iommufdPutObject(ioas);
  }
}

export function* ioasCopy(u: Ucmd<V<typeof iommu_ioas_copy>>): KGen<number> {
  const cmd = u.cmd;
  if (iommufdTestEnabled(u.ictx.k)) {
    // iommufd_test_syz_conv_iova_id(): syzkaller's (nth area, offset) source IOVA
    const c = syzConvIovaId(u.ictx, cmd.src_ioas_id, cmd.src_iova, cmd.flags);
    cmd.src_iova = c.iova;
    cmd.flags = c.flags;
  }
  if (cmd.flags & ~MAP_FLAGS) return -EOPNOTSUPP;
  if (cmd.length >= ULONG_MAX || cmd.src_iova >= ULONG_MAX || cmd.dst_iova >= ULONG_MAX) return -EOVERFLOW;
  if (!(cmd.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -EINVAL;
  const src = getIoas(u.ictx, cmd.src_ioas_id);
  if (!src) return -ENOENT;
  const list = src.iopt.getPages(cmd.src_iova, cmd.length);
  src.put();
  if (typeof list === "number") return list;
  // between the source and the destination lookups the pages are held by the list only
  yield* preempt("iommufd_ioas_copy");
  const putList = () => {
    for (const s of list) s.pages.users--;
  };
  const dst = getIoas(u.ictx, cmd.dst_ioas_id);
  if (!dst) {
    putList();
    return -ENOENT;
  }
  try {
    const r = dst.iopt.mapPages(
      list,
      cmd.length,
      cmd.dst_iova,
      convProt(cmd.flags),
      !(cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA),
    );
    if (typeof r === "number") {
      putList();
      return r;
    }
    cmd.dst_iova = r;
    return u.respond();
  } finally {
    dst.put();
  }
}

/** struct iommu_ioas_unmap: size, ioas_id (u32), iova, length (u64) */
const UNMAP_SIZE = iommu_ioas_unmap.size;

/** IOMMU_IOAS_UNMAP's iommufd_ucmd_respond(), the bytes unmapped in it (as answerMap()). */
function answerUnmap(
  proc: Process,
  arg: number,
  size: number,
  ioasId: number,
  iova: number | bigint,
  unmapped: number | bigint,
): number {
  const out = respondView(proc, arg, UNMAP_SIZE);
  const o = respondOff(arg);
  out.setUint32(o, size, true);
  out.setUint32(o + 4, ioasId, true);
  viewSet64(out, o + 8, iova);
  viewSet64(out, o + 16, unmapped);
  return respondEnd(proc, out, arg, UNMAP_SIZE);
}

/** iommufd_ioas_unmap() */
export function* ioasUnmap(ictx: IommufdCtx, proc: Process, arg: number, dv: DataView, off: number): KGen<number> {
  const size = dv.getUint32(off, true);
  const ioasId = dv.getUint32(off + 4, true);
  const iova = u64At(dv, off + 8);
  const length = u64At(dv, off + 16);
  const ioas = getIoas(ictx, ioasId);
  if (!ioas) return -ENOENT;
  try {
    yield* preempt("iommufd_ioas_unmap");
    // iova 0 decodes as the number 0; U64_MAX (above 2^53) as a bigint
    const all = iova === 0 && length === U64_MAX;
    if (!all && (atLeastUlongMax(iova) || atLeastUlongMax(length))) return -EOVERFLOW;
    const iopt = ioas.iopt;
    // bytes unmapped, NumU64 like the struct's fields
    let unmapped: number | bigint = 0;
    for (let tries = 0; ; tries++) {
      // iopt_unmap_iova_range() (io_pagetable.c:675): domains_rwsem for read, iova_rwsem for
      // write, then each area's pages mutex as its domains are unfilled
      yield* ioas.domainsRwsem.downRead();
      yield* ioas.iovaRwsem.downWrite();
      // (the range, not the areas: a sequential call skips the gate without listing them)
      if (!SEQ.on) yield* gatePagesMutexes(ioas, all ? undefined : [iova, length]);
      iopt.deferNotify = true;
      iopt.recordFreed = ictx.k.poison;
      let rc: number;
      try {
        rc = all ? iopt.unmapRangeNum(0n, U64_MAX) : iopt.unmapIovaNum(iova, length);
      } finally {
        iopt.deferNotify = false;
        iopt.recordFreed = false;
      }
      unmapped = addU64(unmapped, iopt.unmappedBytes);
      const area = iopt.pendingNotify;
      iopt.pendingNotify = null;
      // what was freed is freed: the explorer poisons it (a later read is a use after free)
      const freed = iopt.freedAreas;
      if (freed.length !== 0) {
        for (const a of freed) poisonFields(ictx.k, a, `iopt_area of ${ioas.describe()}`);
        freed.length = 0;
      }
      if (rc || area === null) {
        ioas.iovaRwsem.upWrite();
        ioas.domainsRwsem.upRead();
        if (rc) return rc;
        break;
      }
      // iopt_unmap_iova_range(): an access pins this area: note its range, drop the locks,
      // ask the accesses to unpin (their unmap callbacks may sleep), then look again.
      // Broken variant "iommufd-unmap-area-after-unlock" (what 804ca14d04df fixed): the
      // range is read from the area after the locks are dropped, when a racing unmap may
      // have freed it.
      const late = ictx.k.broken.has("iommufd-unmap-area-after-unlock");
      let aStart = late ? 0n : area.start;
      let aLength = late ? 0n : area.length;
      ioas.iovaRwsem.upWrite();
      ioas.domainsRwsem.upRead();
      yield* preempt("iopt_unmap_iova_range: locks dropped to notify accesses");
      if (late) {
        aStart = area.start;
        aLength = area.length;
      }
      if (iopt.notifyUnmapPath !== null) yield* iopt.notifyUnmapPath(aStart, aLength);
      if (tries >= 100) return -EDEADLK; // something is not responding to unmap requests
    }
    if (!all && unmapped === 0) return -ENOENT;
    // cmd->length = unmapped; iommufd_ucmd_respond()
    return answerUnmap(proc, arg, size, ioasId, iova, unmapped);
  } finally {
    yield* iommufdPutObject(ioas);
  }
}

/** a + b for byte counts as NumU64: a number while the sum is a safe integer */
function addU64(a: number | bigint, b: number | bigint): number | bigint {
  if (typeof a === "number" && typeof b === "number" && a + b <= Number.MAX_SAFE_INTEGER) return a + b;
  return BigInt(a) + BigInt(b);
}

/** the explorer's gate only (never a sequential call): bigints are fine here */
function overlaps(a: IoptArea, iova: number | bigint, length: number | bigint): boolean {
  const i = BigInt(iova);
  return a.start < i + BigInt(length) && i <= a.last;
}

type OptionCmd = V<typeof iommu_option>;

/** iommufd_option_rlimit_mode() */
export function optionRlimitMode(u: Ucmd<OptionCmd>): number {
  const cmd = u.cmd;
  const ictx = u.ictx;
  if (cmd.object_id) return -EOPNOTSUPP;
  if (cmd.op === IOMMU_OPTION_OP_GET) {
    cmd.val64 = ictx.accountMode === IOPT_PAGES_ACCOUNT_MM ? 1n : 0n;
    return 0;
  }
  if (cmd.op === IOMMU_OPTION_OP_SET) {
    if (!u.proc.capable(CAP_SYS_RESOURCE)) return -EPERM;
    if (!ictx.objects.isEmpty()) return -EBUSY;
    if (cmd.val64 === 0n) ictx.accountMode = IOPT_PAGES_ACCOUNT_USER;
    else if (cmd.val64 === 1n) ictx.accountMode = IOPT_PAGES_ACCOUNT_MM;
    else return -EINVAL;
    return 0;
  }
  return -EOPNOTSUPP;
}

/** iommufd_ioas_option() + iommufd_ioas_option_huge_pages() */
export function ioasOption(u: Ucmd<OptionCmd>): number {
  const cmd = u.cmd;
  if (cmd.__reserved) return -EOPNOTSUPP;
  const ioas = getIoas(u.ictx, cmd.object_id);
  if (!ioas) return -ENOENT;
  try {
    if (cmd.option_id !== IOMMU_OPTION_HUGE_PAGES) return -EOPNOTSUPP;
    if (cmd.op === IOMMU_OPTION_OP_GET) {
      cmd.val64 = ioas.iopt.disableLargePages ? 0n : 1n;
      return 0;
    }
    if (cmd.op === IOMMU_OPTION_OP_SET) {
      if (cmd.val64 === 0n) return ioas.iopt.disableLarge();
      if (cmd.val64 === 1n) {
        ioas.iopt.enableLarge();
        return 0;
      }
      return -EINVAL;
    }
    return -EOPNOTSUPP;
  } finally {
    ioas.put();
  }
}
