// The bridge server: one twin kernel serving many real client processes over a Unix socket.
//
// Each connection is one client process (native/preload.c): its HELLO makes a twin process
// with the client's pid (checked against SO_PEERCRED), memory, rlimit and capabilities; its
// requests are the syscalls the preload intercepted, run through the twin's syscall layer as
// any twin process's are; its end (exit, crash, SIGKILL: the kernel closes the socket) is
// process exit in the twin. Requests are served one at a time in arrival order, so the twin
// stays the sequential kernel its tests know. A malformed request ends that client alone.

import * as net from "node:net";
import { existsSync, unlinkSync } from "node:fs";
import type { Twin } from "../twin.js";
import * as sys from "../kernel/syscalls.js";
import { sysPollOnce } from "../kernel/poll.js";
import {
  EBUSY,
  ECHILD,
  EFAULT,
  EINVAL,
  EISDIR,
  EMSGSIZE,
  ENOENT,
  ENOSYS,
  EPERM,
  EPROTO,
  errnoName,
} from "../uapi/errno.js";
import * as V from "../uapi/vfio.js";
import * as K from "../uapi/kvm.js";
import * as I from "../uapi/iommufd.js";
import { IOMMU_TEST_CMD } from "../uapi/iommufd_test.js";
import { formatHolders, whoHolds } from "../check/holders.js";
import type { File } from "../kernel/fs.js";
import { RLIM_INFINITY } from "../kernel/process.js";
import { ClientProcess } from "./client_process.js";
import type { RemoteMm } from "./remote_mm.js";
import { isProcFailNth, openProcFailNth } from "./procfs.js";
import { closeFd, mapShared, pidfdGetfd, pidfdOpen, peerCred } from "./ffi.js";
import { Op, REP_HDR, REQ_HDR, REQ_MAX, VT_PROTO_VERSION, VT_RW_POS, VT_RW_WRITE } from "./proto.js";

/** ioctls whose handlers install a new fd: the client sets a number aside before each
 * (IOMMU_TEST_CMD's CREATE_ACCESS, VFIO_DEVICE_FEATURE's migration data fd among them). */
export const FD_MAKING_IOCTLS: readonly number[] = [
  V.VFIO_GROUP_GET_DEVICE_FD,
  K.KVM_CREATE_VM,
  K.KVM_CREATE_VCPU,
  K.KVM_CREATE_DEVICE,
  I.IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_TEST_CMD,
  V.VFIO_DEVICE_FEATURE,
].map((n) => n >>> 0);

export interface ServerOptions {
  /** one line per event (connect, exit, EBUSY with its holders, protocol errors) */
  log?: (line: string) => void;
  /** let the twin's clock follow wall time as well as the clients' sleeps (default true) */
  wallClock?: boolean;
  /** called before each request is served (tests use it to kill a client mid-call) */
  onRequest?: (c: Conn, op: number) => void;
}

interface Pending {
  entries: [number, File][];
  /** credentials fork() copies: capabilities and RLIMIT_MEMLOCK */
  caps: number[];
  memlock: [number, number];
  timer: NodeJS.Timeout;
}

const S_IFDIR = 0o040000;
const S_IFCHR = 0o020000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** The shared-memory channel of a client (native/bridge_proto.h, VT_SHM_*). */
interface Shm {
  readonly buf: Buffer;
  /** req_seq, rep_seq, server_polling, client_blocked */
  readonly hdr: Int32Array;
  /** the last request served */
  served: number;
  unmap(): void;
}
const SHM_SIZE = 68 * 1024;
const SHM_REQ = 64;
const SHM_REP = 64 + 32 * 1024;
const SHM_AREA = 32 * 1024;
/** how long the server keeps polling the channels after the last request (ms) */
const SPIN_MS = 0.2;
/** the longest it polls before letting the event loop run (ms) */
const YIELD_MS = 5;
const BELL = Buffer.from("r");

export class Conn {
  proc: ClientProcess | null = null;
  shm: Shm | null = null;
  private buf: Buffer = Buffer.alloc(0);
  closed = false;
  /** requests served (for the log and tests) */
  served = 0;

  constructor(
    readonly server: BridgeServer,
    readonly sock: net.Socket,
  ) {}

  onData(chunk: Buffer): void {
    // with a shared-memory channel the socket carries doorbells only
    if (this.shm) return this.server.pump();
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (!this.closed && this.buf.length >= 8) {
      const len = this.buf.readUInt32LE(0);
      if (len < REQ_HDR || len > REQ_MAX) return this.fail(`bad request length ${len}`);
      if (this.buf.length < len) return;
      const frame = this.buf.subarray(0, len);
      this.buf = this.buf.subarray(len);
      this.served++;
      const reply = this.serve(frame);
      if (!this.closed) this.sock.write(reply);
      if (this.shm) {
        this.buf = Buffer.alloc(0);
        return this.server.pump();
      }
    }
  }

  serve(frame: Buffer): Buffer {
    try {
      return this.server.handle(this, frame);
    } catch (e) {
      // a bug of the twin inside a path: this client gets EPROTO, the server goes on
      this.server.log(`${this.who()}: internal error: ${(e as Error).stack ?? e}`);
      return repl(-EPROTO);
    }
  }

  /** Serve the request waiting in the channel, if any; true when there was one. */
  serveShm(): boolean {
    const m = this.shm!;
    const seq = Atomics.load(m.hdr, 0);
    if (seq === m.served || this.closed) return false;
    m.served = seq;
    this.served++;
    const len = m.buf.readUInt32LE(SHM_REQ);
    if (len < REQ_HDR || len > SHM_AREA) {
      this.fail(`bad request length ${len} in the shared channel`);
      return true;
    }
    // a copy: the client could rewrite the shared frame while it is being served
    let reply = this.serve(Buffer.from(m.buf.subarray(SHM_REQ, SHM_REQ + len)));
    if (reply.length > SHM_AREA) reply = repl(-EMSGSIZE);
    if (this.closed) return true;
    reply.copy(m.buf, SHM_REP);
    Atomics.store(m.hdr, 1, seq);
    if (Atomics.load(m.hdr, 3) === 1) this.sock.write(BELL);
    return true;
  }

  fail(why: string): void {
    this.server.log(`${this.who()}: ${why}; disconnecting`);
    this.sock.destroy();
    this.end();
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.exit(this);
  }

  who(): string {
    return this.proc ? `${this.proc.name}[${this.proc.pid}]` : "unknown client";
  }
}

function repl(rc: number, aux0: number | bigint = 0, aux1: number | bigint = 0, payload?: Buffer): Buffer {
  const b = Buffer.alloc(REP_HDR + (payload?.length ?? 0));
  b.writeUInt32LE(b.length, 0);
  b.writeBigInt64LE(BigInt(rc), 8);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(aux0)), 16);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(aux1)), 24);
  if (payload) payload.copy(b, REP_HDR);
  return b;
}

function fdEventsPayload(ev: number[]): Buffer | undefined {
  if (ev.length === 0) return undefined;
  const b = Buffer.alloc(ev.length * 4);
  ev.forEach((v, i) => b.writeInt32LE(v, i * 4));
  return b;
}

/** A u64 argument as the syscall layer takes it: exact below 2^53, else a value that faults. */
function u(frame: Buffer, i: number): number {
  return sys.userArg(frame.readBigUInt64LE(8 + i * 8));
}
/** A signed argument (fds, flags, positions). */
function s(frame: Buffer, i: number): number {
  const v = frame.readBigInt64LE(8 + i * 8);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(v)
    : v < 0n
      ? -1
      : 2 ** 53;
}
function str(frame: Buffer): string {
  const p = frame.subarray(REQ_HDR);
  const z = p.indexOf(0);
  return p.subarray(0, z < 0 ? p.length : z).toString("utf8");
}

const RLIM_INFINITY_U64 = 0xffffffffffffffffn;
const rlim = (v: number): bigint => (v >= RLIM_INFINITY ? RLIM_INFINITY_U64 : BigInt(v));
const unrlim = (v: bigint): number => (v >= BigInt(RLIM_INFINITY) ? RLIM_INFINITY : Number(v));

export class BridgeServer {
  readonly conns = new Set<Conn>();
  private readonly pending = new Map<number, Pending>();
  private nextToken = 1;
  private server: net.Server | null = null;
  private clockTimer: NodeJS.Timeout | null = null;
  private readonly wall0 = performance.now();
  /** device time given by clients' sleeps, on top of wall time */
  private slept = 0;
  readonly fdMaking: number[];
  readonly logLines: string[] = [];

  constructor(
    readonly twin: Twin,
    readonly opts: ServerOptions = {},
  ) {
    this.fdMaking = [...FD_MAKING_IOCTLS];
  }

  log(line: string): void {
    this.logLines.push(line);
    this.opts.log?.(line);
  }

  listen(path: string): Promise<void> {
    if (existsSync(path)) unlinkSync(path);
    const srv = net.createServer((sock) => this.accept(sock));
    this.server = srv;
    if (this.opts.wallClock !== false) {
      this.clockTimer = setInterval(() => this.tick(), 5);
      this.clockTimer.unref();
    }
    return new Promise((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(path, () => {
        srv.off("error", reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    if (this.clockTimer) clearInterval(this.clockTimer);
    for (const c of this.conns) {
      c.sock.destroy();
      c.end();
    }
    for (const t of [...this.pending.keys()]) this.dropFork(t);
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(sock: net.Socket): void {
    const c = new Conn(this, sock);
    this.conns.add(c);
    sock.setNoDelay?.(true);
    sock.on("data", (d) => c.onData(d));
    sock.on("error", () => c.end());
    sock.on("close", () => c.end());
  }

  /** Device time follows wall time (a client polling an eventfd sees its interrupt come). */
  private tick(): void {
    const target = (performance.now() - this.wall0) * 1e6 + this.slept;
    const k = this.twin.kernel;
    if (target > k.clock.now) this.twin.advance(target - k.clock.now);
  }

  private pumping = false;

  /**
   * Serve the shared-memory channels, then keep polling them a little (SPIN_MS) with
   * server_polling set, so a client's next call needs no doorbell and no wakeup. Gives the
   * event loop its turn every YIELD_MS.
   */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const start = performance.now();
      let idle = start;
      this.setPolling(1);
      for (;;) {
        let any = false;
        for (const c of this.conns) if (c.shm && c.serveShm()) any = true;
        const now = performance.now();
        if (any) idle = now;
        else if (now - idle > SPIN_MS) {
          this.setPolling(0);
          // a request stored while polling stopped rang no bell: look once more
          let late = false;
          for (const c of this.conns)
            if (c.shm && !c.closed && Atomics.load(c.shm.hdr, 0) !== c.shm.served) late = true;
          if (!late) break;
          this.setPolling(1);
          idle = now;
        }
        if (now - start > YIELD_MS) {
          this.setPolling(0);
          setImmediate(() => this.pump());
          break;
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private setPolling(v: number): void {
    for (const c of this.conns) if (c.shm) Atomics.store(c.shm.hdr, 2, v);
  }

  exit(c: Conn): void {
    this.conns.delete(c);
    c.shm?.unmap();
    c.shm = null;
    const p = c.proc;
    if (!p) return;
    const k = this.twin.kernel;
    try {
      sys.sysExit(k, p);
    } catch (e) {
      // a kernel bug in a release path: say so, keep serving the others
      this.log(`${c.who()}: internal error at exit: ${(e as Error).stack ?? e}`);
    }
    closeFd(p.pidfd);
    this.log(`${c.who()}: exited (${c.served} requests)`);
  }

  handle(c: Conn, f: Buffer): Buffer {
    const op = f.readUInt32LE(4);
    this.opts.onRequest?.(c, op);
    if (op === Op.HELLO) return this.hello(c, f);
    const p = c.proc;
    if (!p) return repl(-EPERM);
    const k = this.twin.kernel;
    p.fdEvents = [];
    p.reserved = [];
    (p.mm as RemoteMm).newRequest();
    switch (op) {
      case Op.OPEN: {
        const path = str(f);
        const rc = isProcFailNth(path)
          ? openProcFailNth(k, p, path, s(f, 1), s(f, 0))
          : sys.sysOpen(k, p, path, s(f, 1), s(f, 0));
        if (rc === -EBUSY) this.busy(c, `open ${path}`, path);
        return repl(rc);
      }
      case Op.CLOSE:
        return repl(sys.sysClose(k, p, s(f, 0)));
      case Op.IOCTL: {
        const n = (f.length - REQ_HDR) >> 2;
        for (let i = 0; i < n; i++) p.reserved.push(f.readInt32LE(REQ_HDR + 4 * i));
        const fd = s(f, 0);
        const cmd = Number(f.readBigUInt64LE(16) & 0xffffffffn);
        const rc = sys.sysIoctl(k, p, fd, cmd, u(f, 2));
        if (rc === -EBUSY) this.busy(c, `ioctl(${fd}, 0x${cmd.toString(16)})`, p.files.lookup(fd)?.path);
        p.reserved = [];
        return repl(rc, 0, 0, fdEventsPayload(p.fdEvents));
      }
      case Op.RW: {
        const flags = s(f, 4);
        const pos = flags & VT_RW_POS ? s(f, 3) : null;
        const count = u(f, 2);
        const rc = sys.sysRw(k, p, (flags & VT_RW_WRITE) !== 0, s(f, 0), u(f, 1), count, pos);
        return repl(rc);
      }
      case Op.DUP:
        return repl(sys.sysDup(k, p, s(f, 0), s(f, 1)), 0, 0, fdEventsPayload(p.fdEvents));
      case Op.MMAP: {
        const addr = u(f, 1);
        const rc = sys.sysMmap(k, p, u(f, 2), { addr, prot: s(f, 3), fd: s(f, 0), offset: u(f, 5) });
        return repl(rc < 0 ? rc : 0);
      }
      case Op.MUNMAP:
        return repl(sys.sysMunmap(k, p, u(f, 0), u(f, 1)));
      case Op.MMIO:
        return this.mmio(p, u(f, 0), s(f, 1), s(f, 2) !== 0, f.readBigUInt64LE(32));
      case Op.READLINK: {
        const r = k.sysfs.readlink(str(f));
        return typeof r === "number" ? repl(r) : repl(Buffer.byteLength(r), 0, 0, Buffer.from(r));
      }
      case Op.READFILE: {
        const path = str(f);
        const r = k.sysfs.read(path);
        if (typeof r === "number") return repl(k.sysfs.isDir(path) ? -EISDIR : r);
        const b = Buffer.from(r);
        return repl(b.length, 0, 0, b);
      }
      case Op.STAT:
        return this.stat(str(f), s(f, 0) !== 0);
      case Op.READDIR: {
        const path = str(f);
        let r = k.sysfs.readdir(path);
        if (typeof r === "number" && k.devices.isDir(path)) r = this.devDir(path);
        if (typeof r === "number") return repl(r);
        return repl(r.length, 0, 0, Buffer.from(r.map((x) => x + "\0").join("")));
      }
      case Op.STATUS: {
        const st = { lck: p.mm.lockedVm * 4, pin: p.mm.pinnedVm * 4 };
        return repl(0, st.lck, st.pin);
      }
      case Op.SLEEP: {
        const ns = Math.min(u(f, 0), 3600e9);
        this.slept += ns;
        this.twin.advance(ns);
        return repl(0);
      }
      case Op.CAPGET:
        return repl(0, p.capMask());
      case Op.CAPSET:
        return repl(p.capSet(f.readBigUInt64LE(8)));
      case Op.GETRLIMIT:
        return repl(0, rlim(p.memlock.cur), rlim(p.memlock.max));
      case Op.SETRLIMIT:
        return repl(p.setMemlock(unrlim(f.readBigUInt64LE(8)), unrlim(f.readBigUInt64LE(16))));
      case Op.FORK:
        return repl(this.fork(p));
      case Op.REAP:
        return repl(this.reap(s(f, 0)));
      case Op.POLL: {
        const n = Math.min(64, (f.length - REQ_HDR) >> 3);
        const q = Array.from({ length: n }, (_, i) => ({
          fd: f.readInt32LE(REQ_HDR + 8 * i),
          events: f.readInt32LE(REQ_HDR + 8 * i + 4),
        }));
        const rev = sysPollOnce(k, p, q);
        const out = Buffer.alloc(4 * n);
        rev.forEach((r, i) => out.writeInt32LE(r, 4 * i));
        return repl(rev.filter((r) => r !== 0).length, 0, 0, out);
      }
      default:
        return repl(-ENOSYS);
    }
  }

  private hello(c: Conn, f: Buffer): Buffer {
    if (c.proc) return repl(-EINVAL);
    const fd = (c.sock as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    const cred = fd >= 0 ? peerCred(fd) : null;
    const pid = s(f, 0);
    if (!cred || cred[0] !== pid) {
      c.fail(`HELLO says pid ${pid} but the socket's peer is ${cred ? cred[0] : "unknown"}`);
      return repl(-EPERM);
    }
    if (s(f, 2) !== VT_PROTO_VERSION) {
      c.fail(`protocol version ${s(f, 2)}, the server speaks ${VT_PROTO_VERSION}`);
      return repl(-EPROTO);
    }
    const pidfd = pidfdOpen(pid);
    if (pidfd < 0) {
      c.fail(`pidfd_open(${pid}): ${errnoName(-pidfd)}`);
      return repl(pidfd);
    }
    const name = str(f) || "client";
    const shmFd = s(f, 4) === 1 ? s(f, 3) : -1;
    let shm: Shm | null = null;
    if (shmFd >= 0) {
      const dup = pidfdGetfd(pidfd, shmFd);
      const m = dup >= 0 ? mapShared(dup, SHM_SIZE) : null;
      if (dup >= 0) closeFd(dup);
      if (m) shm = { buf: Buffer.from(m.buf), hdr: new Int32Array(m.buf, 0, 4), served: 0, unmap: m.unmap };
    }
    const p = new ClientProcess(this.twin.kernel, pid, name, pidfd);
    this.twin.kernel.adoptProcess(p);
    c.proc = p;
    const token = s(f, 1);
    const fork = token ? this.pending.get(token) : undefined;
    if (fork) {
      // the child of a fork: its table is the parent's at the time of fork()
      clearTimeout(fork.timer);
      this.pending.delete(token);
      p.caps.clear();
      for (const c of fork.caps) p.caps.add(c);
      [p.memlock.cur, p.memlock.max] = fork.memlock;
      for (const [n, file] of fork.entries) {
        file.handOver(`fork ${token}`, "init");
        p.files.installAt(n, file);
      }
    }
    this.log(`${name}[${pid}] connected${fork ? ` (fork, ${fork.entries.length} fds inherited)` : ""}`);
    const list = Buffer.alloc(this.fdMaking.length * 4);
    this.fdMaking.forEach((n, i) => list.writeUInt32LE(n, i * 4));
    // the channel takes over once the client has this reply (it maps the memfd then)
    c.shm = shm;
    return repl(0, shm ? 1 : 0, 0, list);
  }

  /** fork(): the child's fd table is a copy of the parent's now; the child claims it. */
  private fork(p: ClientProcess): number {
    const token = this.nextToken++;
    const entries = p.files.entries();
    for (const [, file] of entries) file.get(`fork ${token}`);
    // a fork whose child never connects (it failed, or exec'd at once) lets go in time
    const timer = setTimeout(() => this.dropFork(token), 30_000);
    timer.unref();
    this.pending.set(token, { entries, caps: [...p.caps], memlock: [p.memlock.cur, p.memlock.max], timer });
    return token;
  }

  /**
   * A parent's wait() reaped `pid`: in Linux the child's files were released before the wait
   * returned, so a bridged child's exit is done now, before the parent's next call, even if
   * its socket's close has not been seen yet. Only a process that is gone can be reaped.
   */
  private reap(pid: number): number {
    if (!(pid > 0) || existsSync(`/proc/${pid}/status`)) return -ECHILD;
    for (const c of this.conns)
      if (c.proc?.pid === pid) {
        c.sock.destroy();
        c.end();
        return 0;
      }
    return 0;
  }

  private dropFork(token: number): void {
    const f = this.pending.get(token);
    if (!f) return;
    this.pending.delete(token);
    clearTimeout(f.timer);
    const k = this.twin.kernel;
    k.withTask(k.kthread, () => {
      for (const [, file] of f.entries) file.put(`fork ${token}`);
    });
  }

  private mmio(p: ClientProcess, addr: number, size: number, write: boolean, val: bigint): Buffer {
    const k = this.twin.kernel;
    const v = p.mm.find(addr);
    if (!v || !v.io || ![1, 2, 4, 8].includes(size) || addr + size > v.end) return repl(-EFAULT);
    const off = v.pgoff + (addr - v.start);
    return k.withTask(p.mainTask, () => {
      if (write) {
        const b = new Uint8Array(size);
        for (let i = 0; i < size; i++) b[i] = Number((val >> BigInt(8 * i)) & 0xffn);
        return repl(v.io!.write(off, b) ? 0 : -EFAULT);
      }
      const b = v.io!.read(off, size);
      if (!b) return repl(-EFAULT);
      let x = 0n;
      for (let i = size - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]!);
      return repl(0, x);
    });
  }

  private stat(path: string, follow: boolean): Buffer {
    const k = this.twin.kernel;
    if (k.devices.lookup(path)) return repl(0, S_IFCHR | 0o600, 0);
    const link = k.sysfs.readlink(path);
    if (typeof link === "string") return repl(0, follow ? S_IFDIR | 0o755 : S_IFLNK | 0o777, link.length);
    const text = k.sysfs.read(path);
    if (typeof text === "string") return repl(0, S_IFREG | 0o444, 4096);
    if (k.sysfs.isDir(path) || k.devices.isDir(path)) return repl(0, S_IFDIR | 0o755, 0);
    return repl(-ENOENT);
  }

  /** The names under a /dev directory (devtmpfs), from the device nodes. */
  private devDir(path: string): string[] | number {
    const k = this.twin.kernel;
    const pre = path.endsWith("/") ? path : path + "/";
    const names = new Set<string>();
    for (const p of k.devices.paths()) if (p.startsWith(pre)) names.add(p.slice(pre.length).split("/")[0]!);
    return names.size ? [...names].sort() : -ENOENT;
  }

  /** Every EBUSY names who holds the object: the call's file and any open VFIO group. */
  private busy(c: Conn, what: string, path: string | undefined): void {
    const k = this.twin.kernel;
    const paths = new Set<string>();
    if (path) paths.add(path);
    for (const o of k.objects) {
      const fp = (o as { path?: string }).path;
      if (o.kind === "file" && fp && /^\/dev\/vfio\/\d+$/.test(fp)) paths.add(fp);
    }
    const lines = [...paths].map((pp) => formatHolders(pp, whoHolds(k, pp)));
    this.log(`${c.who()}: ${what} = -EBUSY; held by:\n${lines.join("\n")}`);
  }
}
