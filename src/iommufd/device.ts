// Devices bound to an iommufd (drivers/iommu/iommufd/device.c), and IOMMU_GET_HW_INFO.
//
// API for VFIO (src/vfio calls these, as drivers/vfio/iommufd.c calls the kernel's):
//
//   iommufdCtxFromFile(file, holder)      ./main.ts: the context with a file reference
//                                         named `holder`, or -EBADFD for another file
//   iommufdCtxPut(ictx, holder)           ./main.ts: drop it
//   iommufdDeviceBind(ictx, dev)          iommufd_device_bind(): claims DMA ownership of the
//                                         device's group for ictx, makes the DEVICE object
//                                         (its id is idev.id) held by the driver; -errno
//   iommufdDeviceUnbind(idev)             iommufd_device_unbind() (detach first)
//   iommufdDeviceAttach(idev, ptId)       iommufd_device_attach(): ptId an IOAS (automatic
//                                         domain, shared with other devices when compatible)
//                                         or a HWPT; returns { rc, ptId } (the HWPT id)
//   iommufdDeviceReplace(idev, ptId)      iommufd_device_replace(): the same while attached
//   iommufdDeviceDetach(idev)             iommufd_device_detach(): back to blocked DMA
//   iommufdVfioCompatIoasCreate(ictx)     iommufd_vfio_compat_ioas_create() (group path)
//   iommufdVfioCompatIoasGetId(ictx)      iommufd_vfio_compat_ioas_get_id(): id or -ENODEV
//
// Per context and IOMMU group an IommufdGroup records the HWPT the group is attached to
// and the devices attached through it: the first device attaches the group's domain, the
// others follow; each attached device holds the HWPT. Attaching reserves the device's
// reserved regions (the MSI window) in the IOAS, which fails with EADDRINUSE where an area
// or allowed range is already there; adding the domain then pins every area (EFAULT for
// unbacked memory) and reserves what lies outside the aperture.

import { EINVAL, ENODEV, ENOENT, EOPNOTSUPP, EPERM } from "../uapi/errno.js";
import {
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
  iommu_hw_info_vtd,
  type iommu_hw_info,
} from "../uapi/iommufd.js";
import {
  IOMMU_HW_INFO_SELFTEST_REGVAL,
  IOMMU_HW_INFO_TYPE_SELFTEST,
  iommu_test_hw_info,
} from "../uapi/iommufd_test.js";
import type { IommuDevice, IommuGroup } from "../iommu/iommu.js";
import { Mutex } from "../kernel/locks.js";
import { isGen, type KGen, type KRet, preempt, runToEnd } from "../kernel/sched.js";
import { pasidConfig } from "../kernel/pasid.js";
import { hwptPagingAlloc, hwptPut, type IommufdHwptPaging } from "./hw_pagetable.js";
import type { IommufdHwptNested } from "./hwpt_nested.js";
import { ioasAlloc, type IommufdIoas } from "./ioas.js";
import type { IommufdCtx, Ucmd } from "./main.js";
import { autoResponseFaults, faultOf, iopfEnable } from "./fault.js";
import { IommufdObject } from "./object.js";
import { driverAttachDev, MockDev } from "./selftest_mock_dev.js";

type V<T> = T extends { decode(b: Uint8Array): infer R } ? R : never;

/** What a device attaches to: a paging HWPT, or a nested one (reserved regions and the IOAS
 * comparisons of replace go to its parent's IOAS, as find_hwpt_paging() does). */
export type IommufdHwpt = IommufdHwptPaging | IommufdHwptNested;

/** The holder name a bound device's driver uses on the DEVICE object. */
export const DRIVER_HOLDER = "vfio driver";

/** struct iommufd_group: per context, per IOMMU group. */
export class IommufdGroup {
  refs = 1;
  hwpt: IommufdHwpt | null = null;
  readonly devices: IommufdDevice[] = [];
  /** igroup->lock: attach, detach and replace of the group's devices (device.c:487) */
  readonly lock: Mutex;
  constructor(
    readonly ictx: IommufdCtx,
    readonly group: IommuGroup,
  ) {
    this.lock = new Mutex(ictx.k, "iommufd_group.lock", `igroup lock of group ${group.id} in ${ictx.name}`);
  }
}

/** struct iommufd_device */
export class IommufdDevice extends IommufdObject {
  readonly enforceCacheCoherency: boolean;
  constructor(
    readonly ictx: IommufdCtx,
    readonly dev: IommuDevice,
    readonly igroup: IommufdGroup,
  ) {
    super(ictx.k, "device", ictx.name);
    this.enforceCacheCoherency = dev.capable("cache-coherency");
  }

  /** iommufd_device_destroy() */
  protected destroyObj(): void {
    releaseDmaOwner(this.dev);
    putGroup(this.igroup);
    // a mock device never held the context: its selftest object dies with it
    if (!(this.dev instanceof MockDev)) this.ictx.file.put(`iommufd device ${this.id}`);
  }

  get attachedHolder(): string {
    return `attached device ${this.id}`;
  }
}

function getGroup(ictx: IommufdCtx, dev: IommuDevice): IommufdGroup {
  let g = ictx.groups.get(dev.group.id);
  if (g) g.refs++;
  else ictx.groups.set(dev.group.id, (g = new IommufdGroup(ictx, dev.group)));
  return g;
}

function putGroup(g: IommufdGroup): void {
  if (--g.refs === 0) g.ictx.groups.delete(g.group.id);
}

/** iommu_device_claim_dma_owner(): the group's owner, counted per device. */
function claimDmaOwner(dev: IommuDevice, owner: unknown): number {
  const g = dev.group;
  if (g.ownerCnt) {
    if (g.owner !== owner) return -EPERM;
    g.ownerCnt++;
    return 0;
  }
  return dev.core.claimDmaOwner(g, owner);
}

/** iommu_device_release_dma_owner() */
function releaseDmaOwner(dev: IommuDevice): void {
  const g = dev.group;
  if (g.ownerCnt > 1) g.ownerCnt--;
  else dev.core.releaseDmaOwner(g);
}

/** iommufd_device_bind(): the bound device, held by the driver (DRIVER_HOLDER), or -errno. */
export function iommufdDeviceBind(ictx: IommufdCtx, dev: IommuDevice): IommufdDevice | number {
  // IOMMU_CAP_CACHE_COHERENCY is always true on Intel; MSI is isolated by interrupt remapping
  const igroup = getGroup(ictx, dev);
  let rc = claimDmaOwner(dev, ictx);
  if (rc) {
    putGroup(igroup);
    return rc;
  }
  const idev = new IommufdDevice(ictx, dev, igroup);
  rc = ictx.objects.alloc(idev);
  if (rc) {
    releaseDmaOwner(dev);
    putGroup(igroup);
    return rc;
  }
  // iommufd_ctx_get(), except for the selftest's mock devices (iommufd_selftest_is_mock_dev())
  if (!(dev instanceof MockDev)) ictx.file.get(`iommufd device ${idev.id}`);
  idev.get(DRIVER_HOLDER);
  ictx.objects.finalize(idev);
  return idev;
}

/** iommufd_device_unbind(): iommufd_object_destroy_user(); the device must be detached. */
export function iommufdDeviceUnbind(idev: IommufdDevice): void {
  runToEnd(idev.k, iommufdDeviceUnbindPath(idev));
}

/** iommufd_device_unbind() as a path (device.c:281): it waits for the ioctls that still
 * hold the device short-term */
export function* iommufdDeviceUnbindPath(idev: IommufdDevice): KGen<void> {
  const rc = yield* idev.ictx.objects.destroyUser(idev, DRIVER_HOLDER);
  if (rc) throw idev.k.bug("iommufd", `unbind of ${idev.describe()} that is still referenced`);
}

/** iommufd_ctx_has_group() */
export function iommufdCtxHasGroup(ictx: IommufdCtx, group: IommuGroup): boolean {
  return ictx.objects.objects().some((o) => o instanceof IommufdDevice && o.igroup.group === group);
}

function isAttached(idev: IommufdDevice): boolean {
  return idev.igroup.devices.includes(idev);
}

/** iopt_table_enforce_dev_resv_regions() under iova_rwsem (io_pagetable.c:1410) */
function* enforceResv(ioas: IommufdIoas, idev: IommufdDevice): KGen<number> {
  const regions = idev.dev.resvRegions().map((r) => ({ start: r.start, length: r.last - r.start + 1n }));
  yield* ioas.iovaRwsem.downWrite();
  const rc = ioas.iopt.enforceDevResvRegions(regions, idev.dev);
  ioas.iovaRwsem.upWrite();
  return rc;
}

/** iopt_remove_reserved_iova() under iova_rwsem (io_pagetable.c:844) */
function* removeResv(ioas: IommufdIoas, owner: unknown): KGen<void> {
  yield* ioas.iovaRwsem.downWrite();
  ioas.iopt.removeReservedIova(owner);
  ioas.iovaRwsem.upWrite();
}

/** iommufd_hw_pagetable_attach(), under igroup->lock (device.c:487) */
export function* hwptAttach(hwpt: IommufdHwpt, idev: IommufdDevice): KGen<number> {
  const ig = idev.igroup;
  yield* ig.lock.lock();
  try {
    if (ig.hwpt !== null && ig.hwpt !== hwpt) return -EINVAL;
    // iommufd_device_attach_reserved_iova()
    let rc = yield* enforceResv(hwpt.ioas, idev);
    if (rc) return rc;
    if (ig.devices.length === 0) {
      // iommufd_hwpt_attach_device(): IOPF first for a HWPT with a fault
      rc = faultOf(hwpt) ? iopfEnable(idev) : 0;
      if (!rc) rc = driverAttachDev(hwpt.domain, idev.dev);
      if (!rc) rc = idev.dev.core.attachGroup(hwpt.domain, ig.group);
      if (rc) {
        yield* removeResv(hwpt.ioas, idev.dev);
        return rc;
      }
      ig.hwpt = hwpt;
    }
    hwpt.get(idev.attachedHolder);
    ig.devices.push(idev);
    return 0;
  } finally {
    ig.lock.unlock();
  }
}

/** iommufd_hw_pagetable_detach(), under igroup->lock (device.c:531): the HWPT the device
 * left; the caller puts its reference. */
export function* hwptDetach(idev: IommufdDevice): KGen<IommufdHwpt> {
  const ig = idev.igroup;
  yield* ig.lock.lock();
  const hwpt = ig.hwpt!;
  ig.devices.splice(ig.devices.indexOf(idev), 1);
  if (ig.devices.length === 0) {
    // broken variant "dma-after-detach": the group is left in the HWPT's domain, so the
    // device's DMA still reaches what it maps (and, once the HWPT is gone, freed tables)
    if (!idev.k.broken.has("dma-after-detach")) idev.dev.core.detachGroup(hwpt.domain, ig.group);
    ig.hwpt = null;
    autoResponseFaults(hwpt, ig); // iommufd_hwpt_detach_device()
  }
  yield* removeResv(hwpt.ioas, idev.dev);
  ig.lock.unlock();
  return hwpt;
}

export type AttachFn = (idev: IommufdDevice, hwpt: IommufdHwpt) => KRet<IommufdHwpt | null | number>;

/** iommufd_device_do_attach() */
function* doAttach(idev: IommufdDevice, hwpt: IommufdHwpt): KGen<IommufdHwpt | null | number> {
  const rc = yield* hwptAttach(hwpt, idev);
  return rc ? rc : null;
}

/** iommufd_group_remove_reserved_iova(): each device's regions, each removal under
 * iova_rwsem for write */
function* removeGroupReserved(ig: IommufdGroup, hwpt: IommufdHwpt): KGen<void> {
  for (const d of ig.devices) yield* removeResv(hwpt.ioas, d.dev);
}

/** iommufd_device_do_replace(), under igroup->lock (device.c:610): the HWPT left behind
 * (its reference is the caller's), or null. */
function* doReplace(idev: IommufdDevice, hwpt: IommufdHwpt): KGen<IommufdHwpt | null | number> {
  const ig = idev.igroup;
  yield* ig.lock.lock();
  try {
    return yield* replaceLocked(idev, hwpt);
  } finally {
    ig.lock.unlock();
  }
}

/** doReplace's work with igroup->lock held; the reserved regions of the new IOAS are
 * changed under its iova_rwsem for write (iommufd_group_do_replace_reserved_iova(),
 * device.c:570, through iopt_table_enforce_dev_resv_regions()) */
function* replaceLocked(idev: IommufdDevice, hwpt: IommufdHwpt): KGen<IommufdHwpt | null | number> {
  const ig = idev.igroup;
  if (ig.hwpt === null || !isAttached(idev)) return -EINVAL;
  if (hwpt === ig.hwpt) return null;
  const old = ig.hwpt;
  // iommufd_group_do_replace_reserved_iova()
  if (hwpt.ioas !== old.ioas) {
    for (const d of ig.devices) {
      const rc = yield* enforceResv(hwpt.ioas, d);
      if (rc) {
        yield* removeGroupReserved(ig, hwpt);
        return rc;
      }
    }
  }
  // iommufd_hwpt_replace_device(): IOPF first when the new HWPT has a fault the old lacks
  let rc = faultOf(hwpt) && !faultOf(old) ? iopfEnable(idev) : 0;
  for (const d of ig.devices) rc ||= driverAttachDev(hwpt.domain, d.dev);
  if (!rc) rc = idev.dev.core.replaceGroupDomain(ig.group, hwpt.domain);
  if (rc) {
    // err_unresv: only what was reserved above (the same IOAS keeps the group's regions)
    if (hwpt.ioas !== old.ioas) yield* removeGroupReserved(ig, hwpt);
    return rc;
  }
  if (hwpt.ioas !== old.ioas) yield* removeGroupReserved(ig, old);
  ig.hwpt = hwpt;
  autoResponseFaults(old, ig); // iommufd_hwpt_replace_device(): the old handle's requests
  // the devices' references move to the new HWPT; the caller drops idev's on the old one
  for (const d of ig.devices) hwpt.get(d.attachedHolder);
  for (const d of ig.devices) if (d !== idev) old.put(d.attachedHolder);
  return old;
}

/**
 * iommufd_device_auto_get_domain(): reuse an automatic HWPT of the IOAS, or make one, all
 * under ioas->mutex (device.c:697) until the new HWPT is finalized: the HWPT is on the
 * IOAS's hwpt_list from its allocation on, and another attach must not take it before then.
 * Broken variant "iommufd-auto-domain-unlock-early" (what 31422dff187b fixed): the mutex is
 * dropped before the finalize, whose xa_store(GFP_KERNEL) may sleep.
 */
function* autoGetDomain(
  idev: IommufdDevice,
  ioas: IommufdIoas,
  fn: AttachFn,
): KGen<{ r: IommufdHwpt | null | number; ptId: number }> {
  const ictx = idev.ictx;
  yield* ioas.mutex.lock();
  let locked = true;
  try {
    for (const hwpt of [...ioas.hwptList]) {
      if (!hwpt.autoDomain) continue;
      // iommufd_lock_obj(): a HWPT on the list is published, or being made by the holder of
      // ioas->mutex, which is this task; one being destroyed is skipped
      if (!ictx.objects.lockObj(hwpt)) continue;
      const r = yield* runGen(fn(idev, hwpt));
      hwpt.put();
      if (typeof r === "number") {
        if (r === -EINVAL) continue;
        return { r, ptId: 0 };
      }
      return { r, ptId: hwpt.id };
    }
    const immediate = fn === doAttach;
    const hwpt = yield* hwptPagingAlloc(ictx, ioas, idev, 0, immediate, false);
    if (typeof hwpt === "number") return { r: hwpt, ptId: 0 };
    let r: IommufdHwpt | null | number = null;
    if (!immediate) {
      r = yield* runGen(fn(idev, hwpt));
      if (typeof r === "number") {
        ictx.objects.abort(hwpt);
        return { r, ptId: 0 };
      }
    }
    hwpt.autoDomain = true;
    if (idev.k.broken.has("iommufd-auto-domain-unlock-early")) {
      ioas.mutex.unlock();
      locked = false;
    }
    // iommufd_object_finalize(): xa_store(GFP_KERNEL) may allocate, and sleep
    yield* preempt("iommufd_object_finalize");
    ictx.objects.finalize(hwpt);
    return { r, ptId: hwpt.id };
  } finally {
    if (locked) ioas.mutex.unlock();
  }
}

/** a KRet as a generator, for `yield*` */
function* runGen<T>(r: KRet<T>): KGen<T> {
  return isGen(r) ? yield* r : r;
}

/** iommufd_device_change_pt() (also the PASID attach's, ./pasid.ts) */
export function* changePtPath(idev: IommufdDevice, ptId: number, fn: AttachFn): KGen<{ rc: number; ptId: number }> {
  const ictx = idev.ictx;
  const pt = ictx.objects.get(ptId);
  if (!pt) return { rc: -ENOENT, ptId };
  let destroy: IommufdHwpt | null;
  let out = ptId;
  try {
    if (pt.type === "hwpt_paging" || pt.type === "hwpt_nested") {
      const r = yield* runGen(fn(idev, pt as IommufdHwpt));
      if (typeof r === "number") return { rc: r, ptId };
      destroy = r;
    } else if (pt.type === "ioas") {
      const a = yield* autoGetDomain(idev, pt as IommufdIoas, fn);
      if (typeof a.r === "number") return { rc: a.r, ptId };
      destroy = a.r;
      out = a.ptId;
    } else return { rc: -EINVAL, ptId };
  } finally {
    pt.put();
  }
  if (destroy) yield* hwptPut(ictx, destroy, idev.attachedHolder);
  return { rc: 0, ptId: out };
}

/** iommufd_device_attach() */
export function* iommufdDeviceAttachPath(idev: IommufdDevice, ptId: number): KGen<{ rc: number; ptId: number }> {
  const r = yield* changePtPath(idev, ptId, doAttach);
  if (r.rc === 0) idev.get("attachment");
  return r;
}

/** iommufd_device_replace() */
export function* iommufdDeviceReplacePath(idev: IommufdDevice, ptId: number): KGen<{ rc: number; ptId: number }> {
  return yield* changePtPath(idev, ptId, doReplace);
}

/** iommufd_device_detach() */
export function* iommufdDeviceDetachPath(idev: IommufdDevice): KGen<void> {
  const hwpt = yield* hwptDetach(idev);
  yield* hwptPut(idev.ictx, hwpt, idev.attachedHolder);
  idev.put("attachment");
}

/** The three above run to their end, for callers that cannot yield (the selftest's mock
 * devices, the group path's compat attach). */
export function iommufdDeviceAttach(idev: IommufdDevice, ptId: number): { rc: number; ptId: number } {
  return runToEnd(idev.k, iommufdDeviceAttachPath(idev, ptId));
}
export function iommufdDeviceReplace(idev: IommufdDevice, ptId: number): { rc: number; ptId: number } {
  return runToEnd(idev.k, iommufdDeviceReplacePath(idev, ptId));
}
export function iommufdDeviceDetach(idev: IommufdDevice): void {
  runToEnd(idev.k, iommufdDeviceDetachPath(idev));
}

/** iommufd_vfio_compat_ioas_get_id(): the compat IOAS id, or -ENODEV. */
export function iommufdVfioCompatIoasGetId(ictx: IommufdCtx): number {
  const ioas = ictx.vfioIoas;
  return ioas && !ioas.dead ? ioas.id : -ENODEV;
}

/** iommufd_vfio_compat_ioas_create(): make the compat IOAS if there is none; 0 or -errno. */
export function iommufdVfioCompatIoasCreate(ictx: IommufdCtx): number {
  if (ictx.vfioIoas && !ictx.vfioIoas.dead) return 0;
  const ioas = ioasAlloc(ictx);
  if (typeof ioas === "number") return ioas;
  ictx.objects.finalize(ioas);
  ictx.vfioIoas = ioas;
  return 0;
}

/**
 * The emulated VT-d's capability registers as the oracle's guest reads them (QEMU 7.2,
 * aw-bits 39): intel_iommu_hw_info() reports them with the SPR17 erratum flag set.
 */
const VTD_CAP_REG = 0xd2008c22260286n;
const VTD_ECAP_REG = 0xf00f4an;

/** iommufd_get_hw_info() */
export function getHwInfo(u: Ucmd<V<typeof iommu_hw_info>>): number {
  const cmd = u.cmd;
  if (cmd.flags || cmd.__reserved[0] || cmd.__reserved[1] || cmd.__reserved[2]) return -EOPNOTSUPP;
  const idev = u.ictx.objects.get<IommufdDevice>(cmd.dev_id, "device");
  if (!idev) return -ENOENT;
  try {
    // ops->hw_info(): intel_iommu_hw_info(), or the mock's mock_domain_hw_info()
    const mock = idev.dev instanceof MockDev;
    const data = mock
      ? iommu_test_hw_info.encode({ flags: 0, test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL })
      : iommu_hw_info_vtd.encode({
          flags: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
          cap_reg: VTD_CAP_REG,
          ecap_reg: VTD_ECAP_REG,
        });
    cmd.out_data_type = mock ? IOMMU_HW_INFO_TYPE_SELFTEST : IOMMU_HW_INFO_TYPE_INTEL_VTD;
    const copyLen = Math.min(cmd.data_len, data.length);
    let rc = u.copyToUser(cmd.data_uptr, data.subarray(0, copyLen));
    if (rc) return rc;
    if (copyLen < cmd.data_len) {
      // clear_user() of the rest of the caller's buffer
      rc = u.copyToUser(cmd.data_uptr + BigInt(copyLen), new Uint8Array(cmd.data_len - copyLen));
      if (rc) return rc;
    }
    cmd.data_len = data.length;
    cmd.out_capabilities = idev.dev.capable("dirty-tracking") ? BigInt(IOMMU_HW_CAP_DIRTY_TRACKING) : 0n;
    // no PASID on the emulated VT-d nor on the 6.12 mock; a PASID device with the PASID uAPI: 20 bits
    cmd.out_max_pasid_log2 = pasidConfig(idev.k).uapi && idev.dev.capable("pasid") ? 20 : 0;
    return u.respond();
  } finally {
    idev.put();
  }
}
