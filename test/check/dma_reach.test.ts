// The per-DMA detector (src/check/dma_reach.ts): a DMA through a domain its owner attached,
// onto pages a live mapping of the owning process pinned, is clean; a translation no owner
// accounts for is a "dma-reach" kernel bug at the access; nothing runs while the check is off.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import { IOMMU_READ, IOMMU_WRITE } from "../../src/iommu/domain.js";
import { Page } from "../../src/kernel/mm.js";
import { setDmaReachCheck } from "../../src/check/dma_reach.js";
import { explore, runSchedule } from "../../src/check/explorer.js";
import { type ConcurrentProgram, programWorld } from "../../src/check/random_program.js";
import { worldByName } from "../../src/check/worlds.js";
import { checkInvariants } from "../../src/check/invariants.js";
import * as V from "../../src/uapi/vfio.js";
import { deviceFd, env, legacy, map } from "../vfio/helpers.js";

const BDF = "0000:00:01.0";

/** a type1 container with the device's group and MAP_DMA of 8 KiB at 1 MiB */
function type1Twin() {
  const twin = createTwin({});
  const p = twin.spawn({ name: "vmm" });
  const buf = p.mmap(0x2000);
  const c = p.open("/dev/vfio/vfio");
  const g = p.open("/dev/vfio/1");
  const s32 = p.mmap(0x1000);
  p.write(s32, new Uint8Array([c, 0, 0, 0]));
  assert.equal(p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32), 0);
  assert.equal(p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), 0);
  const m = V.vfio_iommu_type1_dma_map;
  p.write(s32, m.encode({ argsz: m.size, flags: 3, vaddr: BigInt(buf), iova: 0x100000n, size: 0x2000n }));
  assert.equal(p.ioctl(c, V.VFIO_IOMMU_MAP_DMA, s32), 0);
  const core = IommuCore.of(twin.kernel);
  const dev = core.device(BDF)!;
  return { twin, p, buf, core, dev, port: dev.pci!.dma! };
}

test("a type1 DMA into the mapping process's pinned pages is clean and lands in its memory", () => {
  const { twin, p, buf, port } = type1Twin();
  setDmaReachCheck(twin.kernel, true);
  assert.equal(port.write(0x101000n, new Uint8Array([1, 2, 3, 4])), true);
  assert.deepEqual([...p.read(buf + 0x1000, 4)], [1, 2, 3, 4]);
  assert.equal(twin.kernel.bugs.length, 0);
  // outside the mapping: a fault, not a detector report
  assert.equal(port.write(0x300000n, new Uint8Array([1])), false);
  assert.equal(twin.kernel.bugs.length, 0);
});

test("a domain no owner attached the device to is reported at the DMA; off, nothing is checked", () => {
  const { twin, core, dev, port } = type1Twin();
  const k = twin.kernel;
  // a stray paging domain with a page nobody pinned, put under the group behind type1's back
  const stray = core.domainAllocPaging(dev, "stray");
  assert.equal(stray.map(0x100000n, [new Page()], IOMMU_READ | IOMMU_WRITE), 0);
  const saved = dev.group.domain;
  dev.group.setDomain(stray);
  assert.equal(port.write(0x100000n, new Uint8Array([9])), true);
  assert.equal(k.bugs.length, 0, "the check is off: the access is not examined");
  setDmaReachCheck(k, true);
  assert.equal(port.write(0x100000n, new Uint8Array([9])), true); // the hardware lets it through
  assert.equal(k.bugs.length, 1);
  assert.equal(k.bugs[0]!.kind, "dma-reach");
  assert.match(
    k.bugs[0]!.message,
    /write DMA by 0000:00:01\.0 at iova 0x100000 through iommu_domain \d+ \(paging, stray\).*no owner/,
  );
  assert.ok(checkInvariants(k).some((v) => v.message.startsWith("dma-reach:")));
  dev.group.setDomain(saved);
});

test("a type1 page that is no longer the mapping's is reported (pages of the owning process)", () => {
  const { twin, core, dev, port } = type1Twin();
  setDmaReachCheck(twin.kernel, true);
  const d = dev.group.domain;
  assert.notEqual(d, core.group(dev.group.id)!.defaultDomain);
  // swap the IOPTE under the live mapping for a page of nobody's
  d.unmap(0x100000n, 0x1000n);
  assert.equal(d.map(0x100000n, [new Page()], IOMMU_READ | IOMMU_WRITE), 0);
  assert.equal(port.write(0x100000n, new Uint8Array([7])), true);
  assert.equal(twin.kernel.bugs.length, 1);
  assert.match(twin.kernel.bugs[0]!.message, /but the vfio_dma at 0x100000 of pid \d+ holds pfn/);
});

test("iommufd-unmap-leaves-iopte: found at the DMA step, not only at the end; the correct model is clean", () => {
  const bad = explore(() => worldByName("iommufd-unmap-vs-dma")!.build({ broken: ["iommufd-unmap-leaves-iopte"] }), {
    maxExecutions: 20,
  });
  assert.ok(bad.failures.length > 0);
  const f = bad.failures[0]!;
  assert.notEqual(f.violationStep, null, "reported at a step, by the per-DMA check");
  assert.match(f.violations[0]!.message, /^dma-reach: write DMA .*\(a mapping outlived its unmap\)/);
  for (const w of ["iommufd-unmap-vs-dma", "iommufd-detach-vs-dma"]) {
    const good = explore(() => worldByName(w)!.build({}), { maxExecutions: 40 });
    assert.equal(good.complete, true, w);
    assert.deepEqual(good.failures, [], w);
    // both orders happen: the DMA before (lands) and after (faults) the unmap or detach
    assert.deepEqual([...good.outcomes.keys()].sort(), ["[0,-14]", "[0,0]"], w);
  }
});

test("the edu device's own DMA (vfio-pci, type1) runs clean under the check, both directions", () => {
  const e = env();
  const k = e.twin.kernel;
  setDmaReachCheck(k, true);
  const { c, g } = legacy(e);
  const d = deviceFd(e, g);
  const reg = (off: number, v: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    e.p.write(e.scr + 0x3000, b);
    assert.ok(e.p.pwrite(d, e.scr + 0x3000, off === 0x70000000004 ? 2 : 8, off) > 0);
  };
  reg(0x70000000004, 0x6); // PCI_COMMAND: memory + bus master
  e.p.write(e.buf, new Uint8Array([1, 2, 3, 4]));
  assert.equal(map(e, c, e.buf, 0x100000n, 0x2000n), 0);
  // RAM -> device buffer, then device buffer -> RAM one page up (edu: src, dst, count, cmd)
  for (const [src, dst, cmd] of [
    [0x100000, 0x40000, 1],
    [0x40000, 0x101000, 3],
  ] as const) {
    reg(0x80, src);
    reg(0x88, dst);
    reg(0x90, 4);
    reg(0x98, cmd);
    e.p.sleep(100);
  }
  assert.deepEqual([...e.p.read(e.buf + 0x1000, 4)], [1, 2, 3, 4]);
  assert.equal(k.bugs.length, 0, k.bugs.map((b) => b.message).join("\n"));
  assert.deepEqual(IommuCore.of(k).faultsOf(BDF), []);
});

test("a DMA while an attach's new HWPT is attached and filled but not finalized is the user's (clean)", () => {
  // found by bounded DPOR over random programs (seed 6): the auto-domain attach attaches the
  // new domain and fills it from the IOAS before iommufd_object_finalize(); the check knew
  // only finalized HWPTs, so the DMA in between was reported as reaching an ownerless domain
  const prog: ConcurrentProgram = {
    machine: "two",
    setup: [{ op: "setup", p: 0, kind: "devices", alt: false }],
    threads: [
      {
        p: 0,
        ops: [
          {
            op: "ioctl",
            p: 0,
            fd: { t: "device", i: 0 },
            name: "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
            fields: { argsz: { sizeof: 0 }, pt_id: { id: "ioas", i: 0 } },
          },
        ],
      },
      { p: 0, ops: [{ op: "dma", iova: 0, len: 64 }] },
    ],
    admin: [],
  };
  const o = runSchedule(() => programWorld(prog, { design: "upstream" }), [0, 0, 0, 0, 0, 0, 0, 1, 1]);
  assert.deepEqual(o.violations, []);
  // thread 1's DMA ran while thread 0 stood at the finalize, and went through
  assert.equal(o.steps[6]!.to, "iommufd_object_finalize");
  assert.deepEqual(o.schedule.slice(6, 9), [0, 1, 1]);
  assert.deepEqual(o.results, [[0], [0]]);
});
