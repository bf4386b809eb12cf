// Syscall traces, strace style and as JSON: every syscall through the twin can be recorded
// with its decoded arguments and result. Recording is off unless a consumer turns it on, so
// the hot path pays one boolean test.

import { errnoName } from "../uapi/errno.js";

export interface TraceEvent {
  readonly seq: number;
  readonly pid: number;
  /** virtual time, ns */
  readonly t: number;
  readonly call: string;
  /** decoded arguments as strace prints them */
  readonly args: readonly string[];
  readonly ret: number | string;
  readonly errno?: string;
  /** decoded struct after the call, when there is one */
  readonly out?: string;
}

export class Trace {
  enabled = false;
  readonly events: TraceEvent[] = [];
  private seq = 0;
  /** called for each event as it is recorded (the CLI prints live) */
  sink: ((e: TraceEvent) => void) | null = null;

  record(pid: number, t: number, call: string, args: readonly string[], ret: number | string, out?: string): void {
    const e: TraceEvent = {
      seq: this.seq++,
      pid,
      t,
      call,
      args,
      ret,
      ...(typeof ret === "number" && ret < 0 ? { errno: errnoName(-ret) } : {}),
      ...(out !== undefined ? { out } : {}),
    };
    this.events.push(e);
    this.sink?.(e);
  }

  clear(): void {
    this.events.length = 0;
  }
}

/** One strace-like line: `[pid 2] ioctl(3, VFIO_GET_API_VERSION) = 0`. */
export function formatEvent(e: TraceEvent): string {
  const ret = typeof e.ret === "number" && e.ret < 0 ? `-1 ${e.errno} (${-e.ret})` : String(e.ret);
  const out = e.out ? ` => ${e.out}` : "";
  return `[pid ${e.pid}] ${e.call}(${e.args.join(", ")}) = ${ret}${out}`;
}
