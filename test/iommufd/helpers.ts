// Shared set-up for the iommufd tests: a twin, a process with /dev/iommu open and a 1 MiB
// buffer, raw ioctl staging, and the closing check every test runs (all invariants hold
// while open, and after the process exits nothing of iommufd is left alive).

import assert from "node:assert/strict";
import { createTwin, type Twin, type TwinProcess } from "../../src/twin.js";
import { TypedProcess } from "../../src/vmm/typed.js";
import { checkInvariants, formatViolations } from "../../src/check/invariants.js";
import type { StructDesc } from "../../src/uapi/struct.js";
import * as U from "../../src/uapi/iommufd.js";
import * as V from "../../src/uapi/vfio.js";

export interface Env {
  twin: Twin;
  p: TwinProcess;
  tp: TypedProcess;
  fd: number;
  buf: number;
}

export function setup(opts: { memlock?: number; caps?: number[] } = {}): Env {
  const twin = createTwin({ kvm: false });
  const p = twin.spawn(opts);
  const tp = new TypedProcess(p);
  const fd = p.open("/dev/iommu");
  assert.ok(fd >= 0);
  const buf = p.mmap(1 << 20);
  assert.ok(buf > 0);
  return { twin, p, tp, fd, buf };
}

export function checkAll(e: Env): void {
  const k = e.twin.kernel;
  // checkInvariants() runs iommufd's own checks too (registered in Kernel.checks)
  const v = checkInvariants(k).map((x) => `[${x.check}] ${x.message}`);
  assert.ok(k.checks.has("iommufd"), "iommufd registers its invariants");
  assert.deepEqual(v, [], v.join("\n") || formatViolations([]));
}

/** Closing check: invariants now, then exit the process and find nothing left over. */
export function teardown(e: Env): void {
  checkAll(e);
  e.twin.kill(e.p);
  const k = e.twin.kernel;
  const left = [...k.objects].filter(
    (o) => o.kind.startsWith("iommufd") || (o.kind === "file" && /iommu/.test(o.describe())),
  );
  assert.deepEqual(
    left.map((o) => o.describe()),
    [],
  );
  checkAll(e);
  for (const u of k.users.values()) assert.equal(u.lockedVm, 0, "user locked_vm after exit");
}

/** Stage a struct (size bytes, default sizeof) in scratch memory, call, decode the result. */
export function raw<V>(
  e: Env,
  req: number,
  desc: StructDesc<V>,
  value: Partial<V>,
  size = desc.size,
  tail?: Uint8Array,
): { rc: number; out: V; bytes: Uint8Array } {
  const len = Math.max(size, desc.size) + (tail?.length ?? 0);
  const b = new Uint8Array(len);
  desc.encodeInto(b.subarray(0, Math.max(size, desc.size)), value);
  if (tail) b.set(tail, Math.max(size, desc.size));
  const addr = e.tp.scratchAddr();
  e.p.write(addr, b);
  const rc = e.p.ioctl(e.fd, req, addr);
  const back = e.p.read(addr, len);
  return { rc, out: desc.decode(back), bytes: back };
}

export const RW = U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE;
export const FIXED = U.IOMMU_IOAS_MAP_FIXED_IOVA;

export function ioasAlloc(e: Env): number {
  const r = raw(e, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: U.iommu_ioas_alloc.size });
  assert.equal(r.rc, 0);
  return r.out.out_ioas_id;
}

export function map(
  e: Env,
  ioas: number,
  iova: bigint,
  length: bigint,
  opts: { flags?: number; va?: number | bigint } = {},
): { rc: number; iova: bigint } {
  const r = raw(e, U.IOMMU_IOAS_MAP, U.iommu_ioas_map, {
    size: U.iommu_ioas_map.size,
    flags: opts.flags ?? FIXED | RW,
    ioas_id: ioas,
    user_va: BigInt(opts.va ?? e.buf),
    length,
    iova,
  });
  return { rc: r.rc, iova: r.out.iova };
}

export function unmap(e: Env, ioas: number, iova: bigint, length: bigint): { rc: number; length: bigint } {
  const r = raw(e, U.IOMMU_IOAS_UNMAP, U.iommu_ioas_unmap, {
    size: U.iommu_ioas_unmap.size,
    ioas_id: ioas,
    iova,
    length,
  });
  return { rc: r.rc, length: r.out.length };
}

export function destroy(e: Env, id: number): number {
  return raw(e, U.IOMMU_DESTROY, U.iommu_destroy, { size: 8, id }).rc;
}

export function ranges(
  e: Env,
  ioas: number,
  num: number,
): { rc: number; num: number; align: bigint; list: [bigint, bigint][] } {
  const arr = e.tp.scratchAddr() + 0x8000;
  e.p.write(arr, new Uint8Array(16 * Math.max(num, 1)));
  const r = raw(e, U.IOMMU_IOAS_IOVA_RANGES, U.iommu_ioas_iova_ranges, {
    size: U.iommu_ioas_iova_ranges.size,
    ioas_id: ioas,
    num_iovas: num,
    allowed_iovas: BigInt(arr),
  });
  const list: [bigint, bigint][] = [];
  const b = e.p.read(arr, 16 * Math.max(num, 1));
  const dv = new DataView(b.buffer);
  for (let i = 0; i < Math.min(num, r.out.num_iovas); i++)
    list.push([dv.getBigUint64(16 * i, true), dv.getBigUint64(16 * i + 8, true)]);
  return { rc: r.rc, num: r.out.num_iovas, align: r.out.out_iova_alignment, list };
}

/** IOMMU_IOAS_ALLOW_IOVAS with `list` staged as an iommu_iova_range array in scratch memory. */
export function allowIovas(e: Env, ioas: number, list: [bigint, bigint][]): number {
  const arr = e.tp.scratchAddr() + 0x8000;
  const b = new Uint8Array(16 * Math.max(1, list.length));
  const dv = new DataView(b.buffer);
  list.forEach(([s, l], i) => {
    dv.setBigUint64(16 * i, s, true);
    dv.setBigUint64(16 * i + 8, l, true);
  });
  e.p.write(arr, b);
  return raw(e, U.IOMMU_IOAS_ALLOW_IOVAS, U.iommu_ioas_allow_iovas, {
    size: U.iommu_ioas_allow_iovas.size,
    ioas_id: ioas,
    num_iovas: list.length,
    allowed_iovas: BigInt(arr),
  }).rc;
}

/** The oracle's `raw`: a zeroed scratch buffer with some fields set, the call, some fields read. */
export function rawFields(
  e: Env,
  req: number,
  set: [string, number, number | bigint][],
  arg?: number,
  fd = e.fd,
): { rc: number; get: (t: string, off: number) => bigint } {
  const scr = e.tp.scratchAddr();
  const b = new Uint8Array(4096);
  const dv = new DataView(b.buffer);
  for (const [t, off, v] of set) {
    if (t === "u8") dv.setUint8(off, Number(v));
    else if (t === "u16") dv.setUint16(off, Number(v), true);
    else if (t === "u32") dv.setUint32(off, Number(v), true);
    else dv.setBigUint64(off, BigInt(v), true);
  }
  e.p.write(scr, b);
  const rc = e.p.ioctl(fd, req, arg ?? scr);
  const back = new DataView(e.p.read(scr, 4096).buffer);
  return {
    rc,
    get: (t, off) =>
      t === "u8"
        ? BigInt(back.getUint8(off))
        : t === "u16"
          ? BigInt(back.getUint16(off, true))
          : t === "u32"
            ? BigInt(back.getUint32(off, true))
            : back.getBigUint64(off, true),
  };
}

/**
 * VFIO_DEVICE_BIND_IOMMUFD on the device cdev d (argsz 16, flags 0, the iommufd), with extra
 * fields set on top; the devid the kernel wrote back (drivers/vfio/device_cdev.c).
 */
export function bindIommufd(
  e: Env,
  d: number,
  iommufd = e.fd,
  set: [string, number, number][] = [],
): { rc: number; devid: number } {
  const r = rawFields(e, V.VFIO_DEVICE_BIND_IOMMUFD, [["u32", 0, 16], ["u32", 8, iommufd >>> 0], ...set], undefined, d);
  return { rc: r.rc, devid: Number(r.get("u32", 12)) };
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT (argsz 12, flags, pt_id); the pt_id the kernel wrote back. */
export function attachPt(e: Env, d: number, pt: number, flags = 0): { rc: number; pt: number } {
  const r = rawFields(
    e,
    V.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
    [
      ["u32", 0, 12],
      ["u32", 4, flags],
      ["u32", 8, pt],
    ],
    undefined,
    d,
  );
  return { rc: r.rc, pt: Number(r.get("u32", 8)) };
}
