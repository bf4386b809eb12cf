// The explorer (src/check/explorer.ts) on the heaviest world, vfio-four (two GET_DEVICE_FDs,
// a MAP_DMA and a SET_IOMMU on one container, four threads), and the time to find each
// broken variant (src/check/variants.ts):
//
//   explorer/build world vfio-four        one fresh world: createTwin + the setup calls (what
//                                         every execution paid before the snapshot)
//   explorer/restore world vfio-four      putting the built world back from its snapshot
//                                         (src/check/snapshot.ts) after one execution (what
//                                         every execution pays now; ratio: of a build)
//   explorer/dpor execution vfio-four     one execution of the DPOR search to completion (the
//                                         median of the whole searches of two seconds, at
//                                         least five, after two seconds of them as a warm-up),
//                                         detectors after every step and the whole-twin check
//                                         at the end (ratio: how many world builds it costs)
//   explorer/dpor execution CPU time      the same by the process's CPU time (the median of
//                                         the same searches' CPU times)
//   explorer/dpor step vfio-four          the same search per step (wall time)
//   explorer/dpor execution rebuilt       the same search building the world per execution
//                                         (snapshot off; ratio: against the snapshot's)
//   explorer/dfs execution vfio-four      plain enumeration (no reduction) per execution
//   explorer/pct execution vfio-four      seeded PCT per execution
//   explorer/find VARIANT                 wall time to the first violation of each variant
//
// The summary gives executions/s, steps/s and distinct states/s of the DPOR search, by wall
// time and by the process's CPU time (on a shared machine the wall time counts the time other
// processes had the core; the CPU time also counts GC helper threads), the load average,
// the reduction factor (plain enumeration's executions to completion over DPOR's), the
// fastest search's rates, and the targets. Executions run whole searches once (not repeated medians): the numbers
// move with the machine's load, compare ratios from one run.

import { loadavg } from "node:os";
import { explore, type ExploreResult, runSchedule, type World, WorldSource } from "../src/check/explorer.js";
import { runExplore } from "../src/check/run.js";
import { VARIANTS } from "../src/check/variants.js";
import { worldByName } from "../src/check/worlds.js";
import type { BenchContext, BenchRow, BenchSuite } from "./harness.js";

const W = "vfio-four";
const DFS_CAP = 30000;

function timed<T>(fn: () => T): { r: T; ms: number; cpuMs: number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { r, ms, cpuMs: (c.user + c.system) / 1000 };
}

/** ns of one restore of a world (prepared as the explorer prepares it) that one execution
 * (the default schedule) changed */
function restoreNs(build: () => World, budgetMs: number): number {
  const src = new WorldSource(build, true, true);
  const w = src.next();
  const samples: number[] = [];
  const end = performance.now() + budgetMs;
  try {
    while (performance.now() < end || samples.length < 50) {
      let ms = 0;
      for (let i = 0; i < 20; i++) {
        runSchedule(() => w, []);
        const t0 = performance.now();
        src.next();
        ms += performance.now() - t0;
      }
      samples.push((ms * 1e6) / 20);
    }
  } finally {
    src.close();
  }
  return samples.sort((a, b) => a - b)[samples.length >> 1]!;
}

let dpor: { r: ExploreResult; ms: number; cpuMs: number } | null = null;
/** the median CPU time of the measured searches, and the fastest search by wall time */
let dporCpuMs = 0;
let best: { ms: number; cpuMs: number } | null = null;
let searches = 0;
let dfs: { r: ExploreResult; ms: number } | null = null;
let load = "";

export const suite: BenchSuite = {
  name: "explorer",
  title: `the explorer on ${W} (four threads) and the time to find each broken variant`,
  run(ctx: BenchContext): BenchRow[] {
    const w = worldByName(W)!;
    const build = () => w.build({});
    const rows: BenchRow[] = [];
    load = loadavg()
      .map((x) => x.toFixed(1))
      .join(", ");
    rows.push({ name: `explorer/build world ${W}`, ns: ctx.measure(() => build(), { budgetMs: ctx.budgetMs }) });
    // whole searches for two seconds warm the JIT up (the kernel paths, the explorer and the
    // snapshot's generated restore reach their optimized code only after some thousands of
    // executions), then as many as two more seconds take (at least five): the median run (a
    // shared machine's other work lands on some of them)
    for (const end = performance.now() + 2000; performance.now() < end;)
      explore(build, { strategy: "dpor", maxExecutions: 100000 });
    const runs: { r: ExploreResult; ms: number; cpuMs: number }[] = [];
    for (const end = performance.now() + 2000; runs.length < 5 || performance.now() < end;)
      runs.push(timed(() => explore(build, { strategy: "dpor", maxExecutions: 100000 })));
    searches = runs.length;
    dpor = runs.sort((a, b) => a.ms - b.ms)[runs.length >> 1]!;
    best = runs[0]!;
    dporCpuMs = runs.map((x) => x.cpuMs).sort((a, b) => a - b)[runs.length >> 1]!;
    rows.push({
      name: `explorer/dpor execution ${W}`,
      ns: (dpor.ms * 1e6) / dpor.r.executions,
      baseline: `explorer/build world ${W}`,
      note: `${dpor.r.executions} executions to completion, median of ${runs.length} searches`,
    });
    rows.push({
      name: `explorer/dpor execution CPU time ${W}`,
      ns: (dporCpuMs * 1e6) / dpor.r.executions,
      baseline: `explorer/dpor execution ${W}`,
      note: "median CPU time of the same searches",
    });
    rows.push({ name: `explorer/dpor step ${W}`, ns: (dpor.ms * 1e6) / dpor.r.steps, note: `${dpor.r.steps} steps` });
    // measured once the searches warmed the kernel paths and the restore's code up (before
    // them a restore measured several times slower), shown after the build row
    rows.splice(1, 0, {
      name: `explorer/restore world ${W}`,
      ns: restoreNs(build, ctx.budgetMs),
      baseline: `explorer/build world ${W}`,
      note: "after one execution",
    });
    // the same search, the world built per execution (what it was before the snapshot)
    const rebuiltRuns = Array.from({ length: 3 }, () =>
      timed(() => explore(build, { strategy: "dpor", maxExecutions: 100000, snapshot: false })),
    );
    const rebuilt = rebuiltRuns.sort((a, b) => a.ms - b.ms)[1]!;
    rows.push({
      name: `explorer/dpor execution rebuilt ${W}`,
      ns: (rebuilt.ms * 1e6) / rebuilt.r.executions,
      baseline: `explorer/dpor execution ${W}`,
      note: `snapshot off, ${rebuilt.r.executions} executions`,
    });
    // plain enumeration: the reduction's baseline, capped (it does not complete within the
    // cap: the factor is then a lower bound)
    dfs = timed(() => explore(build, { strategy: "dfs", maxExecutions: DFS_CAP }));
    rows.push({
      name: `explorer/dfs execution ${W}`,
      ns: (dfs.ms * 1e6) / dfs.r.executions,
      baseline: `explorer/dpor execution ${W}`,
      note: dfs.r.complete ? `${dfs.r.executions} executions to completion` : `stopped at ${DFS_CAP}, incomplete`,
    });
    const pct = timed(() => explore(build, { strategy: "pct", seed: 1, maxExecutions: 500 }));
    rows.push({
      name: `explorer/pct execution ${W}`,
      ns: (pct.ms * 1e6) / pct.r.executions,
      baseline: `explorer/dpor execution ${W}`,
    });
    for (const v of VARIANTS) {
      const f = timed(() => runExplore({ variant: v.name, budget: v.budget }));
      rows.push({
        name: `explorer/find ${v.name}`,
        ns: f.ms * 1e6,
        note: f.r.trace ? `found after ${f.r.executions} executions (${v.fix.slice(0, 12)})` : "NOT FOUND",
      });
    }
    return rows;
  },
  summary(): string[] {
    if (!dpor || !dfs || !best) return [];
    const s = dpor.ms / 1000;
    const exec = dpor.r.executions / s;
    const steps = dpor.r.steps / s;
    const cpu = dporCpuMs / 1000;
    const reduction = dfs.r.executions / dpor.r.executions;
    const atLeast = dfs.r.complete ? "" : ">= ";
    return [
      `dpor on ${W}: ${Math.round(exec)} executions/s, ${Math.round(steps)} steps/s, ${Math.round(dpor.r.distinctStates / s)} distinct states/s ` +
        `(${dpor.r.distinctStates} distinct scheduler states, ${dpor.r.sleepBlocked} executions cut by sleep sets)`,
      `reduction: plain enumeration ${atLeast}${dfs.r.executions} executions${dfs.r.complete ? "" : " (stopped incomplete)"}, DPOR ${dpor.r.executions} (complete): ${atLeast}${reduction.toFixed(1)}x ` +
        `(target >= 10x: ${reduction >= 10 ? "met" : "not met"}); wall time ${(dfs.ms / dpor.ms).toFixed(1)}x`,
      `by CPU time (median of the ${searches} searches' CPU times, ${Math.round((100 * dporCpuMs) / dpor.ms)}% of the median wall time): ${Math.round(dpor.r.executions / cpu)} executions/s, ${Math.round(dpor.r.steps / cpu)} steps/s; load average ${load}`,
      `fastest search: ${Math.round(dpor.r.executions / (best.ms / 1000))} executions/s, ${Math.round(dpor.r.steps / (best.ms / 1000))} steps/s by wall time (${Math.round(dpor.r.steps / (best.cpuMs / 1000))} steps/s by its CPU time)`,
      `targets on one core (wall time): >= 10k executions/s (${exec >= 10000 ? "met" : "not met"}), >= 250k steps/s (${steps >= 250000 ? "met" : "not met"})`,
    ];
  },
};
