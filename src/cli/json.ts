// The events `--json` prints, one JSON object a line, the same shapes for every command:
//
//   {"type":"syscall","seq":4,"pid":1,"t":0,"call":"ioctl","args":[5,"KVM_SET_DEVICE_ATTR",
//     {"flags":0,"group":1,"attr":1,"addr":268500992}],"ret":0}
//   {"type":"syscall",...,"call":"openat","ret":-16,"errno":"EBUSY","holders":[...]}
//   {"type":"tracepoint","call":"io_page_fault","args":["0000:00:01.0",{"iova":2162688},...]}
//   {"type":"fault","bdf":"0000:00:01.0","iova":"2162688","write":true,"reason":"not-present"}
//   {"type":"invariants","ok":true,"violations":[]}
//
// Arguments are decoded values: numbers (a u64 beyond 2^53 as a decimal string), strings,
// symbolic names and flag sets as their text ("O_RDWR|O_CLOEXEC"), structs as objects and
// arrays as arrays. The trace (src/kernel/trace.ts) records each argument as strace prints
// it; syscallEvent() reads that text back into values, and takes a structured field as it
// is when the trace event carries one (`fields`, `holders`), so it follows the trace's form.

import { whoHolds } from "../check/holders.js";
import type { Violation } from "../check/invariants.js";
import type { IommuFault } from "../iommu/iommu.js";
import type { Kernel } from "../kernel/kernel.js";
import type { TraceEvent } from "../kernel/trace.js";

export type Decoded = number | string | null | boolean | Decoded[] | { [k: string]: Decoded };

/** Decode one strace-style argument; text that is not one value stays text. */
export function decodeArg(text: string): Decoded {
  const p = new ValueParser(text);
  try {
    const v = p.value();
    p.ws();
    if (p.i === text.length) return v;
  } catch {
    // not a value: keep the text
  }
  return text;
}

function numberValue(s: string): number | string {
  const neg = s.startsWith("-");
  const body = neg ? s.slice(1) : s;
  const b = BigInt(body);
  const v = neg ? -b : b;
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

class ValueParser {
  i = 0;
  constructor(readonly s: string) {}

  ws(): void {
    while (this.s[this.i] === " ") this.i++;
  }

  value(): Decoded {
    this.ws();
    const c = this.s[this.i];
    if (c === "{") return this.struct();
    if (c === "[") return this.array();
    if (c === '"') return this.string();
    return this.atom();
  }

  /** `{k=v, v, ...}`: named members by name, unnamed ones by position */
  private struct(): Decoded {
    const out: { [k: string]: Decoded } = {};
    let n = 0;
    this.list(
      "}",
      () => {
        const m = /^([A-Za-z_][A-Za-z0-9_.]*)=/.exec(this.s.slice(this.i));
        if (m) this.i += m[0].length;
        out[m ? m[1]! : String(n)] = this.value();
        n++;
      },
      () => (out["..."] = true),
    );
    return out;
  }

  private array(): Decoded {
    const out: Decoded[] = [];
    this.list(
      "]",
      () => out.push(this.value()),
      () => out.push("..."),
    );
    return out;
  }

  /** the items of a struct or array up to `close`; strace's `...` (more elided) is kept */
  private list(close: string, item: () => void, elided: () => void): void {
    this.i++; // the opening bracket
    for (;;) {
      this.ws();
      if (this.s[this.i] === close) {
        this.i++;
        return;
      }
      if (this.s.startsWith("...", this.i)) {
        this.i += 3;
        elided();
      } else item();
      this.ws();
      if (this.s[this.i] === ",") this.i++;
      else if (this.s[this.i] !== close) throw new Error(`expected , or ${close}`);
    }
  }

  private string(): Decoded {
    let j = this.i + 1;
    let out = "";
    while (j < this.s.length && this.s[j] !== '"') {
      if (this.s[j] === "\\") {
        const e = this.s[j + 1] ?? "";
        const simple: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", '"': '"', v: "\v", f: "\f" };
        if (simple[e] !== undefined) {
          out += simple[e];
          j += 2;
        } else if (e === "x") {
          out += String.fromCharCode(parseInt(this.s.slice(j + 2, j + 4), 16));
          j += 4;
        } else if (/[0-7]/.test(e)) {
          const m = /^[0-7]{1,3}/.exec(this.s.slice(j + 1))![0];
          out += String.fromCharCode(parseInt(m, 8));
          j += 1 + m.length;
        } else throw new Error("escape");
      } else out += this.s[j++];
    }
    if (this.s[j] !== '"') throw new Error("string");
    this.i = j + 1;
    if (this.s.startsWith("...", this.i)) this.i += 3; // strace's truncation mark
    return out;
  }

  /** a number, or a symbolic value / flag set up to the next separator */
  private atom(): Decoded {
    const m = /^[^,}\]]+/.exec(this.s.slice(this.i));
    if (!m) throw new Error("atom");
    const t = m[0].trimEnd();
    this.i += m[0].length;
    if (/^-?(0x[0-9a-fA-F]+|\d+)$/.test(t)) return numberValue(t);
    if (t === "NULL") return 0;
    return t;
  }
}

/** The JSON event for one trace event; `k` names the holders of a path an open found busy. */
export function traceEvent(e: TraceEvent, k?: Kernel): Record<string, unknown> & { type: string } {
  const ext = e as TraceEvent & { fields?: unknown; holders?: unknown };
  const out: Record<string, unknown> & { type: string } = {
    type: e.pid === 0 ? "tracepoint" : "syscall",
    seq: e.seq,
    pid: e.pid,
    t: e.t,
    call: e.call,
    args: ext.fields ?? e.args.map(decodeArg),
    ret: typeof e.ret === "string" ? decodeArg(e.ret) : e.ret,
  };
  if (e.errno !== undefined) out.errno = e.errno;
  if (e.out !== undefined) out.out = decodeArg(e.out);
  if (e.errno === "EBUSY") {
    // who holds what the call found busy: the trace's own answer when it has one, else the
    // holders of the path an open asked for; null when neither is known
    let holders: unknown = ext.holders ?? null;
    const path = e.call === "openat" ? decodeArg(e.args[1] ?? "") : null;
    if (holders === null && k && typeof path === "string") holders = whoHolds(k, path);
    out.holders = holders;
  }
  return out;
}

export function invariantsEvent(v: readonly Violation[]): { type: string; ok: boolean; violations: Violation[] } {
  return { type: "invariants", ok: v.length === 0, violations: [...v] };
}

export function faultEvent(f: IommuFault): Record<string, unknown> & { type: string } {
  return { type: "fault", bdf: f.bdf, iova: f.iova, write: f.write, reason: f.reason, domain: f.domain };
}
