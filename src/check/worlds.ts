// Named concurrent worlds for the explorer (`vfio-twin explore --world NAME`): each builds a
// twin, makes the setup calls sequentially, and returns the kernel paths to interleave. The
// variants of ./variants.ts each name the world in which their bug shows; the same worlds run
// clean on the correct model (test/check/variants.test.ts).

import type { Kernel } from "../kernel/kernel.js";
import { Mutex } from "../kernel/locks.js";
import type { Process } from "../kernel/process.js";
import { type KGen, type KRet, preempt, runToEnd, type Task } from "../kernel/sched.js";
import { IommuCore } from "../iommu/iommu.js";
import { EFAULT } from "../uapi/errno.js";
import { closePath, ioctlPath } from "../kernel/syscalls.js";
import type { CouplingDesign } from "../kvm/vfio_coupling.js";
import { createTwin, type Twin, type TwinProcess } from "../twin.js";
import * as U from "../uapi/iommufd.js";
import * as K from "../uapi/kvm.js";
import * as V from "../uapi/vfio.js";
import { vfioUnregisterGroupDev } from "../vfio/group.js";
import { KVM_GATED_MDEV_UUID } from "../vfio/mdev/kvm_gated_mdev.js";
import { VfioCore } from "../vfio/vfio_main.js";
import {
  accessPinPagesPath,
  accessReplacePath,
  accessUnpinPagesPath,
  type IommufdAccess,
  iommufdAccessAttach,
  iommufdAccessCreate,
  iommufdAccessPinPages,
} from "../iommufd/access.js";
import type { IommufdCtx } from "../iommufd/main.js";
import { DSA_PCI, ORACLE_PCI } from "../hw/machine.js";
import { KVM_TWIN_SET_PASID_TRANSLATION, kvm_twin_pasid_translation } from "../kvm/enqcmd.js";
import { DsaUser, VmmPasid } from "../vmm/dsa_pasid.js";
import { TypedProcess } from "../vmm/typed.js";
import type { World } from "./explorer.js";

export interface WorldOptions {
  /** the KVM<->VFIO coupling (default upstream) */
  design?: CouplingDesign;
  /** broken variants built in */
  broken?: readonly string[];
}

export interface WorldDef {
  readonly name: string;
  readonly summary: string;
  readonly build: (o: WorldOptions) => World;
}

const BDF = "0000:00:01.0";
const BDF2 = "0000:00:02.0";

/** A twin, one process with scratch memory, and helpers to stage arguments. */
export class Env {
  readonly twin: Twin;
  readonly p: TwinProcess;
  readonly t: TypedProcess;
  readonly k: Kernel;
  readonly proc: Process;
  readonly scr: number;
  readonly buf: number;
  private off = 0;

  constructor(o: WorldOptions, extra: { kvm?: boolean; pasid?: boolean; secondEdu?: boolean } = {}) {
    this.twin = createTwin({
      coupling: o.design ?? "upstream",
      broken: o.broken ?? [],
      ...(extra.kvm === false ? { kvm: false } : {}),
      // the PASID uAPI (6.15) and the DSA-shaped device (docs/pasid.md)
      ...(extra.pasid ? { kernelVersion: "6.15" as const, pci: [...ORACLE_PCI, DSA_PCI] } : {}),
      // a second edu device, alone in IOMMU group 2
      ...(extra.secondEdu ? { pci: [...ORACLE_PCI, { ...ORACLE_PCI[0]!, bdf: BDF2, iommuGroup: 2 }] } : {}),
    });
    this.p = this.twin.spawn({ name: "vmm" });
    this.t = new TypedProcess(this.p);
    this.k = this.twin.kernel;
    this.proc = this.p.proc;
    this.scr = this.p.mmap(0x10000);
    this.buf = this.p.mmap(0x10000);
  }

  /** stage bytes at a fresh scratch offset; the address */
  stage(b: Uint8Array): number {
    const at = this.scr + this.off;
    this.off += (b.length + 63) & ~63;
    this.p.write(at, b);
    return at;
  }
  s32(v: number): number {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    return this.stage(b);
  }
  str(s: string): number {
    return this.stage(new Uint8Array([...new TextEncoder().encode(s), 0]));
  }
  ok(rc: number, what: string): number {
    if (rc < 0) throw new Error(`world setup: ${what} failed with ${rc}`);
    return rc;
  }
  /** container + group + SET_CONTAINER (+ SET_IOMMU type1v2 unless `noIommu`) */
  legacy(group = "/dev/vfio/1", noIommu = false): { c: number; g: number } {
    const c = this.ok(this.p.open("/dev/vfio/vfio"), "open container");
    const g = this.ok(this.p.open(group), `open ${group}`);
    this.ok(this.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, this.s32(c)), "SET_CONTAINER");
    if (!noIommu) this.ok(this.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), "SET_IOMMU");
    return { c, g };
  }
  /** a VM and its KVM-VFIO device */
  kvm(): { vm: number; dev: number } {
    const vm = this.t.ioctlInt(this.t.open("/dev/kvm"), K.KVM_CREATE_VM, 0);
    const dev = this.t.ioctl(vm, K.KVM_CREATE_DEVICE, K.kvm_create_device, { type: K.KVM_DEV_TYPE_VFIO }).fd;
    return { vm, dev };
  }
  /** the group added to a VM's KVM-VFIO device, then the device opened with the VM set: the
   * device holds a VM reference until it closes */
  deviceHoldingVm(): { g: number; vm: number; dev: number; d: number } {
    const { g } = this.legacy();
    const { vm, dev } = this.kvm();
    this.ok(this.p.ioctl(dev, K.KVM_SET_DEVICE_ATTR, this.fileAttr(K.KVM_DEV_VFIO_FILE_ADD, g)), "FILE_ADD");
    const d = this.ok(this.p.ioctl(g, V.VFIO_GROUP_GET_DEVICE_FD, this.str(BDF)), "GET_DEVICE_FD");
    return { g, vm, dev, d };
  }
  fileAttr(op: number, fd: number): number {
    return this.stage(
      K.kvm_device_attr.encode({ group: K.KVM_DEV_VFIO_FILE, attr: BigInt(op), addr: BigInt(this.s32(fd)) }),
    );
  }
  mapArg(iova: bigint, size: bigint): number {
    const m = V.vfio_iommu_type1_dma_map;
    return this.stage(m.encode({ argsz: m.size, flags: 3, vaddr: BigInt(this.buf), iova, size }));
  }
  unmapArg(iova: bigint, size: bigint): number {
    const m = V.vfio_iommu_type1_dma_unmap;
    return this.stage(m.encode({ argsz: m.size, flags: 0, iova, size }));
  }
  /** a thread of this process making syscalls: `path` is what it runs */
  private thread(name: string, path: (task: Task) => KGen<string | number>, calls = 1): World["threads"][number] {
    return { name, process: this.proc, syscall: true, path, ...(calls > 1 ? { calls } : {}) };
  }
  /** a thread of this process running ioctl(fd, cmd, arg) */
  ioctl(name: string, fd: number, cmd: number, arg: number): World["threads"][number] {
    return this.thread(name, (task) => ioctlPath(this.k, this.proc, task, fd, cmd, arg));
  }
  /** a thread of this process running the ioctls one after the other: the last result */
  ioctls(name: string, calls: readonly (readonly [number, number, number])[]): World["threads"][number] {
    const { k, proc } = this;
    return this.thread(
      name,
      function* (task) {
        let rc = 0;
        for (const [fd, cmd, arg] of calls) rc = yield* ioctlPath(k, proc, task, fd, cmd, arg);
        return rc;
      },
      calls.length,
    );
  }
  close(name: string, ...fds: number[]): World["threads"][number] {
    const { k, proc } = this;
    return this.thread(name, function* (task) {
      let rc = 0;
      for (const fd of fds) rc = yield* closePath(k, proc, task, fd);
      return rc;
    });
  }
  /** GET_DEVICE_FD, then close of the fd it gave: "ok" or the errno */
  getDeviceFdAndClose(name: string, g: number, dev: string): World["threads"][number] {
    const { k, proc } = this;
    const arg = this.str(dev);
    return this.thread(name, function* (task) {
      const fd = yield* ioctlPath(k, proc, task, g, V.VFIO_GROUP_GET_DEVICE_FD, arg);
      if (fd < 0) return fd;
      yield* closePath(k, proc, task, fd);
      return "ok";
    });
  }
  /** /dev/iommu opened and an IOAS allocated in it */
  iommufdIoas(): { ifd: number; ioas: number } {
    const ifd = this.ok(this.p.open("/dev/iommu"), "open /dev/iommu");
    return { ifd, ioas: this.t.ioctl(ifd, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: 12 }).out_ioas_id };
  }
  /** /dev/iommu with an IOAS, the device's cdev bound to it and (unless `attach` is false)
   * attached to the IOAS */
  iommufdCdev(attach = true): { ifd: number; ioas: number; d: number } {
    const { ifd, ioas } = this.iommufdIoas();
    const d = this.bindCdev(ifd, BDF);
    if (attach) this.ok(this.p.ioctl(d, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, this.attachArg(ioas)), "ATTACH");
    return { ifd, ioas, d };
  }
  /** the cdev of device `bdf` opened and bound to the iommufd `ifd`: its fd */
  bindCdev(ifd: number, bdf: string): number {
    const vdev = VfioCore.of(this.k)!.devices.find((x) => x.name === bdf)!;
    const d = this.ok(this.p.open(`/dev/vfio/devices/vfio${vdev.cdevIndex}`), "open cdev");
    const bind = V.vfio_device_bind_iommufd;
    const arg = this.stage(bind.encode({ argsz: bind.size, flags: 0, iommufd: ifd }));
    this.ok(this.p.ioctl(d, V.VFIO_DEVICE_BIND_IOMMUFD, arg), "BIND");
    return d;
  }
  attachArg(ptId: number): number {
    const at = V.vfio_device_attach_iommufd_pt;
    return this.stage(at.encode({ argsz: at.size, flags: 0, pt_id: ptId }));
  }
  detachArg(): number {
    const de = V.vfio_device_detach_iommufd_pt;
    return this.stage(de.encode({ argsz: de.size, flags: 0 }));
  }
  ioasUnmapArg(ioas: number, iova: bigint, length: bigint): number {
    return this.stage(U.iommu_ioas_unmap.encode({ size: U.iommu_ioas_unmap.size, ioas_id: ioas, iova, length }));
  }
  ioasMapArg(ioas: number, iova: bigint, length: bigint): number {
    return this.stage(
      U.iommu_ioas_map.encode({
        size: U.iommu_ioas_map.size,
        flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: ioas,
        user_va: BigInt(this.buf),
        length,
        iova,
      }),
    );
  }
  /**
   * The device (not a syscall) writing `len` bytes at `iova`: its DMA goes through the IOMMU
   * core as it is at that step. 0 when every page went through, -EFAULT when one faulted.
   */
  dma(name: string, iova: bigint, len: number): World["threads"][number] {
    const port = IommuCore.of(this.k).device(BDF)!.pci!.dma!;
    return {
      name,
      // its first step does nothing (DPOR: no more than a syscall's fd lookup)
      syscall: true,
      *path(): KGen<number> {
        yield* preempt("device DMA");
        return port.write(iova, new Uint8Array(len).fill(0xa5)) ? 0 : -EFAULT;
      },
    };
  }
  /** the world of these threads: its state lives in the twin (the threads' closures hold
   * only fds, arguments and model objects), so the explorer may restore it from a snapshot */
  world(threads: World["threads"], after?: World["after"]): World {
    return { kernel: this.k, threads, ...(after ? { after } : {}), snapshot: true };
  }
}

/** An in-kernel access (what an mdev uses instead of DMA) attached to an IOAS, pinning
 * [iova, iova+length) of it unless `length` is 0; its unmap callback unpins what it pinned
 * inside the range it is told about. With `paths`, the callback's unpin is a path (it waits
 * for the access's and the IOAS's locks) and the driver's own lock orders its list of pins:
 * held across a pin and its record, and across an unpin, so that when the callback returns
 * nothing in the range is pinned (the contract of iommufd_access_ops.unmap; without it
 * IOAS_UNMAP could spin). Without, the callback unpins at once, run to its end. */
function pinningAccess(e: Env, ifd: number, ioasId: number, iova: bigint, length: bigint, paths = false): AccessDriver {
  const ictx = e.proc.files.lookup(ifd)!.privateData as IommufdCtx;
  // what it pinned is a field of its ops (which the access keeps), not a closure's variable:
  // the explorer's world snapshot restores objects it can reach (src/check/snapshot.ts)
  const ops: AccessDriver = {
    needsPinPages: true,
    pinned: [] as [bigint, bigint][],
    access: null,
    lock: new Mutex(e.k, "access_driver.lock", "access driver lock"),
    unmap(start: bigint, len: bigint): KRet<void> {
      return paths ? ops.unmapPath(start, len) : runToEnd(e.k, ops.unmapPath(start, len));
    },
    *unmapPath(start: bigint, len: bigint): KGen<void> {
      yield* ops.lock.lock();
      for (let i = ops.pinned.length - 1; i >= 0; i--) {
        const [a, l] = ops.pinned[i]!;
        if (a < start + len && start < a + l) {
          ops.pinned.splice(i, 1);
          yield* accessUnpinPagesPath(ops.access!, a, l);
        }
      }
      ops.lock.unlock();
    },
  };
  const access = e.k.withTask(e.proc.mainTask, () => iommufdAccessCreate(ictx, ops));
  if (typeof access === "number") throw new Error(`world setup: access create ${access}`);
  ops.access = access;
  e.ok(iommufdAccessAttach(access, ioasId), "access attach");
  if (length === 0n) return ops;
  const pages = iommufdAccessPinPages(access, iova, length, true);
  if (typeof pages === "number") throw new Error(`world setup: access pin ${pages}`);
  ops.pinned.push([iova, length]);
  return ops;
}

interface AccessDriver {
  readonly needsPinPages: true;
  readonly pinned: [bigint, bigint][];
  access: IommufdAccess | null;
  readonly lock: Mutex;
  unmap(start: bigint, len: bigint): KRet<void>;
  unmapPath(start: bigint, len: bigint): KGen<void>;
}

/** The access driver's thread: pin [iova, iova+length), then unpin it unless the IOAS's
 * unmap had it unpinned already; the pin's errno, or 0. */
function accessPinUnpin(e: Env, drv: AccessDriver, iova: bigint, length: bigint): World["threads"][number] {
  return {
    name: "pin_unpin",
    process: e.proc,
    // its first step checks its arguments only, up to the ioas_lock (DPOR: as a syscall's)
    syscall: true,
    *path(): KGen<number> {
      yield* drv.lock.lock();
      const r = yield* accessPinPagesPath(drv.access!, iova, length, true);
      if (typeof r !== "number") drv.pinned.push([iova, length]);
      drv.lock.unlock();
      if (typeof r === "number") return r;
      yield* drv.lock.lock();
      const i = drv.pinned.findIndex(([a]) => a === iova);
      if (i >= 0) {
        drv.pinned.splice(i, 1);
        yield* accessUnpinPagesPath(drv.access!, iova, length);
      }
      drv.lock.unlock();
      return 0;
    },
  };
}

export const WORLDS: readonly WorldDef[] = [
  {
    name: "vfio-four",
    summary: "two GET_DEVICE_FDs, a MAP_DMA and a SET_IOMMU on one container (four threads)",
    build(o) {
      const e = new Env(o);
      const c = e.ok(e.p.open("/dev/vfio/vfio"), "open container");
      const g = e.ok(e.p.open("/dev/vfio/1"), "open group");
      e.ok(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, e.s32(c)), "SET_CONTAINER");
      e.ok(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), "SET_IOMMU");
      const name = e.str(BDF);
      return e.world([
        e.ioctl("get_fd0", g, V.VFIO_GROUP_GET_DEVICE_FD, name),
        e.ioctl("get_fd1", g, V.VFIO_GROUP_GET_DEVICE_FD, name),
        e.ioctl("map", c, V.VFIO_IOMMU_MAP_DMA, e.mapArg(0x100000n, 0x2000n)),
        e.ioctl("set_iommu", c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU),
      ]);
    },
  },
  {
    name: "kvm-device-close",
    summary:
      "a device opened with the VM set (it holds a VM reference); the VM fd and KVM-VFIO fd close while the device fd closes",
    build(o) {
      const e = new Env(o);
      const { vm, dev, d } = e.deviceHoldingVm();
      return e.world([e.close("close_kvm", dev, vm), e.close("close_device", d)]);
    },
  },
  {
    name: "mdev-open-vs-kvm-release",
    summary: "GET_DEVICE_FD of the KVM-gated mdev (its open takes kvm->lock) races the KVM-VFIO device's close",
    build(o) {
      const e = new Env(o);
      e.ok(e.k.modules.load("vfio_kvm_gated_mdev"), "load mdev");
      const vdev = VfioCore.of(e.k)!.devices.find((x) => x.name === KVM_GATED_MDEV_UUID)!;
      const { g } = e.legacy(`/dev/vfio/${vdev.group.id}`);
      const { dev } = e.kvm();
      e.ok(e.p.ioctl(dev, K.KVM_SET_DEVICE_ATTR, e.fileAttr(K.KVM_DEV_VFIO_FILE_ADD, g)), "FILE_ADD");
      return e.world([e.getDeviceFdAndClose("open_mdev", g, KVM_GATED_MDEV_UUID), e.close("close_kvm_vfio", dev)]);
    },
  },
  {
    name: "unbind-vs-get-device-fd",
    summary: "the driver unbinds the device (vfio unregister waits for users) while GET_DEVICE_FD looks it up",
    build(o) {
      const e = new Env(o);
      const { g } = e.legacy();
      const core = VfioCore.of(e.k)!;
      const vdev = core.devices.find((x) => x.name === BDF)!;
      return e.world([
        e.getDeviceFdAndClose("get_fd", g, BDF),
        { name: "unbind", path: () => vfioUnregisterGroupDev(core, vdev) },
      ]);
    },
  },
  {
    name: "rmmod-vs-get-device-fd",
    summary: "delete_module(vfio_pci) (its remove waits for the device's users) races GET_DEVICE_FD and close",
    build(o) {
      const e = new Env(o);
      const { g } = e.legacy();
      const k = e.k;
      return e.world([
        e.getDeviceFdAndClose("get_fd", g, BDF),
        { name: "rmmod", path: () => k.modules.unloadPath("vfio_pci") },
      ]);
    },
  },
  {
    name: "close-vs-ioctls",
    summary: "close() of the group and the container race GET_DEVICE_FD (+ close) and MAP_DMA on them",
    build(o) {
      const e = new Env(o);
      const { c, g } = e.legacy();
      return e.world([
        e.close("close_group", g),
        e.getDeviceFdAndClose("get_fd", g, BDF),
        e.ioctl("map", c, V.VFIO_IOMMU_MAP_DMA, e.mapArg(0x100000n, 0x1000n)),
        e.close("close_container", c),
      ]);
    },
  },
  {
    name: "kvm-file-add-del",
    summary: "KVM_DEV_VFIO_FILE_ADD and FILE_DEL of one group file race",
    build(o) {
      const e = new Env(o);
      const g = e.ok(e.p.open("/dev/vfio/1"), "open group");
      const { dev } = e.kvm();
      return e.world([
        e.ioctl("add", dev, K.KVM_SET_DEVICE_ATTR, e.fileAttr(K.KVM_DEV_VFIO_FILE_ADD, g)),
        e.ioctl("del", dev, K.KVM_SET_DEVICE_ATTR, e.fileAttr(K.KVM_DEV_VFIO_FILE_DEL, g)),
      ]);
    },
  },
  {
    name: "kvm-file-add-close",
    summary: "KVM_DEV_VFIO_FILE_ADD of a group file races the close of that group fd",
    build(o) {
      const e = new Env(o);
      const g = e.ok(e.p.open("/dev/vfio/1"), "open group");
      const { dev } = e.kvm();
      return e.world([
        e.ioctl("add", dev, K.KVM_SET_DEVICE_ATTR, e.fileAttr(K.KVM_DEV_VFIO_FILE_ADD, g)),
        e.close("close_group", g),
      ]);
    },
  },
  {
    name: "iommufd-attach-detach",
    summary: "a cdev bound to an iommufd and attached to an IOAS: DETACH races an IOAS_MAP",
    build(o) {
      const e = new Env(o);
      const { ifd, ioas, d } = e.iommufdCdev();
      const de = V.vfio_device_detach_iommufd_pt;
      const map = e.ioasMapArg(ioas, 0x100000n, 0x2000n);
      return e.world([
        e.ioctl("detach", d, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, e.stage(de.encode({ argsz: de.size, flags: 0 }))),
        e.ioctl("map", ifd, U.IOMMU_IOAS_MAP, map),
      ]);
    },
  },
  {
    name: "type1-map-unmap",
    summary: "MAP_DMA and UNMAP_DMA of one range race on a type1 container with a device group",
    build(o) {
      const e = new Env(o);
      const { c } = e.legacy();
      return e.world([
        e.ioctl("map", c, V.VFIO_IOMMU_MAP_DMA, e.mapArg(0x100000n, 0x2000n)),
        e.ioctl("unmap", c, V.VFIO_IOMMU_UNMAP_DMA, e.unmapArg(0x100000n, 0x2000n)),
      ]);
    },
  },
  {
    name: "iommufd-unmap-vs-unmap-access",
    summary: "two IOAS_UNMAPs of one area an in-kernel access pins: each drops the IOAS locks to have it unpinned",
    build(o) {
      const e = new Env(o, { kvm: false });
      const { ifd, ioas } = e.iommufdIoas();
      e.t.ioctl(ifd, U.IOMMU_IOAS_MAP, U.iommu_ioas_map, {
        size: U.iommu_ioas_map.size,
        flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: ioas,
        user_va: BigInt(e.buf),
        length: 0x2000n,
        iova: 0x100000n,
      });
      pinningAccess(e, ifd, ioas, 0x100000n, 0x1000n);
      const unmap = () =>
        e.stage(
          U.iommu_ioas_unmap.encode({ size: U.iommu_ioas_unmap.size, ioas_id: ioas, iova: 0x100000n, length: 0x2000n }),
        );
      return e.world([
        e.ioctl("unmap0", ifd, U.IOMMU_IOAS_UNMAP, unmap()),
        e.ioctl("unmap1", ifd, U.IOMMU_IOAS_UNMAP, unmap()),
      ]);
    },
  },
  {
    name: "pasid-detach-vs-link",
    summary: "a PASID detach of the DSA races KVM's link of a guest PASID to it (process-table design, docs/pasid.md)",
    build(o) {
      const e = new Env(o, { pasid: true });
      const u = new DsaUser(e.p);
      e.ok(u.openIommufd(), "open /dev/iommu");
      e.ok(u.bind("/dev/vfio/devices/vfio1"), "bind the DSA");
      const ioas = e.ok(u.ioasAlloc(), "IOAS_ALLOC");
      e.ok(u.map(ioas, 0n, e.buf, 0x10000), "IOAS_MAP");
      e.ok(u.mapBars(), "map BARs");
      u.enable();
      e.ok(u.attach(ioas, 5).rc, "attach PASID 5");
      const vmm = new VmmPasid(e.p);
      e.ok(vmm.createVm(), "KVM_CREATE_VM");
      const detach = e.stage(V.vfio_device_detach_iommufd_pt_pasid.encode({ argsz: 12, flags: 1, pasid: 5 }));
      const link = e.stage(
        kvm_twin_pasid_translation.encode({ flags: 0, vpasid: 1, ppasid: 5, vfio_fd: -1, iommufd: -1 }),
      );
      return e.world([
        e.ioctl("detach", u.cdev, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, detach),
        e.ioctl("link", vmm.vm, KVM_TWIN_SET_PASID_TRANSLATION, link),
      ]);
    },
  },
  {
    name: "iommufd-map-vs-destroy",
    summary: "IOMMU_IOAS_MAP into an IOAS races IOMMU_DESTROY of that IOAS",
    build(o) {
      const e = new Env(o, { kvm: false });
      const { ifd, ioas } = e.iommufdIoas();
      const map = e.stage(
        U.iommu_ioas_map.encode({
          size: U.iommu_ioas_map.size,
          flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
          ioas_id: ioas,
          user_va: BigInt(e.buf),
          length: 0x1000n,
          iova: 0x200000n,
        }),
      );
      return e.world([
        e.ioctl("map", ifd, U.IOMMU_IOAS_MAP, map),
        e.ioctl("destroy", ifd, U.IOMMU_DESTROY, e.stage(U.iommu_destroy.encode({ size: 8, id: ioas }))),
      ]);
    },
  },
  {
    name: "iommufd-unmap-vs-dma",
    summary: "the device DMAs into the last page of an IOAS mapping while IOAS_UNMAP removes it",
    build(o) {
      const e = new Env(o);
      const { ifd, ioas } = e.iommufdCdev();
      e.ok(e.p.ioctl(ifd, U.IOMMU_IOAS_MAP, e.ioasMapArg(ioas, 0x100000n, 0x2000n)), "IOAS_MAP");
      const unmap = e.stage(
        U.iommu_ioas_unmap.encode({ size: U.iommu_ioas_unmap.size, ioas_id: ioas, iova: 0x100000n, length: 0x2000n }),
      );
      return e.world([e.ioctl("unmap", ifd, U.IOMMU_IOAS_UNMAP, unmap), e.dma("dma", 0x101000n, 64)]);
    },
  },
  {
    name: "iommufd-detach-vs-dma",
    summary: "the device DMAs into an IOAS mapping while DETACH_IOMMUFD_PT takes it off its HWPT",
    build(o) {
      const e = new Env(o);
      const { ifd, ioas, d } = e.iommufdCdev();
      e.ok(e.p.ioctl(ifd, U.IOMMU_IOAS_MAP, e.ioasMapArg(ioas, 0x100000n, 0x2000n)), "IOAS_MAP");
      const de = V.vfio_device_detach_iommufd_pt;
      return e.world([
        e.ioctl("detach", d, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, e.stage(de.encode({ argsz: de.size, flags: 0 }))),
        e.dma("dma", 0x100000n, 64),
      ]);
    },
  },
  {
    name: "kvm-destroy-vs-file-ops",
    summary:
      "VM destruction (the last kvm put, wherever it lands) races KVM_DEV_VFIO_FILE_DEL + FILE_ADD and the close of a device that holds the VM",
    build(o) {
      const e = new Env(o);
      const { g, vm, dev, d } = e.deviceHoldingVm();
      return e.world([
        e.ioctls("del_add", [
          [dev, K.KVM_SET_DEVICE_ATTR, e.fileAttr(K.KVM_DEV_VFIO_FILE_DEL, g)],
          [dev, K.KVM_SET_DEVICE_ATTR, e.fileAttr(K.KVM_DEV_VFIO_FILE_ADD, g)],
        ]),
        e.close("close_kvm", dev, vm),
        e.close("close_device", d),
      ]);
    },
  },
  {
    name: "iommufd-attach-vs-map-unmap",
    summary:
      "ATTACH_IOMMUFD_PT of a bound cdev to an IOAS (an automatic HWPT, filled from the IOAS) races an IOAS_MAP then an IOAS_UNMAP on that IOAS",
    build(o) {
      const e = new Env(o, { kvm: false });
      const { ifd, ioas, d } = e.iommufdCdev(false);
      e.ok(e.p.ioctl(ifd, U.IOMMU_IOAS_MAP, e.ioasMapArg(ioas, 0x100000n, 0x2000n)), "IOAS_MAP");
      return e.world([
        e.ioctl("attach", d, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, e.attachArg(ioas)),
        e.ioctls("map_unmap", [
          [ifd, U.IOMMU_IOAS_MAP, e.ioasMapArg(ioas, 0x200000n, 0x1000n)],
          [ifd, U.IOMMU_IOAS_UNMAP, e.ioasUnmapArg(ioas, 0x100000n, 0x2000n)],
        ]),
      ]);
    },
  },
  {
    name: "iommufd-detach-vs-unmap-close",
    summary:
      "DETACH_IOMMUFD_PT (the automatic HWPT destroyed with its IOAS's locks) races IOAS_UNMAP and the close of the cdev fd (the last fput unbinds)",
    build(o) {
      const e = new Env(o, { kvm: false });
      const { ifd, ioas, d } = e.iommufdCdev();
      e.ok(e.p.ioctl(ifd, U.IOMMU_IOAS_MAP, e.ioasMapArg(ioas, 0x100000n, 0x2000n)), "IOAS_MAP");
      return e.world([
        e.ioctl("detach", d, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, e.detachArg()),
        e.ioctl("unmap", ifd, U.IOMMU_IOAS_UNMAP, e.ioasUnmapArg(ioas, 0x100000n, 0x2000n)),
        e.close("close_cdev", d),
      ]);
    },
  },
  {
    name: "iommufd-two-attach-auto-domain",
    summary:
      "two devices (groups 1 and 2) bound to one iommufd ATTACH to the same IOAS: one makes the automatic HWPT, the other reuses it",
    build(o) {
      const e = new Env(o, { kvm: false, secondEdu: true });
      const { ifd, ioas, d } = e.iommufdCdev(false);
      const d2 = e.bindCdev(ifd, BDF2);
      return e.world([
        e.ioctl("attach0", d, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, e.attachArg(ioas)),
        e.ioctl("attach1", d2, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, e.attachArg(ioas)),
      ]);
    },
  },
  {
    name: "iommufd-access-pin-vs-unmap",
    summary:
      "an in-kernel access pins then unpins part of an IOAS mapping while IOAS_UNMAP of the whole mapping drops the IOAS locks to have it unpinned",
    build(o) {
      const e = new Env(o, { kvm: false });
      const { ifd, ioas } = e.iommufdIoas();
      e.ok(e.p.ioctl(ifd, U.IOMMU_IOAS_MAP, e.ioasMapArg(ioas, 0x100000n, 0x2000n)), "IOAS_MAP");
      const drv = pinningAccess(e, ifd, ioas, 0n, 0n, true);
      return e.world([
        accessPinUnpin(e, drv, 0x100000n, 0x1000n),
        e.ioctl("unmap", ifd, U.IOMMU_IOAS_UNMAP, e.ioasUnmapArg(ioas, 0x100000n, 0x2000n)),
      ]);
    },
  },
  {
    name: "iommufd-destroy-vs-map-unmap",
    summary:
      "IOMMU_DESTROY of an IOAS races an IOAS_MAP then an IOAS_UNMAP on it: EBUSY while either holds it, a wait for a put half done, ENOENT after",
    build(o) {
      const e = new Env(o, { kvm: false });
      const { ifd, ioas } = e.iommufdIoas();
      return e.world([
        e.ioctls("map_unmap", [
          [ifd, U.IOMMU_IOAS_MAP, e.ioasMapArg(ioas, 0x100000n, 0x1000n)],
          [ifd, U.IOMMU_IOAS_UNMAP, e.ioasUnmapArg(ioas, 0x100000n, 0x1000n)],
        ]),
        e.ioctl("destroy", ifd, U.IOMMU_DESTROY, e.stage(U.iommu_destroy.encode({ size: 8, id: ioas }))),
      ]);
    },
  },
  {
    name: "iommufd-replace-vs-map",
    summary:
      "ATTACH_IOMMUFD_PT of an attached cdev to a second IOAS (a replace: the new IOAS's reserved regions under its iova_rwsem, igroup->lock held) races an IOAS_MAP on that IOAS",
    build(o) {
      const e = new Env(o, { kvm: false });
      const { ifd, d } = e.iommufdCdev();
      const ioas2 = e.t.ioctl(ifd, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: 12 }).out_ioas_id;
      return e.world([
        e.ioctl("replace", d, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, e.attachArg(ioas2)),
        e.ioctl("map", ifd, U.IOMMU_IOAS_MAP, e.ioasMapArg(ioas2, 0x100000n, 0x1000n)),
      ]);
    },
  },
  {
    name: "iommufd-access-replace-vs-pin",
    summary:
      "an in-kernel access moves to a second IOAS (iommufd_access_replace(): ioas_lock, the IOASes' rwsems, the driver's unmap of everything with ioas_lock dropped) while its driver pins then unpins a page of the first",
    build(o) {
      const e = new Env(o, { kvm: false });
      const { ifd, ioas } = e.iommufdIoas();
      const ioas2 = e.t.ioctl(ifd, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: 12 }).out_ioas_id;
      e.ok(e.p.ioctl(ifd, U.IOMMU_IOAS_MAP, e.ioasMapArg(ioas, 0x100000n, 0x1000n)), "IOAS_MAP");
      const drv = pinningAccess(e, ifd, ioas, 0n, 0n, true);
      return e.world([
        accessPinUnpin(e, drv, 0x100000n, 0x1000n),
        {
          name: "replace",
          process: e.proc,
          syscall: true,
          *path(): KGen<number> {
            return yield* accessReplacePath(drv.access!, ioas2);
          },
        },
      ]);
    },
  },
  {
    name: "iommufd-hwpt-alloc-vs-unbind",
    summary:
      "IOMMU_HWPT_ALLOC for a bound cdev's device (holding the device short-term across ioas->mutex) races the close of the cdev, whose unbind waits for short-term users",
    build(o) {
      const e = new Env(o, { kvm: false });
      const { ifd, ioas, d } = e.iommufdCdev(false);
      const ictx = e.proc.files.lookup(ifd)!.privateData as IommufdCtx;
      const devId = ictx.objects.objects().find((x) => x.type === "device")!.id;
      const alloc = e.stage(
        U.iommu_hwpt_alloc.encode({ size: U.iommu_hwpt_alloc.size, flags: 0, dev_id: devId, pt_id: ioas }),
      );
      return e.world([e.ioctl("hwpt_alloc", ifd, U.IOMMU_HWPT_ALLOC, alloc), e.close("close_cdev", d)]);
    },
  },
];

export function worldByName(name: string): WorldDef | null {
  return WORLDS.find((w) => w.name === name) ?? null;
}
