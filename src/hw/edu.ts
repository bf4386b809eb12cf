// QEMU's educational PCI device "edu" (hw/misc/edu.c, docs/specs/edu.rst; the oracle runs
// QEMU 7.2's): 1234:11e8 rev 0x10, class 0x00ff, INTA, one MSI vector (64-bit, no masking),
// BAR0 = 1 MiB of MMIO registers:
//
//   0x00 RO  identification 0x010000ed        0x04 RW  liveness: reads back ~written
//   0x08 RW  factorial: write n, read n!      0x20 RW  status: 0x01 computing, 0x80 irq on fact
//   0x24 RO  interrupt status                 0x60 WO  raise interrupt (ORs into status)
//   0x64 WO  acknowledge interrupt            0x80/0x88/0x90/0x98 RW  DMA src, dst, count, cmd
//
// Below 0x80 only 4-byte accesses count; from 0x80 4 or 8. Other accesses read all ones and
// are ignored on write. DMA cmd bits: 0x1 run, 0x2 direction (0 RAM -> device, 1 device ->
// RAM), 0x4 raise interrupt 0x100 on completion. The transfer happens 100 ms of virtual time
// after the run bit is written; DMA registers ignore writes while it runs. Bus addresses
// are clamped to the 28-bit DMA mask; the device side must lie in its 4 KiB buffer at
// 0x40000, which QEMU 7.2 checks with hw_error(), killing the machine: the twin records that
// as a fatal device error and stops the device instead.
//
// The factorial is computed by a device thread in QEMU (edu_fact_thread) that on the oracle
// always finishes before the guest's next access: the status register reads 0 right after
// the write (test/scenarios-edu/edu-mmap). The twin computes it at the write, and raises the
// completion interrupt then if the status register asks for it.
//
// A DMA read the device cannot make (bus mastering off, or a page the IOMMU blocks) gives
// it zeros, as QEMU's unassigned accesses read: the buffer is overwritten with zeros for
// those bytes (observed on the oracle, test/scenarios-edu/edu-dma-type1).
//
// Config space is as the oracle's guest kernel left it (command 0x0103: I/O + memory decode +
// SERR; interrupt line 0x0a). Accesses narrower than 4 bytes never reach the registers: the
// memory core rejects them (valid.min_access_size = 4) and they read 0.

import {
  type BarInfo,
  PCI_CAP_ID_MSI,
  PCI_CLASS_DEVICE,
  PCI_INTERRUPT_PIN,
  PCI_REVISION_ID,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PciDevice,
  type TimerHost,
} from "./pci.js";

export const EDU_VENDOR = 0x1234;
export const EDU_DEVICE = 0x11e8;
export const EDU_IDENT = 0x010000ed;
export const EDU_REG_IDENT = 0x00;
export const EDU_REG_ID = EDU_REG_IDENT;
export const EDU_ID = 0x010000ed;
export const EDU_BAR0_SIZE = 1 << 20;
export const EDU_REG_LIVENESS = 0x04;
export const EDU_REG_FACT = 0x08;
export const EDU_REG_STATUS = 0x20;
export const EDU_REG_IRQ_STATUS = 0x24;
export const EDU_REG_IRQ_RAISE = 0x60;
export const EDU_REG_IRQ_ACK = 0x64;
export const EDU_REG_DMA_SRC = 0x80;
export const EDU_REG_DMA_DST = 0x88;
export const EDU_REG_DMA_COUNT = 0x90;
export const EDU_REG_DMA_CMD = 0x98;
export const EDU_STATUS_COMPUTING = 0x01;
export const EDU_STATUS_IRQFACT = 0x80;
export const EDU_DMA_RUN = 0x1;
export const EDU_DMA_TO_PCI = 0x2;
export const EDU_DMA_IRQ = 0x4;
export const EDU_FACT_IRQ = 0x1;
export const EDU_DMA_IRQ_BIT = 0x100;
export const EDU_DMA_START = 0x40000n;
export const EDU_DMA_SIZE = 4096;
export const EDU_DMA_MASK = (1n << 28n) - 1n;
export const EDU_DMA_DELAY_NS = 100_000_000;
/** where pci_add_capability() puts the first capability on a conventional device */
export const EDU_MSI_CAP = 0x40;

const MSI_FLAGS = EDU_MSI_CAP + 2;
const PCI_MSI_FLAGS_ENABLE = 0x1;
const PCI_MSI_FLAGS_64BIT = 0x80;
const PCI_MSI_FLAGS_QSIZE = 0x70;
const ALL_ONES = 0xffffffffffffffffn;
const SRC = 0;
const DST = 1;
const COUNT = 2;
const CMD = 3;
/** EDU_DMA_MASK's bits, all within the low word */
const DMA_MASK_LO = Number(EDU_DMA_MASK);

export class EduDevice extends PciDevice {
  readonly bars: readonly (BarInfo | null)[] = [
    { size: 1 << 20, kind: "mem32", prefetchable: false },
    null,
    null,
    null,
    null,
    null,
  ];
  private addr4 = 0;
  private fact = 0;
  private status = 0;
  irqStatus = 0;
  /** the DMA registers src, dst, count, cmd (SRC..CMD): low and high u32 words */
  private readonly regLo = new Uint32Array(4);
  private readonly regHi = new Uint32Array(4);
  readonly dmaBuf = new Uint8Array(EDU_DMA_SIZE);
  /** set when the device hit a fatal error (QEMU's hw_error aborts the whole machine) */
  fatal: string | null = null;

  constructor(
    bdf: string,
    private readonly timers: TimerHost,
  ) {
    super(bdf, EDU_VENDOR, EDU_DEVICE);
    const c = this.cfg;
    c.setUint16(0x04, 0x0103, true);
    c.setUint8(0x3c, 0x0a);
    c.setUint8(PCI_REVISION_ID, 0x10);
    c.setUint16(PCI_CLASS_DEVICE, 0x00ff, true);
    c.setUint16(PCI_SUBSYSTEM_VENDOR_ID, 0x1af4, true);
    c.setUint16(PCI_SUBSYSTEM_ID, 0x1100, true);
    c.setUint8(PCI_INTERRUPT_PIN, 1);
    // BAR0: 32-bit non-prefetchable memory (type bits 0); the address is the platform's
    c.setUint32(0x10, 0xfea00000, true);
    // msi_init(pdev, 0, 1, true, false): 64-bit capable, one vector, no per-vector masking;
    // 14 bytes, of which the guest may write enable + queue size, address and data
    this.addCapability(PCI_CAP_ID_MSI, EDU_MSI_CAP, 14);
    c.setUint16(MSI_FLAGS, PCI_MSI_FLAGS_64BIT, true);
    const wm = new DataView(this.wmask.buffer);
    wm.setUint16(MSI_FLAGS, PCI_MSI_FLAGS_QSIZE | PCI_MSI_FLAGS_ENABLE, true);
    wm.setUint32(EDU_MSI_CAP + 4, 0xfffffffc, true);
    wm.setUint32(EDU_MSI_CAP + 8, 0xffffffff, true);
    wm.setUint16(EDU_MSI_CAP + 12, 0xffff, true);
  }

  msiEnabled(): boolean {
    return (this.cfg.getUint16(MSI_FLAGS, true) & PCI_MSI_FLAGS_ENABLE) !== 0;
  }

  // Registers are numbers: the 64-bit DMA registers as two u32 words each, so a 4-byte access
  // (what the driver makes) is number arithmetic end to end (PciDevice.mmioReadN/mmioWriteN);
  // the bigint interface assembles or splits the words.

  mmioRead(bar: number, off: number, size: number): bigint {
    const ones = size >= 8 ? ALL_ONES : (1n << BigInt(size * 8)) - 1n;
    if (size < 4) return 0n;
    if (bar !== 0 || this.fatal) return ones;
    if (off < 0x80 && size !== 4) return ones;
    if (off >= 0x80 && size !== 4 && size !== 8) return ones;
    if (size === 4) {
      const v = this.reg32(off);
      return v < 0 ? ones : BigInt(v);
    }
    const r = this.dmaReg(off);
    return r < 0 ? ones : (BigInt(this.regHi[r]!) << 32n) | BigInt(this.regLo[r]!);
  }

  override mmioReadN(bar: number, off: number, size: number): number {
    if (size < 4) return 0;
    if (bar !== 0 || this.fatal) return 0xffffffff;
    const v = this.reg32(off);
    return v < 0 ? 0xffffffff : v;
  }

  mmioWrite(bar: number, off: number, size: number, value: bigint): void {
    if (bar !== 0 || this.fatal || size < 4) return;
    const lo = Number(value & 0xffffffffn);
    this.writeReg(off, size, lo, size === 8 ? Number((value >> 32n) & 0xffffffffn) : 0);
  }

  override mmioWriteN(bar: number, off: number, size: number, value: number): void {
    if (bar !== 0 || this.fatal || size < 4) return;
    this.writeReg(off, 4, value >>> 0, 0);
  }

  /** the index of a 64-bit DMA register (src, dst, count, cmd) at off, or -1 */
  private dmaReg(off: number): number {
    return off >= EDU_REG_DMA_SRC && off <= EDU_REG_DMA_CMD && (off & 7) === 0 ? (off - EDU_REG_DMA_SRC) >>> 3 : -1;
  }

  /** a 4-byte register read: its value, or -1 where nothing answers (all ones then) */
  private reg32(off: number): number {
    switch (off) {
      case EDU_REG_IDENT:
        return EDU_IDENT;
      case EDU_REG_LIVENESS:
        return this.addr4;
      case EDU_REG_FACT:
        return this.fact;
      case EDU_REG_STATUS:
        return this.status;
      case EDU_REG_IRQ_STATUS:
        return this.irqStatus;
      default: {
        // the low word of a DMA register
        const r = this.dmaReg(off);
        return r < 0 ? -1 : this.regLo[r]!;
      }
    }
  }

  /** A store of `size` (4 or 8) bytes: lo and hi are its two u32 words (hi 0 for size 4). */
  private writeReg(off: number, size: number, lo: number, hi: number): void {
    if (off < 0x80 && size !== 4) return;
    if (off >= 0x80 && size !== 4 && size !== 8) return;
    switch (off) {
      case EDU_REG_LIVENESS:
        this.addr4 = ~lo >>> 0;
        return;
      case EDU_REG_FACT:
        if (this.status & EDU_STATUS_COMPUTING) return;
        this.fact = lo;
        this.status |= EDU_STATUS_COMPUTING;
        this.factDone();
        return;
      case EDU_REG_STATUS:
        if (lo & EDU_STATUS_IRQFACT) this.status |= EDU_STATUS_IRQFACT;
        else this.status &= ~EDU_STATUS_IRQFACT;
        return;
      case EDU_REG_IRQ_RAISE:
        this.raiseIrq(lo);
        return;
      case EDU_REG_IRQ_ACK:
        this.lowerIrq(lo);
        return;
      case EDU_REG_DMA_SRC:
      case EDU_REG_DMA_DST:
      case EDU_REG_DMA_COUNT:
      case EDU_REG_DMA_CMD: {
        if (this.regLo[CMD]! & EDU_DMA_RUN) return; // busy: writes are ignored
        // a 4-byte write replaces the whole 64-bit register with the zero-extended value
        const r = this.dmaReg(off);
        if (r === CMD && !(lo & EDU_DMA_RUN)) return;
        this.regLo[r] = lo;
        this.regHi[r] = hi;
        if (r === CMD) this.timers.schedule(EDU_DMA_DELAY_NS, `edu ${this.bdf} dma`, this.dmaDoneFn);
        return;
      }
    }
  }

  /** edu_fact_thread(): n! in 32 bits. 34! and every later one has 2^32 as a factor, so the
   * product is 0 from there on: at most 33 steps, whatever n the driver wrote. */
  private factDone(): void {
    let n = this.fact;
    let r = 1;
    if (n >= 34) r = 0;
    else while (n > 0) r = Math.imul(r, n--) >>> 0;
    this.fact = r;
    this.status &= ~EDU_STATUS_COMPUTING;
    if (this.status & EDU_STATUS_IRQFACT) this.raiseIrq(EDU_FACT_IRQ);
  }

  private readonly dmaDoneFn = () => this.dmaDone();

  /** edu_dma_timer(): the transfer, then the completion interrupt if asked for. The device's
   * buffer is the DMA's source or destination itself (no copy in between). */
  private dmaDone(): void {
    const lo = this.regLo;
    const hi = this.regHi;
    const cmd = lo[CMD]!;
    if (!(cmd & EDU_DMA_RUN) || this.fatal) return;
    const toPci = (cmd & EDU_DMA_TO_PCI) !== 0;
    // the buffer side of the transfer: it and its end must lie in the 4 KiB at 0x40000
    const local = toPci ? SRC : DST;
    const start = lo[local]!;
    const cnt = lo[COUNT]!;
    const bufStart = Number(EDU_DMA_START);
    if (hi[local] !== 0 || hi[COUNT] !== 0 || start < bufStart || start + cnt > bufStart + EDU_DMA_SIZE) {
      const l = (BigInt(hi[local]!) << 32n) | BigInt(start);
      const end = l + ((BigInt(hi[COUNT]!) << 32n) | BigInt(cnt));
      this.fatal = `EDU: DMA range 0x${l.toString(16)}-0x${(end - 1n).toString(16)} out of bounds (0x40000-0x40fff)`;
      return;
    }
    const off = start - bufStart;
    const buf = off === 0 && cnt === EDU_DMA_SIZE ? this.dmaBuf : this.dmaBuf.subarray(off, off + cnt);
    // the bus address side, masked to the device's 28 address bits (edu_check_range())
    const bus = BigInt((lo[toPci ? DST : SRC]! & DMA_MASK_LO) >>> 0);
    if (toPci) this.dmaWrite(bus, buf);
    else this.dmaLoadInto(bus, buf);
    lo[CMD] = (cmd & ~EDU_DMA_RUN) >>> 0;
    if (cmd & EDU_DMA_IRQ) this.raiseIrq(EDU_DMA_IRQ_BIT);
  }

  private raiseIrq(bits: number): void {
    this.irqStatus = (this.irqStatus | bits) >>> 0;
    if (this.irqStatus === 0) return;
    if (this.msiEnabled()) this.msiNotify(0);
    else this.setIntx(true);
  }

  private lowerIrq(bits: number): void {
    this.irqStatus = (this.irqStatus & ~bits) >>> 0;
    if (this.irqStatus === 0 && !this.msiEnabled()) this.setIntx(false);
  }
}
