// Kernel paths as generators (docs/design.md §2). A path yields where the real kernel could be
// preempted or sleep in a way another thread could observe: before taking a lock, while
// waiting for one, at explicit preemption points. A sequential syscall drives its path to
// completion at once (runSync); the Scheduler runs several paths and lets a chooser decide
// who goes next, which is what the explorer in src/check builds on.
//
// A path that cannot block is a plain function: file operations may return either a value
// or a generator (KRet), and the syscall layer only pays for a generator when there is one.

import { ioctlsByNr } from "../uapi/ioctls.js";
import type { Kernel } from "./kernel.js";
import type { Process } from "./process.js";
import type { File } from "./fs.js";

/** Something a task can wait for: a lock, a completion. */
export interface Waitable {
  readonly name: string;
  /** true when the task asking could make progress now */
  available(t: Task): boolean;
}

export type Yield =
  | { readonly kind: "preempt"; readonly where: string }
  | {
      readonly kind: "block";
      readonly on: Waitable;
      readonly where: string;
      /** the kernel whose lock it is: a sequential call reports a deadlock to it */
      readonly k?: Kernel;
    };

export type KGen<T> = Generator<Yield, T, void>;
/** What a kernel entry point returns: a value at once, or a path that may block. */
export type KRet<T> = T | KGen<T>;

let nextTid = 1;

/** A kernel thread of control: one syscall in flight from one process. */
export class Task {
  readonly tid = nextTid++;
  /** locks held, innermost last (lockdep reads this) */
  readonly held: { name: string; cls: string; where: string }[] = [];
  /** the syscall in progress and its first two arguments (set cheaply on every entry; the
   * text form is built only when a report needs it) */
  call = "";
  a0 = 0;
  a1 = 0;
  /** open's path, set by open (the origin of the references an open takes names it) */
  path = "";
  /** inside a syscall: a last fput is deferred to `taskWork` until the return to user space */
  inSyscall = false;
  /** task_work: files whose last reference went during this syscall (____fput) */
  readonly taskWork: File[] = [];
  constructor(
    readonly process: Process | null,
    readonly name: string,
  ) {}

  /** what the task is doing, e.g. "proc[2] ioctl(5, VFIO_GROUP_SET_CONTAINER)" */
  get label(): string {
    if (!this.call) return this.name;
    if (this.call === "ioctl") {
      const n = ioctlsByNr(this.a1)[0]?.name ?? `0x${this.a1.toString(16)}`;
      return `${this.name} ioctl(${this.a0}, ${n})`;
    }
    return `${this.name} ${this.call}(${this.a0})`;
  }
}

/** A kernel bug the model detected (use after free, deadlock, refcount underflow): a splat. */
export class KernelBug extends Error {
  constructor(
    readonly kind: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`BUG: ${kind}: ${message}`, options);
    this.name = "KernelBug";
  }
}

export function isGen<T>(r: KRet<T>): r is KGen<T> {
  return typeof r === "object" && r !== null && typeof (r as KGen<T>).next === "function";
}

/**
 * The two speeds of a kernel path (docs/performance.md). The build (scripts/build.mjs) emits
 * each `function* f(...): KGen<T>` three times: f$gen (the generator as written), f$seq (the
 * same body as a plain function, yield points gone) and f, which calls f$seq while `on` is
 * set and f$gen otherwise. The syscall layer sets `on` for the duration of a file operation
 * in a sequential call (doIoctl, call in syscalls.ts); everything else, the Scheduler's paths
 * included, sees generators. A block yield carries its lock's kernel: a deadlock found in a
 * sequential call is reported there, as runSync reports one.
 * Whoever drives a generator (runSync, the Scheduler, run() here) clears `on` while it does,
 * so code inside a generator always gets generators from the paths it calls.
 */
export interface SeqMode {
  /** a sequential call is running: transformed paths run as plain functions */
  on: boolean;
  /** `yield* E` in a sequential body: E's value, driving E to its end if it is a generator */
  run<T>(r: KRet<T>): T;
  /** `yield y` in a sequential body: nothing, or the deadlock of a block nobody can lift */
  yielded(y: Yield): void;
}

const SEQ_KEY = "__kseq";

function seqRun<T>(r: KRet<T>): T {
  if (!isGen(r)) return r;
  const s = SEQ;
  s.on = false;
  try {
    for (;;) {
      const x = r.next();
      if (x.done) return x.value;
      seqYielded(x.value);
    }
  } finally {
    s.on = true;
  }
}

function seqYielded(y: Yield): void {
  if (y.kind !== "block") return;
  const k = y.k ?? null;
  const t = k?.current ?? null;
  if (y.on.available(t!)) return;
  const label = t?.label ?? "a task";
  const msg = `${label} waits for ${y.on.name} at ${y.where}, which no other task can release`;
  throw k ? k.bug("deadlock", msg) : new KernelBug("deadlock", msg);
}

/** The one SeqMode of this JavaScript realm: transformed code names it as the global __kseq. */
export const SEQ: SeqMode = ((globalThis as Record<string, unknown>)[SEQ_KEY] ??= {
  on: false,
  run: seqRun,
  yielded: seqYielded,
}) as SeqMode;

/**
 * Drive one path to completion with `t` as current. Alone, a task that must block can never
 * be woken: that is a deadlock (e.g. a mutex taken twice), reported as a KernelBug.
 */
export function runSync<T>(k: Kernel, t: Task, r: KRet<T>): T {
  if (!isGen(r)) return r;
  const prev = k.current;
  k.current = t;
  // a generator's body gets generators from the paths it calls (SeqMode)
  const seq = SEQ.on;
  SEQ.on = false;
  try {
    for (;;) {
      const s = r.next();
      if (s.done) return s.value;
      const y = s.value;
      if (y.kind === "block" && !y.on.available(t)) {
        throw k.bug("deadlock", `${t.label} waits for ${y.on.name} at ${y.where}, which no other task can release`);
      }
    }
  } finally {
    k.current = prev;
    SEQ.on = seq;
  }
}

/** A path run to its end on the current task (the kernel thread outside a syscall), from code
 * that cannot yield: a wait there is a deadlock splat (runSync). */
export function runToEnd<T>(k: Kernel, r: KRet<T>): T {
  return runSync(k, k.current ?? k.kthread, r);
}

/** One path under the Scheduler. */
export interface Thread<T = unknown> {
  readonly task: Task;
  readonly gen: KGen<T>;
  state: "runnable" | "blocked" | "done";
  blockedOn: Waitable | null;
  result: T | undefined;
  /** the last yield point reached, for traces */
  at: string;
}

/** Picks the next thread among the runnable ones (index into `runnable`). */
export type Chooser = (runnable: readonly Thread[], step: number) => number;

export interface ScheduleResult {
  /** tids in the order they were resumed */
  readonly order: number[];
  readonly deadlock: string | null;
}

/**
 * Interleaves several kernel paths. Each step resumes one runnable thread up to its next
 * yield; a thread blocked on a Waitable becomes runnable again when it is available.
 */
export class Scheduler {
  readonly threads: Thread[] = [];
  constructor(private readonly k: Kernel) {}

  add<T>(task: Task, path: KRet<T>): Thread<T> {
    const gen: KGen<T> = isGen(path) ? path : done(path);
    const th: Thread<T> = { task, gen, state: "runnable", blockedOn: null, result: undefined, at: "start" };
    this.threads.push(th as Thread);
    return th;
  }

  runnable(): Thread[] {
    const out: Thread[] = [];
    for (const th of this.threads) {
      if (th.state === "done") continue;
      if (th.state === "blocked" && th.blockedOn!.available(th.task)) th.state = "runnable";
      if (th.state === "runnable") out.push(th);
    }
    return out;
  }

  /** Resume one thread until its next yield. */
  step(th: Thread): void {
    const prev = this.k.current;
    this.k.current = th.task;
    const seq = SEQ.on;
    SEQ.on = false;
    try {
      const s = th.gen.next();
      if (s.done) {
        th.state = "done";
        th.result = s.value;
        th.at = "done";
        return;
      }
      th.at = s.value.where;
      if (s.value.kind === "block" && !s.value.on.available(th.task)) {
        th.state = "blocked";
        th.blockedOn = s.value.on;
      }
    } finally {
      this.k.current = prev;
      SEQ.on = seq;
    }
  }

  /** Run until every thread is done, or none can move (a deadlock, reported, not thrown). */
  run(choose: Chooser = () => 0): ScheduleResult {
    const order: number[] = [];
    for (let stepNo = 0; ; stepNo++) {
      const r = this.runnable();
      if (r.length === 0) {
        const stuck = this.threads.filter((t) => t.state === "blocked");
        if (stuck.length === 0) return { order, deadlock: null };
        const msg = stuck.map((t) => `${t.task.label} waits for ${t.blockedOn!.name} at ${t.at}`).join("; ");
        this.k.bugs.push({ kind: "deadlock", message: msg });
        return { order, deadlock: msg };
      }
      const i = choose(r, stepNo);
      const th = r[Math.max(0, Math.min(r.length - 1, i))]!;
      order.push(th.task.tid);
      this.step(th);
    }
  }
}

// eslint-disable-next-line require-yield
function* done<T>(v: T): KGen<T> {
  return v;
}

/** A preemption point: `yield* preempt("after pin")`. */
export function* preempt(where: string): KGen<void> {
  yield { kind: "preempt", where };
}
