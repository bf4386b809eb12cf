// The syscall layer: what a process can ask of the twin kernel, with the numeric contract of
// the raw syscalls (a non-negative result or -errno). Each entry finds the file, runs the
// file operation as a kernel path on the calling task, and records a trace event when
// tracing is on.
//
// Sequential calls borrow the file without a reference, as fdget() does for a process whose
// file table is not shared; ioctlPath() (for the explorer, where another thread of the same
// process may close the fd meanwhile) takes one, as fdget() does for a shared table.

import {
  EACCES,
  EBADF,
  EBUSY,
  EFAULT,
  EINVAL,
  EIO,
  EISDIR,
  ENODEV,
  ENOENT,
  ENOTTY,
  EPIPE,
  ESPIPE,
  ESRCH,
} from "../uapi/errno.js";
import { type IoctlDef, ioctlsByNr } from "../uapi/ioctls.js";
import type { StructDesc } from "../uapi/struct.js";
import * as V from "../uapi/vfio.js";
import {
  decoderOnlyIoctl,
  ioctlExtraBytes,
  ioctlIntArg,
  ioctlPtrArg,
  ioctlRequest,
  ioctlStructArg,
  type UserMem,
} from "../trace/ioctl_decode.js";
import {
  eventfdFlags,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  mapFlags,
  openFlags,
  protFlags,
} from "../trace/syscall_flags.js";
import { arr, cstr, hex, int, ptr, raw, str, struct, sym } from "../trace/value.js";
import { createEventfd } from "./eventfd.js";
import type { File, FileOperations } from "./fs.js";
import type { Kernel } from "./kernel.js";
import { pasidConfig, pasidProcessExit } from "./pasid.js";
import { TASK_SIZE } from "./mm.js";
import type { Process } from "./process.js";
import { isGen, type KGen, type KRet, runSync, SEQ, Task } from "./sched.js";

/** An integer or user address from userspace as the kernel path sees it: exact below 2^53;
 * larger values (never a user address) collapse to 2^53, which faults and matches no flag. */
export function userArg(arg: number | bigint): number {
  if (typeof arg === "number") return arg < 0 ? 2 ** 53 : arg;
  return arg >= 0n && arg < 2n ** 53n ? Number(arg) : 2 ** 53;
}

function enter(p: Process, call: string, a0: number, a1: number): Task {
  const t = p.mainTask;
  t.call = call;
  t.a0 = a0;
  t.a1 = a1;
  t.inSyscall = true;
  return t;
}

/** The return to user space: deferred fputs run now (task_work_run), then the task leaves.
 * Never throws: a release that does is an oops, and the next file's release still runs. */
function leave(k: Kernel, t: Task): void {
  while (t.taskWork.length !== 0) {
    try {
      k.runTaskWork(t);
    } catch (e) {
      k.oops(e, `${t.label} task_work`);
    }
  }
  t.inSyscall = false;
}

/** What a syscall returns when its path oopsed: Linux would kill the task (make_task_dead);
 * the twin keeps the process and the machine usable, fails the call, and the bug stays in
 * Kernel.bugs for the invariant check to report. */
const OOPS_ERRNO = EIO;

/**
 * One syscall from entry to the return to user space (do_syscall_64() ->
 * syscall_exit_to_user_mode()): `body` runs the path and returns its result; whatever it does,
 * returns or throws, the task leaves through leave(). An exception out of the path is a kernel
 * bug (Kernel.oops) and the call returns -EIO. `trace` records the call with its result.
 */
function syscall(
  k: Kernel,
  p: Process,
  name: string,
  a0: number,
  a1: number,
  body: (t: Task) => number,
  trace?: (rc: number) => void,
): number {
  // a dead task makes no syscalls: the exited process's handle refuses before this
  if (p.exited) return -ESRCH;
  const t = enter(p, name, a0, a1);
  let rc: number;
  try {
    rc = body(t);
  } catch (e) {
    k.oops(e, t.label);
    rc = -OOPS_ERRNO;
  }
  if (rc === -EBUSY) p.lastBusy = { call: name, fd: a0, cmd: 0, arg: 0, path: name === "open" ? t.path : "" };
  if (trace && k.trace.enabled) {
    try {
      trace(rc);
    } catch (e) {
      k.oops(e, `${t.label} trace`);
    }
  }
  leave(k, t);
  return rc;
}

function run<T>(k: Kernel, t: Task, r: KRet<T>): T {
  return isGen(r) ? runSync(k, t, r) : r;
}

/** Call a file operation with `t` current, returning its value (driving a path if needed). */
function call<T>(k: Kernel, t: Task, fn: () => KRet<T>): T {
  const prev = k.current;
  k.current = t;
  const s = SEQ;
  const seq = s.on;
  s.on = true;
  try {
    return run(k, t, fn());
  } finally {
    k.current = prev;
    s.on = seq;
  }
}

/** open(2); `at` installs at a number the caller chose (a bridged client's reserved fd). */
export function sysOpen(k: Kernel, p: Process, path: string, flags: number, at?: number): number {
  return syscall(
    k,
    p,
    "open",
    0,
    0,
    (t) => doOpen(k, p, t, path, flags, at),
    (rc) =>
      k.trace.emit(
        p.pid,
        k.clock.now,
        "openat",
        [
          { name: "dirfd", value: sym("AT_FDCWD", -100) },
          { name: "pathname", value: cstr(path) },
          { name: "flags", value: openFlags(flags) },
        ],
        rc,
      ),
  );
}

function doOpen(k: Kernel, p: Process, t: Task, path: string, flags: number, at?: number): number {
  t.path = path;
  const dev = k.devices.lookup(path);
  // with the task current, so the fd's reference names the open that took it
  const install = (f: File) => k.withTask(t, () => (at === undefined ? p.files.install(f) : p.files.installAt(at, f)));
  let rc: number;
  if (!dev) {
    const sys = path.startsWith("/sys/");
    const text = sys ? k.sysfs.read(path) : -ENOENT;
    if (typeof text === "string") rc = openSysfsFile(k, path, flags, text, install);
    else rc = k.devices.isDir(path) || (sys && k.sysfs.isDir(path)) ? -EISDIR : -ENOENT;
  } else {
    const f = k.allocFile(dev.fops, path, flags);
    if (typeof f === "number") rc = -ENODEV;
    else {
      rc = dev.fops.open ? call(k, t, () => dev.fops.open!(f, dev)) : 0;
      if (rc < 0) f.put("init");
      else {
        f.opened = true;
        rc = install(f);
        if (rc < 0) f.put("init");
      }
    }
  }
  return rc;
}

/** A sysfs or debugfs attribute (kernfs_fop_read_iter): its text as of the open, read from
 * the position; a write hands the written text to the attribute's store handler. */
interface SysfsOpen {
  bytes: Uint8Array;
  store: ((text: string) => number) | null;
}
const sysfsFops: FileOperations = {
  owner: null,
  name: "sysfs",
  read(file, buf, count, pos) {
    const bytes = (file.privateData as SysfsOpen).bytes;
    const n = Math.max(0, Math.min(count, bytes.length - pos));
    if (n === 0) return 0;
    const rc = file.k.current!.process!.mm.copyToUser(buf, bytes.subarray(pos, pos + n));
    return rc < 0 ? rc : n;
  },
  write(file, buf, count) {
    const store = (file.privateData as SysfsOpen).store;
    if (!store) return -EACCES;
    if (count > 4096) return -EINVAL;
    const b = file.k.current!.process!.mm.copyFromUser(buf, count);
    if (typeof b === "number") return b;
    const rc = store(new TextDecoder().decode(b));
    return rc < 0 ? rc : count;
  },
};

function openSysfsFile(k: Kernel, path: string, flags: number, text: string, install: (f: File) => number): number {
  const store = k.sysfs.writer(path);
  if ((flags & 3) !== 0 && !store) return -EACCES; // a read-only (0444) attribute
  const f = k.allocFile(sysfsFops, path, flags);
  if (typeof f === "number") return f;
  f.privateData = { bytes: new TextEncoder().encode(text), store } satisfies SysfsOpen;
  f.opened = true;
  const rc = install(f);
  if (rc < 0) f.put("init");
  return rc;
}

/** Install an already-made file (anon inode, device fd) in p: the fd or -errno. */
export function installFile(p: Process, f: File): number {
  f.opened = true;
  const fd = p.files.install(f);
  if (fd < 0) f.put("init");
  return fd;
}

export function sysClose(k: Kernel, p: Process, fd: number): number {
  return syscall(
    k,
    p,
    "close",
    fd,
    0,
    (t) => k.withTask(t, () => p.files.close(fd)),
    (rc) => k.trace.emit(p.pid, k.clock.now, "close", [{ name: "fd", value: int(fd) }], rc),
  );
}

export function sysIoctl(k: Kernel, p: Process, fd: number, cmd: number, arg: number): number {
  // syscall() spelled out: the hot path, without a closure per call
  if (p.exited) return -ESRCH;
  const t = enter(p, "ioctl", fd, cmd);
  const before = k.trace.enabled ? ioctlBefore(k, p, t, fd, cmd, arg) : null;
  let rc: number;
  try {
    rc = doIoctl(k, p, t, fd, cmd, arg);
  } catch (e) {
    k.oops(e, t.label);
    rc = -OOPS_ERRNO;
  }
  ioctlDone(k, p, t, fd, cmd, arg, rc, before);
  leave(k, t);
  return rc;
}

/** After an ioctl, sequential or scheduled: who to blame for EBUSY, and the strace line of
 * every outcome (an oops's -EIO and a bad fd included). */
function ioctlDone(
  k: Kernel,
  p: Process,
  t: Task,
  fd: number,
  cmd: number,
  arg: number,
  rc: number,
  before: Uint8Array | null,
): void {
  if (rc === -EBUSY) p.lastBusy = { call: "ioctl", fd, cmd, arg, path: "" };
  if (k.trace.enabled) {
    try {
      traceIoctl(k, p, t, fd, cmd, arg, rc, before);
    } catch (e) {
      k.oops(e, `${t.label} trace`);
    }
  }
}

function doIoctl(k: Kernel, p: Process, t: Task, fd: number, cmd: number, arg: number): number {
  const f = p.files.lookup(fd);
  if (!f) return -EBADF;
  if (!f.fops.unlocked_ioctl) return -ENOTTY;
  const prev = k.current;
  k.current = t;
  // a sequential call: kernel paths run at their plain-function speed (SeqMode)
  const s = SEQ;
  const seq = s.on;
  s.on = true;
  try {
    const r = f.fops.unlocked_ioctl(f, cmd, arg);
    return isGen(r) ? runSync(k, t, r) : r;
  } finally {
    k.current = prev;
    s.on = seq;
  }
}

/** The same ioctl as a path for the Scheduler: holds a file reference while it runs. */
export function* ioctlPath(k: Kernel, p: Process, t: Task, fd: number, cmd: number, arg: number): KGen<number> {
  t.call = "ioctl";
  t.a0 = fd;
  t.a1 = cmd;
  t.inSyscall = true;
  let rc: number;
  let before: Uint8Array | null = null;
  try {
    const f = p.files.lookup(fd);
    if (!f) rc = -EBADF;
    else if (!f.fops.unlocked_ioctl) rc = -ENOTTY;
    else {
      if (k.trace.enabled) before = ioctlBefore(k, p, t, fd, cmd, arg);
      f.get();
      try {
        const r = f.fops.unlocked_ioctl(f, cmd, arg);
        rc = isGen(r) ? yield* r : r;
      } finally {
        f.put();
      }
    }
  } catch (e) {
    k.oops(e, t.label);
    rc = -OOPS_ERRNO;
  }
  ioctlDone(k, p, t, fd, cmd, arg, rc, before);
  yield* exitPath(k, t);
  return rc;
}

/** leave() for a path under the Scheduler: releases that sleep yield. */
function* exitPath(k: Kernel, t: Task): KGen<void> {
  while (t.taskWork.length !== 0) {
    try {
      yield* k.taskWorkPath(t);
    } catch (e) {
      k.oops(e, `${t.label} task_work`);
    }
  }
  t.inSyscall = false;
}

/** close(2) as a path for the Scheduler: a release that must wait for a lock yields. */
export function* closePath(k: Kernel, p: Process, t: Task, fd: number): KGen<number> {
  t.call = "close";
  t.a0 = fd;
  t.inSyscall = true;
  let rc: number;
  try {
    rc = p.files.close(fd);
  } catch (e) {
    k.oops(e, t.label);
    rc = -OOPS_ERRNO;
  }
  yield* exitPath(k, t);
  return rc;
}

/** The ioctl's struct argument as userspace passed it, read before the call changes it. */
function ioctlBefore(k: Kernel, p: Process, t: Task, fd: number, cmd: number, arg: number): Uint8Array | null {
  const def = pickIoctl(cmd, p.files.lookup(fd)?.fops.name ?? "");
  if (!def || typeof def.arg !== "object") return null;
  const mem = userMem(k, p, t);
  const b = mem.read(arg, def.arg.size + ioctlExtraBytes(def));
  const desc = traceDesc(k, def.arg, b);
  return desc === def.arg ? b : (mem.read(arg, desc.size) ?? b);
}

/**
 * The layout a traced struct is decoded with: on a kernel with the PASID uAPI, ATTACH and
 * DETACH_IOMMUFD_PT with VFIO_DEVICE_ATTACH_PASID / DETACH_PASID in flags carry `pasid`
 * (include/uapi/linux/vfio.h after 6.12); everything else as the ioctl table has it.
 */
function traceDesc(k: Kernel, desc: StructDesc<any>, before: Uint8Array | null): StructDesc<any> {
  const pasidLayout =
    desc === V.vfio_device_attach_iommufd_pt
      ? V.vfio_device_attach_iommufd_pt_pasid
      : desc === V.vfio_device_detach_iommufd_pt
        ? V.vfio_device_detach_iommufd_pt_pasid
        : null;
  if (pasidLayout === null || before === null || before.length < 8 || !pasidConfig(k).uapi) return desc;
  const flags = new DataView(before.buffer, before.byteOffset, before.byteLength).getUint32(4, true);
  return flags & V.VFIO_DEVICE_ATTACH_PASID ? pasidLayout : desc;
}

/** User memory for the decoders: a copy, or null where the address does not read. */
function userMem(k: Kernel, p: Process, t: Task): UserMem {
  return {
    read(addr, len) {
      const b = k.withTask(t, () => p.mm.copyFromUser(addr, len));
      return typeof b === "number" ? null : b;
    },
  };
}

function traceIoctl(
  k: Kernel,
  p: Process,
  t: Task,
  fd: number,
  cmd: number,
  arg: number,
  rc: number,
  before: Uint8Array | null,
): void {
  const f = p.files.lookup(fd);
  const fileType = f?.fops.name ?? "";
  const def = pickIoctl(cmd, fileType);
  const mem = userMem(k, p, t);
  let value;
  if (def && typeof def.arg === "object") {
    const kvmDevice = (f?.privateData as { ops?: { name?: unknown } } | null)?.ops?.name;
    const ctx = { fileType, ...(typeof kvmDevice === "string" ? { kvmDevice } : {}) };
    const desc = traceDesc(k, def.arg, before);
    const after = rc >= 0 ? mem.read(arg, desc.size) : null;
    value = ioctlStructArg(def, desc, arg, before, after, rc >= 0, ctx, mem);
  } else if (def?.arg === "ptr") value = ioctlPtrArg(def, arg, mem);
  else value = ioctlIntArg(def, arg);
  k.trace.emit(
    p.pid,
    k.clock.now,
    "ioctl",
    [
      { name: "fd", value: int(fd) },
      { name: "request", value: ioctlRequest(def, cmd) },
      { name: "arg", value },
    ],
    rc,
  );
}

/** VFIO reuses numbers across file types (base+12.. are container and device ioctls): pick
 * the definition that belongs to the file's type, as only that one reached the handler. */
function pickIoctl(cmd: number, fileType: string): IoctlDef | undefined {
  const defs = ioctlsByNr(cmd);
  if (defs.length === 0) return decoderOnlyIoctl(cmd); // IOMMU_TEST_CMD, for traces only
  if (defs.length <= 1) return defs[0];
  const prefix = fileType === "vfio-container" || fileType === "iommufd" ? "VFIO_IOMMU_" : "VFIO_DEVICE_";
  return defs.find((d) => d.name.startsWith(prefix)) ?? defs[0];
}

/** One more fd for an open file (dup, SCM_RIGHTS): a reference taken, handed to the fd table
 * by `install` or dropped when it fails; with the task current, so the new fd's reference
 * names this syscall as the one that took it. */
function installAnother(k: Kernel, t: Task, f: File, install: (f: File) => number): number {
  return k.withTask(t, () => {
    f.get("init");
    const rc = install(f);
    if (rc < 0) f.put("init");
    return rc;
  });
}

/** dup(2), or dup2(2) when `to` is given (the number a bridged client's own dup2 chose). */
export function sysDup(k: Kernel, p: Process, fd: number, to?: number): number {
  return syscall(
    k,
    p,
    "dup",
    fd,
    0,
    (t) => {
      const f = p.files.lookup(fd);
      if (!f) return -EBADF;
      if (to === fd) return fd;
      return installAnother(k, t, f, (g) => (to === undefined ? p.files.install(g) : p.files.installAt(to, g)));
    },
    (rc) =>
      k.trace.emit(
        p.pid,
        k.clock.now,
        to === undefined ? "dup" : "dup2",
        [{ name: "oldfd", value: int(fd) }, ...(to === undefined ? [] : [{ name: "newfd", value: int(to) }])],
        rc,
      ),
  );
}

/**
 * SCM_RIGHTS: the file behind `fd` in `from` gets a new fd in `to`. The fd is looked up first
 * (scm_send(): EBADF); a receiver that has exited closed its end of the socket, so the send
 * fails with EPIPE and nothing is installed (net/unix/af_unix.c unix_stream_sendmsg(), the
 * peer SOCK_DEAD).
 */
export function sysSendFd(k: Kernel, from: Process, fd: number, to: Process): number {
  return syscall(
    k,
    from,
    "sendmsg",
    fd,
    to.pid,
    (t) => {
      const f = from.files.lookup(fd);
      if (!f) return -EBADF;
      if (to.exited) return -EPIPE;
      return installAnother(k, t, f, (g) => to.files.install(g));
    },
    // the twin passes the file without a socket: the unix socket to the receiver is named,
    // the message is the one SCM_RIGHTS control message strace shows, the result the fd the
    // receiver got (the bytes sent, 0, are not what a caller of the twin wants)
    (rc) =>
      k.trace.emit(
        from.pid,
        k.clock.now,
        "sendmsg",
        [
          { name: "sockfd", value: raw(`<unix socket to pid ${to.pid}>`) },
          {
            name: "msg",
            value: struct([
              ["msg_name", ptr(0)],
              ["msg_namelen", int(0)],
              ["msg_iov", ptr(0)],
              ["msg_iovlen", int(0)],
              [
                "msg_control",
                arr([
                  struct([
                    ["cmsg_len", int(20)],
                    ["cmsg_level", sym("SOL_SOCKET", 1)],
                    ["cmsg_type", sym("SCM_RIGHTS", 1)],
                    ["cmsg_data", arr([int(fd)])],
                  ]),
                ]),
              ],
              ["msg_controllen", int(24)],
              ["msg_flags", int(0)],
            ]),
          },
          { name: "flags", value: int(0) },
        ],
        rc,
      ),
  );
}

export interface MmapArgs {
  addr?: number;
  prot: number;
  fd?: number;
  offset?: number;
}

export function sysMmap(k: Kernel, p: Process, length: number, a: MmapArgs): number {
  return syscall(
    k,
    p,
    "mmap",
    a.fd ?? -1,
    length,
    (t) => doMmap(k, p, t, length, a),
    (rc) =>
      k.trace.emit(
        p.pid,
        k.clock.now,
        "mmap",
        [
          { name: "addr", value: ptr(a.addr ?? 0) },
          { name: "length", value: int(length) },
          { name: "prot", value: protFlags(a.prot) },
          { name: "flags", value: mapFlags(mmapFlags(a)) },
          { name: "fd", value: int(a.fd ?? -1) },
          { name: "offset", value: hex(a.offset ?? 0) },
        ],
        rc,
        "addr",
      ),
  );
}

function doMmap(k: Kernel, p: Process, t: Task, length: number, a: MmapArgs): number {
  if (a.fd === undefined || a.fd < 0)
    return p.mm.mmap(length, { ...(a.addr !== undefined ? { addr: a.addr } : {}), prot: a.prot });
  const f = p.files.lookup(a.fd);
  if (!f) return -EBADF;
  if (!f.fops.mmap) return -ENODEV;
  if ((a.offset ?? 0) % 4096 !== 0) return -EINVAL;
  const rc = p.mm.mmap(length, {
    ...(a.addr !== undefined ? { addr: a.addr } : {}),
    prot: a.prot,
    io: { read: () => null, write: () => false },
    file: f,
    pgoff: a.offset ?? 0,
  });
  if (rc < 0) return rc;
  const vma = p.mm.find(rc)!;
  k.withTask(t, () => f.get("vma"));
  const r = call(k, t, () => f.fops.mmap!(f, vma));
  if (r < 0) {
    p.mm.munmap(rc, length);
    return r;
  }
  return rc;
}

/** The flags the twin's mmap stands for: what the host backend passes for the same call
 * (src/backend/host.ts): a file shared, memory private and anonymous, an address fixed. */
function mmapFlags(a: MmapArgs): number {
  const kind = a.fd !== undefined && a.fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS;
  return kind | (a.addr !== undefined ? MAP_FIXED_NOREPLACE : 0);
}

export function sysMunmap(k: Kernel, p: Process, addr: number, length: number): number {
  return syscall(
    k,
    p,
    "munmap",
    addr,
    length,
    (t) => k.withTask(t, () => p.mm.munmap(addr, length)),
    (rc) =>
      k.trace.emit(
        p.pid,
        k.clock.now,
        "munmap",
        [
          { name: "addr", value: ptr(addr) },
          { name: "length", value: int(length) },
        ],
        rc,
      ),
  );
}

/**
 * pread(2)/pwrite(2) (pos given) and read(2)/write(2) (pos = the file's). `count` is a size_t:
 * a negative number or one past 2^53 stands for a count near 2^64, which no user buffer
 * has, so access_ok() fails it with EFAULT before the file sees it.
 */
export function sysRw(
  k: Kernel,
  p: Process,
  write: boolean,
  fd: number,
  buf: number,
  count: number,
  pos: number | null,
): number {
  return syscall(
    k,
    p,
    write ? "write" : "read",
    fd,
    count,
    (t) => {
      const f = p.files.lookup(fd);
      // fs/read_write.c: ksys_pread64() checks pos before fdget, then FMODE_PREAD; vfs_read()
      // FMODE_READ (EBADF), a read op (EINVAL), access_ok (EFAULT)
      if (pos !== null && pos < 0) return -EINVAL;
      if (!f) return -EBADF;
      if (pos !== null && !f.fmodePread) return -ESPIPE;
      if ((f.flags & 3) === (write ? 0 : 1)) return -EBADF;
      const op = write ? f.fops.write : f.fops.read;
      if (!op) return -EINVAL;
      if (!accessOk(buf, count)) return -EFAULT;
      const rc = call(k, t, () => op(f, buf, count, pos ?? f.pos));
      if (pos === null && rc > 0 && f.fops.name !== "eventfd" && !f.fops.noPos) f.pos += rc;
      return rc;
    },
    (rc) => {
      const name = pos === null ? (write ? "write" : "read") : write ? "pwrite64" : "pread64";
      // strace shows the bytes written (count of them) or read (rc of them); a failed call's
      // buffer stays an address
      const n = write ? count : rc;
      const data = rc >= 0 && n >= 0 ? userMem(k, p, p.mainTask).read(buf, Math.min(n, 33)) : null;
      k.trace.emit(
        p.pid,
        k.clock.now,
        name,
        [
          { name: "fd", value: int(fd) },
          { name: "buf", value: data ? str(data) : ptr(buf) },
          { name: "count", value: sizeText(count) },
          ...(pos === null ? [] : [{ name: "offset", value: int(pos) }]),
        ],
        rc,
      );
    },
  );
}

/** access_ok() (arch/x86/include/asm/uaccess_64.h __access_ok()): the range ends at or below
 * the top of user space, without wrapping. */
function accessOk(addr: number, size: number): boolean {
  if (!Number.isSafeInteger(size) || size < 0) return false; // a size_t of 2^53 and more
  return Number.isSafeInteger(addr) && addr >= 0 && addr + size <= TASK_SIZE;
}

/** A size_t argument as strace prints it (a negative number is the u64 it stands for). */
function sizeText(n: number) {
  return int(n < 0 && Number.isSafeInteger(n) ? BigInt.asUintN(64, BigInt(n)) : n);
}

export function sysEventfd(k: Kernel, p: Process, flags: number): number {
  return syscall(
    k,
    p,
    "eventfd2",
    0,
    flags,
    (t) =>
      k.withTask(t, () => {
        const f = createEventfd(k, flags);
        return typeof f === "number" ? f : installFile(p, f);
      }),
    (rc) =>
      k.trace.emit(
        p.pid,
        k.clock.now,
        "eventfd2",
        [
          { name: "initval", value: int(0) },
          { name: "flags", value: eventfdFlags(flags) },
        ],
        rc,
      ),
  );
}

/**
 * Process exit: every fd closed and the address space torn down (do_exit), then the
 * releases of everything the process held (exit_task_work). Never throws: a release that
 * oopses is recorded and the rest of the exit still happens, so a dead process holds nothing.
 */
export function sysExit(k: Kernel, p: Process): void {
  if (p.exited) return;
  const t = enter(p, "exit", p.pid, 0);
  k.withTask(p.mainTask, () => {
    for (const [fd] of p.files.entries()) {
      try {
        p.files.close(fd);
      } catch (e) {
        k.oops(e, `${t.label} close(${fd})`);
      }
    }
    try {
      p.mm.exitMmap();
    } catch (e) {
      k.oops(e, `${t.label} exit_mmap`);
    }
  });
  leave(k, t);
  pasidProcessExit(k, p); // its ENQCMD authorization table goes with it (docs/pasid.md)
  p.exited = true;
  k.processes.delete(p.pid);
  if (k.trace.enabled) k.trace.emit(p.pid, k.clock.now, "exit_group", [{ name: "status", value: int(0) }], 0, "none");
}
