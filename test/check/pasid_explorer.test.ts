// The PASID reach rule under the explorer (src/check/explorer.ts): a PASID detach racing the
// KVM link of a guest PASID to it, every interleaving, the invariants after each. Under
// process-table no schedule breaks the rule (the link is refused, or revoked by the detach);
// under vfio-translate the schedule where the link wins leaves the guest a PASID its process
// lost; and a process-table KVM whose revocation is a no-op (the planted bug) is caught too.

import { test } from "node:test";
import assert from "node:assert/strict";
import { explore, type World } from "../../src/check/explorer.js";
import { ioctlPath } from "../../src/kernel/syscalls.js";
import type { Task } from "../../src/kernel/sched.js";
import type { PasidDesign } from "../../src/kernel/pasid.js";
import * as V from "../../src/uapi/vfio.js";
import {
  KVM_TWIN_SET_PASID_TRANSLATION,
  kvm_twin_pasid_translation,
  kvmRevokePasidTranslations,
  pasidRevocation,
} from "../../src/kvm/enqcmd.js";
import { VmmPasid } from "../../src/vmm/dsa_pasid.js";
import { world } from "../pasid_helpers.js";

function build(design: PasidDesign): () => World {
  return () => {
    const w = world(design);
    const vmm = new VmmPasid(w.p);
    assert.ok(vmm.createVm() >= 0);
    const proc = w.p.proc;
    const detachArg = w.u.scr + 2048;
    w.p.write(detachArg, V.vfio_device_detach_iommufd_pt_pasid.encode({ argsz: 12, flags: 1, pasid: 5 }));
    const linkArg = w.u.scr + 2560;
    const fds = design === "process-table" ? { vfio_fd: -1, iommufd: -1 } : { vfio_fd: w.u.cdev, iommufd: w.u.iommufd };
    w.p.write(linkArg, kvm_twin_pasid_translation.encode({ flags: 0, vpasid: 1, ppasid: 5, ...fds }));
    const k = w.twin.kernel;
    return {
      kernel: k,
      threads: [
        {
          name: "detach",
          process: proc,
          path: (t: Task) => ioctlPath(k, proc, t, w.u.cdev, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, detachArg),
        },
        {
          name: "link",
          process: proc,
          path: (t: Task) => ioctlPath(k, proc, t, vmm.vm, KVM_TWIN_SET_PASID_TRANSLATION, linkArg),
        },
      ],
    };
  };
}

const reach = (o: { violations: readonly { check: string }[] }) =>
  o.violations.filter((v) => v.check === "pasid-reach");

test("explorer: detach racing the link keeps the rule under process-table in every interleaving", () => {
  const r = explore(build("process-table"));
  assert.equal(r.complete, true);
  assert.ok(r.schedules >= 2, `${r.schedules} schedules`);
  assert.deepEqual(r.failures, []);
});

test("explorer: under vfio-translate the link-first schedule breaks the rule", () => {
  const r = explore(build("vfio-translate"));
  assert.equal(r.complete, true);
  assert.ok(r.failures.length > 0);
  assert.ok(r.failures.every((f) => reach(f).length === 1));
  assert.ok(r.outcomes.size >= 2, "link first (0) and detach first (ENOENT) both happen");
});

test("explorer: a process-table KVM that forgets to revoke is caught", () => {
  pasidRevocation.revoke = () => 0;
  try {
    const r = explore(build("process-table"));
    assert.ok(r.failures.length > 0);
    assert.ok(r.failures.every((f) => reach(f).length === 1));
  } finally {
    pasidRevocation.revoke = kvmRevokePasidTranslations;
  }
});
