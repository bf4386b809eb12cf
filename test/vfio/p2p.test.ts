// MAP_DMA of a VFIO device's own BAR mapping (what QEMU's memory listener does for
// peer-to-peer): pinning fails on VM_PFNMAP memory and vfio_iommu_type1's vaddr_get_pfns()
// maps the BAR's pfns instead (follow_fault_pfn()), uncharged; a DMA through those IOVAs is
// an access to the BAR. Then the whole twin is checked.
import { it } from "node:test";
import assert from "node:assert/strict";
import { checkInvariants, formatViolations } from "../../src/check/invariants.js";
import { deviceFd, env, legacy, map, unmap } from "./helpers.js";

function pw(e: ReturnType<typeof env>, d: number, off: number, len: number, v: bigint): number {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  e.p.write(e.scr + 0x2000, b);
  return e.p.pwrite(d, e.scr + 0x2000, len, off);
}

it("a BAR mapping maps into the IOMMU uncharged, and a DMA through it reads the BAR", () => {
  const e = env();
  const { c, g } = legacy(e);
  const d = deviceFd(e, g);
  assert.equal(pw(e, d, 0x70000000004, 2, 0x6n), 2);
  const bar = e.p.mmap(0x1000, { fd: d, offset: 0 });
  assert.ok(bar > 0);
  const lockedBefore = e.p.procStatus().vmLckKb;
  assert.equal(map(e, c, bar, 0x200000n, 0x1000n), 0, "MAP_DMA of the BAR mapping");
  assert.equal(e.p.procStatus().vmLckKb, lockedBefore, "device pfns are not charged to locked_vm");
  // a write-only-permission check: PROT_READ mapping of the BAR refuses a write map
  const ro = e.p.mmap(0x1000, { fd: d, offset: 0, prot: 1 });
  assert.equal(map(e, c, ro, 0x300000n, 0x1000n, 3), -14, "a read-only BAR mapping cannot be mapped for write");
  assert.equal(map(e, c, ro, 0x300000n, 0x1000n, 1), 0, "but can for read");
  // the device DMAs 4 bytes from IOVA 0x200000 (its own BAR: the identification register)
  assert.equal(pw(e, d, 0x80, 8, 0x200000n), 8);
  assert.equal(pw(e, d, 0x88, 8, 0x40000n), 8);
  assert.equal(pw(e, d, 0x90, 8, 4n), 8);
  assert.equal(pw(e, d, 0x98, 8, 1n), 8);
  e.p.sleep(300);
  // and back into RAM to look at it
  assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n), 0);
  assert.equal(pw(e, d, 0x80, 8, 0x40000n), 8);
  assert.equal(pw(e, d, 0x88, 8, 0x100000n), 8);
  assert.equal(pw(e, d, 0x98, 8, 3n), 8);
  e.p.sleep(300);
  assert.equal(new DataView(e.p.read(e.buf, 4).buffer).getUint32(0, true), 0x010000ed);
  assert.equal(unmap(e, c, 0x200000n, 0x1000n).size, 0x1000n);
  assert.equal(e.p.procStatus().vmLckKb, lockedBefore + 4, "only the RAM page is charged");
  const v = checkInvariants(e.twin.kernel);
  assert.equal(v.length, 0, formatViolations(v));
  e.twin.kill(e.p);
  assert.equal(checkInvariants(e.twin.kernel).length, 0);
});
