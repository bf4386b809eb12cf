// One exploration as the CLI and the tests ask for it: a named world (or seeded random
// worlds, or seeded random programs), a coupling design, a broken variant, a budget of
// executions or of time; the totals and the first violation, minimized, as a replayable trace
// file and its text.

import type { CouplingDesign } from "../kvm/vfio_coupling.js";
import { explore, type ExploreResult, type ExploreStats, type Strategy, type World } from "./explorer.js";
import { type ConcurrentProgram, programTraceFile, programWorld, searchPrograms } from "./random_program.js";
import { randomWorld } from "./random_world.js";
import { minimize, noStats, parseTraceFile, runTraced, type TraceFile, traceFile, violationKey } from "./report.js";
import { variantByName } from "./variants.js";
import { worldByName, type WorldOptions } from "./worlds.js";

export interface RunOptions {
  world?: string;
  /** seeded random worlds instead of a named one */
  random?: boolean;
  /** with `random`: this many generated concurrent programs (./random_program.ts), each
   * searched for `budget` executions (default 20), the first violation shrunk */
  programs?: number;
  design?: CouplingDesign;
  variant?: string;
  seed?: number;
  /** executions (default 2000 when no time is given) */
  budget?: number;
  timeMs?: number;
  strategy?: Strategy;
  preemptionBound?: number | null;
  progress?: (p: ExploreStats & { world: string }) => void;
}

export interface RunReport extends ExploreStats {
  readonly world: string;
  readonly design: CouplingDesign;
  readonly broken: readonly string[];
  readonly variant: string | null;
  readonly strategy: Strategy;
  readonly complete: boolean;
  readonly worlds: number;
  /** random programs: how many were generated, and the runs that shrank the violation's */
  readonly programs?: { generated: number; shrinkRuns: number; threads: number; ops: number } | null;
  /** the first violation, minimized */
  readonly trace: TraceFile | null;
  readonly text: readonly string[] | null;
}

/** The world builder a trace or a run names: a world of ./worlds.ts, "random:SEED", or
 * "program:SEED" with its program. */
export function builderFor(world: string, o: WorldOptions, program?: ConcurrentProgram): () => World {
  if (world.startsWith("program:")) {
    if (!program) throw new Error(`${world}: the program is missing`);
    return () => programWorld(program, o);
  }
  const m = /^random:(\d+)$/.exec(world);
  if (m) return () => randomWorld(Number(m[1]), o);
  const w = worldByName(world);
  if (!w) throw new Error(`unknown world ${world}`);
  return () => w.build(o);
}

export function runExplore(o: RunOptions): RunReport {
  const v = o.variant !== undefined ? variantByName(o.variant) : null;
  if (o.variant !== undefined && !v) throw new Error(`unknown variant ${o.variant}`);
  const design = o.design ?? v?.design ?? "upstream";
  const broken = v?.broken ?? [];
  const strategy = o.strategy ?? (o.random && o.programs !== undefined ? "pct" : "dpor");
  if (o.random && o.programs !== undefined) return runPrograms(o, o.programs, design, v, strategy);
  const budget = o.budget ?? (o.timeMs === undefined ? 2000 : Infinity);
  const t0 = Date.now();
  const seed = o.seed ?? 1;
  const total: ExploreStats = noStats();
  let complete = true;
  let worlds = 0;
  let failure: { world: string; build: () => World; result: ExploreResult } | null = null;
  const names: string[] = [];
  for (let i = 0; ; i++) {
    const left = budget - total.executions;
    const timeLeft = o.timeMs === undefined ? undefined : o.timeMs - (Date.now() - t0);
    if (left <= 0 || (timeLeft !== undefined && timeLeft <= 0)) break;
    const world = o.random ? `random:${seed + i}` : (o.world ?? v?.world ?? "vfio-four");
    const build = builderFor(world, { design, broken });
    names.push(world);
    worlds++;
    const r = explore(build, {
      strategy,
      maxExecutions: o.random ? Math.min(left, 300) : left,
      ...(timeLeft !== undefined ? { timeMs: timeLeft } : {}),
      preemptionBound: o.preemptionBound ?? null,
      seed: seed + i,
      stopOnFirst: true,
      ...(o.progress ? { progress: (p: ExploreStats) => o.progress!({ ...add(total, p), world }) } : {}),
    });
    Object.assign(total, add(total, r));
    if (!r.complete) complete = false;
    if (r.failures.length) {
      failure = { world, build, result: r };
      break;
    }
    if (!o.random) break;
  }
  total.elapsedMs = Date.now() - t0;
  let trace: TraceFile | null = null;
  let text: string[] | null = null;
  if (failure) {
    const small = minimize(failure.build, failure.result.failures[0]!);
    const t = runTraced(failure.build, small.schedule);
    trace = traceFile(t.outcome, { world: failure.world, design, broken, ...(v ? { variant: v.name } : {}) });
    text = t.text;
  }
  return {
    ...total,
    world: o.random ? `random:${seed}..${seed + worlds - 1}` : names[0]!,
    design,
    broken,
    variant: v?.name ?? null,
    strategy,
    complete: complete && !failure,
    worlds,
    trace,
    text,
  };
}

function add(a: ExploreStats, b: ExploreStats): ExploreStats {
  return {
    executions: a.executions + b.executions,
    steps: a.steps + b.steps,
    distinctStates: a.distinctStates + b.distinctStates,
    sleepBlocked: a.sleepBlocked + b.sleepBlocked,
    violations: a.violations + b.violations,
    elapsedMs: a.elapsedMs + b.elapsedMs,
  };
}

/** Random programs (./random_program.ts): generated, searched, the first violation shrunk. */
function runPrograms(
  o: RunOptions,
  programs: number,
  design: CouplingDesign,
  v: ReturnType<typeof variantByName>,
  strategy: Strategy,
): RunReport {
  if (strategy === "dfs") throw new Error("random programs are searched with pct or dpor");
  const seed = o.seed ?? 1;
  const broken = v?.broken ?? [];
  const r = searchPrograms({
    seed,
    programs,
    design,
    broken,
    strategy,
    executions: o.budget ?? 20,
    ...(o.preemptionBound != null ? { preemptionBound: o.preemptionBound } : {}),
    ...(o.timeMs !== undefined ? { timeMs: o.timeMs } : {}),
    ...(o.progress ? { progress: (p) => o.progress!({ ...p, world: `program:${seed} #${p.programs}` }) } : {}),
  });
  const t = r.failure ? programTraceFile(r.failure, { seed, design, broken, ...(v ? { variant: v.name } : {}) }) : null;
  const prog = r.failure?.program;
  return {
    executions: r.executions,
    steps: r.steps,
    distinctStates: r.distinctStates,
    sleepBlocked: r.sleepBlocked,
    violations: r.violations,
    elapsedMs: r.elapsedMs,
    world: `program:${seed} (${r.programs} programs)`,
    design,
    broken,
    variant: v?.name ?? null,
    strategy,
    complete: false,
    worlds: r.programs,
    programs: {
      generated: r.programs,
      shrinkRuns: r.failure?.shrinkRuns ?? 0,
      threads: prog?.threads.length ?? 0,
      ops: prog ? prog.setup.length + prog.threads.reduce((n, x) => n + x.ops.length, 0) : 0,
    },
    trace: t?.trace ?? null,
    text: t?.text ?? null,
  };
}

/** Replay a trace file: the same world, design and switches, the same schedule. */
export function replayTrace(text: string): { trace: TraceFile; lines: string[]; same: boolean; failed: boolean } {
  const t = parseTraceFile(text);
  const build = builderFor(t.world, { design: t.design, broken: t.broken }, t.program);
  const r = runTraced(build, t.schedule);
  const same =
    violationKey(r.outcome.violations) === violationKey(t.violations) &&
    JSON.stringify(r.outcome.schedule) === JSON.stringify(t.schedule);
  return { trace: t, lines: r.text, same, failed: r.outcome.violations.length > 0 || r.outcome.deadlock !== null };
}
