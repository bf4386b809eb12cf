// The functions KVM's VFIO pseudo-device (virt/kvm/vfio.c) reaches through symbol_get, as
// the vfio module exports them on 6.12 (drivers/vfio/vfio_main.c, group.c). KVM never
// imports this file: the vfio module exports each with m.export(name, fn).
//
//   vfio_file_is_valid(file)            a VFIO group file or device file
//   vfio_file_enforced_coherent(file)   every device can enforce cache coherency
//   vfio_file_set_kvm(file, kvm|null)   records the opaque kvm in the group / device file
//   vfio_file_iommu_group(file)         null: CONFIG_SPAPR_TCE_IOMMU is off on x86
//   vfio_file_is_group(file)

import type { File } from "../kernel/fs.js";
import type { KGen, KRet } from "../kernel/sched.js";
import { pasidConfig } from "../kernel/pasid.js";
import type { VfioPasidExports } from "../kernel/vfio_kvm.js";
import { EINVAL, EOPNOTSUPP } from "../uapi/errno.js";
import { vfioIommufdPasidTranslate } from "./iommufd.js";
import { groupFromFile, type VfioGroup } from "./group.js";
import type { VfioCore } from "./vfio_main.js";

export interface VfioKvmApi {
  vfio_file_is_valid(file: File): boolean;
  vfio_file_enforced_coherent(file: File): boolean;
  vfio_file_set_kvm(file: File, kvm: unknown | null): KRet<void>;
  vfio_file_iommu_group(file: File): unknown | null;
  vfio_file_is_group(file: File): boolean;
}

export function makeVfioKvmApi(core: VfioCore): VfioKvmApi {
  return {
    // vfio_file_is_valid()
    vfio_file_is_valid: (file) => groupFromFile(file) !== null || core.deviceFileOf(file) !== null,
    // vfio_file_enforced_coherent()
    vfio_file_enforced_coherent(file) {
      const g = groupFromFile(file);
      if (g) return g.enforcedCoherent();
      const df = core.deviceFileOf(file);
      if (df) return df.device.iommuDev ? df.device.iommuDev.capable("cache-coherency") : false;
      return true;
    },
    // vfio_file_set_kvm(): group->kvm under the group's kvm_ref_lock spinlock (since
    // 2b48f52f2bff: KVM calls this with kvm->lock held, and drivers take kvm->lock in
    // open_device under group_lock), or the device file's kvm for the cdev path
    vfio_file_set_kvm(file, kvm) {
      const g = groupFromFile(file);
      if (g && core.k.broken.has("set-kvm-group-lock")) return setKvmUnderGroupLock(g, kvm);
      if (g) {
        g.kvmRefLock.lock();
        g.kvm = kvm ?? null;
        g.kvmRefLock.unlock();
      }
      const df = core.deviceFileOf(file);
      if (df) df.kvm = kvm ?? null;
    },
    // vfio_file_iommu_group(): SPAPR only
    vfio_file_iommu_group: () => null,
    vfio_file_is_group: (file) => groupFromFile(file) !== null,
  };
}

/** Broken variant "set-kvm-group-lock": vfio_group_set_kvm() before 2b48f52f2bff, which took
 * group_lock (kvm->lock -> group_lock, against open_device's group_lock -> kvm->lock). */
function* setKvmUnderGroupLock(g: VfioGroup, kvm: unknown): KGen<void> {
  yield* g.groupLock.lock();
  g.kvm = kvm ?? null;
  g.groupLock.unlock();
}

/** The "vfio-translate" design's export (a proposal): see vfioIommufdPasidTranslate(). */
export function makeVfioPasidApi(core: VfioCore): VfioPasidExports {
  return {
    vfio_file_pasid_translate(file, iommufd, pasid) {
      if (!pasidConfig(core.k).uapi) return -EOPNOTSUPP;
      const df = core.deviceFileOf(file);
      if (!df || !df.accessGranted || df.group) return -EINVAL;
      return vfioIommufdPasidTranslate(df.device, df.iommufd, iommufd, pasid);
    },
  };
}
