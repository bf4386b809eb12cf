// struct vfio_group and the group file /dev/vfio/<n> (drivers/vfio/group.c).
//
// A group exists while at least one VFIO driver has a device of the IOMMU group registered
// (holders "device <name>"); its node appears with the first and goes with the last. The
// file is single-open (EBUSY), and holds "group file" while open. Setting a container makes
// the group a container user (container_users = 1) and claims DMA ownership of the IOMMU
// group; each device's first open adds a user and pins the group file (vfio_group_use_container),
// which is why UNSET_CONTAINER with an open device is EBUSY and why closing the group fd
// before the device fd leaves the group attached until the device goes.
//
// Fields guarded by groupLock: container, containerUsers, openedFile, kvm (kvm_ref_lock in
// the kernel), devices (device_lock).

import { shouldFail } from "../kernel/fail_nth.js";
import { EBADF, EBADFD, EBUSY, EFAULT, EINVAL, ENODEV, ENOMEM, ENOTTY, EPERM } from "../uapi/errno.js";
import * as V from "../uapi/vfio.js";
import type { CharDev, File, FileOperations } from "../kernel/fs.js";
import { RefCounted } from "../kernel/kref.js";
import { Mutex, SpinLock } from "../kernel/locks.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import type { KGen } from "../kernel/sched.js";
import { installFile } from "../kernel/syscalls.js";
import { IommuCore, type IommuGroup } from "../iommu/iommu.js";
import {
  containerFromFile,
  type VfioContainer,
  vfioContainerAttachGroup,
  vfioGroupDetachContainer,
} from "./container.js";
import { curMm, curProc, fdget, getUserS32, strndupUser, userIn, userOff, userOut, userOutEnd } from "./uaccess.js";
import {
  type VfioCore,
  type VfioDevice,
  VfioDeviceFile,
  vfioDeviceGetKvmSafe,
  vfioDevicePutKvm,
  vfioDfClose,
  vfioDfOpen,
  runK,
} from "./vfio_main.js";
import { SideTable } from "../kernel/side_table.js";

/** enum vfio_group_type */
export type VfioGroupType = "iommu" | "emulated" | "noiommu";

export class VfioGroup extends RefCounted {
  readonly devices: VfioDevice[] = [];
  container: VfioContainer | null = null;
  containerUsers = 0;
  /** the iommufd a group was attached to with SET_CONTAINER(iommufd) (the iommufd helper's) */
  iommufd: unknown = null;
  openedFile: File | null = null;
  kvm: unknown = null;
  /** cdev device files open on devices of this group (group open is then EBUSY) */
  cdevDeviceOpenCnt = 0;
  readonly groupLock: Mutex;
  /** group->kvm_ref_lock: guards kvm (a spinlock: set_kvm runs under kvm->lock) */
  readonly kvmRefLock: SpinLock;
  /** group->device_lock: guards devices (the lookup of GET_DEVICE_FD, unregister) */
  readonly deviceLock: Mutex;
  readonly path: string;
  readonly fops: FileOperations;

  constructor(
    readonly core: VfioCore,
    /** null once the last device was removed (vfio_device_remove_group) */
    public iommuGroup: IommuGroup | null,
    readonly id: number,
    readonly type: VfioGroupType,
  ) {
    super(core.k, "vfio_group");
    this.groupLock = new Mutex(core.k, "vfio_group.group_lock", `group_lock of group ${id}`);
    this.kvmRefLock = new SpinLock(core.k, "vfio_group.kvm_ref_lock", `kvm_ref_lock of group ${id}`);
    this.deviceLock = new Mutex(core.k, "vfio_group.device_lock", `device_lock of group ${id}`);
    this.path = `/dev/vfio/${type === "noiommu" ? "noiommu-" : ""}${id}`;
    this.fops = groupFops(core);
  }

  protected override poisonable(): boolean {
    return true;
  }

  describe(): string {
    return `vfio_group ${this.id}`;
  }

  protected release(): void {
    if (this.core.groups.get(this.id) === this) this.core.groups.delete(this.id);
  }

  /** vfio_group_has_iommu() */
  hasIommu(): boolean {
    return this.container !== null || this.iommufd !== null;
  }

  /** vfio_device_group_use_iommu() -> vfio_group_use_container() */
  useContainer(): number {
    const c = this.container;
    if (!c) return -EINVAL;
    if (!c.iommuDriver) return -EINVAL;
    if (this.type === "noiommu") return -EPERM;
    this.openedFile!.get("vfio device use of group");
    this.containerUsers++;
    return 0;
  }

  /** files whose fput waits until the locks are dropped (the kernel's fput defers to task work) */
  private deferredFput: File[] = [];

  /** vfio_group_unuse_container(): the group file reference is dropped by flushFput() */
  unuseContainer(): void {
    this.containerUsers--;
    this.deferredFput.push(this.openedFile!);
  }

  /** Run the deferred fputs (call with no lock held: the last one releases the group file). */
  flushFput(): void {
    for (const f of this.deferredFput.splice(0)) f.put("vfio device use of group");
  }

  /** vfio_df_group_open(): drivers/vfio/group.c */
  *dfGroupOpen(df: VfioDeviceFile): KGen<number> {
    const vdev = df.device;
    yield* this.groupLock.lock();
    try {
      if (!this.hasIommu()) return -EINVAL;
      yield* vdev.devSetLock.lock();
      try {
        if (vdev.openCount === 0) vfioDeviceGetKvmSafe(vdev, this.kvm);
        // a group attached to an iommufd binds the device to it (drivers/vfio/iommufd.c)
        const hooks = this.core.iommufdHooks;
        df.iommufd = this.iommufd;
        const ictx = this.iommufd;
        const rc =
          ictx !== null && hooks
            ? yield* vfioDfOpen(
                df,
                () => hooks.deviceBind(vdev, ictx),
                () => hooks.deviceUnbind(vdev),
              )
            : yield* vfioDfOpen(
                df,
                () => this.useContainer(),
                () => this.unuseContainer(),
              );
        if (rc >= 0 && ictx !== null && hooks && vdev.openCount === 1) {
          // vfio_iommufd_compat_attach_ioas()
          const arc = yield* runK(hooks.compatAttachIoas(vdev, ictx));
          if (arc < 0) {
            yield* vfioDfClose(df, () => hooks.deviceUnbind(vdev));
            df.iommufd = null;
            vfioDevicePutKvm(vdev); // open_count is back to 0
            return arc;
          }
        }
        if (rc < 0) {
          df.iommufd = null;
          if (vdev.openCount === 0) vfioDevicePutKvm(vdev);
          return rc;
        }
        df.accessGranted = true;
        return 0;
      } finally {
        vdev.devSetLock.unlock();
      }
    } finally {
      this.groupLock.unlock();
      this.flushFput();
    }
  }

  /** vfio_df_group_close() */
  *dfGroupClose(df: VfioDeviceFile): KGen<void> {
    const vdev = df.device;
    yield* this.groupLock.lock();
    yield* vdev.devSetLock.lock();
    const hooks = this.core.iommufdHooks;
    yield* vfioDfClose(df, () => (df.iommufd !== null && hooks ? hooks.deviceUnbind(vdev) : this.unuseContainer()));
    df.iommufd = null;
    if (vdev.openCount === 0) vfioDevicePutKvm(vdev);
    vdev.devSetLock.unlock();
    this.groupLock.unlock();
    this.flushFput();
  }

  /** vfio_group_enforced_coherent() */
  enforcedCoherent(): boolean {
    return this.devices.every((d) => d.iommuDev === null || d.iommuDev.capable("cache-coherency"));
  }
}

/** The VfioGroup behind a group file, or null. */
export function groupFromFile(f: File): VfioGroup | null {
  return (f.fops as { vfioGroupFops?: boolean }).vfioGroupFops ? (f.privateData as VfioGroup) : null;
}

const fopsByCore = new SideTable<VfioCore, FileOperations>();

function groupFops(core: VfioCore): FileOperations {
  let f = fopsByCore.get(core);
  if (!f) fopsByCore.set(core, (f = makeGroupFops(core)));
  return f;
}

function makeGroupFops(core: VfioCore): FileOperations {
  const fops: FileOperations & { vfioGroupFops: true } = {
    vfioGroupFops: true,
    owner: core.module,
    name: "vfio-group",
    // vfio_group_fops_open()
    *open(f: File, dev: CharDev) {
      const g = dev.data as VfioGroup;
      yield* g.groupLock.lock();
      try {
        if (g.devices.length === 0 || g.dead) return -ENODEV;
        if (g.type === "noiommu") return -EPERM;
        if (g.cdevDeviceOpenCnt) return -EBUSY;
        if (g.openedFile) return -EBUSY;
        g.openedFile = f;
        f.privateData = g;
        g.get("group file");
        return 0;
      } finally {
        g.groupLock.unlock();
      }
    },
    // vfio_group_fops_release()
    *release(f: File) {
      const g = f.privateData as VfioGroup;
      f.privateData = null;
      yield* g.groupLock.lock();
      if (g.container) yield* vfioGroupDetachContainer(g);
      if (g.iommufd !== null) g.core.iommufdHooks?.groupUnsetIommufd(g);
      g.openedFile = null;
      g.groupLock.unlock();
      g.put("group file");
    },
    unlocked_ioctl(f: File, cmd: number, arg: number) {
      const g = f.privateData as VfioGroup;
      switch (cmd) {
        case V.VFIO_GROUP_GET_DEVICE_FD:
          return getDeviceFd(g, arg);
        case V.VFIO_GROUP_GET_STATUS:
          return getStatus(g, arg);
        case V.VFIO_GROUP_SET_CONTAINER:
          return setContainer(g, arg);
        case V.VFIO_GROUP_UNSET_CONTAINER:
          return unsetContainer(g);
        default:
          return -ENOTTY;
      }
    },
  };
  return fops;
}

const GROUP_STATUS_MINSZ = V.vfio_group_status.offsetOfEnd("flags");
const GS_ARGSZ = V.vfio_group_status.offsetOf("argsz");
const GS_FLAGS = V.vfio_group_status.offsetOf("flags");

/** vfio_group_ioctl_get_status(): the struct read and written in place (userIn/userOut) */
function* getStatus(g: VfioGroup, arg: number): KGen<number> {
  const minsz = GROUP_STATUS_MINSZ;
  const mm = curMm(g.k);
  const u = userIn(mm, arg, minsz);
  if (u === null) return -EFAULT;
  const o = userOff(arg);
  const argsz = u.getUint32(o + GS_ARGSZ, true);
  if (argsz < minsz) return -EINVAL;
  let flags = 0;
  yield* g.groupLock.lock();
  if (!g.iommuGroup && g.type === "iommu") {
    g.groupLock.unlock();
    return -ENODEV;
  }
  if (g.hasIommu()) flags |= V.VFIO_GROUP_FLAGS_CONTAINER_SET | V.VFIO_GROUP_FLAGS_VIABLE;
  else if (!g.iommuGroup || !g.iommuGroup.dmaOwnerClaimed()) flags |= V.VFIO_GROUP_FLAGS_VIABLE;
  g.groupLock.unlock();
  const w = userOut(mm, arg, minsz);
  w.setUint32(o + GS_ARGSZ, argsz, true);
  w.setUint32(o + GS_FLAGS, flags, true);
  return userOutEnd(mm, w, arg, minsz);
}

/** vfio_group_ioctl_set_container() */
function* setContainer(g: VfioGroup, arg: number): KGen<number> {
  const fd = getUserS32(g.k, arg);
  if (typeof fd !== "number") return fd.err;
  const f = fdget(g.k, fd);
  if (!f) return -EBADF;
  f.get();
  yield* g.groupLock.lock();
  try {
    if (g.hasIommu()) return -EINVAL;
    if (!g.iommuGroup && g.type === "iommu") return -ENODEV;
    const c = containerFromFile(f);
    if (c) return yield* vfioContainerAttachGroup(c, g);
    const hooks = g.core.iommufdHooks;
    const ictx = hooks ? hooks.ctxFromFile(f) : null;
    if (hooks && ictx !== null) return yield* runK(hooks.groupSetIommufd(g, ictx));
    return -EBADFD;
  } finally {
    g.groupLock.unlock();
    f.put();
  }
}

/** vfio_group_ioctl_unset_container() */
function* unsetContainer(g: VfioGroup): KGen<number> {
  yield* g.groupLock.lock();
  try {
    if (!g.hasIommu()) return -EINVAL;
    if (g.container) {
      if (g.containerUsers !== 1) return -EBUSY;
      yield* vfioGroupDetachContainer(g);
    }
    if (g.iommufd !== null) g.core.iommufdHooks?.groupUnsetIommufd(g);
    return 0;
  } finally {
    g.groupLock.unlock();
  }
}

/** vfio_group_ioctl_get_device_fd() */
function* getDeviceFd(g: VfioGroup, arg: number): KGen<number> {
  const name = strndupUser(g.k, arg, PAGE_SIZE);
  if (typeof name === "number") return name;
  // vfio_device_get_from_name(): under device_lock, the driver's match() when it has one (a
  // -errno ends the search), else the exact device name; a registered device is taken
  // (vfio_device_try_get_registration)
  let vdev: VfioDevice | null = null;
  let m = 0;
  yield* g.deviceLock.lock();
  for (const d of g.devices) {
    m = d.ops.match ? d.ops.match(d, name) : d.name === name ? 1 : 0;
    if (m < 0) break;
    if (m > 0 && d.registered) {
      vdev = d;
      vdev.get("getting device fd");
      break;
    }
  }
  g.deviceLock.unlock();
  if (m < 0) return m;
  if (!vdev) return -ENODEV;
  const proc = curProc(g.k);
  if (!proc) return -EBADF; // no file table to install into
  if (shouldFail()) {
    // vfio_allocate_device_file(): kzalloc of the vfio_device_file (vfio_main.c:501)
    vdev.put("getting device fd");
    return -ENOMEM;
  }
  const df = new VfioDeviceFile(vdev, g);
  const rc = yield* g.dfGroupOpen(df);
  if (rc < 0) {
    vdev.put("getting device fd");
    return rc;
  }
  // anon_inode_getfile() (group.c:274): the struct file's allocation may fail
  const f = shouldFail() ? -ENOMEM : g.k.allocFile(g.core.deviceFops, "anon_inode:[vfio-device]", 2);
  if (typeof f === "number") {
    yield* g.dfGroupClose(df);
    vdev.put("getting device fd");
    return f;
  }
  f.privateData = df;
  vdev.handOver("getting device fd", `device file ${f.ino}`);
  return installFile(proc, f);
}

/**
 * vfio_register_group_dev() / vfio_register_emulated_iommu_dev(): put a device into the
 * VFIO group of its IOMMU group (made, with its /dev/vfio node, for the first device).
 * Emulated devices (mdev) get a group of their own, with a fresh IOMMU group id.
 */
export function vfioRegisterGroupDev(core: VfioCore, vdev: VfioDevice, type: VfioGroupType): number {
  const icore = IommuCore.of(core.k);
  let ig: IommuGroup;
  if (type === "iommu") {
    if (!vdev.iommuDev) return -EINVAL;
    ig = vdev.iommuDev.group;
  } else ig = icore.allocGroup();
  let g = type === "iommu" ? core.groups.get(ig.id) : undefined;
  if (g && g.devices.includes(vdev)) return -EINVAL;
  if (!g) {
    g = new VfioGroup(core, ig, ig.id, type);
    core.groups.set(ig.id, g);
    g.handOver("init", `device ${vdev.name}`);
    core.k.devices.register(g.path, g.fops, g);
  } else g.get(`device ${vdev.name}`);
  g.devices.push(vdev);
  vdev.group = g;
  vdev.registered = true;
  vdev.handOver("init", "registration");
  core.devices.push(vdev);
  return 0;
}

/**
 * vfio_unregister_group_dev() + vfio_device_remove_group(): the device stops being found
 * (unlinked under device_lock), then the unregister waits until its users are gone (every
 * device file closed), as Linux does; `wait: false` for a module exit, which the twin runs
 * to completion at once (rmmod with a device file still open would hang in Linux: the twin
 * unlinks and leaves the file holding an unregistered device).
 */
export function* vfioUnregisterGroupDev(core: VfioCore, vdev: VfioDevice, wait = true): KGen<void> {
  const g = vdev.group;
  if (core.k.broken.has("device-put-outside-list-lock")) {
    yield* unregisterPutOutsideLock(core, vdev);
    return;
  }
  yield* g.deviceLock.lock();
  vdev.registered = false;
  g.devices.splice(g.devices.indexOf(vdev), 1);
  g.deviceLock.unlock();
  core.devices.splice(core.devices.indexOf(vdev), 1);
  if (wait) yield* waitForUsers(vdev);
  yield* removeGroupIfLast(core, g);
  g.put(`device ${vdev.name}`);
  vdev.put("registration");
}

/** wait_for_completion(&device->comp): until only the registration holds the device */
function* waitForUsers(vdev: VfioDevice): KGen<void> {
  const usersGone = { name: `users of ${vdev.describe()}`, available: () => vdev.refs === 1 };
  while (vdev.refs > 1) yield { kind: "block", on: usersGone, where: "vfio_unregister_group_dev: wait for users" };
}

/**
 * Broken variant "device-put-outside-list-lock" (fixed by 90b1253e4139): the last reference
 * is dropped without device_lock, and the release then takes device_lock to unlink the
 * device: meanwhile a lookup under device_lock finds the freed device.
 */
function* unregisterPutOutsideLock(core: VfioCore, vdev: VfioDevice): KGen<void> {
  const g = vdev.group;
  core.devices.splice(core.devices.indexOf(vdev), 1);
  yield* waitForUsers(vdev);
  vdev.put("registration"); // the last reference: vfio_device_release() runs
  yield { kind: "preempt", where: "vfio_device_release: before mutex_lock(device_lock)" };
  yield* g.deviceLock.lock();
  g.devices.splice(g.devices.indexOf(vdev), 1);
  g.deviceLock.unlock();
  yield* removeGroupIfLast(core, g);
  g.put(`device ${vdev.name}`);
}

function* removeGroupIfLast(core: VfioCore, g: VfioGroup): KGen<void> {
  if (g.devices.length === 0) {
    core.k.devices.unregister(g.path);
    yield* g.groupLock.lock();
    if (g.container) yield* vfioGroupDetachContainer(g);
    if (g.type !== "iommu" && g.iommuGroup) g.iommuGroup.core.groups.delete(g.iommuGroup.id);
    g.iommuGroup = null;
    g.groupLock.unlock();
    if (core.groups.get(g.id) === g) core.groups.delete(g.id);
  }
}
