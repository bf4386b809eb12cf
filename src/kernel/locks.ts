// Sleeping locks as generator paths: `yield* m.lock()` is a preemption point, then waits
// while another task owns the lock. Ownership is checked on unlock (mutex_unlock by a
// non-owner is a bug, as DEBUG_MUTEXES says). Semantics after kernel/locking/mutex.c and
// rwsem.c: no recursion, any number of readers or one writer.
//
// Lock order notes for the twin's subsystems live at the top of the file that defines each
// lock, as in the kernel; lockdep (./lockdep.ts) checks them at run time.

import type { Kernel } from "./kernel.js";
import type { KGen, Task, Waitable } from "./sched.js";
import { SideTable, SideSet } from "./side_table.js";

/** spinlocks a task holds now (preempt_count's lock part): > 0 is atomic context */
const atomicDepth = new SideTable<Task, number>();

/** A sleeping lock taken in atomic context: "BUG: sleeping function called from invalid
 * context" (kernel/sched/core.c __might_sleep()); recorded where it happens, the path goes on
 * as the kernel's does after the splat. */
function mightSleep(k: Kernel, t: Task, op: string, name: string): void {
  // no spinlock held anywhere: the common case costs one compare, no string, no WeakMap
  if (spinsHeld === 0) return;
  if ((atomicDepth.get(t) ?? 0) > 0) {
    const spins = t.held.filter((h) => spinEntries.has(h)).map((h) => h.name);
    k.bug("sleeping-while-atomic", `${t.label} calls ${op}(${name}) while holding spinlock ${spins.join(", ")}`);
  }
}
/** spinlocks held now by all tasks together (a leaked one keeps mightSleep on its slow path) */
let spinsHeld = 0;
const spinEntries = new SideSet<object>();

/** what a task's held list records for a lock taken at its default place: one object per
 * lock, made once (entries are never changed, so tasks may share one) */
interface HeldEntry {
  readonly name: string;
  readonly cls: string;
  readonly where: string;
}

export class Mutex implements Waitable {
  owner: Task | null = null;
  /** its yield point's name and its held entry, made with the lock: the explorer keys states
   * by the name, and restores a world's locks from a snapshot taken before any was taken (a
   * cache filled on first use would be emptied by every restore, and made again, a new
   * string to hash, in every execution) */
  private readonly at: string;
  private readonly heldEntry: HeldEntry;
  /** @param cls the lock class, e.g. "vfio_group.group_lock"; instances share it */
  constructor(
    private readonly k: Kernel,
    readonly cls: string,
    readonly name: string = cls,
  ) {
    this.at = `mutex_lock(${name})`;
    this.heldEntry = { name, cls, where: name };
  }

  available(): boolean {
    return this.owner === null;
  }

  // The checks that find nothing to do in a sequential call (no spinlock held, no explorer
  // footprint, no lock held before this one, the innermost lock released) are tested here
  // before calling out: the calls they guard are never made, so V8 does not inline them and
  // a path that takes a mutex stays small enough to inline the rest (docs/performance.md).
  *lock(where = this.name): KGen<void> {
    const k = this.k;
    const t = k.current;
    if (!t) throw k.bug("lock", `mutex_lock(${this.name}) outside a task`);
    if (spinsHeld !== 0) mightSleep(k, t, "mutex_lock", this.name);
    const at = this.at;
    yield { kind: "preempt", where: at };
    if (k.footprint !== null) k.footprint.locks.push(this.name);
    while (this.owner !== null) yield { kind: "block", on: this, where: at, k };
    if (t.held.length !== 0) k.lockdep.acquire(t, this.cls, where);
    this.owner = t;
    t.held.push(where === this.name ? this.heldEntry : { name: this.name, cls: this.cls, where });
  }

  unlock(): void {
    const k = this.k;
    const t = k.current;
    if (this.owner === null || this.owner !== t) {
      throw k.bug("lock", `mutex_unlock(${this.name}) by a task that does not own it`);
    }
    this.owner = null;
    if (k.footprint !== null) k.footprint.locks.push(this.name);
    const held = t.held;
    if (held.length !== 0 && held[held.length - 1]!.name === this.name) held.pop();
    else dropHeld(t, this.name);
  }

  isLocked(): boolean {
    return this.owner !== null;
  }
}

/** A reader/writer semaphore (rw_semaphore): many readers or one writer. */
export class RwSem {
  writer: Task | null = null;
  private readonly heldEntry: HeldEntry;
  /** the tasks holding it for read (an array: a sequential call adds and drops one, with no
   * hash-table churn) */
  readonly readers: Task[] = [];
  private readonly forRead: Waitable;
  private readonly forWrite: Waitable;
  /** the names of its yield points, made with it (as Mutex's) */
  private readonly readAt: string;
  private readonly writeAt: string;

  constructor(
    private readonly k: Kernel,
    readonly cls: string,
    readonly name: string = cls,
  ) {
    this.heldEntry = { name, cls, where: name };
    this.readAt = `down_read(${name})`;
    this.writeAt = `down_write(${name})`;
    this.forRead = { name: `${name} (read)`, available: () => this.writer === null };
    this.forWrite = { name: `${name} (write)`, available: () => this.writer === null && this.readers.length === 0 };
  }

  /** the held-list entry for a down at `where` (default: the lock's shared one; no string
   * compare to tell, a builtin call per lock) */
  private entry(where: string | undefined): HeldEntry {
    return where === undefined ? this.heldEntry : { name: this.name, cls: this.cls, where };
  }

  /** whether this lock is the innermost in `held` (its own shared entry compared first, by
   * identity: a string compare is a builtin call on every unlock) */
  private isInnermost(held: readonly HeldEntry[]): boolean {
    const top = held.length - 1;
    return top >= 0 && (held[top] === this.heldEntry || held[top]!.name === this.name);
  }

  // the sequential fast path tests what mightSleep/lockdep/dropHeld would find before
  // calling them, as Mutex.lock does
  *downRead(where?: string): KGen<void> {
    const k = this.k;
    const t = k.current!;
    if (spinsHeld !== 0) mightSleep(k, t, "down_read", this.name);
    const at = this.readAt;
    yield { kind: "preempt", where: at };
    if (k.footprint !== null) k.footprint.locks.push(this.name);
    while (this.writer !== null) yield { kind: "block", on: this.forRead, where: at, k };
    if (t.held.length !== 0) k.lockdep.acquire(t, this.cls, where ?? this.name);
    this.readers.push(t);
    t.held.push(this.entry(where));
  }

  upRead(): void {
    const k = this.k;
    const t = k.current!;
    const r = this.readers;
    // the last reader in is the usual one out (a sequential call's only reader): no search
    const top = r.length - 1;
    if (top >= 0 && r[top] === t) r.pop();
    else {
      const i = r.lastIndexOf(t);
      if (i < 0) throw k.bug("lock", `up_read(${this.name}) without down_read`);
      r.splice(i, 1);
    }
    if (k.footprint !== null) k.footprint.locks.push(this.name);
    const held = t.held;
    if (this.isInnermost(held)) held.pop();
    else dropHeld(t, this.name);
  }

  *downWrite(where?: string): KGen<void> {
    const k = this.k;
    const t = k.current!;
    if (spinsHeld !== 0) mightSleep(k, t, "down_write", this.name);
    const at = this.writeAt;
    yield { kind: "preempt", where: at };
    if (k.footprint !== null) k.footprint.locks.push(this.name);
    while (this.writer !== null || this.readers.length > 0) {
      yield { kind: "block", on: this.forWrite, where: at, k };
    }
    if (t.held.length !== 0) k.lockdep.acquire(t, this.cls, where ?? this.name);
    this.writer = t;
    t.held.push(this.entry(where));
  }

  upWrite(): void {
    const k = this.k;
    const t = k.current!;
    if (this.writer !== t) throw k.bug("lock", `up_write(${this.name}) by a non-owner`);
    this.writer = null;
    if (k.footprint !== null) k.footprint.locks.push(this.name);
    const held = t.held;
    if (this.isInnermost(held)) held.pop();
    else dropHeld(t, this.name);
  }
}

/**
 * spinlock_t: taken without sleeping (a plain call, no yield), and while held the task is in
 * atomic context: a sleeping lock taken then is a bug (mightSleep). The twin's paths never
 * yield between lock() and unlock() of a spinlock, so another task never finds it held.
 */
export class SpinLock {
  owner: Task | null = null;
  constructor(
    readonly k: Kernel,
    readonly cls: string,
    readonly name: string = cls,
    /** false when its owner records what it guards in step footprints itself, more finely
     * than "everything under this lock" (the iommufd object table, ../iommufd/object.ts) */
    private readonly inFootprint = true,
  ) {}

  lock(where = this.name): void {
    const t = this.k.current ?? this.k.kthread;
    if (this.owner !== null) throw this.k.bug("deadlock", `spin_lock(${this.name}) held by ${this.owner.label}`);
    this.k.lockdep.acquire(t, this.cls, where);
    if (this.inFootprint) this.k.footprint?.locks.push(this.name);
    this.owner = t;
    const e = { name: this.name, cls: this.cls, where };
    spinEntries.add(e);
    t.held.push(e);
    atomicDepth.set(t, (atomicDepth.get(t) ?? 0) + 1);
    spinsHeld++;
  }

  unlock(): void {
    const t = this.k.current ?? this.k.kthread;
    if (this.owner !== t) throw this.k.bug("lock", `spin_unlock(${this.name}) by a task that does not own it`);
    this.owner = null;
    dropHeld(t, this.name);
    atomicDepth.set(t, (atomicDepth.get(t) ?? 1) - 1);
    spinsHeld--;
  }
}

function dropHeld(t: Task | null, name: string): void {
  if (!t) return;
  const held = t.held;
  // the common case: the innermost lock goes first (no splice)
  if (held.length !== 0 && held[held.length - 1]!.name === name) {
    held.pop();
    return;
  }
  for (let i = t.held.length - 1; i >= 0; i--) {
    if (t.held[i]!.name === name) {
      t.held.splice(i, 1);
      return;
    }
  }
}
