// The hardware side of a PCI function, as QEMU models it (hw/pci/pci.c): a config space, BARs
// reached by MMIO, a DMA port through which the device reads and writes "memory" by bus
// address, and interrupt lines. The device knows nothing of the IOMMU or of VFIO: the
// platform (src/iommu) decides what a bus address reaches, and the driver that owns the
// device (vfio-pci in src/vfio) sees the interrupts.
//
// Bus addresses (IOVAs) are bigint: they reach 2^64-1.

/** Where the device's DMA goes. Implemented by the IOMMU core for the device's group. */
export interface DmaPort {
  /** bytes at `addr`, or null when the IOMMU blocks the access (a fault is recorded) */
  read(addr: bigint, len: number): Uint8Array | null;
  /** true when every byte was written; on a fault no byte changes */
  write(addr: bigint, bytes: Uint8Array): boolean;
}

/** Where the device's interrupts go. Implemented by the owning driver (vfio-pci). */
export interface IrqSink {
  /** an MSI message for vector n (the device wrote its MSI address/data) */
  msi(vector: number): void;
  /** the INTx line's level */
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
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_STATUS_INTERRUPT = 0x8;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;

/** A PCI function's hardware. Subclasses implement their registers. */
export abstract class PciDevice {
  /** raw config space as the device holds it (the driver may virtualize on top) */
  readonly config = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  dma: DmaPort | null = null;
  irq: IrqSink | null = null;

  constructor(
    readonly bdf: string,
    readonly vendor: number,
    readonly device: number,
  ) {
    const dv = this.cfg;
    dv.setUint16(PCI_VENDOR_ID, vendor, true);
    dv.setUint16(PCI_DEVICE_ID, device, true);
  }

  get cfg(): DataView {
    return new DataView(this.config.buffer);
  }

  /** BARs 0-5 (null where absent). */
  abstract readonly bars: readonly (BarInfo | null)[];
  /** an MMIO load of `size` bytes (1, 2, 4 or 8) at `off` into BAR `bar` */
  abstract mmioRead(bar: number, off: number, size: number): bigint;
  abstract mmioWrite(bar: number, off: number, size: number, value: bigint): void;
  /** the device has a reset method (FLR, PM reset, ...); vfio-pci reports RESET from it */
  get canReset(): boolean {
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

  /** DMA as the device issues it: nothing leaves a device without bus mastering. */
  dmaRead(addr: bigint, len: number): Uint8Array | null {
    if (!this.busMaster() || !this.dma) return null;
    return this.dma.read(addr, len);
  }

  dmaWrite(addr: bigint, bytes: Uint8Array): boolean {
    if (!this.busMaster() || !this.dma) return false;
    return this.dma.write(addr, bytes);
  }
}
