// A test-only mediated device driver whose open_device needs a KVM, as GVT-g's
// intel_vgpu_open_device() (drivers/gpu/drm/i915/gvt/kvmgt.c) does: without a kvm recorded
// on the device at open time it fails with -ESRCH. It makes the ordering rule "add the VFIO
// file to KVM before opening the device" testable. (The kernel also compares kvm->mm with
// current->mm; the twin's kvm is opaque to VFIO, so that half is not modelled.)
//
// Loading the module registers one emulated-IOMMU device (vfio_register_emulated_iommu_dev)
// named KVM_GATED_MDEV_UUID in a VFIO group of its own, with a fresh IOMMU group id. The
// device answers GET_INFO (no regions, no irqs) and nothing else.

import { EINVAL, ENOTTY, ESRCH } from "../../uapi/errno.js";
import * as V from "../../uapi/vfio.js";
import type { Kernel } from "../../kernel/kernel.js";
import type { Module, ModuleDef } from "../../kernel/module.js";
import type { Mutex } from "../../kernel/locks.js";
import { type KGen, runToEnd } from "../../kernel/sched.js";
import { vfioRegisterGroupDev, vfioUnregisterGroupDev } from "../group.js";
import { copyStructIn, copyStructOut } from "../uaccess.js";
import { vfioDeviceCdevAdd, vfioDeviceCdevDel } from "../device_cdev.js";
import { VfioCore, VfioDevice, type VfioDeviceOps } from "../vfio_main.js";

export const KVM_GATED_MDEV_UUID = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";

/** What the test driver saw: opens that succeeded and the kvm each one found. */
export interface KvmGatedState {
  opens: unknown[];
  closes: number;
}

const ops: VfioDeviceOps = {
  name: "kvm-gated-mdev",
  // like vfio_ap_mdev_set_kvm() (drivers/s390/crypto/vfio_ap_ops.c), the open takes
  // kvm->lock of the VM it was given: group_lock -> kvm->lock, the order 2b48f52f2bff keeps
  *open_device(vdev) {
    if (vdev.kvm === null) return -ESRCH;
    const lock = (vdev.kvm as { lock?: Mutex }).lock;
    if (lock) yield* lock.lock();
    (vdev.priv as KvmGatedState).opens.push(vdev.kvm);
    lock?.unlock();
    return 0;
  },
  close_device(vdev) {
    (vdev.priv as KvmGatedState).closes++;
  },
  ioctl(vdev, cmd, arg) {
    if (cmd !== V.VFIO_DEVICE_GET_INFO) return -ENOTTY;
    const minsz = V.vfio_device_info.offsetOfEnd("num_irqs");
    const info = copyStructIn(vdev.k, V.vfio_device_info, arg, minsz);
    if (typeof info === "number") return info;
    if (info.argsz < minsz) return -EINVAL;
    return copyStructOut(
      vdev.k,
      V.vfio_device_info,
      arg,
      { ...info, flags: V.VFIO_DEVICE_FLAGS_PCI, num_regions: 0, num_irqs: 0 },
      minsz,
    );
  },
};

export const kvmGatedMdevModule: ModuleDef = {
  name: "vfio_kvm_gated_mdev",
  requires: ["vfio"],
  init(k, m) {
    const core = VfioCore.of(k)!;
    const vdev = new VfioDevice(k, KVM_GATED_MDEV_UUID, ops, m, null);
    const st: KvmGatedState = { opens: [], closes: 0 };
    vdev.priv = st;
    const rc = vfioRegisterGroupDev(core, vdev, "emulated");
    if (rc < 0) {
      vdev.put("init");
      return rc;
    }
    k.sysfs.link(
      `/sys/bus/mdev/devices/${KVM_GATED_MDEV_UUID}/iommu_group`,
      `../../../../kernel/iommu_groups/${vdev.group.id}`,
    );
    // every VFIO device has a cdev (vfio_device_add() with CONFIG_VFIO_DEVICE_CDEV)
    vdev.cdevIndex = core.allocCdevIndex();
    k.sysfs.file(
      `/sys/bus/mdev/devices/${KVM_GATED_MDEV_UUID}/vfio-dev/vfio${vdev.cdevIndex}/dev`,
      `511:${vdev.cdevIndex}\n`,
    );
    vfioDeviceCdevAdd(core, vdev);
    m.export("__kvm_gated_mdev", vdev);
    return 0;
  },
  exit(k, m) {
    runToEnd(k, exitPath(k, m, false));
  },
  // delete_module as a path (the explorer interleaves it): the mdev's remove unregisters it,
  // waiting for the device's users as vfio_unregister_group_dev() does
  exitPath: (k, m) => exitPath(k, m, true),
};

function* exitPath(k: Kernel, m: Module, wait: boolean): KGen<void> {
  const vdev = m.exports.get("__kvm_gated_mdev") as VfioDevice;
  vfioDeviceCdevDel(VfioCore.of(k)!, vdev);
  VfioCore.of(k)!.freeCdevIndex(vdev.cdevIndex);
  k.sysfs.remove(`/sys/bus/mdev/devices/${KVM_GATED_MDEV_UUID}`);
  yield* vfioUnregisterGroupDev(VfioCore.of(k)!, vdev, wait);
}
