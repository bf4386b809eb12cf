// `vfio-twin fuzz`: the twin's own fuzzer (src/check/fuzz.ts). Random multi-process programs
// over the whole uAPI for --seconds (or --programs), each distinct failure printed once with
// its shrunk program, saved as JSON that `--replay FILE` runs again with the trace printed.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fuzz, type FuzzFailure, parseProgram, type Program, programJson, runProgram } from "../check/fuzz.js";
import { formatEvent } from "../kernel/trace.js";
import { type Command, emit, readUserFile, UserError } from "./command.js";
import { traceEvent } from "./json.js";

function printFailure(n: number, f: FuzzFailure, file: string | null): void {
  console.log(`\nFAILURE ${n}: ${f.failures[0] ?? f.key}`);
  for (const m of f.failures.slice(1, 8)) console.log(`  ${m}`);
  if (f.failures.length > 8) console.log(`  ... ${f.failures.length - 8} more`);
  console.log(`minimized program (${f.program.length} steps)${file ? `, saved as ${file}` : ""}:`);
  process.stdout.write(programJson(f.program));
}

function loadProgram(file: string): Program {
  const text = readUserFile(file, "fuzz program");
  try {
    return parseProgram(text);
  } catch (e) {
    throw new UserError(`${file}: not a fuzz program (${(e as Error).message.split("\n")[0]})`);
  }
}

/** --replay: the program again with its trace; exit 1 if it still fails */
function replayFile(file: string, json: boolean): number {
  const r = runProgram(loadProgram(file), { trace: true });
  const k = r.twin.kernel;
  for (const e of k.trace.events) {
    if (json) emit(traceEvent(e, k));
    else console.log(formatEvent(e));
  }
  if (json) emit({ type: "replay", ok: r.failures.length === 0, failures: r.failures });
  else
    console.log(r.failures.length ? r.failures.map((f) => `FAIL ${f}`).join("\n") : "the program passes every check");
  return r.failures.length ? 1 : 0;
}

export const fuzzCommand: Command = {
  name: "fuzz",
  summary: "random multi-process programs over the whole uAPI, every invariant checked after each",
  options: {
    seconds: { type: "string", value: "N", integer: true, help: "fuzz for N seconds (default 60)" },
    programs: { type: "string", value: "N", integer: true, help: "fuzz N programs instead" },
    seed: { type: "string", value: "S", integer: true, help: "the random seed (default: from the clock)" },
    steps: { type: "string", value: "N", integer: true, help: "at most N steps a program (default 30)" },
    out: { type: "string", value: "DIR", help: "where failures are saved (default fuzz-failures)" },
    replay: { type: "string", value: "FILE", help: "run a saved failure again with its trace" },
  },
  details:
    "Exit 1 if anything was found. With --json: JSON lines: a start event, a failure event per distinct\n" +
    "failure (its messages, the shrunk program, the file it was saved to), a summary event; with\n" +
    "--replay: the syscall events, then a replay event.",
  run({ values, json }) {
    const v = (name: string) => values[name] as string | undefined;
    const file = v("replay");
    if (file !== undefined) return replayFile(file, json);
    const programs = v("programs");
    const seconds = v("seconds") ?? (programs === undefined ? "60" : undefined);
    const seed = Number(v("seed") ?? Date.now() % 2 ** 31);
    const steps = Number(v("steps") ?? 30);
    const out = v("out") ?? "fuzz-failures";
    if (json)
      emit({
        type: "start",
        seed,
        seconds: seconds === undefined ? null : Number(seconds),
        programs: programs === undefined ? null : Number(programs),
        steps,
      });
    else
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
        if (json) emit({ type: "failure", n, key: f.key, failures: f.failures, program: f.program, file: path });
        else printFailure(n, f, path);
      },
    });
    const s = report.ms / 1000;
    if (json)
      emit({
        type: "summary",
        programs: report.programs,
        syscalls: report.syscalls,
        ms: Math.round(report.ms),
        failures: report.failures.length,
      });
    else
      console.log(
        `\n${report.programs} programs, ${report.syscalls} syscalls in ${s.toFixed(1)} s: ` +
          `${Math.round(report.syscalls / s)} syscalls/s, ${Math.round(report.programs / s)} programs/s; ` +
          `${report.failures.length} distinct failure${report.failures.length === 1 ? "" : "s"}`,
      );
    return report.failures.length ? 1 : 0;
  },
};
