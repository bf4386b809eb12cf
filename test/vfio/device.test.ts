// The vfio-pci device file: info ioctls, SET_IRQS, RESET, config/BAR access, mmap, features,
// and open/close counting. Expected values come from the oracle (edu on 6.12).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";
import { EBADF, EFAULT, EINVAL, EIO, ENODEV, ENOTTY } from "../../src/uapi/errno.js";
import { eventfdCtx } from "../../src/kernel/eventfd.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import { VfioCore } from "../../src/vfio/vfio_main.js";
import type { VfioPciCoreDevice } from "../../src/vfio/pci/vfio_pci_core.js";
import { checkVfioInvariants, checkVfioQuiescent } from "../../src/check/vfio_invariants.js";
import { BDF, call, deviceFd, env, legacy } from "./helpers.js";

const CFG = 0x70000000000;

function open() {
  const e = env();
  const { c, g } = legacy(e);
  const d = deviceFd(e, g);
  assert.ok(d >= 0);
  return { e, c, g, d };
}

function pread(e: ReturnType<typeof env>, d: number, off: number, len: number): { rc: number; val: bigint } {
  const rc = e.p.pread(d, e.scr + 0x1000, len, off);
  const b = e.p.read(e.scr + 0x1000, 8);
  let v = 0n;
  for (let i = len - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  return { rc, val: v };
}

function pwrite(e: ReturnType<typeof env>, d: number, off: number, len: number, val: bigint): number {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, val, true);
  e.p.write(e.scr + 0x1000, b);
  return e.p.pwrite(d, e.scr + 0x1000, len, off);
}

function irqSet(
  e: ReturnType<typeof env>,
  d: number,
  index: number,
  start: number,
  count: number,
  flags: number,
  data: number[] = [],
) {
  const extra = new Uint8Array(4 * data.length);
  data.forEach((v, i) => new DataView(extra.buffer).setInt32(4 * i, v, true));
  const bool = flags & V.VFIO_IRQ_SET_DATA_BOOL;
  return call(
    e,
    d,
    V.VFIO_DEVICE_SET_IRQS,
    V.vfio_irq_set,
    { argsz: 20 + (bool ? data.length : extra.length), flags, index, start, count },
    { extra: bool ? new Uint8Array(data) : extra },
  ).rc;
}

describe("device info ioctls", () => {
  it("GET_INFO: PCI, 9 regions, 5 irqs; argsz 8 EINVAL; argsz 16 writes 16 bytes", () => {
    const { e, d } = open();
    const r = call(e, d, V.VFIO_DEVICE_GET_INFO, V.vfio_device_info, { argsz: 24 });
    assert.deepEqual([r.rc, r.out.flags, r.out.num_regions, r.out.num_irqs], [0, 2, 9, 5]);
    assert.equal(call(e, d, V.VFIO_DEVICE_GET_INFO, V.vfio_device_info, { argsz: 8 }).rc, -EINVAL);
    const r16 = call(e, d, V.VFIO_DEVICE_GET_INFO, V.vfio_device_info, { argsz: 16, cap_offset: 0x55 });
    assert.deepEqual([r16.rc, r16.out.argsz, r16.out.cap_offset], [0, 16, 0x55]);
  });

  it("GET_REGION_INFO for every index", () => {
    const { e, d } = open();
    const ri = (index: number, argsz = 32) =>
      call(e, d, V.VFIO_DEVICE_GET_REGION_INFO, V.vfio_region_info, { argsz, index });
    const bar0 = ri(0).out;
    assert.deepEqual([bar0.flags, bar0.size, bar0.offset], [7, 0x100000n, 0n]);
    for (const i of [1, 2, 3, 4, 5, 6]) {
      const r = ri(i);
      assert.deepEqual([r.rc, r.out.flags, r.out.size, r.out.offset], [0, 0, 0n, BigInt(i) << 40n]);
    }
    const cfg = ri(7).out;
    assert.deepEqual([cfg.flags, cfg.size, cfg.offset], [3, 0x100n, 0x70000000000n]);
    assert.equal(ri(8).rc, -EINVAL);
    assert.equal(ri(9).rc, -EINVAL);
    assert.equal(ri(0, 16).rc, -EINVAL);
    assert.equal(e.p.ioctl(d, V.VFIO_DEVICE_GET_REGION_INFO, 0x10), -EFAULT);
  });

  it("GET_REGION_INFO echoes index and cap_offset as passed (no chain), overwrites flags (oracle)", () => {
    // the 6.12 oracle on edu: argsz=32 flags=0x55 index=0 cap_offset=0xaaaa -> flags 7,
    // cap_offset 0xaaaa; argsz=40 index=7 cap_offset=0x1234 -> argsz 40, cap_offset 0x1234
    const { e, d } = open();
    const ri = V.vfio_region_info;
    const r = call(e, d, V.VFIO_DEVICE_GET_REGION_INFO, ri, { argsz: 32, flags: 0x55, index: 0, cap_offset: 0xaaaa });
    assert.deepEqual(
      [r.rc, r.out.argsz, r.out.flags, r.out.index, r.out.cap_offset, r.out.size, r.out.offset],
      [0, 32, 7, 0, 0xaaaa, 0x100000n, 0n],
    );
    const c = call(e, d, V.VFIO_DEVICE_GET_REGION_INFO, ri, { argsz: 40, index: 7, cap_offset: 0x1234 });
    assert.deepEqual([c.rc, c.out.argsz, c.out.flags, c.out.cap_offset], [0, 40, 3, 0x1234]);
    assert.deepEqual([...c.bytes.subarray(32, 40)], [0, 0, 0, 0, 0, 0, 0, 0], "nothing past minsz");
  });

  it("GET_REGION_INFO across a page boundary: the same answer; a hole EFAULT; a read-only tail EFAULT", () => {
    const { e, d } = open();
    const ri = V.vfio_region_info;
    const at = e.scr + 0x1000 - 12; // crosses into the next page of the scratch mapping
    const r = call(e, d, V.VFIO_DEVICE_GET_REGION_INFO, ri, { argsz: 32, index: 7, cap_offset: 5 }, { at });
    assert.deepEqual(
      [r.rc, r.out.flags, r.out.cap_offset, r.out.size, r.out.offset],
      [0, 3, 5, 0x100n, 0x70000000000n],
    );
    const two = e.p.mmap(0x2000);
    assert.equal(e.p.munmap(two + 0x1000, 0x1000), 0);
    const head = new Uint8Array(16);
    new DataView(head.buffer).setUint32(0, 32, true);
    e.p.write(two + 0x1000 - 16, head);
    assert.equal(e.p.ioctl(d, V.VFIO_DEVICE_GET_REGION_INFO, two + 0x1000 - 16), -EFAULT, "tail in a hole");
    // copy_from_user succeeds (the tail is readable), copy_to_user faults
    assert.equal(e.p.mmap(0x1000, { addr: two + 0x1000, prot: 1 }), two + 0x1000);
    assert.equal(e.p.ioctl(d, V.VFIO_DEVICE_GET_REGION_INFO, two + 0x1000 - 16), -EFAULT, "read-only tail");
  });

  it("GET_IRQ_INFO: INTx maskable+automasked, MSI 1, MSI-X 0, ERR EINVAL, REQ 1, 5 EINVAL", () => {
    const { e, d } = open();
    const ii = (index: number, argsz = 16) => call(e, d, V.VFIO_DEVICE_GET_IRQ_INFO, V.vfio_irq_info, { argsz, index });
    assert.deepEqual([ii(0).out.flags, ii(0).out.count], [7, 1]);
    assert.deepEqual([ii(1).out.flags, ii(1).out.count], [9, 1]);
    assert.deepEqual([ii(2).out.flags, ii(2).out.count], [9, 0]);
    assert.equal(ii(3).rc, -EINVAL);
    assert.deepEqual([ii(4).out.flags, ii(4).out.count], [9, 1]);
    assert.equal(ii(5).rc, -EINVAL);
    assert.equal(ii(0, 8).rc, -EINVAL);
  });

  it("RESET EINVAL on edu; hot reset info ENODEV; unknown ioctl ENOTTY; BIND on a group fd EINVAL", () => {
    const { e, d } = open();
    assert.equal(e.p.ioctl(d, V.VFIO_DEVICE_RESET), -EINVAL);
    const b = new Uint8Array(16);
    new DataView(b.buffer).setUint32(0, 16, true);
    e.p.write(e.scr, b);
    assert.equal(e.p.ioctl(d, V.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, e.scr), -ENODEV);
    new DataView(b.buffer).setUint32(0, 8, true);
    e.p.write(e.scr, b);
    assert.equal(e.p.ioctl(d, V.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, e.scr), -EINVAL);
    assert.equal(e.p.ioctl(d, 0x3b99, e.scr), -ENOTTY);
    assert.equal(e.p.ioctl(d, V.VFIO_DEVICE_BIND_IOMMUFD, e.scr), -EINVAL);
  });

  it("DEVICE_FEATURE: as the oracle answered for edu", () => {
    const { e, d } = open();
    const feat = (flags: number, argsz = 16) => {
      const b = new Uint8Array(16);
      new DataView(b.buffer).setUint32(0, argsz, true);
      new DataView(b.buffer).setUint32(4, flags, true);
      e.p.write(e.scr, b);
      return e.p.ioctl(d, V.VFIO_DEVICE_FEATURE, e.scr);
    };
    const P = 0x40000;
    assert.equal(feat(P | 0), -ENOTTY);
    assert.equal(feat(P | 1), -ENOTTY);
    assert.equal(feat(0x10001), -ENOTTY);
    assert.equal(feat(P | 2), -ENOTTY);
    assert.equal(feat(P | 3), 0);
    assert.equal(feat(P | 4), 0);
    assert.equal(feat(0x20004), -EINVAL, "fd 0 is no eventfd");
    assert.equal(feat(P | 5), 0);
    for (const f of [6, 8, 9, 0xb, 0x63]) assert.equal(feat(P | f), -ENOTTY);
    assert.equal(feat(P, 4), -EINVAL);
    assert.equal(feat(0x80000), -EINVAL);
    assert.equal(feat(0x30000), -EINVAL);
    assert.equal(feat(0x20003), 0, "low power entry");
    assert.equal(feat(0x20003), -EINVAL, "already engaged");
    assert.equal(feat(0x20005), 0);
  });
});

describe("config space and BAR access", () => {
  it("config reads match the oracle; BAR sizing; read-only fields; EFAULT past 256", () => {
    const { e, d } = open();
    const expect: [number, number, bigint][] = [
      [0, 4, 0x11e81234n],
      [4, 4, 0x00100103n],
      [8, 4, 0x00ff0010n],
      [0x10, 4, 0xfea00000n],
      [0x34, 1, 0x40n],
      [0x2c, 4, 0x11001af4n],
      [0x3c, 4, 0x10an],
      [0x40, 4, 0x800005n],
      [0x44, 4, 0n],
      [0x30, 4, 0n],
    ];
    for (const [off, len, val] of expect)
      assert.deepEqual(pread(e, d, CFG + off, len), { rc: len, val }, `cfg 0x${off.toString(16)}`);
    assert.equal(pwrite(e, d, CFG + 0x10, 4, 0xffffffffn), 4);
    assert.equal(pread(e, d, CFG + 0x10, 4).val, 0xfff00000n);
    assert.equal(pwrite(e, d, CFG, 4, 0xffffffffn), 4);
    assert.equal(pread(e, d, CFG, 4).val, 0x11e81234n);
    assert.equal(pread(e, d, CFG + 0x100, 4).rc, -EFAULT);
    assert.equal(pread(e, d, CFG + 0xfe, 4).rc, -EFAULT);
  });

  it("BAR0 registers; past the BAR EINVAL; absent regions EINVAL; memory decode off EIO", () => {
    const { e, d } = open();
    assert.deepEqual(pread(e, d, 0, 4), { rc: 4, val: 0x010000edn });
    assert.equal(pwrite(e, d, 4, 4, 0x12345678n), 4);
    assert.deepEqual(pread(e, d, 4, 4), { rc: 4, val: 0xedcba987n });
    assert.deepEqual(pread(e, d, 0, 8), { rc: 8, val: 0xffffffffffffffffn });
    assert.deepEqual(pread(e, d, 2, 2), { rc: 2, val: 0n });
    assert.equal(pread(e, d, 0x100000, 4).rc, -EINVAL);
    assert.equal(pread(e, d, 0x7000000000, 4).rc, -EINVAL);
    for (const i of [1, 6, 8, 9]) assert.equal(pread(e, d, i * 2 ** 40, 4).rc, -EINVAL, `region ${i}`);
    assert.equal(pwrite(e, d, CFG + 4, 2, 0n), 2);
    assert.equal(pread(e, d, 0, 4).rc, -EIO);
    assert.deepEqual(pread(e, d, CFG + 4, 2), { rc: 2, val: 0n });
    assert.equal(pwrite(e, d, CFG + 4, 2, 2n), 2);
    assert.deepEqual(pread(e, d, 0, 4), { rc: 4, val: 0x010000edn });
    assert.deepEqual(pread(e, d, CFG + 0x42, 2), { rc: 2, val: 0x80n });
  });

  it("mmap of BAR0 reaches the registers; config space cannot be mapped; the mapping pins the file", () => {
    const { e, c, g, d } = open();
    const a = e.p.mmap(0x100000, { fd: d, offset: 0 });
    assert.ok(a > 0);
    assert.deepEqual([...e.p.read(a, 4)], [0xed, 0, 0, 1]);
    e.p.write(a + 4, new Uint8Array([1, 0, 0, 0]));
    assert.deepEqual([...e.p.read(a + 4, 4)], [0xfe, 0xff, 0xff, 0xff]);
    assert.equal(e.p.mmap(0x1000, { fd: d, offset: CFG }), -EINVAL);
    assert.equal(e.p.mmap(0x200000, { fd: d, offset: 0 }), -EINVAL);
    // closing every fd leaves the device open through the mapping
    e.p.close(d);
    e.p.close(g);
    e.p.close(c);
    const vdev = VfioCore.of(e.twin.kernel)!.devices[0]!;
    assert.equal(vdev.openCount, 1);
    assert.equal(e.p.munmap(a, 0x100000), 0);
    assert.equal(vdev.openCount, 0);
    assert.deepEqual(checkVfioQuiescent(e.twin.kernel), []);
  });
});

describe("VFIO_DEVICE_SET_IRQS", () => {
  it("the oracle's sequence of INTx/MSI/REQ/ERR requests", () => {
    const { e, d } = open();
    const T = V.VFIO_IRQ_SET_ACTION_TRIGGER;
    const EFD = V.VFIO_IRQ_SET_DATA_EVENTFD;
    const NONE = V.VFIO_IRQ_SET_DATA_NONE;
    assert.equal(irqSet(e, d, 0, 0, 1, EFD | T, [99]), -EBADF);
    const efd = e.p.eventfd(0o4000);
    assert.equal(irqSet(e, d, 0, 0, 1, EFD | T, [efd]), 0);
    assert.equal(irqSet(e, d, 1, 0, 1, EFD | T, [efd]), -EINVAL, "MSI while INTx is on");
    assert.equal(irqSet(e, d, 0, 0, 0, NONE | T), 0);
    assert.equal(irqSet(e, d, 1, 0, 1, EFD | T, [efd]), 0);
    assert.equal(irqSet(e, d, 1, 0, 1, NONE | T), 0, "loopback trigger");
    const ctx = eventfdCtx(e.p.proc.files.lookup(efd)!)!;
    assert.equal(ctx.count, 1n);
    assert.equal(irqSet(e, d, 1, 0, 0, NONE | T), 0);
    assert.equal(irqSet(e, d, 1, 0, 2, EFD | T, [efd, efd]), -EINVAL);
    assert.equal(irqSet(e, d, 2, 0, 1, EFD | T, [efd]), -EINVAL);
    assert.equal(irqSet(e, d, 4, 0, 1, EFD | T, [efd]), 0);
    assert.equal(irqSet(e, d, 3, 0, 1, EFD | T, [efd]), -EINVAL);
    assert.equal(irqSet(e, d, 1, 0, 1, EFD | V.VFIO_IRQ_SET_ACTION_MASK, [efd]), -ENOTTY);
    assert.equal(irqSet(e, d, 0, 0, 1, NONE | V.VFIO_IRQ_SET_ACTION_MASK), -EINVAL);
    assert.equal(irqSet(e, d, 0, 0, 1, V.VFIO_IRQ_SET_DATA_BOOL | EFD | T, [1]), -EINVAL);
    assert.equal(irqSet(e, d, 5, 0, 1, NONE | T), -EINVAL);
  });

  it("device interrupts reach the eventfd: MSI, and INTx automasked until UNMASK", () => {
    const { e, d } = open();
    const T = V.VFIO_IRQ_SET_ACTION_TRIGGER;
    const efd = e.p.eventfd(0o4000);
    const ctx = eventfdCtx(e.p.proc.files.lookup(efd)!)!;
    const hw = IommuCore.of(e.twin.kernel).device(BDF)!.pci!;
    assert.equal(irqSet(e, d, 0, 0, 1, V.VFIO_IRQ_SET_DATA_EVENTFD | T, [efd]), 0);
    hw.irq!.intx(true);
    hw.irq!.intx(true);
    assert.equal(ctx.count, 1n, "automasked after the first");
    assert.equal(irqSet(e, d, 0, 0, 1, V.VFIO_IRQ_SET_DATA_NONE | V.VFIO_IRQ_SET_ACTION_UNMASK), 0);
    hw.irq!.intx(true);
    assert.equal(ctx.count, 2n);
    assert.equal(irqSet(e, d, 0, 0, 0, V.VFIO_IRQ_SET_DATA_NONE | T), 0);
    assert.equal(irqSet(e, d, 1, 0, 1, V.VFIO_IRQ_SET_DATA_EVENTFD | T, [efd]), 0);
    hw.irq!.msi(0);
    assert.equal(ctx.count, 3n);
    const p = VfioCore.of(e.twin.kernel)!.devices[0]!.priv as VfioPciCoreDevice;
    assert.equal(p.delivered[1], 1);
    // the trigger holds the eventfd file until the device closes
    e.p.close(efd);
    hw.irq!.msi(0);
    assert.equal(ctx.count, 4n);
    e.p.close(d);
    assert.equal(hw.irq, null);
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
  });
});

describe("open/close counting", () => {
  it("open_device once for several fds; close_device with the last; module pinned meanwhile", () => {
    const { e, c, g, d } = open();
    const vdev = VfioCore.of(e.twin.kernel)!.devices[0]!;
    const d2 = deviceFd(e, g);
    assert.equal(vdev.openCount, 2);
    const mod = e.twin.kernel.modules.loaded.get("vfio_pci")!;
    assert.equal(mod.refcnt, 1);
    assert.ok(e.twin.kernel.modules.unload("vfio_pci") < 0);
    e.p.close(d);
    assert.equal(vdev.openCount, 1);
    e.p.close(d2);
    assert.equal(vdev.openCount, 0);
    assert.equal(mod.refcnt, 0);
    e.p.close(g);
    e.p.close(c);
    assert.deepEqual(checkVfioQuiescent(e.twin.kernel), []);
  });

  for (const order of [
    ["d", "g", "c"],
    ["d", "c", "g"],
    ["g", "d", "c"],
    ["g", "c", "d"],
    ["c", "d", "g"],
    ["c", "g", "d"],
  ]) {
    it(`closing ${order.join(", ")} leaks nothing`, () => {
      const { e, c, g, d } = open();
      const efd = e.p.eventfd(0);
      const T = V.VFIO_IRQ_SET_ACTION_TRIGGER;
      assert.equal(irqSet(e, d, 1, 0, 1, V.VFIO_IRQ_SET_DATA_EVENTFD | T, [efd]), 0);
      assert.equal(
        call(e, c, V.VFIO_IOMMU_MAP_DMA, V.vfio_iommu_type1_dma_map, {
          argsz: 32,
          flags: 3,
          vaddr: BigInt(e.buf),
          iova: 0x100000n,
          size: 0x4000n,
        }).rc,
        0,
      );
      const page = e.p.proc.mm.pageAt(e.buf)!;
      const fds: Record<string, number> = { c, g, d };
      for (const x of order) {
        assert.equal(e.p.close(fds[x]!), 0);
        assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
      }
      e.p.close(efd);
      assert.deepEqual(checkVfioQuiescent(e.twin.kernel, [page]), []);
    });
  }
});

describe("SET_IRQS edge cases (oracle)", () => {
  it("MSI with no vectors ERANGE; eventfd -1 enables without a trigger; INTx mask/unmask by eventfd; REQ loopback", () => {
    const { e, d } = open();
    const T = V.VFIO_IRQ_SET_ACTION_TRIGGER;
    const EFD = V.VFIO_IRQ_SET_DATA_EVENTFD;
    const NONE = V.VFIO_IRQ_SET_DATA_NONE;
    const BOOL = V.VFIO_IRQ_SET_DATA_BOOL;
    const efd = e.p.eventfd(0o4000);
    const ctx = eventfdCtx(e.p.proc.files.lookup(efd)!)!;
    assert.equal(irqSet(e, d, 1, 0, 0, EFD | T), -34);
    assert.equal(irqSet(e, d, 0, 0, 0, EFD | T), -EINVAL);
    assert.equal(irqSet(e, d, 1, 0, 1, EFD | T, [-1]), 0);
    assert.equal(irqSet(e, d, 1, 0, 1, NONE | T), 0);
    assert.equal(irqSet(e, d, 1, 0, 1, EFD | T, [efd]), 0);
    assert.equal(irqSet(e, d, 1, 0, 1, BOOL | T, [1]), 0);
    assert.equal(ctx.count, 1n);
    assert.equal(irqSet(e, d, 1, 0, 1, BOOL | T, [0]), 0);
    assert.equal(ctx.count, 1n);
    assert.equal(irqSet(e, d, 1, 0, 0, NONE | T), 0);
    assert.equal(irqSet(e, d, 0, 0, 1, EFD | T, [-1]), 0);
    assert.equal(irqSet(e, d, 0, 0, 1, NONE | T), 0);
    assert.equal(irqSet(e, d, 0, 0, 1, EFD | T, [efd]), 0);
    assert.equal(irqSet(e, d, 0, 0, 1, NONE | V.VFIO_IRQ_SET_ACTION_MASK), 0);
    assert.equal(irqSet(e, d, 0, 0, 1, NONE | T), 0);
    assert.equal(ctx.count, 2n, "a loopback trigger signals even while masked");
    assert.equal(irqSet(e, d, 0, 0, 1, BOOL | V.VFIO_IRQ_SET_ACTION_UNMASK, [1]), 0);
    assert.equal(irqSet(e, d, 0, 0, 1, EFD | V.VFIO_IRQ_SET_ACTION_UNMASK, [efd]), 0);
    assert.equal(irqSet(e, d, 0, 0, 1, EFD | V.VFIO_IRQ_SET_ACTION_MASK, [efd]), -ENOTTY);
    assert.equal(irqSet(e, d, 4, 0, 1, NONE | T), -EINVAL, "no request trigger yet");
    assert.equal(irqSet(e, d, 4, 0, 1, EFD | T, [-1]), 0);
    assert.equal(irqSet(e, d, 4, 0, 0, NONE | T), -EINVAL);
    assert.equal(irqSet(e, d, 4, 0, 1, EFD | T, [efd]), 0);
    assert.equal(irqSet(e, d, 4, 0, 1, NONE | T), 0);
    assert.equal(ctx.count, 3n);
    assert.equal(irqSet(e, d, 0, 1, 1, NONE | T), -EINVAL);
    assert.equal(irqSet(e, d, 0, 0, 2, NONE | T), -EINVAL);
    assert.equal(irqSet(e, d, 0, 0, 1, 8), -EINVAL);
    const hdr = (argsz: number, flags: number, start = 0) =>
      call(e, d, V.VFIO_DEVICE_SET_IRQS, V.vfio_irq_set, { argsz, flags, index: 0, start, count: 1 }).rc;
    assert.equal(hdr(20, EFD | T), -EINVAL, "no room for the fd");
    assert.equal(hdr(19, NONE | T), -EINVAL);
    assert.equal(hdr(20, NONE | T, 0xffffffff), -EINVAL);
    assert.equal(hdr(20, NONE | T | 0x40), -EINVAL);
    e.p.close(efd);
    e.p.close(d);
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
    assert.equal(
      [...e.twin.kernel.objects].filter(
        (o) => o.kind === "file" && (o as unknown as { path: string }).path.includes("eventfd"),
      ).length,
      0,
      "every trigger reference went with the device",
    );
  });
});
