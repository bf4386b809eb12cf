// The KVM device cases that need no VFIO, on the real /dev/kvm through the host backend, with
// the twin's expectations (./no_vfio_cases.ts). Skipped where koffi or /dev/kvm is missing, or
// where the machine's KVM cannot create a VM.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHost, hostAvailable, koffiAvailable } from "../../src/backend/host.js";
import { COUPLING_DESIGNS } from "../../src/kvm/vfio_coupling.js";
import { NO_VFIO_EXPECTED, runNoVfioCases } from "./no_vfio_cases.js";
import { boot, bootReal } from "./harness.js";

const skip = !koffiAvailable()
  ? "host backend: koffi cannot load libc here"
  : !hostAvailable("/dev/kvm")
    ? "no /dev/kvm on this machine"
    : false;

describe("KVM device cases without VFIO files", () => {
  for (const design of COUPLING_DESIGNS) {
    it(`twin, no VFIO loaded (${design})`, () => {
      assert.deepEqual(runNoVfioCases(boot(design, { withVfio: false }).spawn()), NO_VFIO_EXPECTED);
    });
    it(`twin, real VFIO loaded (${design})`, () => {
      assert.deepEqual(runNoVfioCases(bootReal(design).spawn()), NO_VFIO_EXPECTED);
    });
  }

  it("real /dev/kvm (host backend)", { skip }, (t) => {
    const b = createHost();
    const p = b.spawn();
    let got: [string, string][];
    try {
      got = runNoVfioCases(p);
    } catch (e) {
      // e.g. KVM_CREATE_VM refused (no virtualization here): nothing to compare
      t.skip(`host: ${(e as Error).message}`);
      return;
    } finally {
      b.kill(p);
    }
    assert.deepEqual(got, NO_VFIO_EXPECTED);
  });
});
