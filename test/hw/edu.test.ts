import { test } from "node:test";
import assert from "node:assert/strict";
import { Clock } from "../../src/kernel/time.js";
import * as E from "../../src/hw/edu.js";
import { PCI_COMMAND, PCI_COMMAND_MASTER } from "../../src/hw/pci.js";

/** A flat 1 MiB "bus" at address 0: what an identity-mapped device would see. */
function rig() {
  const clock = new Clock();
  const dev = new E.EduDevice("0000:00:01.0", clock);
  const ram = new Uint8Array(1 << 20);
  const faults: bigint[] = [];
  dev.dma = {
    read: (a, n) =>
      a + BigInt(n) <= BigInt(ram.length) ? ram.slice(Number(a), Number(a) + n) : (faults.push(a), null),
    load: (a, out) =>
      a + BigInt(out.length) <= BigInt(ram.length)
        ? (out.set(ram.subarray(Number(a), Number(a) + out.length)), true)
        : (faults.push(a), false),
    write: (a, b) =>
      a + BigInt(b.length) <= BigInt(ram.length) ? (ram.set(b, Number(a)), true) : (faults.push(a), false),
  };
  const irqs: string[] = [];
  dev.irq = { msi: (v) => irqs.push(`msi${v}`), intx: (l) => irqs.push(`intx${l ? 1 : 0}`) };
  const w = (off: number, v: number | bigint, size = off >= 0x80 ? 8 : 4) => dev.mmioWrite(0, off, size, BigInt(v));
  const r = (off: number, size = 4) => dev.mmioRead(0, off, size);
  return { clock, dev, ram, faults, irqs, w, r };
}

test("identification, liveness and access-size rules", () => {
  const { r, w, dev } = rig();
  assert.equal(r(0), 0x010000edn);
  w(4, 0x12345678);
  assert.equal(r(4), 0xedcba987n);
  assert.equal(r(0, 2), 0n, "a 2-byte access never reaches the registers (QEMU valid.min_access_size = 4)");
  assert.equal(r(0x80, 2), 0n);
  assert.equal(r(0x10), 0xffffffffn, "unknown register");
  assert.equal(dev.config[0], 0x34);
  assert.equal(dev.cfg.getUint16(2, true), 0x11e8);
  assert.equal(dev.config[0x40], 0x05, "MSI capability first");
});

test("factorial: done by the next access (as on the oracle), with the optional interrupt", () => {
  const { r, w, irqs } = rig();
  w(E.EDU_REG_STATUS, E.EDU_STATUS_IRQFACT);
  w(E.EDU_REG_FACT, 10);
  assert.equal(r(E.EDU_REG_FACT), 3628800n);
  assert.equal(r(E.EDU_REG_STATUS) & 1n, 0n);
  assert.equal(r(E.EDU_REG_IRQ_STATUS), 1n);
  assert.deepEqual(irqs, ["intx1"]);
  w(E.EDU_REG_IRQ_ACK, 1);
  assert.deepEqual(irqs, ["intx1", "intx0"]);
});

test("factorial of any u32 costs at most 33 steps: n! mod 2^32 is 0 from 34 on (issue 12 #3)", () => {
  const { r, w } = rig();
  const ref = (n: number) => {
    let f = 1n;
    for (let i = 2n; i <= BigInt(n); i++) f = (f * i) & 0xffffffffn;
    return f;
  };
  for (const n of [0, 1, 12, 13, 33, 34, 35, 100]) {
    w(E.EDU_REG_FACT, n);
    assert.equal(r(E.EDU_REG_FACT), ref(n), `${n}!`);
  }
  assert.notEqual(ref(33), 0n);
  const t0 = performance.now();
  w(E.EDU_REG_FACT, 0xffffffff); // the recipe: one MMIO write took 3-6 s
  assert.equal(r(E.EDU_REG_FACT), 0n);
  assert.equal(r(E.EDU_REG_STATUS) & 1n, 0n);
  assert.ok(performance.now() - t0 < 50, "no loop of n steps");
});

test("DMA needs bus mastering, runs after 100 ms, and raises 0x100 when asked", () => {
  const { dev, r, w, clock, ram, irqs } = rig();
  ram.set([1, 2, 3, 4], 0x1000);
  w(E.EDU_REG_DMA_SRC, 0x1000);
  w(E.EDU_REG_DMA_DST, 0x40000);
  w(E.EDU_REG_DMA_COUNT, 4);
  w(E.EDU_REG_DMA_CMD, E.EDU_DMA_RUN);
  clock.advance(E.EDU_DMA_DELAY_NS);
  assert.deepEqual([...dev.dmaBuf.subarray(0, 4)], [0, 0, 0, 0], "no bus master: nothing moves");
  dev.cfg.setUint16(PCI_COMMAND, PCI_COMMAND_MASTER, true);
  w(E.EDU_REG_DMA_CMD, E.EDU_DMA_RUN);
  w(E.EDU_REG_DMA_SRC, 0x9999); // ignored while running
  clock.advance(E.EDU_DMA_DELAY_NS - 1);
  assert.equal(r(E.EDU_REG_DMA_CMD, 8) & 1n, 1n, "still running");
  clock.advance(1);
  assert.deepEqual([...dev.dmaBuf.subarray(0, 4)], [1, 2, 3, 4]);
  w(E.EDU_REG_DMA_SRC, 0x40000);
  w(E.EDU_REG_DMA_DST, 0x2000);
  w(E.EDU_REG_DMA_CMD, E.EDU_DMA_RUN | E.EDU_DMA_TO_PCI | E.EDU_DMA_IRQ);
  clock.advance(E.EDU_DMA_DELAY_NS);
  assert.deepEqual([...ram.subarray(0x2000, 0x2004)], [1, 2, 3, 4]);
  assert.equal(r(E.EDU_REG_IRQ_STATUS), 0x100n);
  assert.deepEqual(irqs, ["intx1"]);
});

test("MSI instead of INTx once enabled; an out-of-buffer transfer is fatal to the device", () => {
  const { dev, r, w, clock, irqs } = rig();
  dev.cfg.setUint16(E.EDU_MSI_CAP + 2, 0x81, true);
  w(E.EDU_REG_IRQ_RAISE, 0x8);
  assert.deepEqual(irqs, [], "the MSI write needs bus mastering");
  dev.cfg.setUint16(PCI_COMMAND, PCI_COMMAND_MASTER, true);
  w(E.EDU_REG_IRQ_RAISE, 0x8);
  assert.deepEqual(irqs, ["msi0"]);
  w(E.EDU_REG_DMA_DST, 0x40ff0);
  w(E.EDU_REG_DMA_COUNT, 0x20);
  w(E.EDU_REG_DMA_CMD, E.EDU_DMA_RUN);
  clock.advance(E.EDU_DMA_DELAY_NS);
  assert.match(String(dev.fatal), /out of bounds/);
  assert.equal(r(0), 0xffffffffn, "a dead device reads all ones");
});
