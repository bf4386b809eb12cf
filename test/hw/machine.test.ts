import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EduDevice } from "../../src/hw/edu.js";
import { GenericPciDevice } from "../../src/hw/generic.js";
import { Machine, ORACLE_PCI } from "../../src/hw/machine.js";
import { Clock } from "../../src/kernel/time.js";

describe("Machine", () => {
  it("defaults to the oracle's machine, with the oracle's config space for edu", () => {
    const m = new Machine(new Clock());
    assert.equal(m.devices.length, 1);
    assert.deepEqual(m.devices[0]!.config, { ...ORACLE_PCI[0]! });
    const hw = m.devices[0]!.hw;
    assert.ok(hw instanceof EduDevice);
    const c = hw.cfg;
    assert.equal(c.getUint32(0, true), 0x11e81234);
    assert.equal(c.getUint32(8, true), 0x00ff0010);
    assert.equal(c.getUint32(0x10, true), 0xfea00000);
    assert.equal(c.getUint32(0x2c, true), 0x11001af4);
    assert.equal(c.getUint32(0x40, true), 0x00800005);
    assert.equal(c.getUint8(0x3d), 1);
    assert.equal(hw.canReset, false);
    assert.equal(m.iommu.awBits, 39);
    assert.equal(m.iommu.pgsizeBitmap, 0x40201000n);
  });

  it("builds configured functions and rejects bad configs", () => {
    const clock = new Clock();
    const m = new Machine(clock, [
      { bdf: "0000:00:02.0", vendor: 0x8086, device: 0x10d3, iommuGroup: 3, driver: "host" },
      { bdf: "0000:00:03.0", vendor: 0x1234, device: 0x11e8, iommuGroup: 4, driver: "vfio-pci", pasid: true },
    ]);
    assert.ok(m.byBdf("0000:00:02.0")!.hw instanceof GenericPciDevice);
    assert.equal(m.byBdf("0000:00:03.0")!.config.pasid, true);
    assert.equal(m.byBdf("0000:00:03.0")!.config.coherent, false);
    assert.throws(() => new Machine(clock, [{ bdf: "1:2", vendor: 1, device: 1, iommuGroup: 1, driver: "host" }]));
    assert.throws(
      () =>
        new Machine(clock, [
          { bdf: "0000:00:02.0", vendor: 1, device: 1, iommuGroup: 1, driver: "host" },
          { bdf: "0000:00:02.0", vendor: 1, device: 1, iommuGroup: 1, driver: "host" },
        ]),
    );
  });

  it("the generic device's BAR0 is a register file", () => {
    const d = new GenericPciDevice("0000:00:02.0", 0x8086, 0x10d3, 0xfeb00000);
    d.mmioWrite(0, 8, 4, 0xdeadbeefn);
    assert.equal(d.mmioRead(0, 8, 4), 0xdeadbeefn);
    assert.equal(d.mmioRead(0, 8, 2), 0xbeefn);
  });
});
