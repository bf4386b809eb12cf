// HW page tables (drivers/iommu/iommufd/hw_pagetable.c): the HWPT_PAGING object that owns an
// iommu_domain and keeps it filled from its IOAS, and the HWPT commands HWPT_ALLOC,
// SET_DIRTY_TRACKING, GET_DIRTY_BITMAP and INVALIDATE.
//
// The emulated Intel IOMMU of the oracle has neither dirty tracking nor nesting:
// DIRTY_TRACKING / NEST_PARENT allocations and driver data fail with EOPNOTSUPP, a paging
// domain has no dirty_ops (SET_DIRTY_TRACKING and GET_DIRTY_BITMAP answer EOPNOTSUPP after
// their argument checks) and it cannot nest. The selftest's mock devices (./selftest_mock_dev.ts)
// get mock domains instead: NEST_PARENT is accepted, DIRTY_TRACKING gives the domain dirty
// ops (./iova_bitmap.ts), and a NEST_PARENT HWPT can parent HWPT_NESTED objects
// (./hwpt_nested.ts), the only ones INVALIDATE accepts (ENOENT for any other id).
//
// References: a HWPT holds its IOAS ("hwpt <id>"); each device attached through its group
// holds the HWPT ("attached device <id>"), so DESTROY of either is EBUSY while in use. An
// automatic HWPT (made by attaching a device to an IOAS) is destroyed by the kernel when its
// last device leaves (iommufd_hw_pagetable_put()).

import { EFAULT, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, EOVERFLOW } from "../uapi/errno.js";
import { shouldFail } from "./fail_nth.js";
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  type iommu_hwpt_alloc,
  type iommu_hwpt_get_dirty_bitmap,
  type iommu_hwpt_invalidate,
  type iommu_hwpt_set_dirty_tracking,
} from "../uapi/iommufd.js";
import { type Page, PAGE_SIZE } from "../kernel/mm.js";
import type { IommuDomain } from "../iommu/domain.js";
import { IommuCore } from "../iommu/iommu.js";
import type { KGen } from "../kernel/sched.js";
import type { IommufdDevice } from "./device.js";
import { hwptAttach, hwptDetach } from "./device.js";
import { gatePagesMutexes, type IommufdIoas } from "./ioas.js";
import { IOMMU_READ, IOMMU_WRITE, type IoptDomain, U64_MAX } from "./io_pagetable.js";
import { type DirtyOps, ioptReadAndClearDirty, ioptSetDirtyTracking } from "./iova_bitmap.js";
import type { IommufdFault } from "./fault.js";
import { type IommufdHwptNested, hwptNestedAlloc } from "./hwpt_nested.js";
import { MockDev } from "./selftest_mock_dev.js";
import { MockDomain } from "./selftest_mock_domain.js";
import type { IommufdCtx, Ucmd } from "./main.js";
import { IommufdObject, TABLE_HOLDER } from "./object.js";

type V<T> = T extends { decode(b: Uint8Array): infer R } ? R : never;

const IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX = 1 << 19;

/** The io_pagetable's view of an iommu_domain. */
class DomainAdapter implements IoptDomain {
  constructor(
    readonly domain: IommuDomain,
    /** the broken variant "iommufd-unmap-leaves-iopte" is on (src/check/variants.ts) */
    private readonly shortUnmap: boolean,
  ) {}
  get pgsizeBitmap(): bigint {
    return this.domain.pgsizeBitmap;
  }
  get apertureStart(): bigint {
    return this.domain.apertureStart;
  }
  get apertureEnd(): bigint {
    return this.domain.apertureEnd;
  }
  map(iova: bigint, _length: bigint, _pageOffset: number, pages: readonly Page[], prot: number): number {
    // intel-iommu __domain_mapping(): a PTE with neither read nor write is refused
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) return -EINVAL;
    return this.domain.map(iova, pages, prot & (IOMMU_READ | IOMMU_WRITE));
  }
  unmap(iova: bigint, length: bigint): void {
    // the variant: the length reaching iommu_unmap() is a page short, so the last IOPTE of
    // the range outlives the unmap while iommufd unpins the page behind it
    this.domain.unmap(iova, this.shortUnmap && length > BigInt(PAGE_SIZE) ? length - BigInt(PAGE_SIZE) : length);
  }
}

/** struct iommufd_hwpt_paging */
export class IommufdHwptPaging extends IommufdObject {
  readonly adapter: IoptDomain;
  autoDomain = false;
  enforceCacheCoherency = false;
  /** on ioas.hwptList, with its domain in ioas.iopt (list_empty(&hwpt_item) is false) */
  inList = false;

  constructor(
    readonly ictx: IommufdCtx,
    readonly ioas: IommufdIoas,
    readonly domain: IommuDomain,
    readonly nestParent: boolean,
  ) {
    super(ictx.k, "hwpt_paging", ictx.name);
    this.adapter =
      domain instanceof MockDomain
        ? domain.iopt
        : new DomainAdapter(domain, ictx.k.broken.has("iommufd-unmap-leaves-iopte"));
  }

  /** iommufd_hwpt_paging_destroy(); the paths that destroy one unlink it first with the
   * locks (hwptPagingUnlink()), so only a release from a context no other task can race
   * (the iommufd file's release) does it here */
  protected destroyObj(): void {
    if (this.inList) {
      const l = this.ioas.hwptList;
      l.splice(l.indexOf(this), 1);
      this.inList = false;
      this.ioas.iopt.removeDomain(this.adapter);
    }
    this.ioas.put(`hwpt ${this.id}`);
  }

  iovaAlignment(): number {
    return this.ioas.iopt.iovaAlignment;
  }
}

/**
 * iommufd_hwpt_paging_destroy()'s locked part: off the IOAS's hwpt_list under ioas->mutex
 * (hw_pagetable.c:26), then iopt_table_remove_domain() under domains_rwsem and iova_rwsem
 * for write (io_pagetable.c:1159) with each area's pages mutex as its domain is unfilled.
 */
export function* hwptPagingUnlink(hwpt: IommufdHwptPaging): KGen<void> {
  if (!hwpt.inList) return;
  const ioas = hwpt.ioas;
  yield* ioas.mutex.lock();
  const l = ioas.hwptList;
  l.splice(l.indexOf(hwpt), 1);
  hwpt.inList = false;
  ioas.mutex.unlock();
  yield* addRemoveLocked(ioas);
  ioas.iopt.removeDomain(hwpt.adapter);
  ioas.iovaRwsem.upWrite();
  ioas.domainsRwsem.upWrite();
}

/** iopt_table_add_domain() / iopt_table_remove_domain(): domains_rwsem then iova_rwsem, for
 * write (io_pagetable.c:1048, 1159), then each area's pages mutex (iopt_fill_domain(),
 * iopt_unfill_domain()); the caller does the work and drops the two rwsems */
function* addRemoveLocked(ioas: IommufdIoas): KGen<void> {
  yield* ioas.domainsRwsem.downWrite();
  yield* ioas.iovaRwsem.downWrite();
  yield* gatePagesMutexes(ioas);
}

/** IOMMU_DESTROY of a paging HWPT: out of the table (EBUSY while used), then destroyed with
 * its locks (iommufd_object_remove(), then iommufd_hwpt_paging_destroy()). */
export function* hwptPagingDestroyUser(ictx: IommufdCtx, hwpt: IommufdHwptPaging): KGen<number> {
  const o = ictx.objects.unpublish(hwpt.id);
  if (typeof o === "number") return o;
  yield* hwptPagingUnlink(hwpt);
  hwpt.put(TABLE_HOLDER);
  return 0;
}

/**
 * iommufd_hwpt_paging_alloc(): a paging HWPT on `ioas` for `idev`, not yet finalized (the
 * caller finalizes or aborts it, holding ioas->mutex until then). With immediateAttach the
 * device is attached first, as the automatic-domain path does.
 */
export function* hwptPagingAlloc(
  ictx: IommufdCtx,
  ioas: IommufdIoas,
  idev: IommufdDevice,
  flags: number,
  immediateAttach: boolean,
  userData: boolean,
): KGen<IommufdHwptPaging | number> {
  const valid = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
  if (flags & ~valid) return -EOPNOTSUPP;
  // no IOMMU_CAP_DIRTY_TRACKING on the emulated VT-d; a mock device has it unless NO_DIRTY
  if (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING && !idev.dev.capable("dirty-tracking")) return -EOPNOTSUPP;
  const core = IommuCore.of(ictx.k);
  const mock = idev.dev instanceof MockDev;
  // intel_iommu_domain_alloc_user(): no nesting support, no driver data for a paging domain.
  // (The kernel fails there after reserving the object's id; aborting frees the id again,
  // so failing before the reservation is indistinguishable.)
  const nest = (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0;
  if (!mock && (nest || userData)) return -EOPNOTSUPP;
  const owner = `iommufd ${ictx.name}`;
  const domain = mock
    ? new MockDomain(idev.dev, (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0, owner)
    : core.domainAllocPaging(idev.dev, owner);
  const hwpt = new IommufdHwptPaging(ictx, ioas, domain, nest);
  const rc0 = ictx.objects.alloc(hwpt);
  if (rc0) return rc0;
  ioas.get(`hwpt ${hwpt.id}`);
  if (shouldFail()) {
    // the domain allocation of domain_alloc_user()
    ictx.objects.abort(hwpt);
    return -ENOMEM;
  }
  if (mock && userData) {
    // drivers/iommu/iommufd/selftest.c mock_domain_alloc_user(): no data for a paging domain
    ictx.objects.abort(hwpt);
    return -EOPNOTSUPP;
  }
  domain.owner = `iommufd hwpt ${hwpt.id}`;
  if (idev.enforceCacheCoherency) {
    // iommufd_hwpt_paging_enforce_cc()
    hwpt.enforceCacheCoherency = core.enforceCacheCoherency(domain, idev.dev.group);
    if (!hwpt.enforceCacheCoherency) {
      ictx.objects.abort(hwpt);
      return -EINVAL;
    }
  }
  if (immediateAttach) {
    const rc = yield* hwptAttach(hwpt, idev);
    if (rc) {
      ictx.objects.abort(hwpt);
      return rc;
    }
  }
  yield* addRemoveLocked(ioas);
  const rc = ioas.iopt.addDomain(hwpt.adapter);
  ioas.iovaRwsem.upWrite();
  ioas.domainsRwsem.upWrite();
  if (rc) {
    if (immediateAttach) {
      yield* hwptDetach(idev);
      hwpt.put(idev.attachedHolder);
    }
    ictx.objects.abort(hwpt);
    return rc;
  }
  ioas.hwptList.push(hwpt);
  hwpt.inList = true;
  return hwpt;
}

/** iommufd_hw_pagetable_put(): an automatic HWPT goes with its last user, destroyed with
 * its locks (iommufd_object_put_and_try_destroy()). */
export function* hwptPut(ictx: IommufdCtx, hwpt: IommufdHwptPaging | IommufdHwptNested, holder: string): KGen<void> {
  hwpt.put(holder);
  if (!hwpt.autoDomain) return;
  if (hwpt instanceof IommufdHwptPaging) {
    if (ictx.objects.peek(hwpt.id) === hwpt) yield* hwptPagingDestroyUser(ictx, hwpt);
  } else ictx.objects.removeIfUnused(hwpt);
}

/** iommufd_hwpt_alloc(): a paging HWPT is made and finalized under its IOAS's mutex
 * (hw_pagetable.c:301) */
export function* hwptAlloc(u: Ucmd<V<typeof iommu_hwpt_alloc>>): KGen<number> {
  const cmd = u.cmd;
  const ictx = u.ictx;
  if (cmd.__reserved) return -EOPNOTSUPP;
  if (
    (cmd.data_type === IOMMU_HWPT_DATA_NONE && cmd.data_len) ||
    (cmd.data_type !== IOMMU_HWPT_DATA_NONE && !cmd.data_len)
  )
    return -EINVAL;
  const idev = ictx.objects.get<IommufdDevice>(cmd.dev_id, "device");
  if (!idev) return -ENOENT;
  try {
    const pt = ictx.objects.get(cmd.pt_id);
    if (!pt) return -EINVAL;
    const ioas = pt.type === "ioas" ? (pt as IommufdIoas) : null;
    if (ioas) yield* ioas.mutex.lock();
    try {
      let hwpt: IommufdHwptPaging | IommufdHwptNested | number;
      if (ioas) hwpt = yield* hwptPagingAlloc(ictx, ioas, idev, cmd.flags, false, cmd.data_len !== 0);
      else if (pt.type === "hwpt_paging") {
        // iommufd_hwpt_nested_alloc(): only the selftest's mock driver nests
        const data = { type: cmd.data_type, uptr: cmd.data_uptr, len: cmd.data_len };
        hwpt = hwptNestedAlloc(ictx, u.proc, pt as IommufdHwptPaging, idev, cmd.flags, data);
      } else return -EINVAL;
      if (typeof hwpt === "number") return hwpt;
      if (cmd.flags & IOMMU_HWPT_FAULT_ID_VALID) {
        // only a nested HWPT gets here: the paging path refuses the flag
        const fault = ictx.objects.get<IommufdFault>(cmd.fault_id, "fault");
        if (!fault) {
          ictx.objects.abort(hwpt);
          return -ENOENT;
        }
        (hwpt as IommufdHwptNested).fault = fault.get(`hwpt ${hwpt.id}`);
        fault.put();
      }
      cmd.out_hwpt_id = hwpt.id;
      const rc = u.respond();
      if (rc) {
        ictx.objects.abort(hwpt);
        return rc;
      }
      ictx.objects.finalize(hwpt);
      return 0;
    } finally {
      if (ioas) ioas.mutex.unlock();
      pt.put();
    }
  } finally {
    idev.put();
  }
}

/** domain->dirty_ops: only a mock domain allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING. */
function dirtyOpsOf(domain: IommuDomain): DirtyOps | null {
  return domain instanceof MockDomain && domain.dirtyOps ? domain : null;
}

/** iommufd_hwpt_set_dirty_tracking(): EOPNOTSUPP without dirty_ops (the emulated VT-d). */
export function setDirtyTracking(u: Ucmd<V<typeof iommu_hwpt_set_dirty_tracking>>): number {
  const cmd = u.cmd;
  if (cmd.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) return -EOPNOTSUPP;
  const hwpt = u.ictx.objects.get<IommufdHwptPaging>(cmd.hwpt_id, "hwpt_paging");
  if (!hwpt) return -ENOENT;
  try {
    const ops = dirtyOpsOf(hwpt.domain);
    if (!ops) return -EOPNOTSUPP;
    return ioptSetDirtyTracking(hwpt.ioas.iopt, ops, (cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0);
  } finally {
    hwpt.put();
  }
}

/** iommufd_hwpt_get_dirty_bitmap(): iommufd_check_iova_range(), then the domain's dirty_ops. */
export function getDirtyBitmap(u: Ucmd<V<typeof iommu_hwpt_get_dirty_bitmap>>): number {
  const cmd = u.cmd;
  if (cmd.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR || cmd.__reserved) return -EOPNOTSUPP;
  const hwpt = u.ictx.objects.get<IommufdHwptPaging>(cmd.hwpt_id, "hwpt_paging");
  if (!hwpt) return -ENOENT;
  try {
    const pg = BigInt(hwpt.iovaAlignment());
    if (!cmd.length) return -EINVAL;
    const last = cmd.iova + cmd.length - 1n;
    if (last > U64_MAX) return -EOVERFLOW;
    if (cmd.iova & (pg - 1n) || (last + 1n) & (pg - 1n)) return -EINVAL;
    if (!cmd.page_size) return -EINVAL;
    if (cmd.iova & (cmd.page_size - 1n) || (last + 1n) & (cmd.page_size - 1n)) return -EINVAL;
    const ops = dirtyOpsOf(hwpt.domain);
    if (!ops) return -EOPNOTSUPP;
    return ioptReadAndClearDirty(u.proc, hwpt.ioas.iopt, ops, cmd.flags, cmd);
  } finally {
    hwpt.put();
  }
}

/** iommufd_hwpt_invalidate(): entry_num is written back (the entries done) whatever happens. */
export function invalidate(u: Ucmd<V<typeof iommu_hwpt_invalidate>>): number {
  const cmd = u.cmd;
  let rc: number;
  let done = 0;
  if (cmd.__reserved) rc = -EOPNOTSUPP;
  else if (
    cmd.entry_num &&
    (!cmd.data_uptr ||
      !cmd.entry_len ||
      cmd.entry_len > PAGE_SIZE ||
      cmd.entry_num > IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX)
  )
    rc = -EINVAL;
  else {
    // iommufd_get_hwpt_nested(): only the selftest's mock makes nested HWPTs
    const hwpt = u.ictx.objects.get<IommufdHwptNested>(cmd.hwpt_id, "hwpt_nested");
    if (!hwpt) rc = -ENOENT;
    else {
      const r = hwpt.domain.cacheInvalidateUser(u.proc, {
        type: cmd.data_type,
        uptr: cmd.data_uptr,
        entryLen: cmd.entry_len,
        entryNum: cmd.entry_num,
      });
      hwpt.put();
      rc = r.rc;
      done = r.done;
    }
  }
  cmd.entry_num = done;
  return u.respond() ? -EFAULT : rc;
}
