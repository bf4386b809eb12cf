// Broken variants: real bugs these subsystems had, each put back into the twin by one small
// switch (Kernel.broken, TwinConfig.broken) at the place the kernel's fix went. Each names the
// commit that fixed it (or the discussion that raised it), the world in which it shows, the
// coupling design it needs, and a budget of executions within which the explorer finds it.
// test/check/variants.test.ts proves each is found within its budget, from the library and
// the CLI, and that the correct model passes the same budget clean. docs/explorer.md has the
// story of each.

import type { CouplingDesign } from "../kvm/vfio_coupling.js";

export interface Variant {
  readonly name: string;
  /** the fixing commit (12 hex digits), or where the concern was raised */
  readonly fix: string;
  readonly summary: string;
  /** the switches (Kernel.broken) it turns on: itself, plus the code of its time */
  readonly broken: readonly string[];
  /** the world of ./worlds.ts where it shows */
  readonly world: string;
  readonly design?: CouplingDesign;
  /** executions of the default (DPOR) search within which it must be found */
  readonly budget: number;
  /** the check that reports it */
  readonly detector: string;
}

export const VARIANTS: readonly Variant[] = [
  {
    name: "kvm-vfio-destroy-op",
    fix: "51cdc8bc120e",
    summary:
      "KVM-VFIO torn down by .destroy at VM destruction, so the last VM put (VFIO's, under group_lock) re-enters set_kvm, which takes group_lock: self-deadlock",
    broken: ["kvm-vfio-destroy-op", "set-kvm-group-lock"],
    world: "kvm-device-close",
    budget: 20,
    detector: "deadlock",
  },
  {
    name: "set-kvm-group-lock",
    fix: "2b48f52f2bff",
    summary:
      "set_kvm takes group_lock under kvm->lock while a driver's open_device takes kvm->lock under group_lock: ABBA",
    broken: ["set-kvm-group-lock"],
    world: "mdev-open-vs-kvm-release",
    budget: 20,
    detector: "lockdep",
  },
  {
    name: "device-put-outside-list-lock",
    fix: "90b1253e4139",
    summary:
      "the last vfio_device put is outside device_lock and the release relinks under it: a lookup finds the freed device",
    broken: ["device-put-outside-list-lock"],
    world: "unbind-vs-get-device-fd",
    budget: 50,
    detector: "use-after-free (poisoned field)",
  },
  {
    name: "iommufd-shortterm-put-early",
    fix: "6f9c4d8c468c",
    summary:
      "IOMMU_DESTROY does not wait for short-term users (no shortterm_users): it frees an IOAS whose IOAS_MAP has dropped users and not finished its put",
    broken: ["iommufd-shortterm-put-early"],
    world: "iommufd-map-vs-destroy",
    budget: 20,
    detector: "use-after-free (poisoned field)",
  },
  {
    name: "iommufd-unmap-area-after-unlock",
    fix: "804ca14d04df",
    summary:
      "IOAS_UNMAP reads the area's range after dropping the IOAS locks to have an access unpin it; a racing unmap has freed it",
    broken: ["iommufd-unmap-area-after-unlock"],
    world: "iommufd-unmap-vs-unmap-access",
    // the correct model needs 1,732 executions to complete this world (found in 11)
    budget: 2000,
    detector: "use-after-free (poisoned iopt_area)",
  },
  {
    name: "iommufd-auto-domain-unlock-early",
    fix: "31422dff187b",
    summary:
      "the automatic HWPT's ioas->mutex is dropped before iommufd_object_finalize(): a concurrent attach to the same IOAS takes the HWPT off hwpt_list while its creator may still abort it",
    broken: ["iommufd-auto-domain-unlock-early"],
    world: "iommufd-two-attach-auto-domain",
    // a search to completion takes 54 executions with the snapshot (the object table's
    // reads and writes are in footprints since issue 15); the violation comes in 2
    budget: 60,
    detector: "iommufd (an object reached before its creator finalized it)",
  },
  {
    name: "pasid-translation-not-revoked",
    fix: "none upstream (the twin's process-table rule for guest PASIDs, docs/pasid.md)",
    summary: "a PASID detach does not revoke KVM's guest translation to it: the guest keeps a PASID its process lost",
    broken: ["pasid-translation-not-revoked"],
    world: "pasid-detach-vs-link",
    budget: 20,
    detector: "pasid-reach",
  },
  {
    name: "kvm-ops-no-module-pin",
    fix: "2022 thread 'vfio: Use a struct of function pointers instead of a many symbol_get()'s'",
    summary: "KVM keeps VFIO's ops table (file-ops design) without pinning the module the functions live in",
    broken: ["kvm-ops-no-module-pin"],
    world: "kvm-file-add-close",
    design: "file-ops",
    budget: 20,
    detector: "kvm (module pin of kept ops)",
  },
  {
    name: "file-del-no-fput",
    fix: "none upstream (a plausible slip: KVM_DEV_VFIO_FILE_DEL unlinks the entry, forgets its fput)",
    summary: "FILE_DEL removes the file from KVM's list but keeps its reference: self-consistent counts, a leak",
    broken: ["file-del-no-fput"],
    world: "kvm-file-add-del",
    budget: 20,
    detector: "holder-not-in-owner (the kvm-vfio file list)",
  },
  {
    name: "dma-after-detach",
    fix: "none upstream (the rule of iommufd_hw_pagetable_detach(): a detached owned group goes to the blocking domain)",
    summary: "DETACH_IOMMUFD_PT leaves the group in the HWPT's domain: the device's DMA still reaches memory",
    broken: ["dma-after-detach"],
    world: "iommufd-attach-detach",
    // the correct model completes this world in 68 executions
    budget: 80,
    detector: "iommufd (DMA not blocked)",
  },
  {
    name: "unmap-no-unpin",
    fix: "none upstream (vfio_unmap_unpin() without the unpin)",
    summary: "UNMAP_DMA frees the mapping but leaves its pages pinned and charged to locked_vm",
    broken: ["unmap-no-unpin"],
    world: "type1-map-unmap",
    budget: 20,
    detector: "vfio_iommu_type1 (locked_vm = live mappings)",
  },
  {
    name: "iommufd-unmap-leaves-iopte",
    fix: "none upstream (model-only: an iommu_unmap() length one page short in iommufd's area unmap)",
    summary:
      "IOAS_UNMAP unpins the area's pages but the last IOPTE survives: the device's DMA still reaches a page its owner let go",
    broken: ["iommufd-unmap-leaves-iopte"],
    world: "iommufd-unmap-vs-dma",
    budget: 20,
    detector: "dma-reach (per-DMA check)",
  },
];

export function variantByName(name: string): Variant | null {
  return VARIANTS.find((v) => v.name === name) ?? null;
}

/** One line per variant, its name first and the fixing commit on the same line. */
export function listVariants(): string {
  return VARIANTS.map((v) => `${v.name.padEnd(30)} ${v.fix}  (${v.world}) ${v.summary}`).join("\n");
}
