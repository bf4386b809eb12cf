import { it } from "node:test";
import assert from "node:assert/strict";
import { Errno, EBUSY, ENODEV } from "../../src/uapi/errno.js";
import { createTwin } from "../../src/twin.js";
import { vfioLegacySetup, vfioLegacyTeardown } from "../../src/vmm/vfio_legacy.js";
import { checkVfioQuiescent } from "../../src/check/vfio_invariants.js";

it("the QEMU-style legacy setup on the oracle machine", () => {
  const twin = createTwin();
  const p = twin.spawn();
  const ram = p.mmap(0x200000);
  const s = vfioLegacySetup(p, { device: "0000:00:01.0", maps: [{ vaddr: ram, iova: 0n, size: 0x200000n }] });
  assert.equal(s.groupPath, "/dev/vfio/1");
  assert.equal(s.iommu.pgsizes, 0x40201000n);
  assert.deepEqual(s.iommu.iovaRanges, [
    { start: 0n, end: 0xfedfffffn },
    { start: 0xfef00000n, end: 0x7fffffffffn },
  ]);
  assert.equal(s.iommu.dmaAvail, 65535, "read before the maps");
  assert.deepEqual(s.iommu.migration, { pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 0x10000000n });
  assert.equal(s.deviceFlags, 2);
  assert.deepEqual(
    s.regions.map((r) => r.index),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  assert.equal(s.regions[0]!.size, 0x100000n);
  assert.deepEqual(
    s.irqs.map((r) => [r.index, r.count]),
    [
      [0, 1],
      [1, 1],
      [2, 0],
      [4, 1],
    ],
  );
  assert.equal(p.proc.mm.lockedVm, 0x200);
  vfioLegacyTeardown(p, s);
  assert.deepEqual(checkVfioQuiescent(twin.kernel), []);
});

it("a failing step throws Errno and closes what it opened", () => {
  const twin = createTwin({
    pci: [
      { bdf: "0000:00:01.0", vendor: 0x1234, device: 0x11e8, iommuGroup: 1, driver: "vfio-pci" },
      { bdf: "0000:00:01.1", vendor: 0x1234, device: 0x11e8, iommuGroup: 1, driver: "host" },
    ],
  });
  const p = twin.spawn();
  assert.throws(
    () => vfioLegacySetup(p, { device: "0000:00:01.0" }),
    (e: unknown) => e instanceof Errno && e.errno === ENODEV,
  );
  const q = twin.spawn();
  const g = q.open("/dev/vfio/1");
  assert.ok(g >= 0, "the failed setup closed its group fd");
  assert.throws(
    () => vfioLegacySetup(p, { device: "0000:00:01.0" }),
    (e: unknown) => e instanceof Errno && e.errno === EBUSY,
  );
  q.close(g);
  assert.deepEqual(checkVfioQuiescent(twin.kernel), []);
});
