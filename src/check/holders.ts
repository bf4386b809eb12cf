// "Who holds it?": for a device node or any open file, every holder of every open file of
// that path, named: the fds of which processes, the mappings, the kernel objects that keep
// a reference (KVM's VFIO device keeps each added file). This is the answer a VMM developer
// wants when a group open says EBUSY.

import type { File } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";

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
