// "Who holds it?": for any object of the twin (a VFIO group, device or container, an iommufd
// object, a KVM VM, a file, a module) the chain of references that keeps it alive, back to a
// process and its fd, a mapping, or a kernel object, each with the syscall that took it. This
// is the answer a VMM developer wants when an open or an ioctl says EBUSY.
//
// Every refcounted object names its holders (src/kernel/kref.ts: "fd 5 of pid 2", "group file",
// "kvm-vfio of vm 1"); modules name their pins. The object graph here resolves those names to
// the objects behind them: a holder name is only a string in the model, and this file is the
// one place that knows which object each kind of name stands for (docs/holders.md).

import type { File } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import type { RefCounted, RefOrigin } from "../kernel/kref.js";
import type { Module } from "../kernel/module.js";
import type { BusyCall, Process } from "../kernel/process.js";
import type { HeldObject, HolderLink } from "../kernel/trace.js";
import { ioctlsByNr } from "../uapi/ioctls.js";
import { IommuCore } from "../iommu/iommu.js";
import type { IommuDomain } from "../iommu/domain.js";
import { iommu_destroy, IOMMU_DESTROY } from "../uapi/iommufd.js";

export type { HeldObject, HolderLink } from "../kernel/trace.js";

// ---- the flat answer (kept for existing callers): the holders of the open files of a path ----

export interface Holder {
  /** the file's description */
  readonly file: string;
  /** "fd 5 of pid 2", "vma", "kvm-vfio of vm 1", ... */
  readonly holder: string;
  readonly count: number;
  /** the process name when the holder is an fd */
  readonly process?: string;
}

export function whoHolds(k: Kernel, path: string): Holder[] {
  const out: Holder[] = [];
  for (const o of k.objects) {
    if (o.kind !== "file" || (o as File).path !== path) continue;
    for (const [h, n] of o.holders) {
      const m = /^fd (\d+) of pid (\d+)$/.exec(h);
      const proc = m ? k.processes.get(Number(m[2])) : undefined;
      out.push({ file: o.describe(), holder: h, count: n, ...(proc ? { process: `${proc.name}[${proc.pid}]` } : {}) });
    }
  }
  return out;
}

export function formatHolders(path: string, hs: readonly Holder[]): string {
  if (hs.length === 0) return `${path}: not open`;
  return [
    `${path}:`,
    ...hs.map((h) => `  ${h.holder}${h.process ? ` (${h.process})` : ""}${h.count > 1 ? ` x${h.count}` : ""}`),
  ].join("\n");
}

// ---- the object graph ----

export type NodeKind =
  | "process"
  | "fd"
  | "vma"
  | "file"
  | "vfio_group"
  | "vfio_device"
  | "vfio_container"
  | "iommufd"
  | "kvm"
  | "domain"
  | "module"
  | "kernel";

export interface GraphNode {
  readonly id: string;
  readonly kind: NodeKind;
  readonly label: string;
  /** the refcount (objects), the module refcount (modules) */
  readonly refs?: number;
}

/** `from` holds `to`: `count` references under the name `ref`, the first taken by `takenBy`. */
export interface GraphEdge {
  readonly from: string;
  readonly to: string;
  readonly ref: string;
  readonly count: number;
  readonly takenBy?: string;
}

export interface ObjectGraph {
  readonly nodes: Map<string, GraphNode>;
  readonly edges: GraphEdge[];
}

/** The syscall that took a reference, strace-style: `ioctl(7, VFIO_GROUP_SET_CONTAINER) by qemu[1]`. */
export function originText(o: RefOrigin): string {
  let call: string;
  switch (o.call) {
    case "open":
      call = `openat(${JSON.stringify(o.path)})`;
      break;
    case "ioctl":
      call = `ioctl(${o.a0}, ${ioctlsByNr(o.a1)[0]?.name ?? `0x${o.a1.toString(16)}`})`;
      break;
    case "mmap":
      call = `mmap(fd ${o.a0})`;
      break;
    case "sendmsg":
      call = `sendmsg(SCM_RIGHTS fd ${o.a0} to pid ${o.a1})`;
      break;
    case "eventfd2":
      call = "eventfd2()";
      break;
    default:
      call = `${o.call}(${o.a0})`;
  }
  return `${call} by ${o.task}`;
}

const objId = (o: RefCounted) => `obj:${o.serial}`;

function kindOf(o: RefCounted): NodeKind {
  if (o.kind.startsWith("iommufd_")) return "iommufd";
  switch (o.kind) {
    case "file":
    case "vfio_group":
    case "vfio_device":
    case "vfio_container":
    case "kvm":
      return o.kind;
  }
  return "kernel";
}

function label(o: RefCounted): string {
  if (o.kind === "file") {
    const f = o as File;
    return `file ${f.path} (${f.fops.name})`;
  }
  return o.describe();
}

interface Resolver {
  readonly re: RegExp;
  readonly find: (m: RegExpExecArray, held: RefCounted | Module, g: Builder) => string[];
}

/** Finds objects for holder names. */
class Builder {
  readonly nodes = new Map<string, GraphNode>();
  readonly edges: GraphEdge[] = [];
  readonly files: File[] = [];
  readonly objs: RefCounted[] = [];

  /** files whose last reference went in a syscall still running: their release (and the
   * references it drops) waits for the return to user space (task_work) */
  readonly pending = new Set<File>();

  constructor(readonly k: Kernel) {
    for (const o of k.objects) {
      this.objs.push(o);
      if (o.kind === "file") this.files.push(o as File);
    }
    for (const t of [...[...k.processes.values()].map((p) => p.mainTask), k.kthread, k.current]) {
      for (const f of t?.taskWork ?? []) {
        if (this.pending.has(f)) continue;
        this.pending.add(f);
        this.objs.push(f);
        this.files.push(f);
      }
    }
  }

  node(n: GraphNode): string {
    if (!this.nodes.has(n.id)) this.nodes.set(n.id, n);
    return n.id;
  }

  kernel(name: string): string {
    return this.node({ id: `kernel:${name}`, kind: "kernel", label: name });
  }

  filesWhere(pred: (f: File) => boolean): string[] {
    return this.files.filter(pred).map(objId);
  }

  objsWhere(pred: (o: any) => boolean): string[] {
    return this.objs.filter(pred).map(objId);
  }

  /** an iommufd object by id in the context named `ctx` */
  iommufdObj(ctx: string, id: number): string[] {
    return this.objsWhere((o) => o.kind.startsWith("iommufd_") && o.ctxName === ctx && o.id === id);
  }

  /** the iommufd file of the context named `ctx` */
  iommufdFile(ctx: string): string[] {
    return this.filesWhere((f) => f.fops.name === "iommufd" && (f.privateData as { name?: string })?.name === ctx);
  }
}

const data = (f: File) => f.privateData as any;

/** What each holder name stands for (the names are set where the references are taken). */
const OBJECT_HOLDERS: readonly Resolver[] = [
  { re: /^device file (\d+)$/, find: (m, _o, g) => g.filesWhere((f) => f.ino === Number(m[1])) },
  // the file whose private data is the object: a group's, container's, VM's, fault's file
  {
    re: /^(group file|container file|vm file|fault file)$/,
    find: (_m, o, g) =>
      // a fault file also keeps its context's iommufd file
      (o as RefCounted).kind === "file" && (o as File).fops.name === "iommufd"
        ? g.filesWhere((f) => f.fops.name === "iommufd-pgfault" && data(f)?.ictx?.file === o)
        : g.filesWhere((f) => f.privateData === o),
  },
  // a device file from GET_DEVICE_FD keeps its group's file
  { re: /^vfio device use of group$/, find: (_m, o, g) => g.filesWhere((f) => data(f)?.group?.openedFile === o) },
  { re: /^device (.+)$/, find: (m, _o, g) => g.objsWhere((x) => x.kind === "vfio_device" && x.name === m[1]) },
  { re: /^group (\d+)$/, find: (m, _o, g) => g.objsWhere((x) => x.kind === "vfio_group" && x.id === Number(m[1])) },
  {
    re: /^registration$/,
    find: (_m, o, g) => [g.kernel(`driver ${(o as any).driverModule?.name ?? "?"}: device registration`)],
  },
  {
    re: /^kvm device$/,
    find: (_m, o, g) => g.filesWhere((f) => f.fops.name === "kvm-device" && data(f)?.kvm === o),
  },
  {
    re: /^kvm_get_kvm_safe$/,
    find: (_m, o, g) => g.objsWhere((x) => x.kind === "vfio_device" && x.kvm === o),
  },
  {
    // KVM's VFIO device keeps each added file; it lives as long as its fd (or its VM)
    re: /^kvm-vfio of vm (\d+)/,
    find: (m, _o, g) => {
      const vm = Number(m[1]);
      const dev = g.filesWhere(
        (f) => f.fops.name === "kvm-device" && data(f)?.ops?.name === "kvm-vfio" && data(f)?.kvm?.id === vm,
      );
      return dev.length ? dev : g.objsWhere((x) => x.kind === "kvm" && x.id === vm);
    },
  },
  {
    re: /^(hwpt|nested hwpt|access|attached device) (\d+)$/,
    find: (m, o, g) => g.iommufdObj((o as any).ctxName, Number(m[2])),
  },
  {
    re: /^iommufd (access|device) (\d+)$/,
    find: (m, o, g) => g.iommufdObj(data(o as File)?.name, Number(m[2])),
  },
  // a bound cdev file keeps the iommufd file; the VFIO device keeps its iommufd device
  {
    re: /^vfio cdev (.+)$/,
    find: (m, _o, g) => g.filesWhere((f) => f.fops.name === "vfio-device" && data(f)?.device?.name === m[1]),
  },
  // the group a VFIO_GROUP_SET_CONTAINER(iommufd) attached keeps the iommufd file
  { re: /^vfio group (.+)$/, find: (m, _o, g) => g.objsWhere((x) => x.kind === "vfio_group" && x.path === m[1]) },
  {
    re: /^vfio driver$/,
    find: (_m, o, g) => g.objsWhere((x) => x.kind === "vfio_device" && x.iommuDev === (o as any).dev),
  },
  { re: /^xarray$/, find: (_m, o, g) => g.iommufdFile((o as any).ctxName) },
  { re: /^attachment$/, find: (_m, _o, g) => [g.kernel("iommufd: device attached to a page table")] },
  { re: /^init$/, find: (_m, _o, g) => [g.kernel("creator (a reference not yet handed over)")] },
];

/** What each module pin stands for. */
const MODULE_PINS: readonly Resolver[] = [
  {
    re: /^file (.+)$/,
    find: (m, mod, g) => g.filesWhere((f) => f.path === m[1] && f.fops.owner === mod),
  },
  { re: /^kvm vm (\d+)$/, find: (m, _o, g) => g.objsWhere((x) => x.kind === "kvm" && x.id === Number(m[1])) },
  {
    re: /^vfio device (.+) open$/,
    find: (m, _o, g) => g.objsWhere((x) => x.kind === "vfio_device" && x.name === m[1]),
  },
  {
    re: /^vfio container (\d+) backend$/,
    find: (m, _o, g) => g.objsWhere((x) => x.kind === "vfio_container" && x.id === Number(m[1])),
  },
  // VFIO keeps kvm_put_kvm from the first open with a VM to the last close
  {
    re: /^symbol_get\(kvm_put_kvm\)$/,
    find: (_m, _o, g) => g.objsWhere((x) => x.kind === "vfio_device" && x.putKvm),
  },
  {
    re: /^(kvm-vfio of vm \d+): vfio_file_ops$/,
    find: (m, _o, g) => OBJECT_HOLDERS.find((r) => r.re.test(m[1]!))!.find(/(.*)/.exec(m[1]!)!, _o, g),
  },
];

function resolve(rs: readonly Resolver[], name: string, held: RefCounted | Module, g: Builder): string[] {
  for (const r of rs) {
    const m = r.re.exec(name);
    if (m) return r.find(m, held, g);
  }
  return [];
}

/** Without a process's standard fds on /dev/null (every process has them: noise in a picture). */
export function withoutStdio(graph: ObjectGraph): ObjectGraph {
  const drop = new Set<string>();
  for (const e of graph.edges) {
    const held = graph.nodes.get(e.to);
    if (/^fd:\d+:[012]$/.test(e.from) && held?.kind === "file" && held.label === "file /dev/null (null)") {
      drop.add(e.from);
      drop.add(e.to);
    }
  }
  return {
    nodes: new Map([...graph.nodes].filter(([id]) => !drop.has(id))),
    edges: graph.edges.filter((e) => !drop.has(e.from) && !drop.has(e.to)),
  };
}

/** The whole graph: processes, fds, mappings, files, objects, modules and the references. */
export function objectGraph(k: Kernel): ObjectGraph {
  const g = new Builder(k);
  const procs = [...k.processes.values()];
  for (const p of procs) g.node({ id: `proc:${p.pid}`, kind: "process", label: `${p.name}[${p.pid}]` });
  for (const o of g.objs) {
    const pending = g.pending.has(o as File) ? " (release pending)" : "";
    g.node({ id: objId(o), kind: kindOf(o), label: `${label(o)}${pending}`, refs: o.refs });
  }
  for (const m of k.modules.loaded.values())
    g.node({ id: `mod:${m.name}`, kind: "module", label: `module ${m.name}`, refs: m.refcnt });

  for (const p of procs) {
    for (const [fd, f] of p.files.entries()) {
      const id = g.node({ id: `fd:${p.pid}:${fd}`, kind: "fd", label: `fd ${fd}` });
      g.edges.push({ from: `proc:${p.pid}`, to: id, ref: "fd table", count: 1 });
      const ref = `fd ${fd} of pid ${p.pid}`;
      const o = f.origins.get(ref);
      g.edges.push({ from: id, to: objId(f), ref, count: 1, ...(o ? { takenBy: originText(o) } : {}) });
    }
    for (const v of p.mm.vmas) {
      if (!v.file) continue;
      const id = g.node({
        id: `vma:${p.pid}:${v.start}`,
        kind: "vma",
        label: `mapping 0x${v.start.toString(16)}-0x${v.end.toString(16)}`,
      });
      g.edges.push({ from: `proc:${p.pid}`, to: id, ref: "address space", count: 1 });
      g.edges.push({ from: id, to: objId(v.file), ref: "vma", count: 1 });
    }
  }
  for (const o of g.objs) {
    for (const [ref, count] of o.holders) {
      if (/^fd \d+ of pid \d+$/.test(ref) || ref === "vma") continue; // from the processes above
      const origin = o.origins.get(ref);
      const takenBy = origin ? { takenBy: originText(origin) } : {};
      let from = resolve(OBJECT_HOLDERS, ref, o, g);
      if (from.length === 0) from = [g.kernel(ref)];
      for (const f of from) g.edges.push({ from: f, to: objId(o), ref, count, ...takenBy });
    }
  }
  addDomains(k, g);
  for (const m of k.modules.loaded.values()) {
    for (const [ref, count] of m.pins) {
      const origin = m.pinOrigins.get(ref);
      const takenBy = origin ? { takenBy: originText(origin) } : {};
      let from = resolve(MODULE_PINS, ref, m, g);
      if (from.length === 0) from = [g.kernel(ref)];
      for (const f of from) g.edges.push({ from: f, to: `mod:${m.name}`, ref, count, ...takenBy });
    }
    for (const u of m.usedBy)
      g.edges.push({ from: `mod:${u.name}`, to: `mod:${m.name}`, ref: "uses symbols", count: 1 });
  }
  return { nodes: g.nodes, edges: g.edges };
}

/**
 * The IOMMU domains DMA goes through for groups that userspace claimed (a VFIO group or an
 * iommufd device): what owns each (type1's container, an iommufd HWPT) and which VFIO groups
 * are attached. Domains are not refcounted; the arrows say "owns" and "DMA through".
 */
function addDomains(k: Kernel, g: Builder): void {
  const core = IommuCore.of(k);
  const seen = new Map<IommuDomain, string>();
  for (const grp of core.groups.values()) {
    const d = grp.domain;
    if (d === grp.defaultDomain || !grp.dmaOwnerClaimed()) continue;
    let id = seen.get(d);
    if (id === undefined) {
      id = g.node({ id: `dom:${d.id}`, kind: "domain", label: `iommu_domain ${d.id} (${d.type})` });
      seen.set(d, id);
      const hwpt = /^iommufd hwpt (\d+)$/.exec(d.owner);
      const owners = hwpt
        ? g.objsWhere((x) => x.kind === "iommufd_hwpt_paging" && x.id === Number(hwpt[1]) && x.domain === d)
        : g.objsWhere((x) => x.kind === "vfio_container" && x.iommuData?.domains?.some((v: any) => v.domain === d));
      // a group's blocking domain is the IOMMU core's own (claimed, attached to nothing else)
      if (d !== grp.blockingDomain)
        for (const o of owners.length ? owners : [g.kernel(`${d.owner} (domain owner)`)])
          g.edges.push({ from: o, to: id, ref: "owns", count: 1 });
    }
    for (const vg of g.objsWhere((x) => x.kind === "vfio_group" && x.iommuGroup === grp))
      g.edges.push({ from: vg, to: id, ref: "DMA through", count: 1 });
  }
}

// ---- chains ----

const MAX_DEPTH = 12;

function chainsTo(graph: ObjectGraph, id: string, seen: Set<string>, depth: number): HolderLink[] {
  if (depth > MAX_DEPTH) return [];
  const out: HolderLink[] = [];
  for (const e of graph.edges) {
    if (e.to !== id || seen.has(e.from)) continue;
    const n = graph.nodes.get(e.from)!;
    seen.add(e.from);
    out.push({
      ref: e.ref,
      holder: n.label,
      kind: n.kind,
      count: e.count,
      ...(e.takenBy ? { takenBy: e.takenBy } : {}),
      heldBy: chainsTo(graph, e.from, seen, depth + 1),
    });
    seen.delete(e.from);
  }
  return out;
}

/** The chains of references keeping the node `id` alive. */
export function heldObject(graph: ObjectGraph, id: string): HeldObject | null {
  const n = graph.nodes.get(id);
  if (!n) return null;
  return {
    object: n.label,
    kind: n.kind,
    ...(n.refs !== undefined ? { refs: n.refs } : {}),
    holders: chainsTo(graph, id, new Set([id]), 0),
  };
}

/**
 * What a user names: a device path (/dev/vfio/1: the object behind the node and every open
 * file of it), a module ("module vfio" or "vfio_pci"), or an object as reports describe it
 * ("vfio_group 1", "kvm vm 1", "iommufd ioas 2 of iommufd ctx 1", "vfio_container 1").
 */
export function findTargets(k: Kernel, graph: ObjectGraph, what: string): string[] {
  const ids: string[] = [];
  const dev = k.devices.lookup(what);
  if (dev && typeof dev.data === "object" && dev.data !== null && "serial" in dev.data)
    ids.push(objId(dev.data as RefCounted));
  for (const o of k.objects) if (o.kind === "file" && (o as File).path === what) ids.push(objId(o));
  const mod = what.replace(/^module /, "");
  if (k.modules.loaded.has(mod)) ids.push(`mod:${mod}`);
  for (const [id, n] of graph.nodes)
    if (n.label === what || (n.kind !== "file" && n.label.startsWith(`${what} `))) ids.push(id);
  return [...new Set(ids)];
}

/** "Who holds it" for a path, module or object name: one entry per object found. */
export function whoHoldsChains(k: Kernel, what: string): HeldObject[] {
  const graph = objectGraph(k);
  return findTargets(k, graph, what)
    .map((id) => heldObject(graph, id))
    .filter((h): h is HeldObject => h !== null);
}

/** The objects an EBUSY was about: the node opened, the file an ioctl went to and what it stands
 * for, the iommufd object IOMMU_DESTROY named. */
export function busyTargets(k: Kernel, p: Process, b: BusyCall, graph: ObjectGraph): string[] {
  if (b.call === "open") return findTargets(k, graph, b.path);
  const f = p.files.lookup(b.fd);
  if (!f) return [];
  const ids = [objId(f)];
  const pd = f.privateData as { serial?: number } | null;
  if (pd && typeof pd === "object" && typeof pd.serial === "number" && k.objects.has(pd as RefCounted))
    ids.push(objId(pd as RefCounted));
  if (b.call === "ioctl" && b.cmd === IOMMU_DESTROY && f.fops.name === "iommufd") {
    const bytes = k.withTask(p.mainTask, () => p.mm.copyFromUser(b.arg, iommu_destroy.size));
    const ctx = (f.privateData as { name?: string } | null)?.name;
    if (typeof bytes !== "number" && ctx) {
      const id = iommu_destroy.decode(bytes).id;
      for (const o of k.objects) if ((o as any).ctxName === ctx && (o as any).id === id) ids.push(objId(o));
    }
  }
  return ids;
}

/** Who holds what the process's last EBUSY was about. */
export function explainBusy(k: Kernel, p: Process): HeldObject[] {
  if (!p.lastBusy) return [];
  const graph = objectGraph(k);
  return busyTargets(k, p, p.lastBusy, graph)
    .map((id) => heldObject(graph, id))
    .filter((h): h is HeldObject => h !== null);
}

/** Make every EBUSY the trace records carry its holders. */
export function installBusyExplainer(k: Kernel): void {
  k.trace.explainBusy = (e) => {
    const p = k.processes.get(e.pid);
    return p ? explainBusy(k, p) : undefined;
  };
}

/** The chains as an indented tree: `<- holder [ref], taken by syscall`. */
export function formatChains(hs: readonly HeldObject[]): string {
  if (hs.length === 0) return "nothing found";
  const lines: string[] = [];
  const walk = (ls: readonly HolderLink[], depth: number) => {
    for (const l of ls) {
      const n = l.count > 1 ? ` x${l.count}` : "";
      const by = l.takenBy ? `, taken by ${l.takenBy}` : "";
      lines.push(`${"  ".repeat(depth)}<- ${l.holder} [${l.ref}${n}]${by}`);
      walk(l.heldBy, depth + 1);
    }
  };
  for (const h of hs) {
    lines.push(
      `${h.object}${h.refs !== undefined ? ` (refcount ${h.refs})` : ""}${h.holders.length ? "" : ": no holders"}`,
    );
    walk(h.holders, 1);
  }
  return lines.join("\n");
}

/** Every node on a chain keeping `targets` alive, the targets included (what a picture of an
 * EBUSY outlines). */
export function holderIds(graph: ObjectGraph, targets: readonly string[]): Set<string> {
  const seen = new Set<string>(targets);
  const todo = [...targets];
  for (let id = todo.pop(); id !== undefined; id = todo.pop()) {
    for (const e of graph.edges) {
      if (e.to === id && !seen.has(e.from)) {
        seen.add(e.from);
        todo.push(e.from);
      }
    }
  }
  return seen;
}
