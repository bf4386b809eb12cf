// The twin as a Backend: createTwin(config) boots a kernel with the passthrough modules
// loaded and the machine's devices present; spawn() gives processes that speak the raw
// syscall API of src/backend/backend.ts.

import type { Backend, MmapOptions, ProcStatus, SpawnOptions, UserProcess } from "./backend/backend.js";
import { PROT_READ, PROT_WRITE, ProcessExited, Segfault, toNum } from "./backend/backend.js";
import type { EncodeValue, StructDesc } from "./uapi/struct.js";
import { EINVAL } from "./uapi/errno.js";
import { int, ptr, raw, struct, sym, type TVal } from "./trace/value.js";
import { capDropCalls, type LibcCall, readdirCalls, readFileCalls, readlinkCalls } from "./trace/libc_calls.js";
import { explainBusy, type HeldObject, installBusyExplainer } from "./check/holders.js";
import { Kernel } from "./kernel/kernel.js";
import { registerFaultInjectionDebugfs } from "./kernel/fault_inject.js";
import type { Process } from "./kernel/process.js";
import { enqcmd, type EnqcmdStatus } from "./kernel/enqcmd.js";
import {
  authorizedPasids,
  type KernelVersion,
  type PasidDesign,
  processPasids,
  setCurrentPasid,
  setPasidConfig,
} from "./kernel/pasid.js";
import { type KvmVcpu, kvmVcpu } from "./kvm/enqcmd.js";
import { Kvm } from "./kvm/kvm.js";
import * as sys from "./kernel/syscalls.js";
import { makeKvmModule } from "./kvm/kvm_main.js";
import type { CouplingDesign } from "./kvm/vfio_coupling.js";
import { iommufdModule } from "./iommufd/main.js";
import { setIommufdTest } from "./iommufd/selftest.js";
import { Machine, type PciFunctionConfig } from "./hw/machine.js";
import { bootMachine } from "./iommu/pci_probe.js";
import { vfioModule } from "./vfio/module.js";
import { vfioIommuType1Module } from "./vfio/vfio_iommu_type1.js";
import { vfioPciModule } from "./vfio/pci/vfio_pci.js";
import { kvmGatedMdevModule } from "./vfio/mdev/kvm_gated_mdev.js";

export interface TwinConfig {
  /** load KVM (default true) */
  kvm?: boolean;
  /** load iommufd, /dev/iommu (default: with the real VFIO, i.e. unless vfio is false) */
  iommufd?: boolean;
  /** how KVM's VFIO pseudo-device reaches VFIO (src/kvm/vfio_coupling.ts; default "upstream") */
  coupling?: CouplingDesign;
  /** build KVM with CONFIG_KVM_VFIO, i.e. with KVM_DEV_TYPE_VFIO (default true) */
  kvmVfio?: boolean;
  /** the machine's PCI functions (src/hw/machine.ts); default: the oracle's edu device */
  pci?: PciFunctionConfig[];
  /** load vfio, vfio_iommu_type1 and vfio_pci (default true) */
  vfio?: boolean;
  /** CONFIG_FAULT_INJECTION_DEBUG_FS: /sys/kernel/debug/fail* (default false, as the oracle's
   * kernel, which has no debugfs) */
  faultInjectionDebugfs?: boolean;
  /** iommufd built with CONFIG_IOMMUFD_TEST: IOMMU_TEST_CMD and the selftest mock (default true) */
  iommufdTest?: boolean;
  /** broken variants to build in (src/check/variants.ts: real kernel bugs put back, for the
   * explorer to find); none by default */
  broken?: readonly string[];
  /** the kernel answered as (default "6.12", the oracle's): "6.15" adds the PASID uAPI
   * (VFIO_DEVICE_ATTACH/DETACH_PASID, iommufd PASID attach) and the twin's ENQCMD proposals
   * (docs/pasid.md) */
  kernelVersion?: KernelVersion;
  /** how KVM links guest PASIDs to host PASIDs (docs/pasid.md; default "process-table") */
  pasidDesign?: PasidDesign;
}

/** An rlimit as strace prints it (print_rlim64_t): RLIM64_INFINITY, N*1024, or N. */
function rlim(v: number): TVal {
  if (v >= 2 ** 64 - 1 || v < 0) return sym("RLIM64_INFINITY", v);
  return v > 1024 && v % 1024 === 0 ? sym(`${v / 1024}*1024`, v) : int(v);
}

export class TwinProcess implements UserProcess {
  constructor(
    readonly twin: Twin,
    readonly proc: Process,
  ) {}

  get pid(): number {
    return this.proc.pid;
  }
  /** the process has exited (Twin.kill): every call through this handle throws ProcessExited */
  get exited(): boolean {
    return this.proc.exited;
  }
  /** Who holds what this process's last EBUSY was about (src/check/holders.ts). */
  busyHolders(): HeldObject[] {
    return explainBusy(this.twin.kernel, this.proc);
  }
  /** The kernel, for a call of this process: none once it has exited. */
  private live(call: string): Kernel {
    if (this.proc.exited) throw new ProcessExited(this.proc.pid, call);
    return this.twin.kernel;
  }

  open(path: string, flags = 2): number {
    return sys.sysOpen(this.live("open"), this.proc, path, flags);
  }
  close(fd: number): number {
    return sys.sysClose(this.live("close"), this.proc, fd);
  }
  ioctl(fd: number, request: number, arg: number | bigint = 0): number {
    return sys.sysIoctl(
      this.live("ioctl"),
      this.proc,
      fd,
      request >>> 0,
      typeof arg === "number" && arg >= 0 ? arg : sys.userArg(arg),
    );
  }
  mmap(length: number, o: MmapOptions = {}): number {
    return sys.sysMmap(this.live("mmap"), this.proc, length, {
      ...(o.addr !== undefined ? { addr: toNum(o.addr) } : {}),
      prot: o.prot ?? PROT_READ | PROT_WRITE,
      ...(o.fd !== undefined ? { fd: o.fd } : {}),
      ...(o.offset !== undefined ? { offset: toNum(o.offset) } : {}),
    });
  }
  munmap(addr: number | bigint, length: number): number {
    return sys.sysMunmap(this.live("munmap"), this.proc, toNum(addr), length);
  }
  read(addr: number | bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    if (!this.readInto(addr, out)) throw new Segfault(addr);
    return out;
  }
  /** read() into a buffer of the caller's: false where the memory is not readable */
  readInto(addr: number | bigint, out: Uint8Array, length = out.length): boolean {
    const k = this.live("read");
    // current is the process's task (device memory's io hooks may look), without a closure
    const prev = k.current;
    k.current = this.proc.mainTask;
    try {
      return this.proc.mm.copyFromUserInto(out, toNum(addr), length);
    } finally {
      k.current = prev;
    }
  }
  write(addr: number | bigint, bytes: Uint8Array): void {
    const k = this.live("write");
    const prev = k.current;
    k.current = this.proc.mainTask;
    let r: number;
    try {
      r = this.proc.mm.copyToUser(toNum(addr), bytes);
    } finally {
      k.current = prev;
    }
    if (r < 0) throw new Segfault(addr);
  }
  writeStruct<V>(desc: StructDesc<V>, addr: number, value: EncodeValue<V>, size = desc.size): boolean {
    const k = this.live("write");
    const prev = k.current;
    k.current = this.proc.mainTask;
    try {
      // encoded in place in the process's page (src/kernel/mm.ts)
      return this.proc.mm.writeStruct(desc, addr, value, size) === 0;
    } finally {
      k.current = prev;
    }
  }
  readStruct<V>(desc: StructDesc<V>, addr: number): V | null {
    const k = this.live("read");
    const prev = k.current;
    k.current = this.proc.mainTask;
    try {
      return this.proc.mm.readStruct(desc, addr);
    } finally {
      k.current = prev;
    }
  }
  dup(fd: number): number {
    return sys.sysDup(this.live("dup"), this.proc, fd);
  }
  /** SCM_RIGHTS to `to`: EPIPE when `to` has exited (its end of the socket is closed) */
  sendFd(fd: number, to: UserProcess): number {
    const k = this.live("sendFd");
    if (!(to instanceof TwinProcess) || to.twin !== this.twin) return -EINVAL;
    return sys.sysSendFd(k, this.proc, fd, to.proc);
  }
  pread(fd: number, buf: number | bigint, count: number, offset: number | bigint): number {
    return sys.sysRw(this.live("pread"), this.proc, false, fd, toNum(buf), count, toNum(offset));
  }
  pwrite(fd: number, buf: number | bigint, count: number, offset: number | bigint): number {
    return sys.sysRw(this.live("pwrite"), this.proc, true, fd, toNum(buf), count, toNum(offset));
  }
  readFd(fd: number, buf: number | bigint, count: number): number {
    return sys.sysRw(this.live("readFd"), this.proc, false, fd, toNum(buf), count, null);
  }
  writeFd(fd: number, buf: number | bigint, count: number): number {
    return sys.sysRw(this.live("writeFd"), this.proc, true, fd, toNum(buf), count, null);
  }
  eventfd(flags = 0): number {
    return sys.sysEventfd(this.live("eventfd"), this.proc, flags);
  }
  readlink(path: string): string | number {
    const k = this.live("readlink");
    const r = k.sysfs.readlink(path);
    if (k.trace.enabled) this.traceCalls(readlinkCalls(path, r));
    return r;
  }
  readdir(path: string): string[] | number {
    const k = this.live("readdir");
    const r = k.sysfs.readdir(path);
    if (k.trace.enabled) this.traceCalls(readdirCalls(path, this.lowestFreeFd(), r));
    return r;
  }
  /** the syscalls behind a call the twin answers outside its syscall layer (src/trace/libc_calls.ts) */
  private traceCalls(calls: readonly LibcCall[]): void {
    const k = this.twin.kernel;
    for (const c of calls) k.trace.emit(this.pid, k.clock.now, c.call, c.args, c.rc);
  }
  /** the number the C library's open of a directory or /proc file would get */
  private lowestFreeFd(): number {
    let fd = 0;
    while (!this.proc.files.isFree(fd)) fd++;
    return fd;
  }
  setMemlock(soft: number, hard = soft): number {
    const k = this.live("setMemlock");
    const rc = this.proc.setMemlock(soft, hard);
    // glibc's setrlimit() is prlimit64(0, ...) on x86-64
    if (k.trace.enabled)
      k.trace.emit(
        this.pid,
        k.clock.now,
        "prlimit64",
        [
          { name: "pid", value: int(0) },
          { name: "resource", value: sym("RLIMIT_MEMLOCK", 8) },
          {
            name: "new_limit",
            value: struct([
              ["rlim_cur", rlim(soft)],
              ["rlim_max", rlim(hard)],
            ]),
          },
          { name: "old_limit", value: ptr(0) },
        ],
        rc,
      );
    return rc;
  }
  capDrop(cap: number): number {
    const k = this.live("capDrop");
    if (!Number.isInteger(cap) || cap < 0 || cap >= 64) return -EINVAL;
    const before = k.trace.enabled ? [...this.proc.caps] : [];
    this.proc.caps.delete(cap);
    if (k.trace.enabled) this.traceCalls(capDropCalls(before, [...this.proc.caps], 0));
    return 0;
  }
  procStatus(): ProcStatus {
    const k = this.live("procStatus");
    const kb = 4096 / 1024;
    const st = { vmLckKb: this.proc.mm.lockedVm * kb, vmPinKb: this.proc.mm.pinnedVm * kb };
    // the lines of /proc/self/status the twin models (fs/proc/array.c, task_mem())
    if (k.trace.enabled)
      this.traceCalls(
        readFileCalls(
          "/proc/self/status",
          this.lowestFreeFd(),
          `Name:\t${this.proc.name.slice(0, 15)}\nPid:\t${this.pid}\nVmLck:\t${String(st.vmLckKb).padStart(8)} kB\nVmPin:\t${String(st.vmPinKb).padStart(8)} kB\n`,
        ),
      );
    return st;
  }
  /** The PASID this process's ENQCMD carries (IA32_PASID): one of its authorized PASIDs
   * (-EPERM otherwise), or null to clear it; -EINVAL on a kernel without the PASID uAPI. */
  setPasid(pasid: number | null): number {
    return setCurrentPasid(this.live("setPasid"), this.proc, pasid);
  }
  /** IA32_PASID now (null: not valid) */
  get pasid(): number | null {
    return processPasids(this.twin.kernel, this.proc).current;
  }
  /** The process's ENQCMD authorization table (the twin's proposal, docs/pasid.md). */
  authorizedPasids(): number[] {
    return authorizedPasids(this.live("authorizedPasids"), this.proc);
  }
  /** ENQCMD (the twin's API for the instruction, not a syscall): the 64-byte descriptor at
   * `descriptorAddr` to the portal at `portalAddr` with IA32_PASID; "accepted" (ZF=0),
   * "retry" (ZF=1), "gp" (#GP: no valid PASID, misaligned portal), "fault" (#PF). */
  enqcmd(portalAddr: number | bigint, descriptorAddr: number | bigint): EnqcmdStatus {
    const k = this.live("enqcmd");
    const pasid = processPasids(k, this.proc).current;
    const st = k.withTask(this.proc.mainTask, () =>
      enqcmd(this.proc.mm, toNum(portalAddr), toNum(descriptorAddr), pasid),
    );
    if (k.trace.enabled)
      k.trace.twinEvent(
        this.pid,
        k.clock.now,
        "enqcmd",
        [`0x${toNum(portalAddr).toString(16)}`, `pasid=${pasid ?? "none"}`],
        st,
      );
    return st;
  }
  /** nanosleep(): 0, or -EINVAL for a time that is negative or not a finite number */
  sleep(ms: number): number {
    const k = this.live("sleep");
    if (!Number.isFinite(ms) || ms < 0) {
      if (k.trace.enabled)
        k.trace.emit(
          this.pid,
          k.clock.now,
          "clock_nanosleep",
          [{ name: "request", value: raw(`{ms=${ms}}`) }],
          -EINVAL,
        );
      return -EINVAL;
    }
    if (k.trace.enabled) {
      const ns = Math.round(ms * 1e6);
      // glibc's nanosleep() is clock_nanosleep(CLOCK_REALTIME, 0, ...) on x86-64
      k.trace.emit(
        this.pid,
        k.clock.now,
        "clock_nanosleep",
        [
          { name: "clockid", value: sym("CLOCK_REALTIME", 0) },
          { name: "flags", value: int(0) },
          {
            name: "request",
            value: struct([
              ["tv_sec", int(Math.floor(ns / 1e9))],
              ["tv_nsec", int(ns % 1e9)],
            ]),
          },
          { name: "remain", value: ptr(0) },
        ],
        0,
      );
    }
    this.twin.advance(ms * 1e6);
    return 0;
  }
}

export class Twin implements Backend {
  readonly kind = "twin" as const;
  readonly kernel = new Kernel();
  readonly machine: Machine;

  constructor(readonly config: TwinConfig = {}) {
    const k = this.kernel;
    for (const b of config.broken ?? []) k.broken.add(b);
    setPasidConfig(k, config.kernelVersion ?? "6.12", config.pasidDesign ?? "process-table");
    this.machine = new Machine(this.kernel.clock, config.pci);
    bootMachine(k, this.machine);
    const kvm = makeKvmModule({ coupling: config.coupling ?? "upstream", vfio: config.kvmVfio !== false });
    for (const m of [kvm, vfioModule, vfioIommuType1Module, vfioPciModule, kvmGatedMdevModule]) k.modules.provide(m);
    if (config.kvm !== false) mustLoad(k, "kvm");
    setIommufdTest(k, config.iommufdTest !== false);
    k.modules.provide(iommufdModule);
    if (config.iommufd ?? config.vfio !== false) mustLoad(k, "iommufd");
    if (config.vfio !== false) for (const m of ["vfio", "vfio_iommu_type1", "vfio_pci"]) mustLoad(k, m);
    if (config.faultInjectionDebugfs) registerFaultInjectionDebugfs(k);
    installBusyExplainer(k);
  }

  spawn(opts: SpawnOptions = {}): TwinProcess {
    const p = this.kernel.spawnProcess({
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.memlock !== undefined ? { memlock: opts.memlock } : {}),
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      ...(opts.caps !== undefined ? { caps: opts.caps } : {}),
    });
    return new TwinProcess(this, p);
  }

  kill(p: UserProcess): void {
    if (!(p instanceof TwinProcess) || p.twin !== this) throw new TypeError("not a process of this twin");
    sys.sysExit(this.kernel, p.proc);
  }

  /**
   * vCPU `id` of the VM behind `vmFd` in `p` (the twin's stand-in for a vCPU thread in
   * KVM_RUN; the twin has no KVM_CREATE_VCPU): set its guest PASID, execute ENQCMD on it.
   */
  vcpu(p: UserProcess, vmFd: number, id = 0): KvmVcpu | null {
    if (!(p instanceof TwinProcess) || p.twin !== this || p.exited) return null;
    const f = p.proc.files.lookup(vmFd);
    return f && f.privateData instanceof Kvm ? kvmVcpu(f.privateData, id) : null;
  }

  /** Let virtual time pass (device timers fire in order). */
  advance(ns: number): void {
    this.kernel.withTask(this.kernel.kthread, () => this.kernel.clock.advance(ns));
  }
}

function mustLoad(k: Kernel, name: string): void {
  const rc = k.modules.load(name);
  if (rc < 0) throw new Error(`twin boot: loading ${name} failed with ${rc}`);
}

export function createTwin(config: TwinConfig = {}): Twin {
  return new Twin(config);
}
