// `vfio-twin explore`: search the interleavings of a world (src/check/run.ts) with the
// detectors after every step; a progress line, a summary, --json for CI; exit 0 when clean,
// 1 on a violation (its minimized trace printed and saved for `vfio-twin replay`).
// `--list-variants`: one broken variant a line, its name first, the fixing commit next.

import { writeFileSync } from "node:fs";
import type { Strategy } from "../check/explorer.js";
import { programLines } from "../check/random_program.js";
import { runExplore } from "../check/run.js";
import { listVariants, VARIANTS } from "../check/variants.js";
import { WORLDS } from "../check/worlds.js";
import { COUPLING_DESIGNS, type CouplingDesign } from "../kvm/vfio_coupling.js";
import { type Command, toJson, UsageError } from "./command.js";

function parseTime(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
  if (!m) throw new UsageError(`--time ${s}: expected seconds, or a number with ms, s or m`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n : m[2] === "m" ? n * 60000 : n * 1000;
}

export const exploreCommand: Command = {
  name: "explore",
  summary: "search the interleavings of a concurrent world for kernel bugs (--list-variants)",
  options: {
    world: { type: "string", value: "NAME", choices: WORLDS.map((w) => w.name), help: "the world (--list-worlds)" },
    random: { type: "boolean", help: "seeded random worlds instead of a named one" },
    programs: {
      type: "string",
      value: "N",
      integer: true,
      help: "with --random: N generated multi-process programs, each searched --budget executions (default 20)",
    },
    design: {
      type: "string",
      value: "D",
      choices: COUPLING_DESIGNS,
      help: "the KVM<->VFIO coupling (default upstream)",
    },
    variant: {
      type: "string",
      value: "V",
      choices: VARIANTS.map((v) => v.name),
      help: "a broken variant (its world and design unless given)",
    },
    seed: { type: "string", value: "S", integer: true, help: "the seed (random worlds, PCT; default 1)" },
    budget: {
      type: "string",
      value: "N",
      integer: true,
      help: "at most N executions (default 2000; with --programs: per program, default 20)",
    },
    time: { type: "string", value: "T", help: "at most T (seconds, or 500ms, 2m)" },
    strategy: {
      type: "string",
      value: "S",
      choices: ["dpor", "dfs", "pct"],
      help: "the search (default dpor; pct with --programs)",
    },
    preemptions: { type: "string", value: "N", integer: true, help: "at most N preemptions a schedule" },
    out: { type: "string", value: "FILE", help: "where a violation is saved (default explore-violation.json)" },
    "list-variants": { type: "boolean", help: "one broken variant a line: name, the fix it undoes" },
    "list-worlds": { type: "boolean", help: "the named worlds" },
  },
  details:
    "Exit 0 when no violation was found, 1 on a violation (its minimized trace printed and saved for\n" +
    "`vfio-twin replay FILE`). With --json: one JSON document (the totals and the violation, or null).\n" +
    "--random --programs N --seed S: N seeded random programs (threads of up to three processes over\n" +
    "the whole uAPI, valid and malformed calls, fd passing, closes, exit, module load/unload), each\n" +
    "searched by PCT (or --strategy dpor, --preemptions, default 2) for --budget executions; a violation\n" +
    "is shrunk over the program (threads, calls, arguments) and the schedule, and saved with the program.",
  run({ values, json }) {
    const v = (name: string) => values[name] as string | undefined;
    if (values["list-variants"]) {
      console.log(listVariants());
      return 0;
    }
    if (values["list-worlds"]) {
      for (const w of WORLDS) console.log(`${w.name.padEnd(26)} ${w.summary}`);
      return 0;
    }
    if (values.random && v("world") !== undefined) throw new UsageError("--world and --random exclude each other");
    if (v("programs") !== undefined && !values.random) throw new UsageError("--programs needs --random");
    if (v("programs") !== undefined && v("strategy") === "dfs")
      throw new UsageError("random programs are searched with pct or dpor");
    // with --programs the budget is each program's, the time the whole run's
    if (v("budget") !== undefined && v("time") !== undefined && v("programs") === undefined)
      throw new UsageError("--budget and --time exclude each other");
    let last = 0;
    const report = runExplore({
      ...(v("world") !== undefined ? { world: v("world")! } : {}),
      random: values.random === true,
      ...(v("programs") !== undefined ? { programs: Number(v("programs")) } : {}),
      ...(v("design") !== undefined ? { design: v("design") as CouplingDesign } : {}),
      ...(v("variant") !== undefined ? { variant: v("variant")! } : {}),
      ...(v("seed") !== undefined ? { seed: Number(v("seed")) } : {}),
      ...(v("budget") !== undefined ? { budget: Number(v("budget")) } : {}),
      ...(v("time") !== undefined ? { timeMs: parseTime(v("time")!) } : {}),
      ...(v("strategy") !== undefined ? { strategy: v("strategy") as Strategy } : {}),
      ...(v("preemptions") !== undefined ? { preemptionBound: Number(v("preemptions")) } : {}),
      progress(p) {
        if (json || Date.now() - last < 1000) return;
        last = Date.now();
        const s = p.elapsedMs / 1000 || 1;
        process.stderr.write(
          `\r${p.world}: ${p.executions} executions, ${Math.round(p.steps / s)} steps/s, ${p.distinctStates} states, ${p.violations} violations   `,
        );
      },
    });
    if (last) process.stderr.write("\n");
    const out = v("out") ?? (report.trace ? "explore-violation.json" : undefined);
    if (report.trace && out) writeFileSync(out, toJson(report.trace, 2) + "\n");
    const s = report.elapsedMs / 1000 || 1e-3;
    if (json) {
      console.log(
        toJson({
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
          ...(report.programs ? { programs: report.programs } : {}),
          violation: report.trace,
          traceFile: report.trace ? out : null,
        }),
      );
    } else {
      const end = report.trace
        ? "stopped at the first violation"
        : report.complete
          ? "search complete"
          : "budget exhausted";
      console.log(
        `${report.world} (design ${report.design}${report.variant ? `, variant ${report.variant}` : ""}, ${report.strategy}): ` +
          `${report.executions} executions, ${report.steps} steps in ${s.toFixed(2)} s ` +
          `(${Math.round(report.executions / s)} executions/s, ${Math.round(report.steps / s)} steps/s), ` +
          `${report.distinctStates} distinct states, ${end}`,
      );
      if (report.text && report.programs) {
        const p = report.programs;
        console.log(
          `VIOLATION in program ${report.programs.generated}, shrunk (${p.shrinkRuns} runs) to ${p.threads} threads and ${p.ops} calls:`,
        );
        for (const l of programLines(report.trace!.program!)) console.log(`  ${l}`);
      }
      if (report.text) {
        console.log(`VIOLATION, minimized schedule (${report.trace!.schedule.length} steps), saved as ${out}:`);
        for (const l of report.text) console.log(l);
      } else console.log("no violation");
    }
    return report.trace ? 1 : 0;
  },
};
