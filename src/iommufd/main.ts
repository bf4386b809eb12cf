// /dev/iommu (drivers/iommu/iommufd/main.c): the iommufd context behind each open file, the
// table-driven ioctl dispatch every command shares, DESTROY, OPTION and the module.
//
// Dispatch (iommufd_fops_ioctl()): _IOC_NR below IOMMUFD_CMD_BASE or past the table goes to
// the VFIO container emulation (./vfio_compat.ts); otherwise the leading u32 `size` is read
// (EFAULT), the row must carry exactly this request number (else ENOTTY: the rows between
// 0x8f and 0x9f are empty and 0xa0 is IOMMU_TEST_CMD, ./selftest.ts), size below
// the row's minimum is EINVAL, and copy_struct_from_user() takes min(size, sizeof) bytes
// after checking that any bytes past sizeof are zero (E2BIG). Handlers answer through
// Ucmd.respond(), which copies back min(size, sizeof) bytes, as iommufd_ucmd_respond(); the
// hot IOAS commands read and answer their struct in place instead (InPlaceExecute).

import { E2BIG, EBADFD, EFAULT, EINVAL, ENOTTY, EOPNOTSUPP } from "../uapi/errno.js";
import { _IOC_NR } from "../uapi/ioctl.js";
import * as U from "../uapi/iommufd.js";
import { IOMMU_TEST_CMD, iommu_test_cmd } from "../uapi/iommufd_test.js";
import type { StructDesc } from "../uapi/struct.js";
import type { File, FileOperations } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import type { Module, ModuleDef } from "../kernel/module.js";
import type { Process } from "../kernel/process.js";
import type { KRet } from "../kernel/sched.js";
import * as ioas from "./ioas.js";
import { ObjectTable } from "./object.js";
import { IOPT_PAGES_ACCOUNT_USER } from "./pages.js";
import { getHwInfo, type IommufdGroup } from "./device.js";
import { faultAlloc } from "./fault.js";
import * as hwpt from "./hw_pagetable.js";
import { iommufdVfioIoas, iommufdVfioIoctl } from "./vfio_compat.js";
import { iommufdViolations } from "./invariants.js";
import { iommufdTest } from "./selftest.js";
import { selftestState } from "./selftest_config.js";
import { PAGE_SIZE, PROT_READ, PROT_WRITE } from "../kernel/mm.js";

let nextCtx = 1;

/** struct iommufd_ctx: one per open of /dev/iommu. */
export class IommufdCtx {
  readonly objects: ObjectTable;
  accountMode = IOPT_PAGES_ACCOUNT_USER;
  /** the IOAS the VFIO compat layer uses (IOMMU_VFIO_IOAS) */
  vfioIoas: ioas.IommufdIoas | null = null;
  /** iommufd_group per IOMMU group id (ictx->groups) */
  readonly groups = new Map<number, IommufdGroup>();
  readonly name = `iommufd ctx ${nextCtx++}`;
  /** the process that opened /dev/iommu: whose ENQCMD authorization table a PASID attach
   * extends (the twin's proposal, ./pasid.ts) */
  readonly owner: Process | null;
  /** the kernel's CONFIG_IOMMUFD_TEST state (one object per kernel, read on every ioctl:
   * held here instead of looked up in a WeakMap each time) */
  readonly selftest: { readonly enabled: boolean };
  constructor(
    readonly k: Kernel,
    readonly file: File,
  ) {
    this.owner = k.current?.process ?? null;
    this.selftest = selftestState(k);
    this.objects = new ObjectTable(k, this.name);
  }
}

/**
 * The ioctl path's staging buffer for struct copy-in (decoded before the handler runs) and
 * respond() (copied to user memory at once): allocated once, off the JS heap, so a command
 * allocates no byte buffers. Structs larger than it (none in 6.12's table) get fresh ones.
 */
const SCRATCH = new Uint8Array(4096);
const SCRATCH_VIEW = new DataView(SCRATCH.buffer);

/** One command being executed (struct iommufd_ucmd). */
export class Ucmd<V> {
  constructor(
    readonly ictx: IommufdCtx,
    readonly proc: Process,
    readonly ubuffer: number,
    readonly userSize: number,
    readonly desc: StructDesc<V>,
    readonly cmd: V,
  ) {}

  /** iommufd_ucmd_respond(): the struct back, min(user size, sizeof) bytes. */
  respond(): number {
    const size = this.desc.size;
    if (size > SCRATCH.length) {
      const bytes = this.desc.encode(this.cmd as Partial<V>);
      return this.proc.mm.copyToUser(this.ubuffer, bytes, Math.min(this.userSize, bytes.length));
    }
    // encoded in place in the user page when the whole struct goes back, else staged
    return this.proc.mm.writeStruct(this.desc, this.ubuffer, this.cmd as Partial<V>, Math.min(this.userSize, size));
  }

  copyToUser(addr: bigint, bytes: Uint8Array): number {
    return this.proc.mm.copyToUser(uaddr(addr), bytes);
  }

  copyFromUser(addr: bigint, len: number): Uint8Array | number {
    return this.proc.mm.copyFromUser(uaddr(addr), len);
  }
}

function uaddr(v: bigint): number {
  return v < 1n << 53n ? Number(v) : 2 ** 53;
}

/**
 * A handler that reads its struct in place, with no Ucmd and no decoded object per call (the
 * hot IOAS commands, docs/performance.md): `dv` holds the kernel's copy of the struct from
 * `off` (the user's page itself, or the staging copy copy_struct_from_user() made), which the
 * handler reads field by field into locals at its start, before anything can yield or touch
 * user memory; it answers through respondView()/respondEnd(). Only for rows whose minimum
 * size is sizeof, so the answer is always the whole struct.
 */
export type InPlaceExecute = (ictx: IommufdCtx, proc: Process, arg: number, dv: DataView, off: number) => KRet<number>;

export interface IoctlOp {
  readonly name: string;
  readonly cmd: number;
  readonly desc: StructDesc<any>;
  /** offsetofend of the last mandatory field */
  readonly minSize: number;
  /** the handler of a decoded-struct row (null for an in-place row) */
  readonly execute: ((u: Ucmd<any>) => KRet<number>) | null;
  /** the handler of an in-place row (null for a decoded-struct row) */
  readonly inPlace: InPlaceExecute | null;
}

function minSizeOf(cmd: number, desc: StructDesc<unknown>): number {
  const last = U.IOMMUFD_MIN_FIELD.get(cmd);
  if (last === undefined) throw new Error(`no minimum size for ${desc.name}`);
  return desc.offsetOfEnd(last);
}

function op<Vv>(cmd: number, desc: StructDesc<Vv>, execute: (u: Ucmd<Vv>) => KRet<number>): IoctlOp {
  return { name: desc.name, cmd, desc, minSize: minSizeOf(cmd, desc), execute, inPlace: null };
}

/** A row whose handler reads its struct in place (InPlaceExecute). */
function opInPlace(cmd: number, desc: StructDesc<unknown>, inPlace: InPlaceExecute): IoctlOp {
  const minSize = minSizeOf(cmd, desc);
  if (minSize !== desc.size || desc.size > SCRATCH.length) throw new Error(`${desc.name} cannot be read in place`);
  return { name: desc.name, cmd, desc, minSize, execute: null, inPlace };
}

// iommufd_ucmd_respond() for an in-place handler: the struct goes back min(user size, sizeof)
// = sizeof bytes (opInPlace), written field by field at the user address's offset in its
// page, in the page itself or in a staging copy. The two halves run with no yield between.
const OUT_STAGE = new Uint8Array(2 * PAGE_SIZE);
const OUT_STAGE_VIEW = new DataView(OUT_STAGE.buffer);

/** Where respondView()'s view holds the struct written back to `arg`. */
export function respondOff(arg: number): number {
  return arg & (PAGE_SIZE - 1);
}

/** The view to write all `len` bytes of the answer into, from respondOff(arg): the user's
 * page when the struct is within one writable anonymous page, else zeroed staging. */
export function respondView(proc: Process, arg: number, len: number): DataView {
  const dv = proc.mm.userView(arg, len, PROT_WRITE);
  if (dv !== null) return dv;
  const off = arg & (PAGE_SIZE - 1);
  OUT_STAGE.fill(0, off, off + len);
  return OUT_STAGE_VIEW;
}

/** respondView()'s copy_to_user() completed: 0 or -EFAULT. */
export function respondEnd(proc: Process, dv: DataView, arg: number, len: number): number {
  if (dv !== OUT_STAGE_VIEW) return 0;
  const off = arg & (PAGE_SIZE - 1);
  return proc.mm.copyToUser(arg, OUT_STAGE.subarray(off, off + len), len) < 0 ? -EFAULT : 0;
}

/** iommufd_destroy(): a path (a paging HWPT's destroy takes its IOAS's locks; any other
 * waits for short-term users between the halves of their put, ./object.ts) */
function destroy(u: Ucmd<{ id: number }>): KRet<number> {
  const o = u.ictx.objects.peek(u.cmd.id);
  if (o instanceof hwpt.IommufdHwptPaging && o.inList) return hwpt.hwptPagingDestroyUser(u.ictx, o);
  return u.ictx.objects.remove(u.cmd.id);
}

/** iommufd_option() */
function option(u: Ucmd<any>): number {
  const cmd = u.cmd as { __reserved: number; option_id: number; val64: bigint };
  if (cmd.__reserved) return -EOPNOTSUPP;
  let rc: number;
  switch (cmd.option_id) {
    case U.IOMMU_OPTION_RLIMIT_MODE:
      rc = ioas.optionRlimitMode(u);
      break;
    case U.IOMMU_OPTION_HUGE_PAGES:
      rc = ioas.ioasOption(u);
      break;
    default:
      return -EOPNOTSUPP;
  }
  if (rc) return rc;
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, cmd.val64, true);
  return u.proc.mm.copyToUser(u.ubuffer + U.iommu_option.offsetOf("val64"), b);
}

/** The table, by _IOC_NR - IOMMUFD_CMD_BASE (iommufd_ioctl_ops[]). */
export const IOMMUFD_IOCTL_OPS: readonly IoctlOp[] = [
  op(U.IOMMU_DESTROY, U.iommu_destroy, destroy),
  op(U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, ioas.ioasAllocIoctl),
  op(U.IOMMU_IOAS_ALLOW_IOVAS, U.iommu_ioas_allow_iovas, ioas.ioasAllowIovas),
  op(U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, ioas.ioasCopy),
  op(U.IOMMU_IOAS_IOVA_RANGES, U.iommu_ioas_iova_ranges, ioas.ioasIovaRanges),
  opInPlace(U.IOMMU_IOAS_MAP, U.iommu_ioas_map, ioas.ioasMap),
  opInPlace(U.IOMMU_IOAS_UNMAP, U.iommu_ioas_unmap, ioas.ioasUnmap),
  op(U.IOMMU_OPTION, U.iommu_option, option),
  op(U.IOMMU_VFIO_IOAS, U.iommu_vfio_ioas, iommufdVfioIoas),
  op(U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, hwpt.hwptAlloc),
  op(U.IOMMU_GET_HW_INFO, U.iommu_hw_info, getHwInfo),
  op(U.IOMMU_HWPT_SET_DIRTY_TRACKING, U.iommu_hwpt_set_dirty_tracking, hwpt.setDirtyTracking),
  op(U.IOMMU_HWPT_GET_DIRTY_BITMAP, U.iommu_hwpt_get_dirty_bitmap, hwpt.getDirtyBitmap),
  op(U.IOMMU_HWPT_INVALIDATE, U.iommu_hwpt_invalidate, hwpt.invalidate),
  op(U.IOMMU_FAULT_QUEUE_ALLOC, U.iommu_fault_alloc, faultAlloc),
];

export { IOMMU_TEST_CMD } from "../uapi/iommufd_test.js";

/**
 * IOMMU_TEST_CMD, the last row when the kernel has CONFIG_IOMMUFD_TEST (./selftest.ts): the
 * rows between it and FAULT_QUEUE_ALLOC are empty (ENOTTY after the size is read). Without
 * it the table ends at FAULT_QUEUE_ALLOC and 0xa0 goes to the VFIO compat layer (ENOTTY).
 */
export const IOMMU_TEST_CMD_OP: IoctlOp = {
  name: "iommu_test_cmd",
  cmd: IOMMU_TEST_CMD,
  desc: iommu_test_cmd,
  minSize: iommu_test_cmd.offsetOfEnd("last"),
  execute: iommufdTest,
  inPlace: null,
};
const BY_NR: (IoctlOp | undefined)[] = [];
for (const o of IOMMUFD_IOCTL_OPS) BY_NR[_IOC_NR(o.cmd) - U.IOMMUFD_CMD_BASE] = o;
const TABLE_LEN_NO_TEST = BY_NR.length;
BY_NR[_IOC_NR(IOMMU_TEST_CMD) - U.IOMMUFD_CMD_BASE] = IOMMU_TEST_CMD_OP;
export const IOMMUFD_TABLE_LEN = BY_NR.length;

/** copy_struct_from_user(): the kernel-sized struct, or -errno. */
function copyStructFromUser(mm: Process["mm"], ksize: number, src: number, usize: number): Uint8Array | number {
  if (usize > ksize) {
    // check_zeroed_user() of the tail, a page at a time
    for (let off = ksize; off < usize;) {
      const n = Math.min(4096, usize - off);
      const b = mm.copyFromUser(src + off, n);
      if (typeof b === "number") return b;
      for (let i = 0; i < n; i++) if (b[i] !== 0) return -E2BIG;
      off += n;
    }
  }
  const n = Math.min(ksize, usize);
  // the scratch buffer zeroed to ksize reads as the kernel's zero-filled ksize struct: every
  // field of the layout lies within ksize
  const out = ksize <= SCRATCH.length ? SCRATCH : new Uint8Array(ksize);
  if (!mm.copyFromUserInto(out, src, n)) return -EFAULT;
  out.fill(0, n, ksize);
  return out;
}

export function iommufdIoctl(ictx: IommufdCtx, proc: Process, cmd: number, arg: number): KRet<number> {
  const nr = _IOC_NR(cmd);
  const len = ictx.selftest.enabled ? IOMMUFD_TABLE_LEN : TABLE_LEN_NO_TEST;
  if (nr < U.IOMMUFD_CMD_BASE || nr - U.IOMMUFD_CMD_BASE >= len) return iommufdVfioIoctl(ictx, proc, cmd, arg);
  // get_user(size)
  const userSize = proc.mm.getU32(arg);
  if (userSize < 0) return -EFAULT;
  const o = BY_NR[nr - U.IOMMUFD_CMD_BASE];
  if (!o || o.cmd !== cmd) return -ENOTTY;
  if (userSize < o.minSize) return -EINVAL;
  const inPlace = o.inPlace;
  if (inPlace !== null) {
    // copy_struct_from_user() read in place: from the user's page when the struct is whole in
    // one (the size a VMM passes), else from the staged copy
    const mm = proc.mm;
    if (userSize === o.desc.size) {
      const dv = mm.userView(arg, userSize, PROT_READ);
      if (dv !== null) return inPlace(ictx, proc, arg, dv, mm.viewOff);
    }
    const b = copyStructFromUser(mm, o.desc.size, arg, userSize);
    if (typeof b === "number") return b;
    return inPlace(ictx, proc, arg, SCRATCH_VIEW, 0);
  }
  const v = readIoctlStruct(proc, o, arg, userSize);
  if (typeof v === "number") return v;
  return o.execute!(new Ucmd(ictx, proc, arg, userSize, o.desc, v));
}

/** copy_struct_from_user() of the row's struct, decoded: the value or -errno. */
function readIoctlStruct(proc: Process, o: IoctlOp, arg: number, userSize: number): object | number {
  let value: object | null;
  if (userSize <= o.desc.size) {
    // copy_struct_from_user() of a struct no bigger than the kernel's: the user's bytes, zero
    // past them, decoded in place (src/kernel/mm.ts readStruct)
    value = proc.mm.readStruct(o.desc, arg, userSize) as object | null;
    if (value === null) return -EFAULT;
  } else {
    const bytes = copyStructFromUser(proc.mm, o.desc.size, arg, userSize);
    if (typeof bytes === "number") return bytes;
    value = o.desc.decode(bytes) as object;
  }
  return value;
}

export interface IommufdModuleState {
  readonly fops: FileOperations;
  /** every open context, for invariant checks */
  readonly ctxs: Set<IommufdCtx>;
}

function makeState(k: Kernel, m: Module): IommufdModuleState {
  const ctxs = new Set<IommufdCtx>();
  const fops: FileOperations = {
    owner: m,
    name: "iommufd",
    open(file) {
      const ictx = new IommufdCtx(k, file);
      file.privateData = ictx;
      ctxs.add(ictx);
      return 0;
    },
    release(file) {
      const ictx = file.privateData as IommufdCtx;
      const stuck = ictx.objects.destroyAll();
      if (stuck.length > 0)
        k.bug("iommufd", `${ictx.name}: release made no progress on ${stuck.map((o) => o.describe()).join(", ")}`);
      ctxs.delete(ictx);
    },
    unlocked_ioctl(file, cmd, arg) {
      return iommufdIoctl(file.privateData as IommufdCtx, k.current!.process!, cmd, arg);
    },
  };
  return { fops, ctxs };
}

/** iommufd_ctx_from_file(): the context with a reference on its file (holder named), or
 * -EBADFD when the file is not an iommufd. */
export function iommufdCtxFromFile(file: File, holder: string): IommufdCtx | number {
  if (file.fops.name !== "iommufd" || !(file.privateData instanceof IommufdCtx)) return -EBADFD;
  file.get(holder);
  return file.privateData;
}

/** iommufd_ctx_put() */
export function iommufdCtxPut(ictx: IommufdCtx, holder: string): void {
  ictx.file.put(holder);
}

/** The module's state in a kernel, or null when iommufd is not loaded. */
export function iommufdState(k: Kernel): IommufdModuleState | null {
  return (k.modules.loaded.get("iommufd")?.exports.get("__iommufd_state") as IommufdModuleState | undefined) ?? null;
}

export const iommufdModule: ModuleDef = {
  name: "iommufd",
  init(k, m) {
    const state = makeState(k, m);
    m.export("__iommufd_state", state);
    m.export("iommufd_ctx_from_file", iommufdCtxFromFile);
    m.export("iommufd_ctx_put", iommufdCtxPut);
    k.devices.register("/dev/iommu", state.fops, state);
    k.checks.set("iommufd", () => iommufdViolations(k));
    return 0;
  },
  exit(k) {
    k.checks.delete("iommufd");
    k.devices.unregister("/dev/iommu");
  },
};
