// eventfd(2) (fs/eventfd.c): a 64-bit counter behind an anonymous file. Drivers signal it
// (eventfd_signal adds 1); read(2) returns the count and zeroes it, or EAGAIN when it is
// zero and the file is non-blocking; write(2) adds a value. The twin's only blocking mode is
// non-blocking: a blocking read of zero would wait for an event no other task will send in a
// sequential run, so it answers EAGAIN as well and says so in the trace.

import { EAGAIN, EFAULT, EINVAL } from "../uapi/errno.js";
import { type File, type FileOperations, O_RDWR, POLLIN, POLLOUT } from "./fs.js";
import type { Kernel } from "./kernel.js";

export const EFD_SEMAPHORE = 1;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
const ULLONG_MAX = 0xffffffffffffffffn;

export class EventfdCtx {
  count = 0n;
  /** signals ever delivered (for tests and traces) */
  signals = 0;
  constructor(readonly semaphore: boolean) {}

  /** eventfd_signal(): add 1 */
  signal(): void {
    if (this.count < ULLONG_MAX - 1n) this.count++;
    this.signals++;
  }
}

export function eventfdCtx(f: File): EventfdCtx | null {
  return f.fops === eventfdFops ? (f.privateData as EventfdCtx) : null;
}

export const eventfdFops: FileOperations = {
  owner: null,
  name: "eventfd",
  read(file, buf, count) {
    const ctx = file.privateData as EventfdCtx;
    if (count < 8) return -EINVAL;
    if (ctx.count === 0n) return -EAGAIN;
    const v = ctx.semaphore ? 1n : ctx.count;
    ctx.count -= v;
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    // fs/eventfd.c: eventfd_read() consumes the count before copy_to_iter(); a fault loses it
    const rc = file.k.current!.process!.mm.copyToUser(buf, b);
    return rc < 0 ? -EFAULT : 8;
  },
  write(file, buf, count) {
    const ctx = file.privateData as EventfdCtx;
    if (count !== 8) return -EINVAL; // eventfd_write(): exactly sizeof(u64)
    const b = file.k.current!.process!.mm.copyFromUser(buf, 8);
    if (typeof b === "number") return b;
    const v = new DataView(b.buffer).getBigUint64(0, true);
    if (v === ULLONG_MAX) return -EINVAL;
    if (ULLONG_MAX - ctx.count <= v) return -EAGAIN;
    ctx.count += v;
    return 8;
  },
  // eventfd_poll(): readable with a count, writable while one more can be added
  poll(file) {
    const ctx = file.privateData as EventfdCtx;
    return (ctx.count > 0n ? POLLIN : 0) | (ctx.count < ULLONG_MAX - 1n ? POLLOUT : 0);
  },
};

export function createEventfd(k: Kernel, flags: number): File | number {
  if (flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC)) return -EINVAL;
  // do_eventfd(): O_RDWR plus the shared fcntl flags; an anon inode without FMODE_PREAD
  const f = k.allocFile(eventfdFops, "anon_inode:[eventfd]", O_RDWR | (flags & (EFD_NONBLOCK | EFD_CLOEXEC)));
  if (typeof f === "number") return f;
  f.fmodePread = false;
  f.privateData = new EventfdCtx((flags & EFD_SEMAPHORE) !== 0);
  return f;
}
