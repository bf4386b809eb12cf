// A process's file descriptor table (fs/file.c): the lowest free number is allocated, each
// slot holds one reference to its File (holder "fd N of pid P"), close drops it.

import { EBADF, EMFILE } from "../uapi/errno.js";
import type { File } from "./fs.js";

export class FdTable {
  private readonly slots: (File | null)[] = [];
  constructor(
    readonly pid: number,
    public maxFds = 1024,
  ) {}

  holder(fd: number): string {
    return `fd ${fd} of pid ${this.pid}`;
  }

  /** fd_install into the lowest free slot; takes over the caller's reference "init". */
  install(file: File): number {
    let fd = this.slots.indexOf(null);
    if (fd < 0) fd = this.slots.length;
    if (fd >= this.maxFds) return -EMFILE;
    this.slots[fd] = file;
    file.handOver("init", this.holder(fd));
    return fd;
  }

  /** fdget without a reference: valid only until the syscall returns. */
  lookup(fd: number): File | null {
    if (!Number.isInteger(fd) || fd < 0 || fd >= this.slots.length) return null;
    return this.slots[fd] ?? null;
  }

  /** close_fd: removes the slot and drops its reference. */
  close(fd: number): number {
    const f = this.lookup(fd);
    if (!f) return -EBADF;
    this.slots[fd] = null;
    f.put(this.holder(fd));
    return 0;
  }

  /** Every open fd, ascending. */
  entries(): [number, File][] {
    const out: [number, File][] = [];
    this.slots.forEach((f, fd) => f && out.push([fd, f]));
    return out;
  }

  closeAll(): void {
    for (const [fd] of this.entries()) this.close(fd);
  }
}
