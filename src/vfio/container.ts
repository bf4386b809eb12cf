// The legacy VFIO container /dev/vfio/vfio (drivers/vfio/container.c) and the IOMMU backend
// interface (struct vfio_iommu_driver_ops) that vfio_iommu_type1 registers into.
//
// A container is refcounted: its file holds "container file", each attached group holds
// "group <n>". SET_IOMMU is allowed only with at least one group attached and no backend
// yet; it asks every registered backend CHECK_EXTENSION(type), opens the first that says
// yes, attaches every group to it and pins the backend's module. When the last group leaves,
// the backend is released and the container is unprivileged again (SET_IOMMU needs a group).
//
// groupLock (an rwsem, container->group_lock) guards groups, iommuDriver and iommuData.

import { shouldFail } from "../kernel/fail_nth.js";
import { EINVAL, ENODEV, ENOMEM, EPERM } from "../uapi/errno.js";
import * as V from "../uapi/vfio.js";
import type { File, FileOperations } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import { RefCounted } from "../kernel/kref.js";
import { RwSem } from "../kernel/locks.js";
import type { Module } from "../kernel/module.js";
import type { KGen, KRet } from "../kernel/sched.js";
import type { IommuGroup } from "../iommu/iommu.js";
import type { VfioGroup, VfioGroupType } from "./group.js";
import { runK, type VfioCore } from "./vfio_main.js";

/** struct vfio_iommu_driver_ops */
export interface VfioIommuDriverOps {
  readonly name: string;
  readonly owner: Module | null;
  /** a backend instance for SET_IOMMU(arg), or -errno */
  open(arg: number): unknown | number;
  release(data: unknown): void;
  /** data is null for CHECK_EXTENSION before SET_IOMMU */
  ioctl(data: unknown | null, cmd: number, arg: number): KRet<number>;
  attachGroup(data: unknown, group: IommuGroup | null, type: VfioGroupType, vgroup: VfioGroup): KRet<number>;
  detachGroup(data: unknown, group: IommuGroup | null, vgroup: VfioGroup): KRet<void>;
}

let nextContainerId = 1;

export class VfioContainer extends RefCounted {
  readonly id = nextContainerId++;
  readonly groups: VfioGroup[] = [];
  iommuDriver: VfioIommuDriverOps | null = null;
  iommuData: unknown = null;
  noiommu = false;
  readonly groupLock: RwSem;

  constructor(
    k: Kernel,
    readonly core: VfioCore,
  ) {
    super(k, "vfio_container");
    this.groupLock = new RwSem(k, "vfio_container.group_lock", `group_lock of container ${this.id}`);
  }

  describe(): string {
    return `vfio_container ${this.id}`;
  }

  protected release(): void {}
}

const containerFopsFlag = Symbol("vfio container fops");

/** vfio_container_from_file() */
export function containerFromFile(f: File): VfioContainer | null {
  return (f.fops as { [containerFopsFlag]?: true })[containerFopsFlag] ? (f.privateData as VfioContainer) : null;
}

/** vfio_register_iommu_driver(): EINVAL if registered twice. */
export function vfioRegisterIommuDriver(core: VfioCore, ops: VfioIommuDriverOps): number {
  if (core.iommuDrivers.includes(ops)) return -EINVAL;
  core.iommuDrivers.push(ops);
  return 0;
}

export function vfioUnregisterIommuDriver(core: VfioCore, ops: VfioIommuDriverOps): void {
  const i = core.iommuDrivers.indexOf(ops);
  if (i >= 0) core.iommuDrivers.splice(i, 1);
}

export function makeContainerFops(core: VfioCore): FileOperations {
  const fops: FileOperations & { [containerFopsFlag]: true } = {
    [containerFopsFlag]: true,
    owner: core.module,
    name: "vfio-container",
    // vfio_fops_open()
    open(f) {
      if (shouldFail()) return -ENOMEM; // kzalloc of the vfio_container (container.c:363)
      const c = new VfioContainer(core.k, core);
      c.handOver("init", "container file");
      f.privateData = c;
      return 0;
    },
    // vfio_fops_release()
    release(f) {
      const c = f.privateData as VfioContainer;
      f.privateData = null;
      c.put("container file");
    },
    unlocked_ioctl: (f, cmd, arg) => containerIoctl(f, cmd, arg),
  };
  return fops;
}

/** vfio_fops_unl_ioctl() (a named path, so the build makes its sequential twin: docs/performance.md) */
function* containerIoctl(f: File, cmd: number, arg: number): KGen<number> {
  const c = f.privateData as VfioContainer | null;
  if (!c) return -EINVAL;
  switch (cmd) {
    case V.VFIO_GET_API_VERSION:
      return V.VFIO_API_VERSION;
    case V.VFIO_CHECK_EXTENSION:
      return yield* checkExtension(c, arg);
    case V.VFIO_SET_IOMMU:
      return yield* setIommu(c, arg);
    default: {
      const d = c.iommuDriver;
      if (!d) return -EINVAL;
      return yield* runK(d.ioctl(c.iommuData, cmd, arg));
    }
  }
}

/** vfio_container_ioctl_check_extension() */
function* checkExtension(c: VfioContainer, arg: number): KGen<number> {
  yield* c.groupLock.downRead();
  try {
    const d = c.iommuDriver;
    if (d) return yield* runK(d.ioctl(c.iommuData, V.VFIO_CHECK_EXTENSION, arg));
    // no backend yet: any registered backend that supports it (VFIO_EEH is PowerPC only)
    for (const drv of c.core.iommuDrivers) {
      if (!c.k.modules.tryGet(drv.owner, "vfio check_extension")) continue;
      const r = yield* runK(drv.ioctl(null, V.VFIO_CHECK_EXTENSION, arg));
      c.k.modules.put(drv.owner, "vfio check_extension");
      if (r > 0) return r;
    }
    return 0;
  } finally {
    c.groupLock.upRead();
  }
}

/** vfio_ioctl_set_iommu() */
function* setIommu(c: VfioContainer, arg: number): KGen<number> {
  yield* c.groupLock.downWrite();
  try {
    if (c.groups.length === 0 || c.iommuDriver) return -EINVAL;
    let ret = -ENODEV;
    for (const drv of c.core.iommuDrivers) {
      const why = `vfio container ${c.id} backend`;
      if (!c.k.modules.tryGet(drv.owner, why)) continue;
      if ((yield* runK(drv.ioctl(null, V.VFIO_CHECK_EXTENSION, arg))) <= 0) {
        c.k.modules.put(drv.owner, why);
        continue;
      }
      const data = drv.open(arg);
      if (typeof data === "number") {
        ret = data;
        c.k.modules.put(drv.owner, why);
        continue;
      }
      ret = yield* attachGroups(c, drv, data);
      if (ret < 0) {
        drv.release(data);
        c.k.modules.put(drv.owner, why);
        continue;
      }
      c.iommuDriver = drv;
      c.iommuData = data;
      break;
    }
    return ret;
  } finally {
    c.groupLock.upWrite();
  }
}

/** __vfio_container_attach_groups(): all or none. */
function* attachGroups(c: VfioContainer, drv: VfioIommuDriverOps, data: unknown): KGen<number> {
  let ret = -ENODEV;
  const done: VfioGroup[] = [];
  for (const g of c.groups) {
    ret = yield* runK(drv.attachGroup(data, g.iommuGroup, g.type, g));
    if (ret < 0) {
      for (const x of done.reverse()) yield* runK(drv.detachGroup(data, x.iommuGroup, x));
      return ret;
    }
    done.push(g);
  }
  return ret;
}

/** vfio_container_attach_group(): called with g.groupLock held. */
export function* vfioContainerAttachGroup(c: VfioContainer, g: VfioGroup): KGen<number> {
  const noiommu = g.type === "noiommu";
  // the twin has no noiommu mode (CONFIG_VFIO_NOIOMMU's module option off): never reached
  if (noiommu) return -EPERM;
  yield* c.groupLock.downWrite();
  try {
    if (c.groups.length > 0 && c.noiommu !== noiommu) return -EPERM;
    const core = g.iommuGroup?.core;
    if (g.type === "iommu" && g.iommuGroup && core) {
      const rc = core.claimDmaOwner(g.iommuGroup, g);
      if (rc < 0) return rc;
    }
    const drv = c.iommuDriver;
    if (drv) {
      const rc = yield* runK(drv.attachGroup(c.iommuData, g.iommuGroup, g.type, g));
      if (rc < 0) {
        if (g.type === "iommu" && g.iommuGroup && core) core.releaseDmaOwner(g.iommuGroup);
        return rc;
      }
    }
    g.container = c;
    g.containerUsers = 1;
    c.noiommu = noiommu;
    c.groups.push(g);
    c.get(`group ${g.id}`);
    return 0;
  } finally {
    c.groupLock.upWrite();
  }
}

/** vfio_group_detach_container(): called with g.groupLock held. */
export function* vfioGroupDetachContainer(g: VfioGroup): KGen<void> {
  const c = g.container!;
  if (g.containerUsers !== 1)
    throw g.k.bug("vfio", `detach of ${g.describe()} with ${g.containerUsers} container users`);
  yield* c.groupLock.downWrite();
  const drv = c.iommuDriver;
  if (drv) yield* runK(drv.detachGroup(c.iommuData, g.iommuGroup, g));
  if (g.type === "iommu" && g.iommuGroup) g.iommuGroup.core.releaseDmaOwner(g.iommuGroup);
  g.container = null;
  g.containerUsers = 0;
  c.groups.splice(c.groups.indexOf(g), 1);
  if (drv && c.groups.length === 0) {
    drv.release(c.iommuData);
    c.k.modules.put(drv.owner, `vfio container ${c.id} backend`);
    c.iommuDriver = null;
    c.iommuData = null;
  }
  c.groupLock.upWrite();
  c.put(`group ${g.id}`);
}
