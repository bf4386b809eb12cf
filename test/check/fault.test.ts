// Fault injection over the explorer's worlds: the n-th fallible step of each call fails, for
// every n, and the twin is exactly as before (objects, counts, holders, fds, pins, accounting,
// domains, iommufd objects and areas) with every invariant holding.
import { test } from "node:test";
import assert from "node:assert/strict";
import { faultSweep } from "../../src/check/fault.js";
import { randomWorld } from "../../src/check/random_world.js";
import { WORLDS } from "../../src/check/worlds.js";
import { shouldFail } from "../../src/iommufd/fail_nth.js";
import { Kernel } from "../../src/kernel/kernel.js";
import { RefCounted } from "../../src/kernel/kref.js";
import type { World } from "../../src/check/explorer.js";

test("every fallible step of every call of every world fails cleanly", () => {
  let checked = 0;
  for (const w of WORLDS) {
    const r = faultSweep(() => w.build({}));
    assert.deepEqual(r.problems, [], w.name);
    checked += r.failures.reduce((a, b) => a + b, 0);
  }
  for (let seed = 1; seed <= 6; seed++) {
    const r = faultSweep(() => randomWorld(seed, {}));
    assert.deepEqual(r.problems, [], `random:${seed}`);
    checked += r.failures.reduce((a, b) => a + b, 0);
  }
  assert.ok(checked >= 12, `only ${checked} injected failures`);
});

class Thing extends RefCounted {
  describe(): string {
    return "thing";
  }
  protected release(): void {}
}

test("a call that keeps a reference when its second fallible step fails is reported", () => {
  const build = (): World => {
    const k = new Kernel();
    const t = new Thing(k, "thing");
    return {
      kernel: k,
      threads: [
        {
          name: "leaky",
          path: () => {
            if (shouldFail()) return -12;
            t.get("half-done");
            if (shouldFail()) return -12; // forgets to put "half-done"
            t.put("half-done");
            return 0;
          },
        },
      ],
    };
  };
  const r = faultSweep(build);
  assert.deepEqual(r.failures, [2]);
  assert.equal(r.problems.length, 1);
  assert.match(
    r.problems[0]!,
    /leaky: fail-nth 2: the twin changed:\n- \d+ thing refs=1 init:1\n\+ \d+ thing refs=2 init:1,half-done:1/,
  );
});
