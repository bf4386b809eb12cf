// `vfio-twin explore`: search the interleavings of a world (src/check/run.ts) with the
// detectors after every step; a progress line, a summary, --json for CI; exit 0 when clean,
// 1 on a violation (its minimized trace printed and saved for `vfio-twin replay`).
// `--list-variants`: one broken variant a line, its name first, the fixing commit next.

import { writeFileSync } from "node:fs";
import type { Strategy } from "../check/explorer.js";
import { runExplore } from "../check/run.js";
import { listVariants } from "../check/variants.js";
import { WORLDS } from "../check/worlds.js";
import { COUPLING_DESIGNS, type CouplingDesign } from "../kvm/vfio_coupling.js";
import type { Command } from "./main.js";

const USAGE = `usage: vfio-twin explore [--world NAME|--random] [--design D] [--variant V] [--seed S]
                         [--budget N|--time T] [--strategy dpor|dfs|pct] [--preemptions N]
                         [--out FILE] [--json]
       vfio-twin explore --list-variants | --list-worlds
  --time T: seconds (or 500ms, 2m); --budget N: executions (default 2000)`;

function parseTime(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
  if (!m) throw new Error(`bad --time ${s}`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n : m[2] === "m" ? n * 60000 : n * 1000;
}

export const exploreCommand: Command = {
  name: "explore",
  summary: "search interleavings of a concurrent world for kernel bugs (--list-variants)",
  run(args) {
    const opt = (name: string): string | undefined => {
      const i = args.indexOf(name);
      return i >= 0 ? args[i + 1] : undefined;
    };
    if (args.includes("--help")) {
      console.log(USAGE);
      return 0;
    }
    if (args.includes("--list-variants")) {
      console.log(listVariants());
      return 0;
    }
    if (args.includes("--list-worlds")) {
      for (const w of WORLDS) console.log(`${w.name.padEnd(26)} ${w.summary}`);
      return 0;
    }
    const json = args.includes("--json");
    const design = opt("--design");
    if (design !== undefined && !COUPLING_DESIGNS.includes(design as CouplingDesign)) {
      console.error(`unknown design ${design} (${COUPLING_DESIGNS.join(", ")})`);
      return 2;
    }
    const strategy = opt("--strategy");
    if (strategy !== undefined && !["dpor", "dfs", "pct"].includes(strategy)) {
      console.error(`unknown strategy ${strategy}`);
      return 2;
    }
    let last = 0;
    let report;
    try {
      const world = opt("--world");
      const variant = opt("--variant");
      const seed = opt("--seed");
      const budget = opt("--budget");
      const time = opt("--time");
      const pre = opt("--preemptions");
      report = runExplore({
        ...(world !== undefined ? { world } : {}),
        random: args.includes("--random"),
        ...(design !== undefined ? { design: design as CouplingDesign } : {}),
        ...(variant !== undefined ? { variant } : {}),
        ...(seed !== undefined ? { seed: Number(seed) } : {}),
        ...(budget !== undefined ? { budget: Number(budget) } : {}),
        ...(time !== undefined ? { timeMs: parseTime(time) } : {}),
        ...(strategy !== undefined ? { strategy: strategy as Strategy } : {}),
        ...(pre !== undefined ? { preemptionBound: Number(pre) } : {}),
        progress(p) {
          if (json || Date.now() - last < 1000) return;
          last = Date.now();
          const s = p.elapsedMs / 1000 || 1;
          process.stderr.write(
            `\r${p.world}: ${p.executions} executions, ${Math.round(p.steps / s)} steps/s, ${p.distinctStates} states, ${p.violations} violations   `,
          );
        },
      });
    } catch (e) {
      console.error(e instanceof Error ? e.message : String(e));
      return 2;
    }
    if (last) process.stderr.write("\n");
    const out = opt("--out") ?? (report.trace ? "explore-violation.json" : undefined);
    if (report.trace && out) writeFileSync(out, JSON.stringify(report.trace, null, 2) + "\n");
    const s = report.elapsedMs / 1000 || 1e-3;
    if (json) {
      console.log(
        JSON.stringify({
          world: report.world,
          design: report.design,
          variant: report.variant,
          strategy: report.strategy,
          executions: report.executions,
          steps: report.steps,
          distinctStates: report.distinctStates,
          sleepBlocked: report.sleepBlocked,
          elapsedMs: report.elapsedMs,
          complete: report.complete,
          violation: report.trace,
          traceFile: report.trace ? out : null,
        }),
      );
    } else {
      console.log(
        `${report.world} (design ${report.design}${report.variant ? `, variant ${report.variant}` : ""}, ${report.strategy}): ` +
          `${report.executions} executions, ${report.steps} steps in ${s.toFixed(2)} s ` +
          `(${Math.round(report.executions / s)} executions/s, ${Math.round(report.steps / s)} steps/s), ` +
          `${report.distinctStates} distinct states, ${report.trace ? "stopped at the first violation" : report.complete ? "search complete" : "budget exhausted"}`,
      );
      if (report.text) {
        console.log(`VIOLATION, minimized schedule (${report.trace!.schedule.length} steps), saved as ${out}:`);
        for (const l of report.text) console.log(l);
      } else console.log("no violation");
    }
    return report.trace ? 1 : 0;
  },
};
