// PASID attach / replace / detach for a device cdev bound to iommufd (the uAPI upstream added
// after 6.12: VFIO_DEVICE_ATTACH_PASID, iommufd's pasid.c), gated by the kernel version; the
// IOMMU core's PASID table behind it; the host PASID space; and the maintenance of the
// process's ENQCMD authorization table (the twin's proposal). Every world ends with the
// invariant check and a leak check.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { EBUSY, EINVAL, ENOENT, ENOSPC, ENOTTY } from "../../src/uapi/errno.js";
import * as V from "../../src/uapi/vfio.js";
import { createTwin } from "../../src/twin.js";
import { DSA_PCI, ORACLE_PCI } from "../../src/hw/machine.js";
import { DSA_OP_DELAY_NS } from "../../src/hw/dsa.js";
import { DsaUser, dsaDescriptor, VmmPasid } from "../../src/vmm/dsa_pasid.js";
import { GlobalPasidSpace } from "../../src/iommu/global_pasid.js";
import { groupPasids } from "../../src/iommu/pasid_table.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import { BUF, checkAll, DSA_CDEV, endWorld, faults, pasidTwin, world } from "../pasid_helpers.js";

function dsaGroupPasids(twin: ReturnType<typeof pasidTwin>): number[] {
  const dev = IommuCore.of(twin.kernel).device(DSA_PCI.bdf)!;
  return [...groupPasids(dev.group).keys()].sort((a, b) => a - b);
}

describe("the PASID uAPI exists only on the newer kernel", () => {
  it("6.12: ATTACH/DETACH with the PASID flag are EINVAL, the KVM proposal ENOTTY, no IA32_PASID", () => {
    const twin = createTwin({ pci: [...ORACLE_PCI, DSA_PCI] });
    const base = new Set(twin.kernel.objects);
    const p = twin.spawn();
    const u = new DsaUser(p);
    u.openIommufd();
    assert.equal(u.bind(DSA_CDEV), 0);
    const ioas = u.ioasAlloc();
    assert.equal(u.attach(ioas, 5).rc, -EINVAL);
    assert.equal(u.detach(5), -EINVAL);
    assert.equal(u.attach(ioas, null).rc, 0, "the RID attach is 6.12's");
    assert.equal(p.setPasid(5), -EINVAL);
    const vmm = new VmmPasid(p);
    assert.ok(vmm.createVm() >= 0);
    assert.equal(vmm.link(1, 5), -ENOTTY);
    endWorld(twin, base);
  });
});

describe("PASID attach, replace, detach (6.15)", () => {
  it("argument checks: argsz, unknown flags, PASID 0 and a device without PASID support", () => {
    const w = world("process-table", null);
    const short = w.u.p;
    // argsz 12 (no room for pasid) with the flag
    short.write(
      w.u.scr,
      V.vfio_device_attach_iommufd_pt_pasid.encode({ argsz: 12, flags: 1, pt_id: w.ioas, pasid: 5 }),
    );
    assert.equal(short.ioctl(w.u.cdev, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, w.u.scr), -EINVAL);
    short.write(
      w.u.scr,
      V.vfio_device_attach_iommufd_pt_pasid.encode({ argsz: 16, flags: 2, pt_id: w.ioas, pasid: 5 }),
    );
    assert.equal(short.ioctl(w.u.cdev, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, w.u.scr), -EINVAL);
    assert.equal(w.u.attach(w.ioas, 0).rc, -EINVAL, "IOMMU_NO_PASID");
    assert.equal(w.u.attach(w.ioas, 1 << 20).rc, -EINVAL, "beyond max_pasids");
    assert.equal(w.u.attach(999, 5).rc, -ENOENT);
    // the edu device has no PASID support
    const edu = new DsaUser(w.p);
    edu.iommufd = w.u.iommufd;
    assert.equal(edu.bind("/dev/vfio/devices/vfio0"), 0);
    assert.equal(edu.attach(w.ioas, 5).rc, -EINVAL);
    assert.deepEqual(w.p.authorizedPasids(), []);
    endWorld(w.twin, w.baseline);
  });

  it("attach makes an automatic domain for the PASID; DMA at it goes there, the RID's stays blocked", () => {
    const w = world("process-table", null);
    const r = w.u.attach(w.ioas, 5);
    assert.equal(r.rc, 0);
    assert.ok(r.ptId > w.ioas, "pt_id is the automatic HWPT's id");
    assert.deepEqual(dsaGroupPasids(w.twin), [5]);
    assert.deepEqual(w.p.authorizedPasids(), [5]);
    // attaching the same PASID to the same IOAS again is a replace onto the same HWPT
    assert.deepEqual(w.u.attach(w.ioas, 5), { rc: 0, ptId: r.ptId });
    w.p.setPasid(5);
    w.p.write(w.buf, new Uint8Array([42]));
    w.u.submit(dsaDescriptor("memmove", { src: 0n, dst: 0x10n, size: 1 }));
    w.twin.advance(DSA_OP_DELAY_NS);
    assert.equal(w.p.read(w.buf + 0x10, 1)[0], 42);
    assert.deepEqual(faults(w.twin), []);
    endWorld(w.twin, w.baseline);
  });

  it("replace moves the PASID to another IOAS without leaving the table; detach blocks it", () => {
    const w = world();
    const ioas2 = w.u.ioasAlloc();
    const other = w.p.mmap(BUF);
    assert.equal(w.u.map(ioas2, 0n, other, BUF), 0);
    w.p.setPasid(5);
    assert.equal(w.u.attach(ioas2, 5).rc, 0, "replace");
    assert.deepEqual(w.p.authorizedPasids(), [5], "replace keeps the authorization");
    assert.equal(w.p.pasid, 5);
    w.u.submit(dsaDescriptor("fill", { pattern: 0x77n, dst: 0n, size: 1 }));
    w.twin.advance(DSA_OP_DELAY_NS);
    assert.equal(w.p.read(other, 1)[0], 0x77, "the new IOAS's memory");
    assert.equal(w.p.read(w.buf, 1)[0], 0, "not the old one's");
    assert.equal(w.u.detach(5), 0);
    assert.deepEqual(dsaGroupPasids(w.twin), []);
    assert.deepEqual(w.p.authorizedPasids(), []);
    assert.equal(w.p.pasid, null, "IA32_PASID cleared with the authorization");
    assert.equal(w.u.detach(5), 0, "detaching a PASID not attached does nothing");
    checkAll(w.twin);
    endWorld(w.twin, w.baseline);
  });

  it("closing the cdev detaches its PASIDs and takes them out of the table", () => {
    const w = world();
    assert.equal(w.u.attach(w.ioas, 6).rc, 0);
    assert.deepEqual(w.p.authorizedPasids(), [5, 6]);
    assert.equal(w.p.close(w.u.cdev), 0);
    assert.deepEqual(w.p.authorizedPasids(), [5, 6], "the BAR mappings still hold the file");
    assert.equal(w.u.closeDevice(), -9, "EBADF: closed already; the BARs are unmapped now");
    assert.deepEqual(w.p.authorizedPasids(), []);
    assert.deepEqual(dsaGroupPasids(w.twin), []);
    endWorld(w.twin, w.baseline);
  });

  it("a PASID another iommufd holds is attached as upstream does, but not authorized", () => {
    // two DSAs: A's on its iommufd, B's on B's
    const twin = pasidTwin("process-table", {
      pci: [...ORACLE_PCI, DSA_PCI, { ...DSA_PCI, bdf: "0000:00:03.0", iommuGroup: 3 }],
    });
    const base = new Set(twin.kernel.objects);
    const [a, b] = [twin.spawn({ name: "a" }), twin.spawn({ name: "b" })];
    const [ua, ub] = [new DsaUser(a), new DsaUser(b)];
    for (const [u, cdev] of [
      [ua, DSA_CDEV],
      [ub, "/dev/vfio/devices/vfio2"],
    ] as const) {
      u.openIommufd();
      assert.equal(u.bind(cdev), 0);
    }
    assert.equal(ua.attach(ua.ioasAlloc(), 5).rc, 0);
    assert.equal(ub.attach(ub.ioasAlloc(), 5).rc, 0, "the device's own PASID space: upstream allows it");
    assert.deepEqual(a.authorizedPasids(), [5]);
    assert.deepEqual(b.authorizedPasids(), [], "5 names A's context machine-wide");
    assert.equal(b.setPasid(5), -1);
    assert.equal(ua.detach(5), 0);
    assert.equal(ub.attach(ub.ioasAlloc(), 6).rc, 0);
    assert.deepEqual(b.authorizedPasids(), [6]);
    endWorld(twin, base);
  });

  it("detach with argsz too small for pasid is EINVAL and changes nothing", () => {
    const w = world();
    w.p.write(w.u.scr, V.vfio_device_detach_iommufd_pt_pasid.encode({ argsz: 8, flags: 1, pasid: 5 }));
    assert.equal(w.p.ioctl(w.u.cdev, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, w.u.scr), -EINVAL);
    assert.deepEqual(w.p.authorizedPasids(), [5]);
    endWorld(w.twin, w.baseline);
  });

  it("fast-check: any sequence of attach/replace/detach keeps the IOMMU table, the attachments and the authorization table in step", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            op: fc.constantFrom("attach", "detach", "close-reopen"),
            pasid: fc.integer({ min: 1, max: 4 }),
            ioas: fc.integer({ min: 0, max: 1 }),
          }),
          { maxLength: 25 },
        ),
        (ops) => {
          const w = world("process-table", null);
          const ioases = [w.ioas, w.u.ioasAlloc()];
          const model = new Set<number>();
          for (const o of ops) {
            if (o.op === "attach") {
              assert.equal(w.u.attach(ioases[o.ioas]!, o.pasid).rc, 0);
              model.add(o.pasid);
            } else if (o.op === "detach") {
              assert.equal(w.u.detach(o.pasid), 0);
              model.delete(o.pasid);
            } else {
              assert.equal(w.u.closeDevice(), 0);
              assert.equal(w.u.bind(DSA_CDEV), 0);
              model.clear();
            }
            const want = [...model].sort((a, b) => a - b);
            assert.deepEqual(w.p.authorizedPasids(), want);
            assert.deepEqual(dsaGroupPasids(w.twin), want);
            checkAll(w.twin);
          }
          endWorld(w.twin, w.baseline);
        },
      ),
      { numRuns: 40, seed: 16 },
    );
  });
});

describe("the host PASID space", () => {
  it("allocates the lowest free PASID from 1, claims per owner, frees at the last put", () => {
    const s = new GlobalPasidSpace(4);
    const a = {};
    const b = {};
    assert.equal(s.alloc(a), 1);
    assert.equal(s.alloc(a), 2);
    assert.equal(s.claim(3, b), 0);
    assert.equal(s.claim(3, b), 0);
    assert.equal(s.claim(3, a), -EBUSY);
    assert.equal(s.alloc(a), 4);
    assert.equal(s.alloc(a), -ENOSPC);
    s.put(3, b);
    assert.equal(s.ownerOf(3), b);
    s.put(3, b);
    assert.equal(s.ownerOf(3), undefined);
    assert.equal(s.alloc(b), 3);
    assert.equal(s.claim(0, a), -EINVAL);
    assert.equal(s.claim(5, a), -EINVAL);
    assert.throws(() => s.put(1, b));
  });
});
