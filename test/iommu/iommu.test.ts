// The IOMMU core: groups, ownership, attach/detach, and device DMA through type1 mappings
// (bytes land in the process's memory; everything else is a recorded fault).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EBUSY, EEXIST, EINVAL, EPERM } from "../../src/uapi/errno.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import { IOMMU_READ } from "../../src/iommu/domain.js";
import { Page } from "../../src/kernel/mm.js";
import { PCI_COMMAND } from "../../src/hw/pci.js";
import { createTwin } from "../../src/twin.js";
import { BDF, env, legacy, map, unmap } from "../vfio/helpers.js";

describe("IommuCore", () => {
  it("groups the machine's devices and starts them in their default domain", () => {
    const t = createTwin();
    const core = IommuCore.of(t.kernel);
    const dev = core.device(BDF)!;
    assert.equal(dev.group.id, 1);
    assert.equal(dev.group.domain, dev.group.defaultDomain);
    assert.deepEqual(dev.resvRegions(), [{ start: 0xfee00000n, last: 0xfeefffffn, type: "msi" }]);
    assert.equal(dev.capable("cache-coherency"), false);
    assert.equal(dev.capable("pasid"), false);
  });

  it("ownership: claim moves to blocking, a second claim EPERM, attach/detach/replace", () => {
    const t = createTwin({ vfio: false });
    const core = IommuCore.of(t.kernel);
    const g = core.group(1)!;
    const owner = {};
    assert.equal(core.claimDmaOwner(g, owner), 0);
    assert.equal(g.domain.type, "blocked");
    assert.equal(core.claimDmaOwner(g, {}), -EPERM);
    const d = core.domainAllocPaging(g.devices[0]!, "test");
    assert.equal(core.attachGroup(d, g), 0);
    const d2 = core.domainAllocPaging(g.devices[0]!, "test2");
    assert.equal(core.attachGroup(d2, g), -EBUSY);
    assert.equal(core.replaceGroupDomain(g, d2), 0);
    assert.equal(g.domain, d2);
    core.detachGroup(d2, g);
    assert.equal(g.domain.type, "blocked");
    core.releaseDmaOwner(g);
    assert.equal(g.domain, g.defaultDomain);
    assert.equal(core.replaceGroupDomain(g, d), -EINVAL, "replace needs an owner");
  });

  it("domain map: EEXIST on overlap, EINVAL outside the aperture, unmap returns bytes", () => {
    const t = createTwin({ vfio: false });
    const core = IommuCore.of(t.kernel);
    const d = core.domainAllocPaging(core.device(BDF)!, "t");
    const pages = [new Page(), new Page()];
    assert.equal(d.map(0x1000n, pages, IOMMU_READ), 0);
    assert.equal(d.map(0x2000n, [new Page()], IOMMU_READ), -EEXIST);
    assert.equal(d.map(1n << 39n, [new Page()], IOMMU_READ), -EINVAL);
    assert.equal(d.lookup(0x2fffn)!.page, pages[1]);
    assert.equal(d.unmap(0x0n, 0x4000n), 0x2000);
    assert.equal(d.lookup(0x1000n), null);
  });
});

describe("device DMA through type1", () => {
  it("reads and writes process memory inside mappings; faults elsewhere", () => {
    const e = env();
    const { c } = legacy(e);
    const core = IommuCore.of(e.twin.kernel);
    const hw = core.device(BDF)!.pci!;
    e.p.write(e.buf, new Uint8Array([1, 2, 3, 4]));
    assert.equal(map(e, c, e.buf, 0x100000n, 0x2000n, 3), 0);
    assert.equal(map(e, c, e.buf + 0x2000, 0x200000n, 0x1000n, 1), 0); // device may only read
    // no bus mastering yet: nothing leaves the device
    assert.equal(hw.dmaRead(0x100000n, 4), null);
    hw.cfg.setUint16(PCI_COMMAND, hw.cfg.getUint16(PCI_COMMAND, true) | 4, true);
    assert.deepEqual([...hw.dmaRead(0x100000n, 4)!], [1, 2, 3, 4]);
    // a write spanning the page boundary lands in the process's memory
    assert.equal(hw.dmaWrite(0x100ffen, new Uint8Array([9, 8, 7, 6])), true);
    assert.deepEqual([...e.p.read(e.buf + 0xffe, 4)], [9, 8, 7, 6]);
    const before = core.faults.length;
    assert.equal(hw.dmaWrite(0x200000n, new Uint8Array([1])), false);
    assert.equal(hw.dmaRead(0x300000n, 1), null);
    assert.equal(hw.dmaWrite(0x101ffen, new Uint8Array(4)), false, "runs off the end of the mapping");
    assert.deepEqual(
      core.faults.slice(before).map((f) => [f.bdf, f.iova, f.write, f.reason]),
      [
        [BDF, 0x200000n, true, "permission"],
        [BDF, 0x300000n, false, "not-present"],
        [BDF, 0x102000n, true, "not-present"],
      ],
    );
    assert.deepEqual([...e.p.read(e.buf + 0x1ffe, 2)], [0, 0], "a faulting write moves no byte");
    assert.equal(unmap(e, c, 0x100000n, 0x2000n).size, 0x2000n);
    assert.equal(hw.dmaRead(0x100000n, 1), null);
    assert.equal(core.faults.at(-1)!.reason, "not-present");
    e.p.close(c);
  });

  it("a group without a container blocks DMA once claimed; unclaimed it uses the empty default domain", () => {
    const e = env();
    const core = IommuCore.of(e.twin.kernel);
    const hw = core.device(BDF)!.pci!;
    hw.cfg.setUint16(PCI_COMMAND, 0x107, true);
    assert.equal(hw.dmaRead(0n, 4), null);
    assert.equal(core.faults.at(-1)!.reason, "not-present");
    const { c, g } = legacy(e);
    void c;
    e.p.ioctl(g, 0x3b69); // UNSET_CONTAINER
    assert.equal(hw.dmaRead(0n, 4), null);
    assert.equal(core.faults.at(-1)!.reason, "not-present");
  });
});

describe("several groups in one type1 container", () => {
  for (const coherent of [false, true]) {
    it(`${coherent ? "a coherent and a non-coherent group get two domains" : "alike groups share one domain"}; both devices reach the mappings`, async () => {
      const { checkVfioInvariants, checkVfioQuiescent } = await import("../../src/check/vfio_invariants.js");
      const { type1Instances } = await import("../../src/vfio/vfio_iommu_type1.js");
      const { s32 } = await import("../vfio/helpers.js");
      const V = await import("../../src/uapi/vfio.js");
      const e = env({
        pci: [
          { bdf: "0000:00:03.0", vendor: 0x1234, device: 0x11e8, iommuGroup: 3, driver: "vfio-pci" },
          { bdf: "0000:00:04.0", vendor: 0x1234, device: 0x11e8, iommuGroup: 4, driver: "vfio-pci", coherent },
        ],
      });
      const { c } = legacy(e, "/dev/vfio/3");
      e.p.write(e.buf, new Uint8Array([7, 7, 7]));
      assert.equal(map(e, c, e.buf, 0x100000n, 0x2000n), 0);
      assert.equal(e.p.proc.mm.lockedVm, 2);
      const g4 = e.p.open("/dev/vfio/4");
      assert.equal(e.p.ioctl(g4, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
      assert.equal(e.p.proc.mm.lockedVm, 2, "the second domain reuses the pinned pages");
      const iommu = [...type1Instances(e.twin.kernel)][0]!;
      assert.equal(iommu.domains.length, coherent ? 2 : 1);
      assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_DMA_CC_IOMMU), 0, "not every domain enforces it");
      const core = IommuCore.of(e.twin.kernel);
      for (const bdf of ["0000:00:03.0", "0000:00:04.0"]) {
        const hw = core.device(bdf)!.pci!;
        hw.cfg.setUint16(PCI_COMMAND, 0x106, true);
        assert.deepEqual([...hw.dmaRead(0x100000n, 3)!], [7, 7, 7], bdf);
      }
      assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
      assert.equal(e.p.ioctl(g4, V.VFIO_GROUP_UNSET_CONTAINER), 0);
      assert.equal(core.device("0000:00:04.0")!.pci!.dmaRead(0x100000n, 3), null);
      assert.equal(e.p.proc.mm.lockedVm, 2, "group 3 still holds the mappings");
      assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
      e.twin.kill(e.p);
      assert.deepEqual(checkVfioQuiescent(e.twin.kernel), []);
    });
  }
});
