// The explorer's search: partial-order reduction keeps every outcome of plain enumeration
// with fewer executions, the four-thread VFIO world is searched to completion, PCT is seeded,
// preemption bounds hold, and the step detectors report where the bug happens (an oops with
// its schedule, sleeping in atomic context, a touch of a released object).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Kernel } from "../../src/kernel/kernel.js";
import { RefCounted } from "../../src/kernel/kref.js";
import { Mutex, SpinLock } from "../../src/kernel/locks.js";
import { type KGen, preempt } from "../../src/kernel/sched.js";
import { explore, runSchedule, type World } from "../../src/check/explorer.js";
import { WORLDS, worldByName } from "../../src/check/worlds.js";
import { EINVAL } from "../../src/uapi/errno.js";

test("DPOR with sleep sets finds every outcome plain enumeration finds, in fewer executions, on every small world", () => {
  for (const w of WORLDS) {
    // the four-thread worlds: plain enumeration takes thousands of executions (below)
    if (w.name === "vfio-four" || w.name === "close-vs-ioctls") continue;
    // attach's HWPT creation and fill against a map then an unmap: DPOR 247, plain > 5,000
    if (w.name === "iommufd-attach-vs-map-unmap") continue;
    // three threads through detach's HWPT destroy: DPOR 223, plain > 5,000
    if (w.name === "iommufd-detach-vs-unmap-close") continue;
    // two unmaps (each with its put's window) and the access's unmap callback: DPOR 1,732,
    // plain > 5,000
    if (w.name === "iommufd-unmap-vs-unmap-access") continue;
    // a replace (reserved regions under the new IOAS's iova_rwsem) against a map: DPOR 555,
    // plain > 5,000
    if (w.name === "iommufd-replace-vs-map") continue;
    const dpor = explore(() => w.build({}), { strategy: "dpor", maxExecutions: 5000 });
    const dfs = explore(() => w.build({}), { strategy: "dfs", maxExecutions: 5000 });
    assert.equal(dpor.complete && dfs.complete, true, w.name);
    assert.deepEqual([...dpor.outcomes.keys()].sort(), [...dfs.outcomes.keys()].sort(), w.name);
    assert.ok(dpor.executions <= dfs.executions, `${w.name}: ${dpor.executions} > ${dfs.executions}`);
    assert.deepEqual(dpor.failures, [], w.name);
  }
});

test("the four-thread VFIO world is searched to completion (plain enumeration does not finish in 100,000 executions)", () => {
  const w = worldByName("vfio-four")!;
  const r = explore(() => w.build({}), { maxExecutions: 2000 });
  assert.equal(r.complete, true, `incomplete after ${r.executions}`);
  assert.ok(r.executions < 1000, `${r.executions} executions`);
  assert.deepEqual(r.failures, []);
  // both GET_DEVICE_FDs succeed (the fd numbers swap), MAP_DMA succeeds, SET_IOMMU is EINVAL
  const folded = new Set(
    [...r.outcomes.keys()].map((k) => JSON.stringify((JSON.parse(k) as number[]).map((x) => (x > 2 ? "fd" : x)))),
  );
  assert.deepEqual([...folded], [JSON.stringify(["fd", "fd", 0, -EINVAL])]);
});

test("every world, correct model, each coupling design: searched to completion, no violation", () => {
  for (const w of WORLDS) {
    if (w.name === "vfio-four") continue; // above
    for (const design of ["upstream", "symbol-get", "file-ops"] as const) {
      const r = explore(() => w.build({ design }), { maxExecutions: 2500 });
      assert.equal(r.complete, true, `${w.name} (${design}): ${r.executions} executions`);
      assert.deepEqual(
        r.failures.map((f) => f.violations),
        [],
        `${w.name} (${design})`,
      );
    }
  }
});

test("seeded random worlds (closes in any order, malformed calls, unbind) run clean on the correct model", async () => {
  const { randomWorld } = await import("../../src/check/random_world.js");
  for (let seed = 1; seed <= 8; seed++) {
    const r = explore(() => randomWorld(seed, {}), { maxExecutions: 150 });
    assert.deepEqual(
      r.failures.map((f) => f.violations),
      [],
      `random:${seed}`,
    );
  }
});

/** check-then-act without the lock: two owners in some interleavings */
function race(): World {
  const k = new Kernel();
  const state = { owner: "" };
  function* open(name: string): KGen<number> {
    const busy = state.owner !== "";
    yield* preempt("after check");
    if (!busy) state.owner = name;
    return busy ? -16 : 0;
  }
  return {
    kernel: k,
    threads: [
      { name: "A", path: () => open("A") },
      { name: "B", path: () => open("B") },
      { name: "C", path: () => open("C") },
    ],
    after: (res) => (res.filter((x) => x === 0).length > 1 ? ["two owners"] : []),
  };
}

test("PCT is seeded: the same seed gives the same schedules, and it finds the race", () => {
  const a = explore(race, { strategy: "pct", seed: 7, maxExecutions: 50 });
  const b = explore(race, { strategy: "pct", seed: 7, maxExecutions: 50 });
  assert.deepEqual(
    a.failures.map((f) => f.schedule),
    b.failures.map((f) => f.schedule),
  );
  assert.ok(a.failures.length > 0);
  assert.equal(a.complete, false);
});

test("a preemption bound of 0 runs only schedules where a thread runs until it is done or blocks", () => {
  const r0 = explore(race, { preemptionBound: 0, strategy: "dfs", maxExecutions: 1000 });
  const all = explore(race, { strategy: "dfs", maxExecutions: 1000 });
  assert.equal(r0.complete, true);
  assert.equal(r0.executions, 6, "3! orders of whole threads");
  assert.ok(all.executions > r0.executions);
  assert.deepEqual(r0.failures, [], "the race needs a preemption");
  const r1 = explore(race, { preemptionBound: 1, maxExecutions: 1000 });
  assert.ok(r1.failures.length > 0, "one preemption finds it");
});

class Obj extends RefCounted {
  data = 1;
  describe(): string {
    return "test object";
  }
  protected release(): void {}
  protected override poisonable(): boolean {
    return true;
  }
}

test("step detectors: an oops, sleeping in atomic context and a touch of a released object are reported at their step", () => {
  const build = (): World => {
    const k = new Kernel();
    const spin = new SpinLock(k, "test.spin");
    const m = new Mutex(k, "test.mutex");
    const o = new Obj(k, "obj");
    return {
      kernel: k,
      threads: [
        {
          name: "oops",
          *path(): KGen<number> {
            yield* preempt("before");
            throw new TypeError("boom");
          },
        },
        {
          name: "atomic",
          *path(): KGen<number> {
            spin.lock();
            yield* m.lock();
            m.unlock();
            spin.unlock();
            return 0;
          },
        },
        {
          name: "uaf",
          *path(): KGen<number> {
            o.put("init");
            yield* preempt("after put");
            return o.data;
          },
        },
      ],
    };
  };
  const o = runSchedule(build, [0, 0]);
  assert.equal(o.violationStep, 1);
  assert.match(o.violations[0]!.message, /oops: oops at before: TypeError: boom/);
  assert.deepEqual(o.schedule, [0, 0]);
  const a = runSchedule(build, [1]);
  assert.match(
    a.violations[0]!.message,
    /sleeping-while-atomic: atomic calls mutex_lock\(test.mutex\) while holding spinlock test.spin/,
  );
  assert.equal(a.violationStep, 0);
  const u = runSchedule(build, [2, 2]);
  assert.match(u.violations[0]!.message, /use-after-free: read of test object.data after its release/);
  assert.equal(u.violationStep, 1);
});
