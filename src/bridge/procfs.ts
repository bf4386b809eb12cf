// The procfs files a bridged program opens that the twin answers: /proc/self/task/TID/fail-nth
// (CONFIG_FAULT_INJECTION, fs/proc/base.c proc_fail_nth_read()/proc_fail_nth_write()), which
// arms the twin's fault injection (src/iommufd/fail_nth.ts). The oracle's kernel has
// CONFIG_FAULT_INJECTION=y. The twin's countdown is one for the whole twin, not one per
// task: a program arms it around its own calls, as iommufd_fail_nth does.

import type { FileOperations } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import type { Process } from "../kernel/process.js";
import { failNthRemaining, setFailNth } from "../iommufd/fail_nth.js";
import { EINVAL, ERANGE } from "../uapi/errno.js";

const FAIL_NTH = /^\/proc\/(self|thread-self|\d+)(\/task\/\d+)?\/fail-nth$/;

export function isProcFailNth(path: string): boolean {
  return FAIL_NTH.test(path);
}

const failNthFops: FileOperations = {
  owner: null,
  name: "proc-fail-nth",
  read(file, buf, count, pos) {
    const text = new TextEncoder().encode(`${failNthRemaining()}\n`);
    const n = Math.max(0, Math.min(count, text.length - pos));
    if (n === 0) return 0;
    const rc = file.k.current!.process!.mm.copyToUser(buf, text.subarray(pos, pos + n));
    return rc < 0 ? rc : n;
  },
  write(file, buf, count) {
    // kstrtouint_from_user(buf, count, 0, &n): base 0, one trailing newline allowed
    if (count > 64) return -EINVAL;
    const b = file.k.current!.process!.mm.copyFromUser(buf, count);
    if (typeof b === "number") return b;
    const t = new TextDecoder().decode(b).replace(/\n$/, "");
    if (!/^(0x[0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/.test(t)) return -EINVAL;
    const n = Number(t.startsWith("0x") ? t : t.length > 1 && t.startsWith("0") ? parseInt(t, 8) : t);
    if (n > 0xffffffff) return -ERANGE;
    setFailNth(n);
    return count;
  },
};

/** open(2) of a fail-nth file at the number the client set aside. */
export function openProcFailNth(k: Kernel, p: Process, path: string, flags: number, at: number): number {
  const f = k.allocFile(failNthFops, path, flags);
  if (typeof f === "number") return f;
  f.opened = true;
  return p.files.installAt(at, f);
}
