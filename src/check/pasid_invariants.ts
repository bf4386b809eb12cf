// The PASID rule as an invariant of the whole twin (docs/pasid.md): a VM never has more
// privilege than the process running it. For every VM and every host PASID its guest's
// ENQCMD can reach (a vPASID -> pPASID link in KVM's translation table), the VM's owning
// process can reach that pPASID itself (it is in the owner's ENQCMD authorization table, the
// twin's proposal). Under the "process-table" design it holds by construction and by
// revocation; under "vfio-translate" the sequences of test/kvm/pasid_designs.test.ts break it.
//
// Also checked: a process's IA32_PASID is always in its own table.

import type { Kernel } from "../kernel/kernel.js";
import { authorizedPasids, pasidConfig, processPasids } from "../kernel/pasid.js";
import { kvmOwner, kvmPasidTable } from "../kvm/enqcmd.js";
import { kvmState } from "../kvm/kvm_main.js";

/** Violations of the PASID reach rule, one line each. */
export function checkPasidReach(k: Kernel): string[] {
  const out: string[] = [];
  if (!pasidConfig(k).uapi) return out;
  const st = kvmState(k);
  if (!st) return out;
  for (const kvm of st.vms) {
    const t = kvmPasidTable(kvm);
    if (t.map.size === 0) continue;
    const owner = kvmOwner(kvm);
    const can = new Set(owner ? authorizedPasids(k, owner) : []);
    for (const [v, p] of t.map) {
      if (can.has(p)) continue;
      out.push(
        owner
          ? `vm ${kvm.id}: guest PASID ${v} reaches host PASID ${p}, which its owner pid ${owner.pid} cannot reach`
          : `vm ${kvm.id}: guest PASID ${v} reaches host PASID ${p}, and the process that ran the VM is gone`,
      );
    }
  }
  // a process's IA32_PASID is always one of its authorized PASIDs
  for (const p of k.processes.values()) {
    const cur = processPasids(k, p).current;
    if (cur !== null && !authorizedPasids(k, p).includes(cur))
      out.push(`pid ${p.pid}: IA32_PASID ${cur} is not in its authorization table`);
  }
  return out;
}
