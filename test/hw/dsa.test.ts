// The DSA-shaped device (src/hw/dsa.ts) driven the way a process drives it: bound to its
// iommufd, a PASID attached, ENQCMD to the shared WQ portal. Delivery and retry, the
// completion record, PASID-tagged DMA through the domain at the PASID, and faults.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  DSA_COMP_BAD_OPCODE,
  DSA_COMP_CRA_XLAT,
  DSA_COMP_PAGE_FAULT_NOBOF,
  DSA_COMP_STATUS_WRITE,
  DSA_COMP_SUCCESS,
  DSA_DESC_SIZE,
  DSA_OP_DELAY_NS,
  DSA_REG_GENSTS,
  DSA_REG_SWERR,
  DSA_REG_VERSION,
  DSA_REG_WQCFG,
} from "../../src/hw/dsa.js";
import { dsaDescriptor } from "../../src/vmm/dsa_pasid.js";
import { dsaHw, endWorld, faults, world } from "../pasid_helpers.js";

const rd32 = (b: Uint8Array, off = 0) => new DataView(b.buffer, b.byteOffset).getUint32(off, true);
const rd64 = (b: Uint8Array, off = 0) => new DataView(b.buffer, b.byteOffset).getBigUint64(off, true);

describe("DSA shared work queue and ENQCMD", () => {
  it("memmove and fill through the PASID's domain, with completion records", () => {
    const w = world();
    assert.equal(w.p.setPasid(5), 0);
    assert.equal(w.p.pasid, 5);
    w.p.write(w.buf, new Uint8Array([9, 8, 7, 6, 5]));
    assert.equal(w.u.submit(dsaDescriptor("memmove", { src: 0n, dst: 0x1000n, size: 5, comp: 0x3000n })), "accepted");
    assert.equal(
      w.u.submit(dsaDescriptor("fill", { pattern: 0x1122334455667788n, dst: 0x2000n, size: 12, comp: 0x3020n })),
      "accepted",
    );
    // nothing happens before the device gets to it
    assert.deepEqual([...w.p.read(w.buf + 0x1000, 5)], [0, 0, 0, 0, 0]);
    w.twin.advance(2 * DSA_OP_DELAY_NS);
    assert.deepEqual([...w.p.read(w.buf + 0x1000, 5)], [9, 8, 7, 6, 5]);
    assert.deepEqual(
      [...w.p.read(w.buf + 0x2000, 12)],
      [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55],
    );
    const c1 = w.p.read(w.buf + 0x3000, 16);
    const c2 = w.p.read(w.buf + 0x3020, 16);
    assert.equal(c1[0], DSA_COMP_SUCCESS);
    assert.equal(rd32(c1, 4), 5, "bytes_completed");
    assert.equal(c2[0], DSA_COMP_SUCCESS);
    assert.equal(rd32(c2, 4), 12);
    assert.deepEqual(faults(w.twin), []);
    endWorld(w.twin, w.baseline);
  });

  it("a full shared WQ answers retry until the device drains it; a disabled WQ always retries", () => {
    const w = world();
    w.p.setPasid(5);
    const d = dsaHw(w.twin);
    const desc = dsaDescriptor("fill", { pattern: 1n, dst: 0x4000n, size: 8 });
    const got: string[] = [];
    for (let i = 0; i < d.wqSize + 2; i++) got.push(w.u.submit(desc));
    assert.deepEqual(got, [...Array(d.wqSize).fill("accepted"), "retry", "retry"]);
    assert.equal(d.occupancy, d.wqSize);
    // WQCFG's occupancy field and state (enabled) as software reads them through BAR0
    const occ = rd32(w.p.read(w.u.bar0 + DSA_REG_WQCFG + 24, 4));
    assert.equal(occ & 0xffff, d.wqSize);
    assert.equal(occ >>> 30, 1);
    w.twin.advance(DSA_OP_DELAY_NS);
    assert.equal(w.u.submit(desc), "accepted", "one slot freed");
    w.twin.advance(100 * DSA_OP_DELAY_NS);
    assert.equal(d.occupancy, 0);
    assert.equal(d.completed, d.wqSize + 1);
    // disable the WQ (IDXD_CMD_DISABLE_WQ = 7): every ENQCMD is retried
    const cmd = new Uint8Array(4);
    new DataView(cmd.buffer).setUint32(0, 7 << 20, true);
    w.p.write(w.u.bar0 + 0xa0, cmd);
    assert.equal(w.u.submit(desc), "retry");
    endWorld(w.twin, w.baseline);
  });

  it("ENQCMD without a valid IA32_PASID is #GP; a misaligned portal #GP; unmapped memory faults", () => {
    const w = world();
    const desc = dsaDescriptor("fill", { pattern: 1n, dst: 0n, size: 8 });
    assert.equal(w.u.submit(desc), "gp", "no PASID chosen yet");
    assert.equal(w.p.setPasid(6), -1, "EPERM: not authorized");
    assert.equal(w.p.setPasid(5), 0);
    w.p.write(w.u.scr + 4096, desc);
    assert.equal(w.p.enqcmd(w.u.portal + 8, w.u.scr + 4096), "gp");
    assert.equal(w.p.enqcmd(w.u.portal, 0x10), "fault");
    // ordinary memory takes no deferrable write
    assert.equal(w.p.enqcmd(w.buf, w.u.scr + 4096), "retry");
    assert.equal(w.p.setPasid(null), 0);
    assert.equal(w.p.pasid, null);
    endWorld(w.twin, w.baseline);
  });

  it("the descriptor's PASID field is the submitter's, whatever the descriptor said", () => {
    const w = world();
    w.p.setPasid(5);
    const desc = dsaDescriptor("fill", { pattern: 0xabn, dst: 0x100n, size: 1, comp: 0x200n });
    new DataView(desc.buffer).setUint32(0, 0x80000000 | 77, true); // priv + PASID 77
    assert.equal(w.u.submit(desc), "accepted");
    const d = dsaHw(w.twin);
    assert.equal(rd32(d.queue[0]!.desc), 5, "PASID 5, privilege bit clear");
    w.twin.advance(DSA_OP_DELAY_NS);
    assert.equal(w.p.read(w.buf + 0x100, 1)[0], 0xab);
    endWorld(w.twin, w.baseline);
  });

  it("page faults end a descriptor with PAGE_FAULT_NOBOF and the address; bad opcodes are reported", () => {
    const w = world();
    w.p.setPasid(5);
    const unmapped = 0x100000n; // outside the 64 KiB mapped at IOVA 0
    w.u.submit(dsaDescriptor("memmove", { src: unmapped, dst: 0n, size: 16, comp: 0x3000n }));
    w.u.submit(dsaDescriptor("memmove", { src: 0n, dst: unmapped, size: 16, comp: 0x3020n }));
    const bad = dsaDescriptor("fill", { pattern: 0n, dst: 0n, size: 1, comp: 0x3040n });
    bad[7] = 0x7f;
    w.u.submit(bad);
    w.twin.advance(3 * DSA_OP_DELAY_NS);
    const r1 = w.p.read(w.buf + 0x3000, 16);
    const r2 = w.p.read(w.buf + 0x3020, 16);
    const r3 = w.p.read(w.buf + 0x3040, 16);
    assert.equal(r1[0], DSA_COMP_PAGE_FAULT_NOBOF);
    assert.equal(rd64(r1, 8), unmapped);
    assert.equal(r2[0], DSA_COMP_PAGE_FAULT_NOBOF | DSA_COMP_STATUS_WRITE);
    assert.equal(rd64(r2, 8), unmapped);
    assert.equal(r3[0], DSA_COMP_BAD_OPCODE);
    const f = faults(w.twin);
    assert.deepEqual(
      f.map((x) => [x.pasid, x.iova, x.write, x.reason]),
      [
        [5, unmapped, false, "not-present"],
        [5, unmapped, true, "not-present"],
      ],
    );
    endWorld(w.twin, w.baseline);
  });

  it("a PASID with no domain faults every access into the IOMMU log; the lost completion goes to SWERR", () => {
    const w = world();
    const d = dsaHw(w.twin);
    // a descriptor arriving with PASID 9, which nothing attached (the device level: no
    // process can send it, its ENQCMD carries only authorized PASIDs)
    const desc = dsaDescriptor("memmove", { src: 0n, dst: 0x1000n, size: 8, comp: 0x2000n });
    assert.equal(d.mmioEnqueue(2, 0, desc, 9), true);
    w.twin.advance(DSA_OP_DELAY_NS);
    assert.deepEqual(
      faults(w.twin).map((x) => [x.pasid, x.iova, x.write, x.reason, x.domain]),
      [
        [9, 0n, false, "no-pasid-domain", 0],
        [9, 0x2000n, true, "no-pasid-domain", 0],
      ],
    );
    const sw = w.p.read(w.u.bar0 + DSA_REG_SWERR, 24);
    const q0 = rd64(sw);
    assert.equal(q0 & 1n, 1n, "valid");
    assert.equal(Number((q0 >> 8n) & 0xffn), DSA_COMP_CRA_XLAT);
    assert.equal(Number((q0 >> 40n) & 0xfffffn), 9, "the PASID");
    assert.equal(rd64(sw, 16), 0x2000n, "the completion record's address");
    // RW1C clears it
    const one = new Uint8Array(8);
    one[0] = 1;
    w.p.write(w.u.bar0 + DSA_REG_SWERR, one.subarray(0, 4));
    assert.equal(rd64(w.p.read(w.u.bar0 + DSA_REG_SWERR, 8)), 0n);
    endWorld(w.twin, w.baseline);
  });

  it("registers: version, status, and the descriptor size", () => {
    const w = world();
    assert.equal(rd32(w.p.read(w.u.bar0 + DSA_REG_VERSION, 4)), 0x100);
    assert.equal(rd32(w.p.read(w.u.bar0 + DSA_REG_GENSTS, 4)), 1);
    assert.equal(DSA_DESC_SIZE, 64);
    endWorld(w.twin, w.baseline);
  });
});
