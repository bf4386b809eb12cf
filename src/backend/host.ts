// The host backend: the UserProcess calls of ./backend.ts made on the real kernel through FFI
// (koffi, calling glibc). The same userspace code and tests run here and on the twin; here
// the kernel that answers is the machine's own.
//
// There is one process: spawn() hands out a view of the current Node process. Each view
// remembers the fds and mappings it made, so kill() can close and unmap them as process
// exit would, without touching what Node itself holds.
//
// koffi is loaded lazily (createRequire on first use): importing vfio-twin never fails on a
// machine where the native module is missing; createHost() then throws, and hostAvailable()
// / koffiAvailable() let tests skip with a message.

import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createRequire } from "node:module";
import type { Backend, MmapOptions, ProcStatus, SpawnOptions, UserProcess } from "./backend.js";
import { PROT_READ, PROT_WRITE, ProcessExited, Segfault } from "./backend.js";
import { EBUSY, EEXIST, EINVAL, EIO, errnoByName } from "../uapi/errno.js";
import type { HeldObject } from "../kernel/trace.js";
import { hostHolders } from "./host_holders.js";
import { KVM_CREATE_DEVICE, KVM_CREATE_DEVICE_TEST, KVM_CREATE_VCPU, KVM_CREATE_VM } from "../uapi/kvm.js";
import { IOMMU_FAULT_QUEUE_ALLOC } from "../uapi/iommufd.js";
import { VFIO_GROUP_GET_DEVICE_FD } from "../uapi/vfio.js";

const O_CLOEXEC = 0o2000000;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MAP_FIXED_NOREPLACE = 0x100000;
const RLIMIT_MEMLOCK = 8;
const RLIM_INFINITY = 2n ** 64n - 1n;
const PAGE_SIZE = 4096;

type Fn = (...args: any[]) => any;

interface Libc {
  koffi: { errno(): number };
  open: Fn;
  close: Fn;
  ioctl: Fn;
  mmap: Fn;
  munmap: Fn;
  dup: Fn;
  pread: Fn;
  pwrite: Fn;
  read: Fn;
  write: Fn;
  eventfd: Fn;
  setrlimit: Fn;
  capget: Fn;
  capset: Fn;
  /** memcpy(JS buffer <- raw address) */
  copyIn: Fn;
  /** memcpy(raw address <- JS buffer) */
  copyOut: Fn;
}

let libc: Libc | null = null;
let loadError: Error | null = null;

function load(): Libc {
  if (libc) return libc;
  if (loadError) throw loadError;
  try {
    const koffi = createRequire(import.meta.url)("koffi");
    const lib = koffi.load("libc.so.6");
    // ioctl and open are variadic in C; on x86-64 (System V) integer arguments travel in the
    // same registers either way, so fixed prototypes are ABI-compatible and avoid koffi's
    // slower per-call variadic marshalling on the hot ioctl path.
    libc = {
      koffi,
      open: lib.func("int open(const char *path, int flags, uint32_t mode)"),
      close: lib.func("int close(int fd)"),
      ioctl: lib.func("int ioctl(int fd, unsigned long request, uint64_t arg)"),
      mmap: lib.func("intptr_t mmap(uintptr_t addr, size_t length, int prot, int flags, int fd, int64_t offset)"),
      munmap: lib.func("int munmap(uintptr_t addr, size_t length)"),
      dup: lib.func("int dup(int fd)"),
      pread: lib.func("intptr_t pread(int fd, uintptr_t buf, size_t count, int64_t offset)"),
      pwrite: lib.func("intptr_t pwrite(int fd, uintptr_t buf, size_t count, int64_t offset)"),
      read: lib.func("intptr_t read(int fd, uintptr_t buf, size_t count)"),
      write: lib.func("intptr_t write(int fd, uintptr_t buf, size_t count)"),
      eventfd: lib.func("int eventfd(unsigned int initval, int flags)"),
      setrlimit: lib.func("int setrlimit(int resource, const void *rlim)"),
      capget: lib.func("int capget(void *hdr, void *data)"),
      capset: lib.func("int capset(void *hdr, const void *data)"),
      copyIn: lib.func("memcpy", "void *", ["void *", "uintptr_t", "size_t"]),
      copyOut: lib.func("memcpy", "void *", ["uintptr_t", "const void *", "size_t"]),
    };
    return libc;
  } catch (e) {
    loadError = Object.assign(new Error(`host backend unavailable: ${koffiProblem(e)}`), {
      code: "ERR_VFIO_TWIN_NO_KOFFI",
    });
    throw loadError;
  }
}

/** Why koffi could not be used: missing (it is an optional dependency, so an install without
 * it is normal) or present but unable to load libc. */
export function koffiProblem(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === "MODULE_NOT_FOUND" || code === "ERR_MODULE_NOT_FOUND")
    return "koffi, an optional dependency, is not installed; add it with `npm install koffi`";
  return `koffi could not load libc (${(e as Error).message})`;
}

/** Throws, with how to add it, when koffi is not installed: for a command that needs the host
 * kernel (the bridge) to say so before it starts rather than fail call by call. */
export function requireKoffi(who: string): void {
  try {
    createRequire(import.meta.url).resolve("koffi");
  } catch (e) {
    throw Object.assign(new Error(`${who} needs the host kernel: ${koffiProblem(e)}`), {
      code: "ERR_VFIO_TWIN_NO_KOFFI",
    });
  }
}

/** Whether koffi and libc load here (the host backend can run at all). */
export function koffiAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/** Whether a node (/dev/kvm, /dev/vfio/vfio, /dev/iommu, ...) exists on this machine. */
export function hostAvailable(path: string): boolean {
  return existsSync(path);
}

/** A userspace integer as the C `unsigned long`/`uint64_t` it stands for (two's complement). */
function u64(v: number | bigint): number | bigint {
  if (typeof v === "number") {
    if (v >= 0 && v <= Number.MAX_SAFE_INTEGER) return v;
    return BigInt.asUintN(64, BigInt(Math.trunc(v)));
  }
  return v >= 0n && v < 2n ** 64n ? v : BigInt.asUintN(64, v);
}

function addrNum(v: number | bigint): number {
  return typeof v === "number" ? v : Number(v);
}

function tryReadlink(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

/** An fs error from node:fs as -errno. */
function fsErrno(e: unknown): number {
  const code = (e as { code?: string }).code;
  return -(code ? (errnoByName(code) ?? EIO) : EIO);
}

/** ioctls whose result is a new fd, tracked so that kill() closes it. */
const KVM_GET_STATS_FD = 0xaece; // _IO(KVMIO, 0xce), on VM and vCPU fds
const FD_RESULT = new Set([KVM_CREATE_VM, KVM_CREATE_VCPU, KVM_GET_STATS_FD, VFIO_GROUP_GET_DEVICE_FD]);
/** ioctls that write a new fd into their struct: request -> offset of the s32 fd field */
const FD_FIELD = new Map([
  [KVM_CREATE_DEVICE >>> 0, 4], // struct kvm_create_device.fd
  [IOMMU_FAULT_QUEUE_ALLOC >>> 0, 12], // struct iommu_fault_alloc.out_fault_fd
]);

/** Views not yet killed: kill() leaves alone untracked fds another live view may own. */
const liveViews = new Set<HostProcess>();

/** Fds the kernel hands out for the passthrough nodes and their anon inodes (by /proc link). */
const PASSTHROUGH_LINK = /^(\/dev\/(kvm|iommu|vfio\/)|anon_inode:(kvm-|\[vfio-device\]|\[iommufd\]))/;

interface Mapping {
  start: number;
  end: number;
  prot: number;
}

export class HostProcess implements UserProcess {
  readonly pid = process.pid;
  /** fds this process view created (open, dup, eventfd, sendFd) and not yet closed */
  readonly fds = new Set<number>();
  /** fds open before spawn(): never closed by kill() unless this view made them */
  private readonly baseline: Set<number>;
  // Segfault detection: a registry of the mappings made through this view (with their
  // protection), not a kernel query. Userspace code on a backend touches only memory it
  // mapped through the backend, so an address outside the registry is a fault for it;
  // reading Node's own heap through read() is refused rather than risking a real SIGSEGV.
  private maps: Mapping[] = [];
  exited = false;

  constructor(private readonly c: Libc) {
    this.baseline = new Set(listFds());
    liveViews.add(this);
  }

  /** A view of a process that has exited (HostBackend.kill) makes no calls: ProcessExited. */
  private alive(call: string): void {
    if (this.exited) throw new ProcessExited(this.pid, call);
  }

  private fail(): number {
    return -this.c.koffi.errno();
  }

  open(path: string, flags = 2): number {
    this.alive("open");
    const fd = this.c.open(path, flags | O_CLOEXEC, 0);
    if (fd < 0) return this.noteBusy(this.fail(), path);
    this.fds.add(fd);
    return fd;
  }

  /** what the last EBUSY was about: a path, or an fd's /proc link */
  private lastBusy: string | null = null;

  private noteBusy(rc: number, what: string): number {
    if (rc === -EBUSY) this.lastBusy = what;
    return rc;
  }

  /** Who holds what the last EBUSY was about, as far as /proc tells (./host_holders.ts). */
  busyHolders(): HeldObject[] {
    if (this.lastBusy === null) return [];
    const path = this.lastBusy.startsWith("/proc/") ? tryReadlink(this.lastBusy) : this.lastBusy;
    return path?.startsWith("/") ? hostHolders(path) : [];
  }

  close(fd: number): number {
    this.alive("close");
    const rc = this.c.close(fd);
    if (rc < 0) return this.fail();
    for (const v of liveViews) v.fds.delete(fd); // fd numbers are the process's, not the view's
    return 0;
  }

  ioctl(fd: number, request: number, arg: number | bigint = 0): number {
    this.alive("ioctl");
    const req = request >>> 0;
    const rc = this.c.ioctl(fd, req, typeof arg === "number" && arg >= 0 ? arg : u64(arg));
    if (rc === -1) return this.noteBusy(-this.c.koffi.errno(), `/proc/self/fd/${fd}`);
    if (FD_RESULT.has(req)) this.fds.add(rc);
    else if (FD_FIELD.has(req)) this.noteFdField(req, addrNum(arg));
    return rc;
  }

  /** Track the fd an ioctl wrote into its struct (KVM_CREATE_DEVICE without TEST, ...). */
  private noteFdField(req: number, arg: number): void {
    if (!this.covered(arg, arg + 16, PROT_READ)) return;
    const b = this.read(arg, 16);
    const dv = new DataView(b.buffer);
    if (req === KVM_CREATE_DEVICE >>> 0 && dv.getUint32(8, true) & KVM_CREATE_DEVICE_TEST) return;
    const fd = dv.getInt32(FD_FIELD.get(req)!, true);
    if (fd >= 0) this.fds.add(fd);
  }

  mmap(length: number, o: MmapOptions = {}): number {
    this.alive("mmap");
    const prot = o.prot ?? PROT_READ | PROT_WRITE;
    const fixed = o.addr !== undefined;
    const want = fixed ? addrNum(o.addr!) : 0;
    const flags = (o.fd !== undefined ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS) | (fixed ? MAP_FIXED_NOREPLACE : 0);
    const off = o.offset !== undefined ? BigInt.asIntN(64, BigInt(o.offset)) : 0;
    const a = Number(this.c.mmap(u64(want), length, prot, flags, o.fd ?? -1, off));
    if (a === -1) return this.fail();
    if (fixed && a !== want) {
      // a kernel older than 4.17 ignores MAP_FIXED_NOREPLACE and picks another address
      this.c.munmap(a, length);
      return -EEXIST;
    }
    this.addMapping(a, a + roundUp(length), prot);
    return a;
  }

  munmap(addr: number | bigint, length: number): number {
    this.alive("munmap");
    const a = addrNum(addr);
    const rc = this.c.munmap(u64(addr), length);
    if (rc < 0) return this.fail();
    this.removeMapping(a, a + roundUp(length));
    return 0;
  }

  read(addr: number | bigint, length: number): Uint8Array {
    this.alive("read");
    const a = addrNum(addr);
    const out = new Uint8Array(length);
    if (length === 0) return out;
    if (!this.covered(a, a + length, PROT_READ)) throw new Segfault(addr);
    this.c.copyIn(out, a, length);
    return out;
  }

  write(addr: number | bigint, bytes: Uint8Array): void {
    this.alive("write");
    const a = addrNum(addr);
    if (bytes.length === 0) return;
    if (!this.covered(a, a + bytes.length, PROT_WRITE)) throw new Segfault(addr);
    this.c.copyOut(a, bytes, bytes.length);
  }

  dup(fd: number): number {
    this.alive("dup");
    const nfd = this.c.dup(fd);
    if (nfd < 0) return this.fail();
    this.fds.add(nfd);
    return nfd;
  }

  /** One process on the host: passing an fd to it is a dup; to anything else, EINVAL. */
  sendFd(fd: number, to: UserProcess): number {
    this.alive("sendFd");
    if (!(to instanceof HostProcess)) return -EINVAL;
    const nfd = this.c.dup(fd);
    if (nfd < 0) return this.fail();
    to.fds.add(nfd);
    return nfd;
  }

  pread(fd: number, buf: number | bigint, count: number, offset: number | bigint): number {
    this.alive("pread");
    return this.num(this.c.pread(fd, u64(buf), count, BigInt.asIntN(64, BigInt(offset))));
  }

  pwrite(fd: number, buf: number | bigint, count: number, offset: number | bigint): number {
    this.alive("pwrite");
    return this.num(this.c.pwrite(fd, u64(buf), count, BigInt.asIntN(64, BigInt(offset))));
  }

  readFd(fd: number, buf: number | bigint, count: number): number {
    this.alive("readFd");
    return this.num(this.c.read(fd, u64(buf), count));
  }

  writeFd(fd: number, buf: number | bigint, count: number): number {
    this.alive("writeFd");
    return this.num(this.c.write(fd, u64(buf), count));
  }

  eventfd(flags = 0): number {
    this.alive("eventfd");
    const fd = this.c.eventfd(0, flags | O_CLOEXEC);
    if (fd < 0) return this.fail();
    this.fds.add(fd);
    return fd;
  }

  readlink(path: string): string | number {
    this.alive("readlink");
    try {
      return readlinkSync(path);
    } catch (e) {
      return fsErrno(e);
    }
  }

  readdir(path: string): string[] | number {
    this.alive("readdir");
    try {
      return readdirSync(path);
    } catch (e) {
      return fsErrno(e);
    }
  }

  setMemlock(soft: number, hard = soft): number {
    this.alive("setMemlock");
    const lim = (v: number) => (v >= Number.MAX_SAFE_INTEGER ? RLIM_INFINITY : BigInt(Math.max(0, Math.trunc(v))));
    const rc = this.c.setrlimit(RLIMIT_MEMLOCK, new BigUint64Array([lim(soft), lim(hard)]));
    return rc < 0 ? this.fail() : 0;
  }

  /** capget + capset (_LINUX_CAPABILITY_VERSION_3: two u32 triples) without `cap`. */
  capDrop(cap: number): number {
    this.alive("capDrop");
    if (!Number.isInteger(cap) || cap < 0 || cap >= 64) return -EINVAL;
    const hdr = new Uint32Array([0x20080522, 0]);
    const data = new Uint32Array(6); // {effective, permitted, inheritable} x 2
    if (this.c.capget(hdr, data) < 0) return this.fail();
    const w = cap >> 5;
    const bit = ~(1 << (cap & 31)) >>> 0;
    for (let i = 0; i < 3; i++) data[w * 3 + i]! &= bit;
    return this.c.capset(hdr, data) < 0 ? this.fail() : 0;
  }

  /** VmLck and VmPin of /proc/self/status, in kB. */
  procStatus(): ProcStatus | number {
    this.alive("procStatus");
    try {
      const text = readFileSync("/proc/self/status", "utf8");
      const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? -1);
      return { vmLckKb: field("VmLck"), vmPinKb: field("VmPin") };
    } catch (e) {
      return fsErrno(e);
    }
  }

  /** A real sleep of the calling thread. */
  sleep(ms: number): number {
    this.alive("sleep");
    if (!Number.isFinite(ms) || ms < 0) return -EINVAL; // nanosleep(): invalid timespec
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    return 0;
  }

  /**
   * Process exit for this view: close the fds it made (open, dup, eventfd, sendFd, and the
   * fd-making ioctls), then any other passthrough fd (found through /proc/self/fd) that
   * appeared after spawn() and that no other live view can own; then unmap its memory.
   */
  exit(): void {
    if (this.exited) return;
    liveViews.delete(this);
    for (const fd of this.fds) this.c.close(fd);
    for (const fd of listFds()) {
      if (this.baseline.has(fd) || this.fds.has(fd)) continue;
      if ([...liveViews].some((v) => v.fds.has(fd) || !v.baseline.has(fd))) continue;
      let link = "";
      try {
        link = readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        continue;
      }
      if (PASSTHROUGH_LINK.test(link)) this.c.close(fd);
    }
    this.fds.clear();
    for (const m of this.maps) this.c.munmap(m.start, m.end - m.start);
    this.maps = [];
    this.exited = true;
  }

  private num(r: number | bigint): number {
    const v = Number(r);
    return v === -1 ? this.fail() : v;
  }

  private addMapping(start: number, end: number, prot: number): void {
    this.removeMapping(start, end);
    this.maps.push({ start, end, prot });
    this.maps.sort((x, y) => x.start - y.start);
  }

  private removeMapping(start: number, end: number): void {
    const keep: Mapping[] = [];
    for (const m of this.maps) {
      if (m.end <= start || m.start >= end) keep.push(m);
      else {
        if (m.start < start) keep.push({ start: m.start, end: start, prot: m.prot });
        if (m.end > end) keep.push({ start: end, end: m.end, prot: m.prot });
      }
    }
    this.maps = keep;
  }

  /** Whether [start, end) lies in mappings of this view that all allow `need`. */
  private covered(start: number, end: number, need: number): boolean {
    if (!Number.isSafeInteger(start) || start < 0 || !(end > start)) return false;
    let at = start;
    for (const m of this.maps) {
      if (m.end <= at) continue;
      // x86: a PROT_WRITE-only mapping is readable too (see accessible() in src/kernel/mm.ts)
      if (m.start > at || (need === PROT_READ ? (m.prot & 7) === 0 : (m.prot & need) !== need)) return false;
      at = m.end;
      if (at >= end) return true;
    }
    return false;
  }
}

function roundUp(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

function listFds(): number[] {
  try {
    return readdirSync("/proc/self/fd").map(Number);
  } catch {
    return [];
  }
}

export class HostBackend implements Backend {
  readonly kind = "host" as const;
  private readonly c = load();

  /** The current process, seen through a fresh view. `memlock` sets the real RLIMIT_MEMLOCK;
   * a different uid cannot be had without a second process, so it is refused. */
  spawn(opts: SpawnOptions = {}): HostProcess {
    if (opts.uid !== undefined && opts.uid !== process.getuid?.()) {
      throw new Error(`host backend: one process (uid ${process.getuid?.()}), cannot spawn as uid ${opts.uid}`);
    }
    const p = new HostProcess(this.c);
    if (opts.memlock !== undefined) {
      const rc = p.setMemlock(opts.memlock);
      if (rc < 0) throw new Error(`host backend: setrlimit(RLIMIT_MEMLOCK) failed with ${rc}`);
    }
    return p;
  }

  kill(p: UserProcess): void {
    if (!(p instanceof HostProcess)) throw new TypeError("not a host process");
    p.exit();
  }
}

/** The host backend; throws when koffi cannot load (see koffiAvailable()). */
export function createHost(): HostBackend {
  return new HostBackend();
}
