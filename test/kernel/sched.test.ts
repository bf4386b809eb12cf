import { test } from "node:test";
import assert from "node:assert/strict";
import { Kernel } from "../../src/kernel/kernel.js";
import { Mutex, RwSem } from "../../src/kernel/locks.js";
import { type KGen, KernelBug, preempt, runSync, Scheduler, Task } from "../../src/kernel/sched.js";

function* critical(m: Mutex, log: string[], name: string): KGen<string> {
  yield* m.lock();
  log.push(`${name} in`);
  yield* preempt(`${name} inside`);
  log.push(`${name} out`);
  m.unlock();
  return name;
}

test("the scheduler interleaves two paths and the mutex keeps them apart", () => {
  const k = new Kernel();
  const m = new Mutex(k, "test.lock");
  const log: string[] = [];
  const s = new Scheduler(k);
  const a = s.add(new Task(null, "A"), critical(m, log, "A"));
  const b = s.add(new Task(null, "B"), critical(m, log, "B"));
  // always pick the last runnable: B starts, A is preferred whenever both can run
  const r = s.run((runnable) => runnable.length - 1);
  assert.equal(r.deadlock, null);
  assert.equal(a.result, "A");
  assert.equal(b.result, "B");
  assert.equal(log.length, 4);
  // whatever the order, no "in" follows an "in" without an "out" between
  for (let i = 0; i + 1 < log.length; i += 2) {
    assert.equal(log[i]!.split(" ")[0], log[i + 1]!.split(" ")[0]);
    assert.equal(log[i + 1]!.endsWith("out"), true);
  }
});

test("different choices give different interleavings of unlocked steps", () => {
  const k = new Kernel();
  const orders = new Set<string>();
  for (const pick of [0, 1]) {
    const log: string[] = [];
    const s = new Scheduler(k);
    const step = function* (n: string): KGen<void> {
      log.push(`${n}1`);
      yield* preempt(n);
      log.push(`${n}2`);
    };
    s.add(new Task(null, "A"), step("A"));
    s.add(new Task(null, "B"), step("B"));
    s.run((r) => Math.min(pick, r.length - 1));
    orders.add(log.join(","));
  }
  assert.equal(orders.size, 2, [...orders].join(" | "));
});

test("a task that takes a mutex it holds deadlocks: runSync reports it", () => {
  const k = new Kernel();
  const m = new Mutex(k, "self.lock");
  function* twice(): KGen<void> {
    yield* m.lock();
    yield* m.lock();
  }
  assert.throws(() => runSync(k, new Task(null, "T"), twice()), KernelBug);
  assert.equal(k.bugs[0]!.kind, "deadlock");
});

test("two tasks taking two locks in opposite orders: the scheduler finds the deadlock", () => {
  const k = new Kernel();
  const a = new Mutex(k, "lock_a");
  const b = new Mutex(k, "lock_b");
  function* ab(x: Mutex, y: Mutex): KGen<void> {
    yield* x.lock();
    yield* preempt("between");
    yield* y.lock();
    y.unlock();
    x.unlock();
  }
  const s = new Scheduler(k);
  s.add(new Task(null, "T1"), ab(a, b));
  s.add(new Task(null, "T2"), ab(b, a));
  // round robin: each takes its first lock before the other takes its second
  const r = s.run((runnable, step) => step % runnable.length);
  assert.ok(r.deadlock?.includes("lock_"), String(r.deadlock));
});

test("lockdep reports an inversion with both stacks even when no deadlock happens", () => {
  const k = new Kernel();
  const group = new Mutex(k, "vfio_group.group_lock");
  const kvmLock = new Mutex(k, "kvm.lock");
  function* nested(x: Mutex, y: Mutex): KGen<void> {
    yield* x.lock("outer");
    yield* y.lock("inner");
    y.unlock();
    x.unlock();
  }
  const t1 = new Task(null, "set_kvm");
  t1.call = "ioctl";
  runSync(k, t1, nested(kvmLock, group));
  assert.equal(k.lockdep.inversions.length, 0);
  runSync(k, new Task(null, "open_device"), nested(group, kvmLock));
  assert.equal(k.lockdep.inversions.length, 1);
  const inv = k.lockdep.inversions[0]!;
  assert.deepEqual(inv.established.chain, ["kvm.lock", "vfio_group.group_lock"]);
  assert.deepEqual(inv.now.chain, ["vfio_group.group_lock", "kvm.lock"]);
  assert.match(k.lockdep.report(), /possible circular locking dependency/);
  assert.match(k.lockdep.report(), /open_device/);
});

test("rw_semaphore: readers leave in any order, a named down keeps its own held entry", () => {
  const k = new Kernel();
  const outer = new RwSem(k, "test.outer");
  const sem = new RwSem(k, "test.rwsem");
  const t1 = new Task(null, "R1");
  const t2 = new Task(null, "R2");
  // two readers under the scheduler: R1 (first in) leaves first, so the reader that goes is
  // not the last one listed
  const left: string[] = [];
  function* reader(): KGen<void> {
    yield* outer.downRead("outer at entry");
    yield* sem.downRead();
    yield* preempt("reading");
    left.push(`${k.current!.name} leaves ${sem.readers.map((x) => x.name).join(",")}`);
    sem.upRead();
    outer.upRead();
  }
  const s = new Scheduler(k);
  s.add(t1, reader());
  s.add(t2, reader());
  // both readers in before either leaves (round robin), then the first runnable (R1) first
  const r = s.run((runnable, step) => (step < 6 ? step % runnable.length : 0));
  assert.equal(r.deadlock, null);
  assert.equal(sem.readers.length, 0);
  assert.equal(outer.readers.length, 0);
  assert.deepEqual([t1.held, t2.held], [[], []]);
  assert.deepEqual(left, ["R1 leaves R1,R2", "R2 leaves R2"]);
  // the named down recorded the order with its own `where`; a writer takes it alone
  function* writer(): KGen<void> {
    yield* outer.downWrite("named");
    assert.deepEqual(
      k.current!.held.map((h) => h.where),
      ["named"],
    );
    yield* sem.downWrite();
    assert.deepEqual(
      k.current!.held.map((h) => h.name),
      ["test.outer", "test.rwsem"],
    );
    sem.upWrite();
    outer.upWrite();
  }
  const w = new Task(null, "W");
  runSync(k, w, writer());
  assert.deepEqual(w.held, []);
  assert.equal(k.lockdep.inversions.length, 0);
  // an up_read by a task that never took it is a kernel bug, and changes nothing
  assert.throws(() => k.withTask(w, () => sem.upRead()), KernelBug);
});
