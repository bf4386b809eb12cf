// Dirty bitmaps of huge mappings (issue 12 #1, #2): a type1 container on the KVM-gated mdev's
// emulated group (no domain, nothing pinned) tracks mappings of up to DIRTY_BITMAP_PAGES_MAX
// pages, as vfio_dma_bitmap_alloc() allows, and reporting one costs what is set in it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";
import { EINVAL } from "../../src/uapi/errno.js";
import { checkInvariants, formatViolations } from "../../src/check/invariants.js";
import { call, type Env, map, mdevContainer } from "./helpers.js";

const TiB = 1n << 40n;

const dirtyPages = (e: Env, c: number, flags: number) =>
  call(e, c, V.VFIO_IOMMU_DIRTY_PAGES, V.vfio_iommu_type1_dirty_bitmap, { argsz: 8, flags }).rc;

function unmapDirty(e: Env, c: number, iova: bigint, size: bigint, data: number, bsize: bigint) {
  const extra = V.vfio_bitmap.encode({ pgsize: 0x1000n, size: bsize, data: BigInt(data) });
  const r = call(
    e,
    c,
    V.VFIO_IOMMU_UNMAP_DMA,
    V.vfio_iommu_type1_dma_unmap,
    { argsz: 48, flags: V.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova, size },
    { extra, at: e.scr + 0x400 },
  );
  return { rc: r.rc, size: r.out.size };
}

function getDirty(e: Env, c: number, iova: bigint, size: bigint, data: number, bsize: bigint): number {
  const extra = V.vfio_iommu_type1_dirty_bitmap_get.encode({
    iova,
    size,
    bitmap: { pgsize: 0x1000n, size: bsize, data: BigInt(data) },
  });
  return call(
    e,
    c,
    V.VFIO_IOMMU_DIRTY_PAGES,
    V.vfio_iommu_type1_dirty_bitmap,
    { argsz: 8 + extra.length, flags: V.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
    { extra, at: e.scr + 0x400 },
  ).rc;
}

const u64At = (e: Env, a: number) => new DataView(e.p.read(a, 8).buffer).getBigUint64(0, true);

describe("type1 dirty bitmaps of huge unpinned mappings", () => {
  it("UNMAP_DMA with GET_DIRTY_BITMAP of a 4 TiB mapping into a 2^27-byte bitmap answers, quickly (#1)", () => {
    const { e, c } = mdevContainer();
    const k = e.twin.kernel;
    assert.equal(dirtyPages(e, c, V.VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
    assert.equal(map(e, c, e.buf, 0n, 4n * TiB), 0);
    const bsize = 1 << 27;
    const bm = e.p.mmap(bsize);
    // what the user had there is overwritten: every word the mapping covers is copied
    e.p.write(bm, new Uint8Array(8).fill(0xff));
    e.p.write(bm + bsize - 8, new Uint8Array(8).fill(0xff));
    const t0 = performance.now();
    assert.equal(getDirty(e, c, 0n, 4n * TiB, bm, BigInt(bsize)), 0);
    assert.deepEqual(unmapDirty(e, c, 0n, 4n * TiB, bm, BigInt(bsize)), { rc: 0, size: 4n * TiB });
    const ms = performance.now() - t0;
    assert.equal(u64At(e, bm), 0n, "no page of an emulated-only container is dirty");
    assert.equal(u64At(e, bm + bsize - 8), 0n);
    assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
    assert.equal(e.p.proc.mainTask.inSyscall, false);
    assert.equal(formatViolations(checkInvariants(k)), "all invariants hold");
  });

  it("tracking refuses mappings of more than DIRTY_BITMAP_PAGES_MAX pages; INT_MAX pages are reported in bounded time (#2)", () => {
    const { e, c } = mdevContainer();
    const k = e.twin.kernel;
    const eight = 8n * TiB; // 2^31 pages: one more than INT_MAX
    const max = eight - 0x1000n;
    // vfio_dma_bitmap_alloc_all(): START fails while such a mapping exists, tracking stays off
    assert.equal(map(e, c, e.buf, 0n, eight), 0);
    assert.equal(dirtyPages(e, c, V.VFIO_IOMMU_DIRTY_PAGES_FLAG_START), -EINVAL);
    assert.equal(getDirty(e, c, 0n, max, e.buf, 1n << 28n), -EINVAL, "not tracking");
    assert.equal(
      call(e, c, V.VFIO_IOMMU_UNMAP_DMA, V.vfio_iommu_type1_dma_unmap, { argsz: 24, iova: 0n, size: eight }).rc,
      0,
    );
    // vfio_dma_bitmap_alloc() in vfio_dma_do_map(): MAP fails, nothing is left mapped
    assert.equal(dirtyPages(e, c, V.VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
    assert.equal(map(e, c, e.buf, 0n, eight), -EINVAL);
    const bsize = 1 << 28;
    const bm = e.p.mmap(bsize);
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) {
      assert.equal(map(e, c, e.buf, 0n, max), 0);
      assert.deepEqual(unmapDirty(e, c, 0n, max, bm, BigInt(bsize)), { rc: 0, size: max });
    }
    const ms = performance.now() - t0;
    assert.ok(ms < 1000, `three unmaps took ${ms.toFixed(0)} ms`);
    assert.equal(formatViolations(checkInvariants(k)), "all invariants hold");
  });
});
