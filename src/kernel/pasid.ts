// PASIDs on the host side that every subsystem shares (docs/pasid.md):
//
// - whether the running kernel has the PASID uAPI at all: VFIO_DEVICE_ATTACH_PASID and the
//   iommufd PASID attach came after 6.12 (TwinConfig.kernelVersion), so a 6.12 twin answers
//   as 6.12 does and the PASID paths below are never reached;
// - which design links a guest's ENQCMD PASIDs to host PASIDs (both are the twin's
//   proposals for an open question, not kernel code): "process-table" or "vfio-translate";
// - each process's current PASID (what IA32_PASID holds: the PASID its ENQCMD carries);
// - THE PROCESS AUTHORIZATION TABLE. This is the twin's own proposal, not kernel uAPI and not
//   kernel code: the set of host PASIDs a process's ENQCMD may carry. iommufd adds a PASID to
//   the table of the process that owns the iommufd (the one that opened /dev/iommu) when it
//   attaches a device PASID on its behalf, and removes it on detach and when the device or the
//   context is released; the table dies with the process. A process chooses among its
//   authorized PASIDs with setCurrentPasid(). Under the "process-table" design KVM links a
//   guest PASID only to a PASID in the table of the VM's owner and subscribes to its shrinking.

import { EINVAL, EPERM } from "../uapi/errno.js";
import type { Kernel } from "./kernel.js";
import type { Process } from "./process.js";
import { SideTable } from "./side_table.js";

export type PasidDesign = "process-table" | "vfio-translate";
export const PASID_DESIGNS: readonly PasidDesign[] = ["process-table", "vfio-translate"];

/** Kernel versions the twin can answer as: 6.12 (the oracle) or one with the PASID uAPI. */
export type KernelVersion = "6.12" | "6.15";

/** PASIDs are 20 bits (PCIe); 0 is IOMMU_NO_PASID, the RID's own address space. */
export const PASID_BITS = 20;
export const PASID_MAX = (1 << PASID_BITS) - 1;
export const IOMMU_NO_PASID = 0;

export interface PasidConfig {
  /** the kernel has VFIO_DEVICE_ATTACH_PASID / iommufd PASID attach (6.15 and later) */
  uapi: boolean;
  design: PasidDesign;
}

const configs = new SideTable<Kernel, PasidConfig>();

export function pasidConfig(k: Kernel): PasidConfig {
  let c = configs.get(k);
  if (!c) configs.set(k, (c = { uapi: false, design: "process-table" }));
  return c;
}

/** Set at boot (src/twin.ts) from TwinConfig. */
export function setPasidConfig(k: Kernel, version: KernelVersion, design: PasidDesign): void {
  const c = pasidConfig(k);
  c.uapi = version !== "6.12";
  c.design = design;
}

/** Called when a PASID leaves a process's table (or the whole table goes, pasid null). */
export type PasidShrinkListener = (proc: Process, pasid: number | null) => void;

/** Per process: IA32_PASID and the authorization table (the twin's proposal). */
export class ProcessPasids {
  /** IA32_PASID: the PASID ENQCMD puts in the descriptor; null = the valid bit clear */
  current: number | null = null;
  /** host PASID -> how many device attachments authorize it */
  readonly authorized = new Map<number, number>();
  constructor(readonly proc: Process) {}
}

interface PasidState {
  readonly procs: WeakMap<Process, ProcessPasids>;
  readonly listeners: Set<PasidShrinkListener>;
}

const states = new SideTable<Kernel, PasidState>();

function state(k: Kernel): PasidState {
  let s = states.get(k);
  if (!s) states.set(k, (s = { procs: new SideTable(k), listeners: new Set() }));
  return s;
}

export function processPasids(k: Kernel, proc: Process): ProcessPasids {
  const s = state(k);
  let p = s.procs.get(proc);
  if (!p) s.procs.set(proc, (p = new ProcessPasids(proc)));
  return p;
}

/** Is `pasid` in the process's authorization table? (false for an exited process) */
export function pasidAuthorized(k: Kernel, proc: Process, pasid: number): boolean {
  return !proc.exited && (state(k).procs.get(proc)?.authorized.has(pasid) ?? false);
}

/** The process's table, sorted (reports, invariants). */
export function authorizedPasids(k: Kernel, proc: Process): number[] {
  const t = state(k).procs.get(proc);
  return t && !proc.exited ? [...t.authorized.keys()].sort((a, b) => a - b) : [];
}

/** iommufd attached `pasid` for `proc` (the twin's proposal): one more authorization. */
export function pasidAuthAdd(k: Kernel, proc: Process, pasid: number): void {
  if (proc.exited) return;
  const t = processPasids(k, proc);
  t.authorized.set(pasid, (t.authorized.get(pasid) ?? 0) + 1);
  if (k.trace.enabled) k.trace.twinEvent(proc.pid, k.clock.now, "pasid_authorize", [String(pasid)], 0);
}

/** One authorization fewer; at zero the PASID leaves the table, IA32_PASID is cleared if it
 * held it, and the listeners (KVM under "process-table") revoke what depended on it. */
export function pasidAuthRemove(k: Kernel, proc: Process, pasid: number): void {
  if (proc.exited) return; // the table went with the process
  const t = state(k).procs.get(proc);
  const n = t?.authorized.get(pasid);
  if (!t || !n) throw k.bug("pasid", `pid ${proc.pid} drops PASID ${pasid} it is not authorized for`);
  if (n > 1) {
    t.authorized.set(pasid, n - 1);
    return;
  }
  t.authorized.delete(pasid);
  if (t.current === pasid) t.current = null;
  if (k.trace.enabled) k.trace.twinEvent(proc.pid, k.clock.now, "pasid_deauthorize", [String(pasid)], 0);
  for (const l of [...state(k).listeners]) l(proc, pasid);
}

/** The process exits: its table and IA32_PASID go with it (after its files were closed). */
export function pasidProcessExit(k: Kernel, proc: Process): void {
  const s = state(k);
  const t = s.procs.get(proc);
  if (t) {
    t.authorized.clear();
    t.current = null;
  }
  for (const l of [...s.listeners]) l(proc, null);
}

export function onPasidShrink(k: Kernel, l: PasidShrinkListener): () => void {
  const s = state(k);
  s.listeners.add(l);
  return () => s.listeners.delete(l);
}

/**
 * Choose the PASID the process's ENQCMD carries (the kernel would write IA32_PASID): one of
 * its authorized PASIDs (EPERM otherwise), or null to clear it. EINVAL without the uAPI.
 */
export function setCurrentPasid(k: Kernel, proc: Process, pasid: number | null): number {
  if (!pasidConfig(k).uapi) return -EINVAL;
  const t = processPasids(k, proc);
  if (pasid === null) {
    t.current = null;
    return 0;
  }
  if (!Number.isInteger(pasid) || pasid <= IOMMU_NO_PASID || pasid > PASID_MAX) return -EINVAL;
  if (!t.authorized.has(pasid)) return -EPERM;
  t.current = pasid;
  return 0;
}
