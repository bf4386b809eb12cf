// Concurrent FILE_ADD / FILE_DEL on one KVM-VFIO device, and FILE_ADD racing the open of a
// device whose driver needs KVM, every interleaving
// (src/check/explorer.ts), with the twin's invariants (refcount holders, module pins, the kvm
// counters against what the device holds) checked after each.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { explore, type World } from "../../src/check/explorer.js";
import type { Task } from "../../src/kernel/sched.js";
import { ioctlPath } from "../../src/kernel/syscalls.js";
import * as K from "../../src/uapi/kvm.js";
import { VFIO_GROUP_GET_DEVICE_FD } from "../../src/uapi/vfio.js";
import { ESRCH } from "../../src/uapi/errno.js";
import { COUPLING_DESIGNS, type CouplingDesign } from "../../src/kvm/vfio_coupling.js";
import type { TwinProcess } from "../../src/twin.js";
import { vms, Vmm, type VfioWorld, WORLDS } from "./harness.js";

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
          process: proc,
          path: (t: Task) => ioctlPath(k, proc, t, dev, K.KVM_SET_DEVICE_ATTR, arg),
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

/** FILE_ADD of the KVM-gated group against GET_DEVICE_FD of its device. */
function raceWorld(vw: VfioWorld, design: CouplingDesign): () => World {
  return () => {
    const twin = vw.boot(design);
    const gated = vw.needsKvm(twin)!;
    const v = new Vmm(twin.spawn());
    const proc = (v.p as TwinProcess).proc;
    const dev = v.vfioDevice(v.createVm());
    const g = v.p.open(gated.path);
    assert.equal(v.deviceFd(g, gated.path, gated.device), -ESRCH, "container set up; no KVM yet");
    const add = stageAttr(v, 0, K.KVM_DEV_VFIO_FILE_ADD, g);
    const name = v.scratch + 2048;
    v.p.write(name, new TextEncoder().encode(gated.device + "\0"));
    const k = twin.kernel;
    return {
      kernel: k,
      threads: [
        { name: "add", process: proc, path: (t: Task) => ioctlPath(k, proc, t, dev, K.KVM_SET_DEVICE_ATTR, add) },
        { name: "open", process: proc, path: (t: Task) => ioctlPath(k, proc, t, g, VFIO_GROUP_GET_DEVICE_FD, name) },
      ],
    };
  };
}

for (const vw of WORLDS) {
  describe(`FILE_ADD racing open_device of a KVM-needing driver (${vw.name})`, () => {
    it("the open sees the VM or fails ESRCH, never anything else; invariants hold", (t) => {
      if (!vw.needsKvm(vw.boot("upstream"))) return t.skip("this VFIO has no driver that needs KVM");
      const r = explore(raceWorld(vw, "upstream"));
      assert.equal(r.complete, true);
      assert.deepEqual(r.failures, []);
      const outcomes = [...r.outcomes.keys()].map((o) => JSON.parse(o) as number[]);
      assert.ok(
        outcomes.every(([add, open]) => add === 0 && (open === -ESRCH || open! >= 0)),
        JSON.stringify(outcomes),
      );
      assert.ok(
        outcomes.some(([, open]) => open === -ESRCH),
        "open first",
      );
      assert.ok(
        outcomes.some(([, open]) => open! >= 0),
        "add first",
      );
    });
  });
}
