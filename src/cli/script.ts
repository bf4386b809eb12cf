// `vfio-twin script FILE [--backend twin|host] [--bdf BDF]`: run a scenario of the oracle's
// language (../shared/oracle/guest/vfio_script.c) and print its INFO/STEP/DONE lines, so that
// `diff` against the real kernel's output is the test. A malformed line prints PARSE_ERROR as
// the C runner does, and its reason on stderr (exit 1).
// `vfio-twin fidelity [DIR]`: run every scenario of a corpus directory on the twin and count,
// per scenario, the steps that match the kernel's recorded golden (`script --compare DIR` is
// the same).

import type { Backend } from "../backend/backend.js";
import { checkInvariants } from "../check/invariants.js";
import { createTwin } from "../twin.js";
import { loadCorpus, MUST_MATCH, ORACLE_PROCESS, runOnTwin } from "../vmm/corpus.js";
import { formatMismatch, type Mismatch } from "../vmm/fidelity.js";
import { runScript, type ScriptStep } from "../vmm/script.js";
import { type Command, emit, readUserFile, toJson, UsageError, UserError, userDir } from "./command.js";
import { invariantsEvent, traceEvent } from "./json.js";

export { runScript } from "../vmm/script.js";

async function hostBackend(): Promise<Backend> {
  // the FFI backend is loaded only when asked for
  const { createHost } = await import("../backend/host.js");
  return createHost();
}

export interface CorpusRow {
  readonly name: string;
  /** "must-match", the reason it need not match yet, or null when unlisted */
  readonly status: string | null;
  /** null when no golden is recorded */
  readonly total: number | null;
  readonly matched: number;
  readonly expected: number;
  readonly mismatches: readonly Mismatch[];
}

export interface CorpusReport {
  readonly scenarios: CorpusRow[];
  readonly total: number;
  readonly matched: number;
  readonly expected: number;
  /** must-match scenarios with a mismatch */
  readonly failures: number;
}

/** Every scenario of a corpus directory on a fresh twin, against its golden. */
export function runCorpus(dir: string): CorpusReport {
  const rows: CorpusRow[] = [];
  let total = 0;
  let matched = 0;
  let expected = 0;
  let failures = 0;
  for (const e of loadCorpus(dir)) {
    if (e.golden === null) {
      rows.push({ name: e.name, status: e.status, total: null, matched: 0, expected: 0, mismatches: [] });
      continue;
    }
    const { cmp } = runOnTwin(e);
    total += cmp.total;
    matched += cmp.matched;
    expected += cmp.expected;
    if (e.status === MUST_MATCH && cmp.mismatches.length) failures++;
    rows.push({ name: e.name, status: e.status, ...cmp });
  }
  return { scenarios: rows, total, matched, expected, failures };
}

/** The fidelity table; the first mismatch of each scenario (every one with `all`). */
export function formatCorpus(r: CorpusReport, all = false): string {
  const out = [`${"scenario".padEnd(28)} ${"match".padStart(9)}  status`];
  const details: string[] = [];
  for (const s of r.scenarios) {
    if (s.total === null) {
      out.push(`${s.name.padEnd(28)} ${"-".padStart(9)}  no golden recorded`);
      continue;
    }
    const exp = s.expected ? ` (+${s.expected} expected diffs)` : "";
    out.push(`${s.name.padEnd(28)} ${`${s.matched}/${s.total}`.padStart(9)}  ${s.status ?? "unlisted"}${exp}`);
    for (const m of all ? s.mismatches : s.mismatches.slice(0, 1)) details.push(formatMismatch(s.name, m));
  }
  out.push(
    `${"total".padEnd(28)} ${`${r.matched}/${r.total}`.padStart(9)}  steps match the kernel; ${r.expected} deliberate differences`,
  );
  if (details.length)
    out.push("", all ? "mismatches:" : "first mismatch of each scenario (--all for every one):", ...details);
  return out.join("\n");
}

/** `compare` for both commands: the table or one JSON document; exit 1 if a must-match fails. */
function compare(dir: string, all: boolean, json: boolean): number {
  const r = runCorpus(userDir(dir, "corpus directory"));
  if (r.scenarios.length === 0) throw new UserError(`${dir}: no scenarios (NAME.txt) in it`);
  console.log(json ? toJson(r, 2) : formatCorpus(r, all));
  return r.failures ? 1 : 0;
}

export const scriptCommand: Command = {
  name: "script",
  summary: "run an oracle scenario (FILE) and print its STEP lines",
  args: "[FILE]",
  options: {
    backend: { type: "string", value: "KIND", choices: ["twin", "host"], help: "the kernel that answers" },
    bdf: { type: "string", value: "BDF", help: "the device the scenario's $BDF, $GROUP, $CDEV name" },
    compare: { type: "string", value: "DIR", help: "instead of FILE: the corpus in DIR against its goldens" },
    all: { type: "boolean", help: "with --compare: every mismatch, not the first of each scenario" },
  },
  details:
    "The STEP lines are the oracle's C runner's, so diff against the real kernel is the test; a\n" +
    "malformed line is PARSE_ERROR there and its reason on stderr (exit 1). With --json: JSON lines:\n" +
    "syscall events (on the twin), one step event per scenario line (line, op, rc, errno,\n" +
    "parseError), then the invariants event.",
  async run({ values, positionals, json }) {
    if (typeof values.compare === "string") {
      if (positionals.length) throw new UsageError(`--compare takes no FILE (got ${positionals[0]})`);
      return compare(values.compare, values.all === true, json);
    }
    const file = positionals[0];
    if (file === undefined) throw new UsageError("missing FILE");
    const text = readUserFile(file, "scenario file");
    const kind = (values.backend as string | undefined) ?? "twin";
    const twin = kind === "twin" ? createTwin() : null;
    const backend: Backend = twin ?? (await hostBackend());
    if (twin && json) {
      twin.kernel.trace.enabled = true;
      twin.kernel.trace.sink = (e) => emit(traceEvent(e, twin.kernel));
    }
    const p = backend.spawn(twin ? ORACLE_PROCESS : {});
    const bdf = values.bdf as string | undefined;
    const bad: ScriptStep[] = [];
    const lines = runScript(text, p, {
      ...(bdf ? { bdf } : {}),
      onStep(s) {
        if (s.parseError !== undefined) bad.push(s);
        if (json) emit({ type: "step", ...s });
      },
    });
    backend.kill(p);
    let ok = bad.length === 0;
    if (twin) {
      twin.kernel.trace.enabled = false;
      if (json) {
        const v = checkInvariants(twin.kernel);
        emit(invariantsEvent(v));
        ok &&= v.length === 0;
      }
    }
    if (!json) for (const l of lines) console.log(l);
    for (const s of bad) console.error(`vfio-twin script: ${file}:${s.line}: ${s.op}: ${s.parseError}`);
    return ok ? 0 : 1;
  },
};

export const fidelityCommand: Command = {
  name: "fidelity",
  summary: "every scenario of a corpus on the twin against the real kernel's recorded answers",
  args: "[DIR]",
  options: {
    all: { type: "boolean", help: "every mismatch, not the first of each scenario" },
  },
  details:
    "DIR defaults to test/scenarios. Exit 1 if a must-match scenario differs. With --json: one JSON\n" +
    "document (every scenario's counts and mismatches, and the totals).",
  run({ values, positionals, json }) {
    return compare(positionals[0] ?? "test/scenarios", values.all === true, json);
  },
};
