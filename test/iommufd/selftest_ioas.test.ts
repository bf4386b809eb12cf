// FIXTURE(iommufd_ioas) of tools/testing/selftests/iommu/iommufd.c (6.12) in its
// two_mock_domain and mock_domain_limit variants: the IOAS tests again, now with the mock
// domains' aperture (16 MiB..2 GiB) and 2 KiB page size shaping every answer.

import { describe, it, afterEach } from "node:test";
import assert from "node:assert/strict";
import { EADDRINUSE, EBUSY, EEXIST, EINVAL, EMSGSIZE, ENOENT } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import * as T from "../../src/uapi/iommufd_test.js";
import { type Env, setup, teardown, ioasAlloc, map, unmap, destroy, ranges, raw, allowIovas, RW } from "./helpers.js";
import { BUF, START, mockDomain, mockDomainOk, testCmd } from "./selftest_helpers.js";

const PAGE = 0x1000n;
const SIZE = 16n * PAGE;
let e: Env;
afterEach(() => teardown(e));

interface Fx {
  ioas: number;
  stdev: number;
  hwpt: number;
  idev: number;
}

function fixture(limit = 65536): Fx {
  e = setup();
  assert.equal(e.p.mmap(Number(SIZE), { addr: BUF }), BUF);
  const ioas = ioasAlloc(e);
  assert.equal(testCmd(e, T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, [["u32", 0, limit]]).rc, 0);
  mockDomainOk(e, ioas);
  return { ioas, ...mockDomainOk(e, ioas) };
}

const addReserved = (id: number, start: bigint, length: bigint) =>
  testCmd(e, T.IOMMU_TEST_OP_ADD_RESERVED, id, [
    ["u64", 0, start],
    ["u64", 8, length],
  ]).rc;
const auto = (id: number, len: bigint) => map(e, id, 0n, len, { flags: RW, va: BUF });
const copy = (src: number, dst: number, srcIova: bigint, dstIova: bigint, length: bigint) =>
  raw(e, U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, {
    size: U.iommu_ioas_copy.size,
    flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_WRITEABLE,
    dst_ioas_id: dst,
    src_ioas_id: src,
    dst_iova: dstIova,
    src_iova: srcIova,
    length,
  }).rc;

for (const [variant, limit] of [
  ["two_mock_domain", 65536],
  ["mock_domain_limit", 16],
] as const)
  describe(`iommufd_ioas.${variant}`, () => {
    it("ioas_destroy, hwpt_attach, ioas_area_destroy", () => {
      const f = fixture(limit);
      assert.equal(destroy(e, f.ioas), -EBUSY);
      const x = mockDomainOk(e, f.hwpt);
      assert.equal(x.hwpt, f.hwpt);
      assert.equal(map(e, f.ioas, START, PAGE, { va: BUF }).rc, 0);
      assert.equal(destroy(e, f.ioas), -EBUSY);
      for (let i = 1n; i < 10n; i++) assert.equal(map(e, f.ioas, START + i * PAGE, PAGE, { va: BUF }).rc, 0);
    });

    it("area: unmap, split and over-map fail at the aperture start", () => {
      const f = fixture(limit);
      for (let i = 0n; i < 10n; i++) assert.equal(unmap(e, f.ioas, i * PAGE, PAGE).rc, -ENOENT);
      for (let i = 0n; i < 10n; i++) assert.equal(map(e, f.ioas, START + i * PAGE, PAGE, { va: BUF }).rc, 0);
      for (let i = 0n; i < 10n; i++) assert.equal(unmap(e, f.ioas, START + i * PAGE, PAGE).rc, 0);
      assert.equal(map(e, f.ioas, START + 16n * PAGE, 2n * PAGE, { va: BUF }).rc, 0);
      assert.equal(unmap(e, f.ioas, START + 16n * PAGE, PAGE).rc, -ENOENT);
      assert.equal(unmap(e, f.ioas, START + 17n * PAGE, PAGE).rc, -ENOENT);
      for (const [at, n] of [
        [16n, 2n],
        [16n, 1n],
        [17n, 1n],
        [15n, 2n],
        [15n, 3n],
      ] as const)
        assert.equal(map(e, f.ioas, START + at * PAGE, n * PAGE, { va: BUF }).rc, -EEXIST);
      assert.equal(unmap(e, f.ioas, 0n, 0xffffffffffffffffn).rc, 0);
      assert.equal(unmap(e, f.ioas, 0n, 0xffffffffffffffffn).rc, 0);
      assert.equal(map(e, f.ioas, START - PAGE, PAGE, { va: BUF }).rc, -EINVAL, "below the aperture");
    });

    it("area_auto_iova and area_allowed: inside the aperture, around reserved ranges", () => {
      const f = fixture(limit);
      const iovas: bigint[] = [];
      for (let i = 1n; i <= 10n; i++) {
        const r = auto(f.ioas, PAGE * i);
        assert.equal(r.rc, 0);
        assert.ok(r.iova >= START && r.iova + PAGE * i - 1n <= T.MOCK_APERTURE_LAST);
        assert.equal(r.iova % ((PAGE * i) & -(PAGE * i)), 0n);
        iovas.push(r.iova);
      }
      iovas.forEach((v, i) => assert.equal(unmap(e, f.ioas, v, PAGE * BigInt(i + 1)).rc, 0));
      assert.equal(addReserved(f.ioas, PAGE * 4n, PAGE * 100n), 0);
      assert.equal(allowIovas(e, f.ioas, [[PAGE, PAGE * 600n]]), -EADDRINUSE);
      const lo = START + PAGE;
      const hi = START + PAGE * 600n - 1n;
      assert.equal(allowIovas(e, f.ioas, [[lo, hi]]), 0);
      for (let i = 1n; i <= 10n; i++) {
        const r = auto(f.ioas, PAGE * i);
        assert.equal(r.rc, 0);
        assert.ok(r.iova >= lo && r.iova + PAGE * i <= hi + 1n);
      }
      // area_allowed
      const f2 = ioasAlloc(e);
      mockDomainOk(e, f2);
      assert.equal(allowIovas(e, f2, [[START, START + PAGE * 600n]]), 0);
      assert.equal(addReserved(f2, START + PAGE, PAGE), -EADDRINUSE);
      assert.equal(allowIovas(e, f2, []), 0);
      assert.equal(addReserved(f2, START + PAGE, PAGE), 0);
      assert.equal(allowIovas(e, f2, [[START, START + PAGE * 600n]]), -EADDRINUSE);
    });

    it("iova_ranges: the aperture, at 2 KiB alignment", () => {
      const f = fixture(limit);
      const r = ranges(e, f.ioas, 4);
      assert.deepEqual(r.list, [[T.MOCK_APERTURE_START, T.MOCK_APERTURE_LAST]]);
      assert.equal(r.align, 0x800n);
      assert.equal(ranges(e, f.ioas, 0).rc, -EMSGSIZE);
      assert.equal(addReserved(f.ioas, PAGE, PAGE), 0);
      assert.deepEqual(ranges(e, f.ioas, 1).list, [[T.MOCK_APERTURE_START, T.MOCK_APERTURE_LAST]]);
    });

    it("ioas_iova_alloc: lengths that are not a multiple of 2 KiB are EINVAL", () => {
      const f = fixture(limit);
      for (let length = 1n; length < 2n * PAGE; length += 97n) {
        const r = auto(f.ioas, length);
        if (length % 0x800n) assert.equal(r.rc, -EINVAL);
        else assert.equal(unmap(e, f.ioas, r.iova, length).rc, 0);
      }
      for (const length of [0x800n, 0x1000n, 0x1800n]) {
        const r = auto(f.ioas, length);
        assert.equal(r.rc, 0);
        assert.equal(unmap(e, f.ioas, r.iova, length).rc, 0);
      }
    });

    it("copy_area and copy_sweep", () => {
      const f = fixture(limit);
      assert.equal(map(e, f.ioas, START, PAGE, { va: BUF }).rc, 0);
      assert.equal(copy(f.ioas, f.ioas, START, START + PAGE, PAGE), 0);
      const other = ioasAlloc(e);
      assert.equal(copy(f.ioas, other, START, 0n, PAGE), 0);
      assert.equal(unmap(e, f.ioas, 0n, 0xffffffffffffffffn).rc, 0);
      const dst = ioasAlloc(e);
      const last = START + SIZE - 1n;
      assert.equal(map(e, f.ioas, START, SIZE, { va: BUF }).rc, 0);
      for (let iova = START - PAGE; iova <= last; iova += 511n * 7n) {
        const rc = copy(f.ioas, dst, iova, START, 0x800n);
        if (iova < START || iova + 0x800n - 1n > last) assert.equal(rc, -ENOENT);
        else {
          assert.equal(rc, 0);
          assert.equal(unmap(e, dst, START, 0x800n).rc, 0);
        }
      }
      assert.equal(destroy(e, dst), 0);
    });

    it("ioas_option_huge_pages with domains: off needs an empty IOAS", () => {
      const f = fixture(limit);
      const opt = (op: number, val64: bigint) =>
        raw(e, U.IOMMU_OPTION, U.iommu_option, {
          size: U.iommu_option.size,
          option_id: U.IOMMU_OPTION_HUGE_PAGES,
          op,
          val64,
          object_id: f.ioas,
        });
      assert.equal(opt(U.IOMMU_OPTION_OP_GET, 3n).out.val64, 1n);
      assert.equal(opt(U.IOMMU_OPTION_OP_SET, 0n).rc, 0);
      assert.equal(opt(U.IOMMU_OPTION_OP_GET, 3n).out.val64, 0n);
      assert.equal(opt(U.IOMMU_OPTION_OP_SET, 2n).rc, -EINVAL);
      assert.equal(opt(U.IOMMU_OPTION_OP_SET, 1n).rc, 0);
      assert.equal(map(e, f.ioas, START, PAGE, { va: BUF }).rc, 0);
      assert.equal(opt(U.IOMMU_OPTION_OP_SET, 0n).rc, -EINVAL, "a domain and a map are present");
    });

    it("a mock device flag the 6.12 mock does not know (newer kernels' PASID) is EINVAL", () => {
      fixture(limit);
      assert.equal(mockDomain(e, 1, 1 << 2).rc, -EINVAL);
    });
  });
