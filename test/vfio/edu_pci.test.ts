// vfio-pci in front of the edu device, through the raw syscall API: config space as
// vfio_pci_config.c virtualizes it, INTx masked with DisINTx (automask, UNMASK while the
// line is high, MASK), MSI programmed on SET_IRQS and needing bus mastering, and DMA that
// the IOMMU refuses. Every expected value is the oracle's (test/scenarios-edu/*.golden).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";
import { EFAULT } from "../../src/uapi/errno.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import { BDF, call, deviceFd, env, legacy, map, type Env } from "./helpers.js";

const CFG = 0x70000000000;

function open() {
  const e = env();
  const { c, g } = legacy(e);
  const d = deviceFd(e, g);
  assert.ok(d >= 0);
  return { e, c, g, d };
}

function pr(e: Env, d: number, off: number, len: number): number | bigint {
  const rc = e.p.pread(d, e.scr + 0x3000, len, off);
  if (rc < 0) return rc;
  const b = e.p.read(e.scr + 0x3000, 8);
  const v = new DataView(b.buffer).getBigUint64(0, true) & ((1n << BigInt(8 * len)) - 1n);
  return len === 8 ? v : Number(v);
}

function pw(e: Env, d: number, off: number, len: number, v: number | bigint): number {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  e.p.write(e.scr + 0x3000, b);
  return e.p.pwrite(d, e.scr + 0x3000, len, off);
}

function irqs(e: Env, d: number, index: number, count: number, flags: number, fd?: number): number {
  const extra = new Uint8Array(fd === undefined ? 0 : 4);
  if (fd !== undefined) new DataView(extra.buffer).setInt32(0, fd, true);
  return call(
    e,
    d,
    V.VFIO_DEVICE_SET_IRQS,
    V.vfio_irq_set,
    { argsz: V.vfio_irq_set.size + extra.length, flags, index, start: 0, count },
    { extra },
  ).rc;
}

/** read(2) of an eventfd: the count, or 0 for EAGAIN */
function efd(e: Env, fd: number): number {
  const rc = e.p.readFd(fd, e.scr + 0x3100, 8);
  return rc < 0 ? 0 : Number(new DataView(e.p.read(e.scr + 0x3100, 8).buffer).getBigUint64(0, true));
}

const EFD = V.VFIO_IRQ_SET_DATA_EVENTFD | V.VFIO_IRQ_SET_ACTION_TRIGGER;
const NONE = V.VFIO_IRQ_SET_DATA_NONE;

describe("config space through vfio-pci", () => {
  it("command register: DisINTx is virtual, the rest reaches the device as its wmask allows", () => {
    const { e, d } = open();
    assert.equal(pr(e, d, CFG + 4, 2), 0x103);
    assert.equal(pw(e, d, CFG + 4, 2, 0xffff), 2);
    assert.equal(pr(e, d, CFG + 4, 2), 0x507);
    assert.equal(pw(e, d, CFG + 4, 2, 0), 2);
    assert.equal(pr(e, d, 0, 4), -5, "EIO: memory decode off");
    assert.equal(pw(e, d, CFG + 6, 2, 0xffff), 2);
    assert.equal(pr(e, d, CFG + 6, 2), 0x10, "status: no writable bits");
  });

  it("BAR sizing on the virtual BAR; absent BARs and ROM read 0", () => {
    const { e, d } = open();
    assert.equal(pr(e, d, CFG + 0x10, 4), 0xfea00000);
    pw(e, d, CFG + 0x10, 4, 0xffffffff);
    assert.equal(pr(e, d, CFG + 0x10, 4), 0xfff00000);
    assert.equal(pr(e, d, 0, 4), 0x010000ed, "the device still answers at its address");
    pw(e, d, CFG + 0x10, 4, 0x12345678);
    assert.equal(pr(e, d, CFG + 0x10, 4), 0x12300000);
    pw(e, d, CFG + 0x14, 4, 0xffffffff);
    assert.equal(pr(e, d, CFG + 0x14, 4), 0);
    pw(e, d, CFG + 0x30, 4, 0xffffffff);
    assert.equal(pr(e, d, CFG + 0x30, 4), 0);
  });

  it("read-only fields, the virtual interrupt line, raw space past the capabilities", () => {
    const { e, d } = open();
    pw(e, d, CFG, 4, 0xffffffff);
    assert.equal(pr(e, d, CFG, 4), 0x11e81234);
    pw(e, d, CFG + 0x0c, 4, 0xffffffff);
    assert.equal(pr(e, d, CFG + 0x0c, 4), 0xff, "cache line size is writable");
    pw(e, d, CFG + 0x3c, 1, 0x55);
    pw(e, d, CFG + 0x3d, 1, 4);
    assert.equal(pr(e, d, CFG + 0x3c, 2), 0x155);
    pw(e, d, CFG + 0x50, 4, 0xffffffff);
    assert.equal(pr(e, d, CFG + 0x50, 4), 0xffffffff);
    assert.equal(pr(e, d, CFG + 3, 4), 0x10010311, "unaligned: chunked");
  });

  it("the MSI capability shows what the user wrote, not what SET_IRQS programs", () => {
    const { e, d } = open();
    assert.equal(pr(e, d, CFG + 0x40, 4), 0x800005);
    pw(e, d, CFG + 0x42, 2, 0xffff);
    assert.equal(pr(e, d, CFG + 0x40, 4), 0x8e0005, "enable and queue size fixed up");
    pw(e, d, CFG + 0x42, 2, 0);
    const m = e.p.eventfd(0o4000);
    assert.equal(irqs(e, d, 1, 1, EFD, m), 0);
    assert.equal(pr(e, d, CFG + 0x40, 4), 0x5);
    assert.equal(pr(e, d, CFG + 0x44, 4), 0);
    const hw = IommuCore.of(e.twin.kernel).device(BDF)!.pci!;
    assert.equal(hw.cfg.getUint16(0x42, true) & 1, 1, "the device's MSI is enabled");
    assert.equal(irqs(e, d, 1, 0, NONE | V.VFIO_IRQ_SET_ACTION_TRIGGER), 0);
    assert.equal(hw.cfg.getUint16(0x42, true) & 1, 0);
  });

  it("accesses past the end of config space: EFAULT", () => {
    const { e, d } = open();
    assert.equal(pr(e, d, CFG + 0xff, 1), 0);
    assert.equal(pr(e, d, CFG + 0xfd, 4), -EFAULT);
    assert.equal(pr(e, d, CFG + 0x100, 4), -EFAULT);
    assert.equal(pw(e, d, CFG + 0xfd, 4, 0), -EFAULT);
  });
});

describe("interrupts the edu device raises", () => {
  it("MSI needs bus mastering; each raise is one MSI", () => {
    const { e, d } = open();
    const m = e.p.eventfd(0o4000);
    pw(e, d, CFG + 4, 2, 0x2);
    assert.equal(irqs(e, d, 1, 1, EFD, m), 0);
    pw(e, d, 0x60, 4, 1);
    assert.equal(efd(e, m), 0, "the MSI write went nowhere");
    pw(e, d, 0x64, 4, 1);
    pw(e, d, CFG + 4, 2, 0x6);
    pw(e, d, 0x60, 4, 1);
    pw(e, d, 0x60, 4, 2);
    assert.equal(efd(e, m), 2);
  });

  it("INTx: automasked with DisINTx, UNMASK with the line high fires again, ack then unmask", () => {
    const { e, d } = open();
    const x = e.p.eventfd(0o4000);
    pw(e, d, CFG + 4, 2, 0x6);
    assert.equal(irqs(e, d, 0, 1, EFD, x), 0);
    pw(e, d, 0x60, 4, 1);
    assert.equal(efd(e, x), 1);
    assert.equal(pr(e, d, CFG + 4, 2), 0x6, "DisINTx as the user sees it");
    assert.equal(pr(e, d, CFG + 6, 2), 0x18, "interrupt status");
    const hw = IommuCore.of(e.twin.kernel).device(BDF)!.pci!;
    assert.equal(hw.cfg.getUint16(4, true) & 0x400, 0x400, "masked in the device");
    pw(e, d, 0x60, 4, 2);
    assert.equal(efd(e, x), 0, "masked");
    const UNMASK = NONE | V.VFIO_IRQ_SET_ACTION_UNMASK;
    assert.equal(irqs(e, d, 0, 1, UNMASK), 0);
    assert.equal(efd(e, x), 1, "still high: signalled again, still masked");
    pw(e, d, 0x64, 4, 3);
    assert.equal(pr(e, d, CFG + 6, 2), 0x10);
    assert.equal(irqs(e, d, 0, 1, UNMASK), 0);
    assert.equal(efd(e, x), 0);
    assert.equal(hw.cfg.getUint16(4, true) & 0x400, 0, "unmasked in the device");
    assert.equal(irqs(e, d, 0, 1, NONE | V.VFIO_IRQ_SET_ACTION_MASK), 0);
    pw(e, d, 0x60, 4, 1);
    assert.equal(efd(e, x), 0);
    assert.equal(irqs(e, d, 0, 1, UNMASK), 0);
    assert.equal(efd(e, x), 1, "pending while masked: fires on unmask");
  });

  it("the user's DisINTx masks INTx through vfio (virq_disabled)", () => {
    const { e, d } = open();
    const x = e.p.eventfd(0o4000);
    pw(e, d, CFG + 4, 2, 0x406);
    assert.equal(irqs(e, d, 0, 1, EFD, x), 0);
    pw(e, d, 0x60, 4, 1);
    assert.equal(efd(e, x), 0);
    pw(e, d, CFG + 4, 2, 0x6);
    assert.equal(efd(e, x), 1, "clearing DisINTx unmasks; the pending line is signalled");
  });
});

describe("DMA the IOMMU refuses", () => {
  it("a read-only mapping as the destination: no byte moves, a permission fault", () => {
    const { e, d, c } = open();
    pw(e, d, CFG + 4, 2, 0x6);
    const ro = e.p.mmap(4096, { prot: 1 });
    assert.equal(map(e, c, ro, 0x200000n, 0x1000n, V.VFIO_DMA_MAP_FLAG_READ), 0);
    pw(e, d, 0x80, 8, 0x40000);
    pw(e, d, 0x88, 8, 0x200000);
    pw(e, d, 0x90, 8, 8);
    pw(e, d, 0x98, 8, 3);
    e.p.sleep(100);
    assert.deepEqual([...e.p.read(ro, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
    const f = IommuCore.of(e.twin.kernel).faultsOf(BDF);
    assert.deepEqual(
      f.map((x) => [x.iova, x.write, x.reason]),
      [[0x200000n, true, "permission"]],
    );
  });
});

describe("DMA page by page, and at close", () => {
  it("a transfer crossing the end of a mapping moves the mapped page and faults on the next", () => {
    const { e, d, c } = open();
    pw(e, d, CFG + 4, 2, 0x6);
    e.p.write(e.buf + 0xff8, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n), 0);
    pw(e, d, 0x80, 8, 0x100ff8);
    pw(e, d, 0x88, 8, 0x40000);
    pw(e, d, 0x90, 8, 16);
    pw(e, d, 0x98, 8, 1);
    e.p.sleep(100);
    pw(e, d, 0x80, 8, 0x40000);
    pw(e, d, 0x88, 8, 0x100800);
    pw(e, d, 0x98, 8, 3);
    e.p.sleep(100);
    assert.deepEqual([...e.p.read(e.buf + 0x800, 16)], [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    const f = IommuCore.of(e.twin.kernel).faultsOf(BDF);
    assert.deepEqual(
      f.map((x) => [x.iova, x.write, x.reason]),
      [[0x101000n, false, "not-present"]],
    );
  });

  it("closing the device clears bus mastering first: a running DMA moves nothing; the next open finds 0x103", () => {
    const { e, d, c, g } = open();
    pw(e, d, CFG + 4, 2, 0x6);
    e.p.write(e.buf, new Uint8Array([0x78, 0x56, 0x34, 0x12]));
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n), 0);
    pw(e, d, 0x80, 8, 0x100000);
    pw(e, d, 0x88, 8, 0x40000);
    pw(e, d, 0x90, 8, 4);
    pw(e, d, 0x98, 8, 1);
    e.p.sleep(100);
    pw(e, d, 0x80, 8, 0x40000);
    pw(e, d, 0x88, 8, 0x100800);
    pw(e, d, 0x98, 8, 3);
    assert.equal(e.p.close(d), 0);
    e.p.sleep(300);
    assert.deepEqual([...e.p.read(e.buf + 0x800, 4)], [0, 0, 0, 0]);
    const d2 = deviceFd(e, g);
    assert.ok(d2 >= 0);
    assert.equal(pr(e, d2, CFG + 4, 2), 0x103);
  });
});
