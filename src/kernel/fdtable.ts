// A process's file descriptor table (fs/file.c): the lowest free number is allocated, each
// slot holds one reference to its File (holder "fd N of pid P"), close drops it.

import { EBADF, EMFILE } from "../uapi/errno.js";
import type { File } from "./fs.js";

/**
 * Where a table's numbers come from when its process is not the twin's alone: a bridged C
 * client (src/bridge) owns its real fd numbers, so the twin allocates only numbers the client
 * set aside, and a number the twin does not know may be a file of the client's own (an
 * eventfd it passes to VFIO_DEVICE_SET_IRQS), which the table then adopts.
 */
export interface FdNumbering {
  /** the number for the next fd_install, or -errno */
  alloc(t: FdTable): number;
  /** a file of the process's own behind `fd` (installed by the caller), or null */
  adopt(fd: number): File | null;
}

/** "fd N of pid P", made once for the small fds and pids (every install, close and
 * invariant check names a slot; the explorer's check runs after every execution) */
const holderNames = new Map<number, string[]>();

export class FdTable {
  private readonly slots: (File | null)[] = [];
  numbering: FdNumbering | null = null;
  /** bumped by every install and close (the explorer's footprint of a step that changed it) */
  version = 0;
  constructor(
    readonly pid: number,
    public maxFds = 1024,
  ) {}

  /** Whether `fd` is a free slot. */
  isFree(fd: number): boolean {
    return !this.slots[fd];
  }

  /** fd_install at a number chosen by the caller (dup2, or an fd a bridged client reserved):
   * a file already there is closed first. Takes over the caller's reference "init". */
  installAt(fd: number, file: File): number {
    if (!Number.isInteger(fd) || fd < 0 || fd >= this.maxFds) return -EBADF;
    const old = this.slots[fd];
    while (this.slots.length < fd) this.slots.push(null);
    this.slots[fd] = file;
    this.version++;
    file.handOver("init", this.holder(fd));
    if (old) old.put(this.holder(fd));
    return fd;
  }

  holder(fd: number): string {
    if (fd >= 256 || this.pid >= 4096) return `fd ${fd} of pid ${this.pid}`;
    let names = holderNames.get(this.pid);
    if (!names) holderNames.set(this.pid, (names = []));
    return (names[fd] ??= `fd ${fd} of pid ${this.pid}`);
  }

  /** fd_install into the lowest free slot; takes over the caller's reference "init". */
  install(file: File): number {
    if (this.numbering) {
      const n = this.numbering.alloc(this);
      return n < 0 ? n : this.installAt(n, file);
    }
    let fd = this.slots.indexOf(null);
    if (fd < 0) fd = this.slots.length;
    if (fd >= this.maxFds) return -EMFILE;
    this.slots[fd] = file;
    this.version++;
    file.handOver("init", this.holder(fd));
    return fd;
  }

  /** fdget without a reference: valid only until the syscall returns. */
  lookup(fd: number): File | null {
    if (!Number.isInteger(fd) || fd < 0) return null;
    const f = fd < this.slots.length ? this.slots[fd] : null;
    if (f || !this.numbering || fd >= this.maxFds) return f ?? null;
    const own = this.numbering.adopt(fd);
    if (own) this.installAt(fd, own);
    return own;
  }

  /** The file in slot `fd` as the table has it (no adoption of a bridged client's own fds). */
  peek(fd: number): File | null {
    return this.slots[fd] ?? null;
  }

  /** close_fd: removes the slot and drops its reference. */
  close(fd: number): number {
    const f = this.lookup(fd);
    if (!f) return -EBADF;
    this.slots[fd] = null;
    this.version++;
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
