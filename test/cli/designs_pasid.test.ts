// `vfio-twin designs`' PASID part: real runs of each sequence under both designs. The rows
// where they differ are exactly the ones docs/pasid.md explains, the rule always holds under
// process-table, and nothing is left alive after any run.

import { it } from "node:test";
import assert from "node:assert/strict";
import { formatPasidDesigns, runPasidDesigns } from "../../src/cli/designs_pasid.js";

it("the PASID designs side by side: where they differ, and process-table keeps the rule", () => {
  const r = runPasidDesigns();
  const differ = r.rows
    .filter((x) => JSON.stringify(x.cells["process-table"]) !== JSON.stringify(x.cells["vfio-translate"]))
    .map((x) => x.name);
  assert.deepEqual(differ, [
    "fd passing: the manager's PASID",
    "detach after the link",
    "owner exits, VM fd held elsewhere",
    "iommufd closed, then the device",
  ]);
  for (const x of r.rows) assert.equal(x.cells["process-table"].at(-1), "rule holds", x.name);
  assert.deepEqual(r.rows.find((x) => x.name.startsWith("fd passing"))!.cells["vfio-translate"], [
    "link 0",
    "guest wrote pid 2's memory",
    "rule BROKEN: 1",
  ]);
  assert.deepEqual(r.leaks, { "process-table": [], "vfio-translate": [] });
  const text = formatPasidDesigns(r);
  assert.match(text, /!! fd passing: the manager's PASID\s+link EPERM\s+link 0/);
});
