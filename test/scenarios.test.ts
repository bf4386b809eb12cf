// Differential fidelity: every scenario of test/scenarios/ runs on a fresh default twin and is
// diffed, line for line, against the real kernel's recorded output (its .golden file, made with
// scripts/record-goldens.sh). status.json says which scenarios must match now; the others are
// skipped with the reason they cannot match yet. Deliberate differences are stated in the
// scenario as `# expect-diff: STEP n ...` notes (src/vmm/fidelity.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCorpus, MUST_MATCH, runOnTwin } from "../src/vmm/corpus.js";
import { formatMismatch } from "../src/vmm/fidelity.js";
import { checkInvariants, formatViolations, leakedSince } from "../src/check/invariants.js";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "../../test/scenarios");
const corpus = loadCorpus(DIR);

test("the corpus: every scenario has a golden, a status and a leading comment", () => {
  assert.ok(corpus.length > 0, `no scenarios in ${DIR}`);
  for (const e of corpus) {
    assert.ok(e.golden !== null, `${e.name}: no golden (run scripts/record-goldens.sh ${e.name})`);
    assert.match(e.golden!.split("\n", 1)[0]!, /^# Linux \d+\.\d+\.\d+.*run\.sh custom --script/, `${e.name}: header`);
    assert.ok(e.golden!.trimEnd().endsWith("DONE"), `${e.name}: the golden run did not reach DONE`);
    assert.ok(e.status !== null, `${e.name}: not listed in status.json`);
    assert.match(e.scenario, /^# Covers: /, `${e.name}: must start with a "# Covers:" comment`);
  }
});

for (const e of corpus) {
  const skip = e.status === MUST_MATCH ? false : (e.status ?? "not listed in status.json");
  test(`scenario ${e.name} matches the kernel`, { skip }, () => {
    const { cmp } = runOnTwin(e);
    if (cmp.mismatches.length) {
      const first = formatMismatch(e.name, cmp.mismatches[0]!);
      assert.fail(
        `${cmp.mismatches.length} line(s) differ from the kernel (${cmp.matched}/${cmp.total} steps match); first:\n${first}`,
      );
    }
    assert.equal(cmp.matched + cmp.expected, cmp.total);
  });
}

// Every scenario, matching or not, leaves the twin whole: the check of the whole twin holds
// after the process exits, and nothing the scenario made is still alive.
for (const e of corpus) {
  test(`scenario ${e.name} leaves every invariant holding and nothing leaked`, () => {
    const { twin, baseline } = runOnTwin(e);
    const v = checkInvariants(twin.kernel);
    assert.equal(v.length, 0, formatViolations(v));
    assert.deepEqual(
      leakedSince(twin.kernel, baseline).map((o) => o.describe()),
      [],
    );
  });
}
