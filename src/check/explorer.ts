// The explorer: runs several kernel paths concurrently under the Scheduler and tries every
// interleaving (depth-first over the scheduler's choices, up to a bound), each on a freshly
// built twin, checking the invariants after each complete run. A failing schedule is
// reported as a replay string, the list of choices, that `replay()` runs again exactly:
// paste it into a test (fast-check's model-based testing prints its counterexamples the
// same way).

import type { Kernel } from "../kernel/kernel.js";
import type { Process } from "../kernel/process.js";
import { type KRet, Scheduler, Task } from "../kernel/sched.js";
import { checkInvariants, type Violation } from "./invariants.js";

/** One concurrent world: a kernel plus the paths to interleave, built fresh per schedule. */
export interface World {
  readonly kernel: Kernel;
  /** each entry becomes a task (of `process`, whose memory user pointers then reach); its
   * value is the path (e.g. ioctlPath(...)) */
  readonly threads: readonly { name: string; process?: Process; path: (t: Task) => KRet<unknown> }[];
  /** called after every thread finished: extra checks, returns violations */
  readonly after?: (results: unknown[]) => string[];
}

export interface Outcome {
  /** the choices made at each step: index into the runnable threads */
  readonly schedule: readonly number[];
  readonly results: readonly unknown[];
  readonly deadlock: string | null;
  readonly violations: readonly Violation[];
}

export interface ExploreResult {
  readonly schedules: number;
  readonly complete: boolean;
  /** distinct result tuples seen, as JSON, with one schedule that produced each */
  readonly outcomes: Map<string, readonly number[]>;
  readonly failures: Outcome[];
}

/** Run one schedule: `prefix` choices first, then always the first runnable thread. */
export function replay(build: () => World, prefix: readonly number[]): Outcome & { branching: number[] } {
  const w = build();
  const s = new Scheduler(w.kernel);
  const threads = w.threads.map((t) => {
    const task = new Task(t.process ?? null, t.name);
    return s.add(
      task,
      w.kernel.withTask(task, () => t.path(task)),
    );
  });
  const schedule: number[] = [];
  const branching: number[] = [];
  const r = s.run((runnable, step) => {
    const c = step < prefix.length ? Math.min(prefix[step]!, runnable.length - 1) : 0;
    schedule.push(c);
    branching.push(runnable.length);
    return c;
  });
  const results = threads.map((t) => t.result);
  const violations = [...checkInvariants(w.kernel)];
  for (const m of w.after?.(results) ?? []) violations.push({ check: "after", message: m });
  return { schedule, results, deadlock: r.deadlock, violations, branching };
}

/** Every interleaving, depth first, up to `maxSchedules`. */
export function explore(build: () => World, maxSchedules = 1000): ExploreResult {
  const outcomes = new Map<string, readonly number[]>();
  const failures: Outcome[] = [];
  let schedules = 0;
  const stack: number[][] = [[]];
  while (stack.length > 0 && schedules < maxSchedules) {
    const prefix = stack.pop()!;
    const o = replay(build, prefix);
    schedules++;
    const key = JSON.stringify(o.results, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    if (!outcomes.has(key)) outcomes.set(key, o.schedule);
    if (o.deadlock || o.violations.length > 0) failures.push(o);
    // branch on every step past the prefix where another thread could have gone
    for (let i = o.schedule.length - 1; i >= prefix.length; i--) {
      for (let alt = o.branching[i]! - 1; alt >= 1; alt--) stack.push([...o.schedule.slice(0, i), alt]);
    }
  }
  return { schedules, complete: stack.length === 0, outcomes, failures };
}
