// `vfio-twin edu [--iommufd|--type1] [--json]`: the edu device driven by a userspace driver
// (src/vmm/edu_driver.ts) on the default machine, through a type1 container and then through
// iommufd: a buffer copied by the device's DMA engine, a factorial with its completion
// interrupt, a DMA with its completion interrupt, one copy to an IOVA nothing maps (an IOMMU
// fault: no byte moves); with iommufd also a replace of the attachment by a second IOAS and
// a detach (DMA blocked). Printed as the syscall trace with the IOMMU's io_page_fault
// events, then the results and the invariant check.

import { checkInvariants, formatViolations, type Violation } from "../check/invariants.js";
import { IommuCore } from "../iommu/iommu.js";
import { formatEvent } from "../kernel/trace.js";
import { createTwin } from "../twin.js";
import {
  type IommuMode,
  eduDmaWithIrq,
  eduFactorial,
  vfioPciDeviceCleanup,
  vfioPciDeviceInit,
  vfioPciDriverInit,
  vfioPciDriverMemcpy,
  vfioPciDriverProbe,
} from "../vmm/edu_driver.js";
import { type Command, emit, toJson } from "./command.js";
import { invariantsEvent, traceEvent } from "./json.js";

export const BDF = "0000:00:01.0";

export interface EduDemoResult {
  copied: boolean;
  factorial: number;
  factorialIrqs: bigint;
  dmaIrqs: bigint;
  msiIrqs: bigint;
  faultCopyUntouched: boolean;
  /** iommufd only: a copy after replacing the attachment with a second IOAS, and after detach */
  replaced?: boolean;
  detachedUntouched?: boolean;
  faults: string[];
  virtualMs: number;
  /** the invariant check over the twin after the driver's process exited ("" when clean) */
  violations: string;
  violationList: Violation[];
}

/** The demo on a fresh twin; `onEvent` is called for each syscall and fault event as it happens. */
export function runEduDemo(
  onEvent?: (line: string) => void,
  json = false,
  mode: IommuMode = "vfio_type1v2_iommu",
): EduDemoResult {
  const twin = createTwin();
  const k = twin.kernel;
  if (onEvent) {
    k.trace.enabled = true;
    k.trace.sink = (e) => onEvent(json ? toJson(traceEvent(e, k)) : formatEvent(e));
  }
  const p = twin.spawn({ name: "edu-driver" });
  const dev = vfioPciDeviceInit(p, BDF, mode);
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
  let replaced: boolean | undefined;
  let detachedUntouched: boolean | undefined;
  if (mode === "iommufd") {
    // a second IOAS where IOVA 0x100000 is other memory; the attachment is replaced in place
    const other = p.mmap(2 * 4096);
    p.write(other, new Uint8Array([0xc0, 0xff, 0xee, 0x00]));
    const ioas2 = dev.ioasAlloc();
    dev.dmaMap(other, 2 * 4096, 0x100000n, ioas2);
    dev.attach(ioas2);
    vfioPciDriverMemcpy(dev, 0x100000n, 0x101000n, 4);
    replaced = [...p.read(other + 0x1000, 4)].join() === "192,255,238,0";
    // detached: the device sits in a blocking domain
    dev.detach();
    p.write(other + 0x1000, new Uint8Array([1, 1, 1, 1]));
    vfioPciDriverMemcpy(dev, 0x100000n, 0x101000n, 4);
    detachedUntouched = [...p.read(other + 0x1000, 4)].join() === "1,1,1,1";
    dev.attach(dev.ioasId);
  }
  const faults = IommuCore.of(k)
    .faultsOf(BDF)
    .map((f) => `${f.bdf} iova=0x${f.iova.toString(16)} ${f.write ? "write" : "read"} ${f.reason}`);
  vfioPciDeviceCleanup(dev);
  twin.kill(p);
  const v = checkInvariants(k);
  return {
    violations: v.length ? formatViolations(v) : "",
    violationList: v,
    copied,
    factorial: fact.value,
    factorialIrqs: fact.interrupts,
    dmaIrqs,
    msiIrqs,
    faultCopyUntouched,
    ...(replaced !== undefined ? { replaced } : {}),
    ...(detachedUntouched !== undefined ? { detachedUntouched } : {}),
    faults,
    virtualMs: k.clock.now / 1e6,
  };
}

export const eduCommand: Command = {
  name: "edu",
  summary: "drive the edu device (DMA, factorial, interrupts) with a userspace driver; print the trace",
  options: {
    type1: { type: "boolean", help: "only through a type1v2 container" },
    iommufd: { type: "boolean", help: "only through iommufd (the device cdev and an IOAS)" },
  },
  details:
    "Without --type1 or --iommufd both run, type1 first. With --json: JSON lines: syscall and tracepoint\n" +
    "events, then for each run a result event (what the driver saw) and its invariants event.",
  run({ values, json }) {
    const modes: IommuMode[] = [];
    if (values.type1 || !values.iommufd) modes.push("vfio_type1v2_iommu");
    if (values.iommufd || !values.type1) modes.push("iommufd");
    let ok = true;
    for (const mode of modes) {
      const title = mode === "iommufd" ? "iommufd (cdev + IOAS)" : "a type1v2 container";
      if (!json) console.log(`# ---- edu through ${title}`);
      const t0 = performance.now();
      const r = runEduDemo((l) => console.log(l), json, mode);
      const wall = performance.now() - t0;
      const good =
        r.copied &&
        r.factorial === 3628800 &&
        r.faultCopyUntouched &&
        r.replaced !== false &&
        r.detachedUntouched !== false &&
        !r.violations;
      ok &&= good;
      if (json) {
        const result: Partial<EduDemoResult> = { ...r };
        delete result.violations;
        delete result.violationList;
        emit({ type: "result", mode, ok: good, ...result, wallMs: Math.round(wall * 10) / 10 });
        emit(invariantsEvent(r.violationList));
        continue;
      }
      console.log(`# memcpy 256 bytes RAM -> edu -> RAM: ${r.copied ? "ok" : "MISMATCH"}`);
      console.log(`# factorial(10) = ${r.factorial}, completion interrupts: ${r.factorialIrqs}`);
      console.log(`# DMA with completion interrupt: ${r.dmaIrqs} interrupts; send_msi: ${r.msiIrqs}`);
      console.log(`# copy to an unmapped IOVA: ${r.faultCopyUntouched ? "no byte moved" : "BYTES MOVED"}`);
      if (r.replaced !== undefined)
        console.log(`# replaced by a second IOAS: ${r.replaced ? "copy went there" : "MISMATCH"}`);
      if (r.detachedUntouched !== undefined)
        console.log(`# detached: ${r.detachedUntouched ? "no byte moved" : "BYTES MOVED"}`);
      for (const f of r.faults) console.log(`# IOMMU fault: ${f}`);
      console.log(`# virtual time ${r.virtualMs} ms in ${wall.toFixed(1)} ms of wall time`);
      console.log(`# invariants: ${r.violations || "ok"}`);
    }
    return ok ? 0 : 1;
  },
};
