// The VFIO device cdev /dev/vfio/devices/vfioN (drivers/vfio/device_cdev.c).
//
// Opening the node makes a device file with no access: only VFIO_DEVICE_BIND_IOMMUFD is
// accepted until a bind succeeds (everything else is EINVAL, in vfio_main.ts). BIND blocks
// the device's group (EBUSY while the group file is open; the group cannot be opened while
// a cdev is bound), takes the iommufd, takes the KVM the file was given by
// KVM_DEV_VFIO_FILE_ADD, opens the device (binding it to the iommufd: the DEVICE object's
// id is returned) and grants access. One bound file per device: a second bind, on this file
// or another, is EINVAL. ATTACH/DETACH_IOMMUFD_PT then move the device between IOASes and
// HWPTs. Closing the file unbinds (detaching first).

import { shouldFail } from "../kernel/fail_nth.js";
import { EBADF, EBUSY, EFAULT, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP } from "../uapi/errno.js";
import { pasidConfig } from "../kernel/pasid.js";
import * as V from "../uapi/vfio.js";
import type { CharDev, File } from "../kernel/fs.js";
import type { StructDesc } from "../uapi/struct.js";
import type { KGen } from "../kernel/sched.js";
import { type IommufdCtx, iommufdCtxFromFile, iommufdCtxPut } from "../iommufd/main.js";
import { copyOut, copyStructIn, fdget } from "./uaccess.js";
import {
  vfioIommufdHasPasidOps,
  vfioIommufdPhysicalAttachIoas,
  vfioIommufdPhysicalBind,
  vfioIommufdPhysicalDetachIoas,
  vfioIommufdPhysicalPasidAttachIoas,
  vfioIommufdPhysicalPasidDetachIoas,
  vfioIommufdPhysicalUnbind,
} from "./iommufd.js";
import {
  type VfioCdevHooks,
  type VfioCore,
  type VfioDevice,
  VfioDeviceFile,
  vfioDeviceGetKvmSafe,
  vfioDevicePutKvm,
  vfioDfClose,
  vfioDfOpen,
} from "./vfio_main.js";

export const VFIO_CDEV_DIR = "/dev/vfio/devices";

/** the iommufd reference a bound cdev file holds */
function ctxHolder(vdev: VfioDevice): string {
  return `vfio cdev ${vdev.name}`;
}

/** The node of a device (vfio_device_add() with a cdev). */
export function vfioDeviceCdevAdd(core: VfioCore, vdev: VfioDevice): void {
  core.k.devices.register(`${VFIO_CDEV_DIR}/vfio${vdev.cdevIndex}`, core.deviceFops, vdev);
}

export function vfioDeviceCdevDel(core: VfioCore, vdev: VfioDevice): void {
  core.k.devices.unregister(`${VFIO_CDEV_DIR}/vfio${vdev.cdevIndex}`);
}

/** vfio_device_fops_cdev_open() */
function cdevOpen(f: File, dev: CharDev): number {
  const vdev = dev.data as VfioDevice;
  if (!vdev.registered || vdev.dead) return -ENODEV;
  if (shouldFail()) return -ENOMEM; // vfio_allocate_device_file() (vfio_main.c:501)
  f.privateData = new VfioDeviceFile(vdev, null);
  vdev.get(`device file ${f.ino}`);
  return 0;
}

/** vfio_device_block_group() */
function* blockGroup(vdev: VfioDevice): KGen<number> {
  const g = vdev.group;
  yield* g.groupLock.lock();
  try {
    if (g.openedFile) return -EBUSY;
    g.cdevDeviceOpenCnt++;
    return 0;
  } finally {
    g.groupLock.unlock();
  }
}

function* unblockGroup(vdev: VfioDevice): KGen<void> {
  const g = vdev.group;
  yield* g.groupLock.lock();
  g.cdevDeviceOpenCnt--;
  g.groupLock.unlock();
}

/** drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd(); KVM is taken at open count 0,
 * as group.c vfio_df_group_open() does (the fixed kernel, see below) */
function* bindIommufd(df: VfioDeviceFile, arg: number): KGen<number> {
  const vdev = df.device;
  const k = vdev.k;
  const minsz = V.vfio_device_bind_iommufd.offsetOfEnd("out_devid");
  const bind = copyStructIn(k, V.vfio_device_bind_iommufd, arg, minsz);
  if (typeof bind === "number") return -EFAULT;
  if (bind.argsz < minsz || bind.flags || bind.iommufd < 0) return -EINVAL;
  if (df.group) return -EINVAL;
  let rc = yield* blockGroup(vdev);
  if (rc) return rc;
  yield* vdev.devSetLock.lock();
  let ictx: IommufdCtx | null = null;
  try {
    if (df.accessGranted) {
      rc = -EINVAL;
      return rc;
    }
    // iommufd_ctx_from_fd()
    const f = fdget(k, bind.iommufd);
    if (!f) {
      rc = -EBADF;
      return rc;
    }
    const c = iommufdCtxFromFile(f, ctxHolder(vdev));
    if (typeof c === "number") {
      rc = c;
      return rc;
    }
    ictx = c;
    df.iommufd = c;
    // KVM is taken only by the open that opens the device (open count 0), as the group path
    // does: 6.12 took it on every BIND, and a BIND that then failed in vfio_df_open() (the
    // device already open through another cdev fd) put the first BIND's pointer and leaked
    // its reference. The twin models the fixed kernel.
    const firstOpen = vdev.openCount === 0;
    if (firstOpen) vfioDeviceGetKvmSafe(vdev, df.kvm);
    let devid = 0;
    rc = yield* vfioDfOpen(
      df,
      () => {
        const r = vfioIommufdPhysicalBind(vdev, c);
        if (r < 0) return r;
        devid = r;
        return 0;
      },
      () => vfioIommufdPhysicalUnbind(vdev),
    );
    if (rc < 0) {
      if (firstOpen) vfioDevicePutKvm(vdev);
      return rc;
    }
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, devid, true);
    rc = copyOut(k, arg + V.vfio_device_bind_iommufd.offsetOf("out_devid"), out);
    if (rc) {
      yield* vfioDfClose(df, () => vfioIommufdPhysicalUnbind(vdev));
      if (vdev.openCount === 0) vfioDevicePutKvm(vdev);
      return rc;
    }
    df.accessGranted = true;
    ictx = null;
    return 0;
  } finally {
    if (ictx) {
      iommufdCtxPut(ictx, ctxHolder(vdev));
      df.iommufd = null;
    }
    vdev.devSetLock.unlock();
    if (rc) yield* unblockGroup(vdev);
  }
}

/** vfio_df_unbind_iommufd(): at the last close of a bound cdev file. */
function* unbindIommufd(df: VfioDeviceFile): KGen<void> {
  if (!df.accessGranted) return;
  const vdev = df.device;
  yield* vdev.devSetLock.lock();
  yield* vfioDfClose(df, () => vfioIommufdPhysicalUnbind(vdev));
  if (vdev.openCount === 0) vfioDevicePutKvm(vdev);
  iommufdCtxPut(df.iommufd as IommufdCtx, ctxHolder(vdev));
  df.iommufd = null;
  vdev.devSetLock.unlock();
  yield* unblockGroup(vdev);
}

/** The flags check and the PASID of ATTACH/DETACH_IOMMUFD_PT: `flag` is accepted only with the
 * PASID uAPI (6.15), and with it set the struct extends to `pasid` (upstream's xend scheme).
 * The PASID (null without the flag) or -errno. */
function pasidArg(
  df: VfioDeviceFile,
  arg: number,
  head: { argsz: number; flags: number },
  flag: number,
  desc: StructDesc<{ pasid: number }>,
): { pasid: number | null } | number {
  const vdev = df.device;
  if (head.flags & ~(pasidConfig(vdev.k).uapi ? flag : 0)) return -EINVAL;
  if (!(head.flags & flag)) return { pasid: null };
  if (!vfioIommufdHasPasidOps(vdev)) return -EOPNOTSUPP;
  const xend = desc.offsetOfEnd("pasid");
  if (head.argsz < xend) return -EINVAL;
  const full = copyStructIn(vdev.k, desc, arg, xend);
  if (typeof full === "number") return -EFAULT;
  return { pasid: full.pasid };
}

/** vfio_df_ioctl_attach_pt(); with the PASID uAPI (6.15, a TwinConfig.kernelVersion choice)
 * VFIO_DEVICE_ATTACH_PASID extends the struct by `pasid` (upstream's xend scheme) */
function* attachPt(df: VfioDeviceFile, arg: number): KGen<number> {
  const vdev = df.device;
  const k = vdev.k;
  const minsz = V.vfio_device_attach_iommufd_pt.offsetOfEnd("pt_id");
  const at = copyStructIn(k, V.vfio_device_attach_iommufd_pt, arg, minsz);
  if (typeof at === "number") return -EFAULT;
  if (at.argsz < minsz) return -EINVAL;
  const px = pasidArg(df, arg, at, V.VFIO_DEVICE_ATTACH_PASID, V.vfio_device_attach_iommufd_pt_pasid);
  if (typeof px === "number") return px;
  const pasid = px.pasid;
  yield* vdev.devSetLock.lock();
  try {
    const r =
      pasid === null
        ? yield* vfioIommufdPhysicalAttachIoas(vdev, at.pt_id)
        : yield* vfioIommufdPhysicalPasidAttachIoas(vdev, pasid, at.pt_id);
    if (r.rc) return r.rc;
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, r.ptId, true);
    if (copyOut(k, arg + V.vfio_device_attach_iommufd_pt.offsetOf("pt_id"), b) < 0) {
      if (pasid === null) yield* vfioIommufdPhysicalDetachIoas(vdev);
      else yield* vfioIommufdPhysicalPasidDetachIoas(vdev, pasid);
      return -EFAULT;
    }
    return 0;
  } finally {
    vdev.devSetLock.unlock();
  }
}

/** vfio_df_ioctl_detach_pt(); VFIO_DEVICE_DETACH_PASID with the PASID uAPI */
function* detachPt(df: VfioDeviceFile, arg: number): KGen<number> {
  const vdev = df.device;
  const k = vdev.k;
  const minsz = V.vfio_device_detach_iommufd_pt.offsetOfEnd("flags");
  const de = copyStructIn(k, V.vfio_device_detach_iommufd_pt, arg, minsz);
  if (typeof de === "number") return -EFAULT;
  if (de.argsz < minsz) return -EINVAL;
  const px = pasidArg(df, arg, de, V.VFIO_DEVICE_DETACH_PASID, V.vfio_device_detach_iommufd_pt_pasid);
  if (typeof px === "number") return px;
  const pasid = px.pasid;
  yield* vdev.devSetLock.lock();
  if (pasid === null) yield* vfioIommufdPhysicalDetachIoas(vdev);
  else yield* vfioIommufdPhysicalPasidDetachIoas(vdev, pasid);
  vdev.devSetLock.unlock();
  return 0;
}

export const vfioCdevHooks: VfioCdevHooks = {
  open: cdevOpen,
  bindIommufd,
  ioctl(df, cmd, arg) {
    if (cmd === V.VFIO_DEVICE_ATTACH_IOMMUFD_PT) return attachPt(df, arg);
    if (cmd === V.VFIO_DEVICE_DETACH_IOMMUFD_PT) return detachPt(df, arg);
    return null;
  },
  release: unbindIommufd,
};
