// The explorer: runs several kernel paths concurrently under the Scheduler and searches their
// interleavings, each execution on the world as built (restored from a snapshot, or built
// afresh: WorldSource), with the cheap detectors after every step (new splats: a poisoned
// use after free where it happens, sleeping in atomic context, deadlocks, oopses, lockdep
// inversions) and the whole-twin check when the threads are done.
// docs/explorer.md describes the search; in short:
//
//  - "dpor": depth-first over schedules with dynamic partial-order reduction (backtrack sets
//    from the last dependent step that is not ordered by happens-before) and sleep sets, so
//    two schedules that only swap independent steps are run once. A step's footprint is what
//    it touched: the refcounted objects it got or put and the locks it took, waited for or
//    released, plus the locks its task held. A step resumed from a plain preemption point (or
//    a thread's first step) is dependent with every step: code between such yields may touch
//    anything. Steps with disjoint footprints commute.
//  - "dfs": every schedule, no reduction (what the explorer did before; the baseline).
//  - "pct": seeded random priority scheduling (PCT, Burckhardt et al. 2010): random thread
//    priorities, d-1 random priority change points; one schedule per execution, for worlds
//    too large to enumerate.
//  - preemptionBound: at most that many switches away from a thread that could go on.
//
// A failure is the schedule (thread index per step) and the steps it took; replay() runs it
// again exactly. Exceptions escaping a thread are oopses recorded with the schedule so far.

import type { Kernel, StepFootprint } from "../kernel/kernel.js";
import type { Process } from "../kernel/process.js";
import { type KRet, Scheduler, type Thread, Task } from "../kernel/sched.js";
import { checkInvariants, checkStep, type Violation } from "./invariants.js";
import { setDmaReachCheck } from "./dma_reach.js";
import { Unsnapshotable, WorldSnapshot } from "./snapshot.js";

/** One concurrent world: a kernel plus the paths to interleave, built fresh per schedule. */
export interface World {
  readonly kernel: Kernel;
  /** each entry becomes a task (of `process`, whose memory user pointers then reach); its
   * value is the path (e.g. ioctlPath(...)) */
  readonly threads: readonly {
    name: string;
    process?: Process;
    path: (t: Task) => KRet<unknown>;
    /** the path is a syscall (ioctlPath, closePath, or a sequence of them): its first step,
     * from entry to the first lock, only looks up fds and reads its own arguments, so its
     * footprint is the fd table (the explorer's assumption; without the flag a first step
     * is dependent with every step) */
    syscall?: boolean;
    /** the path makes several syscalls one after the other (Env.ioctls): fault injection
     * (./fault.ts), which fails one call and expects the twin unchanged, leaves it out */
    calls?: number;
  }[];
  /** called after every thread finished: extra checks, returns violations */
  readonly after?: (results: unknown[]) => string[];
  /** every state the threads change is reachable from the kernel or this object, none kept
   * only in a closure's variables: the explorer may build the world once and restore it from
   * a snapshot before each execution (src/check/snapshot.ts). Without it, it is rebuilt. */
  readonly snapshot?: boolean;
  /** state the threads keep outside the kernel (a harness's bookkeeping: its processes, the
   * fds it named, which threads are live), held here so that the snapshot walks it too */
  readonly state?: object;
}

/** One step of an execution: which thread ran, from which yield point to which. */
export interface StepRecord {
  readonly thread: number;
  readonly from: string;
  readonly to: string;
  /** violations the step check found right after this step */
  readonly violations: readonly Violation[];
}

export interface Outcome {
  /** the thread index that ran at each step */
  readonly schedule: readonly number[];
  readonly results: readonly unknown[];
  readonly deadlock: string | null;
  readonly violations: readonly Violation[];
  /** the first step after which a violation was seen, or null (seen at the end, or none) */
  readonly violationStep: number | null;
  readonly steps: readonly StepRecord[];
  /** thread names, for reports */
  readonly threads: readonly string[];
}

export type Strategy = "dpor" | "dfs" | "pct";

export interface ExploreOptions {
  strategy?: Strategy;
  /** stop after this many executions (default 1000) */
  maxExecutions?: number;
  /** stop after this many milliseconds of wall time */
  timeMs?: number;
  /** at most this many preemptions per schedule (null: unbounded) */
  preemptionBound?: number | null;
  /** PCT: the seed and the bug depth d (d-1 priority change points) */
  seed?: number;
  pctDepth?: number;
  /** stop at the first failing execution (the CLI); tests usually want every failure */
  stopOnFirst?: boolean;
  /** the detectors after each step (default true): off, only the end-of-run check runs */
  checkEveryStep?: boolean;
  /** poison released objects while exploring (default true) */
  poison?: boolean;
  /** restore one built world from a snapshot per execution (default true) instead of
   * building it again; worlds a snapshot cannot cover are rebuilt regardless */
  snapshot?: boolean;
  /** called every so often with the running totals */
  progress?: (p: ExploreStats) => void;
}

export interface ExploreStats {
  executions: number;
  steps: number;
  /** distinct scheduler states seen (each thread's position and the locks it holds) */
  distinctStates: number;
  /** executions cut short because every runnable thread was in the sleep set */
  sleepBlocked: number;
  violations: number;
  elapsedMs: number;
}

export interface ExploreResult extends ExploreStats {
  /** the same as executions (the explorer's earlier name) */
  readonly schedules: number;
  /** every schedule of the strategy's space was run (never true for pct) */
  readonly complete: boolean;
  /** distinct result tuples seen, as JSON, with one schedule that produced each */
  readonly outcomes: Map<string, readonly number[]>;
  readonly failures: Outcome[];
}

/** A footprint: null means "dependent with everything". */
type Footprint = StepFootprint | null;

function meets<T>(a: readonly T[], b: readonly T[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    for (let j = 0; j < b.length; j++) if (b[j] === x) return true;
  }
  return false;
}

/** Two steps conflict when they share a lock, or one releases an object the other touches
 * or releases; gets and puts that do not release commute. */
function dependent(a: Footprint, b: Footprint): boolean {
  if (a === null || b === null) return true;
  return (
    meets(a.locks, b.locks) ||
    meets(a.released, b.touched) ||
    meets(b.released, a.touched) ||
    meets(a.released, b.released)
  );
}

// yields after which a step's footprint is what it records: a lock's, a wait on a wait
// queue (its condition is read through a refcount the footprint names) and the window of
// iommufd_put_object() (its second half touches the object only through its counts)
const LOCK_YIELD = /^(mutex_lock|down_read|down_write|wait_event|iommufd_put_object)\(/;

interface Exec {
  readonly k: Kernel;
  readonly sched: Scheduler;
  readonly threads: Thread[];
  readonly names: string[];
  readonly syscall: boolean[];
  readonly after: World["after"];
  readonly bugs0: number;
  readonly inv0: number;
}

/** A world made ready for exploring: poisoning and the per-DMA check on. */
function prepare(w: World, poison: boolean): World {
  w.kernel.poison = poison;
  setDmaReachCheck(w.kernel, true); // every page a device's DMA reaches, asked of its owner
  return w;
}

/**
 * Where executions get their world: built once and restored from a snapshot before each
 * execution (src/check/snapshot.ts), or built fresh each time when the snapshot is off or the
 * world holds state a snapshot cannot walk.
 */
export class WorldSource {
  private world: World | null = null;
  private snap: WorldSnapshot | null = null;
  /** why the world is rebuilt per execution, when it is */
  unsnapshotable: string | null = null;

  constructor(
    private readonly build: () => World,
    private readonly poison: boolean,
    private readonly snapshot: boolean,
  ) {}

  next(): World {
    if (this.snap) {
      this.snap.restore();
      return this.world!;
    }
    const w = prepare(this.build(), this.poison);
    if (!this.snapshot || this.unsnapshotable !== null) return w;
    if (w.snapshot !== true) {
      this.unsnapshotable = "the world does not declare its state reachable (World.snapshot)";
      return w;
    }
    try {
      this.snap = new WorldSnapshot(w.kernel, [w]);
    } catch (err) {
      if (!(err instanceof Unsnapshotable)) throw err;
      this.unsnapshotable = err.message;
      return w;
    }
    this.world = w;
    this.snap.restore(); // nothing to undo yet: starts the side-table journal
    return w;
  }

  /** every execution runs on the same objects (restored from the snapshot): footprints of
   * earlier executions name objects of this one */
  get shared(): boolean {
    return this.snap !== null;
  }

  /** the search is over: stop journaling */
  close(): void {
    this.snap?.release();
  }
}

function start(w: World): Exec {
  if (w.threads.length > 31) throw new Error("the explorer runs at most 31 threads");
  const k = w.kernel;
  const sched = new Scheduler(k);
  const threads = w.threads.map((t) => {
    const task = new Task(t.process ?? null, t.name);
    return sched.add(
      task,
      k.withTask(task, () => t.path(task)),
    );
  });
  return {
    k,
    sched,
    threads,
    names: w.threads.map((t) => t.name),
    syscall: w.threads.map((t) => t.syscall === true),
    after: w.after,
    bugs0: k.bugs.length,
    inv0: k.lockdep.inversions.length,
  };
}

/** Indices of the threads that can run now (blocked ones whose lock came free included). */
function enabled(e: Exec): number[] {
  const out: number[] = [];
  out.length = enabledInto(e, out);
  return out;
}

/** enabled() written into `out` from index 0 (a scratch array reused step after step): the
 * count; what lies past it is stale */
function enabledInto(e: Exec, out: number[]): number {
  const ts = e.threads;
  let n = 0;
  for (let i = 0; i < ts.length; i++) {
    const th = ts[i]!;
    if (th.state === "done") continue;
    if (th.state === "blocked" && th.blockedOn!.available(th.task)) th.state = "runnable";
    if (th.state === "runnable") out[n++] = i;
  }
  return n;
}

/** Run thread i one step; its footprint (null: touches anything). An exception out of the
 * path is an oops: the thread ends with the oops as its result. */
function stepThread(e: Exec, i: number): Footprint {
  const th = e.threads[i]!;
  const from = th.at;
  // a step from a plain preemption point (or a first step of a non-syscall) is dependent
  // with every step whatever it touches: nothing is recorded for it
  const keep = from === "start" ? e.syscall[i]! : LOCK_YIELD.test(from);
  if (!keep) {
    e.k.footprint = null;
    try {
      e.sched.step(th);
    } catch (err) {
      oopsed(e, th, err, from);
    }
    return null;
  }
  const fp: StepFootprint = { locks: [], touched: [], released: [] };
  const held = th.task.held;
  for (let h = 0; h < held.length; h++) fp.locks.push(held[h]!.name);
  e.k.footprint = fp;
  const versions = fdVersions(e.k);
  try {
    e.sched.step(th);
    if (fdVersions(e.k) !== versions) fp.locks.push(FD_TABLES);
  } catch (err) {
    e.k.footprint = null;
    oopsed(e, th, err, from);
    return null;
  }
  e.k.footprint = null;
  if (from === "start") fp.locks.push(FD_TABLES);
  return fp;
}

/** an exception out of a path: an oops, and the thread ends with it as its result */
function oopsed(e: Exec, th: Thread, err: unknown, from: string): void {
  const bug = e.k.oops(err, `${th.task.label} at ${from}`);
  th.state = "done";
  th.result = `oops: ${bug.message}` as never;
  th.at = "oops";
}

/** the pseudo-lock name of the fd tables in footprints */
const FD_TABLES = "fd tables";

function fdVersions(k: Kernel): number {
  let v = 0;
  for (const p of k.processes.values()) v += p.files.version;
  return v;
}

const NO_VIOLATIONS: readonly Violation[] = Object.freeze([]);
const NO_STEPS: readonly StepRecord[] = Object.freeze([]);

/**
 * The steps of a search's execution as it keeps them: where each began and ended, by depth
 * (the thread is the schedule's), and the violations of the last one (an earlier step found
 * none: the execution would have stopped there). Reused from one execution to the next; the
 * StepRecords are made only for an execution that fails, the only outcome a search keeps.
 */
class StepLog {
  readonly from: string[] = [];
  readonly to: string[] = [];
  last: readonly Violation[] = NO_VIOLATIONS;

  records(schedule: readonly number[]): StepRecord[] {
    const out: StepRecord[] = [];
    const n = schedule.length;
    for (let i = 0; i < n; i++)
      out.push({
        thread: schedule[i]!,
        from: this.from[i]!,
        to: this.to[i]!,
        violations: i === n - 1 ? this.last : NO_VIOLATIONS,
      });
    return out;
  }
}

function finish(
  e: Exec,
  schedule: number[],
  steps: StepRecord[] | StepLog,
  deadlock: string | null,
  stepViolation: number | null,
): Outcome {
  const results = e.threads.map((t) => t.result);
  let violations: Violation[];
  if (deadlock === null && e.threads.every((t) => t.state === "done")) {
    violations = checkInvariants(e.k);
    for (const m of e.after?.(results) ?? []) violations.push({ check: "after", message: m });
  } else {
    // stopped early (a step violation or a deadlock): counts are not at a quiescent point
    violations = [...checkStep(e.k, e.bugs0, e.inv0)];
    if (deadlock !== null && !violations.some((v) => v.message.includes(deadlock)))
      violations.push({ check: "deadlock", message: deadlock });
  }
  // baseline splats from building the world are the world's, not the schedule's
  const failed = deadlock !== null || violations.length > 0;
  const records = steps instanceof StepLog ? (failed ? steps.records(schedule) : NO_STEPS) : steps;
  return { schedule, results, deadlock, violations, violationStep: stepViolation, steps: records, threads: e.names };
}

function deadlockOf(e: Exec): string | null {
  const stuck = e.threads.filter((t) => t.state === "blocked");
  if (stuck.length === 0) return null;
  const msg = stuck.map((t) => `${t.task.label} waits for ${t.blockedOn!.name} at ${t.at}`).join("; ");
  e.k.bugs.push({ kind: "deadlock", message: msg });
  return msg;
}

/**
 * Run one schedule: `prefix` (thread indices) first; then `pick` chooses (default: the thread
 * that ran last if it still can, else the lowest enabled index).
 */
export function runSchedule(
  build: () => World,
  prefix: readonly number[],
  opts: { poison?: boolean; checkEveryStep?: boolean } = {},
): Outcome {
  const e = start(prepare(build(), opts.poison ?? true));
  const schedule: number[] = [];
  const steps: StepRecord[] = [];
  let last = -1;
  let bugs = e.bugs0;
  let inv = e.inv0;
  for (;;) {
    const en = enabled(e);
    if (en.length === 0) return finish(e, schedule, steps, deadlockOf(e), null);
    const want = schedule.length < prefix.length ? prefix[schedule.length]! : -1;
    const i = en.includes(want) ? want : en.includes(last) ? last : en[0]!;
    const from = e.threads[i]!.at;
    stepThread(e, i);
    schedule.push(i);
    const v = opts.checkEveryStep === false ? [] : checkStep(e.k, bugs, inv);
    bugs = e.k.bugs.length;
    inv = e.k.lockdep.inversions.length;
    steps.push({ thread: i, from, to: e.threads[i]!.at, violations: v });
    if (v.length) return finish(e, schedule, steps, null, schedule.length - 1);
    last = i;
  }
}

/** The same as runSchedule (the explorer's earlier name). */
export function replay(build: () => World, prefix: readonly number[]): Outcome {
  return runSchedule(build, prefix);
}

function resultKey(results: readonly unknown[]): string {
  // the common case, errnos and fds: the JSON text without JSON.stringify's replacer calls
  let s = "[";
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    if (typeof r !== "number" || !Number.isFinite(r)) return resultJson(results);
    s += i === 0 ? `${r}` : `,${r}`;
  }
  return `${s}]`;
}

function resultJson(results: readonly unknown[]): string {
  return JSON.stringify(results, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
}

/** A small, seeded PRNG (mulberry32): the same seed gives the same schedules. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Search the interleavings of a world. `explore(build, n)` is the DPOR search up to n executions. */
export function explore(build: () => World, opts: ExploreOptions | number = {}): ExploreResult {
  const o: ExploreOptions = typeof opts === "number" ? { maxExecutions: opts } : opts;
  const strategy = o.strategy ?? "dpor";
  const search = new Search(build, o);
  try {
    if (strategy === "pct") search.pct();
    else search.systematic(strategy === "dpor");
  } finally {
    search.source.close();
  }
  return search.result();
}

function addBacktrack(n: Node, t: number): void {
  if (!n.backtrack.includes(t)) n.backtrack.push(t);
}

interface PartNode {
  /** the part's id when a thread's part ends at this node (0: none has yet) */
  part: number;
  readonly next: Map<string | number, PartNode>;
}

/** the empty sleep set, shared (never written: a node gets a map of its own first) */
const NO_SLEEP: Map<number, Footprint> = new Map();

/** A node of the current execution's path, for the systematic search. */
interface Node {
  /** threads enabled in the state before this step */
  readonly enabled: number[];
  /** threads still to try from this state (DPOR backtrack set, or all enabled for dfs), in
   * the order they were added (a short list: at most 31 threads) */
  readonly backtrack: number[];
  /** threads already tried from this state, a bit per thread index */
  done: number;
  /** sleeping threads in this state with the footprint of their next step (NO_SLEEP: none
   * yet; a map of its own is made when a thread goes to sleep here) */
  sleep: Map<number, Footprint>;
  /** the thread that ran from this state in the current execution, and its footprint */
  thread: number;
  footprint: Footprint;
  /** preemptions used before this step */
  readonly preemptions: number;
  /** the thread that ran before this state (-1 at the root) */
  readonly prev: number;
}

class Search {
  private readonly max: number;
  private readonly deadline: number;
  private readonly t0 = Date.now();
  private readonly bound: number | null;
  readonly source: WorldSource;
  private readonly checkEvery: boolean;
  readonly outcomes = new Map<string, readonly number[]>();
  readonly failures: Outcome[] = [];
  private readonly states = new Set<number | string>();
  executions = 0;
  steps = 0;
  /** the current execution's steps, and the threads enabled at the current step (scratch) */
  private readonly log = new StepLog();
  private readonly en: number[] = [];
  sleepBlocked = 0;
  complete = false;
  private stopped = false;

  constructor(
    build: () => World,
    private readonly o: ExploreOptions,
  ) {
    this.max = o.maxExecutions ?? 1000;
    this.deadline = o.timeMs !== undefined ? this.t0 + o.timeMs : Infinity;
    this.bound = o.preemptionBound ?? null;
    this.source = new WorldSource(build, o.poison ?? true, o.snapshot ?? true);
    this.checkEvery = o.checkEveryStep ?? true;
  }

  private budgetLeft(): boolean {
    if (this.stopped) return false;
    if (this.executions >= this.max) return false;
    if (this.deadline !== Infinity && Date.now() >= this.deadline) return false;
    return true;
  }

  private stats(): ExploreStats {
    return {
      executions: this.executions,
      steps: this.steps,
      distinctStates: this.states.size,
      sleepBlocked: this.sleepBlocked,
      violations: this.failures.length,
      elapsedMs: Date.now() - this.t0,
    };
  }

  result(): ExploreResult {
    return {
      ...this.stats(),
      schedules: this.executions,
      complete: this.complete,
      outcomes: this.outcomes,
      failures: this.failures,
    };
  }

  private record(out: Outcome): void {
    this.executions++;
    const key = resultKey(out.results);
    if (!this.outcomes.has(key)) this.outcomes.set(key, out.schedule);
    if (out.deadlock || out.violations.length > 0) {
      this.failures.push(out);
      if (this.o.stopOnFirst) this.stopped = true;
    }
    if (this.o.progress && (this.executions & 1023) === 0) this.o.progress(this.stats());
  }

  /** a thread's part of a scheduler state (yield point, steps taken, held locks) -> a
   * small id, through a trie keyed by each in turn: no string is built per step */
  private readonly partRoot: PartNode = { part: 0, next: new Map() };
  /** parts given an id so far (ids are dense: small numbers make small state keys) */
  private partCount = 0;
  /** each thread's part id in the current execution */
  private partIds: number[] = [];

  private child(n: PartNode, key: string | number): PartNode {
    let c = n.next.get(key);
    if (c === undefined) n.next.set(key, (c = { part: 0, next: new Map() }));
    return c;
  }

  private partId(th: Thread, count: number): number {
    let n = this.child(this.child(this.partRoot, th.at), count);
    const held = th.task.held;
    for (let h = 0; h < held.length; h++) n = this.child(n, held[h]!.name);
    return n.part !== 0 ? n.part : (n.part = ++this.partCount);
  }

  /** note the scheduler state after thread i stepped: each thread's yield point, step count
   * and held locks. Only thread i's part changed; the state is the tuple of part ids: for up
   * to four threads one number, negative for ids below 2^7 (a small integer, which V8 keeps
   * unboxed: no heap number to allocate and hash per step), else of ids below 2^13 */
  private noteState(e: Exec, counts: number[], i: number): void {
    const ids = this.partIds;
    ids[i] = this.partId(e.threads[i]!, counts[i]!);
    const n = e.threads.length;
    let key: number | string = 0;
    let small = n <= 4;
    for (let t = 0; t < n && small; t++) small = ids[t]! < 128;
    if (small) {
      for (let t = 0; t < n; t++) key = key * 128 + ids[t]!;
      this.states.add(-1 - key);
      return;
    }
    for (let t = 0; t < n; t++) {
      const x = ids[t]!;
      if (n > 4 || x >= 8192) {
        key = ids.slice(0, n).join(",");
        break;
      }
      key = (key as number) * 8192 + x;
    }
    this.states.add(key);
  }

  /** the parts before the first step: every thread at its start */
  private startStates(e: Exec): void {
    const n = e.threads.length;
    if (this.partIds.length !== n) this.partIds = new Array<number>(n).fill(0);
    for (let t = 0; t < n; t++) this.partIds[t] = this.partId(e.threads[t]!, 0);
  }

  /** One execution for the systematic search: follow `path` (the nodes already chosen), then
   * extend it, returning the full path of nodes. */
  private execute(path: Node[]): Node[] {
    const e = start(this.source.next());
    const schedule: number[] = [];
    const log = this.log;
    log.last = NO_VIOLATIONS;
    const en = this.en;
    const counts = new Array<number>(e.threads.length).fill(0);
    this.startStates(e);
    const nodes: Node[] = [];
    let bugs = e.bugs0;
    let inv = e.inv0;
    let sleep = NO_SLEEP;
    let prev = -1;
    let preemptions = 0;
    for (let depth = 0; ; depth++) {
      const nen = enabledInto(e, en);
      if (nen === 0) {
        this.record(finish(e, schedule, log, deadlockOf(e), null));
        return nodes;
      }
      let node: Node;
      if (depth < path.length) {
        node = path[depth]!;
      } else {
        // a new state: try the thread that ran last (no preemption) unless it sleeps, else
        // the first enabled thread awake
        let first = -1;
        for (let j = 0; j < nen; j++) {
          const t = en[j]!;
          if (sleep.size > 0 && sleep.has(t)) continue;
          if (t === prev) {
            first = t;
            break;
          }
          if (first < 0) first = t;
        }
        if (first < 0) {
          // every enabled thread's step is already covered by an equivalent schedule
          this.sleepBlocked++;
          this.executions++;
          return nodes;
        }
        node = {
          enabled: en.slice(0, nen),
          backtrack: [first],
          done: 0,
          sleep,
          thread: first,
          footprint: null,
          preemptions,
          prev,
        };
      }
      const i = node.thread;
      node.done |= 1 << i;
      log.from[depth] = e.threads[i]!.at;
      const fp = stepThread(e, i);
      node.footprint = fp;
      nodes.push(node);
      schedule.push(i);
      counts[i]!++;
      this.steps++;
      this.noteState(e, counts, i);
      const v = this.checkEvery ? checkStep(e.k, bugs, inv) : NO_VIOLATIONS;
      bugs = e.k.bugs.length;
      inv = e.k.lockdep.inversions.length;
      log.to[depth] = e.threads[i]!.at;
      if (v.length) {
        log.last = v;
        this.record(finish(e, schedule, log, null, schedule.length - 1));
        return nodes;
      }
      if (prev !== -1 && i !== prev && node.enabled.includes(prev)) preemptions = node.preemptions + 1;
      else preemptions = node.preemptions;
      // the child's sleep set: sleepers (and siblings already explored from here) whose next
      // step commutes with the one taken
      let next = NO_SLEEP;
      if (node.sleep.size > 0)
        for (const [t, f] of node.sleep) {
          if (t === i || dependent(f, fp)) continue;
          if (next === NO_SLEEP) next = new Map();
          next.set(t, f);
        }
      sleep = next;
      prev = i;
    }
  }

  /** DPOR (or plain DFS): backtrack points from the dependencies of each execution. */
  systematic(reduce: boolean): void {
    let path: Node[] = [];
    while (this.budgetLeft()) {
      const nodes = this.execute(path);
      if (reduce) this.addBacktracks(nodes);
      else for (const n of nodes) this.addAll(n);
      // the deepest node with a thread left to try
      let d = nodes.length - 1;
      let nextThread = -1;
      for (; d >= 0; d--) {
        const n = nodes[d]!;
        for (const t of n.backtrack) {
          if ((n.done >>> t) & 1 || n.sleep.has(t)) continue;
          if (!this.withinBound(n, t)) continue;
          nextThread = t;
          break;
        }
        if (nextThread >= 0) break;
      }
      if (nextThread < 0) {
        this.complete = !this.stopped;
        return;
      }
      const n = nodes[d]!;
      // the thread tried before goes to sleep for its siblings (sleep sets)
      if (reduce && n.footprint !== undefined) {
        if (n.sleep === NO_SLEEP) n.sleep = new Map();
        // a rebuilt world's objects (and the ids in its lock names) are new ones: a sleeper's
        // footprint from an earlier build would meet nothing and sleep past steps it depends
        // on, so it sleeps at this node only (null: dependent with every step)
        n.sleep.set(n.thread, this.source.shared ? n.footprint : null);
      }
      n.thread = nextThread;
      path = nodes.slice(0, d + 1);
    }
  }

  private withinBound(n: Node, t: number): boolean {
    if (this.bound === null) return true;
    const preempts = n.prev !== -1 && t !== n.prev && n.enabled.includes(n.prev);
    return n.preemptions + (preempts ? 1 : 0) <= this.bound;
  }

  private addAll(n: Node): void {
    for (const t of n.enabled) addBacktrack(n, t);
  }

  /**
   * Flanagan-Godefroid: for each step i, the latest earlier step j of another thread that is
   * dependent with it and not ordered before it by happens-before: from the state before j,
   * thread(i) must also be tried (or every enabled thread when thread(i) was not enabled).
   */
  private addBacktracks(nodes: Node[]): void {
    const n = nodes.length;
    // happens-before as bit sets over steps, a row of `words` words per step in one buffer
    // reused from one execution to the next: step i's row = the steps ordered before i
    const words = (n + 31) >>> 5;
    if (this.hb.length < n * words) this.hb = new Uint32Array(Math.max(n * words, 2 * this.hb.length));
    const hb = this.hb;
    hb.fill(0, 0, n * words);
    const lastOf = this.lastOf;
    lastOf.fill(-1);
    for (let i = 0; i < n; i++) {
      const row = i * words;
      const ti = nodes[i]!.thread;
      const fi = nodes[i]!.footprint;
      const pj = lastOf[ti]!;
      if (pj >= 0) {
        const r = pj * words;
        for (let w = 0; w < words; w++) hb[row + w]! |= hb[r + w]!;
        hb[row + (pj >>> 5)]! |= 1 << (pj & 31);
      }
      let racer = -1;
      for (let j = i - 1; j >= 0; j--) {
        const nj = nodes[j]!;
        if (nj.thread === ti) continue;
        if (!dependent(nj.footprint, fi)) continue;
        const ordered = (hb[row + (j >>> 5)]! >>> (j & 31)) & 1;
        if (!ordered && racer < 0) racer = j;
        // j -> i through the dependency
        const r = j * words;
        for (let w = 0; w < words; w++) hb[row + w]! |= hb[r + w]!;
        hb[row + (j >>> 5)]! |= 1 << (j & 31);
      }
      lastOf[ti] = i;
      if (racer >= 0) {
        const nr = nodes[racer]!;
        if (nr.enabled.includes(ti)) addBacktrack(nr, ti);
        else for (const t of nr.enabled) addBacktrack(nr, t);
      }
    }
  }

  /** addBacktracks()'s scratch: the happens-before rows, each thread's last step */
  private hb = new Uint32Array(64);
  private readonly lastOf = new Int32Array(32);

  /** PCT: random priorities, d-1 change points over the expected length; seeded. */
  pct(): void {
    const rand = rng(this.o.seed ?? 1);
    const depth = Math.max(1, this.o.pctDepth ?? 3);
    let expected = 32;
    while (this.budgetLeft()) {
      const e = start(this.source.next());
      const nt = e.threads.length;
      // distinct priorities d..d+n-1, change points lower a thread to 1..d-1
      const prio = Array.from({ length: nt }, (_, i) => depth + i);
      for (let i = nt - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [prio[i], prio[j]] = [prio[j]!, prio[i]!];
      }
      const change = new Map<number, number>();
      for (let c = 1; c < depth; c++) change.set(Math.floor(rand() * expected), depth - c);
      const schedule: number[] = [];
      const log = this.log;
      log.last = NO_VIOLATIONS;
      const counts = new Array<number>(nt).fill(0);
      this.startStates(e);
      let bugs = e.bugs0;
      let inv = e.inv0;
      let out: Outcome | null = null;
      for (let s = 0; ; s++) {
        const en = enabled(e);
        if (en.length === 0) {
          out = finish(e, schedule, log, deadlockOf(e), null);
          break;
        }
        let best = en[0]!;
        for (const t of en) if (prio[t]! > prio[best]!) best = t;
        const lower = change.get(s);
        log.from[s] = e.threads[best]!.at;
        stepThread(e, best);
        if (lower !== undefined) prio[best] = lower;
        schedule.push(best);
        counts[best]!++;
        this.steps++;
        this.noteState(e, counts, best);
        const v = this.checkEvery ? checkStep(e.k, bugs, inv) : NO_VIOLATIONS;
        bugs = e.k.bugs.length;
        inv = e.k.lockdep.inversions.length;
        log.to[s] = e.threads[best]!.at;
        if (v.length) {
          log.last = v;
          out = finish(e, schedule, log, null, schedule.length - 1);
          break;
        }
      }
      expected = Math.max(expected, schedule.length);
      this.record(out);
    }
  }
}
