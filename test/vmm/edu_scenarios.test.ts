// The edu scenarios (test/scenarios-edu/) on a fresh default twin, diffed line for line
// against the real kernel's goldens with the oracle helper's runner (src/vmm/corpus.ts,
// fidelity.ts). The runner is imported at run time so that this file compiles before it
// is on main; without it the test is skipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const DIR = join(HERE, "../../../test/scenarios-edu");
const CORPUS = join(HERE, "../../src/vmm/corpus.js");
const FIDELITY = join(HERE, "../../src/vmm/fidelity.js");

interface Cmp {
  total: number;
  matched: number;
  expected: number;
  mismatches: unknown[];
}
type RunOnTwin = (e: { name: string; scenario: string; golden: string; status: string }) => {
  cmp: Cmp;
  lines: string[];
};
type FormatMismatch = (name: string, m: unknown) => string;

const have = existsSync(CORPUS) && existsSync(FIDELITY);
/** per scenario: "must-match", or why the twin cannot match it yet */
const status = JSON.parse(readFileSync(join(DIR, "status.json"), "utf8")) as Record<string, string>;
const names = readdirSync(DIR)
  .filter((f) => f.endsWith(".txt"))
  .map((f) => f.slice(0, -4))
  .sort();

test("every edu scenario has a golden recorded on the oracle", () => {
  assert.ok(names.length >= 5);
  for (const n of names) {
    const g = readFileSync(join(DIR, `${n}.golden`), "utf8");
    assert.match(g.split("\n", 1)[0]!, /^# Linux 6\.12\.\d+.*run\.sh custom --script/);
    assert.ok(g.trimEnd().endsWith("DONE"), `${n}: the oracle run reached DONE`);
    assert.ok(status[n], `${n}: listed in status.json`);
  }
});

for (const n of names) {
  const why = !have ? "the scenario runner is not on main" : status[n] === "must-match" ? false : status[n];
  test(`edu scenario ${n} matches the kernel`, { skip: why ?? "not listed in status.json" }, async () => {
    const { runOnTwin } = (await import(pathToFileURL(CORPUS).href)) as { runOnTwin: RunOnTwin };
    const { formatMismatch } = (await import(pathToFileURL(FIDELITY).href)) as { formatMismatch: FormatMismatch };
    const e = {
      name: n,
      scenario: readFileSync(join(DIR, `${n}.txt`), "utf8"),
      golden: readFileSync(join(DIR, `${n}.golden`), "utf8"),
      status: "must-match",
    };
    const { cmp, lines } = runOnTwin(e);
    // deterministic: a second fresh twin prints the same lines (sleeps are virtual time)
    assert.deepEqual(runOnTwin(e).lines, lines);
    if (cmp.mismatches.length)
      assert.fail(`${cmp.mismatches.length} line(s) differ; first:\n${formatMismatch(n, cmp.mismatches[0])}`);
    assert.equal(cmp.matched + cmp.expected, cmp.total);
  });
}
