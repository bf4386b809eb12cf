// A bridged client as a twin process: its pid is the client's real pid, its memory and
// RLIMIT_MEMLOCK and capabilities are the client's own (read when the kernel asks), and its
// fd numbers are the client's: the twin installs files only at numbers the client set aside
// (each backed by a real placeholder fd in the client), and a number the twin does not know
// is looked up in the client (pidfd_getfd), so an eventfd the client passes to
// VFIO_DEVICE_SET_IRQS or KVM_IRQFD is its real eventfd, signalled for real.

import { existsSync, readFileSync, readlinkSync, writeSync } from "node:fs";
import type { File } from "../kernel/fs.js";
import { O_RDWR } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import { EventfdCtx, eventfdFops } from "../kernel/eventfd.js";
import { type FdNumbering, type FdTable } from "../kernel/fdtable.js";
import { Process } from "../kernel/process.js";
import { EMFILE, EPERM } from "../uapi/errno.js";
import { closeFd, memlockOf, pidfdGetfd } from "./ffi.js";
import { RemoteMm } from "./remote_mm.js";
import { VT_FD_ADOPTED, VT_FD_INSTALLED } from "./proto.js";

/** include/uapi/linux/capability.h CAP_LAST_CAP (6.12: CAP_CHECKPOINT_RESTORE) */
const CAP_LAST_CAP = 40;

const ONE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

/** The server's duplicate of a client's eventfd closes when the twin drops the last
 * reference to its context (VFIO and KVM keep the context, not the file). */
const closer = new FinalizationRegistry<number>((fd) => closeFd(fd));

/** eventfd_ctx of a client's own eventfd: eventfd_signal() writes to the real one. */
export class ClientEventfdCtx extends EventfdCtx {
  constructor(readonly hostFd: number) {
    super(false);
    closer.register(this, hostFd);
  }

  override signal(): void {
    super.signal();
    try {
      writeSync(this.hostFd, ONE);
    } catch {
      // the counter is at its maximum (EAGAIN): eventfd_signal() saturates as well
    }
  }
}

/** fops of a client file the twin has no driver for: every operation is refused as the
 * subsystems refuse a file of the wrong type (a container fd check, a non-eventfd irqfd). */
const foreignFops = { owner: null, name: "foreign" } as const;

export class ClientProcess extends Process implements FdNumbering {
  /** fds the client set aside for the request in flight, used in order */
  reserved: number[] = [];
  /** what the reply tells the client: (fd, VT_FD_*) */
  fdEvents: number[] = [];

  constructor(
    readonly k: Kernel,
    pid: number,
    name: string,
    readonly pidfd: number,
  ) {
    const uid = uidOf(pid);
    super(pid, k.user(uid), 0, name, { mm: new RemoteMm(pid) });
    this.files.numbering = this;
    // The twin is the machine: its credentials are the twin's from here on (capset and
    // setrlimit(RLIMIT_MEMLOCK) in the client go to the twin, see native/preload.c). They start
    // as the client's own, except that root holds every capability, as on the oracle's
    // machine: a container's bounding set is the host's business, not the twin's.
    const [soft, hard] = memlockOf(pid) ?? [8 << 20, 8 << 20];
    this.memlock.cur = soft;
    this.memlock.max = hard;
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readStatus(pid));
    const eff = uid === 0 ? (1n << BigInt(CAP_LAST_CAP + 1)) - 1n : m ? BigInt("0x" + m[1]!) : 0n;
    for (let c = 0; c <= CAP_LAST_CAP; c++) if ((eff >> BigInt(c)) & 1n) this.caps.add(c);
  }

  /** capget(2): the effective set as a mask. */
  capMask(): bigint {
    let m = 0n;
    for (const c of this.caps) m |= 1n << BigInt(c);
    return m;
  }

  /** capset(2) of the effective set: dropping is allowed, gaining is EPERM. */
  capSet(mask: bigint): number {
    for (let c = 0; c < 64; c++) if ((mask >> BigInt(c)) & 1n && !this.caps.has(c)) return -EPERM;
    for (const c of [...this.caps]) if (!((mask >> BigInt(c)) & 1n)) this.caps.delete(c);
    return 0;
  }

  alloc(t: FdTable): number {
    let fd = this.reserved.shift();
    if (fd === undefined) {
      // an fd-making ioctl the client did not know of: the lowest number free on both sides;
      // the client dup2()s a placeholder there (docs/bridge.md: a race with its other threads)
      fd = 0;
      while (fd < t.maxFds && (!t.isFree(fd) || existsSync(`/proc/${this.pid}/fd/${fd}`))) fd++;
      if (fd >= t.maxFds) return -EMFILE;
    }
    this.fdEvents.push(fd, VT_FD_INSTALLED);
    return fd;
  }

  adopt(fd: number): File | null {
    if (this.exited) return null;
    const dup = pidfdGetfd(this.pidfd, fd);
    if (dup < 0) return null;
    let what = "";
    try {
      what = readlinkSync(`/proc/self/fd/${dup}`);
    } catch {
      // keep "" : a file the twin cannot name
    }
    const eventfd = what === "anon_inode:[eventfd]";
    const f = this.k.allocFile(eventfd ? eventfdFops : foreignFops, what || "foreign", O_RDWR);
    if (typeof f === "number") {
      closeFd(dup);
      return null;
    }
    f.opened = true;
    f.fmodePread = false;
    if (eventfd) f.privateData = new ClientEventfdCtx(dup);
    else closeFd(dup);
    this.fdEvents.push(fd, VT_FD_ADOPTED);
    return f;
  }
}

function readStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return "";
  }
}

function uidOf(pid: number): number {
  const m = /^Uid:\s*\d+\s+(\d+)/m.exec(readStatus(pid));
  return m ? Number(m[1]) : 0;
}
