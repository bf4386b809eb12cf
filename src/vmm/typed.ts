// The typed client layer: structs in, structs out, an Errno exception on failure. Built only
// on the raw UserProcess calls (docs/design.md §1), so it runs on the twin and on the host alike.
// Arguments are staged in a scratch mapping of the calling process and passed by address,
// exactly as a C program passes a pointer to a stack struct.

import type { UserProcess } from "../backend/backend.js";
import { EBUSY, EFAULT, Errno } from "../uapi/errno.js";
import { formatChains, type HeldObject } from "../check/holders.js";
import { ioctlsByNr } from "../uapi/ioctls.js";
import type { EncodeValue, StructDesc } from "../uapi/struct.js";
import { SideTable } from "../kernel/side_table.js";

const SCRATCH = 64 * 1024;
/** one scratch mapping per process, shared by every TypedProcess over it */
const scratchOf = new SideTable<UserProcess, number>();

export class TypedProcess {
  constructor(readonly raw: UserProcess) {}

  /** The scratch area's address (mapped on first use, once per process). */
  scratchAddr(): number {
    let a = scratchOf.get(this.raw);
    if (a === undefined) {
      a = this.check(this.raw.mmap(SCRATCH), "mmap");
      scratchOf.set(this.raw, a);
    }
    return a;
  }

  open(path: string, flags = 2): number {
    return this.check(this.raw.open(path, flags), `open(${path})`);
  }

  close(fd: number): void {
    this.check(this.raw.close(fd), `close(${fd})`);
  }

  /** An ioctl whose argument is an integer (or nothing): the non-negative result. */
  ioctlInt(fd: number, req: number, arg: number | bigint = 0): number {
    return this.check(this.raw.ioctl(fd, req, arg), ioctlName(req));
  }

  /**
   * An ioctl taking a pointer to `desc`: encodes `value` (size `size`, default sizeof; a u64
   * field may be a bigint or a safe-integer number, EncodeValue),
   * calls, and decodes what the kernel wrote back. `extra` bytes after the struct are
   * staged too (flexible arrays, capability chains) and returned.
   */
  ioctl<V>(fd: number, req: number, desc: StructDesc<V>, value: EncodeValue<V>, opts: IoctlOpts = {}): V {
    const raw = this.raw;
    if (raw.writeStruct && raw.readStruct && opts.extra === undefined && !opts.extraLen && opts.size === undefined) {
      // the twin: encoded straight into the scratch page and decoded from it, no staging copy
      const addr = this.scratchAddr();
      if (!raw.writeStruct(desc, addr, value)) throw new Errno(EFAULT, "write of the scratch area");
      check(raw.ioctl(fd, req, addr), ioctlName(req));
      const back = raw.readStruct(desc, addr);
      if (back === null) throw new Errno(EFAULT, "read of the scratch area");
      return back;
    }
    return this.ioctlFull(fd, req, desc, value, opts).value;
  }

  ioctlFull<V>(
    fd: number,
    req: number,
    desc: StructDesc<V>,
    value: EncodeValue<V>,
    opts: IoctlOpts = {},
  ): IoctlResult<V> {
    const size = opts.size ?? desc.size;
    const total = Math.max(size, desc.size) + (opts.extra?.length ?? opts.extraLen ?? 0);
    const buf = new Uint8Array(total);
    desc.encodeInto(buf.subarray(0, Math.max(size, desc.size)), value);
    if (opts.extra) buf.set(opts.extra, Math.max(size, desc.size));
    const addr = this.scratchAddr();
    this.raw.write(addr, buf);
    const rc = this.check(this.raw.ioctl(fd, req, addr), ioctlName(req));
    const back = this.raw.read(addr, total);
    return { rc, value: desc.decode(back), bytes: back };
  }

  /** A raw result, or an Errno thrown for -errno; an EBUSY says who holds what the call
   * wanted, where the backend can tell (the twin: src/check/holders.ts). */
  check(rc: number, call: string): number {
    if (rc !== -EBUSY) return check(rc, call);
    const explain = (this.raw as { busyHolders?: () => HeldObject[] }).busyHolders;
    throw new BusyError(call, explain ? explain.call(this.raw) : []);
  }

  /** Stage bytes in scratch memory at `offset` and return their address. */
  stage(bytes: Uint8Array, offset = 0): number {
    const addr = this.scratchAddr() + offset;
    this.raw.write(addr, bytes);
    return addr;
  }
}

export interface IoctlOpts {
  /** the size to encode (argsz / size rules are the caller's to set in `value`) */
  size?: number;
  /** bytes placed right after the struct */
  extra?: Uint8Array;
  /** room for output after the struct */
  extraLen?: number;
}

export interface IoctlResult<V> {
  rc: number;
  value: V;
  /** the whole staged area after the call */
  bytes: Uint8Array;
}

function ioctlName(req: number): string {
  return ioctlsByNr(req)[0]?.name ?? `ioctl 0x${req.toString(16)}`;
}

/** A raw result, or an Errno thrown for -errno. */
export function check(rc: number, call: string): number {
  if (rc < 0) throw new Errno(-rc, call);
  return rc;
}

/** EBUSY from the typed layer, with the chains of references that keep the object busy: the
 * twin's full chains, or on the host the processes and fds /proc shows. An Errno like any other. */
export class BusyError extends Errno {
  constructor(
    call: string,
    readonly holders: readonly HeldObject[],
  ) {
    super(EBUSY, call);
    this.name = "BusyError";
    if (holders.length) this.message += `; held by:\n${formatChains(holders)}`;
  }
}
