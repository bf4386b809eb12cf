// User memory access for the VFIO paths (copy_from_user / copy_to_user / get_user /
// strndup_user on the calling task's mm; include/linux/uaccess.h, mm/util.c). Plain
// functions: a fault is -EFAULT, never a throw.
// A task without a process (a kernel thread, the explorer's bare tasks) has no mm and no
// files: every user access faults and every fd lookup fails, as for a kthread in Linux.

import { EFAULT, EINVAL } from "../uapi/errno.js";
import type { Kernel } from "../kernel/kernel.js";
import { type MmStruct, PAGE_SIZE } from "../kernel/mm.js";
import type { Process } from "../kernel/process.js";
import type { File } from "../kernel/fs.js";
import type { StructDesc } from "../uapi/struct.js";

/** current's process, or null on a kernel thread */
export function curProc(k: Kernel): Process | null {
  return k.current?.process ?? null;
}

/** fdget() in current's file table: the file or null */
export function fdget(k: Kernel, fd: number): File | null {
  return curProc(k)?.files.lookup(fd) ?? null;
}

const NO_MM = {
  copyFromUser: () => -EFAULT,
  copyToUser: () => -EFAULT,
  copyFromUserInto: () => false,
  clearUser: () => -EFAULT,
  readStruct: () => null,
  writeStruct: () => -EFAULT,
  getU32: () => -EFAULT,
} as unknown as MmStruct;

export function curMm(k: Kernel): MmStruct {
  return curProc(k)?.mm ?? NO_MM;
}

/** copy_from_user of the first `minsz` bytes of a struct: the decoded value or -EFAULT. */
export function copyStructIn<V>(k: Kernel, desc: StructDesc<V>, addr: number, minsz = desc.size): V | number {
  // decoded in place from the user page where it lies within one (src/kernel/mm.ts)
  return curMm(k).readStruct(desc, addr, minsz) ?? -EFAULT;
}

/** copy_to_user of the first `len` bytes of `value` encoded as `desc`. */
export function copyStructOut<V>(
  k: Kernel,
  desc: StructDesc<V>,
  addr: number,
  value: Partial<V>,
  len = desc.size,
): number {
  return curMm(k).writeStruct(desc, addr, value, len) < 0 ? -EFAULT : 0;
}

export function copyIn(k: Kernel, addr: number, len: number): Uint8Array | number {
  return curMm(k).copyFromUser(addr, len);
}

/** copy_from_user() into a buffer of the caller's (all of it): 0 or -EFAULT. */
export function copyInto(k: Kernel, dst: Uint8Array, addr: number): number {
  return curMm(k).copyFromUserInto(dst, addr, dst.length) ? 0 : -EFAULT;
}

export function copyOut(k: Kernel, addr: number, bytes: Uint8Array): number {
  return curMm(k).copyToUser(addr, bytes) < 0 ? -EFAULT : 0;
}

/** clear_user(): 0 or -EFAULT. */
export function clearOut(k: Kernel, addr: number, len: number): number {
  return curMm(k).clearUser(addr, len) < 0 ? -EFAULT : 0;
}

/** get_user() of an s32. */
export function getUserS32(k: Kernel, addr: number): number | { err: number } {
  const v = curMm(k).getU32(addr);
  return v < 0 ? { err: -EFAULT } : v | 0;
}

/** strndup_user(): a NUL-terminated string of at most n bytes (n including the NUL). */
export function strndupUser(k: Kernel, addr: number, n: number): string | number {
  const mm = curMm(k);
  let s = "";
  // 64 bytes at a time, never past the page of the byte it needs next (so a fault is one
  // strncpy_from_user() would take too), not one copy per byte
  for (let i = 0; i < n;) {
    const chunk = Math.min(n - i, 64, PAGE_SIZE - ((addr + i) & (PAGE_SIZE - 1)));
    const b = mm.copyFromUser(addr + i, chunk);
    if (typeof b === "number") return -EFAULT;
    const nul = b.indexOf(0);
    s += String.fromCharCode.apply(null, b.subarray(0, nul < 0 ? chunk : nul) as unknown as number[]);
    if (nul >= 0) return s;
    i += chunk;
  }
  return -EINVAL;
}
