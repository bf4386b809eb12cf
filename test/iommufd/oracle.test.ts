// Replays test/iommufd/oracle/iommufd-framing-compat.txt step by step against the twin and
// checks each answer recorded from the real 6.12 kernel (iommufd-framing-compat.custom.txt,
// step numbers in the comments). The buffer sits at 0x10000000 as in the oracle's runner.

import { it } from "node:test";
import assert from "node:assert/strict";
import { E2BIG, EADDRINUSE, EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOTTY, EOPNOTSUPP } from "../../src/uapi/errno.js";
import { _IO, IOMMUFD_TYPE, VFIO_BASE, VFIO_TYPE } from "../../src/uapi/ioctl.js";
import * as U from "../../src/uapi/iommufd.js";
import { type Env, setup, teardown, ioasAlloc, map, unmap, destroy, rawFields as raw, RW, FIXED } from "./helpers.js";

const BUF = 0x10000000;
const V = (n: number) => _IO(VFIO_TYPE, VFIO_BASE + n);

function copy(e: Env, dst: number, src: number, len: bigint, dIova: bigint, sIova: bigint, flags: number) {
  const r = raw(e, U.IOMMU_IOAS_COPY, [
    ["u32", 0, 40],
    ["u32", 4, flags],
    ["u32", 8, dst],
    ["u32", 12, src],
    ["u64", 16, len],
    ["u64", 24, dIova],
    ["u64", 32, sIova],
  ]);
  return { rc: r.rc, dst: r.get("u64", 24) };
}

function option(e: Env, id: number, op: number, obj: number, val = 0n) {
  const r = raw(e, U.IOMMU_OPTION, [
    ["u32", 0, 24],
    ["u32", 4, id],
    ["u16", 8, op],
    ["u32", 12, obj],
    ["u64", 16, val],
  ]);
  return { rc: r.rc, val: r.get("u64", 16) };
}

it("reproduces the oracle's iommufd-framing-compat scenario", () => {
  const e = setup();
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
  const a = ioasAlloc(e); // 5
  const b = ioasAlloc(e); // 6
  assert.deepEqual([a, b], [1, 2]);
  assert.equal(raw(e, U.IOMMU_IOAS_ALLOC, [["u32", 0, 11]]).rc, -EINVAL); // 7
  assert.equal(
    raw(e, U.IOMMU_IOAS_ALLOC, [
      ["u32", 0, 20],
      ["u32", 16, 1],
    ]).rc,
    -E2BIG,
  ); // 8
  const r9 = raw(e, U.IOMMU_IOAS_ALLOC, [["u32", 0, 20]]); // 9
  assert.equal(r9.rc, 0);
  assert.equal(r9.get("u32", 8), 3n);
  assert.equal(
    raw(e, U.IOMMU_DESTROY, [
      ["u32", 0, 8],
      ["u32", 4, 3],
    ]).rc,
    0,
  ); // 10
  assert.equal(raw(e, _IO(IOMMUFD_TYPE, 0x8f), [["u32", 0, 16]]).rc, -ENOTTY); // 11
  assert.equal(raw(e, _IO(IOMMUFD_TYPE, 0x8f), [], 0).rc, -EFAULT); // 12
  assert.equal(raw(e, _IO(IOMMUFD_TYPE, 0xa0), [["u32", 0, 8]]).rc, -EINVAL); // 13
  assert.equal(raw(e, _IO(IOMMUFD_TYPE, 0xa0), [["u32", 0, 64]]).rc, -EINVAL); // 14
  assert.equal(raw(e, 0xc00c3b81, [["u32", 0, 12]]).rc, -ENOTTY); // 15
  assert.equal(e.p.ioctl(e.fd, V(0), 0), 0); // 16 VFIO_GET_API_VERSION
  assert.equal(e.p.ioctl(e.fd, V(1), 8), 1); // 17 CHECK_EXTENSION NOIOMMU
  assert.equal(e.p.ioctl(e.fd, V(1), 4), -ENODEV); // 18 DMA_CC without a compat IOAS
  assert.equal(e.p.ioctl(e.fd, V(1), 10), 0); // 19 UPDATE_VADDR
  assert.equal(e.p.ioctl(e.fd, V(2), 3), -ENODEV); // 20 SET_IOMMU
  assert.equal(raw(e, V(12), [["u32", 0, 16]]).rc, -ENODEV); // 21 GET_INFO
  assert.equal(raw(e, V(17), [["u32", 0, 16]]).rc, -ENOTTY); // 22 DIRTY_PAGES
  const mapDma = (iova: number, flags: number) =>
    raw(e, V(13), [
      ["u32", 0, 32],
      ["u32", 4, flags],
      ["u64", 8, BUF],
      ["u64", 16, iova],
      ["u64", 24, 0x2000],
    ]).rc;
  assert.equal(mapDma(0x200000, 3), -ENODEV); // 23
  assert.equal(map(e, b, 0x10000n, 0x1000n, { va: BUF }).rc, 0); // 25
  assert.equal(map(e, b, 0x20000n, 0x4000n, { va: BUF }).rc, 0); // 26
  assert.equal(unmap(e, b, 0x10000n, 0x12000n).rc, -ENOENT); // 27
  assert.equal(unmap(e, b, 0x10000n, 0x1000n).rc, -ENOENT); // 28: the partial success
  assert.deepEqual(map(e, b, 0x24000n, 0x4000n, { va: BUF + 0x4000 }), { rc: 0, iova: 0x24000n }); // 29
  assert.deepEqual(copy(e, a, b, 0x6000n, 0n, 0x21000n, RW), { rc: 0, dst: 0x1000n }); // 30
  assert.deepEqual(unmap(e, a, 0n, 0xffffffffffffffffn), { rc: 0, length: 0x6000n }); // 31
  assert.equal(copy(e, a, b, 0x1000n, 0x80000n, 0x30000n, FIXED | RW).rc, -ENOENT); // 32
  assert.deepEqual(map(e, b, 0n, 0x3000n, { flags: RW, va: BUF }), { rc: 0, iova: 0x4000n }); // 33
  assert.deepEqual(map(e, b, 0n, 0x3000n, { flags: RW, va: BUF + 0x1000 }), { rc: 0, iova: 0x1000n }); // 34
  assert.deepEqual(map(e, b, 0n, 0x100n, { flags: RW, va: BUF + 0x10 }), { rc: 0, iova: 0x7010n }); // 35
  assert.deepEqual(map(e, b, 0n, 0x200000n, { flags: RW, va: BUF + 0x1000 }), { rc: 0, iova: 0x28000n }); // 36
  assert.equal(option(e, U.IOMMU_OPTION_HUGE_PAGES, U.IOMMU_OPTION_OP_SET, b, 0n).rc, -EADDRINUSE); // 37
  assert.deepEqual(option(e, U.IOMMU_OPTION_HUGE_PAGES, U.IOMMU_OPTION_OP_GET, b), { rc: 0, val: 1n }); // 38
  assert.deepEqual(option(e, U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_GET, 0), { rc: 0, val: 0n }); // 39
  // 40: the oracle runs as root; here CAP_SYS_RESOURCE is missing, so EPERM comes first
  assert.equal(option(e, U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_SET, 0, 1n).rc, -1);
  const f = raw(e, U.IOMMU_FAULT_QUEUE_ALLOC, [["u32", 0, 16]]); // 41
  assert.equal(f.rc, 0);
  assert.equal(f.get("u32", 8), 3n);
  assert.equal(destroy(e, 3), -EBUSY); // 42
  assert.equal(e.p.close(Number(f.get("u32", 12))), 0); // 43
  assert.equal(destroy(e, 3), 0); // 44
  assert.equal(
    raw(e, U.IOMMU_FAULT_QUEUE_ALLOC, [
      ["u32", 0, 16],
      ["u32", 4, 1],
    ]).rc,
    -EOPNOTSUPP,
  ); // 45
  assert.equal(
    raw(e, U.IOMMU_HWPT_SET_DIRTY_TRACKING, [
      ["u32", 0, 16],
      ["u32", 8, 1],
    ]).rc,
    -ENOENT,
  ); // 46
  assert.equal(
    raw(e, U.IOMMU_HWPT_SET_DIRTY_TRACKING, [
      ["u32", 0, 16],
      ["u32", 4, 2],
    ]).rc,
    -EOPNOTSUPP,
  ); // 47
  assert.equal(
    raw(e, U.IOMMU_HWPT_GET_DIRTY_BITMAP, [
      ["u32", 0, 48],
      ["u32", 4, 1],
    ]).rc,
    -ENOENT,
  ); // 48
  assert.equal(
    raw(e, U.IOMMU_HWPT_GET_DIRTY_BITMAP, [
      ["u32", 0, 48],
      ["u32", 8, 2],
    ]).rc,
    -EOPNOTSUPP,
  ); // 49
  for (const [set, rc] of [
    [[], -ENOENT], // 50
    [[["u32", 24, 5]], -EINVAL], // 51
    [[["u32", 28, 1]], -EOPNOTSUPP], // 52
  ] as const) {
    const r = raw(e, U.IOMMU_HWPT_INVALIDATE, [["u32", 0, 32], ["u32", 4, 1], ...set] as [string, number, number][]);
    assert.equal(r.rc, rc);
    assert.equal(r.get("u32", 24), 0n, "entry_num written back as 0");
  }
  assert.equal(
    raw(e, U.IOMMU_HWPT_ALLOC, [
      ["u32", 0, 48],
      ["u32", 8, 99],
    ]).rc,
    -ENOENT,
  ); // 53
  assert.equal(
    raw(e, U.IOMMU_HWPT_ALLOC, [
      ["u32", 0, 48],
      ["u32", 28, 4],
    ]).rc,
    -EINVAL,
  ); // 54
  assert.equal(
    raw(e, U.IOMMU_HWPT_ALLOC, [
      ["u32", 0, 48],
      ["u32", 8, 1],
    ]).rc,
    -ENOENT,
  ); // 55
  assert.equal(
    raw(e, U.IOMMU_GET_HW_INFO, [
      ["u32", 0, 40],
      ["u32", 8, 1],
    ]).rc,
    -ENOENT,
  ); // 56
  assert.equal(
    raw(e, U.IOMMU_GET_HW_INFO, [
      ["u32", 0, 40],
      ["u32", 4, 1],
    ]).rc,
    -EOPNOTSUPP,
  ); // 57
  const vio = (op: number, id = 0) =>
    raw(e, U.IOMMU_VFIO_IOAS, [
      ["u32", 0, 12],
      ["u32", 4, id],
      ["u16", 8, op],
    ]);
  assert.equal(vio(U.IOMMU_VFIO_IOAS_GET).rc, -ENODEV); // 58
  assert.equal(vio(U.IOMMU_VFIO_IOAS_SET, a).rc, 0); // 59
  assert.equal(vio(U.IOMMU_VFIO_IOAS_GET).get("u32", 4), 1n); // 60
  assert.equal(e.p.ioctl(e.fd, V(1), 4), 1); // 61 DMA_CC: no HWPT to break coherency
  const i62 = raw(e, V(12), [["u32", 0, 16]]); // 62
  assert.equal(i62.rc, 0);
  assert.deepEqual(
    [i62.get("u32", 0), i62.get("u32", 4), i62.get("u64", 8), i62.get("u32", 16)],
    [0x48n, 3n, 0xfffffffffffff000n, 0n],
  );
  const i63 = raw(e, V(12), [["u32", 0, 200]]); // 63
  assert.equal(i63.rc, 0);
  assert.deepEqual(
    [
      ["u32", 0],
      ["u32", 4],
      ["u64", 8],
      ["u32", 16],
      ["u16", 24],
      ["u32", 28],
      ["u32", 32],
      ["u16", 40],
      ["u32", 44],
      ["u32", 48],
      ["u64", 56],
      ["u64", 64],
    ].map(([t, o]) => i63.get(t as string, o as number)),
    [0x48n, 3n, 0xfffffffffffff000n, 0x18n, 3n, 0x28n, 0xffffffffn, 1n, 0n, 1n, 0n, 0xffffffffffffffffn],
  );
  assert.equal(mapDma(0x200000, 3), 0); // 64
  assert.equal(mapDma(0x300000, 0), 0); // 65
  const unmapDma = (iova: number, size: number, flags = 0) => {
    const r = raw(e, V(14), [
      ["u32", 0, 24],
      ["u32", 4, flags],
      ["u64", 8, iova],
      ["u64", 16, size],
    ]);
    return [r.rc, r.get("u64", 16)];
  };
  assert.deepEqual(unmapDma(0x900000, 0x1000), [0, 0n]); // 66
  assert.deepEqual(unmapDma(0x201000, 0x1000), [-ENOENT, 0n]); // 67
  assert.equal(e.p.ioctl(e.fd, V(2), 1), 0); // 68 SET_IOMMU TYPE1: huge pages off
  assert.deepEqual(unmapDma(0x201000, 0x1000), [0, 0x1000n]); // 69
  assert.deepEqual(unmapDma(0, 0, 2), [0, 0x3000n]); // 70
  assert.deepEqual(unmapDma(0x1000, 0, 2), [-EINVAL, 0n]); // 71
  assert.equal(destroy(e, a), 0); // 72
  assert.equal(vio(U.IOMMU_VFIO_IOAS_GET).rc, -ENODEV); // 73
  teardown(e);
});
