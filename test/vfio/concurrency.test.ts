// Two threads of one process race on the group: GET_DEVICE_FD against UNSET_CONTAINER, and
// the device fd's close against a second GET_DEVICE_FD. Every interleaving of their kernel
// paths (group_lock, dev_set lock, container rwsem, iommu lock) ends without deadlock or
// lockdep report, in one of the sequential outcomes, with every invariant holding.
import { it } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";
import { EBUSY, EINVAL } from "../../src/uapi/errno.js";
import type { Task } from "../../src/kernel/sched.js";
import { ioctlPath } from "../../src/kernel/syscalls.js";
import { explore } from "../../src/check/explorer.js";
import { deviceFd, env, legacy, s32, str } from "./helpers.js";

type Build = () => { e: ReturnType<typeof env>; paths: ((t: Task) => Generator<any, number, void>)[] };

/** Every interleaving through the shared explorer (threads of the test's process); outcomes
 * with fd numbers folded to "ok", since which fd a GET_DEVICE_FD returns varies. */
function exploreAll(build: Build, max = 2000): { outcomes: Set<string>; runs: number } {
  const r = explore(() => {
    const { e, paths } = build();
    return {
      kernel: e.twin.kernel,
      threads: paths.map((path, i) => ({ name: `T${i}`, process: e.p.proc, path, syscall: true })),
    };
  }, max);
  assert.deepEqual(
    r.failures.map((f) => ({ schedule: f.schedule, deadlock: f.deadlock, violations: f.violations })),
    [],
  );
  // partial-order reduction searches even the four-thread world to completion
  assert.equal(r.complete, true, `not complete after ${r.schedules} executions`);
  const outcomes = new Set<string>();
  for (const key of r.outcomes.keys()) {
    const results = JSON.parse(key) as unknown[];
    outcomes.add(JSON.stringify(results.map((x) => (typeof x === "number" && x >= 0 ? "ok" : x))));
  }
  return { outcomes, runs: r.schedules };
}

it("GET_DEVICE_FD races UNSET_CONTAINER", () => {
  const { outcomes, runs } = exploreAll(() => {
    const e = env();
    const { g } = legacy(e);
    const name = str(e, "0000:00:01.0");
    const k = e.twin.kernel;
    return {
      e,
      paths: [
        (t) => ioctlPath(k, e.p.proc, t, g, V.VFIO_GROUP_GET_DEVICE_FD, name),
        (t) => ioctlPath(k, e.p.proc, t, g, V.VFIO_GROUP_UNSET_CONTAINER, 0),
      ],
    };
  });
  assert.ok(runs > 1);
  assert.deepEqual([...outcomes].sort(), [JSON.stringify(["ok", -EBUSY]), JSON.stringify([-EINVAL, "ok"])].sort());
});

it("two GET_DEVICE_FDs race a MAP_DMA and a SET_IOMMU on the container", () => {
  const { outcomes } = exploreAll(() => {
    const e = env();
    const { c, g } = legacy(e);
    void deviceFd;
    const name = str(e, "0000:00:01.0");
    const k = e.twin.kernel;
    const m = V.vfio_iommu_type1_dma_map;
    e.p.write(e.scr, m.encode({ argsz: m.size, flags: 3, vaddr: BigInt(e.buf), iova: 0x100000n, size: 0x2000n }));
    return {
      e,
      paths: [
        (t) => ioctlPath(k, e.p.proc, t, g, V.VFIO_GROUP_GET_DEVICE_FD, name),
        (t) => ioctlPath(k, e.p.proc, t, g, V.VFIO_GROUP_GET_DEVICE_FD, name),
        (t) => ioctlPath(k, e.p.proc, t, c, V.VFIO_IOMMU_MAP_DMA, e.scr),
        (t) => ioctlPath(k, e.p.proc, t, c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU),
      ],
    };
  }, 3000);
  assert.deepEqual([...outcomes], [JSON.stringify(["ok", "ok", "ok", -EINVAL])]);
});

it("under the shared explorer (bare kernel tasks): SET_IOMMU races UNSET_CONTAINER", () => {
  const r = explore(() => {
    const e = env();
    const c = e.p.open("/dev/vfio/vfio");
    const g = e.p.open("/dev/vfio/1");
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
    const k = e.twin.kernel;
    return {
      kernel: k,
      threads: [
        { name: "set_iommu", path: (t: Task) => ioctlPath(k, e.p.proc, t, c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU) },
        { name: "unset", path: (t: Task) => ioctlPath(k, e.p.proc, t, g, V.VFIO_GROUP_UNSET_CONTAINER, 0) },
        // a task without a process has no mm: a user pointer faults instead of crashing the model
        { name: "status", path: (t: Task) => ioctlPath(k, e.p.proc, t, g, V.VFIO_GROUP_GET_STATUS, e.scr) },
      ],
    };
  });
  assert.equal(r.complete, true);
  assert.deepEqual(r.failures, []);
  assert.deepEqual(
    [...r.outcomes.keys()].sort(),
    [JSON.stringify([0, 0, -14]), JSON.stringify([-EINVAL, 0, -14])].sort(),
  );
});
