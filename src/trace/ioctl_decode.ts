// The third argument of every VFIO, iommufd and KVM ioctl, decoded strace style: the request
// by name (or as strace's _IOC(...) when unknown), an integer argument symbolic where it names
// a constant, a struct with its fields by name, flags symbolic, fields the kernel writes shown
// after the call and fields it changed as `in => out` (strace's convention for _IOWR ioctls;
// strace 6.1 itself decodes only the KVM ones: test/trace/strace-goldens). Pointers inside the
// structs that lead to an fd, an fd array or a name are followed.

import * as V from "../uapi/vfio.js";
import * as I from "../uapi/iommufd.js";
import * as K from "../uapi/kvm.js";
import * as T from "../uapi/iommufd_test.js";
import { _IOC_DIR, _IOC_NR, _IOC_SIZE, _IOC_TYPE } from "../uapi/ioctl.js";
import type { IoctlDef } from "../uapi/ioctls.js";
import type { StructDesc } from "../uapi/struct.js";
import { enumVal, flags, type FlagTable } from "./flags.js";
import { arr, cstr, hex, int, type Int, ptr, struct, sym, type TVal } from "./value.js";

/** Constants of a uapi module whose names start with `prefix` (less `skip`), by value. */
function table(mod: Record<string, unknown>, prefix: string, skip: readonly string[] = []): FlagTable {
  return Object.entries(mod)
    .filter(([n, v]) => n.startsWith(prefix) && typeof v === "number" && !skip.includes(n))
    .map(([n, v]) => [n, v as number] as const)
    .sort((x, y) => x[1] - y[1]); // strace's xlat tables go by value (a namespace's keys are sorted by name)
}

type FieldFmt =
  { kind: "int" | "hex" | "ptr" | "fd" } | { kind: "flags"; table: FlagTable } | { kind: "enum"; table: FlagTable };

interface StructSpec {
  /** fields only the kernel writes: shown after a successful call */
  out?: readonly string[];
  fmt?: Record<string, FieldFmt>;
}

const F = (t: FlagTable): FieldFmt => ({ kind: "flags", table: t });
const E = (t: FlagTable): FieldFmt => ({ kind: "enum", table: t });
const HEX: FieldFmt = { kind: "hex" };
const FD: FieldFmt = { kind: "fd" };

const VFIO_EXTENSIONS: FlagTable = [
  ["VFIO_TYPE1_IOMMU", V.VFIO_TYPE1_IOMMU],
  ["VFIO_SPAPR_TCE_IOMMU", V.VFIO_SPAPR_TCE_IOMMU],
  ["VFIO_TYPE1v2_IOMMU", V.VFIO_TYPE1v2_IOMMU],
  ["VFIO_DMA_CC_IOMMU", V.VFIO_DMA_CC_IOMMU],
  ["VFIO_EEH", V.VFIO_EEH],
  ["VFIO_TYPE1_NESTING_IOMMU", V.VFIO_TYPE1_NESTING_IOMMU],
  ["VFIO_SPAPR_TCE_v2_IOMMU", V.VFIO_SPAPR_TCE_v2_IOMMU],
  ["VFIO_NOIOMMU_IOMMU", V.VFIO_NOIOMMU_IOMMU],
  ["VFIO_UNMAP_ALL", V.VFIO_UNMAP_ALL],
  ["VFIO_UPDATE_VADDR", V.VFIO_UPDATE_VADDR],
];
const KVM_CAPS = table(K, "KVM_CAP_");
const DEVICE_FEATURES = table(V, "VFIO_DEVICE_FEATURE_", [
  "VFIO_DEVICE_FEATURE_MASK",
  "VFIO_DEVICE_FEATURE_GET",
  "VFIO_DEVICE_FEATURE_SET",
  "VFIO_DEVICE_FEATURE_PROBE",
]);
const FEATURE_OPS: FlagTable = [
  ["VFIO_DEVICE_FEATURE_GET", V.VFIO_DEVICE_FEATURE_GET],
  ["VFIO_DEVICE_FEATURE_SET", V.VFIO_DEVICE_FEATURE_SET],
  ["VFIO_DEVICE_FEATURE_PROBE", V.VFIO_DEVICE_FEATURE_PROBE],
];

const SPECS = new Map<StructDesc<any>, StructSpec>([
  [V.vfio_group_status, { out: ["flags"], fmt: { flags: F(table(V, "VFIO_GROUP_FLAGS_")) } }],
  [
    V.vfio_device_info,
    {
      out: ["flags", "num_regions", "num_irqs", "cap_offset"],
      fmt: { flags: F(table(V, "VFIO_DEVICE_FLAGS_")) },
    },
  ],
  [
    V.vfio_region_info,
    {
      out: ["flags", "cap_offset", "size", "offset"],
      fmt: { flags: F(table(V, "VFIO_REGION_INFO_FLAG_")), size: { kind: "int" }, offset: HEX },
    },
  ],
  [V.vfio_irq_info, { out: ["flags", "count"], fmt: { flags: F(table(V, "VFIO_IRQ_INFO_")) } }],
  [
    V.vfio_irq_set,
    { fmt: { flags: F([...table(V, "VFIO_IRQ_SET_DATA_", ["VFIO_IRQ_SET_DATA_TYPE_MASK"]), ...actions()]) } },
  ],
  [
    V.vfio_iommu_type1_info,
    {
      out: ["flags", "iova_pgsizes", "cap_offset"],
      fmt: { flags: F(table(V, "VFIO_IOMMU_INFO_")), iova_pgsizes: HEX },
    },
  ],
  [V.vfio_iommu_type1_dma_map, { fmt: { flags: F(table(V, "VFIO_DMA_MAP_FLAG_")), size: { kind: "int" } } }],
  [V.vfio_iommu_type1_dma_unmap, { fmt: { flags: F(table(V, "VFIO_DMA_UNMAP_FLAG_")), size: { kind: "int" } } }],
  [V.vfio_iommu_type1_dirty_bitmap, { fmt: { flags: F(table(V, "VFIO_IOMMU_DIRTY_PAGES_FLAG_")) } }],
  [V.vfio_device_bind_iommufd, { out: ["out_devid"], fmt: { iommufd: FD } }],
  // the layouts after 6.12 with the PASID flag (decoded so only on such a kernel)
  [
    V.vfio_device_attach_iommufd_pt_pasid,
    { fmt: { flags: F([["VFIO_DEVICE_ATTACH_PASID", V.VFIO_DEVICE_ATTACH_PASID]]) } },
  ],
  [
    V.vfio_device_detach_iommufd_pt_pasid,
    { fmt: { flags: F([["VFIO_DEVICE_DETACH_PASID", V.VFIO_DEVICE_DETACH_PASID]]) } },
  ],
  [I.iommu_ioas_map, { fmt: { flags: F(table(I, "IOMMU_IOAS_MAP_")), length: { kind: "int" } } }],
  [I.iommu_ioas_copy, { fmt: { flags: F(table(I, "IOMMU_IOAS_MAP_")), length: { kind: "int" } } }],
  [I.iommu_ioas_unmap, { fmt: { length: { kind: "int" } } }],
  [
    I.iommu_option,
    {
      fmt: {
        option_id: E([
          ["IOMMU_OPTION_RLIMIT_MODE", I.IOMMU_OPTION_RLIMIT_MODE],
          ["IOMMU_OPTION_HUGE_PAGES", I.IOMMU_OPTION_HUGE_PAGES],
        ]),
        op: E(table(I, "IOMMU_OPTION_OP_")),
        val64: { kind: "int" },
      },
    },
  ],
  [I.iommu_vfio_ioas, { fmt: { op: E(table(I, "IOMMU_VFIO_IOAS_")) } }],
  [
    I.iommu_hwpt_alloc,
    {
      fmt: {
        flags: F([...table(I, "IOMMU_HWPT_ALLOC_"), ["IOMMU_HWPT_FAULT_ID_VALID", I.IOMMU_HWPT_FAULT_ID_VALID]]),
        data_type: E(table(I, "IOMMU_HWPT_DATA_")),
      },
    },
  ],
  [
    I.iommu_hw_info,
    {
      fmt: {
        out_data_type: E(table(I, "IOMMU_HW_INFO_TYPE_")),
        out_capabilities: F(table(I, "IOMMU_HW_CAP_")),
      },
    },
  ],
  [I.iommu_hwpt_set_dirty_tracking, { fmt: { flags: F(table(I, "IOMMU_HWPT_DIRTY_TRACKING_")) } }],
  [
    I.iommu_hwpt_get_dirty_bitmap,
    { fmt: { flags: F(table(I, "IOMMU_HWPT_GET_DIRTY_BITMAP_")), length: { kind: "int" } } },
  ],
  [I.iommu_hwpt_invalidate, { fmt: { data_type: E(table(I, "IOMMU_HWPT_INVALIDATE_DATA_")) } }],
  [I.iommu_fault_alloc, { fmt: { out_fault_fd: FD } }],
  // strace's kvm.c: slot and memory_size in decimal, the two addresses %#llx
  [K.kvm_userspace_memory_region, { fmt: { flags: F(table(K, "KVM_MEM_")), memory_size: { kind: "int" } } }],
  [
    K.kvm_create_device,
    {
      out: ["fd"],
      fmt: {
        type: E(table(K, "KVM_DEV_TYPE_", ["KVM_DEV_TYPE_MAX"])),
        fd: FD,
        flags: F([["KVM_CREATE_DEVICE_TEST", K.KVM_CREATE_DEVICE_TEST]]),
      },
    },
  ],
  [K.kvm_device_attr, { fmt: { addr: HEX } }],
]);

function actions(): FlagTable {
  return table(V, "VFIO_IRQ_SET_ACTION_", ["VFIO_IRQ_SET_ACTION_TYPE_MASK"]);
}

/** u64 fields that hold addresses print as %#llx, the rest in decimal, as strace does. */
const ADDRESS_FIELD = /addr|iova|vaddr|uptr|user_va|^data$|_reg$|^allowed_iovas$|^start$|^end$|^last$/;

/** What the decoder may read besides the struct: user memory at an address. */
export interface UserMem {
  read(addr: number, len: number): Uint8Array | null;
}

/** Where the ioctl went: the decoding of some fields depends on the file. */
export interface IoctlContext {
  /** the file's fops name: "vfio-group", "kvm-device", ... */
  readonly fileType: string;
  /** for a KVM device fd: the device's ops name ("kvm-vfio") */
  readonly kvmDevice?: string;
}

/** The request as strace names it: the twin's name, or _IOC(dir, type, nr, size). */
export function ioctlRequest(def: IoctlDef | undefined, cmd: number): TVal {
  if (def) return sym(def.name, cmd);
  const dirs = ["_IOC_NONE", "_IOC_WRITE", "_IOC_READ", "_IOC_READ|_IOC_WRITE"];
  const h = (n: number) => (n === 0 ? "0" : `0x${n.toString(16)}`);
  return sym(`_IOC(${dirs[_IOC_DIR(cmd)]}, ${h(_IOC_TYPE(cmd))}, ${h(_IOC_NR(cmd))}, ${h(_IOC_SIZE(cmd))})`, cmd);
}

/** The argument of an ioctl whose argument is an integer or nothing. */
export function ioctlIntArg(def: IoctlDef | undefined, arg: number): TVal {
  switch (def?.name) {
    case "KVM_CHECK_EXTENSION":
      return enumVal(KVM_CAPS, arg);
    case "KVM_CREATE_VM":
    case "KVM_CREATE_VCPU":
      return int(arg);
    case "VFIO_CHECK_EXTENSION":
    case "VFIO_SET_IOMMU":
      return enumVal(VFIO_EXTENSIONS, arg, "hex");
  }
  return hex(arg);
}

/**
 * A pointer argument without a struct descriptor: the int* of VFIO_GROUP_SET_CONTAINER (a
 * container or iommufd fd) and the char* of VFIO_GROUP_GET_DEVICE_FD (a device name).
 */
export function ioctlPtrArg(def: IoctlDef | undefined, arg: number, mem: UserMem): TVal {
  if (def?.name === "VFIO_GROUP_SET_CONTAINER") {
    const b = mem.read(arg, 4);
    return b ? arr([int(new DataView(b.buffer, b.byteOffset).getInt32(0, true))]) : ptr(arg);
  }
  if (def?.name === "VFIO_GROUP_GET_DEVICE_FD") {
    const b = mem.read(arg, 256);
    if (!b) return ptr(arg);
    const n = b.indexOf(0);
    return cstr(new TextDecoder().decode(b.subarray(0, n < 0 ? b.length : n)));
  }
  return ptr(arg);
}

function fieldVal(
  desc: StructDesc<any>,
  name: string,
  v: unknown,
  spec: StructSpec | undefined,
  ctx: IoctlContext,
  all: Record<string, unknown>,
  mem: UserMem,
): TVal {
  if (desc === V.vfio_device_feature && name === "flags") return featureFlags(v as number);
  if (desc === K.kvm_device_attr && ctx.kvmDevice === "kvm-vfio") return kvmVfioAttr(name, v, all, mem);
  const f = spec?.fmt?.[name];
  if (f) {
    switch (f.kind) {
      case "flags":
        return flags(f.table, v as Int);
      case "enum":
        return enumVal(f.table, v as Int);
      case "hex":
        return hex(v as Int);
      case "ptr":
        return ptr(v as Int);
      case "int":
      case "fd":
        return int(v as Int);
    }
  }
  return plain(name, v);
}

function plain(name: string, v: unknown): TVal {
  if (typeof v === "bigint") return ADDRESS_FIELD.test(name) ? hex(v) : int(v);
  if (typeof v === "number") return name === "flags" ? hex(v) : int(v); // flags without names: %#x
  if (v instanceof Uint8Array) return arr([...v].map((x) => int(x)));
  if (Array.isArray(v)) return arr(v.map((x) => plain(name, x)));
  if (v && typeof v === "object") return struct(Object.entries(v).map(([n, x]) => [n, plain(n, x)] as const));
  return sym(String(v));
}

function featureFlags(v: number): TVal {
  const feature = enumVal(DEVICE_FEATURES, v & V.VFIO_DEVICE_FEATURE_MASK);
  const ops = v & ~V.VFIO_DEVICE_FEATURE_MASK;
  const text = feature.k === "sym" ? feature.s : String(v & V.VFIO_DEVICE_FEATURE_MASK);
  return sym(ops ? `${(flags(FEATURE_OPS, ops) as { s: string }).s}|${text}` : text, v);
}

/** KVM_DEV_VFIO_FILE attributes: group and attr by name, addr followed to the fd it points at. */
function kvmVfioAttr(name: string, v: unknown, all: Record<string, unknown>, mem: UserMem): TVal {
  if (name === "group") return enumVal([["KVM_DEV_VFIO_FILE", K.KVM_DEV_VFIO_FILE]], v as number);
  if (name === "attr" && all.group === K.KVM_DEV_VFIO_FILE)
    return enumVal(
      [
        ["KVM_DEV_VFIO_FILE_ADD", K.KVM_DEV_VFIO_FILE_ADD],
        ["KVM_DEV_VFIO_FILE_DEL", K.KVM_DEV_VFIO_FILE_DEL],
      ],
      v as bigint,
    );
  if (name === "addr" && all.group === K.KVM_DEV_VFIO_FILE) {
    const b = mem.read(Number(v), 4);
    return b ? arr([int(new DataView(b.buffer, b.byteOffset).getInt32(0, true))]) : ptr(v as bigint);
  }
  return plain(name, v);
}

/** VFIO_DEVICE_SET_IRQS: the eventfds or booleans after the header. */
function irqSetData(v: Record<string, unknown>, before: Uint8Array): TVal | null {
  const type = (v.flags as number) & V.VFIO_IRQ_SET_DATA_TYPE_MASK;
  const count = Math.min(v.count as number, 64);
  const base = V.vfio_irq_set.size;
  if (type === V.VFIO_IRQ_SET_DATA_EVENTFD) {
    if (before.length < base + count * 4) return null;
    const dv = new DataView(before.buffer, before.byteOffset);
    return arr(Array.from({ length: count }, (_, i) => int(dv.getInt32(base + i * 4, true))));
  }
  if (type === V.VFIO_IRQ_SET_DATA_BOOL) {
    if (before.length < base + count) return null;
    return arr(Array.from(before.subarray(base, base + count), (x) => int(x)));
  }
  return null;
}

/** An array of struct iommu_iova_range at `addr` (at most 16 shown, then "..."). */
function ioasRanges(mem: UserMem, addr: number, n: number): TVal | null {
  const shown = Math.min(n, 16);
  const b = mem.read(addr, shown * I.iommu_iova_range.size);
  if (!b) return null;
  const items: TVal[] = [];
  for (let i = 0; i < shown; i++) {
    const r = I.iommu_iova_range.decode(b, i * I.iommu_iova_range.size);
    items.push(
      struct([
        ["start", hex(r.start)],
        ["last", hex(r.last)],
      ]),
    );
  }
  if (n > shown) items.push(sym("..."));
  return arr(items);
}

/**
 * Requests the decoder knows that the ioctl registry does not list: IOMMU_TEST_CMD, the
 * back door of CONFIG_IOMMUFD_TEST (the selftest's). The registry is the uAPI proper (the
 * conformance tests walk it, the fuzzer adds the test command on its own), so the command
 * stays out of it; a trace of the kernel's selftest wants it decoded all the same.
 */
const DECODER_ONLY: readonly IoctlDef[] = [
  { name: "IOMMU_TEST_CMD", nr: T.IOMMU_TEST_CMD, arg: T.iommu_test_cmd, subsys: "iommufd" },
];

/** The decoder's own definition of a request the registry does not have (see DECODER_ONLY). */
export function decoderOnlyIoctl(cmd: number): IoctlDef | undefined {
  return DECODER_ONLY.find((d) => d.nr === cmd >>> 0);
}

const TEST_OPS = table(T, "IOMMU_TEST_OP_");

/** Each op's member of iommu_test_cmd's union (iommufd_test.h), its struct and flag tables. */
const TEST_MEMBERS = new Map<
  number,
  { name: string; desc: StructDesc<any>; fields?: number; fmt?: Record<string, FieldFmt> }
>([
  [T.IOMMU_TEST_OP_ADD_RESERVED, { name: "add_reserved", desc: T.test_add_reserved }],
  // mock_domain is mock_domain_flags without dev_flags
  [T.IOMMU_TEST_OP_MOCK_DOMAIN, { name: "mock_domain", desc: T.test_mock_domain, fields: 3 }],
  [
    T.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
    { name: "mock_domain_flags", desc: T.test_mock_domain, fmt: { dev_flags: F(table(T, "MOCK_FLAGS_DEVICE_")) } },
  ],
  [T.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, { name: "mock_domain_replace", desc: T.test_mock_domain_replace }],
  [T.IOMMU_TEST_OP_MD_CHECK_MAP, { name: "check_map", desc: T.test_check_map, fmt: { length: { kind: "int" } } }],
  [T.IOMMU_TEST_OP_MD_CHECK_REFS, { name: "check_refs", desc: T.test_check_refs, fmt: { length: { kind: "int" } } }],
  [
    T.IOMMU_TEST_OP_CREATE_ACCESS,
    {
      name: "create_access",
      desc: T.test_create_access,
      fmt: {
        out_access_fd: FD,
        flags: F([["MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES", T.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES]]),
      },
    },
  ],
  [T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, { name: "destroy_access_pages", desc: T.test_destroy_access_pages }],
  [
    T.IOMMU_TEST_OP_ACCESS_PAGES,
    {
      name: "access_pages",
      desc: T.test_access_pages,
      fmt: {
        flags: F([
          ["MOCK_FLAGS_ACCESS_WRITE", T.MOCK_FLAGS_ACCESS_WRITE],
          ["MOCK_FLAGS_ACCESS_SYZ", T.MOCK_FLAGS_ACCESS_SYZ],
        ]),
        length: { kind: "int" },
      },
    },
  ],
  [
    T.IOMMU_TEST_OP_ACCESS_RW,
    {
      name: "access_rw",
      desc: T.test_access_rw,
      fmt: {
        flags: F([
          ["MOCK_ACCESS_RW_WRITE", T.MOCK_ACCESS_RW_WRITE],
          ["MOCK_ACCESS_RW_SLOW_PATH", T.MOCK_ACCESS_RW_SLOW_PATH],
        ]),
        length: { kind: "int" },
      },
    },
  ],
  [T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, { name: "memory_limit", desc: T.test_memory_limit }],
  [T.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, { name: "access_replace_ioas", desc: T.test_access_replace_ioas }],
  [
    T.IOMMU_TEST_OP_DIRTY,
    {
      name: "dirty",
      desc: T.test_dirty,
      fmt: { length: { kind: "int" }, page_size: { kind: "int" }, out_nr_dirty: { kind: "int" } },
    },
  ],
  [T.IOMMU_TEST_OP_MD_CHECK_IOTLB, { name: "check_iotlb", desc: T.test_check_iotlb }],
  [T.IOMMU_TEST_OP_TRIGGER_IOPF, { name: "trigger_iopf", desc: T.test_trigger_iopf, fmt: { addr: HEX } }],
]);

/**
 * IOMMU_TEST_CMD: the header, op by name, then the union member the op reads (its out_ fields
 * after a successful call, fields the kernel changed as `in => out`), then `last`. An op the
 * twin does not know shows the union as its six u64 words.
 */
function testCmdArg(before: Uint8Array, after: Uint8Array | null, ok: boolean, ctx: IoctlContext, mem: UserMem): TVal {
  const h = T.iommu_test_cmd.decode(before);
  const member = TEST_MEMBERS.get(h.op);
  const fields: [string, TVal][] = [
    ["size", int(h.size)],
    ["op", enumVal(TEST_OPS, h.op)],
    ["id", int(h.id)],
    ["__reserved", int(h.__reserved)],
  ];
  const changed: [string, TVal][] = [];
  if (member) {
    const at = T.TEST_CMD_UNION_OFFSET;
    const spec: StructSpec = { ...(member.fmt ? { fmt: member.fmt } : {}) };
    const b = member.desc.decode(before.subarray(at)) as Record<string, unknown>;
    const a = after ? (member.desc.decode(after.subarray(at)) as Record<string, unknown>) : b;
    const inner: [string, TVal][] = [];
    const innerChanged: [string, TVal][] = [];
    for (const f of member.desc.fields.slice(0, member.fields ?? member.desc.fields.length)) {
      if (f.name.startsWith("out_")) {
        if (ok) inner.push([f.name, fieldVal(member.desc, f.name, a[f.name], spec, ctx, a, mem)]);
        continue;
      }
      inner.push([f.name, fieldVal(member.desc, f.name, b[f.name], spec, ctx, b, mem)]);
      if (ok && !same(b[f.name], a[f.name]))
        innerChanged.push([f.name, fieldVal(member.desc, f.name, a[f.name], spec, ctx, a, mem)]);
    }
    fields.push([member.name, struct(inner)]);
    if (innerChanged.length) changed.push([member.name, struct(innerChanged)]);
  } else fields.push(["data", arr(h.data.map((x) => hex(x)))]);
  fields.push(["last", int(h.last)]);
  if (ok && after) {
    const a = T.iommu_test_cmd.decode(after);
    if (a.id !== h.id) changed.unshift(["id", int(a.id)]);
  }
  const s = struct(fields);
  return changed.length ? { k: "change", from: s, to: struct(changed) } : s;
}

const REGION_CAPS: FlagTable = [
  ["VFIO_REGION_INFO_CAP_SPARSE_MMAP", 1],
  ["VFIO_REGION_INFO_CAP_TYPE", 2],
  ["VFIO_REGION_INFO_CAP_MSIX_MAPPABLE", 3],
];
const IOMMU_CAPS: FlagTable = [
  ["VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE", V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE],
  ["VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION", V.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION],
  ["VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL", V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL],
];

/**
 * The capability chain of a successful VFIO_IOMMU_GET_INFO or VFIO_DEVICE_GET_REGION_INFO
 * (vfio_info_cap_header entries linked by `next`, offsets from the struct's start; strace does
 * not decode it): each entry's header, the id by name, and the body of the ones the twin
 * knows. Null when the kernel wrote none (no CAPS flag, cap_offset 0: argsz was too small).
 */
function capChain(name: string, mem: UserMem, arg: number, out: Record<string, unknown>, argsz: number): TVal | null {
  const iommu = name === "VFIO_IOMMU_GET_INFO";
  const capsFlag = iommu ? V.VFIO_IOMMU_INFO_CAPS : V.VFIO_REGION_INFO_FLAG_CAPS;
  const first = out.cap_offset as number;
  if (!((out.flags as number) & capsFlag) || first === 0) return null;
  const buf = mem.read(arg, argsz);
  if (!buf) return null;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u64 = (o: number) => (o + 8 <= buf.length ? dv.getBigUint64(o, true) : 0n);
  const u32 = (o: number) => (o + 4 <= buf.length ? dv.getUint32(o, true) : 0);
  const items: TVal[] = [];
  const seen = new Set<number>();
  for (let off = first; off !== 0 && off + 8 <= buf.length && !seen.has(off) && items.length < 16;) {
    seen.add(off);
    const id = dv.getUint16(off, true);
    const next = u32(off + 4);
    const f: [string, TVal][] = [
      ["id", enumVal(iommu ? IOMMU_CAPS : REGION_CAPS, id)],
      ["version", int(dv.getUint16(off + 2, true))],
      ["next", int(next)],
    ];
    const body = off + 8;
    if (iommu && id === V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
      const n = u32(body);
      f.push(["nr_iovas", int(n)], ["reserved", int(u32(body + 4))]);
      const ranges: TVal[] = [];
      for (let i = 0; i < Math.min(n, 16); i++) {
        const r = body + 8 + i * 16;
        ranges.push(
          struct([
            ["start", hex(u64(r))],
            ["end", hex(u64(r + 8))],
          ]),
        );
      }
      if (n > 16) ranges.push(sym("..."));
      f.push(["iova_ranges", arr(ranges)]);
    } else if (iommu && id === V.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
      f.push(
        ["flags", hex(u32(body))],
        ["pgsize_bitmap", hex(u64(body + 8))],
        ["max_dirty_bitmap_size", int(u64(body + 16))],
      );
    } else if (iommu && id === V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
      f.push(["avail", int(u32(body))]);
    } else if (!iommu && id === 1) {
      const n = u32(body);
      const areas: TVal[] = [];
      for (let i = 0; i < Math.min(n, 16); i++)
        areas.push(
          struct([
            ["offset", hex(u64(body + 8 + i * 16))],
            ["size", int(u64(body + 16 + i * 16))],
          ]),
        );
      f.push(["nr_areas", int(n)], ["reserved", int(u32(body + 4))], ["areas", arr(areas)]);
    } else if (!iommu && id === 2) {
      f.push(["type", int(u32(body))], ["subtype", int(u32(body + 4))]);
    }
    items.push(struct(f));
    off = next;
  }
  return items.length ? arr(items) : null;
}

/** How many bytes past the struct to copy before the call (the irq set's data). */
export function ioctlExtraBytes(def: IoctlDef): number {
  return def.name === "VFIO_DEVICE_SET_IRQS" ? 64 * 4 : 0;
}

/**
 * A struct argument: `before` is what userspace passed (null when unreadable), `after` what
 * the kernel left there; `ok` says whether the call succeeded (out fields are shown only then).
 */
export function ioctlStructArg(
  def: IoctlDef,
  desc: StructDesc<any>,
  arg: number,
  before: Uint8Array | null,
  after: Uint8Array | null,
  ok: boolean,
  ctx: IoctlContext,
  mem: UserMem,
): TVal {
  if (!before) return ptr(arg);
  if (desc === T.iommu_test_cmd) return testCmdArg(before, after, ok, ctx, mem);
  const spec = SPECS.get(desc);
  const out = new Set(spec?.out ?? desc.fields.filter((f) => f.name.startsWith("out_")).map((f) => f.name));
  const b = desc.decode(before) as Record<string, unknown>;
  const a = after ? (desc.decode(after) as Record<string, unknown>) : b;
  const fields: [string, TVal][] = [];
  const changed: [string, TVal][] = [];
  for (const f of desc.fields) {
    if (out.has(f.name)) {
      if (ok) fields.push([f.name, fieldVal(desc, f.name, a[f.name], spec, ctx, a, mem)]);
      continue;
    }
    fields.push([f.name, fieldVal(desc, f.name, b[f.name], spec, ctx, b, mem)]);
    if (ok && !same(b[f.name], a[f.name])) changed.push([f.name, fieldVal(desc, f.name, a[f.name], spec, ctx, a, mem)]);
  }
  if (def.name === "IOMMU_IOAS_ALLOW_IOVAS" || (def.name === "IOMMU_IOAS_IOVA_RANGES" && ok)) {
    // the ranges behind allowed_iovas: what userspace passed, or what the kernel wrote
    const v = def.name === "IOMMU_IOAS_ALLOW_IOVAS" ? b : a;
    const i = fields.findIndex(([n]) => n === "allowed_iovas");
    const ranges = ioasRanges(mem, Number(v.allowed_iovas), v.num_iovas as number);
    if (i >= 0 && ranges) fields[i] = ["allowed_iovas", ranges];
  }
  if (def.name === "VFIO_DEVICE_SET_IRQS") {
    const data = irqSetData(b, before);
    if (data) fields.push(["data", data]);
  }
  if (ok && (def.name === "VFIO_IOMMU_GET_INFO" || def.name === "VFIO_DEVICE_GET_REGION_INFO")) {
    // the twin's extension: the capability chain the kernel wrote after the struct
    const caps = capChain(def.name, mem, arg, a, Math.min(b.argsz as number, 4096));
    if (caps) fields.push(["caps", caps]);
  }
  const s = struct(fields);
  return changed.length ? { k: "change", from: s, to: struct(changed) } : s;
}

function same(x: unknown, y: unknown): boolean {
  if (x instanceof Uint8Array && y instanceof Uint8Array) return x.length === y.length && x.every((v, i) => v === y[i]);
  if (typeof x === "object" && x !== null) return JSON.stringify(x, big) === JSON.stringify(y, big);
  return x === y;
}

function big(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? String(v) : v;
}
