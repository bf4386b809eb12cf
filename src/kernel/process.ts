// A process: pid, credentials, rlimits, a file descriptor table and an address space
// (struct task_struct + struct cred + struct signal_struct's rlimits, reduced to what the
// passthrough paths read). Threads of one process share all of it; the twin gives each
// process a main Task for sequential syscalls and makes more for explorer runs.

import { EINVAL, EPERM } from "../uapi/errno.js";
import { FdTable } from "./fdtable.js";
import { MmStruct } from "./mm.js";
import { Task } from "./sched.js";

export const RLIM_INFINITY = Number.MAX_SAFE_INTEGER;

/** Capabilities the passthrough paths test (include/uapi/linux/capability.h numbers). */
export const CAP_IPC_LOCK = 14;
export const CAP_SYS_RAWIO = 17;
export const CAP_SYS_ADMIN = 21;
export const CAP_SYS_RESOURCE = 24;

/** struct user_struct: per-uid accounting (iommufd's default RLIMIT_MODE charges here). */
export class UserStruct {
  /** pages, user->locked_vm */
  lockedVm = 0;
  constructor(readonly uid: number) {}
}

export interface Rlimit {
  cur: number;
  max: number;
}

/** The last call of a process that failed with EBUSY, kept so that "who holds it" can be
 * asked after the fact (the typed layer's Errno, the trace) without work on every call. */
export interface BusyCall {
  readonly call: string;
  /** the fd (ioctl, close, ...), 0 for open */
  readonly fd: number;
  /** the ioctl request */
  readonly cmd: number;
  /** the ioctl argument */
  readonly arg: number;
  /** open's path */
  readonly path: string;
}

export class Process {
  readonly files: FdTable;
  readonly mm: MmStruct;
  /** RLIMIT_MEMLOCK in bytes */
  readonly memlock: Rlimit;
  readonly caps = new Set<number>();
  readonly mainTask: Task;
  /** syscalls of this process in flight right now (explorer runs may have several) */
  inFlight = 0;
  exited = false;
  lastBusy: BusyCall | null = null;

  constructor(
    readonly pid: number,
    readonly user: UserStruct,
    memlockBytes: number,
    readonly name: string,
    /** a bridged client's own address space and rlimit (src/bridge) instead of the twin's */
    own: { mm?: MmStruct; memlock?: Rlimit } = {},
  ) {
    this.files = new FdTable(pid);
    this.mm = own.mm ?? new MmStruct();
    this.memlock = own.memlock ?? { cur: memlockBytes, max: memlockBytes };
    this.mainTask = new Task(this, `${name}[${pid}]`);
  }

  capable(cap: number): boolean {
    return this.caps.has(cap);
  }

  /** setrlimit(RLIMIT_MEMLOCK) (kernel/sys.c do_prlimit()): soft above hard is EINVAL,
   * raising the hard limit needs CAP_SYS_RESOURCE. */
  setMemlock(soft: number, hard: number): number {
    if (soft > hard) return -EINVAL;
    if (hard > this.memlock.max && !this.capable(CAP_SYS_RESOURCE)) return -EPERM;
    this.memlock.cur = soft;
    this.memlock.max = hard;
    return 0;
  }
}
