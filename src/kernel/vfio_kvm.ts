// The declarations KVM and VFIO share without linking against each other (what
// include/linux/vfio.h and include/linux/kvm_host.h are to virt/kvm/vfio.c and
// drivers/vfio/). Neither module imports the other: each finds the other's functions only
// by symbol_get() of the names below, and KVM knows VFIO's objects only as struct file.
// The kvm and vfio arguments are opaque (`unknown`) on the side that does not own them.

import type { File } from "./fs.js";
import type { Module } from "./module.js";
import type { KRet } from "./sched.js";

/** The five file-based entry points VFIO exports in 6.12 (drivers/vfio/group.c, vfio_main.c). */
export interface VfioFileExports {
  vfio_file_is_valid(file: File): boolean;
  vfio_file_enforced_coherent(file: File): boolean;
  /** a path: only a broken variant sleeps in it (src/check/variants.ts) */
  vfio_file_set_kvm(file: File, kvm: unknown): KRet<void>;
  vfio_file_iommu_group(file: File): unknown;
  vfio_file_is_group(file: File): boolean;
}

/** What KVM exports for VFIO (virt/kvm/kvm_main.c), reached by symbol_get from vfio_main.c. */
export interface KvmRefExports {
  kvm_get_kvm_safe(kvm: unknown): boolean;
  kvm_put_kvm(kvm: unknown): void;
}

// --- design "symbol-get": the pre-2022 external-user API, one symbol per entry point ---

/** The handle vfio_group_get_external_user() returned (a struct vfio_group * in 5.17). */
export interface VfioExternalUser {
  readonly kind: "vfio-external-user";
}

export const VFIO_DMA_CC_IOMMU = 4;

export interface VfioExternalUserExports {
  /** a handle, or a negative errno (ERR_PTR) */
  vfio_group_get_external_user(file: File): VfioExternalUser | number;
  vfio_group_put_external_user(h: VfioExternalUser): void;
  vfio_external_group_match_file(h: VfioExternalUser, file: File): boolean;
  /** > 0 when the extension is present (VFIO_DMA_CC_IOMMU: coherent DMA enforced) */
  vfio_external_check_extension(h: VfioExternalUser, ext: number): number;
  /** the IOMMU group id, or a negative errno */
  vfio_external_user_iommu_id(h: VfioExternalUser): number;
  vfio_group_set_kvm(h: VfioExternalUser, kvm: unknown): KRet<void>;
}

// --- design "file-ops": the 2022 proposal, one symbol returning an ops table ---

/** struct vfio_file_ops as proposed with vfio_file_get_ops(). */
export interface VfioFileOps {
  /** the module the functions live in: a holder of the table pins it */
  readonly owner: Module;
  is_valid(file: File): boolean;
  enforced_coherent(file: File): boolean;
  set_kvm(file: File, kvm: unknown): KRet<void>;
  iommu_group(file: File): unknown;
}

export interface VfioFileOpsExports {
  /** the ops table for a VFIO file, null for any other file */
  vfio_file_get_ops(file: File): VfioFileOps | null;
}

// --- PASID design "vfio-translate" (the twin's proposal, docs/pasid.md) ---

export interface VfioPasidExports {
  /** the host PASID behind `pasid` of the device cdev `file` bound to the iommufd `iommufd`,
   * or a negative errno (EINVAL not such a pair, ENOENT not attached, EOPNOTSUPP no uAPI) */
  vfio_file_pasid_translate(file: File, iommufd: File, pasid: number): number;
}
