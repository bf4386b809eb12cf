// User memory access for the VFIO paths (copy_from_user / copy_to_user / get_user /
// strndup_user on the calling task's mm; include/linux/uaccess.h, mm/util.c). Plain
// functions: a fault is -EFAULT, never a throw.
// A task without a process (a kernel thread, the explorer's bare tasks) has no mm and no
// files: every user access faults and every fd lookup fails, as for a kthread in Linux.

import { EFAULT, EINVAL } from "../uapi/errno.js";
import type { Kernel } from "../kernel/kernel.js";
import { type MmStruct, PAGE_SIZE, PROT_READ, PROT_WRITE } from "../kernel/mm.js";
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
  userView: () => null,
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

// A small struct read and written field by field, as the kernel does with its stack copy
// (copy_from_user() into it, fields read and set, copy_to_user() of it), for the paths where a
// decoded object and an encoded value would be most of the call (VFIO_GROUP_GET_STATUS,
// VFIO_DEVICE_GET_REGION_INFO; docs/performance.md). The fields are at the struct
// descriptor's offsets from userOff(addr) in the view userIn()/userOut() return; the caller
// reads every field it needs at once (the copy the kernel would have made), before anything
// can yield or touch user memory again. No object is made: the struct's offset is the user
// address's offset in its page, in the page's own view and in the staging copies alike.

const PAGE_LOW = PAGE_SIZE - 1;
/** staging for structs not within one anonymous page, at their in-page offset (len <= PAGE_SIZE) */
const IN_STAGE = new Uint8Array(2 * PAGE_SIZE);
const OUT_STAGE = new Uint8Array(2 * PAGE_SIZE);
const IN_STAGE_VIEW = new DataView(IN_STAGE.buffer);
const OUT_STAGE_VIEW = new DataView(OUT_STAGE.buffer);

/** Where the views of userIn() and userOut() for `addr` hold its struct. */
export function userOff(addr: number): number {
  return addr & PAGE_LOW;
}

/**
 * copy_from_user() of `len` (<= PAGE_SIZE) bytes at `addr` for reading fields at once: a view
 * holding them from userOff(addr), or null for a fault (-EFAULT). Within one anonymous page it
 * is the page itself (no copy); otherwise (a page crossing, device memory, a bridged client's
 * memory) a staging copy made by the copying path.
 */
export function userIn(mm: MmStruct, addr: number, len: number): DataView | null {
  const dv = mm.userView(addr, len, PROT_READ);
  return dv !== null ? dv : userInStaged(mm, addr, len);
}

function userInStaged(mm: MmStruct, addr: number, len: number): DataView | null {
  const off = addr & PAGE_LOW;
  return mm.copyFromUserInto(IN_STAGE.subarray(off, off + len), addr, len) ? IN_STAGE_VIEW : null;
}

/**
 * The first half of copy_to_user() of `len` (<= PAGE_SIZE) bytes at `addr` written field by
 * field: the view to write all `len` bytes into, from userOff(addr). userOutEnd() completes
 * it. Within one writable anonymous page it is the page itself; otherwise a zeroed staging
 * buffer that userOutEnd() copies out (or faults on), all or nothing.
 */
export function userOut(mm: MmStruct, addr: number, len: number): DataView {
  const dv = mm.userView(addr, len, PROT_WRITE);
  if (dv !== null) return dv;
  const off = addr & PAGE_LOW;
  OUT_STAGE.fill(0, off, off + len);
  return OUT_STAGE_VIEW;
}

/** The second half of userOut()'s copy_to_user() (`dv` is what userOut() returned): 0, or
 * -EFAULT with nothing written. */
export function userOutEnd(mm: MmStruct, dv: DataView, addr: number, len: number): number {
  if (dv !== OUT_STAGE_VIEW) return 0;
  const off = addr & PAGE_LOW;
  return mm.copyToUser(addr, OUT_STAGE.subarray(off, off + len), len) < 0 ? -EFAULT : 0;
}

/** A u64 field from a number below 2^53 (a size or an offset): two u32 words, no bigint.
 * uapi/struct.ts viewSet64() also takes bigints; GET_REGION_INFO keeps this smaller form
 * because it sits at the edge of V8's inlining budget (docs/performance.md): three runs with
 * viewSet64 read 1.24-2.18x HAS_DEVICE_ATTR against 1.12-1.22x, too noisy to tell apart. */
export function setU64(dv: DataView, o: number, x: number): void {
  const lo = x >>> 0;
  dv.setUint32(o, lo, true);
  dv.setUint32(o + 4, (x - lo) / 0x100000000, true);
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

/** strndup_user()'s copies, 64 bytes at a time (a Buffer: its latin1 text is the bytes) */
const STR_STAGE = Buffer.alloc(64);

/** strndup_user(): a NUL-terminated string of at most n bytes (n including the NUL). */
export function strndupUser(k: Kernel, addr: number, n: number): string | number {
  const mm = curMm(k);
  let s = "";
  // 64 bytes at a time, never past the page of the byte it needs next (so a fault is one
  // strncpy_from_user() would take too), into one staging buffer: no copy per byte, and no
  // array per chunk
  for (let i = 0; i < n;) {
    const chunk = Math.min(n - i, 64, PAGE_SIZE - ((addr + i) & (PAGE_SIZE - 1)));
    if (!mm.copyFromUserInto(STR_STAGE, addr + i, chunk)) return -EFAULT;
    let nul = 0;
    while (nul < chunk && STR_STAGE[nul] !== 0) nul++;
    const part = STR_STAGE.toString("latin1", 0, nul);
    s = i === 0 ? part : s + part;
    if (nul < chunk) return s;
    i += chunk;
  }
  return -EINVAL;
}
