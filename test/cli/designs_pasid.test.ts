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

it("the traced attack: the link and the guest's write under vfio-translate, EPERM and an exit under process-table", async () => {
  const { pasidAttackTrace } = await import("../../src/cli/designs_pasid.js");
  const vt = pasidAttackTrace("vfio-translate");
  assert.ok(vt.includes("[pid 2] pasid_authorize(5) = 0"), "the manager's table gets 5");
  assert.ok(
    vt.includes(
      "[pid 2] ioctl(4, VFIO_DEVICE_ATTACH_IOMMUFD_PT, {argsz=16, flags=VFIO_DEVICE_ATTACH_PASID, pt_id=2, pasid=5} => {pt_id=3}) = 0",
    ),
    "on a kernel with the PASID uAPI the attach struct is decoded with its pasid field",
  );
  assert.ok(vt.includes("[pid 1] kvm_pasid_link(vm 1, 1->5) = 0"));
  assert.ok(vt.includes("[pid 1] guest_enqcmd(vm 1 vcpu 0, portal_gpa=0xf0000000, vpasid=1 -> pasid=5) = accepted"));
  assert.equal(vt.at(-2), "# guest wrote pid 2's memory");
  const pt = pasidAttackTrace("process-table");
  assert.ok(
    pt.includes(
      "[pid 1] ioctl(4, _IOC(_IOC_WRITE, 0xae, 0xf0, 0x18), 0x7efffffff000) = -1 EPERM (Operation not permitted)",
    ),
  );
  assert.ok(pt.includes("[pid 1] kvm_exit(vm 1, ENQCMD_PASID, 1) = 0"));
  assert.equal(pt.at(-1), "# rule holds: -");
});
