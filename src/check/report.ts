// A violation as a file: the minimal replayable trace (JSON) and its strace-like text with the
// interleaving marked. The JSON names the world, the coupling design, the broken switches and
// the schedule (thread index per step); replayTrace() rebuilds the world and runs exactly that
// schedule, which is what `vfio-twin replay FILE` does.

import type { CouplingDesign } from "../kvm/vfio_coupling.js";
import { formatEvent, type TraceEvent } from "../kernel/trace.js";
import { type ExploreStats, type Outcome, runSchedule, type World } from "./explorer.js";
import type { Violation } from "./invariants.js";
import type { ConcurrentProgram } from "./random_program.js";

export const TRACE_FORMAT = "vfio-twin-explore-trace/1";

/** Totals of no search yet, for a run over several worlds or programs to add to. */
export function noStats(): ExploreStats {
  return { executions: 0, steps: 0, distinctStates: 0, sleepBlocked: 0, violations: 0, elapsedMs: 0 };
}

export interface TraceFile {
  readonly format: typeof TRACE_FORMAT;
  /** a world of ./worlds.ts, "random:SEED" (./random_world.ts) or "program:SEED"
   * (./random_program.ts, with the program below) */
  readonly world: string;
  /** the generated program, shrunk, of a "program:SEED" world */
  readonly program?: ConcurrentProgram;
  readonly design: CouplingDesign;
  readonly broken: readonly string[];
  /** the variant selected, when one was */
  readonly variant?: string;
  readonly threads: readonly string[];
  readonly schedule: readonly number[];
  readonly results: readonly unknown[];
  readonly violations: readonly Violation[];
  readonly violationStep: number | null;
}

/** The failure's kind: the same check on the same thing (numbers stripped: inode numbers,
 * object serials and context names differ between runs of one schedule in one process). */
export function violationKey(v: readonly Violation[]): string {
  return v.map((x) => `${x.check}: ${x.message.replace(/\d+/g, "#")}`).join("; ");
}

/**
 * The shortest prefix of the failing schedule that, continued without preemption (the
 * thread that ran last goes on while it can), fails the same way: fewer context switches,
 * the same bug. Returns the outcome of that run.
 */
export function minimize(build: () => World, bad: Outcome): Outcome {
  const key = violationKey(bad.violations);
  let lo = 0;
  let best = bad;
  // a linear scan from the shortest: schedules are short (tens of steps)
  for (; lo < bad.schedule.length; lo++) {
    const o = runSchedule(build, bad.schedule.slice(0, lo));
    if ((o.violations.length > 0 || o.deadlock) && violationKey(o.violations) === key) {
      best = o;
      break;
    }
  }
  return best;
}

export function traceFile(
  o: Outcome,
  ctx: { world: string; design: CouplingDesign; broken: readonly string[]; variant?: string },
): TraceFile {
  return {
    format: TRACE_FORMAT,
    world: ctx.world,
    design: ctx.design,
    broken: ctx.broken,
    ...(ctx.variant ? { variant: ctx.variant } : {}),
    threads: o.threads,
    schedule: o.schedule,
    results: o.results.map(jsonable),
    violations: o.violations,
    violationStep: o.violationStep,
  };
}

function jsonable(v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}

export function parseTraceFile(text: string): TraceFile {
  const t = JSON.parse(text) as TraceFile;
  if (t.format !== TRACE_FORMAT) throw new Error(`not a ${TRACE_FORMAT} file`);
  if (!Array.isArray(t.schedule) || !t.schedule.every((x) => Number.isInteger(x) && x >= 0))
    throw new Error("bad schedule");
  if (t.world.startsWith("program:") && (typeof t.program !== "object" || !Array.isArray(t.program?.threads)))
    throw new Error("a program world without its program");
  return t;
}

/**
 * Run a schedule with the syscall trace on and render it: one line per step (the thread, the
 * yield points it ran between), the syscalls that completed in it, a mark at each switch of
 * thread (preempted: the thread that ran could have gone on), the violation where it was seen.
 */
export function runTraced(build: () => World, schedule: readonly number[]): { outcome: Outcome; text: string[] } {
  const events: TraceEvent[] = [];
  const traced = (): World => {
    const w = build();
    w.kernel.trace.enabled = true;
    w.kernel.trace.sink = (e) => events.push(e);
    return w;
  };
  const o = runSchedule(traced, schedule);
  return { outcome: o, text: formatOutcome(o, events) };
}

export function formatOutcome(o: Outcome, events: readonly TraceEvent[] = []): string[] {
  const out: string[] = [];
  const width = Math.max(...o.threads.map((n) => n.length));
  let prev = -1;
  for (let i = 0; i < o.steps.length; i++) {
    const s = o.steps[i]!;
    if (prev !== -1 && s.thread !== prev) {
      const stillRunnable = o.steps.slice(i).some((x) => x.thread === prev);
      out.push(`  ---- ${stillRunnable ? "preempt" : "switch"}: ${o.threads[prev]} -> ${o.threads[s.thread]} ----`);
    }
    out.push(`${String(i).padStart(3)} [${o.threads[s.thread]!.padEnd(width)}] ${s.from} -> ${s.to}`);
    for (const v of s.violations) out.push(`    !!! [${v.check}] ${v.message}`);
    prev = s.thread;
  }
  if (events.length) {
    out.push("syscalls completed, in order:");
    for (const e of events) out.push(`  ${formatEvent(e)}`);
  }
  out.push(`results: ${o.threads.map((n, i) => `${n} = ${JSON.stringify(jsonable(o.results[i]))}`).join(", ")}`);
  if (o.deadlock) out.push(`DEADLOCK: ${o.deadlock}`);
  for (const v of o.violations) out.push(`VIOLATION [${v.check}] ${v.message}`);
  if (!o.deadlock && o.violations.length === 0) out.push("no violation");
  return out;
}
