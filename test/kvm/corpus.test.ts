// The KVM scenarios of the corpus (test/scenarios/kvm-*.txt, with the real 6.12 kernel's
// answers in .golden) under every coupling design: test/scenarios.test.ts runs the default
// design only, and the uAPI must not depend on the design.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCorpus, MUST_MATCH, ORACLE_PROCESS } from "../../src/vmm/corpus.js";
import { compareRun, formatMismatch } from "../../src/vmm/fidelity.js";
import { runScript } from "../../src/vmm/script.js";
import { COUPLING_DESIGNS } from "../../src/kvm/vfio_coupling.js";
import { createTwin } from "../../src/twin.js";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "../../../test/scenarios");
const kvmScenarios = loadCorpus(DIR).filter((e) => e.name.startsWith("kvm-"));

describe("KVM corpus scenarios under each coupling design", () => {
  it("has KVM scenarios", () => assert.ok(kvmScenarios.length >= 4, kvmScenarios.map((e) => e.name).join()));
  for (const e of kvmScenarios) {
    for (const design of COUPLING_DESIGNS) {
      const skip = e.status === MUST_MATCH ? false : (e.status ?? "not listed in status.json");
      it(`${e.name} (${design})`, { skip }, () => {
        const twin = createTwin({ coupling: design });
        const p = twin.spawn(ORACLE_PROCESS);
        const lines = runScript(e.scenario, p);
        twin.kill(p);
        const cmp = compareRun(e.scenario, e.golden ?? "", lines);
        if (cmp.mismatches.length) assert.fail(formatMismatch(e.name, cmp.mismatches[0]!));
        assert.equal(cmp.matched + cmp.expected, cmp.total);
        assert.deepEqual(twin.kernel.bugs, []);
      });
    }
  }
});
