// Expectations of tools/testing/selftests/iommu/iommufd.c (6.12) that need the selftest's
// IOMMU_TEST_OP_ADD_RESERVED, and the oracle's iommufd-test-reserved scenario
// (test/iommufd/oracle/iommufd-test-reserved.{txt,custom.txt}; step numbers in comments).

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { EADDRINUSE, EINVAL, ENOENT, EOPNOTSUPP, EOVERFLOW, ESPIPE } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import { IOMMU_TEST_CMD } from "../../src/iommufd/main.js";
import {
  type Env,
  setup,
  teardown,
  ioasAlloc,
  map,
  unmap,
  destroy,
  ranges,
  rawFields,
  RW,
  allowIovas,
} from "./helpers.js";

const PAGE = 0x1000n;
const BUF = 0x10000000;
let e: Env;
beforeEach(() => {
  e = setup();
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
});
afterEach(() => teardown(e));

function addReserved(id: number, start: bigint, length: bigint, op = 1) {
  return rawFields(e, IOMMU_TEST_CMD, [
    ["u32", 0, 72],
    ["u32", 4, op],
    ["u32", 8, id],
    ["u64", 16, start],
    ["u64", 24, length],
  ]).rc;
}
const allow = (id: number, list: [bigint, bigint][]) => allowIovas(e, id, list);
const auto = (id: number, len: bigint, va = BUF) => map(e, id, 0n, len, { flags: RW, va });

describe("the oracle's iommufd-test-reserved scenario", () => {
  it("reproduces every recorded answer", () => {
    const a = ioasAlloc(e); // 4
    assert.equal(addReserved(a, 0x4000n, 0x64000n), 0); // 5
    assert.deepEqual(ranges(e, a, 4).list, [
      [0n, 0x3fffn],
      [0x68000n, 0xffffffffffffffffn],
    ]); // 6
    assert.deepEqual(auto(a, 0x1000n), { rc: 0, iova: 0x1000n }); // 7
    assert.deepEqual(auto(a, 0x4000n), { rc: 0, iova: 0x68000n }); // 8
    assert.equal(map(e, a, 0x10000n, 0x1000n, { va: BUF }).rc, -EINVAL); // 9
    assert.equal(allow(a, [[0x1000n, 0x258000n]]), -EADDRINUSE); // 10
    assert.equal(allow(a, [[0xc8000n, 0x257fffn]]), 0); // 11
    assert.deepEqual(auto(a, 0x2000n), { rc: 0, iova: 0xc8000n }); // 12
    assert.equal(addReserved(a, 0x100000n, 0x1000n), -EADDRINUSE); // 13
    assert.equal(addReserved(a, 0x4000n, 0n), -EINVAL); // 14
    assert.equal(addReserved(a, 0xffffffffffffffffn, 2n), -EOVERFLOW); // 15
    assert.equal(addReserved(99, 0x100000n, 0x1000n), -ENOENT); // 16
    assert.equal(addReserved(a, 0n, 0n, 99), -EOPNOTSUPP); // 17
    assert.equal(addReserved(a, 0x4000n, 0x1000n), 0); // 18: reservations may overlap
    assert.deepEqual(ranges(e, a, 4).list, [
      [0n, 0x3fffn],
      [0x68000n, 0xffffffffffffffffn],
    ]); // 19
    assert.deepEqual(unmap(e, a, 0n, 0xffffffffffffffffn), { rc: 0, length: 0x7000n }); // 20
    assert.equal(destroy(e, a), 0); // 21
    const f = rawFields(e, U.IOMMU_FAULT_QUEUE_ALLOC, [["u32", 0, 16]]); // 22
    assert.equal(f.rc, 0);
    const ffd = Number(f.get("u32", 12));
    assert.equal(e.p.readFd(ffd, e.tp.scratchAddr(), 8), -ESPIPE); // 23
    assert.equal(e.p.readFd(ffd, e.tp.scratchAddr(), 40), 0, "no fault queued");
  });
});

describe("selftest iommufd_ioas", () => {
  it("area: split and over-map fail, unmap-all works twice", () => {
    const id = ioasAlloc(e);
    const base = 0x100000n;
    for (let i = 0n; i < 10n; i++) assert.equal(unmap(e, id, i * PAGE, PAGE).rc, -ENOENT);
    for (let i = 0n; i < 10n; i++) assert.equal(map(e, id, base + i * PAGE, PAGE, { va: BUF }).rc, 0);
    for (let i = 0n; i < 10n; i++) assert.equal(unmap(e, id, base + i * PAGE, PAGE).rc, 0);
    assert.equal(map(e, id, base + 16n * PAGE, 2n * PAGE, { va: BUF }).rc, 0);
    assert.equal(unmap(e, id, base + 16n * PAGE, PAGE).rc, -ENOENT);
    assert.equal(unmap(e, id, base + 17n * PAGE, PAGE).rc, -ENOENT);
    for (const [at, n] of [
      [16n, 2n],
      [16n, 1n],
      [17n, 1n],
      [15n, 2n],
      [15n, 3n],
    ])
      assert.equal(map(e, id, base + at! * PAGE, n! * PAGE, { va: BUF }).rc, -17);
    assert.equal(unmap(e, id, 0n, 0xffffffffffffffffn).rc, 0);
    assert.equal(unmap(e, id, 0n, 0xffffffffffffffffn).rc, 0);
  });

  it("unmap_fully_contained_areas", () => {
    const id = ioasAlloc(e);
    const base = 0x100000n + 4n * PAGE;
    for (let i = 0n; i < 4n; i++) assert.equal(map(e, id, base + i * 16n * PAGE, 8n * PAGE, { va: BUF }).rc, 0);
    assert.equal(unmap(e, id, base - 4n * PAGE, 8n * PAGE).rc, -ENOENT);
    assert.equal(unmap(e, id, base + 3n * 16n * PAGE + 8n * PAGE - 4n * PAGE, 8n * PAGE).rc, -ENOENT);
    assert.deepEqual(unmap(e, id, base - 4n * PAGE, 3n * 16n * PAGE + 8n * PAGE + 4n * PAGE), {
      rc: 0,
      length: 32n * PAGE,
    });
  });

  it("area_auto_iova: aligned, around a reserved region, inside the allowed one", () => {
    const id = ioasAlloc(e);
    const iovas: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      const r = auto(id, PAGE);
      assert.equal(r.rc, 0);
      iovas.push(r.iova);
    }
    for (const v of iovas.splice(0)) assert.equal(unmap(e, id, v, PAGE).rc, 0);
    e.p.mmap(64 << 20, { addr: 0x80000000 });
    for (let i = 1n; i <= 10n; i++) {
      const len = PAGE * i;
      const r = auto(id, len, 0x80000000); // 1 << 31, as the selftest does without a domain
      assert.equal(r.rc, 0);
      assert.equal(r.iova % (len & -len), 0n);
      iovas.push(r.iova);
    }
    iovas.splice(0).forEach((v, i) => assert.equal(unmap(e, id, v, PAGE * BigInt(i + 1)).rc, 0));
    assert.equal(addReserved(id, PAGE * 4n, PAGE * 100n), 0);
    for (let i = 1n; i <= 10n; i++) {
      const len = PAGE * i;
      const r = auto(id, len);
      assert.equal(r.iova % (len & -len), 0n);
      assert.ok(!(r.iova > PAGE * 4n && r.iova < PAGE * 104n));
      iovas.push(r.iova);
    }
    iovas.splice(0).forEach((v, i) => assert.equal(unmap(e, id, v, PAGE * BigInt(i + 1)).rc, 0));
    assert.equal(allow(id, [[PAGE, PAGE * 600n]]), -EADDRINUSE);
    assert.equal(allow(id, [[PAGE * 200n, PAGE * 600n - 1n]]), 0);
    for (let i = 1n; i <= 10n; i++) {
      const len = PAGE * i;
      const r = auto(id, len);
      assert.equal(r.iova % (len & -len), 0n);
      assert.ok(r.iova >= PAGE * 200n && r.iova + len <= PAGE * 600n);
    }
  });

  it("area_allowed: reserved and allowed may not meet, whichever comes first", () => {
    const id = ioasAlloc(e);
    const base = 0x100000n;
    assert.equal(allow(id, [[base, base + PAGE * 600n]]), 0);
    assert.equal(addReserved(id, base + PAGE, PAGE), -EADDRINUSE);
    assert.equal(allow(id, []), 0);
    assert.equal(addReserved(id, base + PAGE, PAGE), 0);
    assert.equal(allow(id, [[base, base + PAGE * 600n]]), -EADDRINUSE);
  });

  it("iova_ranges: holes around reserved ranges, the count protocol", () => {
    const id = ioasAlloc(e);
    assert.equal(addReserved(id, PAGE, PAGE), 0);
    const r = ranges(e, id, 1);
    assert.equal(r.rc, -90); // EMSGSIZE
    assert.equal(r.num, 2);
    assert.deepEqual(r.list, [[0n, 0xfffn]]);
    assert.deepEqual(ranges(e, id, 2).list, [
      [0n, 0xfffn],
      [0x2000n, 0xffffffffffffffffn],
    ]);
  });
});
