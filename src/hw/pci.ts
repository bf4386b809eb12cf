// The hardware side of a PCI function, as QEMU models it (hw/pci/pci.c): a config space, BARs
// reached by MMIO, a DMA port through which the device reads and writes "memory" by bus
// address, and interrupt lines. The device knows nothing of the IOMMU or of VFIO: the
// platform (src/iommu) decides what a bus address reaches, and the driver that owns the
// device (vfio-pci in src/vfio) sees the interrupts.
//
// Bus addresses (IOVAs) are bigint: they reach 2^64-1.

/**
 * Where the device's DMA goes. Implemented by the IOMMU core for the device's group. Accesses
 * are translated page by page as QEMU's VT-d does: a blocked page is an IOMMU fault (recorded)
 * that changes no byte of memory; the other pages of the same access go through.
 */
export interface DmaPort {
  /** the bytes at `addr`, or null when any page was blocked (each blocked page is a fault) */
  read(addr: bigint, len: number): Uint8Array | null;
  /** fill `out` from bus address `addr` as the device receives it: blocked pages read as
   * zeros (QEMU's unassigned access). True when no page was blocked. */
  load(addr: bigint, out: Uint8Array): boolean;
  /** true when every byte was written; blocked pages keep their bytes */
  write(addr: bigint, bytes: Uint8Array): boolean;
  /** a request that never left the device because bus mastering is off (logged, no DMAR fault) */
  blocked?(addr: bigint, len: number, write: boolean): void;
  /** PASID-tagged DMA (a TLP with a PASID prefix): translated through the domain attached at
   * `pasid`, or a fault when none is. Absent where the platform has no PASID support. */
  loadPasid?(pasid: number, addr: bigint, out: Uint8Array): boolean;
  writePasid?(pasid: number, addr: bigint, bytes: Uint8Array): boolean;
}

/** Where the device's interrupts go. Implemented by the owning driver (vfio-pci). */
export interface IrqSink {
  /** an MSI message for vector n (the device wrote its MSI address/data) */
  msi(vector: number): void;
  /** the INTx line's level as the interrupt controller sees it (low while DisINTx is set) */
  intx(level: boolean): void;
}

/** Virtual time for device timers (the kernel's Clock satisfies it). Delays in ns. */
export interface TimerHost {
  readonly now: number;
  schedule(delayNs: number, name: string, fn: () => void): unknown;
  cancel(timer: never): void;
}

export interface BarInfo {
  /** bytes; a power of two */
  readonly size: number;
  readonly kind: "mem32" | "mem64" | "io";
  readonly prefetchable: boolean;
}

export const PCI_CONFIG_SPACE_SIZE = 256;
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_STATUS_CAP_LIST = 0x10;
/** PCI_STATUS_PARITY | SIG_TARGET_ABORT | REC_TARGET_ABORT | REC_MASTER_ABORT | SIG_SYSTEM_ERROR | DETECTED_PARITY */
export const PCI_STATUS_W1C = 0xf900;
export const PCI_STATUS_INTERRUPT = 0x8;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;

/**
 * A PCI function's hardware. Subclasses implement their registers.
 *
 * Config space follows QEMU's pci_default_write_config(): a write changes only the bits of
 * `wmask`, and clears the `w1cmask` bits written as 1. The defaults are QEMU's
 * (pci_init_wmask(), pci_init_w1cmask()): command IO | MEMORY | MASTER | SERR | INTX_DISABLE,
 * cache line size, interrupt line, the BAR address bits, and all of 0x40-0xff, which a device
 * narrows where it places capabilities (pci_add_capability() makes them read-only).
 *
 * INTx follows pci_irq_handler(): the device's level sets PCI_STATUS_INTERRUPT, and reaches
 * the interrupt controller only while PCI_COMMAND_INTX_DISABLE is clear. MSI is a memory
 * write by the device (msi_send_message() through the bus master address space): without
 * bus mastering it goes nowhere.
 */
export abstract class PciDevice {
  /** raw config space as the device holds it (the driver may virtualize on top) */
  readonly config = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly wmask = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly w1cmask = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  dma: DmaPort | null = null;
  irq: IrqSink | null = null;
  /** the level the device drives on INTA# */
  private intxLevel = false;
  /** the level the interrupt controller sees */
  private intxLine = false;
  private barMasksSet = false;

  constructor(
    readonly bdf: string,
    readonly vendor: number,
    readonly device: number,
  ) {
    const dv = this.cfg;
    dv.setUint16(PCI_VENDOR_ID, vendor, true);
    dv.setUint16(PCI_DEVICE_ID, device, true);
    const wm = new DataView(this.wmask.buffer);
    wm.setUint16(
      PCI_COMMAND,
      PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE,
      true,
    );
    this.wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    this.wmask[PCI_INTERRUPT_LINE] = 0xff;
    this.wmask.fill(0xff, 0x40);
    new DataView(this.w1cmask.buffer).setUint16(PCI_STATUS, PCI_STATUS_W1C, true);
  }

  /** a DataView over `config`, made once (no fresh view per register access) */
  get cfg(): DataView {
    return (this.cfgView ??= new DataView(this.config.buffer));
  }
  private cfgView: DataView | undefined;

  /** pci_add_capability(): the capability's bytes become read-only; returns the offset */
  protected addCapability(id: number, offset: number, size: number): number {
    this.config[offset] = id;
    this.config[offset + 1] = this.config[PCI_CAPABILITY_LIST]!;
    this.config[PCI_CAPABILITY_LIST] = offset;
    this.cfg.setUint16(PCI_STATUS, this.cfg.getUint16(PCI_STATUS, true) | PCI_STATUS_CAP_LIST, true);
    this.wmask.fill(0, offset, offset + size);
    this.w1cmask.fill(0, offset, offset + size);
    return offset;
  }

  /** BAR address bits are writable (pci_register_bar()); set once the subclass has its BARs */
  private setBarMasks(): void {
    if (this.barMasksSet) return;
    this.barMasksSet = true;
    const wm = new DataView(this.wmask.buffer);
    this.bars.forEach((b, i) => {
      if (!b) return;
      const mask = b.kind === "io" ? ~(b.size - 1) & ~0x3 : ~(b.size - 1) & ~0xf;
      wm.setUint32(0x10 + 4 * i, mask >>> 0, true);
    });
  }

  /** pci_default_read_config(): little-endian, `size` 1, 2 or 4 */
  configRead(off: number, size: number): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (this.config[off + i] ?? 0);
    return v;
  }

  /** pci_default_write_config(): wmask and w1cmask, then the side effects */
  configWrite(off: number, size: number, val: number): void {
    this.setBarMasks();
    for (let i = 0; i < size && off + i < PCI_CONFIG_SPACE_SIZE; i++) {
      const a = off + i;
      const b = Math.floor(val / 2 ** (8 * i)) & 0xff;
      const wm = this.wmask[a]!;
      const w1c = this.w1cmask[a]!;
      this.config[a] = ((this.config[a]! & ~wm) | (b & wm)) & ~(b & w1c);
    }
    // pci_update_irq_disabled(): DisINTx gates the line
    if (off <= PCI_COMMAND + 1 && off + size > PCI_COMMAND) this.updateIntxLine();
  }

  /** BARs 0-5 (null where absent). */
  abstract readonly bars: readonly (BarInfo | null)[];
  /** an MMIO load of `size` bytes (1, 2, 4 or 8) at `off` into BAR `bar` */
  abstract mmioRead(bar: number, off: number, size: number): bigint;
  abstract mmioWrite(bar: number, off: number, size: number, value: bigint): void;

  // The fast MMIO interface (docs/performance.md): an access of 1, 2 or 4 bytes as a number,
  // what a driver's readl()/writel() is. The defaults go through the bigint methods above, so
  // a device needs only those; a device whose registers are hot overrides these two with
  // number arithmetic (src/hw/edu.ts). Both must behave the same for every (bar, off, size).

  /** an MMIO load of `size` bytes (1, 2 or 4) as a number in [0, 2^(8 size)) */
  mmioReadN(bar: number, off: number, size: number): number {
    return Number(this.mmioRead(bar, off, size));
  }

  /** an MMIO store of `size` bytes (1, 2 or 4): the low 8*size bits of `value` (a u32) */
  mmioWriteN(bar: number, off: number, size: number, value: number): void {
    this.mmioWrite(bar, off, size, BigInt(value >>> 0));
  }
  /** the device has a reset method (FLR, PM reset, ...); vfio-pci reports RESET from it */
  get canReset(): boolean {
    return false;
  }

  /** A 64-byte PASID-tagged deferrable write (ENQCMD) to BAR `bar` at `off`: true when the
   * device accepted it. A device without a shared work queue accepts none. */
  mmioEnqueue(bar: number, off: number, desc: Uint8Array, pasid: number): boolean {
    void bar;
    void off;
    void desc;
    void pasid;
    return false;
  }

  /** a function-level reset, or false when the device has no reset method */
  reset(): boolean {
    return false;
  }

  busMaster(): boolean {
    return (this.cfg.getUint16(PCI_COMMAND, true) & PCI_COMMAND_MASTER) !== 0;
  }

  memoryEnabled(): boolean {
    return (this.cfg.getUint16(PCI_COMMAND, true) & PCI_COMMAND_MEMORY) !== 0;
  }

  /** pci_set_irq(): the device drives INTA# */
  setIntx(level: boolean): void {
    this.intxLevel = level;
    const st = this.cfg.getUint16(PCI_STATUS, true);
    this.cfg.setUint16(PCI_STATUS, level ? st | PCI_STATUS_INTERRUPT : st & ~PCI_STATUS_INTERRUPT, true);
    this.updateIntxLine();
  }

  /** the level the device drives on INTA# now */
  intxAsserted(): boolean {
    return this.intxLevel;
  }

  private updateIntxLine(): void {
    const disabled = (this.cfg.getUint16(PCI_COMMAND, true) & PCI_COMMAND_INTX_DISABLE) !== 0;
    const line = this.intxLevel && !disabled;
    if (line === this.intxLine) return;
    this.intxLine = line;
    this.irq?.intx(line);
  }

  /** msi_notify(): the MSI write goes out only with bus mastering on */
  msiNotify(vector: number): void {
    if (!this.busMaster()) return;
    this.irq?.msi(vector);
  }

  /**
   * DMA as the device issues it (pci_dma_read()): the bytes the device receives. Nothing
   * leaves a device without bus mastering, and what it reads then is zeros, as it is for
   * pages the IOMMU blocks.
   */
  dmaLoad(addr: bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    if (!this.busMaster() || !this.dma) this.dma?.blocked?.(addr, len, false);
    else this.dma.load(addr, out);
    return out;
  }

  /** pci_dma_read() into `out` (the device's own buffer: no copy in between); blocked pages
   * and a device without bus mastering read as zeros there. True when nothing was blocked. */
  dmaLoadInto(addr: bigint, out: Uint8Array): boolean {
    if (!this.busMaster() || !this.dma) {
      out.fill(0);
      this.dma?.blocked?.(addr, out.length, false);
      return false;
    }
    return this.dma.load(addr, out);
  }

  /** the bytes at `addr`, or null when any of them was blocked */
  dmaRead(addr: bigint, len: number): Uint8Array | null {
    const out = new Uint8Array(len);
    if (!this.busMaster() || !this.dma) {
      this.dma?.blocked?.(addr, len, false);
      return null;
    }
    return this.dma.load(addr, out) ? out : null;
  }

  /** PASID-tagged DMA read: true when no byte was blocked (blocked bytes read as zeros) */
  dmaLoadPasid(pasid: number, addr: bigint, out: Uint8Array): boolean {
    if (!this.busMaster() || !this.dma?.loadPasid) {
      this.dma?.blocked?.(addr, out.length, false);
      return false;
    }
    return this.dma.loadPasid(pasid, addr, out);
  }

  /** PASID-tagged DMA write: true when every byte landed */
  dmaWritePasid(pasid: number, addr: bigint, bytes: Uint8Array): boolean {
    if (!this.busMaster() || !this.dma?.writePasid) {
      this.dma?.blocked?.(addr, bytes.length, true);
      return false;
    }
    return this.dma.writePasid(pasid, addr, bytes);
  }

  /** pci_dma_write(): true when every byte landed */
  dmaWrite(addr: bigint, bytes: Uint8Array): boolean {
    if (!this.busMaster() || !this.dma) {
      this.dma?.blocked?.(addr, bytes.length, true);
      return false;
    }
    return this.dma.write(addr, bytes);
  }
}
