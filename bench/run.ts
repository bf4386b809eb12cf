// `npm run bench [-- FILTER...] [--quick]`: run the bench modules listed below and print one
// table per suite, each row with its median cost and its ratio to a baseline measured in the
// same run. FILTER words select suites by name or rows by substring ("ioctl", "u64/read").
// Not a test: numbers vary with the machine and its load; nothing here fails a build.
//
// To add a module: write bench/NAME.ts exporting `suite: BenchSuite` (see ./harness.ts) and
// add NAME to MODULES. Names whose file does not exist yet are skipped.

import { cpus, totalmem } from "node:os";
import { makeContext, table, type BenchRow, type BenchSuite } from "./harness.js";

const MODULES = ["ioctl", "u64", "type1", "iommufd", "edu", "sched", "explorer", "programs", "bridge"];

async function loadSuite(name: string): Promise<BenchSuite | null> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(`./${name}.js`)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ERR_MODULE_NOT_FOUND" && String((e as Error).message).includes(`/bench/${name}.js`)) return null;
    throw e;
  }
  const s = (mod.suite ?? mod.default ?? mod.run) as unknown;
  if (typeof s === "function") return { name, run: s as BenchSuite["run"] };
  if (s && typeof s === "object" && typeof (s as BenchSuite).run === "function") return s as BenchSuite;
  throw new Error(`bench/${name}: exports no suite (see bench/harness.ts)`);
}

function machineInfo(): string[] {
  const c = cpus();
  return [
    `node ${process.version} (V8 ${process.versions.v8}) on ${process.platform}/${process.arch}`,
    `cpu: ${c[0]?.model ?? "unknown"} x${c.length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `gc: ${typeof globalThis.gc === "function" ? "exposed (collected between suites)" : "not exposed"}`,
  ];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const filters = args.filter((a) => !a.startsWith("--"));
  const ctx = makeContext(quick ? 60 : 300);
  for (const l of machineInfo()) console.log(l);
  const t0 = performance.now();
  let ran = 0;
  for (const name of MODULES) {
    const suite = await loadSuite(name);
    if (!suite) continue;
    // a filter that names the suite runs all of it; any other filter selects rows by substring
    const whole = filters.length === 0 || filters.some((f) => f === suite.name);
    const rowFilters = filters.filter((f) => f !== suite.name);
    if (!whole && !filters.some((f) => f.startsWith(`${suite.name}/`) || suite.name.includes(f))) continue;
    globalThis.gc?.();
    const s0 = performance.now();
    let rows: BenchRow[] = await suite.run(ctx);
    if (!whole && rowFilters.length) {
      const keep = new Set(rows.filter((r) => rowFilters.some((f) => r.name.includes(f))).map((r) => r.name));
      for (const r of rows) if (keep.has(r.name) && r.baseline) keep.add(r.baseline);
      rows = rows.filter((r) => keep.has(r.name));
    }
    console.log(
      `\n## ${suite.name}${suite.title ? `: ${suite.title}` : ""}  (${((performance.now() - s0) / 1e3).toFixed(1)} s)`,
    );
    console.log(table(rows));
    for (const l of suite.summary?.(rows) ?? []) console.log(l);
    ran++;
  }
  if (ran === 0) {
    console.error(`no bench suite matches ${filters.join(" ")} (suites: ${MODULES.join(", ")})`);
    process.exitCode = 1;
  }
  console.log(`\ntotal ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
}

await main();
