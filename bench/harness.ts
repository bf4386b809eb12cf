// The benchmark harness shared by every bench/*.ts module.
//
// A bench module exports `suite: BenchSuite` (or a `run(ctx)` function, or a default export
// of either): a name, and a function returning rows. A row is one measured operation: the
// median cost in ns of one call, measured in the same run as the row it names as its
// baseline, so ratios compare like with like on a machine shared with other work.
// Add a module by listing its file name in MODULES in ./run.ts.

export interface BenchRow {
  /** "group/operation", e.g. "ioctl/twin KVM_CHECK_EXTENSION" */
  name: string;
  /** median ns per operation */
  ns: number;
  /** name of another row of the same suite to divide by (ratio = ns / baseline.ns) */
  baseline?: string;
  note?: string;
}

export interface BenchContext {
  /** time budget per measured row, in ms (default 300; --quick makes it 60) */
  budgetMs: number;
  measure(fn: () => unknown, opts?: MeasureOptions): number;
  log(line: string): void;
}

export interface BenchSuite {
  name: string;
  /** a one-line description printed above the suite's table */
  title?: string;
  run(ctx: BenchContext): BenchRow[] | Promise<BenchRow[]>;
  /** lines printed under the table (verdicts, targets) from the finished rows */
  summary?(rows: BenchRow[]): string[];
}

export interface MeasureOptions {
  /** operations performed by one call of fn (fn loops internally); default 1 */
  opsPerCall?: number;
  /** time budget in ms (default ctx.budgetMs) */
  budgetMs?: number;
}

let sink: unknown;
/** Keep a value alive so the JIT cannot drop the work that made it. */
export function consume(v: unknown): void {
  sink = v;
}
export function lastSink(): unknown {
  return sink;
}

/**
 * The median ns per operation of fn: calibrate a batch to about 2 ms, warm up, then time
 * batches until the budget is spent (at least 11) and take the median batch.
 */
export function measure(fn: () => unknown, budgetMs: number, opsPerCall = 1): number {
  let iters = 1;
  for (;;) {
    const t = batch(fn, iters);
    if (t >= 2e6 || iters >= 2 ** 30) break;
    iters = t < 1e4 ? iters * 16 : Math.max(iters * 2, Math.ceil((iters * 2e6) / t));
  }
  for (let i = 0; i < 3; i++) batch(fn, iters); // warm-up
  const samples: number[] = [];
  const end = performance.now() + budgetMs;
  while (samples.length < 11 || (performance.now() < end && samples.length < 1000)) {
    samples.push(batch(fn, iters) / (iters * opsPerCall));
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1]!;
}

function batch(fn: () => unknown, iters: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) consume(fn());
  return Number(process.hrtime.bigint() - t0);
}

export function makeContext(budgetMs: number): BenchContext {
  return {
    budgetMs,
    measure: (fn, o = {}) => measure(fn, o.budgetMs ?? budgetMs, o.opsPerCall ?? 1),
    log: (line) => console.log(line),
  };
}

/** The ratio of a row to its baseline, or undefined. */
export function ratioOf(row: BenchRow, rows: readonly BenchRow[]): number | undefined {
  if (!row.baseline) return undefined;
  const b = rows.find((r) => r.name === row.baseline);
  return b && b.ns > 0 ? row.ns / b.ns : undefined;
}

export function fmtNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(ns < 10 ? 2 : 1)} ns`;
}

/** The rows as an aligned text table: name, median, ops/s, ratio to baseline, note. */
export function table(rows: readonly BenchRow[]): string {
  const head = ["benchmark", "median/op", "ops/s", "vs baseline", "note"];
  const body = rows.map((r) => {
    const ratio = ratioOf(r, rows);
    return [
      r.name,
      fmtNs(r.ns),
      r.ns > 0 ? fmtCount(1e9 / r.ns) : "-",
      ratio === undefined ? (rows.some((x) => x.baseline === r.name) ? "baseline" : "") : `${ratio.toFixed(3)}x`,
      r.note ?? "",
    ];
  });
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 1 || i === 2 || i === 3 ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
      .join("  ")
      .trimEnd();
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...body.map(line)].join("\n");
}

function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}
