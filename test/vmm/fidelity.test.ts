import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { compareRun, parseExpectDiffs } from "../../src/vmm/fidelity.js";

const scenario = [
  "# Covers: x",
  "open k /dev/kvm",
  "raw $k 0",
  "# expect-diff: STEP 4 raw -1 75 EOVERFLOW -- newer kernel",
  "raw $k 1",
].join("\n");
const golden = [
  "# Linux 6.12.117 ...",
  "INFO a",
  "STEP 2 open 0 0 OK",
  "STEP 3 raw -1 22 EINVAL",
  "STEP 5 raw -1 22 EINVAL",
  "DONE",
].join("\n");

describe("compareRun", () => {
  it("counts identical steps and reports the first difference with its scenario line", () => {
    const c = compareRun(scenario, golden, [
      "INFO a",
      "STEP 2 open 0 0 OK",
      "STEP 3 raw -1 25 ENOTTY",
      "STEP 5 raw -1 22 EINVAL",
      "DONE",
    ]);
    assert.equal(c.total, 3);
    assert.equal(c.matched, 2);
    assert.equal(c.mismatches.length, 1);
    assert.deepEqual(c.mismatches[0], {
      lineno: 3,
      source: "raw $k 0",
      kernel: "STEP 3 raw -1 22 EINVAL",
      twin: "STEP 3 raw -1 25 ENOTTY",
    });
  });

  it("treats an annotated difference as expected only when the twin prints exactly the stated line", () => {
    const e = parseExpectDiffs(["x", "# expect-diff: STEP 5 raw -1 75 EOVERFLOW -- newer kernel"].join("\n"));
    assert.deepEqual(e.get(5), { line: "STEP 5 raw -1 75 EOVERFLOW", reason: "newer kernel" });
    const sc = scenario.replace("STEP 4", "STEP 5");
    const ok = compareRun(sc, golden, [
      "INFO a",
      "STEP 2 open 0 0 OK",
      "STEP 3 raw -1 22 EINVAL",
      "STEP 5 raw -1 75 EOVERFLOW",
      "DONE",
    ]);
    assert.equal(ok.expected, 1);
    assert.equal(ok.mismatches.length, 0);
    const stale = compareRun(sc, golden, [
      "INFO a",
      "STEP 2 open 0 0 OK",
      "STEP 3 raw -1 22 EINVAL",
      "STEP 5 raw -1 22 EINVAL",
      "DONE",
    ]);
    assert.equal(stale.mismatches.length, 1);
    assert.match(stale.mismatches[0]!.note!, /drop the expect-diff/);
  });

  it("reports INFO, DONE and missing or extra steps", () => {
    const c = compareRun(scenario, golden, ["INFO b", "STEP 2 open 0 0 OK", "STEP 4 raw 0 0 OK"]);
    const lines = c.mismatches.map((m) => `${m.lineno}:${m.kernel}|${m.twin}`);
    assert.deepEqual(lines, [
      "0:INFO a|INFO b",
      "0:DONE|(none)",
      "3:STEP 3 raw -1 22 EINVAL|(no step)",
      "4:(no step)|STEP 4 raw 0 0 OK",
      "5:STEP 5 raw -1 22 EINVAL|(no step)",
    ]);
  });
});
