// Seeded random worlds (`vfio-twin explore --random`): a VMM's usual setup (a type1 container
// with the device's group, a VM with its KVM-VFIO device, an iommufd with an IOAS), then two
// to four threads, each a short sequence of calls drawn from the uAPI around them: valid
// and malformed (a bad fd, a range nobody mapped), closes of shared fds in any order, the
// device driver unbinding. The same seed gives the same world; the explorer then searches its
// interleavings.

import type { KGen, Task } from "../kernel/sched.js";
import { closePath, ioctlPath } from "../kernel/syscalls.js";
import * as U from "../uapi/iommufd.js";
import * as K from "../uapi/kvm.js";
import * as V from "../uapi/vfio.js";
import { vfioUnregisterGroupDev } from "../vfio/group.js";
import { VfioCore } from "../vfio/vfio_main.js";
import { rng, type World } from "./explorer.js";
import { Env, type WorldOptions } from "./worlds.js";

type Call = { name: string; fd: number; cmd: number; arg: number } | { name: string; close: number };

export function randomWorld(seed: number, o: WorldOptions): World {
  const rand = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
  const e = new Env(o);
  const c = e.ok(e.p.open("/dev/vfio/vfio"), "open container");
  const g = e.ok(e.p.open("/dev/vfio/1"), "open group");
  e.ok(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, e.s32(c)), "SET_CONTAINER");
  const withIommu = rand() < 0.8;
  if (withIommu) e.ok(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), "SET_IOMMU");
  const { vm, dev } = e.kvm();
  const ifd = e.ok(e.p.open("/dev/iommu"), "open /dev/iommu");
  const ioas = e.t.ioctl(ifd, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: 12 }).out_ioas_id;
  if (rand() < 0.5) e.ok(e.p.ioctl(dev, K.KVM_SET_DEVICE_ATTR, e.fileAttr(K.KVM_DEV_VFIO_FILE_ADD, g)), "FILE_ADD");
  const devName = e.str("0000:00:01.0");
  const iova = (): bigint => pick([0x100000n, 0x101000n, 0x200000n]);
  const size = (): bigint => pick([0x1000n, 0x2000n]);
  const ioasMap = (): number =>
    e.stage(
      U.iommu_ioas_map.encode({
        size: U.iommu_ioas_map.size,
        flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: pick([ioas, ioas, 99]),
        user_va: BigInt(e.buf),
        length: size(),
        iova: iova(),
      }),
    );
  const menu: (() => Call)[] = [
    () => ({ name: "GET_DEVICE_FD", fd: g, cmd: V.VFIO_GROUP_GET_DEVICE_FD, arg: devName }),
    () => ({ name: "MAP_DMA", fd: c, cmd: V.VFIO_IOMMU_MAP_DMA, arg: e.mapArg(iova(), size()) }),
    () => ({ name: "UNMAP_DMA", fd: c, cmd: V.VFIO_IOMMU_UNMAP_DMA, arg: e.unmapArg(iova(), size()) }),
    () => ({ name: "SET_IOMMU", fd: c, cmd: V.VFIO_SET_IOMMU, arg: V.VFIO_TYPE1v2_IOMMU }),
    () => ({ name: "UNSET_CONTAINER", fd: g, cmd: V.VFIO_GROUP_UNSET_CONTAINER, arg: 0 }),
    () => ({
      name: "GET_STATUS",
      fd: g,
      cmd: V.VFIO_GROUP_GET_STATUS,
      arg: e.stage(new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0])),
    }),
    () => ({ name: "FILE_ADD", fd: dev, cmd: K.KVM_SET_DEVICE_ATTR, arg: e.fileAttr(K.KVM_DEV_VFIO_FILE_ADD, g) }),
    () => ({ name: "FILE_DEL", fd: dev, cmd: K.KVM_SET_DEVICE_ATTR, arg: e.fileAttr(K.KVM_DEV_VFIO_FILE_DEL, g) }),
    () => ({
      name: "FILE_ADD(bad fd)",
      fd: dev,
      cmd: K.KVM_SET_DEVICE_ATTR,
      arg: e.fileAttr(K.KVM_DEV_VFIO_FILE_ADD, 77),
    }),
    () => ({ name: "IOAS_MAP", fd: ifd, cmd: U.IOMMU_IOAS_MAP, arg: ioasMap() }),
    () => ({
      name: "DESTROY",
      fd: ifd,
      cmd: U.IOMMU_DESTROY,
      arg: e.stage(U.iommu_destroy.encode({ size: 8, id: ioas })),
    }),
    () => ({ name: "close", close: pick([g, c, dev, vm, ifd]) }),
  ];
  const nthreads = 2 + Math.floor(rand() * 3);
  const threads: World["threads"][number][] = [];
  const k = e.k;
  const proc = e.proc;
  for (let i = 0; i < nthreads; i++) {
    if (i === nthreads - 1 && rand() < 0.15) {
      const core = VfioCore.of(k)!;
      const vdev = core.devices[0]!;
      threads.push({ name: "unbind", path: () => vfioUnregisterGroupDev(core, vdev) });
      continue;
    }
    const calls = Array.from({ length: 1 + Math.floor(rand() * 2) }, () => pick(menu)());
    threads.push({
      name: `T${i}:${calls.map((x) => ("close" in x ? `close(${x.close})` : x.name)).join("+")}`,
      process: proc,
      syscall: true,
      *path(task: Task): KGen<number[]> {
        const rcs: number[] = [];
        for (const x of calls) {
          if ("close" in x) rcs.push(yield* closePath(k, proc, task, x.close));
          else {
            const rc = yield* ioctlPath(k, proc, task, x.fd, x.cmd, x.arg);
            // a new fd (GET_DEVICE_FD) is closed again, so the world ends where it began
            if (x.cmd === V.VFIO_GROUP_GET_DEVICE_FD && rc >= 0) yield* closePath(k, proc, task, rc);
            rcs.push(x.cmd === V.VFIO_GROUP_GET_DEVICE_FD && rc >= 0 ? 0 : rc);
          }
        }
        return rcs;
      },
    });
  }
  return e.world(threads);
}
