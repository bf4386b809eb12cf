// The twin kernel: the one object every subsystem hangs off (what "the running kernel" is
// to a module). It owns the module registry, device nodes, sysfs, processes and users, the
// live-object registry, lockdep, the virtual clock and the trace, and knows which task is
// current while a kernel path runs.

import { ENOENT } from "../uapi/errno.js";
import { DeviceNodes, Sysfs } from "./devices.js";
import { File, type FileOperations } from "./fs.js";
import { Lockdep } from "./lockdep.js";
import { nullFops } from "./mem_devices.js";
import type { HolderOwnership, HolderResolver, RefCounted } from "./kref.js";
import { ModuleRegistry } from "./module.js";
import { Process, UserStruct } from "./process.js";
import { isGen, type KGen, KernelBug, runToEnd, Task } from "./sched.js";
import { Clock } from "./time.js";
import { Trace } from "./trace.js";

export interface BugReport {
  readonly kind: string;
  readonly message: string;
  /** the kernel path's stack where it was detected, as an oops prints it */
  readonly stack?: string;
}

/** What one explorer step touched (src/check/explorer.ts); lists, not sets: a step touches
 * a handful, and a list is a fifth of a Set's allocation (a repeat costs one compare). */
export interface StepFootprint {
  /** lock names taken, waited for, released or held */
  readonly locks: string[];
  /** refcounted objects got or put (commuting with each other) */
  readonly touched: object[];
  /** objects whose last reference went (conflicts with any touch of them) */
  readonly released: object[];
}

interface FdSlot {
  readonly fd: number;
  readonly pid: number;
  readonly owner: string;
}

/** holder names parsed as fd slots (the invariant check asks for every holder of every
 * object; the explorer runs it after each execution): one per fd and pid in use */
const fdSlots = new Map<string, FdSlot | null>();

/** "fd N of pid P" -> its slot; null for any other holder name */
function fdSlot(holder: string): FdSlot | null {
  // other names carry serials from global counters ("device file 1005"): never cached
  if (!holder.startsWith("fd ")) return null;
  let s = fdSlots.get(holder);
  if (s !== undefined) return s;
  const m = /^fd (\d+) of pid (\d+)$/.exec(holder);
  s = m ? { fd: Number(m[1]), pid: Number(m[2]), owner: `pid ${m[2]}'s fd table` } : null;
  if (fdSlots.size >= 4096) fdSlots.clear();
  fdSlots.set(holder, s);
  return s;
}

export class Kernel {
  /** the task whose kernel path is running, like Linux's `current` */
  current: Task | null = null;
  readonly modules = new ModuleRegistry(this);
  readonly devices = new DeviceNodes();
  readonly sysfs = new Sysfs();
  readonly lockdep = new Lockdep();
  readonly clock = new Clock();
  readonly trace = new Trace();
  /** every live refcounted object (the leak registry) */
  readonly objects = new Set<RefCounted>();
  /** splats: use after free, refcount errors, deadlocks */
  readonly bugs: BugReport[] = [];
  readonly processes = new Map<number, Process>();
  readonly users = new Map<number, UserStruct>();
  /** a task for work done outside any process (module init, timers) */
  readonly kthread = new Task(null, "kworker");
  /** invariant checks subsystems register (src/check runs them): each returns violations */
  readonly checks = new Map<string, () => string[]>();
  /** who owns each holder name, per subsystem (src/check asks them; docs/invariants.md) */
  readonly holderOwners = new Map<string, HolderResolver>();
  /** broken variants switched on (src/check/variants.ts): each name restores one real kernel
   * bug at the place the fix went; empty in every normal twin */
  readonly broken = new Set<string>();
  /** poison released objects (the explorer's KASAN): a read or write of a field of an object
   * after its release is a use-after-free bug at the place it happens (kref.ts) */
  poison = false;
  /** objects poisoned so far (kref.ts poisonFields): a world snapshot (src/check/snapshot.ts)
   * turns their accessors back into fields when it restores them */
  readonly poisoned: object[] = [];
  /** while the explorer runs one step: what the step touched (refcounted objects got or put,
   * lock names taken, waited for or released), its footprint for partial-order reduction */
  footprint: StepFootprint | null = null;
  private nextPid = 1;

  constructor() {
    this.devices.register("/dev/null", nullFops, null);
    this.holderOwners.set("core", (h, o) => this.coreHolder(h, o));
    // a device timer that throws is an oops in softirq context: recorded, time goes on
    this.clock.onOops = (e, timer) => void this.oops(e, `timer ${timer}`);
  }

  /** The core's holders: fd slots ("fd N of pid P") and mappings ("vma") of live processes. */
  private coreHolder(holder: string, obj: RefCounted): HolderOwnership | undefined {
    if (holder === "vma") {
      let holds = 0;
      for (const p of this.processes.values()) for (const v of p.mm.vmas) if (v.file === obj) holds++;
      return { owner: "the VMAs of live processes", released: false, holds };
    }
    const slot = fdSlot(holder);
    if (!slot) return undefined;
    const p = this.processes.get(slot.pid);
    if (!p || p.exited) return { owner: slot.owner, released: true, holds: 0 };
    return { owner: slot.owner, released: false, holds: p.files.peek(slot.fd) === obj ? 1 : 0 };
  }

  /** Record a kernel bug and return the error to throw. */
  bug(kind: string, message: string): KernelBug {
    const e = new KernelBug(kind, message);
    this.bugs.push({ kind, message, ...(e.stack ? { stack: e.stack } : {}) });
    return e;
  }

  /**
   * An exception escaped a kernel path (a JavaScript error the model did not expect: a bug of
   * the twin's kernel, as an oops is of Linux's): recorded once, with the stack where it was
   * thrown, as a KernelBug of kind "oops". A KernelBug already recorded is returned as is.
   */
  oops(e: unknown, where: string): KernelBug {
    if (e instanceof KernelBug) return e;
    const err = e instanceof Error ? e : new Error(String(e));
    const message = `${where}: ${err.name}: ${err.message}`;
    const bug = new KernelBug("oops", message, { cause: err });
    if (err.stack) bug.stack = `${bug.name}: ${bug.message}\n${err.stack.split("\n").slice(1).join("\n")}`;
    this.bugs.push({ kind: "oops", message, ...(bug.stack ? { stack: bug.stack } : {}) });
    return bug;
  }

  user(uid: number): UserStruct {
    let u = this.users.get(uid);
    if (!u) this.users.set(uid, (u = new UserStruct(uid)));
    return u;
  }

  spawnProcess(opts: { uid?: number; memlock?: number; name?: string; caps?: number[] } = {}): Process {
    const pid = this.allocPid();
    const p = new Process(pid, this.user(opts.uid ?? 1000), opts.memlock ?? 8 * 1024 * 1024, opts.name ?? "proc");
    for (const c of opts.caps ?? []) p.caps.add(c);
    this.adoptProcess(p);
    // stdin, stdout, stderr
    for (let fd = 0; fd < 3; fd++) {
      const f = this.allocFile(nullFops, "/dev/null", fd === 0 ? 0 : 1) as File;
      f.opened = true;
      p.files.install(f);
    }
    return p;
  }

  allocPid(): number {
    return this.nextPid++;
  }

  /** Make a process built elsewhere (a bridged client, src/bridge) one of this kernel's. */
  adoptProcess(p: Process): void {
    p.mm.onVmaClose = (v) => v.file?.put("vma");
    this.processes.set(p.pid, p);
  }

  /**
   * A new File for `fops` (alloc_file + fops_get): pins the owning module, and fails with
   * -ENOENT when that module is going away.
   */
  allocFile(fops: FileOperations, path: string, flags: number): File | number {
    if (!this.modules.tryGet(fops.owner, `file ${path}`)) return -ENOENT;
    return new File(this, fops, path, flags);
  }

  /**
   * The last reference to a file went (fs/file_table.c fput()). In a syscall the release is
   * deferred to task_work and runs on the return to user space, after the syscall dropped
   * its locks, as Linux does; elsewhere (kernel threads, timers) it runs at once.
   */
  fput(f: File): void {
    const t = this.current;
    if (t !== null && t.inSyscall) t.taskWork.push(f);
    else this.__fput(f);
  }

  /** __fput(): run ->release, then unpin the module the file's fops belong to. */
  __fput(f: File): void {
    if (f.opened && f.fops.release) {
      const r = f.fops.release(f);
      runToEnd(this, r);
    }
    this.modules.put(f.fops.owner, `file ${f.path}`);
  }

  /** The same as a path for the Scheduler: a release that sleeps yields. */
  *__fputPath(f: File): KGen<void> {
    if (f.opened && f.fops.release) {
      const r = f.fops.release(f);
      if (isGen(r)) yield* r;
    }
    this.modules.put(f.fops.owner, `file ${f.path}`);
  }

  /** task_work_run() on the way back to user space: releases may queue further fputs. */
  runTaskWork(t: Task): void {
    this.withTask(t, () => {
      for (let f = t.taskWork.shift(); f; f = t.taskWork.shift()) this.__fput(f);
    });
  }

  *taskWorkPath(t: Task): KGen<void> {
    for (let f = t.taskWork.shift(); f; f = t.taskWork.shift()) yield* this.__fputPath(f);
  }

  /** Run `fn` with `t` as current (for work outside a syscall: timers, module init). */
  withTask<T>(t: Task, fn: () => T): T {
    const prev = this.current;
    this.current = t;
    try {
      return fn();
    } finally {
      this.current = prev;
    }
  }
}
