// Test helpers: a twin with the oracle's machine, a process with scratch memory, and raw
// ioctls with structs staged in user memory (as a C program passes a stack struct).

import { createTwin, type Twin, type TwinConfig, type TwinProcess } from "../../src/twin.js";
import type { StructDesc } from "../../src/uapi/struct.js";
import * as V from "../../src/uapi/vfio.js";
import { KVM_GATED_MDEV_UUID } from "../../src/vfio/mdev/kvm_gated_mdev.js";

export const BDF = "0000:00:01.0";

export interface Env {
  twin: Twin;
  p: TwinProcess;
  /** 64 KiB scratch for ioctl arguments */
  scr: number;
  /** 1 MiB read/write buffer */
  buf: number;
}

export function env(cfg: TwinConfig = {}, memlock?: number): Env {
  const twin = createTwin(cfg);
  const p = twin.spawn(memlock !== undefined ? { memlock } : {});
  const scr = p.mmap(64 * 1024);
  const buf = p.mmap(1 << 20);
  return { twin, p, scr, buf };
}

export function call<T>(
  e: { p: TwinProcess; scr: number },
  fd: number,
  req: number,
  desc: StructDesc<T>,
  value: Partial<T>,
  opts: { size?: number; extra?: Uint8Array; at?: number } = {},
): { rc: number; out: T; bytes: Uint8Array } {
  const addr = opts.at ?? e.scr;
  const size = Math.max(opts.size ?? desc.size, desc.size);
  const b = new Uint8Array(size + (opts.extra?.length ?? 0) + 512);
  desc.encodeInto(b, value);
  if (opts.extra) b.set(opts.extra, size);
  e.p.write(addr, b);
  const rc = e.p.ioctl(fd, req, addr);
  const back = e.p.read(addr, b.length);
  return { rc, out: desc.decode(back), bytes: back };
}

export function s32(e: { p: TwinProcess; scr: number }, v: number, off = 0x800): number {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  e.p.write(e.scr + off, b);
  return e.scr + off;
}

export function str(e: { p: TwinProcess; scr: number }, s: string, off = 0x900): number {
  e.p.write(e.scr + off, new Uint8Array([...Buffer.from(s), 0]));
  return e.scr + off;
}

export function map(e: Env, c: number, vaddr: number, iova: bigint, size: bigint, flags = 3): number {
  return call(e, c, V.VFIO_IOMMU_MAP_DMA, V.vfio_iommu_type1_dma_map, {
    argsz: V.vfio_iommu_type1_dma_map.size,
    flags,
    vaddr: BigInt(vaddr),
    iova,
    size,
  }).rc;
}

export function unmap(e: Env, c: number, iova: bigint, size: bigint, flags = 0): { rc: number; size: bigint } {
  const r = call(e, c, V.VFIO_IOMMU_UNMAP_DMA, V.vfio_iommu_type1_dma_unmap, {
    argsz: V.vfio_iommu_type1_dma_unmap.size,
    flags,
    iova,
    size,
  });
  return { rc: r.rc, size: r.out.size };
}

/** A TYPE1v2 container on the KVM-gated mdev's emulated group: no IOMMU domain, so no
 * aperture and nothing pinned (mappings anywhere up to 2^64 - 1). */
export function mdevContainer(): { e: Env; c: number } {
  const e = env();
  if (e.twin.kernel.modules.load("vfio_kvm_gated_mdev") !== 0) throw new Error("vfio_kvm_gated_mdev");
  const link = e.p.readlink(`/sys/bus/mdev/devices/${KVM_GATED_MDEV_UUID}/iommu_group`) as string;
  const { c } = legacy(e, `/dev/vfio/${link.split("/").pop()}`);
  return { e, c };
}

/** open container + group, SET_CONTAINER, SET_IOMMU(TYPE1v2); returns the fds. */
export function legacy(e: Env, group = "/dev/vfio/1"): { c: number; g: number } {
  const c = e.p.open("/dev/vfio/vfio");
  const g = e.p.open(group);
  if (c < 0 || g < 0) throw new Error(`open: ${c} ${g}`);
  let rc = e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c));
  if (rc < 0) throw new Error(`SET_CONTAINER ${rc}`);
  rc = e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU);
  if (rc < 0) throw new Error(`SET_IOMMU ${rc}`);
  return { c, g };
}

export function deviceFd(e: Env, g: number, name = BDF): number {
  return e.p.ioctl(g, V.VFIO_GROUP_GET_DEVICE_FD, str(e, name));
}
