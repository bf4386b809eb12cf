// Random concurrent programs (src/check/random_program.ts, `vfio-twin explore --random
// --programs N`): the cost of an execution when each program's world is restored from its
// snapshot (the default) against building it again for every execution (what the search did
// before the harness's state became reachable by the snapshot, World.state).
//
//   programs/execution snapshot E=n     one execution, the world built once per program and
//                                       restored before each of its n executions
//   programs/execution rebuilt E=n      the same programs and schedules, the world rebuilt
//                                       per execution (baseline of the row above)
//
// The same 40 programs (seed 1) of the correct model, PCT, n executions each; whole searches,
// alternated and repeated three times, the median kept. The numbers move with the machine's
// load: compare the ratio.

import { loadavg } from "node:os";
import { searchPrograms } from "../src/check/random_program.js";
import type { BenchContext, BenchRow, BenchSuite } from "./harness.js";

const PROGRAMS = 40;

function nsPerExecution(executions: number, snapshot: boolean): number {
  const t0 = performance.now();
  const r = searchPrograms({ seed: 1, programs: PROGRAMS, executions, snapshot });
  if (r.failure) throw new Error(`the correct model failed a program: ${r.failure.key}`);
  return ((performance.now() - t0) * 1e6) / r.executions;
}

let load = "";

export const suite: BenchSuite = {
  name: "programs",
  title: `random programs (${PROGRAMS}, seed 1, PCT): an execution with the world restored vs rebuilt`,
  run(_ctx: BenchContext): BenchRow[] {
    const rows: BenchRow[] = [];
    nsPerExecution(5, true); // warm up the kernel paths, the generator and the snapshot
    for (const e of [3, 20]) {
      const snap: number[] = [];
      const rebuilt: number[] = [];
      for (let i = 0; i < 3; i++) {
        snap.push(nsPerExecution(e, true));
        rebuilt.push(nsPerExecution(e, false));
      }
      const median = (a: number[]) => a.sort((x, y) => x - y)[1]!;
      rows.push({ name: `programs/execution rebuilt E=${e}`, ns: median(rebuilt) });
      rows.push({
        name: `programs/execution snapshot E=${e}`,
        ns: median(snap),
        baseline: `programs/execution rebuilt E=${e}`,
      });
    }
    load = loadavg()
      .map((x) => x.toFixed(1))
      .join(", ");
    return rows;
  },
  summary(rows: BenchRow[]): string[] {
    const per = (name: string) => rows.find((r) => r.name === name)?.ns;
    return [3, 20].map((e) => {
      const s = per(`programs/execution snapshot E=${e}`);
      const b = per(`programs/execution rebuilt E=${e}`);
      return s && b
        ? `E=${e}: ${Math.round(1e9 / s)} executions/s restored, ${Math.round(1e9 / b)} rebuilt (load ${load})`
        : "";
    });
  },
};
