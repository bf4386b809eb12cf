// `vfio-twin designs`: the same scenario under the three couplings, compared.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatDesigns, runDesigns, type DesignTwinFactory } from "../../src/cli/designs.js";
import { boot } from "./harness.js";

const withFake: DesignTwinFactory = (design, o) => boot(design, { withVfio: o.vfio, kvmVfio: o.kvmVfio });

describe("designs", () => {
  const reports = runDesigns(withFake);
  const by = Object.fromEntries(reports.map((r) => [r.design, r]));

  it("gives identical uAPI results in every design", () => {
    for (const r of reports) assert.deepEqual(r.uapi, reports[0]!.uapi, r.design);
    const m = new Map(reports[0]!.uapi);
    assert.equal(m.get("FILE_ADD group"), "0");
    assert.equal(m.get("FILE_ADD group again"), "EEXIST");
    assert.equal(m.get("FILE_ADD device fd"), "0");
    assert.equal(m.get("FILE_ADD VM fd"), "EINVAL");
    assert.equal(m.get("FILE_ADD fd -1"), "EBADF");
    assert.equal(m.get("GET_ATTR FILE ADD"), "EPERM");
    assert.equal(m.get("SET_ATTR SPAPR_TCE"), "ENXIO");
    assert.equal(m.get("CREATE_DEVICE VFIO again"), "EBUSY");
  });

  it("resolves different symbols", () => {
    const names = (d: string) => [...by[d]!.symbolGets.keys()];
    assert.deepEqual(
      names("upstream").filter((s) => s.startsWith("vfio")),
      ["vfio_file_enforced_coherent", "vfio_file_is_valid", "vfio_file_set_kvm"],
    );
    assert.deepEqual(
      names("file-ops").filter((s) => s.startsWith("vfio")),
      ["vfio_file_get_ops"],
    );
    assert.deepEqual(
      names("symbol-get").filter((s) => s.startsWith("vfio")),
      [
        "vfio_external_check_extension",
        "vfio_external_group_match_file",
        "vfio_group_get_external_user",
        "vfio_group_put_external_user",
        "vfio_group_set_kvm",
      ],
    );
    // VFIO takes VM references the same way in every design
    for (const r of reports)
      assert.equal(r.symbolGets.get("kvm_get_kvm_safe"), reports[0]!.symbolGets.get("kvm_get_kvm_safe"), r.design);
    // one ADD attempt -> one vfio_file_get_ops, whatever the outcome (6 ADDs reach VFIO)
    assert.equal(by["file-ops"]!.symbolGets.get("vfio_file_get_ops"), 6);
    assert.equal(by["upstream"]!.symbolGets.get("vfio_file_is_valid"), 6);
  });

  it("pins: file-ops holds explicit module pins, the others only the files' own", () => {
    assert.ok(
      by["file-ops"]!.pinsHeld.some((p) => / vfio_file_ops x2$/.test(p.replace(":", ""))),
      by["file-ops"]!.pinsHeld.join(),
    );
    for (const d of ["upstream", "symbol-get"]) {
      assert.ok(!by[d]!.pinsHeld.some((p) => p.includes("vfio_file_ops")), d);
      assert.ok(
        by[d]!.pinsHeld.some((p) => p.startsWith("file /dev/vfio/")),
        d,
      );
    }
    assert.deepEqual(by["symbol-get"]!.groupHolders, ["vfio external user"]);
    assert.ok(by["upstream"]!.groupHolders[0]!.startsWith("kvm-vfio of vm "));
  });

  it("unload, VFIO absent, KVM without VFIO", () => {
    for (const r of reports) {
      assert.equal(r.rmmodWhileHeld, "vfio EAGAIN", r.design);
      assert.equal(r.rmmodAfterRelease, "vfio 0", r.design);
      assert.equal(r.noVfioAdd, "EINVAL", r.design);
      assert.equal(r.noKvmVfioCreate, "ENODEV / ENODEV", r.design);
      assert.deepEqual(r.leaks, [], r.design);
    }
    assert.deepEqual([...by["upstream"]!.noVfioMisses], [["vfio_file_is_valid", 1]]);
    assert.deepEqual([...by["file-ops"]!.noVfioMisses], [["vfio_file_get_ops", 1]]);
    assert.deepEqual([...by["symbol-get"]!.noVfioMisses], [["vfio_group_get_external_user", 1]]);
  });

  it("formats a side-by-side table with no uAPI row marked different", () => {
    const text = formatDesigns(reports);
    assert.match(text, /symbol-get\s+file-ops\s+upstream/);
    assert.doesNotMatch(text, /^!!/m);
  });
});

describe("designs with the real VFIO (the default twin)", () => {
  const reports = runDesigns();
  it("same uAPI, no leak, and the whole VFIO stack unloads once KVM let go", () => {
    for (const r of reports) {
      assert.deepEqual(r.uapi, reports[0]!.uapi, r.design);
      assert.ok(r.uapi.every(([name, rc]) => rc === "0" || !/^FILE_ADD (group|device fd)$/.test(name)));
      assert.match(r.rmmodWhileHeld, /vfio EAGAIN/, r.design);
      assert.equal(r.rmmodAfterRelease, "vfio_iommu_type1 0, vfio_pci 0, vfio 0", r.design);
      assert.deepEqual(r.leaks, [], r.design);
    }
  });
});
