// IOMMU_TEST_CMD from the test side, as tools/testing/selftests/iommu/iommufd_utils.h issues
// it: a 72-byte struct iommu_test_cmd with the op's union member at offset 16.

import assert from "node:assert/strict";
import * as T from "../../src/uapi/iommufd_test.js";
import * as U from "../../src/uapi/iommufd.js";
import { type Env, raw, rawFields } from "./helpers.js";

export const BUF = 0x10000000;
export const START = T.MOCK_APERTURE_START;
const OFF = T.TEST_CMD_UNION_OFFSET;

/** One test command: fields of the union as [type, offset within the union, value]. */
export function testCmd(
  e: Env,
  op: number,
  id: number,
  fields: [string, number, number | bigint][] = [],
  size = T.iommu_test_cmd.size,
): { rc: number; get: (t: string, off: number) => bigint } {
  const r = rawFields(e, T.IOMMU_TEST_CMD, [
    ["u32", 0, size],
    ["u32", 4, op],
    ["u32", 8, id],
    ...fields.map(([t, o, v]) => [t, OFF + o, v] as [string, number, number | bigint]),
  ]);
  return { rc: r.rc, get: (t, off) => r.get(t, OFF + off) };
}

/** MOCK_DOMAIN(_FLAGS) on pt: the selftest object, HWPT and device ids. */
export function mockDomain(
  e: Env,
  pt: number,
  flags?: number,
): { rc: number; stdev: number; hwpt: number; idev: number } {
  const r =
    flags === undefined
      ? testCmd(e, T.IOMMU_TEST_OP_MOCK_DOMAIN, pt)
      : testCmd(e, T.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, pt, [["u32", 12, flags]]);
  return { rc: r.rc, stdev: Number(r.get("u32", 0)), hwpt: Number(r.get("u32", 4)), idev: Number(r.get("u32", 8)) };
}

export function mockDomainOk(e: Env, pt: number, flags?: number): { stdev: number; hwpt: number; idev: number } {
  const r = mockDomain(e, pt, flags);
  assert.equal(r.rc, 0, "MOCK_DOMAIN");
  return r;
}

export function replace(e: Env, stdev: number, pt: number): { rc: number; pt: number } {
  const r = testCmd(e, T.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, [["u32", 0, pt]]);
  return { rc: r.rc, pt: Number(r.get("u32", 0)) };
}

export function checkMap(e: Env, hwpt: number, iova: bigint, length: bigint, uptr: number | bigint): number {
  return testCmd(e, T.IOMMU_TEST_OP_MD_CHECK_MAP, hwpt, [
    ["u64", 0, iova],
    ["u64", 8, length],
    ["u64", 16, BigInt(uptr)],
  ]).rc;
}

export function checkRefs(e: Env, uptr: number | bigint, length: bigint, refs: number): number {
  return testCmd(e, T.IOMMU_TEST_OP_MD_CHECK_REFS, 0, [
    ["u64", 0, length],
    ["u64", 8, BigInt(uptr)],
    ["u32", 16, refs],
  ]).rc;
}

export function createAccess(e: Env, ioas: number, flags = 0): { rc: number; fd: number } {
  const r = testCmd(e, T.IOMMU_TEST_OP_CREATE_ACCESS, ioas, [["u32", 4, flags]]);
  return { rc: r.rc, fd: Number(r.get("u32", 0)) };
}

export function accessPages(
  e: Env,
  fd: number,
  iova: bigint,
  length: bigint,
  uptr: number | bigint,
  flags = 0,
): { rc: number; id: number } {
  const r = testCmd(e, T.IOMMU_TEST_OP_ACCESS_PAGES, fd, [
    ["u32", 0, flags],
    ["u64", 8, iova],
    ["u64", 16, length],
    ["u64", 24, BigInt(uptr)],
  ]);
  return { rc: r.rc, id: Number(r.get("u32", 4)) };
}

export function destroyAccessPages(e: Env, fd: number, id: number): number {
  return testCmd(e, T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, fd, [["u32", 0, id]]).rc;
}

export function accessRw(e: Env, fd: number, iova: bigint, length: bigint, uptr: number | bigint, flags = 0): number {
  return testCmd(e, T.IOMMU_TEST_OP_ACCESS_RW, fd, [
    ["u64", 0, iova],
    ["u64", 8, length],
    ["u64", 16, BigInt(uptr)],
    ["u32", 24, flags],
  ]).rc;
}

export function accessReplaceIoas(e: Env, fd: number, ioas: number): number {
  return testCmd(e, T.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, fd, [["u32", 0, ioas]]).rc;
}

export function hwptAlloc(
  e: Env,
  dev: number,
  pt: number,
  flags = 0,
  data?: { type: number; uptr: bigint; len: number },
): { rc: number; id: number } {
  const r = raw(e, U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, {
    size: U.iommu_hwpt_alloc.size,
    flags,
    dev_id: dev,
    pt_id: pt,
    data_type: data?.type ?? 0,
    data_len: data?.len ?? 0,
    data_uptr: data?.uptr ?? 0n,
  });
  return { rc: r.rc, id: r.out.out_hwpt_id };
}
