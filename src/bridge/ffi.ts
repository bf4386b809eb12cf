// What the bridge server needs of the host kernel, through koffi: reading and writing a
// client's memory (process_vm_readv/writev, the same ptrace permission a debugger needs),
// taking a duplicate of a client's own fd (pidfd_open + pidfd_getfd), and reading its
// RLIMIT_MEMLOCK (prlimit). Loaded on first use, like the host backend.

import { createRequire } from "node:module";

interface Libc {
  koffi: { errno(): number };
  readv(pid: number, local: object[], nl: number, remote: object[], nr: number, flags: number): number;
  writev(pid: number, local: object[], nl: number, remote: object[], nr: number, flags: number): number;
  syscall3(nr: number, a: number, b: number, c: number): number;
  prlimit(pid: number, res: number, nw: null, old: Buffer): number;
  close(fd: number): number;
}

let libc: Libc | null = null;

function lib(): Libc {
  if (libc) return libc;
  const koffi = createRequire(import.meta.url)("koffi");
  const c = koffi.load("libc.so.6");
  koffi.struct("vt_iovec", { base: "void *", len: "size_t" });
  koffi.struct("vt_riovec", { base: "uint64_t", len: "size_t" });
  const proto = (name: string) =>
    c.func(
      `long ${name}(int pid, vt_iovec *local, unsigned long nl, vt_riovec *remote, unsigned long nr, unsigned long flags)`,
    );
  libc = {
    koffi,
    readv: proto("process_vm_readv"),
    writev: proto("process_vm_writev"),
    syscall3: c.func("long syscall(long nr, long a, long b, long c)"),
    prlimit: c.func("int prlimit(int pid, int resource, void *nw, _Out_ uint8_t *old)"),
    close: c.func("int close(int fd)"),
  };
  return libc;
}

/** Whether the FFI loads here (koffi and glibc). */
export function ffiAvailable(): boolean {
  try {
    lib();
    return true;
  } catch {
    return false;
  }
}

/** -errno of the last failed call */
function err(): number {
  return -lib().koffi.errno();
}

/**
 * Copy between `buf[off, off + len)` and the client's [addr, addr + len): bytes done, or
 * -errno (EFAULT for memory the client does not have, ESRCH when it is gone). A partial copy
 * returns the count done, as process_vm_readv does.
 */
export function remoteCopy(
  pid: number,
  write: boolean,
  addr: number,
  buf: Uint8Array,
  off: number,
  len: number,
): number {
  const l = lib();
  const local = [{ base: off === 0 && len === buf.length ? buf : buf.subarray(off, off + len), len }];
  const remote = [{ base: addr, len }];
  const n = write ? l.writev(pid, local, 1, remote, 1, 0) : l.readv(pid, local, 1, remote, 1, 0);
  return n < 0 ? err() : n;
}

const SYS_pidfd_open = 434;
const SYS_pidfd_getfd = 438;

/** pidfd_open(2): a handle on the client that stays valid (and never names another process). */
export function pidfdOpen(pid: number): number {
  const r = lib().syscall3(SYS_pidfd_open, pid, 0, 0);
  return r < 0 ? err() : r;
}

/** pidfd_getfd(2): a duplicate, in this process, of the client's fd `fd` (the same open file). */
export function pidfdGetfd(pidfd: number, fd: number): number {
  const r = lib().syscall3(SYS_pidfd_getfd, pidfd, fd, 0);
  return r < 0 ? err() : r;
}

export function closeFd(fd: number): void {
  lib().close(fd);
}

const RLIMIT_MEMLOCK = 8;
const RLIM_INFINITY = 0xffffffffffffffffn;

/** The client's RLIMIT_MEMLOCK [soft, hard] in bytes (infinity as MAX_SAFE_INTEGER), or null. */
export function memlockOf(pid: number): [number, number] | null {
  const out = Buffer.alloc(16);
  if (lib().prlimit(pid, RLIMIT_MEMLOCK, null, out) < 0) return null;
  const f = (v: bigint) =>
    v === RLIM_INFINITY || v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  return [f(out.readBigUInt64LE(0)), f(out.readBigUInt64LE(8))];
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
let getsockopt: ((fd: number, level: number, opt: number, out: Buffer, len: Buffer) => number) | null = null;

/** SO_PEERCRED of a connected Unix socket: the peer's [pid, uid], as the kernel saw them at
 * connect(); a client cannot claim another process's pid (and so its memory). */
export function peerCred(fd: number): [number, number] | null {
  if (!getsockopt) {
    const koffi = createRequire(import.meta.url)("koffi");
    getsockopt = koffi
      .load("libc.so.6")
      .func("int getsockopt(int fd, int level, int opt, _Out_ uint8_t *val, _Inout_ uint8_t *len)");
  }
  const out = Buffer.alloc(12);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(12);
  if (getsockopt!(fd, SOL_SOCKET, SO_PEERCRED, out, len) < 0) return null;
  return [out.readInt32LE(0), out.readUInt32LE(4)];
}
