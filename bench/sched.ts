// The scheduler's speed under the explorer (issue 18: sequential calls got a faster mode; the explorer's must not
// drop): every interleaving of two processes' ioctl paths on a fresh twin each schedule, as
// src/check/explorer.ts runs them, in scheduler steps per second and schedules per second.
// The world: process A maps and unmaps a page through a type1 container (MAP_DMA, UNMAP_DMA),
// process B asks the group's status and the container's info at the same time: every path
// takes the container's or the group's locks, so each step is a yield point the explorer
// branches on.

import { createTwin } from "../src/twin.js";
import { CAP_IPC_LOCK } from "../src/kernel/process.js";
import { ioctlPath } from "../src/kernel/syscalls.js";
import type { KGen, Task } from "../src/kernel/sched.js";
import { explore, replay, type World } from "../src/check/explorer.js";
import { Scheduler, Task as KTask } from "../src/kernel/sched.js";
import * as V from "../src/uapi/vfio.js";
import type { BenchContext, BenchRow, BenchSuite } from "./harness.js";

function world(): World {
  const twin = createTwin({ kvm: false });
  const a = twin.spawn({ caps: [CAP_IPC_LOCK] });
  const b = twin.spawn();
  const scr = a.mmap(0x10000);
  const buf = a.mmap(0x1000);
  const c = a.open("/dev/vfio/vfio");
  const g = a.open("/dev/vfio/1");
  const fdb = new Uint8Array(4);
  new DataView(fdb.buffer).setInt32(0, c, true);
  a.write(scr, fdb);
  if (a.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, scr) !== 0) throw new Error("SET_CONTAINER");
  if (a.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU) !== 0) throw new Error("SET_IOMMU");
  const m = V.vfio_iommu_type1_dma_map;
  const u = V.vfio_iommu_type1_dma_unmap;
  a.write(scr + 0x100, m.encode({ argsz: m.size, flags: 3, vaddr: BigInt(buf), iova: 0x100000n, size: 0x1000n }));
  a.write(scr + 0x200, u.encode({ argsz: u.size, iova: 0x100000n, size: 0x1000n }));
  const bc = a.sendFd(c, b);
  const bg = a.sendFd(g, b);
  const bs = b.mmap(0x1000);
  b.write(bs, V.vfio_group_status.encode({ argsz: 8 }));
  b.write(bs + 0x100, V.vfio_iommu_type1_info.encode({ argsz: V.vfio_iommu_type1_info.size }));
  const k = twin.kernel;
  function* mapUnmap(t: Task): KGen<number> {
    const r1 = yield* ioctlPath(k, a.proc, t, c, V.VFIO_IOMMU_MAP_DMA, scr + 0x100);
    const r2 = yield* ioctlPath(k, a.proc, t, c, V.VFIO_IOMMU_UNMAP_DMA, scr + 0x200);
    return r1 * 100 + r2;
  }
  function* statusInfo(t: Task): KGen<number> {
    const r1 = yield* ioctlPath(k, b.proc, t, bg, V.VFIO_GROUP_GET_STATUS, bs);
    const r2 = yield* ioctlPath(k, b.proc, t, bc, V.VFIO_IOMMU_GET_INFO, bs + 0x100);
    return r1 * 100 + r2;
  }
  return {
    kernel: k,
    threads: [
      { name: "A", process: a.proc, path: (t) => mapUnmap(t) },
      { name: "B", process: b.proc, path: (t) => statusInfo(t) },
    ],
  };
}

const ROW = "sched/steps of a type1 MAP+UNMAP against GET_STATUS+GET_INFO";
const STEP_ROW = "sched/scheduler steps alone, the same two threads";

function run(ctx: BenchContext): BenchRow[] {
  // steps per schedule: the length of the first one (every schedule runs the same paths)
  const steps = replay(world, []).schedule.length;
  const first = explore(world, 100_000);
  if (first.failures.length > 0) throw new Error(`explorer bench: ${first.failures[0]!.violations[0]?.message}`);
  const schedules = first.schedules;
  // one call = the whole exploration; ns per scheduler step (world builds included)
  const ns = ctx.measure(() => explore(world, 100_000).schedules, {
    opsPerCall: schedules * steps,
    budgetMs: ctx.budgetMs * 3,
  });
  // the stepping alone: one world (each schedule leaves it as it found it: A maps and unmaps,
  // B only reads), the two paths scheduled again and again, alternating threads at every step
  const w = world();
  let steps2 = 0;
  const round = () => {
    const s = new Scheduler(w.kernel);
    for (const t of w.threads) {
      const task = new KTask(t.process ?? null, t.name);
      s.add(
        task,
        w.kernel.withTask(task, () => t.path(task)),
      );
    }
    const r = s.run((runnable, step) => step % runnable.length);
    steps2 = r.order.length;
    return r.order.length;
  };
  round();
  const ns2 = ctx.measure(round, { opsPerCall: steps2 });
  return [
    {
      name: STEP_ROW,
      ns: ns2,
      note: `${steps2} steps a schedule, no world build: generator-mode paths only`,
    },
    {
      name: ROW,
      ns,
      note: `${schedules} schedules x ~${steps} steps, a fresh twin each; ${((1e9 / ns / steps) | 0).toLocaleString("en")} schedules/s`,
    },
  ];
}

export const suite: BenchSuite = {
  name: "sched",
  title: "the explorer: scheduler steps per second over every interleaving of two processes' ioctl paths",
  run,
};
