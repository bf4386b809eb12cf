// VFIO's side of the KVM coupling for the two designs the twin can be built with besides
// today's (see src/kvm/vfio_coupling.ts): the pre-2022 external-user API and the 2022
// proposal's vfio_file_get_ops(). Both are written over the five 6.12 exports
// (vfio_file_is_valid, _enforced_coherent, _set_kvm, _iommu_group, _is_group), which the
// module's init must have exported before it calls exportKvmCoupling(). Exporting them is
// harmless under the upstream design: KVM simply never asks for them.

import type { File } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import type { Module } from "../kernel/module.js";
import { EINVAL } from "../uapi/errno.js";
import {
  VFIO_DMA_CC_IOMMU,
  type VfioExternalUser,
  type VfioExternalUserExports,
  type VfioFileExports,
  type VfioFileOps,
  type VfioFileOpsExports,
} from "../kernel/vfio_kvm.js";
import { SideTable } from "../kernel/side_table.js";

/**
 * The external user of 5.17 (drivers/vfio/vfio.c: vfio_group_get_external_user()) was the
 * struct vfio_group itself, with a group reference and a container user taken. Here it is a
 * handle per VFIO file (so device fds, unknown to that API, are accepted with 6.12's results)
 * that keeps the file referenced: the five file-based functions are all this side has to
 * reach the group through. One handle per file while referenced, so handles compare as the
 * group pointers did.
 */
class ExternalUser implements VfioExternalUser {
  readonly kind = "vfio-external-user" as const;
  users = 0;
  constructor(readonly file: File) {}
}

const HOLDER = "vfio external user";

/** Export the extra coupling symbols from the vfio module `m` (call from its init). */
export function exportKvmCoupling(k: Kernel, m: Module): void {
  const base = (name: keyof VfioFileExports) => {
    const fn = m.exports.get(name);
    if (typeof fn !== "function") throw new Error(`vfio: ${name} must be exported before the KVM coupling`);
    return fn as VfioFileExports[typeof name];
  };
  const isValid = base("vfio_file_is_valid") as VfioFileExports["vfio_file_is_valid"];
  const coherent = base("vfio_file_enforced_coherent") as VfioFileExports["vfio_file_enforced_coherent"];
  const setKvm = base("vfio_file_set_kvm") as VfioFileExports["vfio_file_set_kvm"];
  const iommuGroup = base("vfio_file_iommu_group") as VfioFileExports["vfio_file_iommu_group"];

  // listed under the kernel: KVM may keep these functions after the module is gone
  const handles = new SideTable<File, ExternalUser>(k);
  const own = (h: VfioExternalUser): ExternalUser => {
    if (!(h instanceof ExternalUser) || h.users === 0) throw m.k.bug("vfio", "stale or foreign external-user handle");
    return h;
  };
  const ext: VfioExternalUserExports = {
    vfio_group_get_external_user(file) {
      if (!isValid(file)) return -EINVAL;
      let h = handles.get(file);
      if (!h || h.users === 0) handles.set(file, (h = new ExternalUser(file)));
      h.users++;
      file.get(HOLDER);
      return h;
    },
    vfio_group_put_external_user(h) {
      const e = own(h);
      e.users--;
      e.file.put(HOLDER);
    },
    vfio_external_group_match_file: (h, file) => own(h).file === file,
    vfio_external_check_extension(h, ext) {
      // vfio_external_check_extension() -> the container's VFIO_CHECK_EXTENSION
      if (ext !== VFIO_DMA_CC_IOMMU) return 0;
      return coherent(own(h).file) ? 1 : 0;
    },
    vfio_external_user_iommu_id(h) {
      const g = iommuGroup(own(h).file) as { id?: number } | null;
      return typeof g?.id === "number" ? g.id : -EINVAL;
    },
    vfio_group_set_kvm: (h, kvm) => setKvm(own(h).file, kvm),
  };
  for (const [name, fn] of Object.entries(ext)) m.export(name, fn);

  const ops: VfioFileOps = {
    owner: m,
    is_valid: isValid,
    enforced_coherent: coherent,
    set_kvm: setKvm,
    iommu_group: iommuGroup,
  };
  const getOps: VfioFileOpsExports = {
    vfio_file_get_ops: (file) => (isValid(file) ? ops : null),
  };
  m.export("vfio_file_get_ops", getOps.vfio_file_get_ops);
}
