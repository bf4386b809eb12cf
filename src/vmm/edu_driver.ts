// A userspace driver for QEMU's edu device (hw/misc/edu.c, docs/specs/edu.rst), written only
// against the syscall API (UserProcess, TypedProcess): it runs unchanged on the twin and on
// a real kernel with the device bound to vfio-pci.
//
// Its shape is the kernel's VFIO selftests library (tools/testing/selftests/vfio/lib):
// a VfioPciDevice (struct vfio_pci_device: the device fd reached through a type1v2 container
// or through iommufd, BAR0 mapped, MSI eventfds) carries a driver (struct vfio_pci_driver: ops, a DMA region, the largest
// memcpy size and count, the MSI vector), and the ops are struct vfio_pci_driver_ops:
// probe, init, remove, memcpy_start(src, dst, size, count), memcpy_wait, send_msi.
//
// The edu engine copies only between process memory and its own 4 KiB buffer at device
// address 0x40000, one transfer at a time, each done 100 ms after it starts. A memcpy is
// therefore staged: RAM -> buffer, then buffer -> RAM, `count` times. memcpy_start() starts
// the first transfer and returns; memcpy_wait() polls the command register (sleeping, which
// lets the twin's clock run) and starts each next transfer as the previous one finishes.
// The device reports no DMA errors (an IOMMU fault just moves no byte), so memcpy_wait()
// fails only when the engine does not finish in time (-ETIMEDOUT).

import type { UserProcess } from "../backend/backend.js";
import { PROT_READ, PROT_WRITE } from "../backend/backend.js";
import { Errno, ENODEV, ETIMEDOUT } from "../uapi/errno.js";
import * as V from "../uapi/vfio.js";
import * as I from "../uapi/iommufd.js";
import { check, TypedProcess } from "./typed.js";
import { mapDma, unmapDma, vfioLegacySetup } from "./vfio_legacy.js";

export const EDU_VENDOR = 0x1234;
export const EDU_DEVICE = 0x11e8;
const REG_IDENT = 0x00;
const REG_LIVENESS = 0x04;
const REG_FACT = 0x08;
const REG_STATUS = 0x20;
const REG_IRQ_STATUS = 0x24;
const REG_IRQ_RAISE = 0x60;
const REG_IRQ_ACK = 0x64;
const REG_DMA_SRC = 0x80;
const REG_DMA_DST = 0x88;
const REG_DMA_COUNT = 0x90;
const REG_DMA_CMD = 0x98;
const STATUS_COMPUTING = 0x01;
const STATUS_IRQFACT = 0x80;
const DMA_RUN = 0x1;
const DMA_TO_RAM = 0x2;
const DMA_IRQ = 0x4;
const DMA_DONE_IRQ = 0x100;
/** the device's buffer as the DMA engine addresses it */
export const EDU_BUF_ADDR = 0x40000n;
export const EDU_BUF_SIZE = 4096;
/** the interrupt bit send_msi raises (any bit raises the MSI) */
const SEND_MSI_BIT = 0x8000;

const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const EAGAIN = 11;

/** A range of process memory mapped for the device (struct vfio_dma_region). */
export interface DmaRegion {
  readonly vaddr: number;
  readonly iova: bigint;
  readonly size: number;
  /** iommufd mode: the IOAS it is mapped in */
  readonly ioasId?: number;
}

/** struct vfio_pci_driver */
export interface VfioPciDriver {
  ops: VfioPciDriverOps | null;
  initialized: boolean;
  memcpyInProgress: boolean;
  /** memory the driver may use itself (descriptors; edu needs none but keeps it mapped) */
  region: DmaRegion | null;
  maxMemcpySize: number;
  maxMemcpyCount: number;
  /** the MSI vector send_msi() raises */
  msi: number;
}

/** struct vfio_pci_driver_ops */
export interface VfioPciDriverOps {
  readonly name: string;
  /** 0 when the driver handles the device */
  probe(dev: VfioPciDevice): number;
  init(dev: VfioPciDevice): void;
  remove(dev: VfioPciDevice): void;
  /** start `count` copies of [src, src + size) to [dst, dst + size); returns at once */
  memcpyStart(dev: VfioPciDevice, src: bigint, dst: bigint, size: number, count: number): void;
  /** wait for the copies; non-zero on error */
  memcpyWait(dev: VfioPciDevice): number;
  /** make the device send MSI `driver.msi` once */
  sendMsi(dev: VfioPciDevice): void;
}

/**
 * How the device reaches memory, named as the selftests' iommu modes: a type1v2 container
 * over the group, or iommufd (the device cdev bound to /dev/iommu, attached to an IOAS).
 */
export type IommuMode = "vfio_type1v2_iommu" | "iommufd";

/** struct vfio_pci_device: what the driver reaches the device by. */
export class VfioPciDevice {
  readonly t: TypedProcess;
  mode: IommuMode = "vfio_type1v2_iommu";
  container = -1;
  group = -1;
  fd = -1;
  /** iommufd mode: the /dev/iommu fd, the IOAS, the bound device's id, what it is attached to */
  iommufd = -1;
  ioasId = 0;
  devId = 0;
  ptId = 0;
  /** where BAR0 is mapped in the process */
  bar0 = 0;
  bar0Size = 0;
  configOffset = 0n;
  vendor = 0;
  device = 0;
  /** one eventfd per enabled MSI vector */
  readonly msiEventfds: number[] = [];
  readonly regions: DmaRegion[] = [];
  readonly driver: VfioPciDriver = {
    ops: null,
    initialized: false,
    memcpyInProgress: false,
    region: null,
    maxMemcpySize: 0,
    maxMemcpyCount: 0,
    msi: 0,
  };
  /** what memcpy_wait still has to do (edu stages each copy through its buffer) */
  pending: { src: bigint; dst: bigint; size: number; left: number; phase: "in" | "out" } | null = null;
  /** ms slept between polls of a busy engine */
  pollMs = 10;
  /** the fds belong to a VMM (vfioPciDeviceAdopt): cleanup leaves them open */
  adopted = false;

  constructor(
    readonly p: UserProcess,
    readonly bdf: string,
  ) {
    this.t = new TypedProcess(p);
  }

  // ---- MMIO through the BAR0 mapping (readl/writel) ----

  // a load or store is one 4-byte access through the process's memory calls, the value put
  // together from the bytes (a DataView over a fresh small array would move it off the JS
  // heap first: the dearest part of an access); the store's bytes live in a buffer reused
  readl(off: number): number {
    const b = this.p.read(this.bar0 + off, 4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  private readonly w4 = new Uint8Array(4);
  writel(off: number, v: number): void {
    const b = this.w4;
    b[0] = v;
    b[1] = v >>> 8;
    b[2] = v >>> 16;
    b[3] = v >>> 24;
    this.p.write(this.bar0 + off, b);
  }

  /** a 64-bit register as two 32-bit stores: low word (zero-extends), then high word */
  writeq(off: number, v: bigint): void {
    this.writel(off, Number(v & 0xffffffffn));
    if (v >> 32n) this.writel(off + 4, Number(v >> 32n));
  }

  // ---- config space through the device fd ----

  configRead(off: number, size: 1 | 2 | 4): number {
    const at = this.t.scratchAddr() + 0x800;
    check(this.p.pread(this.fd, at, size, this.configOffset + BigInt(off)), "pread(config)");
    const b = this.p.read(at, size);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + b[i]!;
    return v;
  }

  configWrite(off: number, size: 1 | 2 | 4, v: number): void {
    const b = new Uint8Array(size);
    for (let i = 0; i < size; i++) b[i] = Math.floor(v / 2 ** (8 * i)) & 0xff;
    const at = this.t.stage(b, 0x800);
    check(this.p.pwrite(this.fd, at, size, this.configOffset + BigInt(off)), "pwrite(config)");
  }

  // ---- DMA mappings ----

  /** map [vaddr, vaddr + size) at iova, read/write: VFIO_IOMMU_MAP_DMA or IOMMU_IOAS_MAP (FIXED) */
  dmaMap(vaddr: number, size: number, iova: bigint, ioasId = this.ioasId): DmaRegion {
    if (this.mode === "iommufd")
      this.t.ioctl(this.iommufd, I.IOMMU_IOAS_MAP, I.iommu_ioas_map, {
        size: I.iommu_ioas_map.size,
        flags: I.IOMMU_IOAS_MAP_FIXED_IOVA | I.IOMMU_IOAS_MAP_READABLE | I.IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: ioasId,
        user_va: BigInt(vaddr),
        length: BigInt(size),
        iova,
      });
    else mapDma(this.t, this.container, { vaddr, iova, size: BigInt(size) });
    const r = { vaddr, iova, size, ioasId };
    this.regions.push(r);
    return r;
  }

  dmaUnmap(r: DmaRegion): void {
    if (this.mode === "iommufd")
      this.t.ioctl(this.iommufd, I.IOMMU_IOAS_UNMAP, I.iommu_ioas_unmap, {
        size: I.iommu_ioas_unmap.size,
        ioas_id: r.ioasId ?? this.ioasId,
        iova: r.iova,
        length: BigInt(r.size),
      });
    else unmapDma(this.t, this.container, r.iova, BigInt(r.size));
    this.regions.splice(this.regions.indexOf(r), 1);
  }

  // ---- iommufd: IOAS and attachment ----

  /** IOMMU_IOAS_ALLOC: a new IOAS in the device's iommufd */
  ioasAlloc(): number {
    return this.t.ioctl(this.iommufd, I.IOMMU_IOAS_ALLOC, I.iommu_ioas_alloc, { size: I.iommu_ioas_alloc.size })
      .out_ioas_id;
  }

  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT: attach, or replace the attachment (returns the HWPT id) */
  attach(ptId: number): number {
    const r = this.t.ioctl(this.fd, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, V.vfio_device_attach_iommufd_pt, {
      argsz: V.vfio_device_attach_iommufd_pt.size,
      pt_id: ptId,
    });
    this.ptId = r.pt_id;
    return r.pt_id;
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT: the device's DMA is blocked until it is attached again */
  detach(): void {
    this.t.ioctl(this.fd, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, V.vfio_device_detach_iommufd_pt, {
      argsz: V.vfio_device_detach_iommufd_pt.size,
    });
    this.ptId = 0;
  }

  // ---- interrupts ----

  /** VFIO_DEVICE_SET_IRQS(MSI, EVENTFD|TRIGGER) with one new eventfd per vector */
  msiEnable(count = 1): void {
    const fds = new Uint8Array(4 * count);
    for (let i = 0; i < count; i++) {
      const e = check(this.p.eventfd(EFD_NONBLOCK | EFD_CLOEXEC), "eventfd");
      this.msiEventfds.push(e);
      new DataView(fds.buffer).setInt32(4 * i, e, true);
    }
    this.t.ioctl(
      this.fd,
      V.VFIO_DEVICE_SET_IRQS,
      V.vfio_irq_set,
      {
        argsz: V.vfio_irq_set.size + fds.length,
        flags: V.VFIO_IRQ_SET_DATA_EVENTFD | V.VFIO_IRQ_SET_ACTION_TRIGGER,
        index: V.VFIO_PCI_MSI_IRQ_INDEX,
        start: 0,
        count,
      },
      { extra: fds },
    );
  }

  msiDisable(): void {
    this.t.ioctl(this.fd, V.VFIO_DEVICE_SET_IRQS, V.vfio_irq_set, {
      argsz: V.vfio_irq_set.size,
      flags: V.VFIO_IRQ_SET_DATA_NONE | V.VFIO_IRQ_SET_ACTION_TRIGGER,
      index: V.VFIO_PCI_MSI_IRQ_INDEX,
      start: 0,
      count: 0,
    });
    for (const e of this.msiEventfds.splice(0)) this.t.close(e);
  }

  /** read(2) of the vector's eventfd: the count of interrupts since the last read (0 if none) */
  msiTake(vector: number): bigint {
    const at = this.t.scratchAddr() + 0x900;
    const rc = this.p.readFd(this.msiEventfds[vector]!, at, 8);
    if (rc === -EAGAIN) return 0n;
    check(rc, "read(eventfd)");
    return new DataView(this.p.read(at, 8).buffer).getBigUint64(0, true);
  }
}

/**
 * Bind the process to the device the way the selftests' vfio_pci_device_init() does, then
 * map BAR0. type1v2: the container/group/device steps of ./vfio_legacy.ts. iommufd: open
 * /dev/iommu and the device's cdev (found in sysfs), allocate an IOAS, BIND_IOMMUFD, attach.
 */
export function vfioPciDeviceInit(p: UserProcess, bdf: string, mode: IommuMode = "vfio_type1v2_iommu"): VfioPciDevice {
  const dev = new VfioPciDevice(p, bdf);
  dev.mode = mode;
  try {
    if (mode === "iommufd") iommufdSetup(dev);
    else {
      const s = vfioLegacySetup(p, { device: bdf });
      dev.container = s.container;
      dev.group = s.group;
      dev.fd = s.device;
    }
    probeDevice(dev);
  } catch (err) {
    closeAll(dev);
    throw err;
  }
  return dev;
}

/**
 * The device through a device fd a VMM already holds (its own container or iommufd set up
 * the IOVA space, e.g. guest RAM at IOVA = GPA): the driver reads the device's regions and
 * maps BAR0, and on cleanup leaves the VMM's fds open.
 */
export function vfioPciDeviceAdopt(p: UserProcess, bdf: string, deviceFd: number): VfioPciDevice {
  const dev = new VfioPciDevice(p, bdf);
  dev.fd = deviceFd;
  dev.adopted = true;
  probeDevice(dev);
  return dev;
}

/** VFIO_DEVICE_GET_INFO, the config region's offset, the ids, and BAR0 mapped. */
function probeDevice(dev: VfioPciDevice): void {
  const { p, t, bdf } = dev;
  const info = t.ioctl(dev.fd, V.VFIO_DEVICE_GET_INFO, V.vfio_device_info, { argsz: V.vfio_device_info.size });
  if (!(info.flags & V.VFIO_DEVICE_FLAGS_PCI)) throw new Error(`${bdf} is not a PCI device`);
  const region = (index: number) =>
    t.ioctl(dev.fd, V.VFIO_DEVICE_GET_REGION_INFO, V.vfio_region_info, { argsz: V.vfio_region_info.size, index });
  dev.configOffset = region(V.VFIO_PCI_CONFIG_REGION_INDEX).offset;
  dev.vendor = dev.configRead(0x00, 2);
  dev.device = dev.configRead(0x02, 2);
  const bar0 = region(0);
  if (bar0.size && bar0.flags & V.VFIO_REGION_INFO_FLAG_MMAP) {
    dev.bar0Size = Number(bar0.size);
    dev.bar0 = check(
      p.mmap(dev.bar0Size, { prot: PROT_READ | PROT_WRITE, fd: dev.fd, offset: bar0.offset }),
      "mmap(BAR0)",
    );
  }
}

function iommufdSetup(dev: VfioPciDevice): void {
  const { p, t, bdf } = dev;
  const names = p.readdir(`/sys/bus/pci/devices/${bdf}/vfio-dev`);
  if (typeof names === "number" || !names[0])
    throw new Errno(typeof names === "number" ? -names : ENODEV, `${bdf}: no VFIO cdev`);
  dev.iommufd = t.open("/dev/iommu");
  dev.ioasId = dev.ioasAlloc();
  dev.fd = t.open(`/dev/vfio/devices/${names[0]}`);
  dev.devId = t.ioctl(dev.fd, V.VFIO_DEVICE_BIND_IOMMUFD, V.vfio_device_bind_iommufd, {
    argsz: V.vfio_device_bind_iommufd.size,
    iommufd: dev.iommufd,
  }).out_devid;
  dev.attach(dev.ioasId);
}

/** close what is open, device first */
function closeAll(dev: VfioPciDevice): void {
  for (const fd of [dev.fd, dev.group, dev.container, dev.iommufd]) if (fd >= 0) dev.p.close(fd);
  dev.fd = dev.group = dev.container = dev.iommufd = -1;
}

export function vfioPciDeviceCleanup(dev: VfioPciDevice): void {
  if (dev.driver.initialized) dev.driver.ops?.remove(dev);
  if (dev.msiEventfds.length) dev.msiDisable();
  for (const r of [...dev.regions]) dev.dmaUnmap(r);
  if (dev.bar0) check(dev.p.munmap(dev.bar0, dev.bar0Size), "munmap(BAR0)");
  dev.bar0 = 0;
  if (!dev.adopted) closeAll(dev);
}

/** vfio_pci_driver_probe(): the first driver whose probe() takes the device */
export function vfioPciDriverProbe(dev: VfioPciDevice, drivers: readonly VfioPciDriverOps[] = [eduOps]): boolean {
  for (const ops of drivers)
    if (ops.probe(dev) === 0) {
      dev.driver.ops = ops;
      return true;
    }
  return false;
}

/** vfio_pci_driver_init(): map the driver's region and let it set up the device */
export function vfioPciDriverInit(dev: VfioPciDevice, region: DmaRegion): void {
  const d = dev.driver;
  if (!d.ops) throw new Error("no driver probed");
  d.region = region;
  d.ops.init(dev);
  d.initialized = true;
}

/** vfio_pci_driver_memcpy(): one copy, start and wait */
export function vfioPciDriverMemcpy(dev: VfioPciDevice, src: bigint, dst: bigint, size: number): number {
  const ops = dev.driver.ops!;
  ops.memcpyStart(dev, src, dst, size, 1);
  return ops.memcpyWait(dev);
}

function eduStart(dev: VfioPciDevice, src: bigint, dst: bigint, size: number, toRam: boolean): void {
  dev.writeq(REG_DMA_SRC, src);
  dev.writeq(REG_DMA_DST, dst);
  dev.writeq(REG_DMA_COUNT, BigInt(size));
  dev.writel(REG_DMA_CMD, DMA_RUN | (toRam ? DMA_TO_RAM : 0));
}

/** poll the command register until the run bit clears; false on timeout */
function eduWaitIdle(dev: VfioPciDevice, timeoutMs = 10_000): boolean {
  for (let waited = 0; dev.readl(REG_DMA_CMD) & DMA_RUN; waited += dev.pollMs) {
    if (waited >= timeoutMs) return false;
    dev.p.sleep(dev.pollMs);
  }
  return true;
}

/** The edu driver. */
export const eduOps: VfioPciDriverOps = {
  name: "edu",
  probe(dev) {
    return dev.vendor === EDU_VENDOR && dev.device === EDU_DEVICE && dev.bar0 !== 0 ? 0 : -1;
  },
  init(dev) {
    // memory decode for the registers, bus mastering for DMA and for the MSI write
    const cmd = dev.configRead(PCI_COMMAND, 2);
    dev.configWrite(PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    if (dev.readl(REG_IDENT) >>> 16 !== 0x0100) throw new Error(`edu: unexpected ident 0x${dev.readl(0).toString(16)}`);
    dev.writel(REG_LIVENESS, 0x5a5a5a5a);
    if (dev.readl(REG_LIVENESS) !== 0xa5a5a5a5) throw new Error("edu: liveness check failed");
    if (!eduWaitIdle(dev)) throw new Error("edu: DMA engine busy");
    dev.writel(REG_IRQ_ACK, dev.readl(REG_IRQ_STATUS));
    if (!dev.msiEventfds.length) dev.msiEnable(1);
    const d = dev.driver;
    d.maxMemcpySize = EDU_BUF_SIZE;
    d.maxMemcpyCount = 1 << 16;
    d.msi = 0;
  },
  remove(dev) {
    eduWaitIdle(dev);
    dev.writel(REG_IRQ_ACK, dev.readl(REG_IRQ_STATUS));
    const cmd = dev.configRead(PCI_COMMAND, 2);
    dev.configWrite(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MASTER);
    dev.driver.initialized = false;
  },
  memcpyStart(dev, src, dst, size, count) {
    const d = dev.driver;
    if (size <= 0 || size > d.maxMemcpySize || count <= 0 || count > d.maxMemcpyCount)
      throw new RangeError(`edu: memcpy of ${size} bytes x${count} (max ${d.maxMemcpySize} x${d.maxMemcpyCount})`);
    if (d.memcpyInProgress) throw new Error("edu: a memcpy is in progress");
    d.memcpyInProgress = true;
    dev.pending = { src, dst, size, left: count, phase: "in" };
    eduStart(dev, src, EDU_BUF_ADDR, size, false);
  },
  memcpyWait(dev) {
    const job = dev.pending;
    if (!job) return 0;
    try {
      for (;;) {
        if (!eduWaitIdle(dev)) return -ETIMEDOUT;
        if (job.phase === "in") {
          job.phase = "out";
          eduStart(dev, EDU_BUF_ADDR, job.dst, job.size, true);
          continue;
        }
        if (--job.left === 0) return 0;
        job.phase = "in";
        eduStart(dev, job.src, EDU_BUF_ADDR, job.size, false);
      }
    } finally {
      dev.pending = null;
      dev.driver.memcpyInProgress = false;
    }
  },
  sendMsi(dev) {
    // every write to the raise register sends the MSI; acknowledging keeps the status clean
    dev.writel(REG_IRQ_RAISE, SEND_MSI_BIT);
    dev.writel(REG_IRQ_ACK, SEND_MSI_BIT);
  },
};

/** edu-specific: n! by the device, waiting for its completion interrupt when `irq` is set. */
export function eduFactorial(dev: VfioPciDevice, n: number, irq = true): { value: number; interrupts: bigint } {
  dev.writel(REG_STATUS, irq ? STATUS_IRQFACT : 0);
  dev.writel(REG_FACT, n);
  let interrupts = 0n;
  for (let waited = 0; ; waited += dev.pollMs) {
    if (irq) interrupts += dev.msiTake(dev.driver.msi);
    if (!(dev.readl(REG_STATUS) & STATUS_COMPUTING) && (!irq || interrupts)) break;
    if (waited >= 10_000) throw new Errno(ETIMEDOUT, "edu factorial");
    dev.p.sleep(dev.pollMs);
  }
  const value = dev.readl(REG_FACT);
  if (irq) dev.writel(REG_IRQ_ACK, dev.readl(REG_IRQ_STATUS) & 0x1);
  dev.writel(REG_STATUS, 0);
  return { value, interrupts };
}

/** edu-specific: one RAM -> device -> RAM copy with the DMA completion interrupt on each leg. */
export function eduDmaWithIrq(dev: VfioPciDevice, src: bigint, dst: bigint, size: number): bigint {
  let interrupts = 0n;
  for (const [s, d, toRam] of [
    [src, EDU_BUF_ADDR, false],
    [EDU_BUF_ADDR, dst, true],
  ] as const) {
    dev.writeq(REG_DMA_SRC, s);
    dev.writeq(REG_DMA_DST, d);
    dev.writeq(REG_DMA_COUNT, BigInt(size));
    dev.writel(REG_DMA_CMD, DMA_RUN | DMA_IRQ | (toRam ? DMA_TO_RAM : 0));
    if (!eduWaitIdle(dev)) throw new Errno(ETIMEDOUT, "edu DMA");
    // the completion interrupt is raised with the transfer's end
    interrupts += dev.msiTake(dev.driver.msi);
    dev.writel(REG_IRQ_ACK, DMA_DONE_IRQ);
  }
  return interrupts;
}
