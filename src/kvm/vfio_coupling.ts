// How the KVM-VFIO pseudo-device (./vfio.ts) reaches VFIO: one interface, three designs,
// chosen when the twin is built (TwinConfig.coupling). kvm never imports vfio and vfio
// never imports kvm; the contract between them is src/kernel/vfio_kvm.ts.
//
//  symbol-get  before the 2022 series (virt/kvm/vfio.c in 5.17): one symbol_get/symbol_put
//              around every call, to vfio_group_get_external_user, _put_external_user,
//              vfio_external_group_match_file, vfio_external_check_extension,
//              vfio_external_user_iommu_id and vfio_group_set_kvm. KVM keeps a VFIO
//              handle (the group), not the file.
//  file-ops    the series' proposal ("vfio: Use a struct of function pointers instead of a
//              many symbol_get()'s"): one symbol_get of vfio_file_get_ops, which validates the
//              file and returns an ops table; KVM keeps the file and the table and holds a
//              reference on the table's module for as long as it keeps them.
//  upstream    virt/kvm/vfio.c in 6.12. It resembles symbol-get in how it reaches VFIO (one
//              symbol_get/put per call, by name: vfio_file_is_valid, vfio_file_set_kvm,
//              vfio_file_enforced_coherent, vfio_file_iommu_group) and file-ops in what it
//              keeps (the struct file itself, with get_file(); KVM never looks inside it). The
//              ops table was dropped when the series was merged (v5.19): the file-based
//              functions made the table unnecessary, and the module stays pinned without an
//              explicit module reference because the held file pins its fops owner.
// The uAPI is the same in all three (test/kvm runs one table under each); what differs is
// which symbols are resolved how often, which module pins exist, and the holders of files.

import type { File } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import { isGen, type KGen, type KRet, runToEnd } from "../kernel/sched.js";
import {
  VFIO_DMA_CC_IOMMU,
  type VfioExternalUser,
  type VfioExternalUserExports,
  type VfioFileExports,
  type VfioFileOps,
  type VfioFileOpsExports,
  type VfioPasidExports,
} from "../kernel/vfio_kvm.js";

export type CouplingDesign = "symbol-get" | "file-ops" | "upstream";
export const COUPLING_DESIGNS: readonly CouplingDesign[] = ["symbol-get", "file-ops", "upstream"];

/** What KVM keeps for one added VFIO file. Opaque to the pseudo-device except `file`, which
 * is the file userspace passed (for reports; the designs decide how entries are matched). */
export interface VfioFileRef {
  readonly file: File;
}

export interface VfioCoupling {
  readonly design: CouplingDesign;
  /** Validate `file` as a VFIO file and take KVM's hold on it; null when it is not one
   * (or VFIO is not loaded): the caller answers EINVAL. `holder` names the hold. */
  get(file: File, holder: string): VfioFileRef | null;
  /** Drop what get() took. */
  put(ref: VfioFileRef): void;
  /** Do two entries name the same VFIO object (the EEXIST test on add)? */
  same(a: VfioFileRef, b: VfioFileRef): boolean;
  /** Is this entry the file userspace names (the lookup on delete)? */
  matches(ref: VfioFileRef, file: File): boolean;
  /** may sleep (a path) when VFIO takes a sleeping lock in it (a broken variant) */
  setKvm(ref: VfioFileRef, kvm: unknown): KRet<void>;
  /** what is wrong with an entry KVM keeps (file-ops: the table's module pin) */
  violations?(ref: VfioFileRef): string[];
  /** Does the IOMMU behind the file enforce cache-coherent DMA? false when unknown. */
  enforcedCoherent(ref: VfioFileRef): boolean;
  /** The IOMMU group (SPAPR TCE only: not compiled on x86, so the x86 device never asks). */
  iommuGroup(ref: VfioFileRef): unknown;
}

/** Call a symbol's function between symbol_get and symbol_put; `dflt` when it is absent. */
function viaSymbol<F extends (...a: any[]) => any, R>(k: Kernel, name: string, dflt: R, use: (fn: F) => R): R {
  const fn = k.modules.symbolGet<F>(name);
  if (!fn) return dflt;
  try {
    return use(fn);
  } finally {
    k.modules.symbolPut(name);
  }
}

/** Drive a path, then symbol_put the symbol it was reached by. */
function* putAfter(k: Kernel, name: string, r: KGen<void>): KGen<void> {
  try {
    yield* r;
  } finally {
    k.modules.symbolPut(name);
  }
}

// --- upstream (6.12) ---------------------------------------------------------------------

interface HeldFile extends VfioFileRef {
  readonly holder: string;
}

/** virt/kvm/vfio.c (6.12): kvm_vfio_file_is_valid(), kvm_vfio_file_set_kvm(), ... */
class UpstreamCoupling implements VfioCoupling {
  readonly design = "upstream" as const;
  constructor(private readonly k: Kernel) {}

  private call<N extends keyof VfioFileExports, R>(name: N, dflt: R, use: (fn: VfioFileExports[N]) => R): R {
    return viaSymbol<VfioFileExports[N], R>(this.k, name, dflt, use);
  }

  get(file: File, holder: string): HeldFile | null {
    if (!this.call("vfio_file_is_valid", false, (fn) => fn(file))) return null;
    file.get(holder); // get_file()
    return { file, holder };
  }
  put(ref: VfioFileRef): void {
    const r = ref as HeldFile;
    r.file.put(r.holder);
  }
  same(a: VfioFileRef, b: VfioFileRef): boolean {
    return a.file === b.file;
  }
  matches(ref: VfioFileRef, file: File): boolean {
    return ref.file === file;
  }
  setKvm(ref: VfioFileRef, kvm: unknown): KRet<void> {
    // symbol_put only once the call is over, also when it sleeps
    const fn = this.k.modules.symbolGet<VfioFileExports["vfio_file_set_kvm"]>("vfio_file_set_kvm");
    if (!fn) return;
    let r: KRet<void>;
    try {
      r = fn(ref.file, kvm);
    } catch (e) {
      this.k.modules.symbolPut("vfio_file_set_kvm");
      throw e;
    }
    if (!isGen(r)) {
      this.k.modules.symbolPut("vfio_file_set_kvm");
      return;
    }
    return putAfter(this.k, "vfio_file_set_kvm", r);
  }
  enforcedCoherent(ref: VfioFileRef): boolean {
    return this.call("vfio_file_enforced_coherent", false, (fn) => fn(ref.file));
  }
  iommuGroup(ref: VfioFileRef): unknown {
    return this.call("vfio_file_iommu_group", null, (fn) => fn(ref.file));
  }
}

// --- symbol-get (before the series) ------------------------------------------------------

interface GroupHandle extends VfioFileRef {
  readonly handle: VfioExternalUser;
}

/** virt/kvm/vfio.c (5.17): kvm_vfio_group_get_external_user(), kvm_vfio_group_set_kvm(), ... */
class SymbolGetCoupling implements VfioCoupling {
  readonly design = "symbol-get" as const;
  constructor(private readonly k: Kernel) {}

  private call<N extends keyof VfioExternalUserExports, R>(
    name: N,
    dflt: R,
    use: (fn: VfioExternalUserExports[N]) => R,
  ): R {
    return viaSymbol<VfioExternalUserExports[N], R>(this.k, name, dflt, use);
  }

  get(file: File): GroupHandle | null {
    // an absent symbol was ERR_PTR(-EINVAL), as a non-group file
    const h = this.call("vfio_group_get_external_user", -1 as VfioExternalUser | number, (fn) => fn(file));
    return typeof h === "number" ? null : { file, handle: h };
  }
  put(ref: VfioFileRef): void {
    this.call("vfio_group_put_external_user", undefined, (fn) => fn((ref as GroupHandle).handle));
  }
  same(a: VfioFileRef, b: VfioFileRef): boolean {
    return (a as GroupHandle).handle === (b as GroupHandle).handle; // kvg->vfio_group == vfio_group
  }
  matches(ref: VfioFileRef, file: File): boolean {
    return this.call("vfio_external_group_match_file", false, (fn) => fn((ref as GroupHandle).handle, file));
  }
  setKvm(ref: VfioFileRef, kvm: unknown): void {
    // the pre-2022 design did not sleep here: a path returned is driven at once
    this.call("vfio_group_set_kvm", undefined, (fn) => {
      const r = fn((ref as GroupHandle).handle, kvm);
      runToEnd(this.k, r);
    });
  }
  enforcedCoherent(ref: VfioFileRef): boolean {
    const h = (ref as GroupHandle).handle;
    return this.call("vfio_external_check_extension", 0, (fn) => fn(h, VFIO_DMA_CC_IOMMU)) > 0;
  }
  iommuGroup(ref: VfioFileRef): unknown {
    const id = this.call("vfio_external_user_iommu_id", -1, (fn) => fn((ref as GroupHandle).handle));
    return id < 0 ? null : { id };
  }
}

// --- file-ops (the proposal) -------------------------------------------------------------

interface FileWithOps extends HeldFile {
  readonly ops: VfioFileOps;
  readonly pin: string;
}

/** The proposal: kvm_vfio_file_add() -> vfio_file_get_ops(filp), then ops->... only. */
class FileOpsCoupling implements VfioCoupling {
  readonly design = "file-ops" as const;
  constructor(private readonly k: Kernel) {}

  get(file: File, holder: string): FileWithOps | null {
    const ops = viaSymbol<VfioFileOpsExports["vfio_file_get_ops"], VfioFileOps | null>(
      this.k,
      "vfio_file_get_ops",
      null,
      (fn) => fn(file),
    );
    if (!ops) return null;
    const pin = `${holder}: vfio_file_ops`;
    // broken variant "kvm-ops-no-module-pin": the 2022 thread's concern, KVM keeps the
    // table (and calls through it) without pinning the module the functions live in
    const noPin = this.k.broken.has("kvm-ops-no-module-pin");
    if (!noPin && !this.k.modules.tryGet(ops.owner, pin)) return null; // the module is going away
    file.get(holder);
    return { file, holder, ops, pin };
  }
  put(ref: VfioFileRef): void {
    const r = ref as FileWithOps;
    r.file.put(r.holder);
    if (!this.k.broken.has("kvm-ops-no-module-pin")) this.k.modules.put(r.ops.owner, r.pin);
  }
  same(a: VfioFileRef, b: VfioFileRef): boolean {
    return a.file === b.file;
  }
  matches(ref: VfioFileRef, file: File): boolean {
    return ref.file === file;
  }
  setKvm(ref: VfioFileRef, kvm: unknown): KRet<void> {
    const ops = (ref as FileWithOps).ops;
    if (ops.owner.state === "unloaded")
      throw this.k.bug("module", `kvm-vfio calls vfio_file_ops.set_kvm of unloaded module ${ops.owner.name}`);
    return ops.set_kvm(ref.file, kvm);
  }
  violations(ref: VfioFileRef): string[] {
    const r = ref as FileWithOps;
    return r.ops.owner.pins.get(r.pin)
      ? []
      : [`${r.holder} keeps the vfio_file_ops of ${r.ops.owner.name} without a module pin ("${r.pin}")`];
  }
  enforcedCoherent(ref: VfioFileRef): boolean {
    return (ref as FileWithOps).ops.enforced_coherent(ref.file);
  }
  iommuGroup(ref: VfioFileRef): unknown {
    return (ref as FileWithOps).ops.iommu_group(ref.file);
  }
}

export function createVfioCoupling(k: Kernel, design: CouplingDesign): VfioCoupling {
  switch (design) {
    case "symbol-get":
      return new SymbolGetCoupling(k);
    case "file-ops":
      return new FileOpsCoupling(k);
    case "upstream":
      return new UpstreamCoupling(k);
  }
}

/**
 * The "vfio-translate" PASID design (./enqcmd.ts, a proposal): ask VFIO, by symbol_get of
 * vfio_file_pasid_translate as every design here reaches VFIO, which host PASID backs `pasid`
 * of the device `file` bound to `iommufd`; -EINVAL when VFIO is not loaded.
 */
export function vfioPasidTranslate(k: Kernel, file: File, iommufd: File, pasid: number): number {
  return viaSymbol<VfioPasidExports["vfio_file_pasid_translate"], number>(k, "vfio_file_pasid_translate", -22, (fn) =>
    fn(file, iommufd, pasid),
  );
}
