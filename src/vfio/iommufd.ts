// VFIO's side of iommufd (drivers/vfio/iommufd.c): a physical device bound to an iommufd
// becomes an iommufd DEVICE object, attached to an IOAS or HWPT through the iommufd API of
// src/iommufd/device.ts; and the group path's SET_CONTAINER with an iommufd fd
// (vfio_group_ioctl_set_container() -> iommufd_vfio_compat_ioas_create()).
//
// Per-device state (vdev->iommufd_device, vdev->iommufd_attached) lives in a WeakMap here so
// that struct vfio_device stays the VFIO core's.

import { EINVAL, ENOENT } from "../uapi/errno.js";
import type { File } from "../kernel/fs.js";
import type { KGen } from "../kernel/sched.js";
import {
  iommufdDeviceAttachPath,
  iommufdDeviceBind,
  iommufdDeviceDetachPath,
  iommufdDeviceReplacePath,
  iommufdDeviceUnbindPath,
  iommufdVfioCompatIoasCreate,
  iommufdVfioCompatIoasGetId,
  type IommufdDevice,
} from "../iommufd/device.js";
import { IommufdCtx, iommufdCtxFromFile, iommufdCtxPut } from "../iommufd/main.js";
import { iommufdDevicePasidAttach, iommufdDevicePasidDetach, iommufdDevicePasidReplace } from "../iommufd/pasid.js";
import {
  accessAttachPath,
  accessDetachPath,
  accessReplacePath,
  iommufdAccessCreate,
  iommufdAccessDestroyPath,
  type IommufdAccess,
} from "../iommufd/access.js";
import type { VfioGroup } from "./group.js";
import type { VfioDevice, VfioIommufdHooks } from "./vfio_main.js";
import { SideTable } from "../kernel/side_table.js";

interface VfioIommufdState {
  idev: IommufdDevice | null;
  /** vdev->pasids: the PASIDs attached through this device (the PASID uAPI, 6.15) */
  pasids: Set<number>;
  /** vdev->iommufd_access: an emulated device's access object */
  access: IommufdAccess | null;
  attached: boolean;
}

const states = new SideTable<VfioDevice, VfioIommufdState>();

function st(vdev: VfioDevice): VfioIommufdState {
  let s = states.get(vdev);
  if (!s) states.set(vdev, (s = { idev: null, pasids: new Set(), access: null, attached: false }));
  return s;
}

/** vdev->iommufd_device */
export function vfioIommufdDevice(vdev: VfioDevice): IommufdDevice | null {
  return states.get(vdev)?.idev ?? null;
}

/** vfio_iommufd_emulated_bind(): an access object stands for the device; its id, or -errno. */
function emulatedBind(vdev: VfioDevice, ictx: IommufdCtx): number {
  const access = iommufdAccessCreate(ictx, {
    needsPinPages: true,
    // vfio_emulated_unmap(): the driver's dma_unmap (the twin's emulated drivers pin nothing)
    unmap: () => {},
  });
  if (typeof access === "number") return access;
  st(vdev).access = access;
  return access.id;
}

/** vfio_iommufd_physical_bind() (or the emulated one for a device without an IOMMU): the
 * device id, or -errno. */
export function vfioIommufdPhysicalBind(vdev: VfioDevice, ictx: IommufdCtx): number {
  if (!vdev.iommuDev) return emulatedBind(vdev, ictx);
  const idev = iommufdDeviceBind(ictx, vdev.iommuDev);
  if (typeof idev === "number") return idev;
  st(vdev).idev = idev;
  return idev.id;
}

/** vfio_iommufd_physical_unbind(): detaches first if attached (a path: the detach takes
 * the iommufd group's and the IOAS's locks). */
export function* vfioIommufdPhysicalUnbind(vdev: VfioDevice): KGen<void> {
  const s = st(vdev);
  if (s.access) {
    // vfio_iommufd_emulated_unbind(): destroying the access detaches it
    yield* iommufdAccessDestroyPath(s.access);
    s.access = null;
    s.attached = false;
    return;
  }
  if (!s.idev) return;
  // 6.15: the PASIDs first, then the RID
  for (const pasid of [...s.pasids]) yield* vfioIommufdPhysicalPasidDetachIoas(vdev, pasid);
  if (s.attached) {
    yield* iommufdDeviceDetachPath(s.idev);
    s.attached = false;
  }
  yield* iommufdDeviceUnbindPath(s.idev);
  s.idev = null;
}

/** vfio_iommufd_physical_attach_ioas(): attach, or replace when attached; the HWPT id. */
export function* vfioIommufdPhysicalAttachIoas(vdev: VfioDevice, ptId: number): KGen<{ rc: number; ptId: number }> {
  const s = st(vdev);
  if (s.access) {
    // vfio_iommufd_emulated_attach_ioas(): an IOAS only, and pt_id is not rewritten
    const rc = s.attached ? yield* accessReplacePath(s.access, ptId) : yield* accessAttachPath(s.access, ptId);
    if (rc === 0) s.attached = true;
    return { rc, ptId };
  }
  if (!s.idev) return { rc: -EINVAL, ptId };
  const r = s.attached ? yield* iommufdDeviceReplacePath(s.idev, ptId) : yield* iommufdDeviceAttachPath(s.idev, ptId);
  if (r.rc === 0) s.attached = true;
  return r;
}

/** vfio_iommufd_physical_detach_ioas() */
export function* vfioIommufdPhysicalDetachIoas(vdev: VfioDevice): KGen<void> {
  const s = st(vdev);
  if (s.access) {
    if (s.attached) yield* accessDetachPath(s.access);
    s.attached = false;
    return;
  }
  if (!s.idev || !s.attached) return;
  yield* iommufdDeviceDetachPath(s.idev);
  s.attached = false;
}

/** device->ops->pasid_attach_ioas is set: vfio-pci's physical devices, not emulated ones */
export function vfioIommufdHasPasidOps(vdev: VfioDevice): boolean {
  return vdev.iommuDev !== null;
}

/** vfio_iommufd_physical_pasid_attach_ioas(): replace when the PASID is attached already */
export function* vfioIommufdPhysicalPasidAttachIoas(
  vdev: VfioDevice,
  pasid: number,
  ptId: number,
): KGen<{ rc: number; ptId: number }> {
  const s = st(vdev);
  if (!s.idev) return { rc: -EINVAL, ptId };
  if (s.pasids.has(pasid)) return yield* iommufdDevicePasidReplace(s.idev, pasid, ptId);
  const r = yield* iommufdDevicePasidAttach(s.idev, pasid, ptId);
  if (r.rc === 0) s.pasids.add(pasid);
  return r;
}

/** vfio_iommufd_physical_pasid_detach_ioas(): nothing for a PASID not attached */
export function* vfioIommufdPhysicalPasidDetachIoas(vdev: VfioDevice, pasid: number): KGen<void> {
  const s = st(vdev);
  if (!s.idev || !s.pasids.has(pasid)) return;
  yield* iommufdDevicePasidDetach(s.idev, pasid);
  s.pasids.delete(pasid);
}

/**
 * THE "vfio-translate" DESIGN'S EXPORT (a proposal, not upstream): KVM, given this device
 * file and an iommufd file, asks which host PASID backs `pasid` on the device. The answer is
 * the PASID when the file is a cdev bound to that very iommufd and the PASID is attached
 * through it; -EINVAL for a file that is not such a pair, -ENOENT for a PASID not attached.
 * Nothing here asks which process owns the iommufd or the VM: that is the design's point.
 */
export function vfioIommufdPasidTranslate(vdev: VfioDevice, boundCtx: unknown, iommufd: File, pasid: number): number {
  const s = states.get(vdev);
  if (!s?.idev || !(iommufd.privateData instanceof IommufdCtx) || iommufd.privateData !== boundCtx) return -EINVAL;
  if (s.idev.ictx !== boundCtx) return -EINVAL;
  return s.pasids.has(pasid) ? pasid : -ENOENT;
}

/** The PASIDs attached through a device (reports, invariants). */
export function vfioIommufdPasids(vdev: VfioDevice): number[] {
  return [...(states.get(vdev)?.pasids ?? [])].sort((a, b) => a - b);
}

/** The hooks the group code calls for SET_CONTAINER / UNSET_CONTAINER with an iommufd. */
export const vfioIommufdHooks: VfioIommufdHooks = {
  ctxFromFile(f: File) {
    return f.fops.name === "iommufd" && f.privateData instanceof IommufdCtx ? f.privateData : null;
  },
  groupSetIommufd(g: VfioGroup, ictx: unknown) {
    const c = ictx as IommufdCtx;
    const r = iommufdCtxFromFile(c.file, groupHolder(g));
    if (typeof r === "number") return r;
    const rc = iommufdVfioCompatIoasCreate(c);
    if (rc) {
      iommufdCtxPut(c, groupHolder(g));
      return rc;
    }
    g.iommufd = c;
    return 0;
  },
  groupUnsetIommufd(g: VfioGroup) {
    iommufdCtxPut(g.iommufd as IommufdCtx, groupHolder(g));
    g.iommufd = null;
  },
  deviceBind(vdev: VfioDevice, ictx: unknown) {
    const r = vfioIommufdPhysicalBind(vdev, ictx as IommufdCtx);
    return r < 0 ? r : 0;
  },
  deviceUnbind(vdev: VfioDevice) {
    return vfioIommufdPhysicalUnbind(vdev);
  },
  *compatAttachIoas(vdev: VfioDevice, ictx: unknown): KGen<number> {
    const id = iommufdVfioCompatIoasGetId(ictx as IommufdCtx);
    if (id < 0) return id;
    return (yield* vfioIommufdPhysicalAttachIoas(vdev, id)).rc;
  },
};

function groupHolder(g: VfioGroup): string {
  return `vfio group ${g.path}`;
}
