// Concurrent iommufd calls under the explorer (every interleaving, invariants after each):
// a MAP holds its IOAS while it works, so a DESTROY racing with it is EBUSY or wins before
// the lookup; a COPY holds the source pages it looked up, so an UNMAP of the source racing
// with it leaves the copy valid.

import { it } from "node:test";
import assert from "node:assert/strict";
import * as U from "../../src/uapi/iommufd.js";
import * as V from "../../src/uapi/vfio.js";
import { ioctlPath } from "../../src/kernel/syscalls.js";
import type { Task } from "../../src/kernel/sched.js";
import { explore, type World } from "../../src/check/explorer.js";
import { createTwin } from "../../src/twin.js";
import { TypedProcess } from "../../src/vmm/typed.js";
import { RW, FIXED } from "./helpers.js";

function world(second: "destroy" | "unmap"): () => World {
  return () => {
    const twin = createTwin({ kvm: false });
    const p = twin.spawn();
    const t = new TypedProcess(p);
    const fd = t.open("/dev/iommu");
    const buf = p.mmap(0x10000);
    const a = t.ioctl(fd, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: 12 }).out_ioas_id;
    const b = t.ioctl(fd, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: 12 }).out_ioas_id;
    t.ioctl(fd, U.IOMMU_IOAS_MAP, U.iommu_ioas_map, {
      size: 40,
      flags: FIXED | RW,
      ioas_id: a,
      user_va: BigInt(buf),
      length: 0x2000n,
      iova: 0x100000n,
    });
    const mapArg = t.stage(
      U.iommu_ioas_map.encode({
        size: 40,
        flags: FIXED | RW,
        ioas_id: b,
        user_va: BigInt(buf),
        length: 0x1000n,
        iova: 0x200000n,
      }),
      0x100,
    );
    const destroyArg = t.stage(U.iommu_destroy.encode({ size: 8, id: b }), 0x200);
    const copyArg = t.stage(
      U.iommu_ioas_copy.encode({
        size: 40,
        flags: FIXED | RW,
        dst_ioas_id: b,
        src_ioas_id: a,
        length: 0x2000n,
        dst_iova: 0x300000n,
        src_iova: 0x100000n,
      }),
      0x300,
    );
    const unmapArg = t.stage(
      U.iommu_ioas_unmap.encode({ size: 24, ioas_id: a, iova: 0x100000n, length: 0x2000n }),
      0x400,
    );
    const k = twin.kernel;
    const proc = p.proc;
    const call = (cmd: number, arg: number) => (task: Task) => ioctlPath(k, proc, task, fd, cmd, arg);
    return {
      kernel: k,
      threads:
        second === "destroy"
          ? [
              { name: "map", process: proc, path: call(U.IOMMU_IOAS_MAP, mapArg) },
              { name: "destroy", process: proc, path: call(U.IOMMU_DESTROY, destroyArg) },
            ]
          : [
              { name: "copy", process: proc, path: call(U.IOMMU_IOAS_COPY, copyArg) },
              { name: "unmap", process: proc, path: call(U.IOMMU_IOAS_UNMAP, unmapArg) },
            ],
    };
  };
}

it("MAP racing DESTROY of its IOAS: EBUSY, or the IOAS is gone first", () => {
  const r = explore(world("destroy"));
  assert.equal(r.complete, true);
  assert.deepEqual(r.failures, []);
  // [map, destroy]: destroy during the map is EBUSY; before it, the map finds nothing
  assert.deepEqual([...r.outcomes.keys()].sort(), ["[-2,0]", "[0,-16]", "[0,0]"]);
});

it("COPY racing UNMAP of its source: the copy keeps the pages it looked up", () => {
  const r = explore(world("unmap"));
  assert.equal(r.complete, true);
  assert.deepEqual(r.failures, []);
  assert.deepEqual([...r.outcomes.keys()].sort(), ["[-2,0]", "[0,0]"]);
});

function bindWorld(): World {
  const twin = createTwin({ kvm: false });
  const p = twin.spawn();
  const t = new TypedProcess(p);
  const fd = t.open("/dev/iommu");
  const c0 = t.open("/dev/vfio/devices/vfio0");
  const c1 = t.open("/dev/vfio/devices/vfio0");
  const arg = t.stage(V.vfio_device_bind_iommufd.encode({ argsz: 16, iommufd: fd }), 0x100);
  const arg2 = t.stage(V.vfio_device_bind_iommufd.encode({ argsz: 16, iommufd: fd }), 0x200);
  const k = twin.kernel;
  const proc = p.proc;
  return {
    kernel: k,
    threads: [
      {
        name: "bind0",
        process: proc,
        path: (task: Task) => ioctlPath(k, proc, task, c0, V.VFIO_DEVICE_BIND_IOMMUFD, arg),
      },
      {
        name: "bind1",
        process: proc,
        path: (task: Task) => ioctlPath(k, proc, task, c1, V.VFIO_DEVICE_BIND_IOMMUFD, arg2),
      },
    ],
  };
}

it("two BINDs of one device through two cdev files: exactly one wins, in every interleaving", () => {
  const r = explore(bindWorld);
  assert.equal(r.complete, true);
  assert.deepEqual(r.failures, []);
  assert.deepEqual([...r.outcomes.keys()].sort(), ["[-22,0]", "[0,-22]"]);
});
