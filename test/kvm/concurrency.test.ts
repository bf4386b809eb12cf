// Concurrent FILE_ADD / FILE_DEL / device close on one KVM-VFIO device, every interleaving
// (src/check/explorer.ts), with the twin's invariants (refcount holders, module pins, the kvm
// counters against what the device holds) checked after each.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { explore, type World } from "../../src/check/explorer.js";
import type { Kernel } from "../../src/kernel/kernel.js";
import type { Process } from "../../src/kernel/process.js";
import { type KGen, Task } from "../../src/kernel/sched.js";
import { ioctlPath } from "../../src/kernel/syscalls.js";
import * as K from "../../src/uapi/kvm.js";
import { COUPLING_DESIGNS, type CouplingDesign } from "../../src/kvm/vfio_coupling.js";
import type { TwinProcess } from "../../src/twin.js";
import { vms, Vmm, type VfioWorld, WORLDS } from "./harness.js";

/** Run `g` as a thread of `p`: the explorer's tasks belong to no process, a VMM thread does. */
function* asThreadOf<T>(k: Kernel, p: Process, name: string, g: (t: Task) => KGen<T>): KGen<T> {
  const t = new Task(p, name);
  const gen = g(t);
  for (;;) {
    const prev = k.current;
    k.current = t;
    let s: IteratorResult<unknown, T>;
    try {
      s = gen.next();
    } finally {
      k.current = prev;
    }
    if (s.done) return s.value;
    yield s.value as never;
  }
}

/** SET_DEVICE_ATTR(FILE, attr, fd) staged at its own offset in the scratch page. */
function stageAttr(v: Vmm, slot: number, attr: number, fd: number): number {
  const at = v.scratch + 1024 + slot * 64;
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, fd, true);
  v.p.write(at + 32, b);
  v.p.write(
    at,
    K.kvm_device_attr.encode({ flags: 0, group: K.KVM_DEV_VFIO_FILE, attr: BigInt(attr), addr: BigInt(at + 32) }),
  );
  return at;
}

type Op = "add" | "del";

function world(vw: VfioWorld, design: CouplingDesign, ops: Op[], preAdd: boolean): () => World {
  return () => {
    const twin = vw.boot(design);
    const v = new Vmm(twin.spawn());
    const proc = (v.p as TwinProcess).proc;
    const dev = v.vfioDevice(v.createVm());
    const g = v.p.open(vw.nonCoherentGroup ?? vw.coherentGroup); // the registration moves too
    if (preAdd) assert.equal(v.add(dev, g), 0);
    const k = twin.kernel;
    return {
      kernel: k,
      threads: ops.map((op, i) => {
        const arg = stageAttr(v, i, op === "add" ? K.KVM_DEV_VFIO_FILE_ADD : K.KVM_DEV_VFIO_FILE_DEL, g);
        return {
          name: `${op}${i}`,
          path: () =>
            asThreadOf(k, proc, `vmm-${op}${i}`, (t) => ioctlPath(k, proc, t, dev, K.KVM_SET_DEVICE_ATTR, arg)),
        };
      }),
      after: () => {
        const kvm = vms(twin)[0]!;
        const held = kvm.arch.assignedDevices;
        return held === 0 || held === 1 ? [] : [`${held} files held`];
      },
    };
  };
}

for (const [vw, design] of WORLDS.flatMap((w) => COUPLING_DESIGNS.map((d) => [w, d] as const))) {
  describe(`concurrent KVM-VFIO attribute calls (${vw.name}, ${design})`, () => {
    it("two FILE_ADDs of one group: one wins, one EEXIST, in every interleaving", () => {
      const r = explore(world(vw, design, ["add", "add"], false));
      assert.equal(r.complete, true);
      assert.ok(r.schedules > 1);
      assert.deepEqual(r.failures, []);
      assert.deepEqual([...r.outcomes.keys()].sort(), ["[-17,0]", "[0,-17]"]);
    });

    it("FILE_ADD against FILE_DEL of an added group: both orders, counters consistent", () => {
      const r = explore(world(vw, design, ["add", "del"], true));
      assert.equal(r.complete, true);
      assert.deepEqual(r.failures, []);
      // DEL first then ADD again: [0, 0]; ADD first (EEXIST) then DEL: [-17, 0]
      assert.deepEqual([...r.outcomes.keys()].sort(), ["[-17,0]", "[0,0]"]);
    });
  });
}
