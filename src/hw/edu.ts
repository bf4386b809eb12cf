// QEMU's "edu" educational PCI device (QEMU hw/misc/edu.c, docs/specs/edu.rst), the device of
// the real-kernel oracle: 1234:11e8, class 0x00ff (other), revision 0x10, a 1 MiB BAR0 of
// registers, one MSI vector (64-bit, no masking) and INTx pin A.
//
// Register decode lives in one switch per direction (mmioRead / mmioWrite) so the DMA engine,
// the factorial unit and interrupt raising can be added case by case. Accesses of the wrong
// size behave as QEMU's edu_mmio_read/write: below 0x80 only 4-byte accesses reach a
// register, from 0x80 4 or 8 bytes; anything else reads all-ones and writes are dropped.
// Sizes below 4 are rejected by the memory core (valid.min_access_size = 4): they read 0.

import { type BarInfo, PCI_CAP_ID_MSI, PCI_STATUS_CAP_LIST, PciDevice } from "./pci.js";

export const EDU_VENDOR = 0x1234;
export const EDU_DEVICE = 0x11e8;
export const EDU_BAR0_SIZE = 1 << 20;
/** the identification register: major 1, minor 0, 0xed */
export const EDU_ID = 0x010000ed;
export const EDU_REG_ID = 0x00;
export const EDU_REG_LIVENESS = 0x04;
/** offset of the MSI capability (the first one msi_init places) */
export const EDU_MSI_CAP = 0x40;
const ALL_ONES = 0xffffffffffffffffn;

export class EduDevice extends PciDevice {
  readonly bars: readonly (BarInfo | null)[] = [
    { size: EDU_BAR0_SIZE, kind: "mem32", prefetchable: false },
    null,
    null,
    null,
    null,
    null,
  ];
  /** the liveness register's value (reads return the bitwise inverse of what was written) */
  addr4 = 0;

  constructor(bdf: string) {
    super(bdf, EDU_VENDOR, EDU_DEVICE);
    const c = this.cfg;
    // as the guest kernel left it on the oracle: I/O + memory decode + SERR (0x103)
    c.setUint16(0x04, 0x0103, true);
    c.setUint16(0x06, PCI_STATUS_CAP_LIST, true);
    c.setUint8(0x08, 0x10); // revision
    c.setUint8(0x0a, 0xff); // class code PCI_CLASS_OTHERS (0x00ff): subclass ff, base 00
    c.setUint32(0x10, 0xfea00000, true); // BAR0 as the firmware placed it
    c.setUint16(0x2c, 0x1af4, true); // QEMU's default subsystem vendor
    c.setUint16(0x2e, 0x1100, true);
    c.setUint8(0x34, EDU_MSI_CAP);
    c.setUint8(0x3c, 0x0a); // interrupt line
    c.setUint8(0x3d, 1); // INTA#
    c.setUint8(EDU_MSI_CAP, PCI_CAP_ID_MSI);
    c.setUint8(EDU_MSI_CAP + 1, 0); // end of the capability list
    c.setUint16(EDU_MSI_CAP + 2, 0x0080, true); // PCI_MSI_FLAGS_64BIT, 1 vector
  }

  mmioRead(bar: number, off: number, size: number): bigint {
    if (bar !== 0 || size < 4) return 0n;
    if (off < 0x80 && size !== 4) return ALL_ONES;
    if (off >= 0x80 && size !== 4 && size !== 8) return ALL_ONES;
    let val = ALL_ONES;
    switch (off) {
      case EDU_REG_ID:
        val = BigInt(EDU_ID);
        break;
      case EDU_REG_LIVENESS:
        val = BigInt(this.addr4 >>> 0);
        break;
      default:
        break;
    }
    return size === 4 ? val & 0xffffffffn : val;
  }

  mmioWrite(bar: number, off: number, size: number, value: bigint): void {
    if (bar !== 0 || size < 4) return;
    if (off < 0x80 && size !== 4) return;
    if (off >= 0x80 && size !== 4 && size !== 8) return;
    switch (off) {
      case EDU_REG_LIVENESS:
        this.addr4 = ~Number(value & 0xffffffffn) >>> 0;
        break;
      default:
        break;
    }
  }
}
