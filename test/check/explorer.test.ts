import { test } from "node:test";
import assert from "node:assert/strict";
import { Kernel } from "../../src/kernel/kernel.js";
import { Mutex } from "../../src/kernel/locks.js";
import { type KGen, preempt } from "../../src/kernel/sched.js";
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
