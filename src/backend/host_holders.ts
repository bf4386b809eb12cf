// "Who holds it" on the real kernel, as far as it tells: the processes and fds whose
// /proc/PID/fd links name a path. The kernel keeps no record of the syscall that took each
// reference, and references held inside the kernel (KVM's VFIO device keeping a group file, a
// device file keeping its group) do not show, so the chains are one level deep: fd, process.
// Processes of other users are visible to root only, as with lsof and fuser.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { HeldObject, HolderLink } from "../kernel/trace.js";

function tryRead<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch {
    return null;
  }
}

/** Every fd of every visible process whose file is `path`. */
export function hostHolders(path: string): HeldObject[] {
  const holders: HolderLink[] = [];
  for (const pid of tryRead(() => readdirSync("/proc")) ?? []) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = tryRead(() => readdirSync(`/proc/${pid}/fd`));
    if (!fds) continue;
    const comm = tryRead(() => readFileSync(`/proc/${pid}/comm`, "utf8").trim()) ?? "?";
    for (const fd of fds) {
      if (tryRead(() => readlinkSync(`/proc/${pid}/fd/${fd}`)) !== path) continue;
      holders.push({
        ref: `fd ${fd} of pid ${pid}`,
        holder: `fd ${fd}`,
        kind: "fd",
        count: 1,
        heldBy: [{ ref: "fd table", holder: `${comm}[${pid}]`, kind: "process", count: 1, heldBy: [] }],
      });
    }
  }
  return holders.length ? [{ object: `file ${path}`, kind: "file", holders }] : [];
}
