// A plain PCI function for machine configs that name ids the twin has no model for: the
// given vendor/device ids, class 0xff00 (unassigned), INTA#, no capabilities, and a 16 KiB
// BAR0 that behaves as a register file (what is written is read back). Enough for VFIO's
// region, config and interrupt paths; it never starts DMA by itself.

import { type BarInfo, PciDevice } from "./pci.js";

export const GENERIC_BAR0_SIZE = 16 * 1024;

export class GenericPciDevice extends PciDevice {
  readonly bars: readonly (BarInfo | null)[] = [
    { size: GENERIC_BAR0_SIZE, kind: "mem32", prefetchable: false },
    null,
    null,
    null,
    null,
    null,
  ];
  readonly regs = new Uint8Array(GENERIC_BAR0_SIZE);

  constructor(bdf: string, vendor: number, device: number, bar0Addr: number) {
    super(bdf, vendor, device);
    const c = this.cfg;
    c.setUint16(0x04, 0x0002, true);
    c.setUint8(0x0a, 0x00);
    c.setUint8(0x0b, 0xff);
    c.setUint32(0x10, bar0Addr >>> 0, true);
    c.setUint8(0x3d, 1);
  }

  mmioRead(bar: number, off: number, size: number): bigint {
    if (bar !== 0 || off + size > GENERIC_BAR0_SIZE) return 0n;
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.regs[off + i]!);
    return v;
  }

  mmioWrite(bar: number, off: number, size: number, value: bigint): void {
    if (bar !== 0 || off + size > GENERIC_BAR0_SIZE) return;
    for (let i = 0; i < size; i++) this.regs[off + i] = Number((value >> BigInt(8 * i)) & 0xffn);
  }
}
