// What the bridge server needs of the host kernel, through koffi: reading and writing a
// client's memory (process_vm_readv/writev, the same ptrace permission a debugger needs),
// taking a duplicate of a client's own fd (pidfd_open + pidfd_getfd), and reading its
// RLIMIT_MEMLOCK (prlimit). Loaded on first use, like the host backend.

import { createRequire } from "node:module";
import { koffiProblem } from "../backend/host.js";

interface Libc {
  koffi: { errno(): number };
  readv(pid: number, local: Buffer, nl: number, remote: Buffer, nr: number, flags: number): number;
  writev(pid: number, local: Buffer, nl: number, remote: Buffer, nr: number, flags: number): number;
  syscall3(nr: number, a: number, b: number, c: number): number;
  prlimit(pid: number, res: number, nw: null, old: Buffer): number;
  close(fd: number): number;
}

/** process_vm_readv/writev go through one native scratch buffer of this size */
const SCRATCH = 64 << 10;
let scratch: Uint8Array = new Uint8Array(0);
const iovLocal = Buffer.alloc(16);
const iovRemote = Buffer.alloc(16);

let libc: Libc | null = null;

function lib(): Libc {
  if (libc) return libc;
  let koffi;
  try {
    koffi = createRequire(import.meta.url)("koffi");
  } catch (e) {
    throw new Error(`the bridge server needs the host kernel: ${koffiProblem(e)}`);
  }
  const c = koffi.load("libc.so.6");
  // the iovecs are raw bytes filled in by remoteCopy() (no per-call marshalling of objects)
  const proto = (name: string) =>
    c.func(`long ${name}(int pid, void *local, unsigned long nl, void *remote, unsigned long nr, unsigned long flags)`);
  const ptr = koffi.alloc("uint8_t", SCRATCH);
  scratch = new Uint8Array(koffi.view(ptr, SCRATCH) as ArrayBuffer);
  iovLocal.writeBigUInt64LE(koffi.address(ptr) as bigint, 0);
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
 * returns the count done, as process_vm_readv does. The iovecs are bytes filled in here and
 * the data goes through a native scratch buffer: no per-call marshalling of JS objects.
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
  let done = 0;
  while (done < len) {
    const n = Math.min(SCRATCH, len - done);
    const a = addr + done;
    iovLocal.writeUInt32LE(n, 8);
    iovRemote.writeUInt32LE(a % 0x100000000, 0);
    iovRemote.writeUInt32LE(Math.floor(a / 0x100000000), 4);
    iovRemote.writeUInt32LE(n, 8);
    let r: number;
    if (write) {
      scratch.set(off + done === 0 && n === buf.length ? buf : buf.subarray(off + done, off + done + n));
      r = l.writev(pid, iovLocal, 1, iovRemote, 1, 0);
    } else {
      r = l.readv(pid, iovLocal, 1, iovRemote, 1, 0);
      if (r > 0) buf.set(scratch.subarray(0, r), off + done);
    }
    if (r < 0) return done > 0 ? done : err();
    done += r;
    if (r < n) break;
  }
  return done;
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

let mm: {
  mmap: (a: null, len: number, prot: number, flags: number, fd: number, off: number) => unknown;
  munmap: (p: unknown, len: number) => number;
  view: (p: unknown, len: number) => ArrayBuffer;
  address: (p: unknown) => bigint;
} | null = null;

/** mmap(MAP_SHARED) of a client's memfd (the shared-memory channel) as an ArrayBuffer;
 * unmap() lets it go. null when it cannot be mapped. */
export function mapShared(fd: number, len: number): { buf: ArrayBuffer; unmap(): void } | null {
  if (!mm) {
    const koffi = createRequire(import.meta.url)("koffi");
    const c = koffi.load("libc.so.6");
    mm = {
      mmap: c.func("void *mmap(void *a, size_t len, int prot, int flags, int fd, long off)"),
      munmap: c.func("int munmap(void *p, size_t len)"),
      view: (p, n) => koffi.view(p, n) as ArrayBuffer,
      address: (p) => koffi.address(p) as bigint,
    };
  }
  const PROT_RW = 3;
  const MAP_SHARED = 1;
  const p = mm.mmap(null, len, PROT_RW, MAP_SHARED, fd, 0);
  if (p === null || mm.address(p) === 0xffffffffffffffffn) return null; // MAP_FAILED
  let live = true;
  return {
    buf: mm.view(p, len),
    unmap() {
      if (live) mm!.munmap(p, len);
      live = false;
    },
  };
}
