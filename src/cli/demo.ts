// `vfio-twin demo`: a passthrough scenario on the default machine, printed as an strace-like
// trace, followed by the invariant check over the whole twin.

import { checkInvariants, formatViolations } from "../check/invariants.js";
import { createTwin } from "../twin.js";
import { formatEvent } from "../kernel/trace.js";
import { TypedProcess } from "../vmm/typed.js";
import { KVM_CHECK_EXTENSION, KVM_CAP_DEVICE_CTRL, KVM_CREATE_VM, KVM_GET_API_VERSION } from "../uapi/kvm.js";
import type { Command } from "./main.js";

export const demoCommand: Command = {
  name: "demo",
  summary: "run a passthrough scenario on the default machine and print its trace",
  run(args) {
    const json = args.includes("--json");
    const twin = createTwin();
    const k = twin.kernel;
    k.trace.enabled = true;
    const vmm = new TypedProcess(twin.spawn({ name: "qemu" }));
    const kvm = vmm.open("/dev/kvm");
    vmm.ioctlInt(kvm, KVM_GET_API_VERSION);
    vmm.ioctlInt(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DEVICE_CTRL);
    const vm = vmm.ioctlInt(kvm, KVM_CREATE_VM, 0);
    vmm.close(vm);
    vmm.close(kvm);
    twin.kill(vmm.raw);
    for (const e of k.trace.events) console.log(json ? JSON.stringify(e) : formatEvent(e));
    const v = checkInvariants(k);
    console.log(`# invariants: ${formatViolations(v)}`);
    return v.length === 0 ? 0 : 1;
  },
};
