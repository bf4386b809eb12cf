// Shared set-up for the PASID / ENQCMD tests (docs/pasid.md): a 6.15 twin whose machine has
// the DSA-shaped device, a process that binds it to its iommufd, maps a buffer at IOVA 0 and
// attaches a PASID, and the closing check every test world runs (all invariants, including
// the PASID reach rule, then nothing of the test left alive after every process exits).

import assert from "node:assert/strict";
import { createTwin, type Twin, type TwinConfig, TwinProcess } from "../src/twin.js";
import type { Process } from "../src/kernel/process.js";
import { DSA_PCI, ORACLE_PCI } from "../src/hw/machine.js";
import { DsaUser } from "../src/vmm/dsa_pasid.js";
import { checkInvariants, formatViolations, leakedSince } from "../src/check/invariants.js";
import { IommuCore } from "../src/iommu/iommu.js";
import { DsaDevice } from "../src/hw/dsa.js";
import type { PasidDesign } from "../src/kernel/pasid.js";

export const DSA_CDEV = "/dev/vfio/devices/vfio1";
export const BUF = 64 * 1024;

export function pasidTwin(design: PasidDesign = "process-table", extra: TwinConfig = {}): Twin {
  return createTwin({ kernelVersion: "6.15", pasidDesign: design, pci: [...ORACLE_PCI, DSA_PCI], ...extra });
}

export function dsaHw(twin: Twin): DsaDevice {
  const d = twin.machine.byBdf(DSA_PCI.bdf)!.hw;
  assert.ok(d instanceof DsaDevice);
  return d;
}

export function faults(twin: Twin) {
  return IommuCore.of(twin.kernel).faultsOf(DSA_PCI.bdf);
}

export interface World {
  twin: Twin;
  p: TwinProcess;
  u: DsaUser;
  ioas: number;
  /** the process's buffer, mapped at IOVA 0 */
  buf: number;
  baseline: ReturnType<typeof snapshot>;
}

function snapshot(twin: Twin) {
  return new Set(twin.kernel.objects);
}

/** A process with the DSA bound to its iommufd, the buffer mapped, BARs mapped, WQ enabled;
 * `pasid` attached to the IOAS when given. */
export function world(design: PasidDesign = "process-table", pasid: number | null = 5): World {
  const twin = pasidTwin(design);
  const baseline = snapshot(twin);
  const p = twin.spawn({ name: "vmm" });
  const u = new DsaUser(p);
  assert.ok(u.openIommufd() >= 0);
  assert.equal(u.bind(DSA_CDEV), 0);
  const ioas = u.ioasAlloc();
  assert.ok(ioas > 0);
  const buf = p.mmap(BUF);
  assert.equal(u.map(ioas, 0n, buf, BUF), 0);
  assert.equal(u.mapBars(), 0);
  u.enable();
  if (pasid !== null) assert.equal(u.attach(ioas, pasid).rc, 0);
  return { twin, p, u, ioas, buf, baseline };
}

export function checkAll(twin: Twin): void {
  const v = checkInvariants(twin.kernel);
  assert.deepEqual(v, [], formatViolations(v));
}

/** Invariants now; kill every live process; invariants again and nothing leaked. */
export function endWorld(twin: Twin, baseline: ReadonlySet<unknown>): void {
  checkAll(twin);
  for (const pid of [...twin.kernel.processes.keys()]) {
    const proc = twin.kernel.processes.get(pid)!;
    twin.kill(wrap(twin, proc));
  }
  checkAll(twin);
  const left = leakedSince(twin.kernel, baseline as ReadonlySet<never>).map((o) => o.describe());
  assert.deepEqual(left, [], "leaked after every process exited");
}

function wrap(twin: Twin, proc: Process): TwinProcess {
  return new TwinProcess(twin, proc);
}
