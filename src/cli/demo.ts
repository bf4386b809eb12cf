// `vfio-twin demo`: a passthrough scenario on the default machine, printed as an strace-like
// trace, followed by the invariant check over the whole twin.
//
// A VMM process sets up a VM with the edu device assigned through the legacy VFIO path and
// KVM's VFIO device; the device copies a buffer inside guest RAM by DMA through the IOMMU
// (guest RAM is mapped at IOVA = GPA) and a copy outside guest RAM is refused and logged; a
// second VMM then tries to take the same group and is told EBUSY, and the demo shows who
// holds it; the first VMM tears everything down and exits.

import { checkInvariants, formatViolations } from "../check/invariants.js";
import { formatChains } from "../check/holders.js";
import { createTwin } from "../twin.js";
import { formatEvent } from "../kernel/trace.js";
import { startVm, stopVm } from "../vmm/passthrough.js";
import {
  vfioPciDeviceAdopt,
  vfioPciDeviceCleanup,
  vfioPciDriverInit,
  vfioPciDriverMemcpy,
  vfioPciDriverProbe,
} from "../vmm/edu_driver.js";
import { IommuCore } from "../iommu/iommu.js";
import { errnoName } from "../uapi/errno.js";
import { type Command, emit } from "./command.js";
import { faultEvent, invariantsEvent, traceEvent } from "./json.js";

export const demoCommand: Command = {
  name: "demo",
  summary: "run a passthrough scenario on the default machine: trace, then the invariant check",
  details:
    "With --json: JSON lines, one event each: syscall and tracepoint events (decoded arguments, result,\n" +
    "errno, holders on EBUSY), note (the narrative), dma, fault, holders and invariants.",
  run({ json }) {
    const twin = createTwin();
    const k = twin.kernel;
    const note = (s: string) => (json ? emit({ type: "note", text: s }) : console.log(`# ${s}`));
    k.trace.sink = (e) => (json ? emit(traceEvent(e, k)) : console.log(formatEvent(e)));
    k.trace.enabled = true;

    note("qemu: a VM with 0000:00:01.0 (edu) assigned through /dev/vfio/1, a type1 container and KVM's VFIO device");
    const qemu = twin.spawn({ name: "qemu", memlock: 64 << 20 });
    const vm = startVm(qemu, { bdf: "0000:00:01.0" });

    note("the guest's driver (the edu driver over the VM's device fd) copies 4 KiB inside guest RAM by DMA");
    const pattern = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 1) & 0xff);
    qemu.write(vm.ram + 0x1000, pattern);
    const dev = vfioPciDeviceAdopt(qemu, "0000:00:01.0", vm.vfio.device);
    dev.pollMs = 100; // the engine finishes 100 ms after a start: poll at that pace
    if (!vfioPciDriverProbe(dev)) throw new Error("edu driver did not probe");
    vfioPciDriverInit(dev, { vaddr: vm.ram, iova: 0n, size: vm.ramSize });
    const rc1 = vfioPciDriverMemcpy(dev, 0x1000n, 0x3000n, 4096); // GPA = IOVA
    const same = qemu.read(vm.ram + 0x3000, 4096).every((b, i) => b === pattern[i]);
    if (json) emit({ type: "dma", src: 0x1000, dst: 0x3000, size: 4096, rc: rc1, arrived: rc1 === 0 && same });
    else note(`memcpy GPA 0x1000 -> 0x3000: ${rc1 === 0 && same ? "the bytes arrived in guest RAM" : "FAILED"}`);
    const outside = vm.ramSize + 0x10000;
    const rc2 = vfioPciDriverMemcpy(dev, 0x1000n, BigInt(outside), 4096);
    const faults = IommuCore.of(k).faultsOf("0000:00:01.0");
    if (json) {
      emit({ type: "dma", src: 0x1000, dst: outside, size: 4096, rc: rc2, arrived: false });
      for (const f of faults) emit(faultEvent(f));
    } else
      note(
        `memcpy to GPA 0x${outside.toString(16)} (outside guest RAM): rc ${rc2}, IOMMU faults: ${faults.map((f) => `iova=0x${f.iova.toString(16)} ${f.write ? "write" : "read"} ${f.reason}`).join("; ")}`,
      );
    vfioPciDeviceCleanup(dev);

    note("a second VMM asks for the same group");
    const other = twin.spawn({ name: "qemu-2" });
    const rc = other.open(vm.vfio.groupPath);
    const held = other.busyHolders();
    if (json) emit({ type: "holders", path: vm.vfio.groupPath, holders: held });
    else {
      note(`open(${vm.vfio.groupPath}) = ${rc < 0 ? errnoName(-rc) : rc}; who holds it:`);
      for (const line of formatChains(held).split("\n")) note(line);
    }

    note("qemu: teardown and exit");
    stopVm(qemu, vm);
    twin.kill(qemu);
    twin.kill(other);
    k.trace.enabled = false;
    const v = checkInvariants(k);
    if (json) emit(invariantsEvent(v));
    else note(`invariants: ${formatViolations(v)}`);
    return v.length === 0 && rc1 === 0 && same ? 0 : 1;
  },
};
