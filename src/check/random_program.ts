// Seeded random concurrent programs (`vfio-twin explore --random --programs N`): the fuzzer's
// multi-process programs (./fuzz.ts, issue 12) run as explorer worlds. A program is a short
// sequential setup in up to three processes (the fuzzer's setup macros: a type1 container
// with the device, an iommufd IOAS with the device's cdev attached, a VM with its KVM-VFIO
// device; opens; fds passed), then one to four threads, each of one process, each a few
// operations: well-formed calls of the uAPI around that setup (MAP/UNMAP, FILE_ADD/FILE_DEL,
// GET_DEVICE_FD, IOAS_MAP/UNMAP, DESTROY, BIND/ATTACH/DETACH, ...), any ioctl of the registry
// with fields the fuzzer draws (malformed ones included), closes of any fd, dup, fd passing
// (SCM_RIGHTS: the twin's sendFd), opens, process exit, and the device DMAing; beside them
// an administrator may load and unload modules (then a process ends when its last thread
// does, its fds closed as at exit, so that an rmmod waiting for its files can go on). The explorer searches the interleavings of each program
// (PCT, or DPOR with a preemption bound) with its detectors after every step and the
// whole-twin check and the fuzzer's exit-and-leak check at the end. A violation is shrunk
// by fast-check over the program (fewer threads, fewer operations, simpler arguments), then
// by removing what can go, then by schedule (report.ts), and saved with the program in the
// trace file, which `vfio-twin replay FILE` runs again.
//
// Calls the twin has as paths (ioctl, close, delete_module, the device's DMA) interleave at
// their yield points; the others (open, dup, sendmsg, eventfd, init_module, the end of exit)
// run as one step, when no other thread of the program holds a lock: the twin runs them to
// completion at once, and one that met a lock another thread holds would be a deadlock of the
// model, not of the kernel.

import fc from "fast-check";
import { IommuCore } from "../iommu/iommu.js";
import type { Process } from "../kernel/process.js";
import type { KGen, Task, Waitable } from "../kernel/sched.js";
import { preempt } from "../kernel/sched.js";
import { closePath, ioctlPath, userArg } from "../kernel/syscalls.js";
import type { CouplingDesign } from "../kvm/vfio_coupling.js";
import { EFAULT, ENODEV } from "../uapi/errno.js";
import * as I from "../uapi/iommufd.js";
import * as K from "../uapi/kvm.js";
import * as V from "../uapi/vfio.js";
import { explore, type ExploreStats, type Outcome, type World } from "./explorer.js";
import {
  EDU_BDF,
  fdRef,
  ioctlArb,
  MODULES,
  NPROCS,
  Runner,
  type Slot,
  STAGING,
  type Step,
  type Tag,
  type Val,
} from "./fuzz.js";
import { minimize, noStats, runTraced, type TraceFile, traceFile, violationKey } from "./report.js";
import type { WorldOptions } from "./worlds.js";

/** What a thread does: a step of the fuzzer (its `p` is the thread's process), or one of these. */
export type ThreadOp =
  | Extract<Step, { op: "ioctl" | "close" | "dup" | "sendFd" | "open" | "eventfd" }>
  | { op: "exit" }
  | { op: "dma"; iova: number; len: number };

/** What the administrator's thread does: modprobe, rmmod. */
export interface ModuleOp {
  readonly op: "module";
  readonly load: boolean;
  readonly name: string;
}

export interface ProgramThread {
  /** the process slot (0..NPROCS-1) */
  readonly p: number;
  readonly ops: readonly ThreadOp[];
}

export interface ConcurrentProgram {
  /** run sequentially, before the threads start */
  readonly setup: readonly Step[];
  readonly threads: readonly ProgramThread[];
  /** module loads and unloads by an administrator (a thread of no process of the program:
   * a `delete_module` waiting for a device's users waits for the program, not for itself) */
  readonly admin: readonly ModuleOp[];
}

const PAGE = 0x1000;

// ---- generation ----

const p0 = fc.constant(0);
/** a process: the first mostly, where the setup's fds are */
const proc = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.nat(NPROCS - 1));
/** what a setup maps for DMA, from IOVA 0 (fewer pages than the fuzzer's: a world is rebuilt
 * for every execution, and each pinned page is a page the twin allocates) */
const SPAN = 4 * PAGE;
// the setup's range mostly (type1 v2 and iommufd unmap whole mappings only), parts of it, and
// beyond it
const iovaArb = fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.constantFrom(PAGE, SPAN - PAGE, 0x100000));
const lenArb = fc.oneof({ weight: 4, arbitrary: fc.constant(SPAN) }, fc.constantFrom(PAGE, 2 * PAGE));
const memArb: fc.Arbitrary<Val> = fc.constantFrom(0, 1, 3).map((pg) => ({ mem: pg * PAGE }));
const idArb = fc.integer({ min: 1, max: 4 });
const size: Val = { sizeof: 0 };

function call(name: string, tags: readonly Tag[], rest: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Step> {
  return fc.record({
    op: fc.constant("ioctl" as const),
    p: p0,
    fd: fdRef(tags),
    name: fc.constant(name),
    ...rest,
  }) as fc.Arbitrary<Step>;
}
const fields = (r: Record<string, fc.Arbitrary<Val>>) => ({ fields: fc.record(r) });

/** Well-formed calls of the uAPI each setup builds: what reaches deep state and races. */
const VALID: Record<"type1" | "kvm" | "iommufd", fc.Arbitrary<Step>[]> = {
  type1: [
    call("VFIO_IOMMU_UNMAP_DMA", ["container"], fields({ argsz: fc.constant(size), iova: iovaArb, size: lenArb })),
    call(
      "VFIO_IOMMU_MAP_DMA",
      ["container"],
      fields({
        argsz: fc.constant(size),
        flags: fc.constant(V.VFIO_DMA_MAP_FLAG_READ | V.VFIO_DMA_MAP_FLAG_WRITE),
        vaddr: memArb,
        iova: iovaArb,
        size: lenArb,
      }),
    ),
    call("VFIO_GROUP_GET_DEVICE_FD", ["group"], { arg: fc.constant({ str: EDU_BDF }) }),
    call("VFIO_GROUP_SET_CONTAINER", ["group"], { arg: fdRef(["container"]).map((fdptr) => ({ fdptr })) }),
    call("VFIO_GROUP_UNSET_CONTAINER", ["group"], {}),
    call("VFIO_SET_IOMMU", ["container"], { arg: fc.constantFrom(V.VFIO_TYPE1v2_IOMMU, V.VFIO_TYPE1_IOMMU) }),
  ],
  kvm: [
    call(
      "KVM_SET_DEVICE_ATTR",
      ["kvmdev"],
      fields({
        group: fc.constant(K.KVM_DEV_VFIO_FILE),
        attr: fc.constantFrom(K.KVM_DEV_VFIO_FILE_DEL, K.KVM_DEV_VFIO_FILE_ADD),
        addr: fc
          .oneof({ weight: 3, arbitrary: fdRef(["group"]) }, fdRef(["device", "cdev"]))
          .map((fdptr) => ({ fdptr })),
      }),
    ),
    call("VFIO_GROUP_GET_DEVICE_FD", ["group"], { arg: fc.constant({ str: EDU_BDF }) }),
    call("KVM_CREATE_DEVICE", ["vm"], fields({ type: fc.constant(K.KVM_DEV_TYPE_VFIO) })),
    call("KVM_CREATE_VM", ["kvm"], { arg: fc.constant(0) }),
  ],
  iommufd: [
    call("VFIO_DEVICE_DETACH_IOMMUFD_PT", ["device"], fields({ argsz: fc.constant(size) })),
    call(
      "IOMMU_IOAS_UNMAP",
      ["iommufd"],
      fields({ size: fc.constant(size), ioas_id: idArb, iova: iovaArb, length: lenArb }),
    ),
    call("VFIO_DEVICE_ATTACH_IOMMUFD_PT", ["device"], fields({ argsz: fc.constant(size), pt_id: idArb })),
    call(
      "IOMMU_IOAS_MAP",
      ["iommufd"],
      fields({
        size: fc.constant(size),
        flags: fc.constant(I.IOMMU_IOAS_MAP_FIXED_IOVA | I.IOMMU_IOAS_MAP_READABLE | I.IOMMU_IOAS_MAP_WRITEABLE),
        ioas_id: idArb,
        user_va: memArb,
        length: lenArb,
        iova: iovaArb,
      }),
    ),
    call("IOMMU_DESTROY", ["iommufd"], fields({ size: fc.constant(size), id: idArb })),
    call("IOMMU_IOAS_ALLOC", ["iommufd"], fields({ size: fc.constant(size) })),
    call(
      "VFIO_DEVICE_BIND_IOMMUFD",
      ["cdev"],
      fields({ argsz: fc.constant(size), iommufd: fdRef(["iommufd"]).map((fd) => ({ fd })) }),
    ),
  ],
};

const anyFd = fdRef(["container", "group", "device", "cdev", "iommufd", "kvmdev", "vm", "kvm"]);
const OPENS = ["/dev/vfio/1", "/dev/vfio/vfio", "/dev/iommu", "/dev/vfio/devices/vfio0", "/dev/kvm"];

/** A thread's operation; the well-formed calls of the setups the program has weigh most. */
function threadOp(kinds: ReadonlySet<string>): fc.Arbitrary<ThreadOp> {
  const valid = (Object.keys(VALID) as (keyof typeof VALID)[]).map((kind) => ({
    weight: kinds.has(kind) ? 6 : 1,
    arbitrary: fc.oneof(...VALID[kind]) as fc.Arbitrary<ThreadOp>,
  }));
  return fc.oneof(
    { weight: 12, arbitrary: fc.oneof(...valid) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("close" as const), p: p0, fd: anyFd }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("dma" as const), iova: iovaArb, len: fc.constant(64) }) },
    { weight: 2, arbitrary: ioctlArb(p0) as fc.Arbitrary<ThreadOp> },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("sendFd" as const), p: p0, fd: anyFd, to: proc }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("dup" as const), p: p0, fd: anyFd }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("open" as const), p: p0, path: fc.constantFrom(...OPENS) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("exit" as const) }) },
  );
}

const moduleOp: fc.Arbitrary<ModuleOp> = fc.record({
  op: fc.constant("module" as const),
  load: fc.boolean(),
  name: fc.constantFrom(...MODULES),
});

const setupStep: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("setup" as const),
      p: proc,
      kind: fc.constantFrom("type1" as const, "iommufd" as const, "kvm" as const),
      alt: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("open" as const), p: proc, path: fc.constantFrom(...OPENS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("sendFd" as const), p: p0, fd: anyFd, to: proc }) },
);

export interface ProgramShape {
  /** threads (default 4) */
  maxThreads?: number;
  /** operations a thread (default 3) */
  maxOps?: number;
}

/** A concurrent program: a setup of one to three steps, one to `maxThreads` threads whose
 * calls are drawn mostly from what the setup built. */
export function concurrentProgramArb(shape: ProgramShape = {}): fc.Arbitrary<ConcurrentProgram> {
  return fc.array(setupStep, { minLength: 1, maxLength: 3 }).chain((setup) => {
    const kinds = new Set(setup.map((x) => (x.op === "setup" ? x.kind : "")));
    const thread = fc.record({
      p: proc,
      ops: fc.array(threadOp(kinds), { minLength: 1, maxLength: shape.maxOps ?? 3 }),
    });
    return fc.record({
      setup: fc.constant(setup),
      threads: fc.array(thread, { minLength: 1, maxLength: shape.maxThreads ?? 4 }),
      admin: fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, fc.array(moduleOp, { minLength: 1, maxLength: 2 })),
    });
  });
}

// ---- the world of a program ----

/** The program on a fresh twin: its setup run, its threads ready for the explorer. */
export function programWorld(prog: ConcurrentProgram, o: WorldOptions): World {
  const r = new Runner({ twin: { coupling: o.design ?? "upstream", broken: o.broken ?? [] }, setupSpan: SPAN });
  for (const [i, st] of prog.setup.entries()) r.guard(`setup step ${i} (${st.op})`, () => r.step(st));
  r.autoOpen = false; // a thread's open is a step of its own
  const k = r.twin.kernel;
  const tasks: Task[] = [];
  // no other thread of the program holds a lock: a call the twin runs at once may go
  const quiet: Waitable = {
    name: "no lock held by another thread (a call the twin runs at once)",
    available: (t) => tasks.every((o) => o === t || o.held.length === 0),
  };
  function* whenQuiet(t: Task): KGen<void> {
    while (!quiet.available(t)) yield { kind: "block", on: quiet, where: "waiting to run a call at once" };
  }
  // With an administrator, the processes end within the program (an rmmod waiting for the
  // users of a device waits for them): the last thread of a process to finish ends it, and
  // a process the setup left with files and no thread ends at any time, in a thread of its
  // own. Without one, they end after the whole-twin check, as the fuzzer's do, so that what
  // the calls left behind is checked before the exits tidy it away.
  const endInWorld = prog.admin.length > 0;
  const exiting = new Set<Process>();
  const live = new Map<number, number>();
  const all: ProgramThread[] = [...prog.threads];
  for (const th of prog.threads) live.set(th.p % NPROCS, (live.get(th.p % NPROCS) ?? 0) + 1);
  r.slots.forEach((sl, pi) => {
    if (endInWorld && !live.has(pi) && !sl.dead && [...sl.proc.proc.files.entries()].length) {
      all.push({ p: pi, ops: [] });
      live.set(pi, 1);
    }
  });
  /** each thread's slot (its staging area; fds, data and BARs are its process's) */
  const stages: Slot[] = [];
  const threads = all.map((th, n): World["threads"][number] => {
    const pi = th.p % NPROCS;
    if (r.slots[pi]!.dead) r.slots[pi] = r.spawn(pi); // a setup killed it
    const own = r.slots[pi]!;
    // the thread's own staging area; fds, data pages and BARs are the process's
    const s: Slot = { ...own, stage: own.proc.mmap(STAGING), extra: 0x8000 };
    stages.push(s);
    const tp = own.proc;
    const kp = tp.proc;
    /** exit_group: the other threads make no more calls and leave the ones in flight (which
     * may still install fds), every fd is closed (each release may wait), then the rest of
     * do_exit, whose files_struct goes with the last thread */
    function* exit(t: Task): KGen<void> {
      if (exiting.has(kp)) return;
      exiting.add(kp);
      for (const [fd] of [...kp.files.entries()]) yield* closePath(k, kp, t, fd);
      const others: Waitable = {
        name: `the other threads of pid ${kp.pid} out of their calls`,
        available: (me) => tasks.every((o) => o === me || o.process !== kp || !o.inSyscall),
      };
      while (!others.available(t)) yield { kind: "block", on: others, where: "exit_group: other threads" };
      yield* whenQuiet(t);
      r.twin.kill(tp); // nothing if another thread's exit came first
      own.dead = true;
    }
    function* op(x: ThreadOp, t: Task): KGen<unknown> {
      switch (x.op) {
        case "ioctl": {
          const c = r.prepareIoctl(s, x);
          const rc = yield* ioctlPath(k, kp, t, c.fd, c.nr, userArg(c.arg));
          if (!kp.exited) c.done(rc);
          return rc;
        }
        case "close": {
          const fd = r.fd(s, x.fd);
          const rc = yield* closePath(k, kp, t, fd);
          if (rc === 0) for (const l of s.fds.values()) if (l.includes(fd)) l.splice(l.indexOf(fd), 1);
          return rc;
        }
        case "exit":
          yield* exit(t);
          return "exited";
        case "dma": {
          // the device, not the thread, writes: through the IOMMU core as it is at this step
          yield* preempt("device DMA");
          const port = IommuCore.of(k).device(EDU_BDF)?.pci?.dma;
          if (!port) return -ENODEV;
          return port.write(BigInt(x.iova), new Uint8Array(x.len).fill(0xa5)) ? 0 : -EFAULT;
        }
        default: {
          yield* whenQuiet(t);
          if (kp.exited) return "exited";
          r.step({ ...x, p: pi });
          return "done";
        }
      }
    }
    return {
      name: th.ops.length ? `p${pi}.t${n}` : `p${pi}.exit`,
      process: kp,
      path(t: Task): KGen<unknown[]> {
        tasks.push(t);
        return (function* () {
          const out: unknown[] = [];
          for (const [i, x] of th.ops.entries()) {
            if (i > 0) yield* preempt("between calls");
            // a thread of an exited (exiting) process makes no more calls
            if (kp.exited || exiting.has(kp)) break;
            out.push(yield* op(x, t));
          }
          // the program's end, for this process: its last thread exits it (so that what
          // waits for its files, an rmmod waiting for a device's users, can go on)
          live.set(pi, live.get(pi)! - 1);
          if (endInWorld && live.get(pi) === 0 && !kp.exited) {
            yield* preempt("end of program");
            yield* exit(t);
          }
          return out;
        })();
      },
    };
  });
  if (prog.admin.length)
    threads.push({
      name: "admin",
      path(t: Task): KGen<number[]> {
        tasks.push(t);
        return (function* () {
          const out: number[] = [];
          for (const [i, x] of prog.admin.entries()) {
            if (i > 0) yield* preempt("between calls");
            if (!x.load) out.push(yield* k.modules.unloadPath(x.name));
            else {
              yield* whenQuiet(t);
              out.push(k.modules.load(x.name));
            }
          }
          return out;
        })();
      },
    });
  return {
    kernel: k,
    threads,
    after: () => {
      // the fuzzer's end of program: every process exits, the boot modules are back, and
      // nothing beyond the boot baseline is alive (the invariants before, the explorer ran)
      r.check(true);
      return [...r.failures];
    },
    // what the threads change outside the kernel is in these objects (the runner's slots,
    // fds and failures, the threads' stages, who is exiting, live threads per process), not
    // in closure variables: the explorer restores the world from a snapshot per execution
    state: { r, tasks, exiting, live, stages },
    snapshot: true,
  };
}

// ---- the search ----

export interface ProgramSearchOptions extends ProgramShape {
  seed: number;
  /** programs to generate (shrinking runs not counted) */
  programs: number;
  design?: CouplingDesign;
  broken?: readonly string[];
  /** "pct" (default) or "dpor" with a preemption bound */
  strategy?: "pct" | "dpor";
  /** executions of each program's search (default 20) */
  executions?: number;
  /** DPOR's preemption bound (default 2) */
  preemptionBound?: number;
  /** restore each program's world from a snapshot per execution (default true), or build
   * it again (the explorer's `snapshot` option) */
  snapshot?: boolean;
  /** stop generating after this much wall time */
  timeMs?: number;
  progress?: (p: ExploreStats & { programs: number }) => void;
}

export interface ProgramFailure {
  /** the program, shrunk */
  readonly program: ConcurrentProgram;
  /** the violation on it, its schedule minimized */
  readonly outcome: Outcome;
  readonly key: string;
  /** programs run while shrinking */
  readonly shrinkRuns: number;
  /** the first failing program, as generated */
  readonly original: ConcurrentProgram;
}

export interface ProgramSearchResult extends ExploreStats {
  readonly programs: number;
  readonly failure: ProgramFailure | null;
}

/** Generate programs, search each; the first violation shrunk by program, then by schedule. */
export function searchPrograms(o: ProgramSearchOptions): ProgramSearchResult {
  const t0 = Date.now();
  const wo: WorldOptions = { design: o.design ?? "upstream", broken: o.broken ?? [] };
  const total: ExploreStats = noStats();
  let programs = 0;
  let shrinkRuns = 0;
  let key: string | null = null;
  let original: ConcurrentProgram | null = null;
  const search = (prog: ConcurrentProgram) => {
    const r = explore(() => programWorld(prog, wo), {
      strategy: o.strategy ?? "pct",
      maxExecutions: o.executions ?? 20,
      preemptionBound: o.strategy === "dpor" ? (o.preemptionBound ?? 2) : null,
      seed: o.seed,
      stopOnFirst: true,
      snapshot: o.snapshot ?? true,
    });
    total.executions += r.executions;
    total.steps += r.steps;
    total.distinctStates += r.distinctStates;
    total.sleepBlocked += r.sleepBlocked;
    return r.failures[0] ?? null;
  };
  const prop = fc.property(concurrentProgramArb(o), (prog) => {
    if (key === null) programs++;
    else shrinkRuns++;
    const f = search(prog);
    o.progress?.({ ...total, violations: key === null ? 0 : 1, elapsedMs: Date.now() - t0, programs });
    if (!f) return true;
    // while shrinking, only the same failure counts: a smaller program with another bug
    // would hide the one found
    const k = violationKey(f.violations.slice(0, 1));
    if (key === null) {
      key = k;
      original = prog;
      return false;
    }
    return k !== key;
  });
  const d = fc.check(prop, {
    seed: o.seed | 0,
    numRuns: o.programs,
    ...(o.timeMs !== undefined
      ? { interruptAfterTimeLimit: Math.max(1, o.timeMs), markInterruptAsFailure: false }
      : {}),
  });
  let failure: ProgramFailure | null = null;
  if (d.failed && d.counterexample && key !== null) {
    const same = key;
    const program = removeWhileFailing(d.counterexample[0] as ConcurrentProgram, (p) => {
      shrinkRuns++;
      const f = search(p);
      return f !== null && violationKey(f.violations.slice(0, 1)) === same;
    });
    const build = () => programWorld(program, wo);
    const f = search(program);
    if (f) {
      failure = {
        program,
        outcome: minimize(build, f),
        key,
        shrinkRuns,
        original: original!,
      };
    }
  }
  return { ...total, violations: failure ? 1 : 0, elapsedMs: Date.now() - t0, programs, failure };
}

/**
 * What fast-check's shrinking leaves (its shrinker does not go back through the chain from
 * the setup to the threads' calls), reduced further: drop a thread, a setup step or a call
 * while the program still fails the same way, until none can go.
 */
export function removeWhileFailing(
  prog: ConcurrentProgram,
  fails: (p: ConcurrentProgram) => boolean,
): ConcurrentProgram {
  const without = <T>(a: readonly T[], i: number): T[] => [...a.slice(0, i), ...a.slice(i + 1)];
  for (let changed = true; changed;) {
    changed = false;
    const candidates: ConcurrentProgram[] = [];
    if (prog.threads.length > 1)
      for (let i = 0; i < prog.threads.length; i++) candidates.push({ ...prog, threads: without(prog.threads, i) });
    for (let i = 0; i < prog.setup.length; i++) candidates.push({ ...prog, setup: without(prog.setup, i) });
    for (let i = 0; i < prog.admin.length; i++) candidates.push({ ...prog, admin: without(prog.admin, i) });
    prog.threads.forEach((th, t) => {
      if (th.ops.length > 1)
        for (let i = 0; i < th.ops.length; i++) {
          const threads = [...prog.threads];
          threads[t] = { ...th, ops: without(th.ops, i) };
          candidates.push({ ...prog, threads });
        }
    });
    for (const c of candidates)
      if (fails(c)) {
        prog = c;
        changed = true;
        break;
      }
  }
  return prog;
}

/** A program, one line per setup step, thread and the administrator. */
export function programLines(prog: ConcurrentProgram): string[] {
  const call = (x: Step | ThreadOp | ModuleOp): string => {
    const { op, ...rest } = x as { op: string; p?: number } & Record<string, unknown>;
    if (op === "ioctl") {
      const { name, fd, ...args } = rest;
      delete args.p;
      return `${String(name)}(${JSON.stringify(fd)}${Object.keys(args).length ? `, ${JSON.stringify(args)}` : ""})`;
    }
    delete rest.p;
    return `${op}${Object.keys(rest).length ? JSON.stringify(rest) : ""}`;
  };
  return [
    ...prog.setup.map((x) => `setup in p${(x as { p?: number }).p ?? 0}: ${call(x)}`),
    ...prog.threads.map((th, i) => `thread ${i} of p${th.p % NPROCS}: ${th.ops.map(call).join("; ")}`),
    ...(prog.admin.length ? [`admin: ${prog.admin.map(call).join("; ")}`] : []),
  ];
}

/** The trace file of a program's violation: the program is in it, for replay. */
export function programTraceFile(
  f: ProgramFailure,
  ctx: { seed: number; design: CouplingDesign; broken: readonly string[]; variant?: string },
): { trace: TraceFile; text: string[] } {
  const build = () => programWorld(f.program, { design: ctx.design, broken: ctx.broken });
  const t = runTraced(build, f.outcome.schedule);
  const trace = traceFile(t.outcome, {
    world: `program:${ctx.seed}`,
    design: ctx.design,
    broken: ctx.broken,
    ...(ctx.variant ? { variant: ctx.variant } : {}),
  });
  return { trace: { ...trace, program: f.program }, text: t.text };
}
