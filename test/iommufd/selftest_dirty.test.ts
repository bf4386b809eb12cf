// Dirty tracking on the mock domain, modelled on tools/testing/selftests/iommu/iommufd.c
// (6.12) FIXTURE(iommufd_dirty_tracking): HWPT_ALLOC with DIRTY_TRACKING, SET_DIRTY_TRACKING,
// IOMMU_TEST_OP_DIRTY, GET_DIRTY_BITMAP (with and without NO_CLEAR, with unaligned user
// bitmaps) and MOCK_FLAGS_DEVICE_HUGE_IOVA's 1 MiB PTEs.

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { EFAULT, EINVAL, ENOENT, EOPNOTSUPP, EOVERFLOW } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import * as T from "../../src/uapi/iommufd_test.js";
import { Page } from "../../src/kernel/mm.js";
import { type Env, setup, teardown, ioasAlloc, map, destroy, raw } from "./helpers.js";
import { BUF, START, hwptAlloc, mockDomain, mockDomainOk, testCmd } from "./selftest_helpers.js";

const MOCK_PAGE = 0x800n;
const HUGE = 0x100000n;
let e: Env;
beforeEach(() => {
  e = setup();
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
});
afterEach(() => teardown(e));

function setDirtyTracking(hwpt: number, enable: boolean, flags = enable ? 1 : 0): number {
  return raw(e, U.IOMMU_HWPT_SET_DIRTY_TRACKING, U.iommu_hwpt_set_dirty_tracking, {
    size: U.iommu_hwpt_set_dirty_tracking.size,
    flags,
    hwpt_id: hwpt,
  }).rc;
}

function getDirtyBitmap(hwpt: number, iova: bigint, length: bigint, pageSize: bigint, data: number, flags = 0) {
  return raw(e, U.IOMMU_HWPT_GET_DIRTY_BITMAP, U.iommu_hwpt_get_dirty_bitmap, {
    size: U.iommu_hwpt_get_dirty_bitmap.size,
    hwpt_id: hwpt,
    flags,
    iova,
    length,
    page_size: pageSize,
    data: BigInt(data),
  }).rc;
}

function setDirty(hwpt: number, iova: bigint, length: bigint, pageSize: bigint, uptr: number) {
  const r = testCmd(e, T.IOMMU_TEST_OP_DIRTY, hwpt, [
    ["u64", 8, iova],
    ["u64", 16, length],
    ["u64", 24, pageSize],
    ["u64", 32, BigInt(uptr)],
  ]);
  return { rc: r.rc, nr: r.get("u64", 40) };
}

const bit = (b: Uint8Array, i: number) => (b[i >> 3]! >> (i & 7)) & 1;

/** _test_mock_dirty_bitmaps() of iommufd_utils.h */
function mockDirtyBitmaps(hwpt: number, length: bigint, pteSize: bigint, bitmap: number, flags: number): void {
  const nbits = Number(length / MOCK_PAGE);
  const npte = Number(pteSize / MOCK_PAGE);
  const pteset = 2 * npte;
  const nr = Math.floor(nbits / pteset) || 1;
  const bytes = Math.ceil(nbits / 8);
  const b = new Uint8Array(bytes);
  for (let i = 0; i < nbits; i += pteset) b[i >> 3]! |= 1 << (i & 7);
  e.p.write(bitmap, b);
  const d = setDirty(hwpt, START, length, MOCK_PAGE, bitmap);
  assert.equal(d.rc, 0);
  assert.equal(d.nr, BigInt(nr));
  e.p.write(bitmap, new Uint8Array(bytes));
  assert.equal(getDirtyBitmap(hwpt, START, length, MOCK_PAGE, bitmap, flags), 0);
  let got = e.p.read(bitmap, bytes);
  for (let i = 0; i < nbits; i += pteset)
    for (let j = 0; j < pteset && i + j < nbits; j++) assert.equal(bit(got, i + j), j < npte ? 1 : 0, `bit ${i + j}`);
  e.p.write(bitmap, new Uint8Array(bytes));
  assert.equal(getDirtyBitmap(hwpt, START, length, MOCK_PAGE, bitmap, flags), 0);
  got = e.p.read(bitmap, bytes);
  const noClear = (flags & U.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0;
  for (let i = 0; i < nbits; i += pteset)
    for (let j = 0; j < pteset && i + j < nbits; j++) assert.equal(bit(got, i + j), j < npte && noClear ? 1 : 0);
}

describe("dirty tracking on the mock domain", () => {
  it("enforce_dirty: a NO_DIRTY device neither joins a dirty HWPT nor allocates one", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    const h = hwptAlloc(e, d.idev, ioas, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    assert.equal(h.rc, 0);
    const x = mockDomainOk(e, h.id);
    assert.equal(mockDomain(e, h.id, T.MOCK_FLAGS_DEVICE_NO_DIRTY).rc, -EINVAL);
    assert.equal(destroy(e, x.stdev), 0);
    assert.equal(destroy(e, h.id), 0);
    const ioas2 = ioasAlloc(e);
    const nd = mockDomainOk(e, ioas2, T.MOCK_FLAGS_DEVICE_NO_DIRTY);
    assert.equal(hwptAlloc(e, nd.idev, ioas2, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING).rc, -EOPNOTSUPP);
    assert.equal(destroy(e, nd.stdev), 0);
  });

  it("set_dirty_tracking: on and off; EOPNOTSUPP without dirty ops", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    const h = hwptAlloc(e, d.idev, ioas, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    const x = mockDomainOk(e, h.id);
    assert.equal(setDirtyTracking(h.id, true), 0);
    assert.equal(setDirtyTracking(h.id, true), 0);
    assert.equal(setDirtyTracking(h.id, false), 0);
    assert.equal(setDirtyTracking(h.id, true, 2), -EOPNOTSUPP);
    assert.equal(setDirtyTracking(d.hwpt, true), -EOPNOTSUPP, "the automatic domain has no dirty ops");
    assert.equal(setDirtyTracking(ioas, true), -ENOENT);
    assert.equal(destroy(e, x.stdev), 0);
    assert.equal(destroy(e, h.id), 0);
  });

  it("device_dirty_capability: GET_HW_INFO reports IOMMU_HW_CAP_DIRTY_TRACKING", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    const r = raw(e, U.IOMMU_GET_HW_INFO, U.iommu_hw_info, { size: U.iommu_hw_info.size, dev_id: d.idev });
    assert.equal(r.rc, 0);
    assert.equal(r.out.out_capabilities & BigInt(U.IOMMU_HW_CAP_DIRTY_TRACKING), 1n);
  });

  for (const size of [8n << 10n, 16n << 10n, 64n << 10n, 128n << 10n, 320n << 10n, 1n << 20n])
    for (const flags of [0, U.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR])
      it(`get_dirty_bitmap${flags ? "_no_clear" : ""}: ${size >> 10n}k, aligned and unaligned bitmaps`, () => {
        const buf = e.p.mmap(Number(size));
        const bitmap = e.p.mmap(0x10000);
        const ioas0 = ioasAlloc(e);
        const d = mockDomainOk(e, ioas0);
        const ioas = ioasAlloc(e);
        assert.equal(map(e, ioas, START, size, { va: buf }).rc, 0);
        const h = hwptAlloc(e, d.idev, ioas, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
        assert.equal(h.rc, 0);
        assert.equal(setDirtyTracking(h.id, true), 0);
        mockDirtyBitmaps(h.id, size, MOCK_PAGE, bitmap, flags);
        mockDirtyBitmaps(h.id, size, MOCK_PAGE, bitmap + 0x800, flags);
        mockDirtyBitmaps(h.id, size, MOCK_PAGE, bitmap + 0xff1, flags);
        assert.equal(destroy(e, h.id), 0);
      });

  it("checks of GET_DIRTY_BITMAP and of the DIRTY op", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    assert.equal(map(e, ioas, START, 0x4000n, { va: BUF }).rc, 0);
    const h = hwptAlloc(e, d.idev, ioas, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    const bm = BUF + 0x80000;
    e.p.write(bm, new Uint8Array([1]));
    assert.equal(setDirty(h.id, START, 0x4000n, MOCK_PAGE, bm).rc, -EINVAL, "tracking is off");
    assert.equal(getDirtyBitmap(h.id, START, 0x4000n, MOCK_PAGE, bm), -EINVAL, "tracking is off");
    assert.equal(setDirtyTracking(h.id, true), 0);
    assert.equal(setDirty(h.id, START, 0x4000n, 0n, bm).rc, -EINVAL);
    assert.equal(setDirty(h.id, START + 1n, 0x4000n, MOCK_PAGE, bm).rc, -EINVAL);
    assert.equal(setDirty(h.id, START, 0x4000n, MOCK_PAGE, 0).rc, -EINVAL);
    assert.equal(setDirty(h.id, START, 1n << 40n, 1n, bm).rc, -EOVERFLOW);
    assert.equal(setDirty(ioas, START, 0x4000n, MOCK_PAGE, bm).rc, -ENOENT);
    assert.equal(setDirty(h.id, START, 0x4000n, MOCK_PAGE, 0x1000).rc, -EFAULT);
    assert.equal(getDirtyBitmap(h.id, START, 0x4000n, MOCK_PAGE, 0x1000), -EFAULT);
    assert.equal(getDirtyBitmap(h.id, START, 0x8000n, MOCK_PAGE, bm), -EINVAL, "past the areas");
    assert.equal(getDirtyBitmap(h.id, START + 0x400n, 0x800n, MOCK_PAGE, bm), -EINVAL, "unaligned to the IOAS");
    assert.equal(getDirtyBitmap(h.id, START, 0x800n, 0x1000n, bm), -EINVAL, "unaligned to page_size");
    // iommufd_check_iova_range() masks with page_size - 1: 0x3000 passes where 0x4000 is a multiple of 0x1000
    assert.equal(getDirtyBitmap(h.id, START, 0x4000n, 0x3000n, bm), 0);
    // a page marked dirty is reported once, then cleared
    e.p.write(bm, new Uint8Array([0b100]));
    assert.deepEqual(setDirty(h.id, START, 0x4000n, MOCK_PAGE, bm), { rc: 0, nr: 1n });
    e.p.write(bm, new Uint8Array(8));
    assert.equal(getDirtyBitmap(h.id, START, 0x4000n, 0x1000n, bm), 0);
    assert.deepEqual([...e.p.read(bm, 1)], [0b10], "IOVA page 1 of 4 KiB holds mock page 2");
    assert.equal(getDirtyBitmap(h.id, START, 0x4000n, 0x1000n, bm), 0);
    assert.deepEqual([...e.p.read(bm, 1)], [0b10], "bits are only ever set");
    e.p.write(bm, new Uint8Array(8));
    assert.equal(getDirtyBitmap(h.id, START, 0x4000n, 0x1000n, bm), 0);
    assert.deepEqual([...e.p.read(bm, 1)], [0]);
    // enabling again clears what was dirty
    e.p.write(bm, new Uint8Array([0xff]));
    assert.deepEqual(setDirty(h.id, START, 0x4000n, MOCK_PAGE, bm), { rc: 0, nr: 8n });
    assert.equal(setDirtyTracking(h.id, true), 0);
    e.p.write(bm, new Uint8Array(8));
    assert.equal(getDirtyBitmap(h.id, START, 0x4000n, MOCK_PAGE, bm), 0);
    assert.deepEqual([...e.p.read(bm, 1)], [0]);
    assert.equal(destroy(e, h.id), 0);
  });

  it("HUGE_IOVA: physically contiguous 1 MiB runs get 1 MiB PTEs, dirty as a whole", () => {
    const size = 2n * HUGE;
    const ioas0 = ioasAlloc(e);
    const d = mockDomainOk(e, ioas0, T.MOCK_FLAGS_DEVICE_HUGE_IOVA);
    const buf = e.p.mmap(Number(size) + Number(HUGE));
    const aligned = Math.ceil(buf / Number(HUGE)) * Number(HUGE);
    // fault the buffer in with consecutive pfns starting 1 MiB aligned, as a huge page is
    while (new Page().pfn % 256 !== 255);
    e.p.write(aligned, new Uint8Array(Number(size)).fill(1));
    const ioas = ioasAlloc(e);
    assert.equal(map(e, ioas, START, size, { va: aligned }).rc, 0);
    const h = hwptAlloc(e, d.idev, ioas, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    assert.equal(h.rc, 0);
    assert.equal(setDirtyTracking(h.id, true), 0);
    const bitmap = e.p.mmap(0x10000);
    mockDirtyBitmaps(h.id, size, HUGE, bitmap, 0);
    assert.equal(destroy(e, h.id), 0);
  });
});
