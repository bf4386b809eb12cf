// struct file and struct file_operations (include/linux/fs.h, fs/file_table.c, fs/open.c).
//
// A File is refcounted: each fd slot holds one reference, a VMA mapping the file holds one,
// and kernel users that keep a file (KVM's VFIO device keeps each added VFIO file) take
// their own with get_file(). Release runs fops.release on the last fput and then drops the
// module reference that open took through the fops owner, exactly as __fput() does. That is
// what makes "a module whose files are open cannot be unloaded" hold without extra code.

import type { Kernel } from "./kernel.js";
import { RefCounted } from "./kref.js";
import type { Module } from "./module.js";
import type { KRet } from "./sched.js";
import type { Vma } from "./mm.js";

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

/** The operations a file type provides. Every entry is optional, as in the kernel. */
export interface FileOperations {
  /** the module providing this file type: open pins it, the last fput unpins it */
  readonly owner: Module | null;
  /** a name for traces and reports: "vfio-group", "kvm-vm" */
  readonly name: string;
  /** returns 0 or -errno; may set file.privateData */
  open?(file: File, dev: CharDev): KRet<number>;
  release?(file: File): KRet<void>;
  /** arg is an integer or a user address (see Kernel.argFromUser) */
  unlocked_ioctl?(file: File, cmd: number, arg: number): KRet<number>;
  /** read/write at *pos (read(2)/write(2)) or at an explicit offset (pread/pwrite): the
   * kernel copies to/from user memory itself; returns bytes done or -errno */
  read?(file: File, buf: number, count: number, pos: number): KRet<number>;
  write?(file: File, buf: number, count: number, pos: number): KRet<number>;
  /** read/write never move *ppos (iommufd's fault fd): read(2)/write(2) leave f_pos alone */
  readonly noPos?: boolean;
  /** set vma's io hooks; 0 or -errno */
  mmap?(file: File, vma: Vma): KRet<number>;
  /** ->poll without waiting: the EPOLL* events ready now; absent = DEFAULT_POLLMASK */
  poll?(file: File): number;
}

/** include/uapi/asm-generic/poll.h */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLRDNORM = 0x40;
export const POLLWRNORM = 0x100;
/** fs/select.c DEFAULT_POLLMASK: a file without ->poll is always ready both ways */
export const DEFAULT_POLLMASK = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;

/** A character device node (what devtmpfs + cdev_add give in the kernel). */
export interface CharDev {
  readonly path: string;
  readonly fops: FileOperations;
  /** the object behind the node (a vfio_group, a vfio_device, ...) */
  readonly data: unknown;
}

let nextInode = 1000;

export class File extends RefCounted {
  privateData: unknown = null;
  pos = 0;
  /** FMODE_OPENED: ->open succeeded, so the last fput calls ->release */
  opened = false;
  /** FMODE_PREAD | FMODE_PWRITE: set for files from open(2) (fs/open.c do_dentry_open) and
   * for the few anon-inode files that ask for it (VFIO device fds); eventfd and other anon
   * inodes lack it, and pread/pwrite on them are ESPIPE. */
  fmodePread = true;
  readonly ino = nextInode++;

  constructor(
    k: Kernel,
    readonly fops: FileOperations,
    /** "/dev/vfio/1" for a node, "anon_inode:[eventfd]" for an anonymous file */
    readonly path: string,
    readonly flags: number,
  ) {
    super(k, "file");
  }

  describe(): string {
    return `file ${this.path} (${this.fops.name}, ino ${this.ino})`;
  }

  protected release(): void {
    this.k.fput(this);
  }
}
