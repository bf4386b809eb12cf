// The syscall boundary (docs/design.md §1) as userspace sees it. Userspace code (src/vmm, the
// scenario runner, tests, outside scripts) is written against UserProcess and runs
// unchanged on the twin (src/twin.ts) or on the real kernel (./host.ts).
//
// Every call returns what the raw syscall returns: a non-negative result or -errno.
// Memory access (read/write of the process's own memory) is not a syscall: touching an
// unmapped address is a fault, reported by throwing Segfault, as SIGSEGV would end a
// process that did not catch it. A call through the handle of a process that has exited
// throws ProcessExited.

export const PROT_READ = 1;
export const PROT_WRITE = 2;

import type { EncodeValue, StructDesc } from "../uapi/struct.js";

export interface MmapOptions {
  /** MAP_FIXED_NOREPLACE at this address */
  addr?: number | bigint;
  /** default PROT_READ | PROT_WRITE */
  prot?: number;
  /** map a file (a device BAR) instead of anonymous memory */
  fd?: number;
  offset?: number | bigint;
}

export interface SpawnOptions {
  /** RLIMIT_MEMLOCK in bytes (soft = hard) */
  memlock?: number;
  uid?: number;
  name?: string;
  /** capabilities held (CAP_IPC_LOCK = 14, ...) */
  caps?: number[];
}

export interface UserProcess {
  readonly pid: number;
  open(path: string, flags?: number): number;
  close(fd: number): number;
  ioctl(fd: number, request: number, arg?: number | bigint): number;
  /** the mapped address, or -errno */
  mmap(length: number, opts?: MmapOptions): number;
  munmap(addr: number | bigint, length: number): number;
  /** the process's own memory; throws Segfault where it is not readable */
  read(addr: number | bigint, length: number): Uint8Array;
  /** throws Segfault where it is not writable */
  write(addr: number | bigint, bytes: Uint8Array): void;
  /** Optional, where the memory is reachable without a copy (the twin): `value` encoded as
   * `desc` straight into the process's memory at addr, `size` bytes (absent fields and
   * padding zero), or decoded from it; false / null where the memory is not accessible.
   * Same bytes as write(addr, desc.encode(value, size)) and desc.decode(read(addr, size)). */
  writeStruct?<V>(desc: StructDesc<V>, addr: number, value: EncodeValue<V>, size?: number): boolean;
  readStruct?<V>(desc: StructDesc<V>, addr: number): V | null;
  dup(fd: number): number;
  /** SCM_RIGHTS: the fd's file installed in `to`; returns the new fd there */
  sendFd(fd: number, to: UserProcess): number;
  pread(fd: number, buf: number | bigint, count: number, offset: number | bigint): number;
  pwrite(fd: number, buf: number | bigint, count: number, offset: number | bigint): number;
  /** read(2) / write(2) at the file position */
  readFd(fd: number, buf: number | bigint, count: number): number;
  writeFd(fd: number, buf: number | bigint, count: number): number;
  eventfd(flags?: number): number;
  readlink(path: string): string | number;
  readdir(path: string): string[] | number;
  /** setrlimit(RLIMIT_MEMLOCK) */
  setMemlock(soft: number, hard?: number): number;
  /** capset(2) removing `cap` (CAP_IPC_LOCK = 14, ...) from the effective, permitted and
   * inheritable sets */
  capDrop(cap: number): number;
  /** /proc/self/status: what the kernel says is locked and pinned */
  procStatus(): ProcStatus | number;
  /** nanosleep: 0, or -EINVAL for a negative or non-finite time; on the twin, virtual time
   * advances and device timers fire */
  sleep(ms: number): number;
}

export interface ProcStatus {
  /** VmLck: mm->locked_vm (type1's and mlock's accounting), kB */
  vmLckKb: number;
  /** VmPin: mm->pinned_vm (iommufd's per-mm accounting), kB */
  vmPinKb: number;
}

export interface Backend {
  readonly kind: "twin" | "host";
  spawn(opts?: SpawnOptions): UserProcess;
  /** process exit: every fd closed, memory unmapped */
  kill(p: UserProcess): void;
}

export class Segfault extends Error {
  constructor(readonly addr: number | bigint) {
    super(`SIGSEGV at 0x${addr.toString(16)}`);
    this.name = "Segfault";
  }
}

/**
 * A call through the handle of a process that has exited (Backend.kill): a dead task makes no
 * syscalls and has no memory, so the handle refuses every call, as Segfault refuses an access.
 */
export class ProcessExited extends Error {
  constructor(
    readonly pid: number,
    readonly call: string,
  ) {
    super(`${call}: process ${pid} has exited; a dead process makes no calls`);
    this.name = "ProcessExited";
  }
}

export function toNum(v: number | bigint): number {
  return typeof v === "number" ? v : v < 2n ** 53n && v >= 0n ? Number(v) : 2 ** 53;
}
