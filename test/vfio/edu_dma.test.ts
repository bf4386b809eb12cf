// The oracle's edu-dma scenario end to end: the edu DMA engine copies process memory into
// its buffer and back through the IOMMU mappings type1 made, driven through the vfio-pci
// device fd; then the same DMA outside any mapping faults, and the completion interrupt
// reaches the MSI eventfd.
import { it } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";
import { eventfdCtx } from "../../src/kernel/eventfd.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import { BDF, call, deviceFd, env, legacy, map, unmap } from "./helpers.js";

function pw(e: ReturnType<typeof env>, d: number, off: number, len: number, v: bigint): number {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  e.p.write(e.scr + 0x2000, b);
  return e.p.pwrite(d, e.scr + 0x2000, len, off);
}

it("edu copies 8 bytes RAM -> device -> RAM through the IOMMU (oracle scenario edu-dma)", () => {
  const e = env();
  const { c, g } = legacy(e);
  const d = deviceFd(e, g);
  assert.equal(pw(e, d, 0x70000000004, 2, 0x6n), 2);
  e.p.write(e.buf, new Uint8Array([0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55]));
  assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n), 0);
  assert.equal(pw(e, d, 0x80, 8, 0x100000n), 8);
  assert.equal(pw(e, d, 0x88, 8, 0x40000n), 8);
  assert.equal(pw(e, d, 0x90, 8, 8n), 8);
  assert.equal(pw(e, d, 0x98, 8, 1n), 8);
  e.p.sleep(300);
  assert.equal(pw(e, d, 0x80, 8, 0x40000n), 8);
  assert.equal(pw(e, d, 0x88, 8, 0x100800n), 8);
  assert.equal(pw(e, d, 0x98, 8, 3n), 8);
  e.p.sleep(300);
  assert.deepEqual([...e.p.read(e.buf + 0x800, 8)], [0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55]);

  // the same transfer after the unmap: an IOMMU fault, and no byte moves
  e.p.write(e.buf + 0x800, new Uint8Array(8));
  assert.equal(unmap(e, c, 0x100000n, 0x1000n).size, 0x1000n);
  const faults = IommuCore.of(e.twin.kernel).faults;
  const before = faults.length;
  // completion interrupt on MSI to an eventfd
  const efd = e.p.eventfd(0o4000);
  const ex = new Uint8Array(4);
  new DataView(ex.buffer).setInt32(0, efd, true);
  const T = V.VFIO_IRQ_SET_ACTION_TRIGGER | V.VFIO_IRQ_SET_DATA_EVENTFD;
  assert.equal(
    call(
      e,
      d,
      V.VFIO_DEVICE_SET_IRQS,
      V.vfio_irq_set,
      { argsz: 24, flags: T, index: 1, start: 0, count: 1 },
      { extra: ex },
    ).rc,
    0,
  );
  assert.equal(pw(e, d, 0x70000000042, 2, 0x81n), 2, "MSI enable in the capability");
  assert.equal(pw(e, d, 0x98, 8, 3n | 4n), 8);
  e.p.sleep(300);
  assert.deepEqual([...e.p.read(e.buf + 0x800, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.ok(faults.length > before);
  assert.equal(faults[before]!.bdf, BDF);
  assert.equal(faults[before]!.iova, 0x100800n);
  assert.equal(faults[before]!.write, true);
  const ctx = eventfdCtx(e.p.proc.files.lookup(efd)!)!;
  assert.ok(ctx.count >= 1n, "the DMA-done interrupt arrived through vfio-pci");
  e.twin.kill(e.p);
});
