// Syscall traces, in strace's own format and as JSON: every syscall through the twin can be
// recorded with its arguments decoded as strace decodes them (src/trace/). An event keeps the
// decoded values as data; formatEvent() renders strace's line, toJSON() the same fields as a
// plain object. Recording is off unless a consumer turns it on, so the hot path pays one
// boolean test.

import { errnoName } from "../uapi/errno.js";
import { errnoText } from "../trace/errno_text.js";
import { type Json, raw, render, type TVal, toJson } from "../trace/value.js";

export interface TraceArg {
  /** the parameter's name in the man page's prototype: "fd", "request", "flags" */
  readonly name: string;
  readonly value: TVal;
}

/** How a successful result prints: a number, an address (mmap), or "?" (exit_group). */
export type RetKind = "int" | "addr" | "none";

/** One reference in a chain that keeps an object alive (src/check/holders.ts). */
export interface HolderLink {
  /** the reference's name: "fd 5 of pid 1", "group file", "kvm-vfio of vm 1" */
  readonly ref: string;
  /** who holds it: "qemu[1]", "fd 5", "file /dev/vfio/1 (vfio-group)" */
  readonly holder: string;
  /** the holder's kind: "process", "fd", "file", "vfio_device", "kernel", ... */
  readonly kind: string;
  readonly count: number;
  /** the syscall that took it, when one did: `ioctl(7, VFIO_GROUP_SET_CONTAINER) by qemu[1]` */
  readonly takenBy?: string;
  /** what keeps the holder alive in turn */
  readonly heldBy: readonly HolderLink[];
}

/** An object and the chains of references keeping it alive. */
export interface HeldObject {
  readonly object: string;
  readonly kind: string;
  readonly refs?: number;
  readonly holders: readonly HolderLink[];
}

export class TraceEvent {
  /** set for an event that failed with EBUSY, by the kernel's busy explainer */
  holders?: readonly HeldObject[];
  /** the result as a word, for the twin's own events that are no syscall ("accepted", "retry") */
  status?: string;

  constructor(
    readonly seq: number,
    readonly pid: number,
    /** virtual time, ns */
    readonly t: number,
    /** "openat", "ioctl", ...; a tracepoint's name ("io_page_fault") for kind "tracepoint" */
    readonly call: string,
    readonly args: readonly TraceArg[],
    /** the raw result: non-negative, or -errno */
    readonly ret: number,
    readonly retKind: RetKind = "int",
    readonly kind: "syscall" | "tracepoint" = "syscall",
  ) {}

  /** "EBUSY" when the call failed */
  get errno(): string | undefined {
    return this.ret < 0 && this.retKind !== "none" ? errnoName(-this.ret) : undefined;
  }

  /** the argument of that name, decoded */
  arg(name: string): TVal | undefined {
    return this.args.find((a) => a.name === name)?.value;
  }

  /** The structured form (JSONL in the CLI): args as decoded fields, the result and errno. */
  toJSON(): Record<string, Json> {
    const e = this.errno;
    return {
      seq: this.seq,
      pid: this.pid,
      t: this.t,
      ...(this.kind === "tracepoint" ? { tracepoint: this.call } : { syscall: this.call }),
      args: Object.fromEntries(this.args.map((a) => [a.name, toJson(a.value)])),
      result:
        this.status !== undefined
          ? this.status
          : e
            ? -1
            : this.retKind === "addr"
              ? `0x${this.ret.toString(16)}`
              : this.retKind === "none"
                ? "?"
                : this.ret,
      ...(e ? { errno: e, error: errnoText(e, -this.ret) } : {}),
      ...(this.holders ? { holders: this.holders as unknown as Json } : {}),
      text: formatEvent(this, { pid: false }),
    };
  }
}

export class Trace {
  enabled = false;
  readonly events: TraceEvent[] = [];
  private seq = 0;
  /** called for each event as it is recorded (the CLI prints live) */
  sink: ((e: TraceEvent) => void) | null = null;
  /** explains an EBUSY (who holds the object the call wanted): set by whoever can walk the
   * kernel's objects (src/check/holders.ts, installed by the twin) */
  explainBusy: ((e: TraceEvent) => readonly HeldObject[] | undefined) | null = null;

  /** Record a syscall or tracepoint with decoded arguments. */
  emit(
    pid: number,
    t: number,
    call: string,
    args: readonly TraceArg[],
    ret: number,
    retKind: RetKind = "int",
    kind: "syscall" | "tracepoint" = "syscall",
  ): TraceEvent {
    const e = new TraceEvent(this.seq++, pid, t, call, args, ret, retKind, kind);
    if (e.errno === "EBUSY" && this.explainBusy) {
      const h = this.explainBusy(e);
      if (h) e.holders = h;
    }
    this.events.push(e);
    this.sink?.(e);
    return e;
  }

  /**
   * An event of the twin's own API that is no Linux syscall (ENQCMD, the PASID tables, a
   * vCPU's exit; docs/pasid.md): its fields as text, its result a number or a status word.
   */
  twinEvent(pid: number, t: number, name: string, fields: readonly string[], result: number | string): TraceEvent {
    const args = fields.map((f, i) => ({ name: String(i), value: raw(f) }));
    if (typeof result === "number") return this.emit(pid, t, name, args, result);
    const e = new TraceEvent(this.seq++, pid, t, name, args, 0);
    e.status = result;
    this.events.push(e);
    this.sink?.(e);
    return e;
  }

  /** A tracepoint (not a syscall): its fields as preformatted text, as ftrace prints them. */
  tracepoint(t: number, name: string, fields: readonly string[]): TraceEvent {
    return this.emit(
      0,
      t,
      name,
      fields.map((f, i) => ({ name: String(i), value: raw(f) })),
      0,
      "none",
      "tracepoint",
    );
  }

  clear(): void {
    this.events.length = 0;
  }
}

export interface FormatOptions {
  /** prefix `[pid N] ` as strace -f does once there are several processes (default true) */
  pid?: boolean;
}

/**
 * strace's line: `[pid 2] ioctl(3, VFIO_GROUP_GET_STATUS, {argsz=8, flags=VFIO_GROUP_FLAGS_VIABLE}) = 0`,
 * `-1 EBUSY (Device or resource busy)` on failure. A tracepoint prints as perf trace shows
 * one: `io_page_fault: 0000:00:01.0 iova=0x... write ...`.
 */
export function formatEvent(e: TraceEvent, o: FormatOptions = {}): string {
  if (e.kind === "tracepoint") return `${e.call}: ${e.args.map((a) => render(a.value)).join(" ")}`;
  const prefix = o.pid === false ? "" : `[pid ${e.pid}] `;
  const err = e.errno;
  const ret =
    e.status !== undefined
      ? e.status
      : err
        ? `-1 ${err} (${errnoText(err, -e.ret)})`
        : e.retKind === "addr"
          ? `0x${e.ret.toString(16)}`
          : e.retKind === "none"
            ? "?"
            : String(e.ret);
  return `${prefix}${e.call}(${e.args.map((a) => render(a.value)).join(", ")}) = ${ret}`;
}
