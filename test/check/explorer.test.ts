import { test } from "node:test";
import assert from "node:assert/strict";
import { Kernel } from "../../src/kernel/kernel.js";
import { Mutex } from "../../src/kernel/locks.js";
import { type KGen, preempt, type Task } from "../../src/kernel/sched.js";
import { explore, replay, type World } from "../../src/check/explorer.js";

// A check-then-act race: two "opens" of a single-open object. With the check and the claim
// under one mutex only one can win; without it both can.
function world(locked: boolean): () => World {
  return () => {
    const k = new Kernel();
    const m = new Mutex(k, "obj.lock");
    const state = { owner: "" };
    function* open(name: string): KGen<number> {
      if (locked) yield* m.lock();
      const busy = state.owner !== "";
      yield* preempt("after check");
      if (!busy) state.owner = name;
      if (locked) m.unlock();
      return busy ? -16 : 0;
    }
    return {
      kernel: k,
      threads: [
        { name: "A", path: () => open("A") },
        { name: "B", path: () => open("B") },
      ],
      after: (r) => (r.filter((x) => x === 0).length === 1 ? [] : [`${r.filter((x) => x === 0).length} owners`]),
    };
  };
}

test("the explorer finds the race in an unlocked check-then-act and a replay reproduces it", () => {
  const r = explore(world(false));
  assert.equal(r.complete, true);
  assert.ok(r.failures.length > 0);
  const bad = r.failures[0]!;
  assert.deepEqual(bad.results, [0, 0]);
  const again = replay(world(false), bad.schedule);
  assert.deepEqual(again.results, [0, 0]);
  assert.equal(again.violations[0]!.message, "2 owners");
});

test("with the mutex every interleaving has exactly one owner", () => {
  const r = explore(world(true));
  assert.equal(r.complete, true);
  assert.ok(r.schedules > 1, `explored ${r.schedules}`);
  assert.deepEqual(r.failures, []);
  assert.deepEqual([...r.outcomes.keys()].sort(), ["[-16,0]", "[0,-16]"]);
});

// Real kernel paths: two threads of one VMM add the same group to KVM's VFIO device at once.
test("explorer over real ioctls: concurrent KVM_DEV_VFIO_FILE_ADD of one group, exactly one wins", async () => {
  const { createTwin } = await import("../../src/twin.js");
  const { ioctlPath } = await import("../../src/kernel/syscalls.js");
  const K = await import("../../src/uapi/kvm.js");
  const { TypedProcess } = await import("../../src/vmm/typed.js");
  const build = (): World => {
    const twin = createTwin();
    const p = twin.spawn({ name: "qemu" });
    const t = new TypedProcess(p);
    const vm = t.ioctlInt(t.open("/dev/kvm"), K.KVM_CREATE_VM, 0);
    const dev = t.ioctl(vm, K.KVM_CREATE_DEVICE, K.kvm_create_device, { type: K.KVM_DEV_TYPE_VFIO }).fd;
    const group = t.open("/dev/vfio/1");
    const fdAt = t.stage(new Uint8Array(new Int32Array([group]).buffer), 0x100);
    const attr = t.stage(
      K.kvm_device_attr.encode({
        group: K.KVM_DEV_VFIO_FILE,
        attr: BigInt(K.KVM_DEV_VFIO_FILE_ADD),
        addr: BigInt(fdAt),
      }),
      0x200,
    );
    const proc = p.proc;
    const add = (task: Task) => ioctlPath(twin.kernel, proc, task, dev, K.KVM_SET_DEVICE_ATTR, attr);
    return {
      kernel: twin.kernel,
      threads: [
        { name: "vcpu0", process: proc, path: add },
        { name: "vcpu1", process: proc, path: add },
      ],
    };
  };
  const r = explore(build);
  assert.equal(r.complete, true);
  assert.deepEqual(r.failures, []);
  assert.deepEqual([...r.outcomes.keys()].sort(), ["[-17,0]", "[0,-17]"]);
});
