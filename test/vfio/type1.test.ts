// vfio_iommu_type1 through the container fd: GET_INFO, MAP_DMA and UNMAP_DMA rules, memlock
// accounting. Expected values are what the oracle kernel answered (shared/oracle/README.md and
// the scenarios noted in the report).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";
import { EACCES, EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM } from "../../src/uapi/errno.js";
import { CAP_IPC_LOCK } from "../../src/kernel/process.js";
import { checkVfioInvariants, checkVfioQuiescent } from "../../src/check/vfio_invariants.js";
import { call, env, legacy, map, mdevContainer, s32, unmap } from "./helpers.js";

const R = V.VFIO_DMA_MAP_FLAG_READ;
const W = V.VFIO_DMA_MAP_FLAG_WRITE;
const RW = R | W;
const VADDR = V.VFIO_DMA_MAP_FLAG_VADDR;

function setup(memlock?: number, type = V.VFIO_TYPE1v2_IOMMU) {
  const e = env({}, memlock);
  const c = e.p.open("/dev/vfio/vfio");
  const g = e.p.open("/dev/vfio/1");
  assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
  assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, type), 0);
  return { e, c, g };
}

function parseCaps(bytes: Uint8Array, first: number): Record<number, DataView> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const out: Record<number, DataView> = {};
  let off = first;
  while (off) {
    out[dv.getUint16(off, true)] = new DataView(bytes.buffer, bytes.byteOffset + off);
    off = dv.getUint32(off + 4, true);
  }
  return out;
}

describe("VFIO_IOMMU_GET_INFO", () => {
  it("flags, page sizes and the capability chain (migration, dma_avail, iova ranges)", () => {
    const { e, c } = setup();
    const r = call(e, c, V.VFIO_IOMMU_GET_INFO, V.vfio_iommu_type1_info, { argsz: 4096 });
    assert.equal(r.rc, 0);
    assert.equal(r.out.flags, V.VFIO_IOMMU_INFO_PGSIZES | V.VFIO_IOMMU_INFO_CAPS);
    assert.equal(r.out.iova_pgsizes, 0x40201000n);
    assert.equal(r.out.argsz, 4096);
    assert.equal(r.out.cap_offset, 24);
    const caps = parseCaps(r.bytes, r.out.cap_offset);
    const order: number[] = [];
    for (let off = r.out.cap_offset; off; off = new DataView(r.bytes.buffer).getUint32(off + 4, true))
      order.push(new DataView(r.bytes.buffer).getUint16(off, true));
    assert.deepEqual(order, [2, 3, 1]);
    assert.equal(caps[2]!.getBigUint64(16, true), 0x1000n);
    assert.equal(caps[2]!.getBigUint64(24, true), 0x10000000n);
    assert.equal(caps[3]!.getUint32(8, true), 65535);
    const ranges = caps[1]!;
    assert.equal(ranges.getUint32(8, true), 2);
    assert.deepEqual(
      [16, 24, 32, 40].map((o) => ranges.getBigUint64(o, true)),
      [0n, 0xfedfffffn, 0xfef00000n, 0x7fffffffffn],
    );
  });

  it("a buffer too small for the caps: success, argsz asks for 120, cap_offset 0, nothing past argsz", () => {
    const { e, c } = setup();
    const r = call(e, c, V.VFIO_IOMMU_GET_INFO, V.vfio_iommu_type1_info, { argsz: 24, cap_offset: 0xaaaa });
    assert.equal(r.rc, 0);
    assert.equal(r.out.argsz, 120);
    assert.equal(r.out.cap_offset, 0);
    // argsz 16: only the first 16 bytes are written back
    const r16 = call(e, c, V.VFIO_IOMMU_GET_INFO, V.vfio_iommu_type1_info, { argsz: 16, cap_offset: 0xaaaa });
    assert.equal(r16.rc, 0);
    assert.equal(r16.out.argsz, 120);
    assert.equal(r16.out.cap_offset, 0xaaaa);
    assert.equal(call(e, c, V.VFIO_IOMMU_GET_INFO, V.vfio_iommu_type1_info, { argsz: 15 }).rc, -EINVAL);
    assert.equal(e.p.ioctl(c, V.VFIO_IOMMU_GET_INFO, 0x10), -EFAULT);
  });

  it("dma_avail counts mappings", () => {
    const { e, c } = setup();
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n), 0);
    assert.equal(map(e, c, e.buf, 0x200000n, 0x1000n), 0);
    const r = call(e, c, V.VFIO_IOMMU_GET_INFO, V.vfio_iommu_type1_info, { argsz: 4096 });
    assert.equal(parseCaps(r.bytes, r.out.cap_offset)[3]!.getUint32(8, true), 65533);
  });
});

describe("VFIO_IOMMU_MAP_DMA", () => {
  it("overlaps are EEXIST (exact, head, tail, inner, superset); adjacent is fine", () => {
    const { e, c } = setup();
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), -EEXIST);
    assert.equal(map(e, c, e.buf, 0xff000n, 0x2000n), -EEXIST);
    assert.equal(map(e, c, e.buf, 0x103000n, 0x2000n), -EEXIST);
    assert.equal(map(e, c, e.buf, 0x101000n, 0x1000n), -EEXIST);
    assert.equal(map(e, c, e.buf, 0xf0000n, 0x100000n), -EEXIST);
    assert.equal(map(e, c, e.buf, 0x104000n, 0x1000n), 0);
    assert.equal(map(e, c, e.buf, 0xff000n, 0x1000n), 0);
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
  });

  it("EINVAL: alignment, size 0, no R/W, unknown flag, wraps, aperture, MSI window, short argsz", () => {
    const { e, c } = setup();
    assert.equal(map(e, c, e.buf, 0x100800n, 0x1000n), -EINVAL);
    assert.equal(map(e, c, e.buf, 0x100000n, 0x800n), -EINVAL);
    assert.equal(map(e, c, e.buf + 0x800, 0x100000n, 0x1000n), -EINVAL);
    assert.equal(map(e, c, e.buf, 0x100000n, 0n), -EINVAL);
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n, 0), -EINVAL);
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n, RW | 8), -EINVAL);
    assert.equal(map(e, c, e.buf, 0xfffffffffffff000n, 0x2000n), -EINVAL);
    assert.equal(map(e, c, e.buf, 0xfffffffffffff000n, 0x1000n), -EINVAL, "valid arithmetic, outside the aperture");
    assert.equal(map(e, c, e.buf, 0x7ffffff000n, 0x2000n), -EINVAL);
    assert.equal(map(e, c, e.buf, 0xfee00000n, 0x1000n, R), -EINVAL);
    assert.equal(map(e, c, e.buf, 0xfedff000n, 0x2000n, R), -EINVAL);
    const m = { argsz: 31, flags: RW, vaddr: BigInt(e.buf), iova: 0x100000n, size: 0x1000n };
    assert.equal(call(e, c, V.VFIO_IOMMU_MAP_DMA, V.vfio_iommu_type1_dma_map, m).rc, -EINVAL);
    assert.equal(call(e, c, V.VFIO_IOMMU_MAP_DMA, V.vfio_iommu_type1_dma_map, { ...m, argsz: 32 }).rc, 0);
    // VADDR on a mapping that was not invalidated
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n, VADDR), -EINVAL);
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n, R | VADDR), -EINVAL);
    assert.equal(e.p.ioctl(c, V.VFIO_IOMMU_MAP_DMA, 0x10), -EFAULT);
  });

  it("EFAULT: unbacked memory, write pin of read-only memory; read-only mapping of it is fine", () => {
    const { e, c } = setup();
    const ro = e.p.mmap(0x10000, { prot: 1 });
    assert.equal(map(e, c, 0x7ffffffff000, 0x100000n, 0x1000n), -EFAULT);
    const fixed = e.p.mmap(0x100000, { addr: 0x10000000 });
    assert.equal(map(e, c, fixed + 0xff000, 0x100000n, 0x2000n), -EFAULT, "second page past the buffer");
    assert.equal(e.p.proc.mm.lockedVm, 0);
    assert.equal(map(e, c, 0xfffffffffffff000, 0x100000n, 0x1000n), -EFAULT, "as the oracle: no wrap, not user memory");
    assert.equal(map(e, c, 0xfffffffffffff000, 0x100000n, 0x2000n), -EINVAL, "vaddr wrap");
    assert.equal(map(e, c, ro, 0x200000n, 0x1000n, RW), -EFAULT);
    assert.equal(map(e, c, ro, 0x200000n, 0x1000n, R), 0);
    assert.equal(e.p.proc.mm.lockedVm, 1);
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
  });

  it("VADDR: invalidate, update, and their errors", () => {
    const { e, c } = setup();
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
    assert.deepEqual(unmap(e, c, 0x100000n, 0x4000n, V.VFIO_DMA_UNMAP_FLAG_VADDR), { rc: 0, size: 0x4000n });
    assert.equal(e.p.proc.mm.lockedVm, 4, "pages stay pinned while the vaddr is invalid");
    assert.equal(map(e, c, e.buf + 0x10000, 0x100000n, 0x2000n, VADDR), -EINVAL);
    assert.equal(map(e, c, e.buf + 0x10000, 0x900000n, 0x4000n, VADDR), -ENOENT);
    assert.equal(map(e, c, e.buf + 0x10000, 0x100000n, 0x4000n, VADDR), 0);
    assert.equal(map(e, c, e.buf + 0x10000, 0x100000n, 0x4000n, VADDR), -EINVAL);
    assert.equal(unmap(e, c, 0x100000n, 0x4000n, V.VFIO_DMA_UNMAP_FLAG_VADDR).rc, 0);
    assert.equal(unmap(e, c, 0x100000n, 0x4000n, V.VFIO_DMA_UNMAP_FLAG_VADDR).rc, -EINVAL);
    assert.deepEqual(unmap(e, c, 0x100000n, 0x4000n), { rc: 0, size: 0x4000n });
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n, VADDR), -ENOENT);
    assert.equal(e.p.proc.mm.lockedVm, 0);
  });
});

describe("VFIO_IOMMU_UNMAP_DMA", () => {
  it("empty range 0/size 0; v2 bisection EINVAL; covering ranges return the total", () => {
    const { e, c } = setup();
    assert.deepEqual(unmap(e, c, 0x100000n, 0x1000n), { rc: 0, size: 0n });
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
    assert.equal(map(e, c, e.buf, 0x104000n, 0x4000n), 0);
    assert.equal(map(e, c, e.buf, 0x200000n, 0x1000n), 0);
    assert.equal(unmap(e, c, 0x101000n, 0x1000n).rc, -EINVAL);
    assert.equal(unmap(e, c, 0x100000n, 0x1000n).rc, -EINVAL);
    assert.equal(unmap(e, c, 0x103000n, 0x2000n).rc, -EINVAL);
    // a failed unmap is not copied back
    const r = call(e, c, V.VFIO_IOMMU_UNMAP_DMA, V.vfio_iommu_type1_dma_unmap, {
      argsz: 24,
      iova: 0x101000n,
      size: 0x1000n,
    });
    assert.equal(r.rc, -EINVAL);
    assert.equal(r.out.size, 0x1000n);
    assert.deepEqual(unmap(e, c, 0x100000n, 0x8000n), { rc: 0, size: 0x8000n });
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
    assert.deepEqual(unmap(e, c, 0n, 0x1000000n), { rc: 0, size: 0x5000n }, "superset with holes");
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
  });

  it("EINVAL: unaligned, size 0, wrap, unknown flag, ALL with iova/size, short argsz, dirty without tracking", () => {
    const { e, c } = setup();
    assert.equal(unmap(e, c, 0x100800n, 0x1000n).rc, -EINVAL);
    assert.equal(unmap(e, c, 0x100000n, 0x800n).rc, -EINVAL);
    assert.equal(unmap(e, c, 0x100000n, 0n).rc, -EINVAL);
    assert.equal(unmap(e, c, 0xfffffffffffff000n, 0x2000n).rc, -EINVAL);
    assert.equal(unmap(e, c, 0n, 0x1000n, 8).rc, -EINVAL);
    assert.equal(unmap(e, c, 0x1000n, 0n, V.VFIO_DMA_UNMAP_FLAG_ALL).rc, -EINVAL);
    assert.equal(unmap(e, c, 0n, 0x1000n, V.VFIO_DMA_UNMAP_FLAG_ALL).rc, -EINVAL);
    assert.equal(unmap(e, c, 0n, 0x1000n, V.VFIO_DMA_UNMAP_FLAG_ALL | V.VFIO_DMA_UNMAP_FLAG_VADDR).rc, -EINVAL);
    assert.equal(unmap(e, c, 0n, 0n, V.VFIO_DMA_UNMAP_FLAG_ALL | V.VFIO_DMA_UNMAP_FLAG_VADDR).rc, 0);
    assert.equal(unmap(e, c, 0n, 0x1000n, V.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP).rc, -EINVAL);
    const u = { argsz: 23, flags: 0, iova: 0n, size: 0x1000n };
    assert.equal(call(e, c, V.VFIO_IOMMU_UNMAP_DMA, V.vfio_iommu_type1_dma_unmap, u).rc, -EINVAL);
    const withBitmap = new Uint8Array(24);
    const dv = new DataView(withBitmap.buffer);
    dv.setBigUint64(0, 0x1000n, true);
    dv.setBigUint64(8, 8n, true);
    dv.setBigUint64(16, BigInt(e.buf), true);
    assert.equal(
      call(
        e,
        c,
        V.VFIO_IOMMU_UNMAP_DMA,
        V.vfio_iommu_type1_dma_unmap,
        { ...u, argsz: 48, flags: 1 },
        { extra: withBitmap },
      ).rc,
      -EINVAL,
    );
  });

  it("ALL: the total, and 0 on an empty container", () => {
    const { e, c } = setup();
    assert.deepEqual(unmap(e, c, 0n, 0n, V.VFIO_DMA_UNMAP_FLAG_ALL), { rc: 0, size: 0n });
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
    assert.equal(map(e, c, e.buf, 0x80000000n, 0x2000n), 0);
    assert.deepEqual(unmap(e, c, 0n, 0n, V.VFIO_DMA_UNMAP_FLAG_ALL), { rc: 0, size: 0x6000n });
    assert.equal(e.p.proc.mm.lockedVm, 0);
  });

  it("TYPE1 (v1): whole mappings that start in the range; a range starting inside one unmaps nothing", () => {
    const { e, c } = setup(undefined, V.VFIO_TYPE1_IOMMU);
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
    assert.equal(map(e, c, e.buf + 0x4000, 0x104000n, 0x4000n), 0);
    assert.deepEqual(unmap(e, c, 0x101000n, 0x1000n), { rc: 0, size: 0n });
    assert.deepEqual(unmap(e, c, 0x100000n, 0x1000n), { rc: 0, size: 0x4000n });
    assert.deepEqual(unmap(e, c, 0x100000n, 0x1000n), { rc: 0, size: 0n });
    assert.deepEqual(unmap(e, c, 0n, 0x200000n), { rc: 0, size: 0x4000n });
  });

  it("DIRTY_PAGES: START and STOP accepted, one flag at a time, EACCES on TYPE1", () => {
    const { e, c } = setup();
    const dp = (flags: number, argsz = 8) =>
      call(e, c, V.VFIO_IOMMU_DIRTY_PAGES, V.vfio_iommu_type1_dirty_bitmap, { argsz, flags }).rc;
    assert.equal(dp(0), -EINVAL);
    assert.equal(dp(1), 0);
    assert.equal(dp(3), -EINVAL);
    assert.equal(dp(2), 0);
    assert.equal(dp(1, 4), -EINVAL);
    assert.equal(dp(8), -EINVAL);
    const v1 = setup(undefined, V.VFIO_TYPE1_IOMMU);
    assert.equal(
      call(v1.e, v1.c, V.VFIO_IOMMU_DIRTY_PAGES, V.vfio_iommu_type1_dirty_bitmap, { argsz: 8, flags: 1 }).rc,
      -EACCES,
    );
  });
});

describe("memlock accounting", () => {
  it("every mapping of a page is charged; ENOMEM past RLIMIT_MEMLOCK without CAP_IPC_LOCK; released on unmap", () => {
    const { e, c } = setup(64 * 1024);
    assert.equal(map(e, c, e.buf, 0x100000n, 0x8000n), 0);
    assert.equal(map(e, c, e.buf, 0x300000n, 0x8000n), 0, "the same memory again is charged again");
    assert.equal(e.p.proc.mm.lockedVm, 16);
    const pinsBefore = e.p.proc.mm.pageAt(e.buf)!.pins;
    assert.equal(pinsBefore, 2);
    assert.equal(map(e, c, e.buf, 0x400000n, 0x1000n), -ENOMEM);
    assert.equal(e.p.proc.mm.lockedVm, 16, "a failed map charges nothing");
    assert.deepEqual(unmap(e, c, 0x100000n, 0x8000n), { rc: 0, size: 0x8000n });
    assert.equal(e.p.proc.mm.lockedVm, 8);
    assert.equal(e.p.proc.mm.pageAt(e.buf)!.pins, 1);
    assert.equal(map(e, c, e.buf, 0x400000n, 0x1000n), 0);
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
  });

  it("CAP_IPC_LOCK bypasses the limit but is still accounted", () => {
    const e = env();
    const p = e.twin.spawn({ memlock: 4096, caps: [CAP_IPC_LOCK] });
    const scr = p.mmap(65536);
    const buf = p.mmap(1 << 20);
    const pe = { twin: e.twin, p, scr, buf };
    const { c } = legacy(pe);
    assert.equal(map(pe, c, buf, 0x100000n, 0x10000n), 0);
    assert.equal(p.proc.mm.lockedVm, 16);
  });

  it("is released when the process exits, with no pin or reference left", () => {
    const { e, c } = setup();
    assert.equal(map(e, c, e.buf, 0x100000n, 0x10000n), 0);
    const page = e.p.proc.mm.pageAt(e.buf)!;
    assert.equal(page.pins, 1);
    e.twin.kill(e.p);
    assert.equal(e.p.proc.mm.lockedVm, 0);
    assert.equal(page.pins, 0);
    assert.deepEqual(checkVfioQuiescent(e.twin.kernel, [page]), []);
  });

  it("pages stay pinned after munmap while the mapping lives (the pin holds them)", () => {
    const { e, c } = setup();
    e.p.write(e.buf, new Uint8Array([0x5a]));
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n), 0);
    const page = e.p.proc.mm.pageAt(e.buf)!;
    assert.equal(e.p.munmap(e.buf, 1 << 20), 0);
    assert.equal(page.pins, 1);
    assert.equal(page.data[0], 0x5a);
    assert.deepEqual(unmap(e, c, 0x100000n, 0x1000n), { rc: 0, size: 0x1000n });
    assert.equal(page.pins, 0);
  });
});

describe("memlock vs faults, page by page (oracle)", () => {
  it("EFAULT or ENOMEM depending on which page comes first; RLIMIT 0 refuses any pin", () => {
    const e = env({}, 16384);
    const { c } = legacy(e);
    const buf = e.p.mmap(0x100000, { addr: 0x10000000 });
    assert.equal(map(e, c, buf + 0xfc000, 0x100000n, 0x8000n), -EFAULT);
    assert.equal(map(e, c, buf + 0xfb000, 0x100000n, 0x8000n), -ENOMEM);
    assert.equal(map(e, c, buf + 0xfd000, 0x100000n, 0x8000n), -EFAULT);
    assert.equal(e.p.proc.mm.lockedVm, 0);
    assert.equal(e.p.proc.mm.pageAt(buf + 0xfc000)!.pins, 0);
    assert.equal(map(e, c, buf, 0x100000n, 0x4000n), 0);
    assert.equal(map(e, c, buf, 0x200000n, 0x1000n), -ENOMEM);
    assert.deepEqual(unmap(e, c, 0n, 0n, V.VFIO_DMA_UNMAP_FLAG_ALL), { rc: 0, size: 0x4000n });
    assert.equal(e.p.setMemlock(0), 0);
    assert.equal(map(e, c, buf, 0x100000n, 0x1000n), -ENOMEM);
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
  });
});

describe("invariant checks registered by the modules", () => {
  it("hold on a busy twin and catch a corrupted count", async () => {
    const { checkInvariants } = await import("../../src/check/invariants.js");
    const { e, c, g } = setup();
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
    const d = e.p.ioctl(
      g,
      V.VFIO_GROUP_GET_DEVICE_FD,
      (() => {
        e.p.write(e.scr + 0x900, new Uint8Array([...Buffer.from("0000:00:01.0"), 0]));
        return e.scr + 0x900;
      })(),
    );
    assert.ok(d >= 0);
    assert.deepEqual(checkInvariants(e.twin.kernel), []);
    e.p.proc.mm.lockedVm++;
    assert.match(checkVfioInvariants(e.twin.kernel).join("\n"), /locked_vm 5 pages, type1 charged 4/);
    e.p.proc.mm.lockedVm--;
    const grp = [...e.twin.kernel.objects].find((o) => o.kind === "vfio_group") as unknown as {
      containerUsers: number;
    };
    grp.containerUsers++;
    assert.match(
      checkInvariants(e.twin.kernel)
        .map((v) => v.message)
        .join("\n"),
      /container users, expected 2/,
    );
    grp.containerUsers--;
    assert.deepEqual(checkInvariants(e.twin.kernel), []);
  });
});

describe("dirty page tracking (oracle scenario, stale bits included)", () => {
  it("reports every mapped page, with the kernel's leftover bits from earlier shifted reports", () => {
    const { e, c } = setup();
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
    assert.equal(map(e, c, e.buf, 0x104000n, 0x2000n), 0);
    assert.equal(map(e, c, e.buf, 0x140000n, 0x1000n, R), 0);
    const bm = e.scr + 0x100;
    const get = (iova: bigint, size: bigint, pgsize = 0x1000n, bsize = 8n, argsz = 48, data = BigInt(bm)) => {
      e.p.write(bm, new Uint8Array(16));
      const extra = V.vfio_iommu_type1_dirty_bitmap_get.encode({ iova, size, bitmap: { pgsize, size: bsize, data } });
      const rc = call(
        e,
        c,
        V.VFIO_IOMMU_DIRTY_PAGES,
        V.vfio_iommu_type1_dirty_bitmap,
        { argsz, flags: 4 },
        { extra, at: e.scr + 0x400 },
      ).rc;
      const dv = new DataView(e.p.read(bm, 16).buffer);
      return [rc, dv.getBigUint64(0, true), dv.getBigUint64(8, true)];
    };
    const dp = (flags: number) =>
      call(e, c, V.VFIO_IOMMU_DIRTY_PAGES, V.vfio_iommu_type1_dirty_bitmap, { argsz: 8, flags }).rc;
    assert.deepEqual(get(0x100000n, 0x8000n), [-EINVAL, 0n, 0n], "not tracking");
    assert.equal(dp(1), 0);
    assert.deepEqual(get(0x100000n, 0x8000n), [0, 0x3fn, 0n]);
    assert.deepEqual(get(0xff000n, 0x8000n), [0, 0x7fen, 0n]);
    assert.deepEqual(get(0x101000n, 0x8000n)[0], -EINVAL, "cuts a mapping");
    assert.deepEqual(get(0x100000n, 0x41000n, 0x1000n, 16n), [0, 0x7fffn, 1n]);
    assert.deepEqual(get(0x100000n, 0x41000n, 0x1000n, 8n)[0], -EINVAL, "bitmap too small");
    assert.deepEqual(get(0x100000n, 0x8000n, 0x2000n)[0], -EINVAL);
    assert.deepEqual(get(0x100000n, 0x8000n, 0x1000n, 8n, 47)[0], -EINVAL);
    assert.deepEqual(get(0xfc000n, 0x8000n), [0, 0x1f0n, 0n]);
    assert.deepEqual(get(0x100000n, 0x8000n, 0x1000n, 8n, 48, 0x7ffffffff000n)[0], -EFAULT);
    // unmap with GET_DIRTY_BITMAP reports the pages of what it removes
    const unmapDirty = (iova: bigint, size: bigint) => {
      e.p.write(bm, new Uint8Array(16));
      const extra = V.vfio_bitmap.encode({ pgsize: 0x1000n, size: 8n, data: BigInt(bm) });
      const r = call(
        e,
        c,
        V.VFIO_IOMMU_UNMAP_DMA,
        V.vfio_iommu_type1_dma_unmap,
        { argsz: 48, flags: 1, iova, size },
        { extra, at: e.scr + 0x400 },
      );
      return [r.rc, r.out.size, new DataView(e.p.read(bm, 8).buffer).getBigUint64(0, true)];
    };
    assert.deepEqual(unmapDirty(0x104000n, 0x2000n), [0, 0x2000n, 0x7fffn]);
    assert.deepEqual(unmapDirty(0xfc000n, 0x8000n), [0, 0x4000n, 0x1ff0n]);
    assert.equal(dp(2), 0);
    assert.deepEqual(get(0x100000n, 0x8000n)[0], -EINVAL);
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
  });
});

describe("u64 IOVAs: the number path's bound (2^52) and the top (2^64 - 1)", () => {
  // MAP/UNMAP_DMA read iova/size/vaddr as numbers below 2^52 and as bigints from there up; a
  // mapping across 2^52 and mappings at 2^63 and at the last page must behave as any other.
  // An emulated-only container has no aperture, so all of them can be mapped.
  const B = 1n << 52n;
  const TOP = 1n << 64n;
  it("maps, overlaps, bisection, exact and covering unmaps on both sides", () => {
    const { e, c } = mdevContainer();
    assert.equal(map(e, c, e.buf, B - 0x2000n, 0x4000n), 0, "across 2^52");
    assert.equal(map(e, c, e.buf, TOP - 0x1000n, 0x1000n), 0, "the last page");
    assert.equal(map(e, c, e.buf, 1n << 63n, 0x1000n), 0);
    assert.equal(map(e, c, e.buf, B, 0x1000n), -EEXIST, "inside, from above 2^52");
    assert.equal(map(e, c, e.buf, B - 0x1000n, 0x1000n), -EEXIST, "inside, from below 2^52");
    assert.equal(map(e, c, e.buf, TOP - 0x2000n, 0x2000n), -EEXIST, "ends on the last page");
    assert.equal(map(e, c, e.buf, TOP - 0x1000n, 0x2000n), -EINVAL, "wraps");
    assert.equal(map(e, c, e.buf, B + 0x2000n, 0x1000n), 0, "right after, above 2^52");
    assert.equal(unmap(e, c, B, 0x1000n).rc, -EINVAL, "v2: starts inside a mapping");
    assert.equal(unmap(e, c, B - 0x2000n, 0x2000n).rc, -EINVAL, "v2: ends inside a mapping");
    assert.deepEqual(unmap(e, c, B - 0x2000n, 0x4000n), { rc: 0, size: 0x4000n });
    assert.deepEqual(unmap(e, c, B - 0x2000n, 0x4000n), { rc: 0, size: 0n }, "gone");
    assert.deepEqual(unmap(e, c, 1n << 63n, 1n << 63n), { rc: 0, size: 0x2000n }, "2^63 and the last page");
    assert.deepEqual(unmap(e, c, 0n, 0n, V.VFIO_DMA_UNMAP_FLAG_ALL), { rc: 0, size: 0x1000n }, "the one left");
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
    e.twin.kill(e.p);
    assert.deepEqual(checkVfioQuiescent(e.twin.kernel), []);
  });
});
