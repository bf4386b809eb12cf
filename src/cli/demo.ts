// `vfio-twin demo`: a passthrough scenario on the default machine, printed as an strace-like
// trace, followed by the invariant check over the whole twin.
//
// A VMM process sets up a VM with the edu device assigned through the legacy VFIO path and
// KVM's VFIO device; a second VMM then tries to take the same group and is told EBUSY, and
// the demo shows who holds it; the first VMM tears everything down and exits.

import { checkInvariants, formatViolations } from "../check/invariants.js";
import { formatHolders, whoHolds } from "../check/holders.js";
import { createTwin } from "../twin.js";
import { formatEvent } from "../kernel/trace.js";
import { startVm, stopVm } from "../vmm/passthrough.js";
import { errnoName } from "../uapi/errno.js";
import type { Command } from "./main.js";

export const demoCommand: Command = {
  name: "demo",
  summary: "run a passthrough scenario on the default machine: trace, then the invariant check",
  run(args) {
    const json = args.includes("--json");
    const twin = createTwin();
    const k = twin.kernel;
    const out = (s: string) => console.log(json ? JSON.stringify({ note: s }) : `# ${s}`);
    k.trace.sink = (e) => console.log(json ? JSON.stringify(e) : formatEvent(e));
    k.trace.enabled = true;

    out("qemu: a VM with 0000:00:01.0 (edu) assigned through /dev/vfio/1, a type1 container and KVM's VFIO device");
    const qemu = twin.spawn({ name: "qemu", memlock: 64 << 20 });
    const vm = startVm(qemu, { bdf: "0000:00:01.0" });

    out("a second VMM asks for the same group");
    const other = twin.spawn({ name: "qemu-2" });
    const rc = other.open(vm.vfio.groupPath);
    out(`open(${vm.vfio.groupPath}) = ${rc < 0 ? errnoName(-rc) : rc}; who holds it:`);
    for (const line of formatHolders(vm.vfio.groupPath, whoHolds(k, vm.vfio.groupPath)).split("\n")) out(line);

    out("qemu: teardown and exit");
    stopVm(qemu, vm);
    twin.kill(qemu);
    twin.kill(other);
    k.trace.enabled = false;
    const v = checkInvariants(k);
    out(`invariants: ${formatViolations(v)}`);
    return v.length === 0 ? 0 : 1;
  },
};
