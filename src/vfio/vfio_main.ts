// The VFIO core (drivers/vfio/vfio_main.c): struct vfio_device and its registration, the
// device file (open counting, access gating, ioctl/read/write/mmap dispatch to the driver's
// vfio_device_ops), the KVM reference a device holds while open, capability-chain building
// (vfio_info_cap_add) and the SET_IRQS header check shared by drivers.
//
// Lifetimes. A VfioDevice is refcounted: the registering driver holds "registration", every
// device file holds "device file <ino>". A device file takes an open count on the device;
// the first open runs vfio_df_device_first_open (pins the driver module, uses the group's
// container, calls ops.open_device) and the last close undoes it in reverse. A device opened
// while its group has a KVM set takes a KVM reference the 6.12 way (symbol_get of
// kvm_get_kvm_safe and kvm_put_kvm) and keeps the kvm_put_kvm pin until the last close.
//
// Locks: group.groupLock -> device.devSetLock -> container.groupLock -> iommu.lock.

import { EINVAL, ENODEV, ENOTTY } from "../uapi/errno.js";
import * as V from "../uapi/vfio.js";
import type { CharDev, File, FileOperations } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import { RefCounted } from "../kernel/kref.js";
import { Mutex } from "../kernel/locks.js";
import type { Vma } from "../kernel/mm.js";
import type { Module } from "../kernel/module.js";
import type { KGen, KRet } from "../kernel/sched.js";
import { isGen } from "../kernel/sched.js";
import type { IommuDevice } from "../iommu/iommu.js";
import type { VfioGroup } from "./group.js";
import type { VfioIommuDriverOps } from "./container.js";
import { copyIn } from "./uaccess.js";
import { SideTable } from "../kernel/side_table.js";

/** struct vfio_device_ops: what a VFIO driver (vfio-pci, an mdev driver) provides. */
export interface VfioDeviceOps {
  readonly name: string;
  open_device?(vdev: VfioDevice): KRet<number>;
  close_device?(vdev: VfioDevice): void;
  ioctl?(vdev: VfioDevice, cmd: number, arg: number): KRet<number>;
  read?(vdev: VfioDevice, buf: number, count: number, pos: number): KRet<number>;
  write?(vdev: VfioDevice, buf: number, count: number, pos: number): KRet<number>;
  mmap?(vdev: VfioDevice, vma: Vma): KRet<number>;
  /** VFIO_DEVICE_FEATURE for features the core does not handle; `arg` points at the data */
  device_feature?(vdev: VfioDevice, flags: number, arg: number, argsz: number): KRet<number>;
  /** GET_DEVICE_FD name matching: 1 match, 0 no match, -errno (without it: the exact name) */
  match?(vdev: VfioDevice, buf: string): number;
}

const { VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_SET, VFIO_DEVICE_FEATURE_PROBE } = V;

/**
 * vfio_check_feature(): 0 for a successful PROBE, 1 to go on with the feature, or -EINVAL
 * when the requested GET/SET is unsupported or argsz is below `minsz`.
 */
export function vfioCheckFeature(flags: number, argsz: number, supported: number, minsz: number): number {
  if (
    (flags & VFIO_DEVICE_FEATURE_GET && !(supported & VFIO_DEVICE_FEATURE_GET)) ||
    (flags & VFIO_DEVICE_FEATURE_SET && !(supported & VFIO_DEVICE_FEATURE_SET))
  )
    return -EINVAL;
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  if (argsz < minsz) return -EINVAL;
  return 1;
}

export type KvmPut = (kvm: unknown) => void;
export type KvmGetSafe = (kvm: unknown) => boolean;

/** struct vfio_device */
export class VfioDevice extends RefCounted {
  /** the group it was registered into (vfio_device_set_group) */
  group!: VfioGroup;
  openCount = 0;
  /** the KVM pointer drivers see while open (device->kvm) */
  kvm: unknown = null;
  putKvm: KvmPut | null = null;
  /** registration is live (vfio_device_try_get_registration succeeds) */
  registered = false;
  readonly devSetLock: Mutex;
  /** the driver-private object (vfio_pci_core_device, an mdev state) */
  priv: unknown = null;
  /** vfio_device_cdev_opened(): opened through its cdev (set by the device-cdev code) */
  cdevOpened = false;
  /** the cdev index N of /dev/vfio/devices/vfioN (-1 without a cdev) */
  cdevIndex = -1;

  constructor(
    k: Kernel,
    /** dev_name(): the BDF for PCI */
    readonly name: string,
    readonly ops: VfioDeviceOps,
    /** dev->driver->owner: pinned while the device is open */
    readonly driverModule: Module | null,
    /** the device's IOMMU side; null for emulated (mdev) devices */
    readonly iommuDev: IommuDevice | null,
  ) {
    super(k, "vfio_device");
    this.devSetLock = new Mutex(k, "vfio_device_set.lock", `dev_set lock of ${name}`);
  }

  protected override poisonable(): boolean {
    return true;
  }

  describe(): string {
    return `vfio_device ${this.name}`;
  }

  protected release(): void {}
}

/** struct vfio_device_file: the private data of one open device file. */
export class VfioDeviceFile {
  accessGranted = false;
  /** set for files made by GET_DEVICE_FD; null for the cdev path */
  group: VfioGroup | null;
  /** the cdev path's iommufd context (used by the cdev code) */
  iommufd: unknown = null;
  /** cdev path: the kvm recorded by vfio_file_set_kvm before BIND */
  kvm: unknown = null;
  constructor(
    readonly device: VfioDevice,
    group: VfioGroup | null,
  ) {
    this.group = group;
  }
}

/** Hooks the device-cdev code (another file) installs to serve cdev-only ioctls. */
export interface VfioCdevHooks {
  /** vfio_device_fops_cdev_open(): the open of /dev/vfio/devices/vfioN */
  open?(f: File, dev: CharDev): KRet<number>;
  bindIommufd(df: VfioDeviceFile, arg: number): KRet<number>;
  ioctl(df: VfioDeviceFile, cmd: number, arg: number): KRet<number> | null;
  release(df: VfioDeviceFile): KRet<void>;
}

/**
 * Hooks the iommufd side of VFIO (drivers/vfio/iommufd.c, the iommufd helper's) installs:
 * SET_CONTAINER with an iommufd fd, and its undo.
 */
export interface VfioIommufdHooks {
  /** iommufd_ctx_from_file(): the context, or null when f is no iommufd */
  ctxFromFile(f: File): unknown | null;
  /** iommufd_vfio_compat_ioas_create() + group->iommufd = ictx; 0 or -errno */
  groupSetIommufd(g: VfioGroup, ictx: unknown): KRet<number>;
  /** iommufd_ctx_put(group->iommufd); group->iommufd = NULL */
  groupUnsetIommufd(g: VfioGroup): void;
  /** vfio_df_iommufd_bind() for a device opened through a group set to an iommufd: 0 or -errno */
  deviceBind(vdev: VfioDevice, ictx: unknown): number;
  /** vfio_df_iommufd_unbind() */
  deviceUnbind(vdev: VfioDevice): KRet<void>;
  /** vfio_iommufd_compat_attach_ioas(): attach to the compat IOAS; 0 or -errno */
  compatAttachIoas(vdev: VfioDevice, ictx: unknown): KRet<number>;
}

const cores = new SideTable<Kernel, VfioCore>();

/** The vfio module's global state (struct vfio in vfio_main.c and container.c). */
export class VfioCore {
  readonly iommuDrivers: VfioIommuDriverOps[] = [];
  readonly groups = new Map<number, VfioGroup>();
  readonly devices: VfioDevice[] = [];
  readonly deviceFops: FileOperations;
  cdevHooks: VfioCdevHooks | null = null;
  iommufdHooks: VfioIommufdHooks | null = null;
  /** cdev minors in use (vfio_device_ida: the lowest free one is taken) */
  private readonly cdevUsed = new Set<number>();

  constructor(
    readonly k: Kernel,
    readonly module: Module,
  ) {
    this.deviceFops = makeDeviceFops(this);
  }

  static of(k: Kernel): VfioCore | null {
    return cores.get(k) ?? null;
  }

  static install(k: Kernel, c: VfioCore | null): void {
    if (c) cores.set(k, c);
    else cores.delete(k);
  }

  allocCdevIndex(): number {
    let n = 0;
    while (this.cdevUsed.has(n)) n++;
    this.cdevUsed.add(n);
    return n;
  }

  freeCdevIndex(n: number): void {
    this.cdevUsed.delete(n);
  }

  /** The VfioDeviceFile behind a file, or null if it is not a VFIO device file. */
  deviceFileOf(f: File): VfioDeviceFile | null {
    return f.fops === this.deviceFops ? (f.privateData as VfioDeviceFile) : null;
  }
}

/** A KRet as a generator, for `yield*` (a plain value is returned at once). */
export function runK<T>(r: KRet<T>): KGen<T> {
  return isGen(r) ? r : value(r);
}

// eslint-disable-next-line require-yield
function* value<T>(v: T): KGen<T> {
  return v;
}

/** vfio_device_get_kvm_safe(): drivers/vfio/vfio_main.c. */
export function vfioDeviceGetKvmSafe(vdev: VfioDevice, kvm: unknown): void {
  if (kvm === null || kvm === undefined) return;
  const mods = vdev.k.modules;
  const pfn = mods.symbolGet<KvmPut>("kvm_put_kvm");
  if (!pfn) return;
  const fn = mods.symbolGet<KvmGetSafe>("kvm_get_kvm_safe");
  if (!fn) {
    mods.symbolPut("kvm_put_kvm");
    return;
  }
  const ok = fn(kvm);
  mods.symbolPut("kvm_get_kvm_safe");
  if (!ok) {
    mods.symbolPut("kvm_put_kvm");
    return;
  }
  vdev.putKvm = pfn;
  vdev.kvm = kvm;
}

/** vfio_device_put_kvm() */
export function vfioDevicePutKvm(vdev: VfioDevice): void {
  if (vdev.kvm === null) return;
  if (vdev.putKvm) {
    vdev.putKvm(vdev.kvm);
    vdev.putKvm = null;
    vdev.k.modules.symbolPut("kvm_put_kvm");
  }
  vdev.kvm = null;
}

/** vfio_df_device_first_open() */
function* firstOpen(df: VfioDeviceFile, useIommu: () => KRet<number>, unuseIommu: () => KRet<void>): KGen<number> {
  const vdev = df.device;
  const mods = vdev.k.modules;
  if (!mods.tryGet(vdev.driverModule, `vfio device ${vdev.name} open`)) return -ENODEV;
  let rc = yield* runK(useIommu());
  if (rc < 0) {
    mods.put(vdev.driverModule, `vfio device ${vdev.name} open`);
    return rc;
  }
  if (vdev.ops.open_device) {
    rc = yield* runK(vdev.ops.open_device(vdev));
    if (rc < 0) {
      yield* runK(unuseIommu());
      mods.put(vdev.driverModule, `vfio device ${vdev.name} open`);
      return rc;
    }
  }
  return 0;
}

/** vfio_df_open(): the open counting (group path may open a device several times). */
export function* vfioDfOpen(
  df: VfioDeviceFile,
  useIommu: () => KRet<number>,
  unuseIommu: () => KRet<void>,
): KGen<number> {
  const vdev = df.device;
  if (vdev.openCount !== 0 && !df.group) return -EINVAL;
  vdev.openCount++;
  if (vdev.openCount === 1) {
    const rc = yield* firstOpen(df, useIommu, unuseIommu);
    if (rc < 0) vdev.openCount--;
    return rc;
  }
  return 0;
}

/** vfio_df_close() */
export function* vfioDfClose(df: VfioDeviceFile, unuseIommu: () => KRet<void>): KGen<void> {
  const vdev = df.device;
  if (vdev.openCount === 0) throw vdev.k.bug("vfio", `close of ${vdev.describe()} that is not open`);
  if (vdev.openCount === 1) {
    vdev.ops.close_device?.(vdev);
    yield* runK(unuseIommu());
    vdev.k.modules.put(vdev.driverModule, `vfio device ${vdev.name} open`);
  }
  vdev.openCount--;
}

function makeDeviceFops(core: VfioCore): FileOperations {
  const df = (f: File) => f.privateData as VfioDeviceFile;
  return {
    owner: core.module,
    name: "vfio-device",
    // the cdev node's open (device files made by GET_DEVICE_FD are never opened)
    open(f, dev) {
      return core.cdevHooks?.open ? core.cdevHooks.open(f, dev) : -ENODEV;
    },
    // drivers/vfio/vfio_main.c: vfio_device_fops_release()
    *release(f) {
      const d = df(f);
      if (d.group) yield* d.group.dfGroupClose(d);
      else if (core.cdevHooks) yield* runK(core.cdevHooks.release(d));
      d.device.put(`device file ${f.ino}`);
    },
    // vfio_device_fops_unl_ioctl()
    unlocked_ioctl(f, cmd, arg) {
      const d = df(f);
      if (cmd === V.VFIO_DEVICE_BIND_IOMMUFD) {
        if (d.group) {
          // vfio_df_ioctl_bind_iommufd(): the struct is copied in (EFAULT) before the
          // "BIND_IOMMUFD only for cdev fds" check (EINVAL)
          const b = copyIn(d.device.k, arg, V.vfio_device_bind_iommufd.size);
          return typeof b === "number" ? b : -EINVAL;
        }
        if (!core.cdevHooks) return -EINVAL;
        return core.cdevHooks.bindIommufd(d, arg);
      }
      if (!d.accessGranted) return -EINVAL;
      if (!d.group && core.cdevHooks) {
        const r = core.cdevHooks.ioctl(d, cmd, arg);
        if (r !== null) return r;
      }
      if (cmd === V.VFIO_DEVICE_FEATURE) return vfioIoctlDeviceFeature(d.device, arg);
      const ops = d.device.ops;
      return ops.ioctl ? ops.ioctl(d.device, cmd, arg) : -EINVAL;
    },
    read(f, buf, count, pos) {
      const d = df(f);
      if (!d.accessGranted) return -EINVAL;
      return d.device.ops.read ? d.device.ops.read(d.device, buf, count, pos) : -EINVAL;
    },
    write(f, buf, count, pos) {
      const d = df(f);
      if (!d.accessGranted) return -EINVAL;
      return d.device.ops.write ? d.device.ops.write(d.device, buf, count, pos) : -EINVAL;
    },
    mmap(f, vma) {
      const d = df(f);
      if (!d.accessGranted) return -EINVAL;
      return d.device.ops.mmap ? d.device.ops.mmap(d.device, vma) : -EINVAL;
    },
  };
}

/**
 * vfio_ioctl_device_feature(): the header rules, then the core's features (migration and
 * DMA logging: ENOTTY, the modelled devices have neither mig_ops nor log_ops), then the
 * driver's device_feature (EINVAL without one).
 */
function vfioIoctlDeviceFeature(vdev: VfioDevice, arg: number): KRet<number> {
  const hdr = copyIn(vdev.k, arg, 8);
  if (typeof hdr === "number") return hdr;
  const dv = new DataView(hdr.buffer);
  const argsz = dv.getUint32(0, true);
  const flags = dv.getUint32(4, true);
  if (argsz < 8) return -EINVAL;
  if (
    flags & ~(VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE)
  )
    return -EINVAL;
  if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && flags & VFIO_DEVICE_FEATURE_SET && flags & VFIO_DEVICE_FEATURE_GET)
    return -EINVAL;
  switch (flags & VFIO_DEVICE_FEATURE_MASK) {
    case V.VFIO_DEVICE_FEATURE_MIGRATION:
    case V.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
    case V.VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
    case V.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
    case V.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
    case V.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
      return -ENOTTY;
    default:
      if (!vdev.ops.device_feature) return -EINVAL;
      return vdev.ops.device_feature(vdev, flags, arg + 8, argsz - 8);
  }
}

/** struct vfio_info_cap: builds a capability chain as vfio_info_cap_add() does. */
/** the empty chain every VfioInfoCap starts with (never written: add() makes a new buffer) */
const NO_CAPS = new Uint8Array(0);

export class VfioInfoCap {
  buf = NO_CAPS;

  get size(): number {
    return this.buf.length;
  }

  /** Append a capability whose body (after the 8-byte header) is `body`. */
  add(id: number, version: number, body: Uint8Array): void {
    const size = Math.ceil((8 + body.length) / 8) * 8;
    const nb = new Uint8Array(this.buf.length + size);
    nb.set(this.buf);
    const off = this.buf.length;
    const dv = new DataView(nb.buffer);
    dv.setUint16(off, id, true);
    dv.setUint16(off + 2, version, true);
    nb.set(body, off + 8);
    // link: the last header's next points at the new one (offsets relative to buf for now)
    if (off > 0) {
      let t = 0;
      while (dv.getUint32(t + 4, true) !== 0) t = dv.getUint32(t + 4, true);
      dv.setUint32(t + 4, off, true);
    }
    this.buf = nb;
  }

  /** vfio_info_cap_shift(): make every next offset relative to the start of the user struct. */
  shift(offset: number): void {
    const dv = new DataView(this.buf.buffer);
    let t = 0;
    while (this.buf.length && dv.getUint32(t + 4, true) !== 0) {
      const next = dv.getUint32(t + 4, true);
      dv.setUint32(t + 4, next + offset, true);
      t = next;
    }
  }
}

/** vfio_set_irqs_validate_and_prepare(): the data size, or -EINVAL. */
export function vfioSetIrqsValidate(
  hdr: { argsz: number; flags: number; index: number; start: number; count: number },
  numIrqs: number,
  maxIrqType: number,
): number {
  const minsz = V.vfio_irq_set.offsetOfEnd("count");
  if (
    hdr.argsz < minsz ||
    hdr.index >= maxIrqType ||
    hdr.count >= 0xffffffff - hdr.start ||
    hdr.flags & ~(V.VFIO_IRQ_SET_DATA_TYPE_MASK | V.VFIO_IRQ_SET_ACTION_TYPE_MASK)
  )
    return -EINVAL;
  if (hdr.start >= numIrqs || hdr.start + hdr.count > numIrqs) return -EINVAL;
  let size: number;
  switch (hdr.flags & V.VFIO_IRQ_SET_DATA_TYPE_MASK) {
    case V.VFIO_IRQ_SET_DATA_NONE:
      size = 0;
      break;
    case V.VFIO_IRQ_SET_DATA_BOOL:
      size = 1;
      break;
    case V.VFIO_IRQ_SET_DATA_EVENTFD:
      size = 4;
      break;
    default:
      return -EINVAL;
  }
  if (size && hdr.argsz - minsz < hdr.count * size) return -EINVAL;
  return hdr.count * size;
}
