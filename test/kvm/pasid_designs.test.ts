// Guest ENQCMD and the two designs for linking guest PASIDs to host PASIDs (docs/pasid.md):
// translation install and revoke, guest exits and faults, and the invariant "a VM reaches no
// PASID its owner cannot" (src/check/pasid_invariants.ts) under both designs, including the
// sequences where they differ: fd passing, one process owning the VM and another the
// iommufd, detach after the translation is installed, process exit, the iommufd closed while
// the VM runs. Every world ends with the invariant check and a leak check.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { EBADF, EEXIST, EINVAL, ENOENT, EPERM } from "../../src/uapi/errno.js";
import { DSA_OP_DELAY_NS } from "../../src/hw/dsa.js";
import { checkPasidReach } from "../../src/check/pasid_invariants.js";
import { kvmPasidTable } from "../../src/kvm/enqcmd.js";
import { kvmState } from "../../src/kvm/kvm_main.js";
import type { PasidDesign } from "../../src/kernel/pasid.js";
import type { Twin, TwinProcess } from "../../src/twin.js";
import { DsaUser, dsaDescriptor, VmmPasid } from "../../src/vmm/dsa_pasid.js";
import { BUF, checkAll, DSA_CDEV, endWorld, pasidTwin } from "../pasid_helpers.js";

const GUEST_RAM = 0n;
const PORTAL_GPA = 0xf000_0000n;

interface VmWorld {
  twin: Twin;
  base: Set<unknown>;
  /** the device's user: its iommufd, cdev, buffer at IOVA 0, PASID 5 */
  dev: DsaUser;
  devProc: TwinProcess;
  buf: number;
  ioas: number;
  /** the VMM: its VM, guest RAM in slot 0, the portal in slot 1 */
  vmm: VmmPasid;
  ram: number;
}

/** `owner` runs the VM; `devOwner` opens the iommufd and binds the DSA (the same process
 * unless told otherwise). The VMM maps the DSA portal through the cdev fd it holds. */
function vmWorld(design: PasidDesign, split = false): VmWorld {
  const twin = pasidTwin(design);
  const base = new Set<unknown>(twin.kernel.objects);
  const a = twin.spawn({ name: "vmm" });
  const devProc = split ? twin.spawn({ name: "manager" }) : a;
  const dev = new DsaUser(devProc);
  dev.openIommufd();
  assert.equal(dev.bind(DSA_CDEV), 0);
  const ioas = dev.ioasAlloc();
  const buf = devProc.mmap(BUF);
  assert.equal(dev.map(ioas, 0n, buf, BUF), 0);
  assert.equal(dev.mapBars(), 0);
  dev.enable();
  assert.equal(dev.attach(ioas, 5).rc, 0);
  const vmm = new VmmPasid(a);
  assert.ok(vmm.createVm() >= 0);
  const ram = a.mmap(BUF);
  assert.equal(vmm.slot(0, GUEST_RAM, ram, BUF), 0);
  return { twin, base, dev, devProc, buf, ioas, vmm, ram };
}

/** The VMM gets the portal: its own mapping of BAR2 through a cdev fd it holds. */
function vmmPortal(w: VmWorld, cdevFdInVmm: number): number {
  const b2 = w.vmm.p.mmap(16384, { fd: cdevFdInVmm, offset: 2 * 2 ** 40 });
  assert.ok(b2 > 0);
  assert.equal(w.vmm.slot(1, PORTAL_GPA, b2, 16384), 0);
  return b2;
}

/** The guest writes a fill descriptor into its RAM at 0x800 and executes ENQCMD. */
function guestFill(w: VmWorld, vpasid: number | null, dst: bigint, pattern = 0x5an) {
  const vcpu = w.twin.vcpu(w.vmm.p, w.vmm.vm)!;
  vcpu.guestPasid = vpasid;
  w.vmm.p.write(w.ram + 0x800, dsaDescriptor("fill", { pattern: pattern * 0x0101010101010101n, dst, size: 4 }));
  return vcpu.enqcmd(Number(PORTAL_GPA), 0x800);
}

function vmTable(w: VmWorld) {
  const kvm = [...kvmState(w.twin.kernel)!.vms][0]!;
  return kvmPasidTable(kvm);
}

function finish(w: VmWorld): void {
  endWorld(w.twin, w.base);
}

describe("guest ENQCMD under process-table", () => {
  it("links only authorized PASIDs; the guest's ENQCMD reaches them; unlinked vPASIDs exit", () => {
    const w = vmWorld("process-table");
    vmmPortal(w, w.dev.cdev);
    assert.equal(w.vmm.link(1, 6), -EPERM, "6 is not in the owner's table");
    assert.equal(w.vmm.link(0, 5), -EINVAL, "vPASID 0");
    assert.equal(w.vmm.link(1, 5, { vfioFd: w.dev.cdev, iommufd: w.dev.iommufd }), -EINVAL, "no fds in this design");
    assert.equal(w.vmm.link(1, 5), 0);
    assert.equal(w.vmm.link(1, 5), -EEXIST);
    assert.equal(guestFill(w, 1, 0x100n), "accepted");
    w.twin.advance(DSA_OP_DELAY_NS);
    assert.deepEqual([...w.devProc.read(w.buf + 0x100, 4)], [0x5a, 0x5a, 0x5a, 0x5a]);
    assert.equal(guestFill(w, 2, 0x100n), "exit");
    assert.equal(vmTable(w).exits, 1);
    assert.equal(guestFill(w, null, 0x100n), "gp");
    checkAll(w.twin);
    assert.equal(w.vmm.unlink(1), 0);
    assert.equal(w.vmm.unlink(1), -ENOENT);
    assert.equal(guestFill(w, 1, 0x100n), "exit");
    finish(w);
  });

  it("guest faults: the portal outside any slot; a descriptor whose IOVA the PASID's domain lacks", () => {
    const w = vmWorld("process-table");
    vmmPortal(w, w.dev.cdev);
    assert.equal(w.vmm.link(3, 5), 0);
    const vcpu = w.twin.vcpu(w.vmm.p, w.vmm.vm)!;
    vcpu.guestPasid = 3;
    assert.equal(vcpu.enqcmd(0x7000_0000, 0x800), "fault", "no slot at the portal address");
    w.vmm.p.write(w.ram + 0x800, dsaDescriptor("fill", { pattern: 1n, dst: 0x200000n, size: 4, comp: 0x40n }));
    assert.equal(vcpu.enqcmd(Number(PORTAL_GPA), 0x800), "accepted");
    w.twin.advance(DSA_OP_DELAY_NS);
    assert.equal(w.devProc.read(w.buf + 0x40, 1)[0], 0x83, "PAGE_FAULT_NOBOF on a write");
    finish(w);
  });

  it("revokes a translation when the owner's table loses the PASID (detach)", () => {
    const w = vmWorld("process-table");
    vmmPortal(w, w.dev.cdev);
    assert.equal(w.vmm.link(1, 5), 0);
    assert.equal(w.dev.detach(5), 0);
    assert.deepEqual([...vmTable(w).map], []);
    assert.equal(vmTable(w).revoked, 1);
    assert.equal(guestFill(w, 1, 0x100n), "exit");
    assert.deepEqual(checkPasidReach(w.twin.kernel), []);
    finish(w);
  });
});

describe("guest ENQCMD under vfio-translate", () => {
  it("KVM asks the VFIO device file, given the iommufd, and installs the answer", () => {
    const w = vmWorld("vfio-translate");
    vmmPortal(w, w.dev.cdev);
    const via = { vfioFd: w.dev.cdev, iommufd: w.dev.iommufd };
    assert.equal(w.vmm.link(1, 5), -EBADF, "the design needs both fds");
    assert.equal(w.vmm.link(1, 7, via), -ENOENT, "7 is not attached on the device");
    const fd2 = w.vmm.p.open("/dev/iommu");
    assert.equal(w.vmm.link(1, 5, { vfioFd: w.dev.cdev, iommufd: fd2 }), -EINVAL, "not the bound iommufd");
    assert.equal(w.vmm.link(1, 5, { vfioFd: fd2, iommufd: w.dev.iommufd }), -EINVAL, "not a VFIO device file");
    assert.equal(w.vmm.link(1, 5, via), 0);
    assert.equal(guestFill(w, 1, 0x300n), "accepted");
    w.twin.advance(DSA_OP_DELAY_NS);
    assert.equal(w.devProc.read(w.buf + 0x300, 1)[0], 0x5a);
    assert.deepEqual(checkPasidReach(w.twin.kernel), [], "while the owner holds the PASID, the rule holds");
    finish(w);
  });
});

/** One process manages the device (iommufd, cdev, PASID 5 for its own buffer) and passes
 * the fds to the VMM, as a management stack passes fds to QEMU. */
function fdPassing(design: PasidDesign) {
  const w = vmWorld(design, true);
  const cdev = w.devProc.sendFd(w.dev.cdev, w.vmm.p);
  const iommufd = w.devProc.sendFd(w.dev.iommufd, w.vmm.p);
  assert.ok(cdev >= 0 && iommufd >= 0);
  vmmPortal(w, cdev);
  return { w, cdev, iommufd };
}

describe("where the designs differ", () => {
  it("fd passing: the VMM's guest gets the manager's PASID only under vfio-translate", () => {
    for (const design of ["process-table", "vfio-translate"] as const) {
      const { w, cdev, iommufd } = fdPassing(design);
      const rc = design === "process-table" ? w.vmm.link(1, 5) : w.vmm.link(1, 5, { vfioFd: cdev, iommufd });
      assert.equal(rc, design === "process-table" ? -EPERM : 0, design);
      assert.equal(w.vmm.p.setPasid(5), -EPERM, "the VMM itself cannot use PASID 5");
      if (design === "vfio-translate") {
        // the guest writes the manager's memory, which its VMM cannot reach
        assert.equal(guestFill(w, 1, 0x500n, 0x66n), "accepted");
        w.twin.advance(DSA_OP_DELAY_NS);
        assert.equal(w.devProc.read(w.buf + 0x500, 1)[0], 0x66);
        assert.deepEqual(checkPasidReach(w.twin.kernel), [
          "vm 1: guest PASID 1 reaches host PASID 5, which its owner pid 1 cannot reach",
        ]);
        w.twin.kill(w.vmm.p); // the world ends with the VM
      } else assert.equal(guestFill(w, 1, 0x500n), "exit");
      finish(w);
    }
  });

  it("one process owns the VM, another the iommufd: the PASID the VMM attached is the iommufd owner's", () => {
    for (const design of ["process-table", "vfio-translate"] as const) {
      const twin = pasidTwin(design);
      const base = new Set<unknown>(twin.kernel.objects);
      const vmmP = twin.spawn({ name: "vmm" });
      const mgr = twin.spawn({ name: "manager" });
      const ifd = mgr.open("/dev/iommu");
      const vfd = mgr.sendFd(ifd, vmmP);
      // the VMM binds the DSA to the manager's iommufd and attaches PASID 7 over its own memory
      const u = new DsaUser(vmmP);
      u.iommufd = vfd;
      assert.equal(u.bind(DSA_CDEV), 0);
      const ioas = u.ioasAlloc();
      const buf = vmmP.mmap(BUF);
      assert.equal(u.map(ioas, 0n, buf, BUF), 0);
      assert.equal(u.attach(ioas, 7).rc, 0);
      assert.deepEqual(mgr.authorizedPasids(), [7], "the iommufd's owner is who opened it");
      assert.deepEqual(vmmP.authorizedPasids(), []);
      const vmm = new VmmPasid(vmmP);
      vmm.createVm();
      const rc = design === "process-table" ? vmm.link(1, 7) : vmm.link(1, 7, { vfioFd: u.cdev, iommufd: vfd });
      assert.equal(rc, design === "process-table" ? -EPERM : 0);
      assert.deepEqual(checkPasidReach(twin.kernel).length, design === "process-table" ? 0 : 1);
      if (design === "vfio-translate") twin.kill(vmmP);
      endWorld(twin, base);
    }
  });

  it("detach after the translation is installed: revoked, or left reaching a PASID nobody holds", () => {
    for (const design of ["process-table", "vfio-translate"] as const) {
      const w = vmWorld(design);
      vmmPortal(w, w.dev.cdev);
      const via = design === "process-table" ? null : { vfioFd: w.dev.cdev, iommufd: w.dev.iommufd };
      assert.equal(w.vmm.link(1, 5, via), 0);
      assert.equal(w.dev.detach(5), 0);
      const v = checkPasidReach(w.twin.kernel);
      if (design === "process-table") {
        assert.deepEqual(v, []);
        assert.equal(guestFill(w, 1, 0n), "exit");
      } else {
        assert.deepEqual(v, ["vm 1: guest PASID 1 reaches host PASID 5, which its owner pid 1 cannot reach"]);
        // the stale link still sends descriptors tagged 5: the device has no domain there now
        assert.equal(guestFill(w, 1, 0n), "accepted");
        w.twin.advance(DSA_OP_DELAY_NS);
        w.twin.kill(w.vmm.p);
      }
      finish(w);
    }
  });

  it("process exit: the VM outlives its owner through a passed fd; only process-table revokes", () => {
    for (const design of ["process-table", "vfio-translate"] as const) {
      const w = vmWorld(design);
      vmmPortal(w, w.dev.cdev);
      const via = design === "process-table" ? null : { vfioFd: w.dev.cdev, iommufd: w.dev.iommufd };
      assert.equal(w.vmm.link(1, 5, via), 0);
      const holder = w.twin.spawn({ name: "holder" });
      assert.ok(w.vmm.p.sendFd(w.vmm.vm, holder) >= 0);
      w.twin.kill(w.vmm.p);
      assert.equal(kvmState(w.twin.kernel)!.vms.size, 1, "the VM lives on");
      const v = checkPasidReach(w.twin.kernel);
      if (design === "process-table") assert.deepEqual(v, []);
      else {
        assert.deepEqual(v, ["vm 1: guest PASID 1 reaches host PASID 5, and the process that ran the VM is gone"]);
        w.twin.kill(holder);
      }
      finish(w);
    }
  });

  it("the iommufd closed while the VM runs: nothing changes until the device goes too", () => {
    for (const design of ["process-table", "vfio-translate"] as const) {
      const w = vmWorld(design);
      const portal = vmmPortal(w, w.dev.cdev);
      const via = design === "process-table" ? null : { vfioFd: w.dev.cdev, iommufd: w.dev.iommufd };
      assert.equal(w.vmm.link(1, 5, via), 0);
      assert.equal(w.vmm.p.close(w.dev.iommufd), 0);
      assert.deepEqual(w.vmm.p.authorizedPasids(), [5], "the bound cdev holds the context");
      assert.deepEqual(checkPasidReach(w.twin.kernel), []);
      assert.equal(guestFill(w, 1, 0x10n), "accepted");
      w.twin.advance(DSA_OP_DELAY_NS);
      // the VMM's slot 1 maps BAR2 too: unmap it before the device can go
      assert.equal(w.vmm.slot(1, PORTAL_GPA, 0, 0), 0);
      assert.equal(w.vmm.p.munmap(portal, 16384), 0);
      assert.equal(w.dev.closeDevice(), 0);
      assert.deepEqual(w.vmm.p.authorizedPasids(), []);
      const v = checkPasidReach(w.twin.kernel);
      assert.equal(v.length, design === "process-table" ? 0 : 1, v.join("\n"));
      if (design === "vfio-translate") w.twin.kill(w.vmm.p);
      finish(w);
    }
  });
});

describe("generated programs", () => {
  type Op =
    | { k: "link"; v: number; p: number }
    | { k: "unlink"; v: number }
    | { k: "attach"; p: number }
    | { k: "detach"; p: number }
    | { k: "pass" }
    | { k: "closeIommufd" }
    | { k: "closeDevice" }
    | { k: "killOwner" };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      k: fc.constant("link" as const),
      v: fc.integer({ min: 1, max: 2 }),
      p: fc.integer({ min: 5, max: 6 }),
    }),
    fc.record({ k: fc.constant("unlink" as const), v: fc.integer({ min: 1, max: 2 }) }),
    fc.record({ k: fc.constant("attach" as const), p: fc.integer({ min: 5, max: 6 }) }),
    fc.record({ k: fc.constant("detach" as const), p: fc.integer({ min: 5, max: 6 }) }),
    fc.constant({ k: "pass" as const }),
    fc.constant({ k: "closeIommufd" as const }),
    fc.constant({ k: "closeDevice" as const }),
    fc.constant({ k: "killOwner" as const }),
  );

  /** Run `ops` on a manager + VMM world; the PASID reach violations seen after each step. */
  function run(design: PasidDesign, ops: Op[]): string[] {
    const w = vmWorld(design, true);
    let cdev = -1;
    let iommufd = -1;
    let devOpen = true;
    const seen: string[] = [];
    for (const o of ops) {
      if (w.vmm.p.exited) break;
      switch (o.k) {
        case "link":
          if (design === "process-table") w.vmm.link(o.v, o.p);
          else w.vmm.link(o.v, o.p, { vfioFd: cdev, iommufd });
          break;
        case "unlink":
          w.vmm.unlink(o.v);
          break;
        case "attach":
          if (devOpen) w.dev.attach(w.ioas, o.p);
          break;
        case "detach":
          if (devOpen) w.dev.detach(o.p);
          break;
        case "pass":
          if (devOpen && cdev < 0 && !w.devProc.exited) {
            cdev = w.devProc.sendFd(w.dev.cdev, w.vmm.p);
            iommufd = w.devProc.sendFd(w.dev.iommufd, w.vmm.p);
          }
          break;
        case "closeIommufd":
          if (iommufd >= 0) w.vmm.p.close(iommufd);
          iommufd = -1;
          break;
        case "closeDevice":
          if (cdev >= 0) w.vmm.p.close(cdev);
          cdev = -1;
          if (devOpen && !w.devProc.exited) w.dev.closeDevice();
          devOpen = false;
          break;
        case "killOwner":
          if (!w.devProc.exited) w.twin.kill(w.devProc);
          devOpen = false;
          break;
      }
      seen.push(...checkPasidReach(w.twin.kernel));
    }
    endWorld(w.twin, w.base);
    return seen;
  }

  it("process-table: no generated program lets a VM reach a PASID its owner cannot", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 12 }), (ops) => {
        assert.deepEqual(run("process-table", ops), []);
      }),
      { numRuns: 60, seed: 16 },
    );
  });

  it("vfio-translate: fast-check finds and shrinks a program that breaks the rule", () => {
    const r = fc.check(
      fc.property(fc.array(opArb, { maxLength: 12 }), (ops) => run("vfio-translate", ops).length === 0),
      { numRuns: 200, seed: 16 },
    );
    assert.equal(r.failed, true, "a counterexample exists");
    const ce = r.counterexample![0] as Op[];
    // the shortest: pass the manager's fds, link to its PASID
    assert.deepEqual(
      ce.map((o) => o.k),
      ["pass", "link"],
    );
  });
});

describe("the invariant catches a KVM that forgets to revoke", () => {
  it("process-table with the revocation replaced by a no-op: the detach leaves a violation", async () => {
    const { pasidRevocation, kvmRevokePasidTranslations } = await import("../../src/kvm/enqcmd.js");
    pasidRevocation.revoke = () => 0; // the planted bug: the explorer's "translation not revoked"
    try {
      const w = vmWorld("process-table");
      vmmPortal(w, w.dev.cdev);
      assert.equal(w.vmm.link(1, 5), 0);
      assert.equal(w.dev.detach(5), 0);
      assert.deepEqual(checkPasidReach(w.twin.kernel), [
        "vm 1: guest PASID 1 reaches host PASID 5, which its owner pid 1 cannot reach",
      ]);
      w.twin.kill(w.vmm.p);
      finish(w);
    } finally {
      pasidRevocation.revoke = kvmRevokePasidTranslations;
    }
  });
});
