// Differential fidelity: a scenario's output on the twin against the real kernel's golden.
//
// A golden file is the oracle's output for one scenario: a first header line (`# ...` naming
// the kernel and the oracle command), then the INFO / STEP / DONE lines. Steps are matched by
// scenario line number (each scenario line gives at most one STEP line on either side).
//
// Deliberate differences are stated in the scenario itself, on a comment line the C runner
// ignores:   # expect-diff: STEP 12 map_dma -1 75 EOVERFLOW -- the reason
// meaning: for line 12 the twin prints exactly that line instead of the kernel's. A step with
// such an annotation counts as an expected difference when the twin prints the stated line,
// and as a mismatch otherwise (including when it prints the kernel's line: the note is stale).

export interface ExpectDiff {
  /** the exact STEP line the twin is expected to print */
  readonly line: string;
  readonly reason: string;
}

export interface Mismatch {
  /** the scenario line number (0 for INFO / DONE) */
  readonly lineno: number;
  /** the scenario's source line, trimmed */
  readonly source: string;
  readonly kernel: string;
  readonly twin: string;
  readonly note?: string;
}

export interface Comparison {
  /** STEP lines in the golden */
  readonly total: number;
  /** twin lines identical to the kernel's */
  readonly matched: number;
  /** steps where the twin printed its annotated expected difference */
  readonly expected: number;
  readonly mismatches: Mismatch[];
}

const STEP_RE = /^STEP (\d+) /;

export function parseExpectDiffs(scenario: string): Map<number, ExpectDiff> {
  const out = new Map<number, ExpectDiff>();
  for (const l of scenario.split("\n")) {
    const m = /#\s*expect-diff:\s*(STEP (\d+) .*?)\s*(?:--\s*(.*))?$/.exec(l);
    if (m) out.set(Number(m[2]), { line: m[1]!.trim(), reason: (m[3] ?? "").trim() });
  }
  return out;
}

/** The golden's data lines (header and blank lines dropped). */
export function goldenLines(golden: string): string[] {
  return golden.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
}

export function goldenHeader(golden: string): string {
  return golden.split("\n", 1)[0] ?? "";
}

export function compareRun(scenario: string, golden: string, twin: readonly string[]): Comparison {
  const src = scenario.split("\n");
  const expect = parseExpectDiffs(scenario);
  const g = goldenLines(golden);
  const stepsOf = (ls: readonly string[]) => {
    const m = new Map<number, string>();
    for (const l of ls) {
      const r = STEP_RE.exec(l);
      if (r) m.set(Number(r[1]), l);
    }
    return m;
  };
  const gs = stepsOf(g);
  const ts = stepsOf(twin);
  const mismatches: Mismatch[] = [];
  const source = (n: number) => (src[n - 1] ?? "").trim();
  let matched = 0;
  let expected = 0;

  const other = (pred: (l: string) => boolean, ls: readonly string[]) => ls.filter(pred).join(" | ") || "(none)";
  for (const kind of ["INFO", "DONE"]) {
    const k = other((l) => l.startsWith(kind), g);
    const t = other((l) => l.startsWith(kind), twin);
    if (k !== t) mismatches.push({ lineno: 0, source: kind, kernel: k, twin: t });
  }
  const lines = [...new Set([...gs.keys(), ...ts.keys()])].sort((a, b) => a - b);
  for (const n of lines) {
    const k = gs.get(n) ?? "(no step)";
    const t = ts.get(n) ?? "(no step)";
    const e = expect.get(n);
    if (e) {
      if (t === e.line) expected++;
      else
        mismatches.push({
          lineno: n,
          source: source(n),
          kernel: k,
          twin: t,
          note: t === k ? "twin now matches the kernel: drop the expect-diff note" : `expected ${e.line}`,
        });
    } else if (k === t) matched++;
    else mismatches.push({ lineno: n, source: source(n), kernel: k, twin: t });
  }
  mismatches.sort((a, b) => a.lineno - b.lineno);
  return { total: gs.size, matched, expected, mismatches };
}

export function formatMismatch(name: string, m: Mismatch): string {
  return [
    `${name}:${m.lineno || "-"}: ${m.source}`,
    `  kernel: ${m.kernel}`,
    `  twin:   ${m.twin}`,
    ...(m.note ? [`  note:   ${m.note}`] : []),
  ].join("\n");
}
