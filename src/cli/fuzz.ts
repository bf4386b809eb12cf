// `vfio-twin fuzz`: the twin's own fuzzer (src/check/fuzz.ts). Random multi-process programs
// over the whole uAPI for --seconds (or --programs), each distinct failure printed once with
// its shrunk program, saved as JSON that `--replay FILE` runs again with the trace printed.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fuzz, type FuzzFailure, parseProgram, programJson, replay } from "../check/fuzz.js";
import type { Command } from "./main.js";

const USAGE = `usage: vfio-twin fuzz [--seconds N] [--programs N] [--seed S] [--steps N] [--out DIR]
       vfio-twin fuzz --replay FILE`;

function printFailure(n: number, f: FuzzFailure, file: string | null): void {
  console.log(`\nFAILURE ${n}: ${f.failures[0] ?? f.key}`);
  for (const m of f.failures.slice(1, 8)) console.log(`  ${m}`);
  if (f.failures.length > 8) console.log(`  ... ${f.failures.length - 8} more`);
  console.log(`minimized program (${f.program.length} steps)${file ? `, saved as ${file}` : ""}:`);
  process.stdout.write(programJson(f.program));
}

export const fuzzCommand: Command = {
  name: "fuzz",
  summary: "random multi-process programs over the whole uAPI, every invariant checked after each",
  run(args) {
    const opt = (name: string): string | undefined => {
      const i = args.indexOf(name);
      return i >= 0 ? args[i + 1] : undefined;
    };
    if (args.includes("--help")) {
      console.log(USAGE);
      return 0;
    }
    const file = opt("--replay");
    if (file !== undefined) {
      const r = replay(parseProgram(readFileSync(file, "utf8")));
      for (const l of r.trace) console.log(l);
      console.log(r.failures.length ? r.failures.map((f) => `FAIL ${f}`).join("\n") : "the program passes every check");
      return r.failures.length ? 1 : 0;
    }
    const programs = opt("--programs");
    const seconds = opt("--seconds") ?? (programs === undefined ? "60" : undefined);
    const seed = Number(opt("--seed") ?? Date.now() % 2 ** 31);
    const steps = Number(opt("--steps") ?? 30);
    const out = opt("--out") ?? "fuzz-failures";
    console.log(
      `fuzzing with seed ${seed} for ${seconds !== undefined ? `${seconds} s` : `${programs} programs`}, up to ${steps} steps a program`,
    );
    let n = 0;
    const report = fuzz({
      seed,
      maxSteps: steps,
      ...(seconds !== undefined ? { seconds: Number(seconds) } : {}),
      ...(programs !== undefined ? { programs: Number(programs) } : {}),
      onFailure(f) {
        n++;
        let path: string | null = null;
        try {
          mkdirSync(out, { recursive: true });
          path = join(out, `failure-${seed}-${n}.json`);
          writeFileSync(path, programJson(f.program));
        } catch {
          path = null;
        }
        printFailure(n, f, path);
      },
    });
    const s = report.ms / 1000;
    console.log(
      `\n${report.programs} programs, ${report.syscalls} syscalls in ${s.toFixed(1)} s: ` +
        `${Math.round(report.syscalls / s)} syscalls/s, ${Math.round(report.programs / s)} programs/s; ` +
        `${report.failures.length} distinct failure${report.failures.length === 1 ? "" : "s"}`,
    );
    return report.failures.length ? 1 : 0;
  },
};
