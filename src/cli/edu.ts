// `vfio-twin edu`: the edu device driven by a userspace driver (src/vmm/edu_driver.ts) through
// a type1 container on the default machine: a buffer copied by the device's DMA engine, a
// factorial with its completion interrupt, a DMA with its completion interrupt, one copy to
// an IOVA nothing maps (an IOMMU fault: no byte moves), printed as the syscall trace with
// the IOMMU's io_page_fault events, then the results and the invariant check.

import { checkInvariants, formatViolations } from "../check/invariants.js";
import { IommuCore } from "../iommu/iommu.js";
import { formatEvent } from "../kernel/trace.js";
import { createTwin } from "../twin.js";
import {
  eduDmaWithIrq,
  eduFactorial,
  vfioPciDeviceCleanup,
  vfioPciDeviceInit,
  vfioPciDriverInit,
  vfioPciDriverMemcpy,
  vfioPciDriverProbe,
} from "../vmm/edu_driver.js";
import type { Command } from "./main.js";

export const BDF = "0000:00:01.0";

export interface EduDemoResult {
  copied: boolean;
  factorial: number;
  factorialIrqs: bigint;
  dmaIrqs: bigint;
  msiIrqs: bigint;
  faultCopyUntouched: boolean;
  faults: string[];
  virtualMs: number;
  /** the invariant check over the twin after the driver's process exited ("" when clean) */
  violations: string;
}

/** The demo on a fresh twin; `trace` is called for each syscall and fault event as it happens. */
export function runEduDemo(onEvent?: (line: string) => void, json = false): EduDemoResult {
  const twin = createTwin();
  const k = twin.kernel;
  if (onEvent) {
    k.trace.enabled = true;
    k.trace.sink = (e) =>
      onEvent(json ? JSON.stringify(e, (_k, v) => (typeof v === "bigint" ? String(v) : v)) : formatEvent(e));
  }
  const p = twin.spawn({ name: "edu-driver" });
  const dev = vfioPciDeviceInit(p, BDF);
  if (!vfioPciDriverProbe(dev)) throw new Error("no driver for the device");
  const mem = p.mmap(4 * 4096);
  const region = dev.dmaMap(mem, 3 * 4096, 0x100000n);
  vfioPciDriverInit(dev, region);
  const src = new Uint8Array(256).map((_, i) => (i * 7 + 1) & 0xff);
  p.write(mem, src);
  vfioPciDriverMemcpy(dev, 0x100000n, 0x101000n, src.length);
  const copied = Buffer.from(p.read(mem + 0x1000, src.length)).equals(Buffer.from(src));
  const fact = eduFactorial(dev, 10);
  const dmaIrqs = eduDmaWithIrq(dev, 0x100000n, 0x102000n, 64);
  dev.driver.ops!.sendMsi(dev);
  const msiIrqs = dev.msiTake(dev.driver.msi);
  // a copy to an IOVA nothing maps: the device's write faults in the IOMMU
  p.write(mem + 0x3000, new Uint8Array(16).fill(0xee));
  vfioPciDriverMemcpy(dev, 0x100000n, 0x103000n, 16);
  const faultCopyUntouched = p.read(mem + 0x3000, 16).every((b) => b === 0xee);
  const faults = IommuCore.of(k)
    .faultsOf(BDF)
    .map((f) => `${f.bdf} iova=0x${f.iova.toString(16)} ${f.write ? "write" : "read"} ${f.reason}`);
  vfioPciDeviceCleanup(dev);
  twin.kill(p);
  const v = checkInvariants(k);
  return {
    violations: v.length ? formatViolations(v) : "",
    copied,
    factorial: fact.value,
    factorialIrqs: fact.interrupts,
    dmaIrqs,
    msiIrqs,
    faultCopyUntouched,
    faults,
    virtualMs: k.clock.now / 1e6,
  };
}

export const eduCommand: Command = {
  name: "edu",
  summary: "drive the edu device (DMA, factorial, interrupts) with a userspace driver; print the trace",
  run(args) {
    const json = args.includes("--json");
    const t0 = performance.now();
    const r = runEduDemo((l) => console.log(l), json);
    const wall = performance.now() - t0;
    console.log(`# memcpy 256 bytes RAM -> edu -> RAM through type1: ${r.copied ? "ok" : "MISMATCH"}`);
    console.log(`# factorial(10) = ${r.factorial}, completion interrupts: ${r.factorialIrqs}`);
    console.log(`# DMA with completion interrupt: ${r.dmaIrqs} interrupts; send_msi: ${r.msiIrqs}`);
    console.log(`# copy to an unmapped IOVA: ${r.faultCopyUntouched ? "no byte moved" : "BYTES MOVED"}`);
    for (const f of r.faults) console.log(`# IOMMU fault: ${f}`);
    console.log(`# virtual time ${r.virtualMs} ms in ${wall.toFixed(1)} ms of wall time`);
    console.log(`# invariants: ${r.violations || "ok"}`);
    const ok = r.copied && r.factorial === 3628800 && r.faultCopyUntouched && !r.violations;
    return ok ? 0 : 1;
  },
};
