// One source, two speeds (src/kernel/sched.ts SeqMode, scripts/two_speed.mjs): a kernel path
// built by scripts/build.mjs runs as a plain function inside a sequential syscall and as a
// generator everywhere else, with the same results, the same deadlock report, and the
// Scheduler still stopping at every yield point.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Kernel } from "../../src/kernel/kernel.js";
import { Mutex } from "../../src/kernel/locks.js";
import { type KGen, preempt, Scheduler, SEQ, Task } from "../../src/kernel/sched.js";
import { sysIoctl, sysOpen } from "../../src/kernel/syscalls.js";
import { EIO } from "../../src/uapi/errno.js";
import type { FileOperations } from "../../src/kernel/fs.js";

/** what the path saw: whether it ran as a generator (a yield point reached the caller) */
const seen: string[] = [];

function* inner(m: Mutex, again: boolean): KGen<number> {
  yield* m.lock();
  yield* preempt("inside");
  if (again) yield* m.lock(); // mutex_lock() twice: a deadlock
  m.unlock();
  return SEQ.on ? 1 : 2;
}

function* outer(m: Mutex, again: boolean): KGen<number> {
  seen.push(SEQ.on ? "seq" : "gen");
  const r = yield* inner(m, again);
  return r * 10;
}

function rig() {
  const k = new Kernel();
  const m = new Mutex(k, "two_speed.lock");
  const fops: FileOperations = {
    owner: null,
    name: "two-speed-test",
    unlocked_ioctl: (_f, cmd) => outer(m, cmd === 2),
  };
  k.devices.register("/dev/two_speed", fops, null);
  const p = k.spawnProcess();
  const fd = sysOpen(k, p, "/dev/two_speed", 2);
  assert.ok(fd >= 0);
  return { k, m, p, fd };
}

test("the build made a sequential twin of every KGen path (run npm run build, not plain tsc)", () => {
  const proto = Mutex.prototype as unknown as Record<string, unknown>;
  assert.equal(typeof proto["lock$seq"], "function");
  assert.equal(typeof proto["lock$gen"], "function");
});

test("a sequential ioctl runs the path as a plain function, with the same result", () => {
  const { k, m, p, fd } = rig();
  seen.length = 0;
  assert.equal(sysIoctl(k, p, fd, 1, 0), 10);
  assert.deepEqual(seen, ["seq"]);
  assert.equal(m.owner, null);
  assert.equal(SEQ.on, false, "the mode ends with the call");
  assert.deepEqual(k.bugs, []);
});

test("outside a syscall the same path is a generator the Scheduler steps through its yield points", () => {
  const { k, m } = rig();
  seen.length = 0;
  const s = new Scheduler(k);
  const a = s.add(new Task(null, "A"), outer(m, false));
  const b = s.add(new Task(null, "B"), outer(m, false));
  const r = s.run((runnable) => runnable.length - 1);
  assert.equal(r.deadlock, null);
  assert.deepEqual([a.result, b.result], [20, 20]);
  assert.deepEqual(seen, ["gen", "gen"]);
  // mutex_lock's preemption point, the path's own, and B's wait for the lock A holds
  assert.ok(r.order.length >= 6, `${r.order.length} steps`);
});

test("a deadlock in a sequential call is the same bug as under runSync: reported, and the call fails with EIO", () => {
  const { k, m, p, fd } = rig();
  assert.equal(sysIoctl(k, p, fd, 2, 0), -EIO);
  assert.equal(k.bugs.length, 1);
  assert.equal(k.bugs[0]!.kind, "deadlock");
  assert.match(
    k.bugs[0]!.message,
    /waits for two_speed\.lock at mutex_lock\(two_speed\.lock\), which no other task can release/,
  );
  assert.equal(SEQ.on, false);
  void m;
});
