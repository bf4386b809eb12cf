// ENQCMD in a guest (docs/pasid.md). A guest's ENQCMD carries the guest's PASID (vPASID, its
// IA32_PASID); the CPU translates it through a PASID translation table KVM programs (Intel's
// VMCS PASID directory: one table per VM here, which every vCPU uses) and sends the
// descriptor with the host PASID (pPASID). A vPASID without a translation exits to KVM.
//
// THE TWIN'S PROPOSALS, not Linux uAPI:
// - KVM_TWIN_SET_PASID_TRANSLATION, a VM ioctl, _IOW(KVMIO, 0xf0, 24): number 0xf0 of
//   KVMIO is in the range 0xf0-0xff the twin keeps for its own proposals (Linux 6.12 uses
//   none of it). It is not in the uAPI registry (src/uapi/ioctls.ts): traces and the fuzzer
//   see Linux's ioctls only. It exists only on a kernel with the PASID uAPI.
//     struct kvm_twin_pasid_translation { u32 flags; u32 vpasid; u32 ppasid; s32 vfio_fd;
//                                         s32 iommufd; u32 pad; }
//   flags 0 links vpasid -> a host PASID (EEXIST when vpasid is linked), KVM_TWIN_PASID_CLEAR
//   removes the link (ENOENT when there is none).
// - How KVM decides, by design (TwinConfig.pasidDesign, src/kernel/pasid.ts):
//   "process-table": only to `ppasid` when it is in the VM owner's ENQCMD authorization table
//     (EPERM otherwise; vfio_fd and iommufd must be -1); KVM subscribes to the tables'
//     shrinking and revokes (kvmRevokePasidTranslations) what no longer holds.
//   "vfio-translate": KVM asks the VFIO device file `vfio_fd`, given the iommufd `iommufd`,
//     for the host PASID behind `ppasid` (through the coupling, src/kvm/vfio_coupling.ts)
//     and installs the answer; nothing is revoked later.
// - A vCPU's ENQCMD (KvmVcpu.enqcmd, the twin's API for a guest instruction): guest physical
//   addresses go through the VM's memory slots to the owner's address space.

import { EEXIST, EFAULT, EINVAL, ENOENT, ENOTTY, EPERM, EBADF } from "../uapi/errno.js";
import { _IOW, KVMIO } from "../uapi/ioctl.js";
import { defineStruct } from "../uapi/struct.js";
import { enqcmd, type EnqcmdStatus } from "../kernel/enqcmd.js";
import type { Kernel } from "../kernel/kernel.js";
import { onPasidShrink, pasidAuthorized, pasidConfig, PASID_MAX } from "../kernel/pasid.js";
import type { Process } from "../kernel/process.js";
import type { Kvm } from "./kvm.js";
import { vfioPasidTranslate } from "./vfio_coupling.js";
import { SideTable } from "../kernel/side_table.js";

export const kvm_twin_pasid_translation = defineStruct("kvm_twin_pasid_translation", [
  ["flags", "u32"],
  ["vpasid", "u32"],
  ["ppasid", "u32"],
  ["vfio_fd", "s32"],
  ["iommufd", "s32"],
  ["pad", "u32"],
] as const);
export const KVM_TWIN_PASID_CLEAR = 1;
export const KVM_TWIN_SET_PASID_TRANSLATION = _IOW(KVMIO, 0xf0, kvm_twin_pasid_translation.size);

/** The VM's PASID translation table and what it counted. */
export class KvmPasidTable {
  /** vPASID -> pPASID */
  readonly map = new Map<number, number>();
  /** ENQCMD exits for untranslated vPASIDs */
  exits = 0;
  /** translations revoked because the owner lost the PASID */
  revoked = 0;
}

const tables = new SideTable<Kvm, KvmPasidTable>();

export function kvmPasidTable(kvm: Kvm): KvmPasidTable {
  let t = tables.get(kvm);
  if (!t) tables.set(kvm, (t = new KvmPasidTable()));
  return t;
}

/** The process running the VM: the live one whose address space is kvm->mm. */
export function kvmOwner(kvm: Kvm): Process | null {
  for (const p of kvm.k.processes.values()) if (p.mm === kvm.mm && !p.exited) return p;
  return null;
}

/**
 * THE REVOCATION, in one place: drop the VM's translations to `ppasid` (every one when
 * null). The "process-table" design calls it when the owner's table shrinks; the explorer's
 * "translation not revoked" variant replaces it. Returns how many went.
 */
export function kvmRevokePasidTranslations(kvm: Kvm, ppasid: number | null): number {
  const t = tables.get(kvm);
  if (!t) return 0;
  let n = 0;
  for (const [v, p] of [...t.map]) {
    if (ppasid !== null && p !== ppasid) continue;
    t.map.delete(v);
    n++;
  }
  t.revoked += n;
  const k = kvm.k;
  if (n && k.trace.enabled)
    k.trace.twinEvent(0, k.clock.now, "kvm_pasid_revoke", [`vm ${kvm.id}`, String(ppasid ?? "all")], n);
  return n;
}

/** The revocation KVM uses; replaceable so a checker can model a KVM that forgets to revoke. */
export const pasidRevocation: { revoke: (kvm: Kvm, ppasid: number | null) => number } = {
  revoke: kvmRevokePasidTranslations,
};

/** Subscribe KVM to the authorization tables (kvm module init): revoke under "process-table". */
export function kvmPasidInit(k: Kernel, vms: () => Iterable<Kvm>): () => void {
  return onPasidShrink(k, (proc, pasid) => {
    if (pasidConfig(k).design !== "process-table") return;
    // broken variant "pasid-translation-not-revoked": KVM keeps the guest's translation to
    // a PASID its process no longer holds (the rule of docs/pasid.md undone)
    if (k.broken.has("pasid-translation-not-revoked")) return;
    for (const kvm of vms()) if (kvm.mm === proc.mm) pasidRevocation.revoke(kvm, pasid);
  });
}

/** KVM_TWIN_SET_PASID_TRANSLATION on the VM fd. */
export function kvmVmIoctlSetPasidTranslation(kvm: Kvm, arg: number): number {
  const k = kvm.k;
  const cfg = pasidConfig(k);
  if (!cfg.uapi) return -ENOTTY;
  const proc = k.current!.process!;
  const b = proc.mm.copyFromUser(arg, kvm_twin_pasid_translation.size);
  if (typeof b === "number") return -EFAULT;
  const r = kvm_twin_pasid_translation.decode(b);
  if (r.flags & ~KVM_TWIN_PASID_CLEAR || r.pad) return -EINVAL;
  if (r.vpasid < 1 || r.vpasid > PASID_MAX) return -EINVAL;
  const t = kvmPasidTable(kvm);
  if (r.flags & KVM_TWIN_PASID_CLEAR) return t.map.delete(r.vpasid) ? 0 : -ENOENT;
  if (t.map.has(r.vpasid)) return -EEXIST;
  let ppasid: number;
  if (cfg.design === "process-table") {
    if (r.vfio_fd !== -1 || r.iommufd !== -1) return -EINVAL;
    if (r.ppasid < 1 || r.ppasid > PASID_MAX) return -EINVAL;
    const owner = kvmOwner(kvm);
    if (!owner || !pasidAuthorized(k, owner, r.ppasid)) return -EPERM;
    ppasid = r.ppasid;
  } else {
    const vf = r.vfio_fd < 0 ? null : proc.files.lookup(r.vfio_fd);
    const inf = r.iommufd < 0 ? null : proc.files.lookup(r.iommufd);
    if (!vf || !inf) return -EBADF;
    const got = vfioPasidTranslate(k, vf, inf, r.ppasid);
    if (got < 0) return got;
    ppasid = got;
  }
  t.map.set(r.vpasid, ppasid);
  if (k.trace.enabled)
    k.trace.twinEvent(proc.pid, k.clock.now, "kvm_pasid_link", [`vm ${kvm.id}`, `${r.vpasid}->${ppasid}`], 0);
  return 0;
}

export type VcpuEnqcmdStatus = EnqcmdStatus | "exit";

/** A vCPU as far as ENQCMD goes: the guest's IA32_PASID and the instruction. */
export class KvmVcpu {
  /** the guest's IA32_PASID (null: its valid bit clear) */
  guestPasid: number | null = null;
  constructor(
    readonly kvm: Kvm,
    readonly id: number,
  ) {}

  /** guest physical -> the owner's virtual address, through memory slots of address space 0 */
  private gpaToHva(gpa: number): number | null {
    const g = BigInt(gpa);
    for (const s of this.kvm.memslots.values()) {
      if (s.slot >>> 16 !== 0) continue;
      if (g >= s.guestPhysAddr && g < s.guestPhysAddr + s.memorySize)
        return Number(s.userspaceAddr + (g - s.guestPhysAddr));
    }
    return null;
  }

  /** The guest executes ENQCMD (guest paging off: addresses are guest physical). */
  enqcmd(portalGpa: number, descGpa: number): VcpuEnqcmdStatus {
    const v = this.guestPasid;
    if (v === null) return "gp";
    const t = kvmPasidTable(this.kvm);
    const p = t.map.get(v);
    if (p === undefined) {
      t.exits++; // the PASID translation failed: a VM exit, KVM injects nothing here
      const k = this.kvm.k;
      if (k.trace.enabled)
        k.trace.twinEvent(this.pid(), k.clock.now, "kvm_exit", [`vm ${this.kvm.id}`, "ENQCMD_PASID", String(v)], 0);
      return "exit";
    }
    const portal = this.gpaToHva(portalGpa);
    const desc = this.gpaToHva(descGpa);
    const st = portal === null || desc === null ? "fault" : enqcmd(this.kvm.mm, portal, desc, p);
    const k = this.kvm.k;
    if (k.trace.enabled)
      k.trace.twinEvent(
        this.pid(),
        k.clock.now,
        "guest_enqcmd",
        [`vm ${this.kvm.id} vcpu ${this.id}`, `portal_gpa=0x${portalGpa.toString(16)}`, `vpasid=${v} -> pasid=${p}`],
        st,
      );
    return st;
  }

  /** the pid a trace names: the VM's owner (its vCPU threads run there) */
  private pid(): number {
    return kvmOwner(this.kvm)?.pid ?? 0;
  }
}

const vcpus = new SideTable<Kvm, Map<number, KvmVcpu>>();

/** The VM's vCPU `id` (made on first use). */
export function kvmVcpu(kvm: Kvm, id: number): KvmVcpu {
  let m = vcpus.get(kvm);
  if (!m) vcpus.set(kvm, (m = new Map()));
  let c = m.get(id);
  if (!c) m.set(id, (c = new KvmVcpu(kvm, id)));
  return c;
}
