// The fast device interface (PciDevice.mmioReadN/mmioWriteN, dmaLoadInto; docs/performance.md)
// against the bigint one it stands for: the same program of register accesses, made through
// each interface on two edu devices, leaves both in the same state and reads the same values,
// 64-bit DMA registers near 2^64 included; and a DMA into the device's own buffer reads a
// blocked page as zeros, whatever the buffer held.

import { test } from "node:test";
import fc from "fast-check";
import assert from "node:assert/strict";
import { Clock } from "../../src/kernel/time.js";
import * as E from "../../src/hw/edu.js";
import { GenericPciDevice } from "../../src/hw/generic.js";
import { PCI_COMMAND, PCI_COMMAND_MASTER, type PciDevice } from "../../src/hw/pci.js";

function edu(): { dev: E.EduDevice; clock: Clock; ram: Uint8Array } {
  const clock = new Clock();
  const dev = new E.EduDevice("0000:00:01.0", clock);
  const ram = new Uint8Array(1 << 16);
  dev.dma = {
    read: () => null,
    // pages at or above 0x8000 are blocked: zeros where they fall, as DmaPort.load says
    load: (a, out) => {
      let ok = true;
      for (let i = 0; i < out.length; i++) {
        const x = Number(a) + i;
        if (x >= 0x8000) {
          out[i] = 0;
          ok = false;
        } else out[i] = ram[x]!;
      }
      return ok;
    },
    write: (a, b) => (
      ram.set(b.subarray(0, Math.max(0, 0x8000 - Number(a))), Number(a)),
      Number(a) + b.length <= 0x8000
    ),
  };
  dev.irq = { msi: () => {}, intx: () => {} };
  dev.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MASTER);
  return { dev, clock, ram };
}

const offs = [0, 4, 8, 0x10, 0x20, 0x24, 0x60, 0x64, 0x80, 0x84, 0x88, 0x8c, 0x90, 0x94, 0x98, 0x9c, 0xa0];
const op = fc.record({
  write: fc.boolean(),
  off: fc.constantFrom(...offs),
  size: fc.constantFrom(1, 2, 4),
  value: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(0, 1, 3, 5, 0x40000, 0x1000, 0xffffffff)),
  tick: fc.boolean(),
});

test("edu: every access through mmioReadN/mmioWriteN equals the bigint interface's", () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const a = edu();
      const b = edu();
      for (const o of ops) {
        if (o.write) {
          a.dev.mmioWrite(0, o.off, o.size, BigInt(o.value));
          b.dev.mmioWriteN(0, o.off, o.size, o.value);
        } else {
          assert.equal(b.dev.mmioReadN(0, o.off, o.size), Number(a.dev.mmioRead(0, o.off, o.size)), `read ${o.off}`);
        }
        if (o.tick) {
          a.clock.advance(E.EDU_DMA_DELAY_NS);
          b.clock.advance(E.EDU_DMA_DELAY_NS);
        }
      }
      for (const off of offs) {
        for (const size of [4, 8]) assert.equal(b.dev.mmioRead(0, off, size), a.dev.mmioRead(0, off, size));
      }
      assert.equal(b.dev.fatal, a.dev.fatal);
      assert.deepEqual([...b.dev.dmaBuf], [...a.dev.dmaBuf]);
      assert.deepEqual([...b.ram], [...a.ram]);
    }),
  );
});

test("edu: 64-bit DMA registers keep both words; a range past 2^32 is the device's fatal error", () => {
  const { dev, clock } = edu();
  dev.mmioWrite(0, E.EDU_REG_DMA_SRC, 8, 0xffff_ffff_ffff_f000n);
  assert.equal(dev.mmioRead(0, E.EDU_REG_DMA_SRC, 8), 0xffff_ffff_ffff_f000n);
  assert.equal(dev.mmioReadN(0, E.EDU_REG_DMA_SRC, 4), 0xffff_f000);
  dev.mmioWrite(0, E.EDU_REG_DMA_DST, 8, 0x1_0004_0000n);
  dev.mmioWriteN(0, E.EDU_REG_DMA_COUNT, 4, 16);
  dev.mmioWriteN(0, E.EDU_REG_DMA_CMD, 4, E.EDU_DMA_RUN);
  clock.advance(E.EDU_DMA_DELAY_NS);
  assert.equal(dev.fatal, "EDU: DMA range 0x100040000-0x10004000f out of bounds (0x40000-0x40fff)");
});

test("a DMA into the device's buffer reads a blocked page as zeros, whatever the buffer held", () => {
  const { dev, clock, ram } = edu();
  ram.fill(0x11, 0x7000, 0x8000);
  dev.dmaBuf.fill(0xee);
  dev.mmioWriteN(0, E.EDU_REG_DMA_SRC, 4, 0x7800);
  dev.mmioWriteN(0, E.EDU_REG_DMA_DST, 4, 0x40000);
  dev.mmioWriteN(0, E.EDU_REG_DMA_COUNT, 4, 0x1000);
  dev.mmioWriteN(0, E.EDU_REG_DMA_CMD, 4, E.EDU_DMA_RUN);
  clock.advance(E.EDU_DMA_DELAY_NS);
  assert.deepEqual([...new Set(dev.dmaBuf.subarray(0, 0x800))], [0x11]);
  assert.deepEqual([...new Set(dev.dmaBuf.subarray(0x800))], [0]);
  // bus mastering off: nothing leaves the device, the buffer reads zeros
  dev.dmaBuf.fill(0xee);
  dev.configWrite(PCI_COMMAND, 2, 0);
  assert.equal(dev.dmaLoadInto(0n, dev.dmaBuf), false);
  assert.deepEqual([...new Set(dev.dmaBuf)], [0]);
});

test("a device without its own fast methods answers through its bigint ones", () => {
  const dev: PciDevice = new GenericPciDevice("0000:00:02.0", 0x1af4, 0x1000, 0xfe000000);
  dev.mmioWriteN(0, 8, 4, 0xdeadbeef);
  assert.equal(dev.mmioRead(0, 8, 4), 0xdeadbeefn);
  assert.equal(dev.mmioReadN(0, 9, 1), 0xbe);
  dev.mmioWriteN(0, 9, 1, 0x1ff);
  assert.equal(dev.mmioReadN(0, 8, 4), 0xdeadffef);
});
