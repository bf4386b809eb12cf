// The legacy VFIO setup a VMM performs (QEMU's hw/vfio/container.c vfio_connect_container()
// and vfio_get_device()), as a library over the typed client: find the device's IOMMU group
// in sysfs, open the container and check the API, open the group and check it is viable,
// attach it, choose the IOMMU type, read the IOMMU info, map guest memory, get the device
// fd and read its device, region and IRQ info. Works on any Backend (twin or host).
//
// Every failing step throws Errno (from src/uapi/errno.ts) naming the call.

import type { UserProcess } from "../backend/backend.js";
import { Errno, EINVAL, ENODEV } from "../uapi/errno.js";
import * as V from "../uapi/vfio.js";
import { TypedProcess } from "./typed.js";

export interface IovaRange {
  start: bigint;
  end: bigint;
}

export interface Type1Info {
  flags: number;
  pgsizes: bigint;
  iovaRanges: IovaRange[];
  dmaAvail: number | null;
  migration: { pgsizeBitmap: bigint; maxDirtyBitmapSize: bigint } | null;
}

export interface RegionInfo {
  index: number;
  flags: number;
  size: bigint;
  offset: bigint;
}

export interface IrqInfo {
  index: number;
  flags: number;
  count: number;
}

export interface DmaMap {
  vaddr: number;
  iova: bigint;
  size: bigint;
  /** VFIO_DMA_MAP_FLAG_READ | WRITE (default both) */
  flags?: number;
}

export interface LegacySetupOptions {
  /** the device's name in its group (the PCI BDF) */
  device: string;
  /** /dev/vfio/<n>; default: found through /sys/bus/pci/devices/<bdf>/iommu_group */
  groupPath?: string;
  /** VFIO_TYPE1v2_IOMMU (default) or VFIO_TYPE1_IOMMU */
  iommuType?: number;
  maps?: DmaMap[];
}

export interface LegacySession {
  container: number;
  group: number;
  device: number;
  groupPath: string;
  iommu: Type1Info;
  deviceFlags: number;
  regions: RegionInfo[];
  irqs: IrqInfo[];
}

/** The group node of a PCI device: the basename of its iommu_group link. */
export function groupPathOf(p: UserProcess, bdf: string): string {
  const l = p.readlink(`/sys/bus/pci/devices/${bdf}/iommu_group`);
  if (typeof l === "number") throw new Errno(-l, `readlink(${bdf}/iommu_group)`);
  return `/dev/vfio/${l.split("/").pop()}`;
}

/** VFIO_IOMMU_GET_INFO twice (size, then the whole capability chain), decoded. */
export function type1Info(t: TypedProcess, container: number): Type1Info {
  const desc = V.vfio_iommu_type1_info;
  const first = t.ioctl(container, V.VFIO_IOMMU_GET_INFO, desc, { argsz: desc.size });
  const argsz = Math.max(first.argsz, desc.size);
  const r = t.ioctlFull(container, V.VFIO_IOMMU_GET_INFO, desc, { argsz }, { extraLen: argsz - desc.size });
  const out: Type1Info = {
    flags: r.value.flags,
    pgsizes: r.value.iova_pgsizes,
    iovaRanges: [],
    dmaAvail: null,
    migration: null,
  };
  const dv = new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
  for (let off = r.value.cap_offset, n = 0; off && n < 32; n++) {
    const id = dv.getUint16(off, true);
    if (id === V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
      const nr = dv.getUint32(off + 8, true);
      for (let i = 0; i < nr; i++)
        out.iovaRanges.push({
          start: dv.getBigUint64(off + 16 + 16 * i, true),
          end: dv.getBigUint64(off + 24 + 16 * i, true),
        });
    } else if (id === V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) out.dmaAvail = dv.getUint32(off + 8, true);
    else if (id === V.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)
      out.migration = {
        pgsizeBitmap: dv.getBigUint64(off + 16, true),
        maxDirtyBitmapSize: dv.getBigUint64(off + 24, true),
      };
    off = dv.getUint32(off + 4, true);
  }
  return out;
}

export function mapDma(t: TypedProcess, container: number, m: DmaMap): void {
  t.ioctl(container, V.VFIO_IOMMU_MAP_DMA, V.vfio_iommu_type1_dma_map, {
    argsz: V.vfio_iommu_type1_dma_map.size,
    flags: m.flags ?? V.VFIO_DMA_MAP_FLAG_READ | V.VFIO_DMA_MAP_FLAG_WRITE,
    vaddr: BigInt(m.vaddr),
    iova: m.iova,
    size: m.size,
  });
}

/** UNMAP_DMA: the bytes unmapped. */
export function unmapDma(t: TypedProcess, container: number, iova: bigint, size: bigint, flags = 0): bigint {
  const d = V.vfio_iommu_type1_dma_unmap;
  return t.ioctl(container, V.VFIO_IOMMU_UNMAP_DMA, d, { argsz: d.size, flags, iova, size }).size;
}

export function getDeviceFd(t: TypedProcess, group: number, name: string): number {
  const addr = t.stage(new Uint8Array([...new TextEncoder().encode(name), 0]), 0x8000);
  return t.ioctlInt(group, V.VFIO_GROUP_GET_DEVICE_FD, addr);
}

/** The whole legacy flow. On failure every fd it opened is closed before the Errno is rethrown. */
export function vfioLegacySetup(p: UserProcess, o: LegacySetupOptions): LegacySession {
  const t = new TypedProcess(p);
  const opened: number[] = [];
  try {
    const container = t.open("/dev/vfio/vfio");
    opened.push(container);
    if (t.ioctlInt(container, V.VFIO_GET_API_VERSION) !== V.VFIO_API_VERSION)
      throw new Errno(EINVAL, "VFIO_GET_API_VERSION");
    const type = o.iommuType ?? V.VFIO_TYPE1v2_IOMMU;
    if (t.ioctlInt(container, V.VFIO_CHECK_EXTENSION, type) !== 1) throw new Errno(EINVAL, "VFIO_CHECK_EXTENSION");
    const groupPath = o.groupPath ?? groupPathOf(p, o.device);
    const group = t.open(groupPath);
    opened.push(group);
    const st = t.ioctl(group, V.VFIO_GROUP_GET_STATUS, V.vfio_group_status, { argsz: V.vfio_group_status.size });
    if (!(st.flags & V.VFIO_GROUP_FLAGS_VIABLE)) throw new Errno(ENODEV, `${groupPath} is not viable`);
    t.ioctlInt(group, V.VFIO_GROUP_SET_CONTAINER, t.stage(s32(container), 0x8100));
    t.ioctlInt(container, V.VFIO_SET_IOMMU, type);
    const iommu = type1Info(t, container);
    for (const m of o.maps ?? []) mapDma(t, container, m);
    const device = getDeviceFd(t, group, o.device);
    opened.push(device);
    const di = t.ioctl(device, V.VFIO_DEVICE_GET_INFO, V.vfio_device_info, { argsz: V.vfio_device_info.size });
    const regions: RegionInfo[] = [];
    for (let index = 0; index < di.num_regions; index++) {
      try {
        const r = t.ioctl(device, V.VFIO_DEVICE_GET_REGION_INFO, V.vfio_region_info, {
          argsz: V.vfio_region_info.size,
          index,
        });
        regions.push({ index, flags: r.flags, size: r.size, offset: r.offset });
      } catch (err) {
        // absent optional regions (VGA) answer EINVAL, as QEMU tolerates
        if (!(err instanceof Errno) || err.errno !== EINVAL) throw err;
      }
    }
    const irqs: IrqInfo[] = [];
    for (let index = 0; index < di.num_irqs; index++) {
      try {
        const r = t.ioctl(device, V.VFIO_DEVICE_GET_IRQ_INFO, V.vfio_irq_info, { argsz: V.vfio_irq_info.size, index });
        irqs.push({ index, flags: r.flags, count: r.count });
      } catch (err) {
        if (!(err instanceof Errno) || err.errno !== EINVAL) throw err;
      }
    }
    return { container, group, device, groupPath, iommu, deviceFlags: di.flags, regions, irqs };
  } catch (err) {
    for (const fd of opened.reverse()) p.close(fd);
    throw err;
  }
}

/** Close a session's fds, device first (what a VMM does at exit). */
export function vfioLegacyTeardown(p: UserProcess, s: LegacySession): void {
  p.close(s.device);
  p.close(s.group);
  p.close(s.container);
}

function s32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}
