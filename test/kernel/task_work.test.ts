import { test } from "node:test";
import assert from "node:assert/strict";
import { Kernel } from "../../src/kernel/kernel.js";
import type { FileOperations } from "../../src/kernel/fs.js";
import { Mutex } from "../../src/kernel/locks.js";
import { type KGen, Scheduler, Task } from "../../src/kernel/sched.js";
import { closePath, sysClose, sysIoctl, sysOpen } from "../../src/kernel/syscalls.js";

// A driver whose ioctl drops the last reference to another file (as KVM's FILE_DEL does) and
// whose release takes a lock: the release must run on the way out, not inside the ioctl.
function boot() {
  const k = new Kernel();
  const log: string[] = [];
  const lock = new Mutex(k, "drv.lock");
  const held = new Map<number, import("../../src/kernel/fs.js").File>();
  const fops: FileOperations = {
    owner: null,
    name: "drv",
    *release(f): KGen<void> {
      yield* lock.lock();
      log.push(`release ${f.ino}`);
      lock.unlock();
    },
    *unlocked_ioctl(f, cmd, arg): KGen<number> {
      const p = k.current!.process!;
      yield* lock.lock();
      if (cmd === 1) {
        // take a reference to the file behind fd `arg`
        const other = p.files.lookup(arg)!;
        held.set(f.ino, other.get("drv"));
      } else {
        held.get(f.ino)!.put("drv");
        log.push("put in ioctl");
      }
      lock.unlock();
      return 0;
    },
  };
  k.devices.register("/dev/drv", fops, null);
  return { k, log, lock };
}

test("a last fput inside a syscall is deferred to the return to user space", () => {
  const { k, log } = boot();
  const p = k.spawnProcess();
  const a = sysOpen(k, p, "/dev/drv", 2);
  const b = sysOpen(k, p, "/dev/drv", 2);
  assert.equal(sysIoctl(k, p, a, 1, b), 0);
  assert.equal(sysClose(k, p, b), 0);
  assert.deepEqual(log, [], "the driver still holds b");
  assert.equal(sysIoctl(k, p, a, 2, 0), 0);
  // without deferral the release would have taken drv.lock while the ioctl held it: a deadlock
  assert.equal(log.length, 2);
  assert.equal(log[0], "put in ioctl");
  assert.match(log[1]!, /^release \d+$/);
  assert.equal(p.mainTask.taskWork.length, 0);
  assert.equal(k.bugs.length, 0);
});

test("under the Scheduler a close whose release waits for a lock yields instead of deadlocking", () => {
  const { k, log, lock } = boot();
  const p = k.spawnProcess();
  const a = sysOpen(k, p, "/dev/drv", 2);
  const s = new Scheduler(k);
  const holder = new Task(p, "holder");
  s.add(
    holder,
    (function* (): KGen<number> {
      yield* lock.lock();
      yield { kind: "preempt", where: "holding drv.lock" };
      lock.unlock();
      return 0;
    })(),
  );
  const ct = new Task(p, "closer");
  const closer = s.add(ct, closePath(k, p, ct, a));
  // the holder takes the lock first, then the closer runs while it is held
  const r = s.run((runnable, step) => (step < 2 ? 0 : runnable.length - 1));
  assert.equal(r.deadlock, null);
  assert.equal(closer.result, 0);
  assert.equal(log.length, 1);
  assert.ok(closer.task.held.length === 0 && lock.owner === null);
});
