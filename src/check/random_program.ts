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
import {
  IOMMU_TEST_OP_ACCESS_PAGES,
  IOMMU_TEST_OP_ACCESS_RW,
  IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
  MOCK_ACCESS_RW_WRITE,
  MOCK_FLAGS_ACCESS_WRITE,
} from "../uapi/iommufd_test.js";
import { DSA_PCI, ORACLE_PCI } from "../hw/machine.js";
import { KVM_TWIN_PASID_CLEAR } from "../kvm/enqcmd.js";
import { explore, type ExploreStats, type Outcome, type World } from "./explorer.js";
import {
  EDU_BDF,
  type FdRef,
  fdRef,
  ioctlArb,
  MDEV_UUID,
  MODULES,
  NPROCS,
  type ObjKind,
  Runner,
  type SetupKind,
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

/** The machine: the usual one (the edu device, the KVM-gated mdev's parent), the same with a
 * second edu alone in IOMMU group 2 ("two"), or the PASID one (Linux 6.15's PASID uAPI and the
 * DSA-shaped device beside the edu, docs/pasid.md). */
export type Machine = "pc" | "two" | "pasid";

export interface ConcurrentProgram {
  /** "pc" when absent */
  readonly machine?: Machine;
  /** run sequentially, before the threads start */
  readonly setup: readonly Step[];
  readonly threads: readonly ProgramThread[];
  /** module loads and unloads by an administrator (a thread of no process of the program:
   * a `delete_module` waiting for a device's users waits for the program, not for itself) */
  readonly admin: readonly ModuleOp[];
}

const PAGE = 0x1000;
const EDU2_BDF = "0000:00:02.0";
/** the setup each machine's program starts with: what the machine is there for */
const MACHINE_SETUP: Record<Exclude<Machine, "pc">, SetupKind> = { two: "devices", pasid: "pasid" };

// ---- generation ----

const p0 = fc.constant(0);
/** a process: the first mostly, where the setup's fds are */
const proc = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.nat(NPROCS - 1));
/** what a setup maps for DMA, from IOVA 0 (fewer pages than the fuzzer's: a world is rebuilt
 * for every execution, and each pinned page is a page the twin allocates) */
const SPAN = 4 * PAGE;
/** the IOVA a thread's MAP uses mostly (beside the setup's range) */
const MAP_AT = 0x100000;
// the setup's range mostly (type1 v2 and iommufd unmap whole mappings only), parts of it, and
// beyond it
const iovaArb = fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.constantFrom(PAGE, SPAN - PAGE, MAP_AT));
/** where a thread maps: beside the setup's range mostly (a MAP there succeeds and races
 * whatever else uses the IOAS; an UNMAP of it finds it), over it sometimes */
const mapIovaArb = fc.oneof({ weight: 3, arbitrary: fc.constant(MAP_AT) }, iovaArb);
const lenArb = fc.oneof({ weight: 4, arbitrary: fc.constant(SPAN) }, fc.constantFrom(PAGE, 2 * PAGE));
const memArb: fc.Arbitrary<Val> = fc.constantFrom(0, 1, 3).map((pg) => ({ mem: pg * PAGE }));
/** an iommufd object id: one the process was given (its first mostly, so that calls of
 * different threads name the same object and race on it), or a raw number */
/** the first of a kind mostly (the same object in every thread), another sometimes */
const first = fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.nat(3));
/** an fd of one of the kinds: the process's first of the kind mostly (see `first`), any fd
 * sometimes (the fuzzer's fdRef: another kind, a raw number) */
const ref = (tags: readonly Tag[]): fc.Arbitrary<FdRef> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ t: fc.constantFrom(...tags), i: first }) },
    { weight: 1, arbitrary: fdRef(tags) },
  );

const objId = (kind: ObjKind): fc.Arbitrary<Val> =>
  fc.oneof(
    { weight: 6, arbitrary: first.map((i): Val => ({ id: kind, i })) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 4 }) },
  );
const ioasId = objId("ioas");
const destroyId = fc.oneof({ weight: 4, arbitrary: ioasId }, objId("hwpt"), objId("dev"));
const size: Val = { sizeof: 0 };

type Ioctl = Extract<Step, { op: "ioctl" }>;

function call(name: string, tags: readonly Tag[], rest: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Ioctl> {
  return fc.record({
    op: fc.constant("ioctl" as const),
    p: p0,
    fd: ref(tags),
    name: fc.constant(name),
    ...rest,
  }) as fc.Arbitrary<Ioctl>;
}
const fields = (r: Record<string, fc.Arbitrary<Val | Val[]>>) => ({ fields: fc.record(r) });

/** IOMMU_TEST_CMD on an access (its fd is the command's id); `data` the union's six words */
const testCmd = (op: number, data: fc.Arbitrary<Val[]>) =>
  call("IOMMU_TEST_CMD", ["iommufd"], {
    fields: fc.record({
      size: fc.constant(size),
      op: fc.constant(op),
      id: ref(["access"]).map((fd): Val => ({ fd })),
      data,
    }),
  });
const six = (...w: Val[]): Val[] => [...w, 0, 0, 0, 0, 0, 0].slice(0, 6);
/** a page of the setup's range and the data page it maps (an access checks they agree) */
const pageArb = fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, fc.constantFrom(1, 3));

const getDeviceFd = (name: string) => call("VFIO_GROUP_GET_DEVICE_FD", ["group"], { arg: fc.constant({ str: name }) });
const fileAttr = call(
  "KVM_SET_DEVICE_ATTR",
  ["kvmdev"],
  fields({
    group: fc.constant(K.KVM_DEV_VFIO_FILE),
    attr: fc.constantFrom(K.KVM_DEV_VFIO_FILE_DEL, K.KVM_DEV_VFIO_FILE_ADD),
    addr: fc.oneof({ weight: 3, arbitrary: ref(["group"]) }, ref(["device", "cdev"])).map((fdptr) => ({ fdptr })),
  }),
);
const ioasUnmap = call(
  "IOMMU_IOAS_UNMAP",
  ["iommufd"],
  fields({ size: fc.constant(size), ioas_id: ioasId, iova: iovaArb, length: lenArb }),
);
const ioasMap = call(
  "IOMMU_IOAS_MAP",
  ["iommufd"],
  fields({
    size: fc.constant(size),
    flags: fc.constant(I.IOMMU_IOAS_MAP_FIXED_IOVA | I.IOMMU_IOAS_MAP_READABLE | I.IOMMU_IOAS_MAP_WRITEABLE),
    ioas_id: ioasId,
    user_va: memArb,
    length: lenArb,
    iova: mapIovaArb,
  }),
);
const destroy = call("IOMMU_DESTROY", ["iommufd"], fields({ size: fc.constant(size), id: destroyId }));
const ioasAlloc = call("IOMMU_IOAS_ALLOC", ["iommufd"], fields({ size: fc.constant(size) }));
const pasidArb = fc.oneof({ weight: 3, arbitrary: fc.constant(5) }, fc.constant(1));

const unmapDma = call(
  "VFIO_IOMMU_UNMAP_DMA",
  ["container"],
  fields({ argsz: fc.constant(size), iova: iovaArb, size: lenArb }),
);
const mapDma = call(
  "VFIO_IOMMU_MAP_DMA",
  ["container"],
  fields({
    argsz: fc.constant(size),
    flags: fc.constant(V.VFIO_DMA_MAP_FLAG_READ | V.VFIO_DMA_MAP_FLAG_WRITE),
    vaddr: memArb,
    iova: mapIovaArb,
    size: lenArb,
  }),
);
const unsetContainer = call("VFIO_GROUP_UNSET_CONTAINER", ["group"], {});
const attach = call("VFIO_DEVICE_ATTACH_IOMMUFD_PT", ["device"], fields({ argsz: fc.constant(size), pt_id: ioasId }));
const detach = call("VFIO_DEVICE_DETACH_IOMMUFD_PT", ["device"], fields({ argsz: fc.constant(size) }));
// access_pages {flags, out_id; iova; length; uptr}
const accessPages = testCmd(
  IOMMU_TEST_OP_ACCESS_PAGES,
  pageArb.map((pg) => six(MOCK_FLAGS_ACCESS_WRITE, pg * PAGE, PAGE, { mem: pg * PAGE })),
);
// access_rw {iova; length; uptr; flags}: through the access into the IOAS's pages
const accessRw = testCmd(
  IOMMU_TEST_OP_ACCESS_RW,
  fc
    .tuple(pageArb, fc.constantFrom(0, MOCK_ACCESS_RW_WRITE))
    .map(([pg, w]) => six(pg * PAGE + 0x10, 64, { mem: 8 * PAGE }, w)),
);
const detachPasid = call(
  "VFIO_DEVICE_DETACH_IOMMUFD_PT(pasid)",
  ["device"],
  fields({ argsz: fc.constant(size), flags: fc.constant(V.VFIO_DEVICE_DETACH_PASID), pasid: pasidArb }),
);
const attachPasid = call(
  "VFIO_DEVICE_ATTACH_IOMMUFD_PT(pasid)",
  ["device"],
  fields({ argsz: fc.constant(size), flags: fc.constant(V.VFIO_DEVICE_ATTACH_PASID), pt_id: ioasId, pasid: pasidArb }),
);
/** link (flags 0) or clear (KVM_TWIN_PASID_CLEAR) a guest PASID's translation to a host one */
const pasidLink = (flags: fc.Arbitrary<number>) =>
  call(
    "KVM_TWIN_SET_PASID_TRANSLATION",
    ["vm"],
    fields({ flags, vpasid: fc.constant(1), ppasid: pasidArb, vfio_fd: fc.constant(-1), iommufd: fc.constant(-1) }),
  );

/** Well-formed calls of the uAPI each setup builds: what reaches deep state and races. */
const VALID: Record<SetupKind, fc.Arbitrary<Step>[]> = {
  type1: [
    unmapDma,
    mapDma,
    getDeviceFd(EDU_BDF),
    call("VFIO_GROUP_SET_CONTAINER", ["group"], { arg: ref(["container"]).map((fdptr) => ({ fdptr })) }),
    unsetContainer,
    call("VFIO_SET_IOMMU", ["container"], { arg: fc.constantFrom(V.VFIO_TYPE1v2_IOMMU, V.VFIO_TYPE1_IOMMU) }),
  ],
  kvm: [
    fileAttr,
    getDeviceFd(EDU_BDF),
    call("KVM_CREATE_DEVICE", ["vm"], fields({ type: fc.constant(K.KVM_DEV_TYPE_VFIO) })),
    call("KVM_CREATE_VM", ["kvm"], { arg: fc.constant(0) }),
  ],
  iommufd: [
    detach,
    ioasUnmap,
    attach,
    ioasMap,
    destroy,
    ioasAlloc,
    call(
      "VFIO_DEVICE_BIND_IOMMUFD",
      ["cdev"],
      fields({ argsz: fc.constant(size), iommufd: ref(["iommufd"]).map((fd) => ({ fd })) }),
    ),
  ],
  // an IOAS no device uses (DESTROY of it succeeds), maybe with an access pinning a page
  ioas: [
    ioasMap,
    ioasUnmap,
    destroy,
    ioasAlloc,
    accessPages,
    accessRw,
    testCmd(IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, fc.constant(six(0))),
  ],
  devices: [attach, detach, ioasMap, ioasUnmap, destroy],
  // the device not open yet: its lookup races a driver unbind (rmmod) and its last close
  group: [getDeviceFd(EDU_BDF), unsetContainer, unmapDma],
  // the KVM-gated mdev: opened only with the VM set, its open takes kvm->lock
  mdev: [getDeviceFd(MDEV_UUID), fileAttr, unsetContainer],
  pasid: [
    detachPasid,
    attachPasid,
    pasidLink(fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, fc.constant(KVM_TWIN_PASID_CLEAR))),
    ioasUnmap,
  ],
};

/** the fds each setup makes: what a thread closes */
const BUILT: Record<SetupKind, readonly Tag[]> = {
  type1: ["container", "group", "device"],
  group: ["container", "group", "device"],
  kvm: ["kvm", "vm", "kvmdev", "group"],
  iommufd: ["iommufd", "device", "cdev"],
  ioas: ["iommufd", "access"],
  devices: ["iommufd", "device"],
  mdev: ["container", "group", "kvmdev", "vm"],
  pasid: ["device", "iommufd", "vm"],
};

const closeOf = (t: Tag): fc.Arbitrary<ThreadOp> =>
  fc.record({ op: fc.constant("close" as const), p: p0, fd: ref([t]) });
const rmmod = (name: string): fc.Arbitrary<ModuleOp> => fc.constant({ op: "module" as const, load: false, name });

/**
 * Races on one object of a setup: the calls that use it (CORE), and what ends or changes
 * it under them (END: its destroy, the close of its fd, its driver's rmmod, a detach). A
 * racing program has two threads (or a thread and the administrator) starting with one of
 * these pairs: a use against an end, or the same use twice. The pairs are shapes (use vs
 * end of the same object), not particular bugs: which ones a kernel gets wrong is what the
 * search finds out.
 */
const CORE: Record<SetupKind, fc.Arbitrary<ThreadOp>[]> = {
  type1: [mapDma, unmapDma, getDeviceFd(EDU_BDF)],
  group: [getDeviceFd(EDU_BDF), unmapDma],
  kvm: [fileAttr, getDeviceFd(EDU_BDF)],
  iommufd: [ioasMap, ioasUnmap, attach, detach],
  ioas: [ioasMap, ioasUnmap, accessPages, accessRw],
  devices: [attach, ioasMap, ioasUnmap],
  mdev: [getDeviceFd(MDEV_UUID), fileAttr],
  pasid: [pasidLink(fc.constant(0)), attachPasid, ioasUnmap],
};
const END: Record<SetupKind, fc.Arbitrary<ThreadOp | ModuleOp>[]> = {
  type1: [closeOf("group"), closeOf("container"), unsetContainer, rmmod("vfio_pci")],
  group: [rmmod("vfio_pci"), closeOf("group"), unsetContainer],
  kvm: [closeOf("kvmdev"), closeOf("vm"), fileAttr],
  iommufd: [destroy, detach, closeOf("device"), ioasUnmap],
  ioas: [destroy, ioasUnmap, closeOf("access"), closeOf("iommufd")],
  devices: [detach, destroy, closeOf("device")],
  mdev: [closeOf("kvmdev"), closeOf("vm"), rmmod("vfio_kvm_gated_mdev")],
  pasid: [detachPasid, pasidLink(fc.constant(KVM_TWIN_PASID_CLEAR)), closeOf("device")],
};

/** the same call through the next fd of its kind */
function sibling(u: ThreadOp): ThreadOp {
  if (!("fd" in u) || !("t" in u.fd)) return u;
  return { ...u, fd: { t: u.fd.t, i: u.fd.i + 1 } } as ThreadOp;
}

/** a race on the focus's objects: [the use, the other side] */
function raceArb(kind: SetupKind): fc.Arbitrary<[ThreadOp, ThreadOp | ModuleOp]> {
  const use = fc.oneof(...CORE[kind]);
  return fc.oneof(
    { weight: 2, arbitrary: fc.tuple(use, fc.oneof(...END[kind])) },
    { weight: 2, arbitrary: use.map((u): [ThreadOp, ThreadOp] => [u, u]) },
    // the same use of a sibling (the next fd of the kind: another device on the same IOAS)
    { weight: 1, arbitrary: use.map((u): [ThreadOp, ThreadOp] => [u, sibling(u)]) },
  );
}

const anyFd = ref(["container", "group", "device", "cdev", "iommufd", "kvmdev", "vm", "kvm"]);
const OPENS = ["/dev/vfio/1", "/dev/vfio/vfio", "/dev/iommu", "/dev/vfio/devices/vfio0", "/dev/kvm"];

/**
 * A thread's operation. The well-formed calls of the setups the program has weigh most, and
 * of those the program's focus (one setup's objects, the same for every thread) most: calls
 * of several threads on one object are what races.
 */
function threadOp(kinds: ReadonlySet<SetupKind>, focus: SetupKind | null): fc.Arbitrary<ThreadOp> {
  const valid = (Object.keys(VALID) as SetupKind[]).map((kind) => ({
    weight: kind === focus ? 24 : kinds.has(kind) ? 4 : 1,
    arbitrary: fc.oneof(...VALID[kind]) as fc.Arbitrary<ThreadOp>,
  }));
  const built = [...new Set([...kinds].flatMap((k) => BUILT[k]))];
  const closeFd = built.length ? fc.oneof({ weight: 3, arbitrary: ref(built) }, anyFd) : anyFd;
  return fc.oneof(
    { weight: 20, arbitrary: fc.oneof(...valid) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("close" as const), p: p0, fd: closeFd }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("dma" as const), iova: iovaArb, len: fc.constant(64) }) },
    { weight: 2, arbitrary: ioctlArb(p0) as fc.Arbitrary<ThreadOp> },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("sendFd" as const), p: p0, fd: anyFd, to: proc }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("dup" as const), p: p0, fd: anyFd }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("open" as const), p: p0, path: fc.constantFrom(...OPENS) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("exit" as const) }) },
  );
}

/** rmmod mostly (of vfio_pci most: its remove waits for the device's users, which the
 * program's threads are), modprobe sometimes */
const moduleOp: fc.Arbitrary<ModuleOp> = fc.record({
  op: fc.constant("module" as const),
  load: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, fc.constant(true)),
  name: fc.oneof({ weight: 3, arbitrary: fc.constant("vfio_pci") }, fc.constantFrom(...MODULES)),
});

function setupStep(machine: Machine): fc.Arbitrary<Step> {
  const kinds: fc.WeightedArbitrary<SetupKind>[] = [
    { weight: 2, arbitrary: fc.constant("type1") },
    { weight: 1, arbitrary: fc.constant("group") },
    { weight: 2, arbitrary: fc.constant("iommufd") },
    { weight: 2, arbitrary: fc.constant("kvm") },
    { weight: 2, arbitrary: fc.constant("ioas") },
    { weight: 1, arbitrary: fc.constant("mdev") },
    { weight: 1, arbitrary: fc.constant("devices") },
    ...(machine === "pasid" ? [{ weight: 2, arbitrary: fc.constant<SetupKind>("pasid") }] : []),
  ];
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({ op: fc.constant("setup" as const), p: proc, kind: fc.oneof(...kinds), alt: fc.boolean() }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("open" as const), p: proc, path: fc.constantFrom(...OPENS) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("sendFd" as const), p: p0, fd: anyFd, to: proc }) },
  );
}

export interface ProgramShape {
  /** threads (default 4) */
  maxThreads?: number;
  /** operations a thread (default 3) */
  maxOps?: number;
}

/** A concurrent program: a machine, a setup of one to three steps, one to `maxThreads`
 * threads whose calls are drawn mostly from what the setup built. */
export function concurrentProgramArb(shape: ProgramShape = {}): fc.Arbitrary<ConcurrentProgram> {
  const machine = fc.oneof(
    { weight: 4, arbitrary: fc.constant<Machine>("pc") },
    fc.constant<Machine>("two"),
    fc.constant<Machine>("pasid"),
  );
  const setupArb = (m: Machine) =>
    fc
      .array(setupStep(m), { minLength: m === "pc" ? 1 : 0, maxLength: m === "pc" ? 3 : 2 })
      // the other machines' programs start with their setup (two devices on one iommufd;
      // the DSA's PASID attached and a VM)
      .map((setup) =>
        m === "pc" ? setup : [{ op: "setup" as const, p: 0, kind: MACHINE_SETUP[m], alt: false }, ...setup],
      );
  return machine
    .chain((m) => fc.tuple(fc.constant(m), setupArb(m)))
    .chain(([m, setup]) => {
      const made = setup.flatMap((x) => (x.op === "setup" ? [x] : []));
      const focus = made.length ? fc.constantFrom(...made) : fc.constant(null);
      return fc.tuple(fc.constant(m), fc.constant(setup), focus);
    })
    .chain(([m, setup, focus]) => {
      const kinds = new Set(setup.flatMap((x) => (x.op === "setup" ? [x.kind] : [])));
      const threadOps = fc.array(threadOp(kinds, focus?.kind ?? null), {
        minLength: 1,
        maxLength: shape.maxOps ?? 3,
      });
      const thread = fc.record({ p: proc, ops: threadOps });
      const admin = fc.oneof(
        { weight: 3, arbitrary: fc.constant([]) },
        fc.array(moduleOp, { minLength: 1, maxLength: 2 }),
      );
      const free = fc.record({ threads: fc.array(thread, { minLength: 1, maxLength: shape.maxThreads ?? 4 }), admin });
      // two threads of the focus's process racing on its objects (or one and the
      // administrator), each maybe going on with another call, maybe a third thread
      const racing = (f: Extract<Step, { op: "setup" }>) =>
        fc
          .tuple(
            raceArb(f.kind),
            fc.array(threadOp(kinds, f.kind), { maxLength: 1 }),
            fc.array(threadOp(kinds, f.kind), { maxLength: 1 }),
            fc.array(thread, { maxLength: Math.max(0, (shape.maxThreads ?? 4) - 2) > 0 ? 1 : 0 }),
          )
          .map(([[a, b], more0, more1, extra]) => {
            const p = f.p % NPROCS;
            const threads: ProgramThread[] = [{ p, ops: [a, ...more0] }];
            if (b.op === "module") return { threads: [...threads, ...extra], admin: [b] };
            return { threads: [...threads, { p, ops: [b, ...more1] }, ...extra], admin: [] };
          });
      const body = focus ? fc.oneof({ weight: 3, arbitrary: racing(focus) }, free) : free;
      return body.map((b): ConcurrentProgram => ({
        ...(m === "pc" ? {} : { machine: m }),
        setup,
        threads: b.threads,
        admin: b.admin,
      }));
    });
}

// ---- the world of a program ----

/** The program on a fresh twin: its setup run, its threads ready for the explorer. */
export function programWorld(prog: ConcurrentProgram, o: WorldOptions): World {
  const r = new Runner({
    twin: {
      coupling: o.design ?? "upstream",
      broken: o.broken ?? [],
      // the PASID uAPI (6.15) and the DSA-shaped device (docs/pasid.md)
      ...(prog.machine === "pasid" ? { kernelVersion: "6.15" as const, pci: [...ORACLE_PCI, DSA_PCI] } : {}),
      ...(prog.machine === "two" ? { pci: [...ORACLE_PCI, { ...ORACLE_PCI[0]!, bdf: EDU2_BDF, iommuGroup: 2 }] } : {}),
    },
    setupSpan: SPAN,
  });
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
      // (guarded: a kernel bug there, a deadlock of a lock a broken path left held, is a
      // violation of this execution, not an exception out of the search)
      r.guard("the end of the program", () => r.check(true));
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
  /** restore each program's world from a snapshot per execution, or build it again (the
   * explorer's `snapshot` option). Default: from 20 executions a program, where it breaks
   * even (bench/programs.ts: taking the snapshot costs about a build, and an execution's end
   * check, not the build, is most of its cost) */
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
      snapshot: o.snapshot ?? (o.executions ?? 20) >= 20,
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
  // a property that threw (not a violation: an exception out of the explorer) is not a
  // clean run
  if (d.failed && key === null) throw d.errorInstance ?? new Error("the program search failed with no violation");
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
    ...(prog.machine && prog.machine !== "pc" ? [`machine: ${prog.machine}`] : []),
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
