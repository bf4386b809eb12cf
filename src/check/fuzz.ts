// The twin's own fuzzer (issue 12): random multi-process programs over the whole uAPI, run on
// a fresh twin each, then checked. A program is a list of tagged steps over three process
// slots: open/close/dup, fd passing, eventfd, every ioctl of the registry (src/uapi/ioctls.ts,
// plus IOMMU_TEST_CMD) with its struct built field by field from the struct descriptor
// (valid sizes mostly, malformed sizes, huge and bad values, fds, user pointers, bad
// addresses), BAR mmap and MMIO on the edu device (its DMA engine included), pread/pwrite at
// region offsets, read/write with bad counts, munmap of pinned memory, sleeps that let
// device timers run, kills mid-program (fds sent to the dead process until its slot's next
// step spawns a new one; a call through the dead handle must throw ProcessExited), module load and
// unload, RLIMIT_MEMLOCK changes, and setup macros (a type1 container, an iommufd IOAS, a KVM
// VFIO device) so that programs reach deep states.
//
// After each program: no JavaScript exception escaped a call (a Segfault of a bad memory
// access is expected), no step was slow, every invariant holds; then every process is
// killed, the boot modules are back, and every invariant, the quiescence check and the leak
// registry (nothing beyond the boot baseline) are checked, and a fresh process must open the
// group. fast-check generates and shrinks; each distinct failure (keyed by its first line with
// the numbers blanked) is reported once, with its shrunk program, which replay() runs again.

import fc from "fast-check";
import { ProcessExited, Segfault } from "../backend/backend.js";
import type { Twin, TwinConfig, TwinProcess } from "../twin.js";
import { createTwin } from "../twin.js";
import { errnoName } from "../uapi/errno.js";
import { allIoctls, type IoctlArg } from "../uapi/ioctls.js";
import * as I from "../uapi/iommufd.js";
import {
  IOMMU_TEST_CMD,
  IOMMU_TEST_OP_ACCESS_PAGES,
  IOMMU_TEST_OP_CREATE_ACCESS,
  iommu_test_cmd,
  MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
  MOCK_FLAGS_ACCESS_WRITE,
} from "../uapi/iommufd_test.js";
import { DSA_PCI } from "../hw/machine.js";
import { KVM_TWIN_SET_PASID_TRANSLATION, kvm_twin_pasid_translation } from "../kvm/enqcmd.js";
import { KVM_GATED_MDEV_UUID } from "../vfio/mdev/kvm_gated_mdev.js";
import { VfioCore } from "../vfio/vfio_main.js";
import { DsaUser } from "../vmm/dsa_pasid.js";
import * as K from "../uapi/kvm.js";
import { StructDesc } from "../uapi/struct.js";
import * as V from "../uapi/vfio.js";
import { formatEvent } from "../kernel/trace.js";
import { checkInvariants } from "./invariants.js";
import { checkVfioQuiescent } from "./vfio_invariants.js";

// ---- programs ----

/** What an fd is: "cdev" is a device cdev not bound yet, "device" a device fd that works. */
export type Tag =
  | "kvm"
  | "vm"
  | "kvmdev"
  | "container"
  | "group"
  | "cdev"
  | "device"
  | "iommufd"
  | "eventfd"
  | "fault"
  | "other"
  /** an iommufd selftest access (IOMMU_TEST_OP_CREATE_ACCESS's fd; random programs only) */
  | "access";
const TAGS: readonly Tag[] = [
  "kvm",
  "vm",
  "kvmdev",
  "container",
  "group",
  "cdev",
  "device",
  "iommufd",
  "eventfd",
  "fault",
  "other",
];

/** The kinds of iommufd object whose ids a process records (IOAS_ALLOC's out_ioas_id, BIND's
 * out_devid, ATTACH's pt_id) so that a later call can name them as `{ id, i }`. */
export type ObjKind = "ioas" | "hwpt" | "dev";

/** An fd of the process: the i-th (modulo) it holds of a kind, or a raw number. */
export type FdRef = { t: Tag; i: number } | { raw: number };

/** A value for a struct field or an argument. Strings are integers too big for a double
 * (decimal or 0x); objects resolve at replay: an fd, an address in the process's data area,
 * in one of its BAR mappings, a bad address, sizeof the argument (+ delta), a pointer to a
 * staged s32 fd or to a staged string. */
export type Val =
  | number
  | string
  | { fd: FdRef }
  | { mem: number }
  | { bar: number }
  | { bad: "null" | "kernel" | "unmapped" | "end" }
  | { sizeof: number }
  | { fdptr: FdRef }
  | { str: string }
  /** the i-th (modulo) iommufd object id of the kind the process recorded, 0 when none */
  | { id: ObjKind; i: number };

export type Step =
  | { op: "open"; p: number; path: string }
  | { op: "close"; p: number; fd: FdRef }
  | { op: "dup"; p: number; fd: FdRef }
  | { op: "sendFd"; p: number; fd: FdRef; to: number }
  | { op: "eventfd"; p: number; flags: number }
  | {
      op: "ioctl";
      p: number;
      fd: FdRef;
      name: string;
      /** the argument for int/none/ptr ioctls */
      arg?: Val;
      /** struct fields by name (arrays as lists); missing ones are zero */
      fields?: Record<string, Val | Val[]>;
      /** words after the struct: flexible arrays, bitmaps, eventfds */
      tail?: { w: 4 | 8; v: Val[] };
      /** pass this address instead of the staged struct */
      at?: Val;
    }
  | { op: "mmapBar"; p: number; fd: FdRef; region: number; off: number; len: number }
  | { op: "mmio"; p: number; bar: number; off: number; size: number; value?: Val }
  | {
      op: "rw";
      p: number;
      fd: FdRef;
      write: boolean;
      region: number | null;
      off: number;
      count: number;
      data?: Val;
      buf?: Val;
    }
  | { op: "munmap"; p: number; what: "bar" | "mem"; i: number; len: number }
  | { op: "sleep"; p: number; ms: number }
  | { op: "kill"; p: number }
  | { op: "module"; load: boolean; name: string }
  | { op: "memlock"; p: number; bytes: number }
  | { op: "setup"; p: number; kind: SetupKind; alt: boolean };

/**
 * The setup macros. The fuzzer draws the first three; random programs (./random_program.ts)
 * all: "group" is type1's without the device (a VMM before it opens it: nothing holds the
 * device, so a driver unbind can go on while a thread looks it up); "ioas" is /dev/iommu with an IOAS and a mapping and no device (so DESTROY of the IOAS
 * can succeed), with `alt` an iommufd selftest access pinning its first page; "mdev" the
 * KVM-gated mdev's group in a type1 container, added to the process's VM (made if none); "pasid"
 * the DSA bound to an iommufd with PASID 5 attached to an IOAS, and a VM (the PASID machine);
 * "devices" every physical VFIO device's cdev bound to one iommufd with an IOAS mapped, none
 * attached (`alt`: the first), so that two devices can attach to one IOAS at once.
 */
export type SetupKind = "type1" | "group" | "iommufd" | "kvm" | "ioas" | "mdev" | "pasid" | "devices";

export type Program = Step[];

export const NPROCS = 3;
const PAGE = 0x1000;
/** each process's scratch mapping: staging for arguments below DATA, data pages above */
const SCRATCH = 1 << 20;
const STAGE_ARG = 0;
const STAGE_EXTRA = 0x8000;
const STAGE_BUF = 0xc000;
/** the staging area's size (a thread of ./random_program.ts maps one of its own) */
export const STAGING = 0x10000;
const DATA = STAGING;
const DATA_SIZE = SCRATCH - DATA;
export const MDEV_UUID = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
export const EDU_BDF = "0000:00:01.0";

const PATHS = [
  "/dev/kvm",
  "/dev/vfio/vfio",
  "/dev/vfio/1",
  "/dev/vfio/0",
  "/dev/iommu",
  "/dev/vfio/devices/vfio0",
  "/dev/vfio/devices/vfio1",
  "/dev/null",
  "/sys/bus/pci/devices/0000:00:01.0/vendor",
  "/dev/vfio",
  "/nonexistent",
];
export const MODULES = ["kvm", "vfio", "vfio_iommu_type1", "vfio_pci", "vfio_kvm_gated_mdev", "iommufd"];

interface IoctlEntry {
  readonly name: string;
  readonly nr: number;
  readonly arg: IoctlArg;
  /** the kinds of fd it is meant for */
  readonly tags: readonly Tag[];
}

function tagsOf(name: string): Tag[] {
  if (/^KVM_(GET_API_VERSION|CREATE_VM|GET_VCPU_MMAP_SIZE)$/.test(name)) return ["kvm"];
  if (name === "KVM_CHECK_EXTENSION") return ["kvm", "vm"];
  if (/_DEVICE_ATTR$/.test(name)) return ["kvmdev"];
  if (name.startsWith("KVM_")) return ["vm"];
  if (/^VFIO_(GET_API_VERSION|CHECK_EXTENSION|SET_IOMMU|IOMMU_)/.test(name)) return ["container", "iommufd"];
  if (name.startsWith("VFIO_GROUP_")) return ["group"];
  if (/^VFIO_DEVICE_(BIND|ATTACH|DETACH)/.test(name)) return ["cdev", "device"];
  if (name.startsWith("VFIO_")) return ["device"];
  return ["iommufd"];
}

let ioctlTable: IoctlEntry[] | null = null;
/** Every ioctl of the registry, and IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST's back door). */
export function fuzzIoctls(): readonly IoctlEntry[] {
  ioctlTable ??= [
    ...allIoctls().map((d) => ({ name: d.name, nr: d.nr, arg: d.arg, tags: tagsOf(d.name) })),
    { name: "IOMMU_TEST_CMD", nr: IOMMU_TEST_CMD, arg: iommu_test_cmd, tags: ["iommufd"] as Tag[] },
  ];
  return ioctlTable;
}
/** ioctls a step may name beyond the registry: the PASID forms of ATTACH/DETACH (their 6.15
 * structs) and the twin's KVM PASID proposal. Random programs on the PASID machine draw them;
 * the fuzzer's ioctlArb does not. */
const EXTRA_IOCTLS: readonly IoctlEntry[] = [
  {
    name: "VFIO_DEVICE_ATTACH_IOMMUFD_PT(pasid)",
    nr: V.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
    arg: V.vfio_device_attach_iommufd_pt_pasid,
    tags: ["device"],
  },
  {
    name: "VFIO_DEVICE_DETACH_IOMMUFD_PT(pasid)",
    nr: V.VFIO_DEVICE_DETACH_IOMMUFD_PT,
    arg: V.vfio_device_detach_iommufd_pt_pasid,
    tags: ["device"],
  },
  {
    name: "KVM_TWIN_SET_PASID_TRANSLATION",
    nr: KVM_TWIN_SET_PASID_TRANSLATION,
    arg: kvm_twin_pasid_translation,
    tags: ["vm"],
  },
];
const ioctlByName = (name: string) =>
  fuzzIoctls().find((e) => e.name === name) ?? EXTRA_IOCTLS.find((e) => e.name === name);

// ---- generators ----

const BIG = [
  "0xffffffffffffffff",
  "0x8000000000000000",
  "0x7fffffffffffffff",
  "0x100000000",
  "0x40000000000",
  "0x80000000000",
];

const intVal: fc.Arbitrary<Val> = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 16 }) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 64 }).map((k) => k * PAGE) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 31 }).map((b) => 2 ** b) },
  { weight: 1, arbitrary: fc.constantFrom(0xffffffff, 0x7fffffff, 0x80000000, 0xfff, 0x1001, 0x40000, 0x100000) },
  { weight: 1, arbitrary: fc.constantFrom(...BIG) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffffffff }) },
);

export const fdRef = (tags: readonly Tag[]): fc.Arbitrary<FdRef> =>
  fc.oneof(
    { weight: 8, arbitrary: fc.record({ t: fc.constantFrom(...tags), i: fc.nat(3) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constantFrom(...TAGS), i: fc.nat(3) }) },
    { weight: 1, arbitrary: fc.constantFrom(-1, 0, 64, 1 << 20).map((raw) => ({ raw })) },
  );
const anyFd = fdRef(TAGS);

const memVal: fc.Arbitrary<Val> = fc
  .tuple(fc.nat(DATA_SIZE / PAGE - 1), fc.constantFrom(0, 0, 0, 0x10, 0xfff))
  .map(([pg, o]) => ({ mem: pg * PAGE + o }));
const badVal: fc.Arbitrary<Val> = fc.constantFrom<Val>(
  { bad: "null" },
  { bad: "kernel" },
  { bad: "unmapped" },
  { bad: "end" },
);
const ptrVal: fc.Arbitrary<Val> = fc.oneof(
  { weight: 6, arbitrary: memVal },
  { weight: 1, arbitrary: fc.nat(3).map((bar) => ({ bar })) },
  { weight: 1, arbitrary: badVal },
  { weight: 1, arbitrary: intVal },
);
const sizeVal: fc.Arbitrary<Val> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ sizeof: 0 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, -4, 4, 8, 4096).map((d) => ({ sizeof: d })) },
  { weight: 1, arbitrary: intVal },
);

function fieldArb(name: string, first: boolean, ioctl: string): fc.Arbitrary<Val> {
  if (first && (name === "argsz" || name === "size")) return sizeVal;
  if (/fd$/.test(name) || name === "iommufd") {
    const meant = name === "iommufd" ? fdRef(["iommufd"]) : name === "groupfd" ? fdRef(["group"]) : anyFd;
    return fc.oneof({ weight: 4, arbitrary: meant.map((fd) => ({ fd })) }, intVal);
  }
  if (name === "addr" && ioctl.endsWith("DEVICE_ATTR"))
    return fc.oneof({ weight: 4, arbitrary: fdRef(["group", "cdev", "device"]).map((fdptr) => ({ fdptr })) }, ptrVal);
  if (/addr|vaddr|user_va|uptr|^data$|allowed_iovas/.test(name)) return ptrVal;
  // reserved fields and flags: zero mostly, as a valid call has them
  if (/reserved|pad/.test(name)) return fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, intVal);
  if (name === "flags") return fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: intVal });
  return fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: intVal });
}

function structArb(desc: StructDesc<any>, ioctl: string): fc.Arbitrary<Record<string, Val | Val[]>> {
  const rec: Record<string, fc.Arbitrary<Val | Val[]>> = {};
  desc.fields.forEach((f, i) => {
    if (f.scalar === undefined || f.count === 0) return; // nested structs and byte arrays stay zero
    const a = fieldArb(f.name, i === 0, ioctl);
    rec[f.name] = f.count === 1 ? a : fc.array(a, { minLength: f.count, maxLength: f.count });
  });
  // fields left out of a record are zero: fast-check shrinks them away
  return fc.record(rec, { requiredKeys: desc.fields[0] ? [desc.fields[0].name] : [] }) as fc.Arbitrary<
    Record<string, Val | Val[]>
  >;
}

const ptrArg: fc.Arbitrary<Val> = fc.oneof(
  { weight: 3, arbitrary: fdRef(["container", "iommufd"]).map((fdptr) => ({ fdptr })) },
  { weight: 3, arbitrary: fc.constantFrom(EDU_BDF, MDEV_UUID, "0000:00:02.0", "").map((str) => ({ str })) },
  { weight: 1, arbitrary: memVal },
  { weight: 1, arbitrary: badVal },
);

export function ioctlArb(p: fc.Arbitrary<number>): fc.Arbitrary<Step> {
  return fc.constantFrom(...fuzzIoctls()).chain((e) => {
    const base = { op: fc.constant("ioctl" as const), p, fd: fdRef(e.tags), name: fc.constant(e.name) };
    if (e.arg === "none") return fc.record(base);
    if (e.arg === "int")
      return fc.record({
        ...base,
        arg: fc.oneof(
          { weight: 3, arbitrary: intVal },
          anyFd.map((fd) => ({ fd })),
        ),
      });
    if (e.arg === "ptr") return fc.record({ ...base, arg: ptrArg });
    const tail = fc.record({
      w: fc.constantFrom<4 | 8>(4, 8),
      v: fc.array(
        fc.oneof(
          { weight: 2, arbitrary: intVal },
          ptrVal,
          anyFd.map((fd) => ({ fd })),
        ),
        { maxLength: 6 },
      ),
    });
    return fc.record(
      { ...base, fields: structArb(e.arg, e.name), tail: rarely(tail, 3), at: rarely(fc.oneof(badVal, memVal), 10) },
      { requiredKeys: ["op", "p", "fd", "name", "fields", "tail", "at"] },
    );
  });
}

/** `a` once in `n`, otherwise absent (undefined, which JSON leaves out) */
function rarely<T>(a: fc.Arbitrary<T>, n: number): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: n - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });
}

const EDU_REGS = [0x00, 0x04, 0x08, 0x20, 0x24, 0x60, 0x64, 0x80, 0x88, 0x90, 0x98];

/** A program: up to `maxSteps` steps over NPROCS process slots. */
export function programArb(maxSteps = 30): fc.Arbitrary<Program> {
  // most steps in the first process, so that its fds accumulate; the others share, receive
  // fds, die and run setups of their own
  const p = fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, fc.nat(NPROCS - 1));
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 12, arbitrary: ioctlArb(p) },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("setup" as const),
        p,
        kind: fc.constantFrom("type1" as const, "iommufd" as const, "kvm" as const),
        alt: fc.boolean(),
      }),
    },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("open" as const), p, path: fc.constantFrom(...PATHS) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("close" as const), p, fd: anyFd }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("dup" as const), p, fd: anyFd }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("sendFd" as const), p, fd: anyFd, to: p }) },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant("eventfd" as const), p, flags: fc.constantFrom(0, 0x800, 0x80000, 1) }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("mmapBar" as const),
        p,
        fd: fdRef(["device"]),
        region: fc.constantFrom(0, 0, 0, 1, 7, 9),
        off: fc.constantFrom(0, 0, PAGE, 0x80000, 0x100000),
        len: fc.constantFrom(PAGE, 1 << 20, 2 * PAGE, 2 << 20),
      }),
    },
    {
      weight: 5,
      arbitrary: fc.record(
        {
          op: fc.constant("mmio" as const),
          p,
          bar: fc.nat(3),
          off: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...EDU_REGS) }, fc.nat(0xfffff)),
          size: fc.constantFrom(4, 4, 4, 8, 1, 2),
          value: fc.oneof(
            { weight: 3, arbitrary: intVal },
            fc.constantFrom<Val>(0x40000, 1, 3, 5, 7, 0x100, 4096),
            fc.constant<Val>(0xffffffff),
          ),
        },
        { requiredKeys: ["op", "p", "bar", "off", "size"] },
      ),
    },
    {
      weight: 3,
      arbitrary: fc.record(
        {
          op: fc.constant("rw" as const),
          p,
          fd: fdRef(["device", "eventfd", "fault", "other"]),
          write: fc.boolean(),
          region: fc.constantFrom(0, 7, 7, 1, 8, null),
          off: fc.constantFrom(0, 4, 8, 0x3c, 0x40, 0x80, 0x98, 0xfff, 0x100000),
          count: fc.constantFrom(1, 2, 4, 8, 8, 64, 0, -1, 2 ** 32, 4096),
          data: intVal,
          buf: fc.oneof(badVal, memVal),
        },
        { requiredKeys: ["op", "p", "fd", "write", "region", "off", "count"] },
      ),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("munmap" as const),
        p,
        what: fc.constantFrom("bar" as const, "mem" as const),
        i: fc.nat(DATA_SIZE / PAGE - 1),
        len: fc.constantFrom(PAGE, 16 * PAGE, 1 << 20),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("sleep" as const), p, ms: fc.constantFrom(1, 100, 150, 1000) }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("kill" as const), p }) },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("module" as const),
        load: fc.boolean(),
        name: fc.constantFrom(...MODULES),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("memlock" as const),
        p,
        bytes: fc.constantFrom(0, PAGE, 1 << 20, 64 << 20),
      }),
    },
  );
  // most programs start from a setup or two (in the first process mostly), where the
  // device, the IOAS and the VM ioctls have something to act on
  const setup = fc.record({
    op: fc.constant("setup" as const),
    p,
    kind: fc.constantFrom("type1" as const, "iommufd" as const, "kvm" as const),
    alt: fc.boolean(),
  });
  return fc
    .tuple(fc.array(setup, { maxLength: 2 }), fc.array(step, { maxLength: maxSteps }))
    .map(([a, b]) => [...a, ...b]);
}

// ---- the replayer ----

export interface Slot {
  /** killed: the next step of this slot spawns a new process in it; fds sent to it until
   * then go to a dead process (EPIPE) */
  dead: boolean;
  proc: TwinProcess;
  fds: Map<Tag, number[]>;
  mem: number;
  /** where arguments are staged: `mem` for a process's own slot; each thread of a concurrent
   * program (./random_program.ts) stages in a mapping of its own, sharing fds, data and BARs */
  stage: number;
  bars: { addr: number; len: number }[];
  extra: number;
  /** iommufd object ids the process was given, by kind (`{ id, i }` values name them) */
  ids: Map<ObjKind, number[]>;
}

export interface RunOptions {
  /** change the twin before the program (a planted bug, another machine's quirk) */
  prepare?: (twin: Twin) => void;
  /** a step slower than this (ms) is a failure (default 2000) */
  slowMs?: number;
  /** record the trace (replay prints it) */
  trace?: boolean;
  /** the twin's configuration (a coupling design, broken variants) */
  twin?: TwinConfig;
  /** the bytes a setup maps for DMA and as guest memory (default 0x40000: 64 pages, each
   * pinned page a page the twin allocates; random programs, rebuilt per execution, map fewer) */
  setupSpan?: number;
}

export interface RunResult {
  /** what went wrong, first failure first; empty when the program passed */
  readonly failures: string[];
  readonly syscalls: number;
  readonly twin: Twin;
}

export class Runner {
  readonly twin: Twin;
  readonly slots: Slot[] = [];
  readonly failures: string[] = [];
  syscalls = 0;
  private readonly baseline: Map<string, number>;

  /** an fd of a kind the process lacks is opened first (off in concurrent threads, where an
   * open is a step of its own) */
  autoOpen = true;

  constructor(readonly o: RunOptions) {
    this.twin = createTwin(o.twin);
    o.prepare?.(this.twin);
    if (o.trace) this.twin.kernel.trace.enabled = true;
    this.baseline = describeCounts(this.twin);
    for (let i = 0; i < NPROCS; i++) this.slots.push(this.spawn(i));
  }

  spawn(i: number): Slot {
    const proc = this.twin.spawn({ memlock: 16 << 20, name: `fuzz${i}` });
    const mem = proc.mmap(SCRATCH);
    this.syscalls++;
    return { dead: false, proc, fds: new Map(), mem, stage: mem, bars: [], extra: STAGE_EXTRA, ids: new Map() };
  }

  sc<T>(v: T): T {
    this.syscalls++;
    return v;
  }

  add(s: Slot, t: Tag, fd: number): void {
    if (fd < 0) return;
    for (const l of s.fds.values()) {
      const i = l.indexOf(fd);
      if (i >= 0) l.splice(i, 1);
    }
    let l = s.fds.get(t);
    if (!l) s.fds.set(t, (l = []));
    l.push(fd);
  }

  fd(s: Slot, r: FdRef): number {
    if ("raw" in r) return r.raw;
    let l = s.fds.get(r.t);
    // a process with no fd of the kind opens one first (the call is in the trace), so that
    // short programs reach the ioctls of every kind of file
    const node = AUTO_OPEN[r.t];
    if (!l?.length && node !== undefined && this.autoOpen) {
      this.add(s, r.t, this.sc(node === "eventfd" ? s.proc.eventfd(0) : s.proc.open(node)));
      l = s.fds.get(r.t);
    }
    if (l?.length) return l[r.i % l.length]!;
    const all = [...s.fds.values()].flat();
    return all.length ? all[r.i % all.length]! : 3 + r.i;
  }

  /** note an iommufd object id the process was given */
  addId(s: Slot, kind: ObjKind, id: number): void {
    if (!id) return;
    let l = s.ids.get(kind);
    if (!l) s.ids.set(kind, (l = []));
    if (!l.includes(id)) l.push(id);
  }

  tagOfFd(s: Slot, fd: number): Tag {
    for (const [t, l] of s.fds) if (l.includes(fd)) return t;
    return "other";
  }

  stage(s: Slot, bytes: Uint8Array): number {
    if (s.extra + bytes.length > STAGE_BUF) s.extra = STAGE_EXTRA;
    const a = s.stage + s.extra;
    s.proc.write(a, bytes);
    s.extra += (bytes.length + 15) & ~15;
    return a;
  }

  val(s: Slot, v: Val, sizeof = 0): bigint {
    if (typeof v === "number") return BigInt(Math.trunc(v));
    if (typeof v === "string") return BigInt(v);
    if ("fd" in v) return BigInt(this.fd(s, v.fd));
    if ("mem" in v) return BigInt(s.mem + DATA + (v.mem % DATA_SIZE));
    if ("bar" in v) return BigInt(s.bars.length ? s.bars[v.bar % s.bars.length]!.addr : 0);
    if ("sizeof" in v) return BigInt(sizeof + v.sizeof);
    if ("fdptr" in v) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, this.fd(s, v.fdptr), true);
      return BigInt(this.stage(s, b));
    }
    if ("str" in v) return BigInt(this.stage(s, new TextEncoder().encode(v.str + "\0")));
    if ("id" in v) {
      const l = s.ids.get(v.id);
      return BigInt(l?.length ? l[v.i % l.length]! : 0);
    }
    switch (v.bad) {
      case "null":
        return 0n;
      case "kernel":
        return 0xffff888000000000n;
      case "unmapped":
        return 0x7f0000000000n;
      case "end":
        return BigInt(2 ** 47 - 4);
    }
  }

  /** an address or integer argument as the raw API takes it */
  arg(s: Slot, v: Val | undefined): number | bigint {
    if (v === undefined) return 0;
    const b = BigInt.asUintN(64, this.val(s, v));
    return b < 2n ** 53n ? Number(b) : b;
  }

  /** Stage a struct: its scalar fields from `fields`, `tail` words after it. */
  buildStruct(s: Slot, desc: StructDesc<any>, fields: Record<string, Val | Val[]>, tail?: { w: 4 | 8; v: Val[] }) {
    const tailBytes = tail ? tail.w * tail.v.length : 0;
    const total = desc.size + tailBytes;
    const obj: Record<string, unknown> = {};
    for (const f of desc.fields) {
      const v = fields[f.name];
      if (v === undefined || f.scalar === undefined) continue;
      // vfio's argsz covers the data after the struct; iommufd's size is the struct's own
      const conv = (x: Val) => scalarOf(f.scalar!, this.val(s, x, f.name === "argsz" ? total : desc.size));
      obj[f.name] = Array.isArray(v) ? v.map(conv) : conv(v);
    }
    const buf = new Uint8Array(total + 64);
    desc.encodeInto(buf, obj as never, 0);
    const dv = new DataView(buf.buffer);
    tail?.v.forEach((x, i) => {
      const b = BigInt.asUintN(64, this.val(s, x, total));
      if (tail.w === 8) dv.setBigUint64(desc.size + 8 * i, b, true);
      else dv.setUint32(desc.size + 4 * i, Number(b & 0xffffffffn), true);
    });
    return buf;
  }

  /** An ioctl with a struct argument staged at STAGE_ARG: the result and the bytes after. */
  ioctlStruct(s: Slot, fd: number, nr: number, buf: Uint8Array, at?: number | bigint): { rc: number; out: Uint8Array } {
    s.proc.write(s.stage + STAGE_ARG, buf);
    const rc = this.sc(s.proc.ioctl(fd, nr, at ?? s.stage + STAGE_ARG));
    return { rc, out: s.proc.read(s.stage + STAGE_ARG, buf.length) };
  }

  typed<Vv>(s: Slot, fd: number, nr: number, desc: StructDesc<Vv>, v: Partial<Vv>) {
    const buf = new Uint8Array(desc.size + 64);
    desc.encodeInto(buf, v, 0);
    const r = this.ioctlStruct(s, fd, nr, buf);
    return { rc: r.rc, v: desc.decode(r.out) };
  }

  step(st: Step): void {
    if (st.op === "module") {
      const m = this.twin.kernel.modules;
      this.sc(st.load ? m.load(st.name) : m.unload(st.name));
      return;
    }
    if (this.slots[st.p % NPROCS]!.dead) this.slots[st.p % NPROCS] = this.spawn(st.p % NPROCS);
    const s = this.slots[st.p % NPROCS]!;
    const p = s.proc;
    switch (st.op) {
      case "open": {
        const fd = this.sc(p.open(st.path));
        this.add(s, pathTag(st.path), fd);
        return;
      }
      case "close": {
        const fd = this.fd(s, st.fd);
        if (this.sc(p.close(fd)) === 0) for (const l of s.fds.values()) if (l.includes(fd)) l.splice(l.indexOf(fd), 1);
        return;
      }
      case "dup": {
        const fd = this.fd(s, st.fd);
        this.add(s, this.tagOfFd(s, fd), this.sc(p.dup(fd)));
        return;
      }
      case "sendFd": {
        const to = this.slots[st.to % NPROCS]!;
        const fd = this.fd(s, st.fd);
        const rc = this.sc(p.sendFd(fd, to.proc));
        if (!to.dead) this.add(to, this.tagOfFd(s, fd), rc);
        return;
      }
      case "eventfd":
        this.add(s, "eventfd", this.sc(p.eventfd(st.flags)));
        return;
      case "ioctl":
        return this.ioctl(s, st);
      case "mmapBar": {
        const fd = this.fd(s, st.fd);
        const addr = this.sc(p.mmap(st.len, { fd, offset: (BigInt(st.region) << 40n) | BigInt(st.off) }));
        if (addr >= 0) s.bars.push({ addr, len: st.len });
        return;
      }
      case "mmio": {
        const b = s.bars.length ? s.bars[st.bar % s.bars.length]! : null;
        if (!b) return;
        const addr = b.addr + (st.off % b.len);
        try {
          if (st.value === undefined) p.read(addr, st.size);
          else {
            const bytes = new Uint8Array(8);
            new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, this.val(s, st.value)), true);
            p.write(addr, bytes.subarray(0, st.size));
          }
        } catch (e) {
          if (!(e instanceof Segfault)) throw e; // SIGBUS/SIGSEGV of a bad access: expected
        }
        return;
      }
      case "rw": {
        const fd = this.fd(s, st.fd);
        const buf = st.buf !== undefined ? this.arg(s, st.buf) : s.stage + STAGE_BUF;
        if (st.write && st.data !== undefined) {
          const bytes = new Uint8Array(8);
          new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, this.val(s, st.data)), true);
          p.write(s.stage + STAGE_BUF, bytes);
        }
        if (st.region === null) this.sc(st.write ? p.writeFd(fd, buf, st.count) : p.readFd(fd, buf, st.count));
        else {
          const off = (BigInt(st.region) << 40n) | BigInt(st.off);
          this.sc(st.write ? p.pwrite(fd, buf, st.count, off) : p.pread(fd, buf, st.count, off));
        }
        return;
      }
      case "munmap": {
        if (st.what === "bar") {
          const b = s.bars.length ? s.bars[st.i % s.bars.length]! : null;
          if (b) this.sc(p.munmap(b.addr, Math.min(st.len, b.len)));
        } else this.sc(p.munmap(s.mem + DATA + st.i * PAGE, Math.min(st.len, DATA_SIZE - st.i * PAGE)));
        return;
      }
      case "sleep":
        p.sleep(st.ms);
        return;
      case "kill":
        this.twin.kill(p);
        s.dead = true;
        // the dead handle refuses calls (issue 12 #6): ProcessExited, nothing opened
        try {
          p.open("/dev/vfio/1");
          this.failures.push(`open through the handle of killed pid ${p.pid} did not throw ProcessExited`);
        } catch (e) {
          if (!(e instanceof ProcessExited)) throw e;
        }
        return;
      case "memlock":
        this.sc(p.setMemlock(st.bytes));
        return;
      case "setup":
        return this.setup(s, st.kind, st.alt);
    }
  }

  ioctl(s: Slot, st: Extract<Step, { op: "ioctl" }>): void {
    const c = this.prepareIoctl(s, st);
    c.done(this.sc(s.proc.ioctl(c.fd, c.nr, c.arg)));
  }

  /**
   * An ioctl step staged: the fd, the number and the argument to pass, and `done`, which
   * reads the result back (the fds it made join the process's kinds). A concurrent thread
   * runs the call itself between the two, as a path.
   */
  prepareIoctl(
    s: Slot,
    st: Extract<Step, { op: "ioctl" }>,
  ): { fd: number; nr: number; arg: number | bigint; done: (rc: number) => void } {
    const e = ioctlByName(st.name);
    if (!e) throw new Error(`unknown ioctl ${st.name} in the program`);
    const fd = this.fd(s, st.fd);
    if (!(e.arg instanceof StructDesc)) {
      return {
        fd,
        nr: e.nr,
        arg: this.arg(s, st.arg),
        done: (rc) => {
          if (st.name === "KVM_CREATE_VM") this.add(s, "vm", rc);
          else if (st.name === "VFIO_GROUP_GET_DEVICE_FD") this.add(s, "device", rc);
          else if (st.name === "KVM_CREATE_VCPU") this.add(s, "other", rc);
        },
      };
    }
    const desc = e.arg;
    const buf = this.buildStruct(s, desc, st.fields ?? {}, st.tail);
    s.proc.write(s.stage + STAGE_ARG, buf);
    const at = st.at !== undefined ? this.arg(s, st.at) : undefined;
    return {
      fd,
      nr: e.nr,
      arg: at ?? s.stage + STAGE_ARG,
      done: (rc) => {
        if (rc < 0 || at !== undefined) return;
        if (st.name === "VFIO_DEVICE_BIND_IOMMUFD") this.add(s, "device", fd);
        const out = desc.decode(s.proc.read(s.stage + STAGE_ARG, buf.length)) as Record<string, unknown>;
        if (st.name === "KVM_CREATE_DEVICE") this.add(s, "kvmdev", out.fd as number);
        else if (st.name === "IOMMU_FAULT_QUEUE_ALLOC") this.add(s, "fault", out.out_fault_fd as number);
        else if (st.name === "IOMMU_IOAS_ALLOC") this.addId(s, "ioas", out.out_ioas_id as number);
        else if (st.name === "VFIO_DEVICE_BIND_IOMMUFD") this.addId(s, "dev", out.out_devid as number);
        else if (st.name === "VFIO_DEVICE_ATTACH_IOMMUFD_PT") this.addId(s, "hwpt", out.pt_id as number);
        else if (st.name === "IOMMU_TEST_CMD" && out.op === IOMMU_TEST_OP_CREATE_ACCESS)
          this.add(s, "access", Number((out.data as bigint[])[0]! & 0xffffffffn));
      },
    };
  }

  /** The usual ways into deep state, each call's failure tolerated as a program's would be. */
  setup(s: Slot, kind: SetupKind, alt: boolean): void {
    const p = s.proc;
    const data = BigInt(s.mem + DATA);
    const span = BigInt(this.o.setupSpan ?? 0x40000);
    const open = (path: string, t: Tag) => {
      const fd = this.sc(p.open(path));
      this.add(s, t, fd);
      return fd;
    };
    const ioasMap = (ic: number, id: number) =>
      this.typed(s, ic, I.IOMMU_IOAS_MAP, I.iommu_ioas_map, {
        size: I.iommu_ioas_map.size,
        flags: I.IOMMU_IOAS_MAP_FIXED_IOVA | I.IOMMU_IOAS_MAP_READABLE | I.IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: id,
        user_va: data,
        length: span,
        iova: 0n,
      });
    const ioasAlloc = (ic: number) => {
      const id = this.typed(s, ic, I.IOMMU_IOAS_ALLOC, I.iommu_ioas_alloc, { size: I.iommu_ioas_alloc.size }).v
        .out_ioas_id;
      this.addId(s, "ioas", id);
      return id;
    };
    if (kind === "ioas") {
      const ic = open("/dev/iommu", "iommufd");
      const id = ioasAlloc(ic);
      ioasMap(ic, id);
      if (alt) this.pinningAccess(s, ic, id);
      return;
    }
    if (kind === "mdev") return this.mdevSetup(s, alt);
    if (kind === "devices") {
      const ic = open("/dev/iommu", "iommufd");
      const bind = V.vfio_device_bind_iommufd;
      const bound: number[] = [];
      for (const vdev of VfioCore.of(this.twin.kernel)?.devices ?? []) {
        if (!vdev.iommuDev) continue; // an mdev has no cdev of a physical device
        const fd = this.sc(p.open(`/dev/vfio/devices/vfio${vdev.cdevIndex}`));
        if (fd < 0) continue;
        const b = this.typed(s, fd, V.VFIO_DEVICE_BIND_IOMMUFD, bind, { argsz: bind.size, iommufd: ic });
        this.add(s, b.rc === 0 ? "device" : "cdev", fd);
        if (b.rc !== 0) continue;
        this.addId(s, "dev", b.v.out_devid);
        bound.push(fd);
      }
      const id = ioasAlloc(ic);
      ioasMap(ic, id);
      if (alt && bound.length) {
        const at = V.vfio_device_attach_iommufd_pt;
        const a = this.typed(s, bound[0]!, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, at, { argsz: at.size, pt_id: id });
        if (a.rc === 0) this.addId(s, "hwpt", a.v.pt_id);
      }
      return;
    }
    if (kind === "pasid") return this.pasidSetup(s, open("/dev/iommu", "iommufd"), ioasAlloc, ioasMap);
    if (kind === "kvm") {
      const kvm = open("/dev/kvm", "kvm");
      const vm = this.sc(p.ioctl(kvm, K.KVM_CREATE_VM, 0));
      this.add(s, "vm", vm);
      this.typed(s, vm, K.KVM_SET_USER_MEMORY_REGION, K.kvm_userspace_memory_region, {
        slot: 0,
        guest_phys_addr: 0n,
        memory_size: span,
        userspace_addr: data,
      });
      const dev = this.typed(s, vm, K.KVM_CREATE_DEVICE, K.kvm_create_device, { type: K.KVM_DEV_TYPE_VFIO });
      if (dev.rc < 0) return;
      this.add(s, "kvmdev", dev.v.fd);
      // a group opened first if the process has none, or a new open of the device cdev (a
      // device may be open through several); then every VFIO file the process holds is added
      if (alt) open("/dev/vfio/devices/vfio0", "cdev");
      else if (!s.fds.get("group")?.length) open("/dev/vfio/1", "group");
      for (const file of ["group", "cdev", "device"].flatMap((x) => s.fds.get(x as Tag) ?? [])) {
        const b = new Uint8Array(4);
        new DataView(b.buffer).setInt32(0, file, true);
        this.typed(s, dev.v.fd, K.KVM_SET_DEVICE_ATTR, K.kvm_device_attr, {
          group: K.KVM_DEV_VFIO_FILE,
          attr: BigInt(K.KVM_DEV_VFIO_FILE_ADD),
          addr: BigInt(this.stage(s, b)),
        });
      }
      return;
    }
    let dev: number;
    if (kind === "type1" || kind === "group") {
      const c = open("/dev/vfio/vfio", "container");
      const g = open("/dev/vfio/1", "group");
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, c, true);
      this.sc(p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, this.stage(s, b)));
      this.sc(p.ioctl(c, V.VFIO_SET_IOMMU, alt ? V.VFIO_TYPE1_IOMMU : V.VFIO_TYPE1v2_IOMMU));
      const map = V.vfio_iommu_type1_dma_map;
      const rw = V.VFIO_DMA_MAP_FLAG_READ | V.VFIO_DMA_MAP_FLAG_WRITE;
      this.typed(s, c, V.VFIO_IOMMU_MAP_DMA, map, {
        argsz: map.size,
        flags: rw,
        vaddr: data,
        iova: 0n,
        size: span,
      });
      if (kind === "group") return;
      dev = this.sc(p.ioctl(g, V.VFIO_GROUP_GET_DEVICE_FD, this.stage(s, new TextEncoder().encode(EDU_BDF + "\0"))));
      this.add(s, "device", dev);
    } else {
      const ic = open("/dev/iommu", "iommufd");
      dev = open("/dev/vfio/devices/vfio0", "cdev");
      // every cdev the process holds unbound is bound, the new one last
      const bind = V.vfio_device_bind_iommufd;
      for (const fd of [...(s.fds.get("cdev") ?? [])].sort((a, b) => (a === dev ? 1 : b === dev ? -1 : a - b))) {
        const b = this.typed(s, fd, V.VFIO_DEVICE_BIND_IOMMUFD, bind, { argsz: bind.size, iommufd: ic });
        if (b.rc !== 0) continue;
        this.add(s, "device", fd);
        this.addId(s, "dev", b.v.out_devid);
      }
      const id = ioasAlloc(ic);
      ioasMap(ic, id);
      const at = V.vfio_device_attach_iommufd_pt;
      const a = this.typed(s, dev, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, at, { argsz: at.size, pt_id: alt ? 0 : id });
      if (a.rc === 0) this.addId(s, "hwpt", a.v.pt_id);
    }
    if (dev < 0) return;
    const bar = this.sc(p.mmap(1 << 20, { fd: dev }));
    if (bar >= 0) s.bars.push({ addr: bar, len: 1 << 20 });
    // bus mastering on (config space command register), as a driver's probe does
    p.write(s.stage + STAGE_BUF, new Uint8Array([0x07, 0x01]));
    this.sc(p.pwrite(dev, s.stage + STAGE_BUF, 2, (7n << 40n) | 4n));
  }

  /**
   * An iommufd selftest access (IOMMU_TEST_OP_CREATE_ACCESS, needing pinned pages) on IOAS
   * `id`, pinning its first page: an in-kernel user of the IOAS that an unmap must ask to
   * unpin (what an mdev's access does, through the uAPI CONFIG_IOMMUFD_TEST has).
   */
  pinningAccess(s: Slot, ic: number, id: number): void {
    const cmd = (op: number, cid: number, data: bigint[]) =>
      this.typed(s, ic, IOMMU_TEST_CMD, iommu_test_cmd, {
        size: iommu_test_cmd.size,
        op,
        id: cid,
        data: [...data, 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6),
      });
    const c = cmd(IOMMU_TEST_OP_CREATE_ACCESS, id, [BigInt(MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) << 32n]);
    if (c.rc !== 0) return;
    const afd = Number(c.v.data[0]! & 0xffffffffn);
    this.add(s, "access", afd);
    // access_pages {flags, out_id; iova; length; uptr}: page 0 of the IOAS, the data page it maps
    cmd(IOMMU_TEST_OP_ACCESS_PAGES, afd, [BigInt(MOCK_FLAGS_ACCESS_WRITE), 0n, BigInt(PAGE), BigInt(s.mem + DATA)]);
  }

  /** The KVM-gated mdev (its module loaded if it is not) in a type1 container, its group added
   * to the process's KVM-VFIO device: the mdev opens only with a VM set (`alt`: no SET_IOMMU). */
  mdevSetup(s: Slot, alt: boolean): void {
    const k = this.twin.kernel;
    if (!k.modules.loaded.has("vfio_kvm_gated_mdev")) this.sc(k.modules.load("vfio_kvm_gated_mdev"));
    const vdev = VfioCore.of(k)?.devices.find((x) => x.name === KVM_GATED_MDEV_UUID);
    if (!vdev) return;
    const p = s.proc;
    const c = this.sc(p.open("/dev/vfio/vfio"));
    this.add(s, "container", c);
    const g = this.sc(p.open(`/dev/vfio/${vdev.group.id}`));
    this.add(s, "group", g);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, c, true);
    this.sc(p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, this.stage(s, b)));
    if (!alt) this.sc(p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU));
    const kvmdev = s.fds.get("kvmdev") ?? [];
    if (!kvmdev.length) return this.setup(s, "kvm", false); // adds every group the process holds
    new DataView(b.buffer).setInt32(0, g, true);
    this.typed(s, kvmdev[0]!, K.KVM_SET_DEVICE_ATTR, K.kvm_device_attr, {
      group: K.KVM_DEV_VFIO_FILE,
      attr: BigInt(K.KVM_DEV_VFIO_FILE_ADD),
      addr: BigInt(this.stage(s, b)),
    });
  }

  /** On the PASID machine: the DSA's cdev bound to an iommufd, an IOAS mapped, BARs mapped and
   * the device enabled, PASID 5 attached to the IOAS; and a VM (docs/pasid.md). */
  pasidSetup(s: Slot, ic: number, alloc: (ic: number) => number, map: (ic: number, id: number) => unknown): void {
    const vdev = VfioCore.of(this.twin.kernel)?.devices.find((x) => x.name === DSA_PCI.bdf);
    if (!vdev || ic < 0) return;
    const u = new DsaUser(s.proc);
    u.iommufd = ic;
    const rc = this.sc(u.bind(`/dev/vfio/devices/vfio${vdev.cdevIndex}`));
    if (u.cdev >= 0) this.add(s, rc === 0 ? "device" : "cdev", u.cdev);
    if (rc !== 0) return;
    this.addId(s, "dev", u.devid);
    const id = alloc(ic);
    map(ic, id);
    if (this.sc(u.mapBars()) === 0) {
      s.bars.push({ addr: u.bar0, len: 16384 });
      u.enable();
    }
    this.sc(u.attach(id, 5).rc);
    const kvm = this.sc(s.proc.open("/dev/kvm"));
    this.add(s, "kvm", kvm);
    this.add(s, "vm", this.sc(s.proc.ioctl(kvm, K.KVM_CREATE_VM, 0)));
  }

  /** Everything checked after a program (`afterOnly`: not the invariants before the exits,
   * which the explorer has just checked). */
  check(afterOnly = false): void {
    const k = this.twin.kernel;
    const add = (m: string) => this.failures.push(m);
    if (!afterOnly) for (const v of checkInvariants(k)) add(`[${v.check}] ${v.message}`);
    for (const s of this.slots) if (!s.dead) this.guard("exit", () => this.twin.kill(s.proc));
    for (const name of this.bootModules)
      if (!k.modules.loaded.has(name)) {
        const rc = k.modules.load(name);
        if (rc < 0) add(`module ${name}: reload after the program failed with ${errnoName(-rc)}`);
      }
    if (k.modules.loaded.has("vfio_kvm_gated_mdev")) {
      const rc = k.modules.unload("vfio_kvm_gated_mdev");
      if (rc < 0) add(`module vfio_kvm_gated_mdev: unload with no process left failed with ${errnoName(-rc)}`);
    }
    for (const v of checkInvariants(k)) add(`after exit: [${v.check}] ${v.message}`);
    for (const m of checkVfioQuiescent(k)) add(`after exit: [quiescent] ${m}`);
    const now = describeCounts(this.twin);
    for (const [d, n] of now) {
      const extra = n - (this.baseline.get(d) ?? 0);
      if (extra > 0) {
        const o = [...k.objects].find((x) => x.describe() === d)!;
        add(
          `leak: ${d}${extra > 1 ? ` x${extra}` : ""} alive after every process exited, held by ${[...o.holders.keys()].join(", ") || "nobody"}`,
        );
      }
    }
    this.guard("reuse", () => {
      const q = this.twin.spawn({ name: "next" });
      const g = q.open("/dev/vfio/1");
      if (g < 0) add(`reuse: a fresh process's open of /dev/vfio/1 fails with ${errnoName(-g)}`);
      this.twin.kill(q);
    });
  }

  readonly bootModules = ["kvm", "iommufd", "vfio", "vfio_iommu_type1", "vfio_pci"];

  guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.failures.push(`exception in ${what}: ${describeError(e)}`);
    }
  }
}

function scalarOf(s: string, b: bigint): number | bigint {
  switch (s) {
    case "u64":
    case "s64":
      return BigInt.asUintN(64, b);
    case "u8":
    case "s8":
      return Number(BigInt.asUintN(8, b));
    case "u16":
    case "s16":
      return Number(BigInt.asUintN(16, b));
    default:
      return Number(BigInt.asUintN(32, b));
  }
}

const AUTO_OPEN: Partial<Record<Tag, string>> = {
  kvm: "/dev/kvm",
  container: "/dev/vfio/vfio",
  group: "/dev/vfio/1",
  cdev: "/dev/vfio/devices/vfio0",
  iommufd: "/dev/iommu",
  eventfd: "eventfd",
};

function pathTag(path: string): Tag {
  if (path === "/dev/kvm") return "kvm";
  if (path === "/dev/vfio/vfio") return "container";
  if (path === "/dev/iommu") return "iommufd";
  if (path.startsWith("/dev/vfio/devices/")) return "cdev";
  if (/^\/dev\/vfio\/\d+$/.test(path)) return "group";
  return "other";
}

function describeCounts(twin: Twin): Map<string, number> {
  const m = new Map<string, number>();
  for (const o of twin.kernel.objects) m.set(o.describe(), (m.get(o.describe()) ?? 0) + 1);
  return m;
}

function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const at = e.stack?.split("\n").find((l) => l.trim().startsWith("at ")) ?? "";
  return `${e.name}: ${e.message.split("\n")[0]}${at ? ` (${at.trim()})` : ""}`;
}

function stepName(st: Step): string {
  return st.op === "ioctl" ? `ioctl ${st.name}` : st.op;
}

/** Run one program on a fresh twin and check everything after it. */
export function runProgram(prog: Program, o: RunOptions = {}): RunResult {
  const r = new Runner(o);
  const slowMs = o.slowMs ?? 2000;
  for (const [i, st] of prog.entries()) {
    const t0 = performance.now();
    try {
      r.step(st);
    } catch (e) {
      r.failures.push(`exception in step ${i} (${stepName(st)}): ${describeError(e)}`);
      break;
    }
    const ms = performance.now() - t0;
    if (ms > slowMs) r.failures.push(`slow: step ${i} (${stepName(st)}) took ${Math.round(ms)} ms`);
  }
  r.check();
  return { failures: r.failures, syscalls: r.syscalls, twin: r.twin };
}

/** A failure's identity: its first line with every number blanked. */
export function failureKey(failures: readonly string[]): string {
  return (failures[0] ?? "").replace(/0x[0-9a-f]+/gi, "0x?").replace(/\d+/g, "N");
}

// ---- the fuzzer ----

export interface FuzzOptions {
  seed: number;
  /** stop after this much time (seconds) */
  seconds?: number;
  /** stop after this many programs (shrinking runs count) */
  programs?: number;
  maxSteps?: number;
  /** called once per distinct failure, as soon as it is minimized */
  onFailure?: (f: FuzzFailure) => void;
  run?: RunOptions;
}

export interface FuzzFailure {
  readonly key: string;
  readonly failures: readonly string[];
  /** the shrunk program: replay it with runProgram / `vfio-twin fuzz --replay` */
  readonly program: Program;
}

export interface FuzzReport {
  readonly programs: number;
  readonly syscalls: number;
  readonly ms: number;
  readonly failures: FuzzFailure[];
}

export function fuzz(o: FuzzOptions): FuzzReport {
  const start = performance.now();
  const deadline = o.seconds !== undefined ? start + o.seconds * 1000 : Infinity;
  const known = new Set<string>();
  const failures: FuzzFailure[] = [];
  let programs = 0;
  let syscalls = 0;
  let firstNew: string | null = null;
  const prop = fc.property(programArb(o.maxSteps), (prog) => {
    programs++;
    const r = runProgram(prog, o.run);
    syscalls += r.syscalls;
    if (r.failures.length === 0) return true;
    const key = failureKey(r.failures);
    if (known.has(key)) return true;
    firstNew ??= key;
    return false;
  });
  for (let round = 0; ; round++) {
    const left = deadline - performance.now();
    if (left <= 0 || (o.programs !== undefined && programs >= o.programs)) break;
    firstNew = null;
    const d = fc.check(prop, {
      seed: (o.seed + round * 7919) | 0,
      numRuns: o.programs !== undefined ? o.programs - programs : 2 ** 30,
      ...(left !== Infinity ? { interruptAfterTimeLimit: Math.max(1, Math.round(left)) } : {}),
      markInterruptAsFailure: false,
    });
    if (!d.failed || !d.counterexample) break;
    const program = d.counterexample[0] as Program;
    const r = runProgram(program, o.run);
    const key = r.failures.length ? failureKey(r.failures) : (firstNew ?? "flaky");
    if (firstNew) known.add(firstNew);
    if (known.has(key) && key !== firstNew) continue;
    known.add(key);
    const f: FuzzFailure = { key, failures: r.failures, program };
    failures.push(f);
    o.onFailure?.(f);
  }
  return { programs, syscalls, ms: performance.now() - start, failures };
}

/** A program as the JSON `--replay` reads: one step a line. */
export function programJson(prog: Program): string {
  return `{ "steps": [\n${prog.map((s) => "  " + JSON.stringify(s)).join(",\n")}\n] }\n`;
}

export function parseProgram(text: string): Program {
  const j = JSON.parse(text) as { steps?: Program } | Program;
  return Array.isArray(j) ? j : (j.steps ?? []);
}

/** Replay a program with the trace on: its failures and the strace-like lines. */
export function replay(prog: Program, o: RunOptions = {}): { failures: string[]; trace: string[] } {
  const r = runProgram(prog, { ...o, trace: true });
  return { failures: r.failures, trace: r.twin.kernel.trace.events.map((e) => formatEvent(e)) };
}
