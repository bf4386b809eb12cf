// The oracle's own C runner (../shared/oracle/guest/vfio_script.c, compiled for this host)
// runs every corpus scenario against the twin through the bridge: its STEP lines must equal
// the kernel's goldens exactly as `vfio-twin script` does (the same expect-diff notes), and
// after each run the whole twin is checked: invariants, leaks, no process left.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCorpus, MUST_MATCH } from "../../src/vmm/corpus.js";
import { compareRun, formatMismatch } from "../../src/vmm/fidelity.js";
import { hostPrograms, quiesce, ROOT, runClient, serve, twinProblems } from "./harness.js";

const corpus = loadCorpus(join(ROOT, "test/scenarios"));
const progs = hostPrograms();
const skip = typeof progs === "string" ? progs : false;

test("the corpus is there to run", () => assert.ok(corpus.length >= 50));

for (const e of corpus) {
  const why = skip || (e.status === MUST_MATCH ? false : (e.status ?? "not in status.json"));
  test(`bridged vfio_script: ${e.name} matches the kernel`, { skip: why }, async () => {
    if (typeof progs === "string") return;
    const s = await serve();
    try {
      const r = await runClient(s, [progs.vfioScript, "0000:00:01.0"], e.scenario);
      assert.equal(r.code, 0, `vfio_script exited ${r.code} ${r.signal ?? ""}\n${r.stderr}`);
      const lines = r.stdout.split("\n").filter((l) => l !== "");
      const cmp = compareRun(e.scenario, e.golden ?? "", lines);
      if (cmp.mismatches.length)
        assert.fail(`${cmp.mismatches.length} line(s) differ; first:\n${formatMismatch(e.name, cmp.mismatches[0]!)}`);
      assert.equal(cmp.matched + cmp.expected, cmp.total);
      await quiesce(s);
      assert.equal(twinProblems(s), "");
    } finally {
      await s.stop();
    }
  });
}
