// The oracle's scenario language, run against any UserProcess (the twin or the host).
//
// The language and its output are defined by the C runner that drives the real kernel,
// ../shared/oracle/guest/vfio_script.c: one command a line, one `STEP <line> <op> <rc> <errno>
// <ERRNAME|OK> [key=value ...]` line per command, `INFO` first and `DONE` last. This file is a
// line-for-line port of that runner's semantics, quirks included, so that the twin's output can
// be diffed against the kernel's:
// - numbers are C's strtoull/strtoll with base 0 (0x hex, leading-0 octal), full 64-bit, a
//   negative decimal allowed; out of range or trailing junk is a parse error;
// - a parse error still lets the command's syscall run (the C runner checks the flag only
//   afterwards), except where the C code returns early (raw, pread/pwrite, sleep, rlimit, the
//   size-checked iommu_info / iova_ranges / hw_info forms);
// - handles are int64 values; `$NONE` is -1; fds are truncated to int as C's `(int)` does;
// - the user buffers sit at the same fixed addresses: `buf` 1 MiB RW (populated), `ro` 64 KiB
//   PROT_READ, `scr` 64 KiB RW (populated); structs are staged in a separate "stack" mapping.
// Whatever the process answers is printed; nothing is guessed for a path the twin lacks.

import type { UserProcess } from "../backend/backend.js";
import { PROT_READ, PROT_WRITE, Segfault } from "../backend/backend.js";
import { EEXIST, EFAULT, EMSGSIZE, errnoName } from "../uapi/errno.js";
import { _IO, IOMMUFD_TYPE } from "../uapi/ioctl.js";
import * as V from "../uapi/vfio.js";
import * as I from "../uapi/iommufd.js";
import * as K from "../uapi/kvm.js";
import type { StructDesc } from "../uapi/struct.js";

export const BUF_ADDR = 0x10000000;
export const BUF_LEN = 1 << 20;
export const RO_ADDR = 0x20000000;
export const RO_LEN = 64 << 10;
export const SCR_ADDR = 0x30000000;
export const SCR_LEN = 64 << 10;
const STACK_LEN = 64 << 10;

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;

type Sym = readonly [string, bigint];
const syms = (t: Record<string, number>): Sym[] => Object.entries(t).map(([k, v]) => [k, BigInt(v)] as const);

const EXT_SYMS = syms({
  TYPE1: V.VFIO_TYPE1_IOMMU,
  TYPE1v2: V.VFIO_TYPE1v2_IOMMU,
  NOIOMMU: V.VFIO_NOIOMMU_IOMMU,
  DMA_CC: V.VFIO_DMA_CC_IOMMU,
  UNMAP_ALL: V.VFIO_UNMAP_ALL,
  UPDATE_VADDR: V.VFIO_UPDATE_VADDR,
  TYPE1_NESTING: V.VFIO_TYPE1_NESTING_IOMMU,
});
const MAP_SYMS = syms({ R: V.VFIO_DMA_MAP_FLAG_READ, W: V.VFIO_DMA_MAP_FLAG_WRITE, VADDR: V.VFIO_DMA_MAP_FLAG_VADDR });
const UNMAP_SYMS = syms({
  ALL: V.VFIO_DMA_UNMAP_FLAG_ALL,
  VADDR: V.VFIO_DMA_UNMAP_FLAG_VADDR,
  DIRTY: V.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
});
const IOAS_SYMS = syms({
  FIXED: I.IOMMU_IOAS_MAP_FIXED_IOVA,
  R: I.IOMMU_IOAS_MAP_READABLE,
  W: I.IOMMU_IOAS_MAP_WRITEABLE,
});
const HWPT_SYMS = syms({ NEST_PARENT: I.IOMMU_HWPT_ALLOC_NEST_PARENT, DIRTY: I.IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
const OPT_SYMS = syms({ RLIMIT_MODE: I.IOMMU_OPTION_RLIMIT_MODE, HUGE_PAGES: I.IOMMU_OPTION_HUGE_PAGES });
const OPTOP_SYMS = syms({ GET: I.IOMMU_OPTION_OP_GET, SET: I.IOMMU_OPTION_OP_SET });
const VIOAS_SYMS = syms({ GET: I.IOMMU_VFIO_IOAS_GET, SET: I.IOMMU_VFIO_IOAS_SET, CLEAR: I.IOMMU_VFIO_IOAS_CLEAR });
const IRQ_SYMS = syms({
  NONE: V.VFIO_IRQ_SET_DATA_NONE,
  BOOL: V.VFIO_IRQ_SET_DATA_BOOL,
  EVENTFD: V.VFIO_IRQ_SET_DATA_EVENTFD,
  MASK: V.VFIO_IRQ_SET_ACTION_MASK,
  UNMASK: V.VFIO_IRQ_SET_ACTION_UNMASK,
  TRIGGER: V.VFIO_IRQ_SET_ACTION_TRIGGER,
});
const CAP_SYMS = syms({ IPC_LOCK: 14, SYS_RESOURCE: 24, SYS_RAWIO: 17, SYS_ADMIN: 21 });
const KDEV_SYMS = syms({ VFIO: K.KVM_DEV_TYPE_VFIO });
const KFLAG_SYMS = syms({ TEST: K.KVM_CREATE_DEVICE_TEST });
const KGRP_SYMS = syms({ FILE: K.KVM_DEV_VFIO_FILE });
const KATTR_SYMS = syms({ ADD: K.KVM_DEV_VFIO_FILE_ADD, DEL: K.KVM_DEV_VFIO_FILE_DEL, SPAPR_TCE: 3 });

/** The request names the `raw` verb knows: exactly the C runner's list (6.13+ iommufd numbers
 * included, as _IO(';', nr) since the 6.12 header lacks them). */
const IOCTL_SYMS = syms({
  VFIO_GET_API_VERSION: V.VFIO_GET_API_VERSION,
  VFIO_CHECK_EXTENSION: V.VFIO_CHECK_EXTENSION,
  VFIO_SET_IOMMU: V.VFIO_SET_IOMMU,
  VFIO_GROUP_GET_STATUS: V.VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER: V.VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER: V.VFIO_GROUP_UNSET_CONTAINER,
  VFIO_GROUP_GET_DEVICE_FD: V.VFIO_GROUP_GET_DEVICE_FD,
  VFIO_DEVICE_GET_INFO: V.VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_REGION_INFO: V.VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_GET_IRQ_INFO: V.VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_SET_IRQS: V.VFIO_DEVICE_SET_IRQS,
  VFIO_DEVICE_RESET: V.VFIO_DEVICE_RESET,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: V.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_PCI_HOT_RESET: V.VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_DEVICE_FEATURE: V.VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_BIND_IOMMUFD: V.VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: V.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_IOMMUFD_PT: V.VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_IOMMU_GET_INFO: V.VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA: V.VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA: V.VFIO_IOMMU_UNMAP_DMA,
  VFIO_IOMMU_DIRTY_PAGES: V.VFIO_IOMMU_DIRTY_PAGES,
  IOMMU_DESTROY: I.IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC: I.IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS: I.IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_COPY: I.IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES: I.IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP: I.IOMMU_IOAS_MAP,
  IOMMU_IOAS_UNMAP: I.IOMMU_IOAS_UNMAP,
  IOMMU_OPTION: I.IOMMU_OPTION,
  IOMMU_VFIO_IOAS: I.IOMMU_VFIO_IOAS,
  IOMMU_HWPT_ALLOC: I.IOMMU_HWPT_ALLOC,
  IOMMU_GET_HW_INFO: I.IOMMU_GET_HW_INFO,
  IOMMU_HWPT_SET_DIRTY_TRACKING: I.IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_HWPT_GET_DIRTY_BITMAP: I.IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE: I.IOMMU_HWPT_INVALIDATE,
  IOMMU_FAULT_QUEUE_ALLOC: I.IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_IOAS_MAP_FILE: _IO(IOMMUFD_TYPE, 0x8f),
  IOMMU_VIOMMU_ALLOC: _IO(IOMMUFD_TYPE, 0x90),
  IOMMU_VDEVICE_ALLOC: _IO(IOMMUFD_TYPE, 0x91),
  IOMMU_IOAS_CHANGE_PROCESS: _IO(IOMMUFD_TYPE, 0x92),
  IOMMU_VEVENTQ_ALLOC: _IO(IOMMUFD_TYPE, 0x93),
  IOMMU_HW_QUEUE_ALLOC: _IO(IOMMUFD_TYPE, 0x94),
  KVM_GET_API_VERSION: K.KVM_GET_API_VERSION,
  KVM_CREATE_VM: K.KVM_CREATE_VM,
  KVM_CHECK_EXTENSION: K.KVM_CHECK_EXTENSION,
  KVM_CREATE_DEVICE: K.KVM_CREATE_DEVICE,
  KVM_SET_DEVICE_ATTR: K.KVM_SET_DEVICE_ATTR,
  KVM_GET_DEVICE_ATTR: K.KVM_GET_DEVICE_ATTR,
  KVM_HAS_DEVICE_ATTR: K.KVM_HAS_DEVICE_ATTR,
});

const u16 = (v: bigint): number => Number(BigInt.asUintN(16, v));
const u32 = (v: bigint): number => Number(BigInt.asUintN(32, v));
const s32 = (v: bigint): number => Number(BigInt.asIntN(32, v));
const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const hex = (v: number | bigint): string => `0x${v.toString(16)}`;

/**
 * C's strtoull/strtoll(s, &end, 0) on a whole token: base from the prefix (0x hex, 0 octal,
 * else decimal), an optional sign; null when nothing was parsed, junk follows, or the value is
 * out of range (ERANGE).
 */
export function parseCNumber(s: string): bigint | null {
  const m = /^[ \t]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return null;
  const neg = m[1] === "-";
  const body = m[2]!;
  const mag = /^0[xX]/.test(body)
    ? BigInt(body)
    : body.length > 1 && body[0] === "0"
      ? BigInt("0o" + body.slice(1))
      : BigInt(body);
  if (neg) {
    // strtoll: -2^63 is the lowest value
    if (mag > 2n ** 63n) return null;
    return -mag;
  }
  if (mag > 2n ** 64n - 1n) return null;
  return BigInt.asIntN(64, mag);
}

export interface ScriptOptions {
  /** the device; default 0000:00:01.0 (the oracle machine's edu device) */
  bdf?: string;
  /** called with each step as it completes */
  onStep?: (s: ScriptStep) => void;
}

/** Run a scenario and return its output lines (INFO, STEP..., DONE), as the C runner prints. */
export function runScript(text: string, p: UserProcess, opts: ScriptOptions = {}): string[] {
  return new ScriptRunner(p, opts.bdf ?? "0000:00:01.0", opts.onStep).run(text);
}

/** One scenario line's outcome, as data (the CLI's --json, and why a line did not parse). */
export interface ScriptStep {
  /** the line number in the scenario */
  readonly line: number;
  readonly op: string;
  /** the STEP line, exactly as the C runner prints it */
  readonly text: string;
  /** the call's result; absent when it did not run (parse error, SIGSEGV, exception) */
  readonly rc?: number;
  /** the errno name when rc < 0 */
  readonly errno?: string;
  /** why the line is malformed (the C runner prints only PARSE_ERROR) */
  readonly parseError?: string;
  readonly segfault?: string;
  readonly exception?: string;
}

/** runScript with every step as data beside the lines. */
export function runScriptSteps(
  text: string,
  p: UserProcess,
  opts: ScriptOptions = {},
): { lines: string[]; steps: ScriptStep[] } {
  const r = new ScriptRunner(p, opts.bdf ?? "0000:00:01.0", opts.onStep);
  const lines = r.run(text);
  return { lines, steps: r.steps };
}

class ScriptRunner {
  private readonly names = new Map<string, bigint>();
  private bad = false;
  /** the first reason the current line is malformed */
  private why = "";
  readonly steps: ScriptStep[] = [];
  private errno = 0;
  private extra: string[] = [];
  private groupPath = "";
  private cdevPath = "";
  private stack = 0;
  private sp = 0;

  constructor(
    private readonly p: UserProcess,
    private readonly bdf: string,
    private readonly onStep?: (s: ScriptStep) => void,
  ) {}

  private addStep(s: ScriptStep): void {
    this.steps.push(s);
    this.onStep?.(s);
  }

  run(text: string): string[] {
    const out: string[] = [];
    this.setup();
    out.push(`INFO bdf=${this.bdf} group=${this.groupPath} cdev=${this.cdevPath || "-"}`);
    const lines = text.split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    lines.forEach((raw, i) => {
      const lineno = i + 1;
      const hash = raw.indexOf("#");
      const tok = (hash >= 0 ? raw.slice(0, hash) : raw)
        .split(/[ \t\r\n]+/)
        .filter((t) => t !== "")
        .slice(0, 32);
      if (!tok.length) return;
      this.extra = [];
      this.bad = false;
      this.why = "";
      this.errno = 0;
      this.sp = this.stack;
      let rc: number;
      try {
        rc = this.step(tok);
      } catch (e) {
        const op = tok[0]!;
        if (e instanceof Segfault) {
          const text = `STEP ${lineno} ${op} SIGSEGV at ${hex(e.addr)}`;
          out.push(text);
          this.addStep({ line: lineno, op, text, segfault: hex(e.addr) });
          return;
        }
        const why = String((e as Error).message ?? e).split("\n")[0]!;
        out.push(`STEP ${lineno} ${op} EXCEPTION ${why}`);
        this.addStep({ line: lineno, op, text: out.at(-1)!, exception: why });
        return;
      }
      if (this.bad) {
        out.push(`STEP ${lineno} ${tok[0]} PARSE_ERROR`);
        this.addStep({ line: lineno, op: tok[0]!, text: out.at(-1)!, parseError: this.why || "malformed" });
        return;
      }
      const err = this.errno;
      out.push(
        `STEP ${lineno} ${tok[0]} ${rc} ${rc < 0 ? err : 0} ${rc < 0 ? errnoName(err) : "OK"}` +
          this.extra.map((e) => " " + e).join(""),
      );
      this.addStep({
        line: lineno,
        op: tok[0]!,
        text: out.at(-1)!,
        rc,
        ...(rc < 0 ? { errno: errnoName(err) } : {}),
      });
    });
    out.push("DONE");
    return out;
  }

  // ------------------------------------------------------------------ process setup --
  private setup(): void {
    const p = this.p;
    // the C runner inherits stdin/stdout/stderr: three stand-in fds keep fd numbers aligned
    const fd0 = p.eventfd(0);
    if (fd0 === 0) {
      p.eventfd(0);
      p.eventfd(0);
    } else if (fd0 >= 0) p.close(fd0);
    const link = p.readlink(`/sys/bus/pci/devices/${this.bdf}/iommu_group`);
    if (typeof link === "string" && link.length > 0) this.groupPath = `/dev/vfio/${basename(link)}`;
    const ents = p.readdir(`/sys/bus/pci/devices/${this.bdf}/vfio-dev`);
    if (Array.isArray(ents)) for (const e of ents) if (e.startsWith("vfio")) this.cdevPath = `/dev/vfio/devices/${e}`;
    this.names.set("NONE", -1n);
    const maps: [number, number, number, boolean][] = [
      [BUF_ADDR, BUF_LEN, PROT_READ | PROT_WRITE, true],
      [RO_ADDR, RO_LEN, PROT_READ, false],
      [SCR_ADDR, SCR_LEN, PROT_READ | PROT_WRITE, true],
    ];
    for (const [addr, len, prot, populate] of maps) {
      const r = p.mmap(len, { addr, prot });
      if (r !== addr) throw new Error(`mmap of ${hex(addr)}: ${r < 0 ? errnoName(-r) : hex(r)}`);
      if (populate) p.write(addr, new Uint8Array(len)); // MAP_POPULATE
    }
    this.stack = p.mmap(STACK_LEN, { prot: PROT_READ | PROT_WRITE });
    if (this.stack < 0) throw new Error(`mmap of the stack: ${errnoName(-this.stack)}`);
  }

  // --------------------------------------------------------------- argument parsing --
  /** The line is malformed (PARSE_ERROR); the first reason is kept for the CLI. */
  private invalid(why: string): void {
    if (!this.bad) this.why = why;
    this.bad = true;
  }

  private setName(k: string | undefined, v: number | bigint): void {
    if (k !== undefined) this.names.set(k, BigInt.asIntN(64, BigInt(v)));
  }

  private num(s: string | undefined): bigint {
    if (s === undefined) {
      this.invalid("an argument is missing");
      return 0n;
    }
    if (s.startsWith("$")) {
      const v = this.names.get(s.slice(1));
      if (v === undefined) {
        this.invalid(`no value named ${s}`);
        return -1n;
      }
      return v;
    }
    const v = parseCNumber(s);
    if (v === null) {
      this.invalid(`not a number: ${s}`);
      return 0n;
    }
    return v;
  }

  private va(s: string | undefined): bigint {
    if (s === undefined) {
      this.invalid("an address is missing");
      return 0n;
    }
    const at = (base: number, n: number) => u64(BigInt(base) + (s[n] === "+" ? u64(this.num(s.slice(n + 1))) : 0n));
    if (s.startsWith("buf")) return at(BUF_ADDR, 3);
    if (s.startsWith("ro")) return at(RO_ADDR, 2);
    if (s.startsWith("scr")) return at(SCR_ADDR, 3);
    return u64(this.num(s));
  }

  private flags(s: string | undefined, table: readonly Sym[]): bigint {
    if (s === undefined) {
      this.invalid("flags are missing");
      return 0n;
    }
    if ((s[0]! >= "0" && s[0]! <= "9") || s[0] === "$") return u64(this.num(s));
    let v = 0n;
    for (const part of s.split("|").filter((x) => x !== "")) {
      const e = table.find(([n]) => n === part);
      if (e) v |= e[1];
      else this.invalid(`unknown flag ${part}`);
    }
    return v;
  }

  private path(s: string | undefined): string {
    if (s === undefined) {
      this.invalid("a path is missing");
      return "";
    }
    if (s === "$GROUP") return this.groupPath;
    if (s === "$CDEV") return this.cdevPath;
    if (s === "$BDF") return this.bdf;
    return s;
  }

  /** "u32@16" (optionally "=VAL" after it): width and offset into scr, or null if malformed */
  private field(s: string): { w: number; off: number } | null {
    const at = s.indexOf("@");
    if (at < 0) return null;
    const w = s.startsWith("u8@")
      ? 1
      : s.startsWith("u16@")
        ? 2
        : s.startsWith("u32@")
          ? 4
          : s.startsWith("u64@")
            ? 8
            : 0;
    if (!w) return null;
    let t = s.slice(at + 1);
    const eq = t.indexOf("=");
    if (eq >= 0) t = t.slice(0, eq);
    const o = this.num(t);
    if (o < 0n || o + BigInt(w) > 4096n) {
      this.invalid(`field offset out of range: ${s}`);
      return null;
    }
    return { w, off: Number(o) };
  }

  // ------------------------------------------------------------------- memory / calls --
  /** A syscall result in C terms: -1 with errno set, or the value. */
  private sys(r: number): number {
    if (r < 0) {
      this.errno = -r;
      return -1;
    }
    return r;
  }

  /** Room for a local variable on the "stack"; its address. */
  private alloc(bytes: Uint8Array): number {
    const a = this.sp;
    this.sp += (bytes.length + 15) & ~15;
    this.p.write(a, bytes);
    return a;
  }

  private stageStruct<T>(d: StructDesc<T>, v: Partial<T>): number {
    return this.alloc(d.encode(v));
  }

  private readStruct<T>(d: StructDesc<T>, addr: number): T {
    return d.decode(this.p.read(addr, d.size));
  }

  private ioctl(fd: number, req: number, arg: number | bigint = 0): number {
    return this.sys(this.p.ioctl(fd, req, arg));
  }

  private kv(s: string): void {
    this.extra.push(s);
  }

  // ------------------------------------------------------------------------- verbs --
  private step(a: string[]): number {
    const op = a[0]!;
    const A = (i: number): string | undefined => a[i];
    const FD = (i: number): number => s32(this.num(A(i)));
    const n = a.length;
    const p = this.p;
    let rc = -1;

    switch (op) {
      case "open": {
        rc = this.sys(p.open(this.path(A(2)), O_RDWR | O_CLOEXEC));
        if (rc >= 0 && A(1) !== undefined) {
          this.setName(A(1), rc);
          rc = 0;
        }
        return rc;
      }
      case "close":
        return this.sys(p.close(FD(1)));
      case "vfio_api":
        return this.ioctl(FD(1), V.VFIO_GET_API_VERSION);
      case "check_ext":
        return this.ioctl(FD(1), V.VFIO_CHECK_EXTENSION, this.flags(A(2), EXT_SYMS));
      case "set_iommu":
        return this.ioctl(FD(1), V.VFIO_SET_IOMMU, this.flags(A(2), EXT_SYMS));
      case "group_status": {
        const st = this.stageStruct(V.vfio_group_status, { argsz: V.vfio_group_status.size });
        rc = this.ioctl(FD(1), V.VFIO_GROUP_GET_STATUS, st);
        if (rc === 0) this.kv(`flags=${hex(this.readStruct(V.vfio_group_status, st).flags)}`);
        return rc;
      }
      case "set_container": {
        const c = FD(2);
        const b = new Uint8Array(4);
        new DataView(b.buffer).setInt32(0, c, true);
        return this.ioctl(FD(1), V.VFIO_GROUP_SET_CONTAINER, this.alloc(b));
      }
      case "unset_container":
        return this.ioctl(FD(1), V.VFIO_GROUP_UNSET_CONTAINER);
      case "get_device_fd": {
        const name = this.alloc(new TextEncoder().encode(this.path(A(3)) + "\0"));
        rc = this.ioctl(FD(2), V.VFIO_GROUP_GET_DEVICE_FD, name);
        if (rc >= 0) {
          this.setName(A(1), rc);
          rc = 0;
        }
        return rc;
      }
      case "iommu_info":
        return A(2) !== undefined ? this.iommuInfoSized(FD(1), A(2)) : this.iommuInfo(FD(1));
      case "map_dma": {
        const m = this.stageStruct(V.vfio_iommu_type1_dma_map, {
          argsz: V.vfio_iommu_type1_dma_map.size,
          vaddr: this.va(A(2)),
          iova: u64(this.num(A(3))),
          size: u64(this.num(A(4))),
          flags: u32(this.flags(A(5), MAP_SYMS)),
        });
        return this.ioctl(FD(1), V.VFIO_IOMMU_MAP_DMA, m);
      }
      case "unmap_dma": {
        const u = this.stageStruct(V.vfio_iommu_type1_dma_unmap, {
          argsz: V.vfio_iommu_type1_dma_unmap.size,
          iova: u64(this.num(A(2))),
          size: u64(this.num(A(3))),
          flags: A(4) !== undefined ? u32(this.flags(A(4), UNMAP_SYMS)) : 0,
        });
        rc = this.ioctl(FD(1), V.VFIO_IOMMU_UNMAP_DMA, u);
        if (rc === 0) this.kv(`size=${hex(this.readStruct(V.vfio_iommu_type1_dma_unmap, u).size)}`);
        return rc;
      }
      case "device_info": {
        const d = this.stageStruct(V.vfio_device_info, { argsz: V.vfio_device_info.size });
        rc = this.ioctl(FD(1), V.VFIO_DEVICE_GET_INFO, d);
        if (rc === 0) {
          const di = this.readStruct(V.vfio_device_info, d);
          this.kv(`flags=${hex(di.flags)} regions=${di.num_regions} irqs=${di.num_irqs}`);
        }
        return rc;
      }
      case "device_reset":
        return this.ioctl(FD(1), V.VFIO_DEVICE_RESET);
      case "ioas_alloc": {
        const x = this.stageStruct(I.iommu_ioas_alloc, { size: I.iommu_ioas_alloc.size });
        rc = this.ioctl(FD(1), I.IOMMU_IOAS_ALLOC, x);
        if (rc === 0) {
          const id = this.readStruct(I.iommu_ioas_alloc, x).out_ioas_id;
          this.setName(A(2), id);
          this.kv(`id=${id}`);
        }
        return rc;
      }
      case "destroy": {
        const x = this.stageStruct(I.iommu_destroy, { size: I.iommu_destroy.size, id: u32(this.num(A(2))) });
        return this.ioctl(FD(1), I.IOMMU_DESTROY, x);
      }
      case "ioas_map": {
        const m = this.stageStruct(I.iommu_ioas_map, {
          size: I.iommu_ioas_map.size,
          ioas_id: u32(this.num(A(2))),
          user_va: this.va(A(3)),
          length: u64(this.num(A(4))),
          iova: u64(this.num(A(5))),
          flags: u32(this.flags(A(6), IOAS_SYMS)),
        });
        rc = this.ioctl(FD(1), I.IOMMU_IOAS_MAP, m);
        if (rc === 0) this.kv(`iova=${hex(this.readStruct(I.iommu_ioas_map, m).iova)}`);
        return rc;
      }
      case "ioas_unmap": {
        const u = this.stageStruct(I.iommu_ioas_unmap, {
          size: I.iommu_ioas_unmap.size,
          ioas_id: u32(this.num(A(2))),
          iova: u64(this.num(A(3))),
          length: u64(this.num(A(4))),
        });
        rc = this.ioctl(FD(1), I.IOMMU_IOAS_UNMAP, u);
        if (rc === 0) this.kv(`length=${hex(this.readStruct(I.iommu_ioas_unmap, u).length)}`);
        return rc;
      }
      case "ioas_copy": {
        const c = this.stageStruct(I.iommu_ioas_copy, {
          size: I.iommu_ioas_copy.size,
          dst_ioas_id: u32(this.num(A(2))),
          src_ioas_id: u32(this.num(A(3))),
          length: u64(this.num(A(4))),
          dst_iova: u64(this.num(A(5))),
          src_iova: u64(this.num(A(6))),
          flags: u32(this.flags(A(7), IOAS_SYMS)),
        });
        rc = this.ioctl(FD(1), I.IOMMU_IOAS_COPY, c);
        if (rc === 0) this.kv(`dst_iova=${hex(this.readStruct(I.iommu_ioas_copy, c).dst_iova)}`);
        return rc;
      }
      case "iova_ranges":
        return this.iovaRanges(FD(1), a);
      case "allow_iovas": {
        const ranges: { start: bigint; last: bigint }[] = [];
        for (let i = 3; i < n && ranges.length < 32; i++) {
          const t = a[i]!;
          const dash = t.indexOf("-");
          if (dash < 0) {
            this.invalid(`not a range START-LAST: ${t}`);
            break;
          }
          ranges.push({ start: u64(this.num(t.slice(0, dash))), last: u64(this.num(t.slice(dash + 1))) });
        }
        const r = new Uint8Array(32 * I.iommu_iova_range.size);
        ranges.forEach((x, i) => I.iommu_iova_range.encodeInto(r, x, i * I.iommu_iova_range.size));
        const ra = this.alloc(r);
        const al = this.stageStruct(I.iommu_ioas_allow_iovas, {
          size: I.iommu_ioas_allow_iovas.size,
          ioas_id: u32(this.num(A(2))),
          num_iovas: ranges.length,
          allowed_iovas: BigInt(ra),
        });
        return this.ioctl(FD(1), I.IOMMU_IOAS_ALLOW_IOVAS, al);
      }
      case "hwpt_alloc": {
        const h = this.stageStruct(I.iommu_hwpt_alloc, {
          size: I.iommu_hwpt_alloc.size,
          dev_id: u32(this.num(A(3))),
          pt_id: u32(this.num(A(4))),
          flags: A(5) !== undefined ? u32(this.flags(A(5), HWPT_SYMS)) : 0,
        });
        rc = this.ioctl(FD(1), I.IOMMU_HWPT_ALLOC, h);
        if (rc === 0) {
          const id = this.readStruct(I.iommu_hwpt_alloc, h).out_hwpt_id;
          this.setName(A(2), id);
          this.kv(`id=${id}`);
        }
        return rc;
      }
      case "hw_info": {
        const data = this.alloc(new Uint8Array(256));
        const len = A(3) !== undefined ? u32(this.num(A(3))) : 256;
        const h = this.stageStruct(I.iommu_hw_info, {
          size: I.iommu_hw_info.size,
          dev_id: u32(this.num(A(2))),
          data_len: len,
          data_uptr: BigInt(data),
        });
        if (len > 256) {
          this.invalid("data length over 256");
          return -1;
        }
        rc = this.ioctl(FD(1), I.IOMMU_GET_HW_INFO, h);
        if (rc === 0) {
          const v = this.readStruct(I.iommu_hw_info, h);
          this.kv(`type=${v.out_data_type} data_len=${v.data_len} caps=${hex(v.out_capabilities)}`);
        }
        return rc;
      }
      case "bind": {
        const b = this.stageStruct(V.vfio_device_bind_iommufd, {
          argsz: V.vfio_device_bind_iommufd.size,
          iommufd: FD(2),
        });
        rc = this.ioctl(FD(1), V.VFIO_DEVICE_BIND_IOMMUFD, b);
        if (rc === 0) {
          const id = this.readStruct(V.vfio_device_bind_iommufd, b).out_devid;
          this.setName(A(3), id);
          this.kv(`devid=${id}`);
        }
        return rc;
      }
      case "attach": {
        const at = this.stageStruct(V.vfio_device_attach_iommufd_pt, {
          argsz: V.vfio_device_attach_iommufd_pt.size,
          pt_id: u32(this.num(A(2))),
        });
        rc = this.ioctl(FD(1), V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, at);
        if (rc === 0) {
          const id = this.readStruct(V.vfio_device_attach_iommufd_pt, at).pt_id;
          this.setName(A(3), id);
          this.kv(`pt_id=${id}`);
        }
        return rc;
      }
      case "detach": {
        const dt = this.stageStruct(V.vfio_device_detach_iommufd_pt, { argsz: V.vfio_device_detach_iommufd_pt.size });
        return this.ioctl(FD(1), V.VFIO_DEVICE_DETACH_IOMMUFD_PT, dt);
      }
      case "kvm_create": {
        // the /dev/kvm and VM fds stay open, as in the C runner
        const k = this.sys(p.open("/dev/kvm", O_RDWR | O_CLOEXEC));
        const vm = k < 0 ? -1 : this.ioctl(k, K.KVM_CREATE_VM, 0);
        const cd = this.stageStruct(K.kvm_create_device, { type: K.KVM_DEV_TYPE_VFIO });
        rc = vm < 0 ? -1 : this.ioctl(vm, K.KVM_CREATE_DEVICE, cd);
        if (rc === 0) this.setName(A(1), this.readStruct(K.kvm_create_device, cd).fd);
        return rc;
      }
      case "kvm_add":
      case "kvm_del": {
        const fd = FD(2);
        const b = new Uint8Array(4);
        new DataView(b.buffer).setInt32(0, fd, true);
        const fa = this.alloc(b);
        const at = this.stageStruct(K.kvm_device_attr, {
          group: K.KVM_DEV_VFIO_FILE,
          attr: BigInt(op === "kvm_add" ? K.KVM_DEV_VFIO_FILE_ADD : K.KVM_DEV_VFIO_FILE_DEL),
          addr: BigInt(fa),
        });
        return this.ioctl(FD(1), K.KVM_SET_DEVICE_ATTR, at);
      }
      default:
        return this.ext(a);
    }
  }

  /** iommu_info C ARGSZ: a 4 KiB buffer of 0xAA with argsz=ARGSZ; prints what lies inside ARGSZ. */
  private iommuInfoSized(fd: number, argszArg: string | undefined): number {
    const argsz = u32(this.num(argszArg));
    if (argsz > 4096) {
      this.invalid("argsz over 4096");
      return -1;
    }
    const init = new Uint8Array(4096).fill(0xaa);
    new DataView(init.buffer).setUint32(0, argsz, true);
    const ib = this.alloc(init);
    const rc = this.ioctl(fd, V.VFIO_IOMMU_GET_INFO, ib);
    if (rc !== 0) return rc;
    const b = this.p.read(ib, 4096);
    const dv = new DataView(b.buffer, b.byteOffset);
    const ii = V.vfio_iommu_type1_info.decode(b);
    this.kv(`argsz=${ii.argsz}`);
    if (argsz >= 8) this.kv(`flags=${hex(ii.flags)}`);
    if (argsz >= 16) this.kv(`pgsizes=${hex(ii.iova_pgsizes)}`);
    if (argsz >= 20) this.kv(`cap_offset=${ii.cap_offset}`);
    const chain: number[] = [];
    const u32at = (o: number) => (o + 4 <= 4096 ? dv.getUint32(o, true) : 0);
    const u64at = (o: number) => (o + 8 <= 4096 ? dv.getBigUint64(o, true) : 0n);
    for (let off = argsz >= 20 ? ii.cap_offset : 0, hops = 0; off && off + 8 <= argsz && hops < 16; hops++) {
      const id = dv.getUint16(off, true);
      chain.push(id);
      if (id === V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
        const nr = u32at(off + 8);
        for (let i = 0; i < nr && off + 16 + (i + 1) * 16 <= argsz; i++)
          this.kv(`range=${hex(u64at(off + 16 + i * 16))}-${hex(u64at(off + 24 + i * 16))}`);
      } else if (id === V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
        this.kv(`dma_avail=${u32at(off + 8)}`);
      } else if (id === V.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
        this.kv(`migration=${hex(u64at(off + 16))}/${hex(u64at(off + 24))}`);
      }
      off = u32at(off + 4);
    }
    this.kv(`chain=${chain.length ? chain.join(",") : "-"}`);
    this.kv(`tail=${b.subarray(argsz).every((x) => x === 0xaa) ? "intact" : "clobbered"}`);
    return rc;
  }

  /** iommu_info C: a zeroed 4 KiB buffer, argsz=4096; flags, page sizes, ranges and dma_avail. */
  private iommuInfo(fd: number): number {
    const init = new Uint8Array(4096);
    new DataView(init.buffer).setUint32(0, 4096, true);
    const ib = this.alloc(init);
    const rc = this.ioctl(fd, V.VFIO_IOMMU_GET_INFO, ib);
    if (rc !== 0) return rc;
    const b = this.p.read(ib, 4096);
    const dv = new DataView(b.buffer, b.byteOffset);
    const ii = V.vfio_iommu_type1_info.decode(b);
    this.kv(`flags=${hex(ii.flags)} pgsizes=${hex(ii.iova_pgsizes)}`);
    for (let off = ii.cap_offset, hops = 0; off && off + 8 <= 4096 && hops < 64; hops++) {
      const id = dv.getUint16(off, true);
      if (id === V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE && off + 16 <= 4096) {
        const nr = dv.getUint32(off + 8, true);
        for (let i = 0; i < nr && off + 32 + i * 16 <= 4096; i++)
          this.kv(
            `range=${hex(dv.getBigUint64(off + 16 + i * 16, true))}-${hex(dv.getBigUint64(off + 24 + i * 16, true))}`,
          );
      } else if (id === V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL && off + 12 <= 4096) {
        this.kv(`dma_avail=${dv.getUint32(off + 8, true)}`);
      }
      off = dv.getUint32(off + 4, true);
    }
    return rc;
  }

  private iovaRanges(fd: number, a: string[]): number {
    const sized = a[3] !== undefined;
    const max = sized ? u32(this.num(a[3])) : 32;
    if (sized && max > 256) {
      this.invalid("more than 256 ranges asked");
      return -1;
    }
    const R = I.iommu_iova_range.size;
    const r = this.alloc(new Uint8Array((sized ? 256 : 32) * R));
    const q = this.stageStruct(I.iommu_ioas_iova_ranges, {
      size: I.iommu_ioas_iova_ranges.size,
      ioas_id: u32(this.num(a[2])),
      num_iovas: max,
      allowed_iovas: BigInt(r),
    });
    const rc = this.ioctl(fd, I.IOMMU_IOAS_IOVA_RANGES, q);
    if (rc === 0 || (sized && this.errno === EMSGSIZE)) {
      const v = this.readStruct(I.iommu_ioas_iova_ranges, q);
      if (sized) this.kv(`num_iovas=${v.num_iovas} alignment=${hex(v.out_iova_alignment)}`);
      else this.kv(`alignment=${hex(v.out_iova_alignment)}`);
      const shown = Math.min(v.num_iovas, max);
      if (shown > 0) {
        const rb = this.p.read(r, shown * R);
        for (let i = 0; i < shown; i++) {
          const x = I.iommu_iova_range.decode(rb, i * R);
          this.kv(`range=${hex(x.start)}-${hex(x.last)}`);
        }
      }
    }
    return rc;
  }

  // -------------------------------------------------------------- extension verbs --
  private ext(a: string[]): number {
    const op = a[0]!;
    const A = (i: number): string | undefined => a[i];
    const FD = (i: number): number => s32(this.num(A(i)));
    const n = a.length;
    const p = this.p;
    let rc = -1;

    switch (op) {
      case "raw": {
        const req = this.flags(A(2), IOCTL_SYMS);
        let arg: bigint = BigInt(SCR_ADDR);
        p.write(SCR_ADDR, new Uint8Array(4096));
        for (let i = 3; i < n; i++) {
          const t = a[i]!;
          if (t === "null") arg = 0n;
          else if (t.startsWith("ptr:")) arg = this.va(t.slice(4));
          else if (t.startsWith("int:")) arg = u64(this.num(t.slice(4)));
          else if (t[0] === "?") {
            if (!this.field(t.slice(1))) this.invalid(`malformed field ${t}`);
          } else {
            const f = this.field(t);
            if (f && t.includes("=")) {
              const v = this.va(t.slice(t.indexOf("=") + 1));
              const b = new Uint8Array(8);
              new DataView(b.buffer).setBigUint64(0, v, true);
              p.write(SCR_ADDR + f.off, b.subarray(0, f.w));
            } else this.invalid(`not a field assignment (WIDTH@OFF=VAL): ${t}`);
          }
        }
        if (this.bad) return -1;
        rc = this.ioctl(FD(1), u32(req), arg);
        for (let i = 3; i < n; i++) {
          const t = a[i]!;
          if (t[0] !== "?") continue;
          const f = this.field(t.slice(1));
          if (!f) continue;
          const b = new Uint8Array(8);
          b.set(p.read(SCR_ADDR + f.off, f.w));
          this.kv(`${t.slice(1)}=${hex(new DataView(b.buffer).getBigUint64(0, true))}`);
        }
        return rc;
      }
      case "option": {
        const o = this.stageStruct(I.iommu_option, {
          size: I.iommu_option.size,
          option_id: u32(this.flags(A(2), OPT_SYMS)),
          op: u16(this.flags(A(3), OPTOP_SYMS)),
          object_id: u32(this.num(A(4))),
          val64: A(5) !== undefined ? u64(this.num(A(5))) : 0n,
        });
        rc = this.ioctl(FD(1), I.IOMMU_OPTION, o);
        if (rc === 0) this.kv(`val64=${this.readStruct(I.iommu_option, o).val64}`);
        return rc;
      }
      case "vfio_ioas": {
        const v = this.stageStruct(I.iommu_vfio_ioas, {
          size: I.iommu_vfio_ioas.size,
          op: u16(this.flags(A(2), VIOAS_SYMS)),
          ioas_id: A(3) !== undefined ? u32(this.num(A(3))) : 0,
        });
        rc = this.ioctl(FD(1), I.IOMMU_VFIO_IOAS, v);
        if (rc === 0) {
          const r = this.readStruct(I.iommu_vfio_ioas, v);
          if (r.op === I.IOMMU_VFIO_IOAS_GET) this.kv(`ioas_id=${r.ioas_id}`);
        }
        return rc;
      }
      case "fault_alloc": {
        const f = this.stageStruct(I.iommu_fault_alloc, { size: I.iommu_fault_alloc.size });
        rc = this.ioctl(FD(1), I.IOMMU_FAULT_QUEUE_ALLOC, f);
        if (rc === 0) {
          const r = this.readStruct(I.iommu_fault_alloc, f);
          this.setName(A(2), r.out_fault_id);
          this.setName(A(3), r.out_fault_fd);
          this.kv(`id=${r.out_fault_id}`);
        }
        return rc;
      }
      case "region_info": {
        const r = this.stageStruct(V.vfio_region_info, {
          argsz: V.vfio_region_info.size,
          index: u32(this.num(A(2))),
        });
        rc = this.ioctl(FD(1), V.VFIO_DEVICE_GET_REGION_INFO, r);
        if (rc === 0) {
          const v = this.readStruct(V.vfio_region_info, r);
          this.kv(`flags=${hex(v.flags)} size=${hex(v.size)} offset=${hex(v.offset)}`);
        }
        return rc;
      }
      case "irq_info": {
        const q = this.stageStruct(V.vfio_irq_info, { argsz: V.vfio_irq_info.size, index: u32(this.num(A(2))) });
        rc = this.ioctl(FD(1), V.VFIO_DEVICE_GET_IRQ_INFO, q);
        if (rc === 0) {
          const v = this.readStruct(V.vfio_irq_info, q);
          this.kv(`flags=${hex(v.flags)} count=${v.count}`);
        }
        return rc;
      }
      case "pread":
      case "pwrite": {
        const write = op === "pwrite";
        const v = write ? u64(this.num(A(4))) : 0n;
        const len = this.num(A(3));
        if (len !== 1n && len !== 2n && len !== 4n && len !== 8n) {
          this.invalid("width must be 1, 2, 4 or 8");
          return -1;
        }
        const b = new Uint8Array(8);
        new DataView(b.buffer).setBigUint64(0, v, true);
        const va = this.alloc(b);
        const off = this.num(A(2));
        // off_t: a negative offset stays negative (EINVAL in the kernel)
        const offArg = off < 0n ? -1 : off;
        if (write) return this.sys(p.pwrite(FD(1), va, Number(len), offArg));
        rc = this.sys(p.pread(FD(1), va, Number(len), offArg));
        if (rc >= 0) this.kv(`val=${hex(new DataView(p.read(va, 8).slice().buffer).getBigUint64(0, true))}`);
        return rc;
      }
      case "set_irqs": {
        const flags = u32(this.flags(A(5), IRQ_SYMS));
        const data: number[] = [];
        for (let i = 6; i < n && i < 6 + 64; i++) {
          const x = this.num(a[i]);
          if (flags & V.VFIO_IRQ_SET_DATA_BOOL) data.push(Number(BigInt.asUintN(8, x)));
          else {
            const w = s32(x);
            data.push(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, (w >>> 24) & 0xff);
          }
        }
        const b = new Uint8Array(V.vfio_irq_set.size + 64 * 4);
        V.vfio_irq_set.encodeInto(b, {
          argsz: V.vfio_irq_set.size + data.length,
          flags,
          index: u32(this.num(A(2))),
          start: u32(this.num(A(3))),
          count: u32(this.num(A(4))),
        });
        b.set(data, V.vfio_irq_set.size);
        return this.ioctl(FD(1), V.VFIO_DEVICE_SET_IRQS, this.alloc(b));
      }
      case "eventfd": {
        rc = this.sys(p.eventfd(EFD_NONBLOCK | EFD_CLOEXEC));
        if (rc >= 0) {
          this.setName(A(1), rc);
          rc = 0;
        }
        return rc;
      }
      case "read_efd": {
        const va = this.alloc(new Uint8Array(8));
        rc = this.sys(p.readFd(FD(1), va, 8));
        if (rc >= 0) this.kv(`val=${new DataView(p.read(va, 8).slice().buffer).getBigUint64(0, true)}`);
        return rc;
      }
      case "dup": {
        rc = this.sys(p.dup(FD(2)));
        if (rc >= 0) {
          this.setName(A(1), rc);
          rc = 0;
        }
        return rc;
      }
      case "mmap": {
        const addr = this.va(A(4));
        const len = this.num(A(3));
        const r = p.mmap(Number(u64(len)), { addr, fd: FD(1), offset: this.num(A(2)) });
        if (r < 0) return this.sys(r);
        if (BigInt(r) === addr) return 0;
        p.munmap(r, Number(u64(len)));
        this.errno = EEXIST;
        return -1;
      }
      case "munmap":
        return this.sys(p.munmap(this.va(A(1)), Number(u64(this.num(A(2))))));
      case "sleep": {
        const ms = this.num(A(1));
        if (ms < 0n || ms > 10000n) {
          this.invalid("sleep must be 0 to 10000 ms");
          return -1;
        }
        p.sleep(Number(ms));
        return 0;
      }
      case "peek":
      case "poke": {
        const va = this.va(A(1));
        const pv = op === "poke" ? u32(this.num(A(2))) : 0;
        try {
          if (op === "poke") {
            const b = new Uint8Array(4);
            new DataView(b.buffer).setUint32(0, pv, true);
            p.write(va, b);
          } else {
            const b = p.read(va, 4).slice();
            this.kv(`val=${hex(new DataView(b.buffer).getUint32(0, true))}`);
          }
          return 0;
        } catch (e) {
          if (!(e instanceof Segfault)) throw e;
          this.errno = EFAULT;
          return -1;
        }
      }
      case "rlimit": {
        if (A(1) !== "MEMLOCK") {
          this.invalid("only rlimit MEMLOCK is known");
          return -1;
        }
        const soft = u64(this.num(A(2)));
        const hard = u64(this.num(A(A(3) !== undefined ? 3 : 2)));
        return this.sys(p.setMemlock(Number(soft), Number(hard)));
      }
      case "cap_drop": {
        // capget, then capset without CAP only for CAP < 64, as the C runner does
        const cap = this.flags(A(1), CAP_SYMS);
        return cap < 64n ? this.sys(p.capDrop(Number(cap))) : 0;
      }
      case "proc_status": {
        const st = p.procStatus();
        if (typeof st === "number") {
          this.kv("VmLck=-1 VmPin=-1");
          return this.sys(st);
        }
        this.kv(`VmLck=${st.vmLckKb} VmPin=${st.vmPinKb}`);
        return 0;
      }
      case "kvm_vm": {
        const k = this.sys(p.open("/dev/kvm", O_RDWR | O_CLOEXEC));
        rc = k < 0 ? -1 : this.ioctl(k, K.KVM_CREATE_VM, 0);
        if (rc >= 0) {
          this.setName(A(1), rc);
          rc = 0;
        }
        return rc;
      }
      case "kvm_device": {
        const cd = this.stageStruct(K.kvm_create_device, {
          type: u32(this.flags(A(3), KDEV_SYMS)),
          fd: 0xffffffff,
          flags: A(4) !== undefined ? u32(this.flags(A(4), KFLAG_SYMS)) : 0,
        });
        rc = this.ioctl(FD(1), K.KVM_CREATE_DEVICE, cd);
        if (rc === 0) {
          const fd = s32(BigInt(this.readStruct(K.kvm_create_device, cd).fd));
          if (fd !== -1) this.setName(A(2), fd);
          this.kv(`created=${fd !== -1 ? 1 : 0}`);
        }
        return rc;
      }
      case "kvm_has":
      case "kvm_set":
      case "kvm_get": {
        const v = new Uint8Array(4);
        const group = u32(this.flags(A(2), KGRP_SYMS));
        const attr = this.flags(A(3), KATTR_SYMS);
        let addr = -1n;
        if (op === "kvm_set") {
          const val = A(4);
          if (val !== undefined && val.startsWith("ptr:")) addr = this.va(val.slice(4));
          else new DataView(v.buffer).setInt32(0, s32(this.num(val)), true);
        }
        const va = this.alloc(v);
        const at = this.stageStruct(K.kvm_device_attr, { group, attr, addr: addr >= 0n ? addr : BigInt(va) });
        const req =
          op === "kvm_has" ? K.KVM_HAS_DEVICE_ATTR : op === "kvm_set" ? K.KVM_SET_DEVICE_ATTR : K.KVM_GET_DEVICE_ATTR;
        return this.ioctl(FD(1), req, at);
      }
      default:
        this.invalid(`unknown command ${op}`);
        return -1;
    }
  }
}

function basename(path: string): string {
  const t = path.replace(/\/+$/, "");
  return t.slice(t.lastIndexOf("/") + 1) || "/";
}
