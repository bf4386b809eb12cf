// The edu scenarios of the corpus (test/scenarios/edu-*.txt, matched against their goldens by
// test/scenarios.test.ts) are deterministic and sleep only in virtual time: two fresh twins
// print the same lines, and each twin's clock has advanced by at least the scenario's sleeps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTwin } from "../../src/twin.js";
import { loadCorpus, MUST_MATCH, ORACLE_PROCESS } from "../../src/vmm/corpus.js";
import { runScript } from "../../src/vmm/script.js";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "../../../test/scenarios");
const edu = loadCorpus(DIR).filter((e) => e.name.startsWith("edu-") && e.status === MUST_MATCH);

function run(scenario: string): { lines: string[]; ns: number } {
  const twin = createTwin();
  const p = twin.spawn(ORACLE_PROCESS);
  const lines = runScript(scenario, p);
  twin.kill(p);
  return { lines, ns: twin.kernel.clock.now };
}

test("the edu scenarios are in the corpus", () => {
  assert.ok(edu.length >= 7, edu.map((e) => e.name).join(" "));
});

for (const e of edu) {
  test(`${e.name}: deterministic, sleeps in virtual time`, () => {
    const a = run(e.scenario);
    const b = run(e.scenario);
    assert.deepEqual(a.lines, b.lines);
    assert.equal(a.ns, b.ns);
    const slept = [...e.scenario.matchAll(/^\s*sleep\s+(\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
    assert.ok(a.ns >= slept * 1e6, `${a.ns} ns on the clock for ${slept} ms of sleep`);
  });
}
