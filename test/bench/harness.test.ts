// The bench harness's bookkeeping (no timing is asserted): ratios against the named baseline,
// the table's columns, and that every listed bench module exports a runnable suite.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ratioOf, table, type BenchRow, type BenchSuite } from "../../bench/harness.js";

const rows: BenchRow[] = [
  { name: "g/base", ns: 200 },
  { name: "g/fast", ns: 50, baseline: "g/base", note: "quarter" },
  { name: "g/orphan", ns: 10, baseline: "g/missing" },
];

test("ratioOf divides by the baseline row of the same run; no baseline, no ratio", () => {
  assert.equal(ratioOf(rows[1]!, rows), 0.25);
  assert.equal(ratioOf(rows[0]!, rows), undefined);
  assert.equal(ratioOf(rows[2]!, rows), undefined);
});

test("table marks the baseline and prints ratio, ops/s and note", () => {
  const lines = table(rows).split("\n");
  assert.equal(lines.length, 2 + rows.length);
  assert.match(lines[0]!, /^benchmark\s+median\/op\s+ops\/s\s+vs baseline\s+note$/);
  assert.match(lines[2]!, /^g\/base\s+200\.0 ns\s+5\.00M\s+baseline$/);
  assert.match(lines[3]!, /^g\/fast\s+50\.0 ns\s+20\.00M\s+0\.250x\s+quarter$/);
});

test("the ioctl and u64 modules export suites with a name and a run function", async () => {
  for (const name of ["ioctl", "u64"]) {
    const mod = (await import(`../../bench/${name}.js`)) as { suite: BenchSuite };
    assert.equal(mod.suite.name, name);
    assert.equal(typeof mod.suite.run, "function");
  }
});
