// `vfio-twin designs`: the KVM<->VFIO coupling under each of its three designs
// (src/kvm/vfio_coupling.ts), side by side, from real runs of one scenario: the uAPI results
// (which must be identical), the symbol_get traffic by name, the module pins held while KVM
// holds VFIO files, what `rmmod vfio` does then, and what happens when VFIO was never loaded
// or KVM was built without CONFIG_KVM_VFIO.

import type { UserProcess } from "../backend/backend.js";
import type { Kernel } from "../kernel/kernel.js";
import { createTwin, type Twin } from "../twin.js";
import { COUPLING_DESIGNS, type CouplingDesign } from "../kvm/vfio_coupling.js";
import { errnoName } from "../uapi/errno.js";
import * as K from "../uapi/kvm.js";
import * as V from "../uapi/vfio.js";
import { type Command, toJson } from "./command.js";
import { formatPasidDesigns, pasidAttackTrace, runPasidDesigns } from "./designs_pasid.js";

export interface DesignTwinOptions {
  /** VFIO loaded at boot */
  vfio: boolean;
  /** KVM built with CONFIG_KVM_VFIO */
  kvmVfio: boolean;
}

/** Builds the twin a run uses (tests pass their own, e.g. with a stand-in VFIO). */
export type DesignTwinFactory = (design: CouplingDesign, o: DesignTwinOptions) => Twin;

export interface DesignReport {
  readonly design: CouplingDesign;
  /** uAPI step -> result ("0", "EEXIST", ...) */
  readonly uapi: [string, string][];
  /** symbol_get calls during the conformance run, by symbol */
  readonly symbolGets: Map<string, number>;
  /** vfio module pins while KVM holds the group and device files, user fds closed */
  readonly pinsHeld: string[];
  /** holders of the group file at that point */
  readonly groupHolders: string[];
  /** rmmod of the VFIO modules (users first) while KVM holds the files, then after release */
  readonly rmmodWhileHeld: string;
  readonly rmmodAfterRelease: string;
  /** FILE_ADD of a non-VFIO fd with VFIO never loaded, and the symbol_get misses it caused */
  readonly noVfioAdd: string;
  readonly noVfioMisses: Map<string, number>;
  /** KVM_CREATE_DEVICE(VFIO) and its TEST probe on a KVM without CONFIG_KVM_VFIO */
  readonly noKvmVfioCreate: string;
  readonly leaks: string[];
}

const rcText = (rc: number) => (rc < 0 ? errnoName(-rc) : String(rc));

/** A VMM's raw calls, with the argument area in its own memory. */
class Caller {
  readonly scr: number;
  constructor(readonly p: UserProcess) {
    this.scr = p.mmap(4096);
  }
  vm(): number {
    const kfd = this.p.open("/dev/kvm");
    const vm = this.p.ioctl(kfd, K.KVM_CREATE_VM, 0);
    this.p.close(kfd);
    return vm;
  }
  createDevice(vm: number, flags = 0): { rc: number; fd: number } {
    this.p.write(this.scr, K.kvm_create_device.encode({ type: K.KVM_DEV_TYPE_VFIO, fd: 0xffffffff, flags }));
    const rc = this.p.ioctl(vm, K.KVM_CREATE_DEVICE, this.scr);
    return { rc, fd: K.kvm_create_device.decode(this.p.read(this.scr, 12)).fd | 0 };
  }
  attr(req: number, dev: number, attr: number, fd: number): number {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, fd, true);
    this.p.write(this.scr + 64, b);
    const a = { flags: 0, group: K.KVM_DEV_VFIO_FILE, attr: BigInt(attr), addr: BigInt(this.scr + 64) };
    this.p.write(this.scr, K.kvm_device_attr.encode(a));
    return this.p.ioctl(dev, req, this.scr);
  }
  add(dev: number, fd: number): number {
    return this.attr(K.KVM_SET_DEVICE_ATTR, dev, K.KVM_DEV_VFIO_FILE_ADD, fd);
  }
  del(dev: number, fd: number): number {
    return this.attr(K.KVM_SET_DEVICE_ATTR, dev, K.KVM_DEV_VFIO_FILE_DEL, fd);
  }
  /** container + TYPE1v2 + GET_DEVICE_FD on the group: the device fd or -errno */
  deviceFd(group: number, name: string): { container: number; fd: number } {
    const container = this.p.open("/dev/vfio/vfio");
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, container, true);
    this.p.write(this.scr, b);
    this.p.ioctl(group, V.VFIO_GROUP_SET_CONTAINER, this.scr);
    this.p.ioctl(container, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU);
    this.p.write(this.scr, new TextEncoder().encode(name + "\0"));
    return { container, fd: this.p.ioctl(group, V.VFIO_GROUP_GET_DEVICE_FD, this.scr) };
  }
}

/** The first VFIO group node and a device name in it (from sysfs when the twin has one). */
function findGroup(twin: Twin, p: UserProcess): { path: string; device: string } {
  const path = twin.kernel.devices.paths().find((x) => /^\/dev\/vfio\/\d+$/.test(x)) ?? "/dev/vfio/1";
  const id = path.slice("/dev/vfio/".length);
  const devs = p.readdir(`/sys/kernel/iommu_groups/${id}/devices`);
  return { path, device: Array.isArray(devs) && devs[0] ? devs[0] : "0000:00:01.0" };
}

function snapshot(m: Map<string, number>): Map<string, number> {
  return new Map(m);
}

function delta(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) out.set(k, v - (before.get(k) ?? 0));
  return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
}

function vfioPins(k: Kernel): string[] {
  const m = k.modules.loaded.get("vfio");
  return m ? [...m.pins].map(([why, n]) => (n > 1 ? `${why} x${n}` : why)).sort() : [];
}

/**
 * rmmod of every loaded module but kvm, users before what they use (vfio_pci and
 * vfio_iommu_type1 before vfio), one attempt each: "name result" per module.
 */
export function rmmodStack(k: Kernel): string {
  const mods = [...k.modules.loaded.values()].filter((m) => m.name !== "kvm");
  const order: typeof mods = [];
  const visit = (m: (typeof mods)[number]) => {
    if (order.includes(m)) return;
    for (const u of m.usedBy) if (mods.includes(u)) visit(u);
    order.push(m);
  };
  mods.forEach(visit);
  if (order.length === 0) return "(none loaded)";
  return order.map((m) => `${m.name} ${rcText(k.modules.unload(m.name))}`).join(", ");
}

/** Run the scenario under one design. */
export function runDesign(design: CouplingDesign, make: DesignTwinFactory): DesignReport {
  const uapi: [string, string][] = [];
  const step = (name: string, rc: number) => uapi.push([name, rcText(rc)]);

  const twin = make(design, { vfio: true, kvmVfio: true });
  const k = twin.kernel;
  const baseline = new Set(k.objects);
  const c = new Caller(twin.spawn({ name: "vmm" }));
  const before = snapshot(k.modules.stats.gets);
  const vm = c.vm();
  const probe = c.createDevice(vm, K.KVM_CREATE_DEVICE_TEST);
  step("CREATE_DEVICE VFIO TEST (fd written?)", probe.rc < 0 ? probe.rc : probe.fd === -1 ? 0 : 1);
  const { rc: drc, fd: dev } = c.createDevice(vm);
  step("CREATE_DEVICE VFIO", drc);
  step("CREATE_DEVICE VFIO again", c.createDevice(vm).rc);
  const { path, device } = findGroup(twin, c.p);
  const g = c.p.open(path);
  step(`open ${path}`, g < 0 ? g : 0);
  step("FILE_DEL group (never added)", c.del(dev, g));
  step("FILE_ADD group", c.add(dev, g));
  step("FILE_ADD group again", c.add(dev, g));
  const { container, fd: dfd } = c.deviceFd(g, device);
  step("GET_DEVICE_FD", dfd < 0 ? dfd : 0);
  step("FILE_ADD device fd", c.add(dev, dfd));
  step("FILE_ADD VM fd", c.add(dev, vm));
  step("FILE_ADD container fd", c.add(dev, container));
  step("FILE_ADD fd -1", c.add(dev, -1));
  step("FILE_DEL device fd", c.del(dev, dfd));
  step("FILE_ADD device fd again", c.add(dev, dfd));
  step("HAS_ATTR FILE ADD", c.attr(K.KVM_HAS_DEVICE_ATTR, dev, K.KVM_DEV_VFIO_FILE_ADD, 0));
  step("GET_ATTR FILE ADD", c.attr(K.KVM_GET_DEVICE_ATTR, dev, K.KVM_DEV_VFIO_FILE_ADD, 0));
  step("SET_ATTR SPAPR_TCE", c.attr(K.KVM_SET_DEVICE_ATTR, dev, K.KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE, 0));
  const symbolGets = delta(k.modules.stats.gets, before);

  // userspace lets go of its VFIO fds: only KVM holds the files now
  for (const fd of [dfd, g, container]) if (fd >= 0) c.p.close(fd);
  const pinsHeld = vfioPins(k);
  const groupFile = [...k.objects].find((o) => o.kind === "file" && o.describe().startsWith(`file ${path} `));
  const groupHolders = groupFile ? [...groupFile.holders.keys()].sort() : ["(released)"];
  const rmmodWhileHeld = rmmodStack(k);
  c.p.close(dev);
  c.p.close(vm);
  const rmmodAfterRelease = rmmodStack(k);
  twin.kill(c.p);
  const leaks = [...k.objects].filter((o) => !baseline.has(o)).map((o) => o.describe());

  // VFIO never loaded
  const t2 = make(design, { vfio: false, kvmVfio: true });
  const c2 = new Caller(t2.spawn());
  const vm2 = c2.vm();
  const dev2 = c2.createDevice(vm2).fd;
  const miss0 = snapshot(t2.kernel.modules.stats.misses);
  const noVfioAdd = rcText(c2.add(dev2, vm2));
  const noVfioMisses = delta(t2.kernel.modules.stats.misses, miss0);

  // KVM without CONFIG_KVM_VFIO
  const t3 = make(design, { vfio: true, kvmVfio: false });
  const c3 = new Caller(t3.spawn());
  const vm3 = c3.vm();
  const noKvmVfioCreate = `${rcText(c3.createDevice(vm3, K.KVM_CREATE_DEVICE_TEST).rc)} / ${rcText(c3.createDevice(vm3).rc)}`;

  return {
    design,
    uapi,
    symbolGets,
    pinsHeld,
    groupHolders,
    rmmodWhileHeld,
    rmmodAfterRelease,
    noVfioAdd,
    noVfioMisses,
    noKvmVfioCreate,
    leaks,
  };
}

/** The default twin: the oracle's machine, as createTwin builds it. */
export const defaultDesignTwin: DesignTwinFactory = (design, o) =>
  createTwin({ coupling: design, kvmVfio: o.kvmVfio, vfio: o.vfio });

export function runDesigns(make: DesignTwinFactory = defaultDesignTwin): DesignReport[] {
  return COUPLING_DESIGNS.map((d) => runDesign(d, make));
}

const fmtMap = (m: Map<string, number>) => (m.size ? [...m].map(([s, n]) => `${s} x${n}`) : ["none"]);

/** Side-by-side text: one column per design; a uAPI row differing between designs is marked "!!". */
export function formatDesigns(reports: DesignReport[]): string {
  const w = 44;
  const col = 36;
  const lines: string[] = [];
  const row = (label: string, cells: string[][], mark = "") => {
    const h = Math.max(1, ...cells.map((c) => c.length));
    for (let i = 0; i < h; i++) {
      const l = i === 0 ? label : "";
      lines.push(
        (mark && i === 0 ? mark : "  ") +
          " " +
          l.padEnd(w) +
          cells
            .map((c) => (c[i] ?? "").padEnd(col))
            .join(" ")
            .trimEnd(),
      );
    }
  };
  row(
    "design",
    reports.map((r) => [r.design]),
  );
  lines.push("");
  lines.push("uAPI (must be identical)");
  reports[0]!.uapi.forEach(([name], i) => {
    const cells = reports.map((r) => [r.uapi[i]?.[1] ?? "?"]);
    const same = cells.every((c) => c[0] === cells[0]![0]);
    row(name, cells, same ? "" : "!!");
  });
  lines.push("");
  lines.push("what differs");
  row(
    "symbol_get during the run",
    reports.map((r) => fmtMap(r.symbolGets)),
  );
  row(
    "vfio pins, KVM holding files",
    reports.map((r) => (r.pinsHeld.length ? r.pinsHeld : ["none"])),
  );
  row(
    "group file holders then",
    reports.map((r) => r.groupHolders),
  );
  row(
    "rmmod VFIO modules while KVM holds files",
    reports.map((r) => r.rmmodWhileHeld.split(", ")),
  );
  row(
    "rmmod (the rest) after KVM let go",
    reports.map((r) => r.rmmodAfterRelease.split(", ")),
  );
  row(
    "VFIO never loaded: FILE_ADD",
    reports.map((r) => [r.noVfioAdd]),
  );
  row(
    "  symbol_get misses",
    reports.map((r) => fmtMap(r.noVfioMisses)),
  );
  row(
    "no CONFIG_KVM_VFIO: CREATE TEST / CREATE",
    reports.map((r) => [r.noKvmVfioCreate]),
  );
  row(
    "objects leaked",
    reports.map((r) => (r.leaks.length ? r.leaks : ["none"])),
  );
  return lines.join("\n");
}

export const designsCommand: Command = {
  name: "designs",
  summary: "run one KVM-VFIO scenario under each coupling design and compare them side by side",
  options: {
    "pasid-trace": {
      type: "boolean",
      help: "print the traced attack of docs/pasid.md under each PASID design instead",
    },
  },
  details:
    "With --json: one JSON document, {coupling: one report per coupling design, pasid: the PASID " +
    "designs' sequences}. Exit 1 if the coupling designs' uAPI results differ.",
  run({ values, json }) {
    if (values["pasid-trace"] === true) {
      // docs/pasid.md: the attack the process-table rule prevents, traced under each design
      const traces = {
        "vfio-translate": pasidAttackTrace("vfio-translate"),
        "process-table": pasidAttackTrace("process-table"),
      };
      if (json) console.log(toJson(traces, 2));
      else for (const [d, lines] of Object.entries(traces)) console.log(`## ${d}\n${lines.join("\n")}\n`);
      return 0;
    }
    const reports = runDesigns();
    const pasid = runPasidDesigns();
    if (json) console.log(toJson({ coupling: reports, pasid }, 2));
    else console.log(`${formatDesigns(reports)}\n\n${formatPasidDesigns(pasid)}`); // the PASID designs differ by intent
    const uapiSame = reports.every((r) => JSON.stringify(r.uapi) === JSON.stringify(reports[0]!.uapi));
    return uapiSame ? 0 : 1;
  },
};
