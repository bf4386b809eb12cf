// Every ioctl the twin knows by name: number, argument kind, struct. The uapi files of each
// subsystem register theirs; traces, the scenario runner's `raw` verb and the conformance
// test that walks every table read this one registry.

import type { StructDesc } from "./struct.js";

export type IoctlArg = "none" | "int" | "ptr" | StructDesc<any>;

export interface IoctlDef {
  readonly name: string;
  readonly nr: number;
  /** what arg carries: nothing, an integer, a pointer to raw bytes, or a struct */
  readonly arg: IoctlArg;
  /** the subsystem, for reports: "vfio", "iommufd", "kvm" */
  readonly subsys: string;
}

const byNr = new Map<number, IoctlDef[]>();
const byName = new Map<string, IoctlDef>();

export function defineIoctl(subsys: string, name: string, nr: number, arg: IoctlArg): number {
  const d: IoctlDef = { name, nr, arg, subsys };
  byName.set(name, d);
  const l = byNr.get(nr);
  if (l) l.push(d);
  else byNr.set(nr, [d]);
  return nr;
}

/** Names sharing a number (VFIO reuses base+12.. for container and device) all come back. */
export function ioctlsByNr(nr: number): readonly IoctlDef[] {
  return byNr.get(nr >>> 0) ?? [];
}

export function ioctlByName(name: string): IoctlDef | undefined {
  return byName.get(name);
}

export function allIoctls(): IoctlDef[] {
  return [...byName.values()];
}
