// Invariants over the VFIO / IOMMU state of a whole twin, recomputed from the real holders:
//
//  - every refcounted object's count equals the sum of its named holders plus untracked
//    borrows (none may exist between syscalls);
//  - every module's refcount equals the sum of its named pins;
//  - type1: each mapping's pinned pages are mapped in every domain of its container, page
//    by page, with the mapping's permission; each process's mm->locked_vm equals the pages
//    type1 mappings charged to it; a Page's pin count is at least the mappings holding it;
//  - quiescence (checkVfioQuiescent, after every fd is closed): no container, no VFIO or
//    event file alive, no device open, no KVM pin, no pinned page, locked_vm 0, every IOMMU
//    group back in its default domain with no DMA owner, the vfio modules unpinned.
//
// Each returns a list of human-readable problems; an empty list means the invariant holds.

import type { Kernel } from "../kernel/kernel.js";
import type { Page } from "../kernel/mm.js";
import { IommuCore } from "../iommu/iommu.js";
import { type1Instances } from "../vfio/vfio_iommu_type1.js";
import { VfioCore } from "../vfio/vfio_main.js";

export function checkVfioInvariants(k: Kernel): string[] {
  const out: string[] = [];
  for (const o of k.objects) {
    let sum = 0;
    for (const n of o.holders.values()) sum += n;
    if (sum !== o.refs)
      out.push(`${o.describe()}: refcount ${o.refs} but holders sum to ${sum} (${[...o.holders.keys()].join(", ")})`);
  }
  for (const m of k.modules.loaded.values()) {
    let sum = 0;
    for (const n of m.pins.values()) sum += n;
    if (sum !== m.refcnt) out.push(`module ${m.name}: refcnt ${m.refcnt} but pins sum to ${sum}`);
  }
  // the subsystems' own checks (registered by the vfio and vfio_iommu_type1 modules)
  for (const [name, check] of k.checks)
    if (name.startsWith("vfio")) for (const m of check()) out.push(`[${name}] ${m}`);
  return out;
}

/** After every fd of every process was closed (or every process killed). */
export function checkVfioQuiescent(k: Kernel, pages: readonly Page[] = []): string[] {
  const out = checkVfioInvariants(k);
  for (const o of k.objects) {
    // stdio (/dev/null on fds 0-2) stays open until the process exits
    const stdio = o.kind === "file" && (o as { path?: string }).path === "/dev/null";
    if (o.kind === "vfio_container" || (o.kind === "file" && !stdio)) out.push(`still alive: ${o.describe()}`);
    if (o.kind === "vfio_group" && [...o.holders.keys()].some((h) => !h.startsWith("device ")))
      out.push(`${o.describe()} still held by ${[...o.holders.keys()].join(", ")}`);
    if (o.kind === "vfio_device" && (o.refs !== 1 || !o.holders.has("registration")))
      out.push(`${o.describe()} held by ${[...o.holders.keys()].join(", ")}`);
  }
  const core = VfioCore.of(k);
  for (const d of core?.devices ?? []) {
    if (d.openCount) out.push(`vfio_device ${d.name} open count ${d.openCount}`);
    if (d.kvm !== null) out.push(`vfio_device ${d.name} still holds a kvm`);
  }
  for (const g of core?.groups.values() ?? []) if (g.kvm !== null) out.push(`vfio_group ${g.id} still has a kvm set`);
  if (type1Instances(k).size) out.push(`${type1Instances(k).size} type1 backends alive`);
  for (const p of k.processes.values()) if (p.mm.lockedVm) out.push(`pid ${p.pid}: locked_vm ${p.mm.lockedVm}`);
  for (const pg of pages) if (pg.pins) out.push(`page pfn ${pg.pfn} still pinned (${pg.pins})`);
  for (const g of IommuCore.of(k).groups.values()) {
    if (g.owner !== null) out.push(`iommu group ${g.id} still owned`);
    if (g.domain !== g.defaultDomain) out.push(`iommu group ${g.id} in ${g.domain.describe()}`);
  }
  for (const name of ["vfio", "vfio_iommu_type1", "vfio_pci"]) {
    const m = k.modules.loaded.get(name);
    if (m && m.refcnt) out.push(`module ${name} pinned: ${[...m.pins.keys()].join(", ")}`);
  }
  for (const [sym, n] of k.modules.stats.gets) {
    const puts = k.modules.stats.puts.get(sym) ?? 0;
    if ((sym === "kvm_put_kvm" || sym === "kvm_get_kvm_safe") && n !== puts)
      out.push(`symbol ${sym}: ${n} gets, ${puts} puts`);
  }
  return out;
}
