// A VFIO group set to an iommufd: replays the oracle's iommufd-group-compat scenario
// (test/iommufd/oracle/iommufd-group-compat.txt, answers of the real 6.12 kernel in
// iommufd-group-compat.custom.txt; step numbers in the comments).

import { it } from "node:test";
import assert from "node:assert/strict";
import { EBUSY, EFAULT, EINVAL, ENOENT } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import * as V from "../../src/uapi/vfio.js";
import { CAP_IPC_LOCK, CAP_SYS_RESOURCE } from "../../src/kernel/process.js";
import { type Env, setup, teardown, destroy, ranges, rawFields as raw, checkAll, bindIommufd } from "./helpers.js";

const BUF = 0x10000000;

function status(e: Env, g: number) {
  const r = raw(e, V.VFIO_GROUP_GET_STATUS, [["u32", 0, 8]], undefined, g);
  return [r.rc, Number(r.get("u32", 4))];
}
function setContainer(e: Env, g: number, fd: number) {
  const at = e.tp.scratchAddr() + 0x4000;
  e.p.write(at, new Uint8Array(new Int32Array([fd]).buffer));
  return e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, at);
}
function getDeviceFd(e: Env, g: number, name: string) {
  const at = e.tp.scratchAddr() + 0x5000;
  e.p.write(at, new TextEncoder().encode(name + "\0"));
  return e.p.ioctl(g, V.VFIO_GROUP_GET_DEVICE_FD, at);
}
function mapDma(e: Env, va: number, iova: number, size: number) {
  return raw(e, V.VFIO_IOMMU_MAP_DMA, [
    ["u32", 0, 32],
    ["u32", 4, 3],
    ["u64", 8, va],
    ["u64", 16, iova],
    ["u64", 24, size],
  ]).rc;
}
function unmapDma(e: Env, iova: number, size: number) {
  const r = raw(e, V.VFIO_IOMMU_UNMAP_DMA, [
    ["u32", 0, 24],
    ["u64", 8, iova],
    ["u64", 16, size],
  ]);
  return [r.rc, r.get("u64", 16)];
}
function vfioIoasGet(e: Env) {
  const r = raw(e, U.IOMMU_VFIO_IOAS, [
    ["u32", 0, 12],
    ["u16", 8, U.IOMMU_VFIO_IOAS_GET],
  ]);
  return [r.rc, Number(r.get("u32", 4))];
}
const vmPinKb = (e: Env) => e.p.proc.mm.pinnedVm * 4;

it("reproduces the oracle's iommufd-group-compat scenario", () => {
  const e = setup({ caps: [CAP_IPC_LOCK, CAP_SYS_RESOURCE] });
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
  const g = e.p.open("/dev/vfio/1"); // 5
  assert.ok(g >= 0);
  assert.deepEqual(status(e, g), [0, 1]); // 6
  assert.equal(setContainer(e, g, e.fd), 0); // 7
  assert.deepEqual(status(e, g), [0, 3]); // 8
  assert.deepEqual(vfioIoasGet(e), [0, 1]); // 9
  assert.deepEqual(ranges(e, 1, 4).list, [[0n, 0xffffffffffffffffn]]); // 10
  const d = getDeviceFd(e, g, "0000:00:01.0"); // 11
  assert.ok(d >= 0);
  const info = raw(e, V.VFIO_DEVICE_GET_INFO, [["u32", 0, 24]], undefined, d); // 12
  assert.deepEqual([info.rc, info.get("u32", 4), info.get("u32", 8), info.get("u32", 12)], [0, 2n, 9n, 5n]);
  const r13 = ranges(e, 1, 4); // 13
  assert.equal(r13.align, 0x1000n);
  assert.deepEqual(r13.list, [
    [0n, 0xfedfffffn],
    [0xfef00000n, 0x7fffffffffn],
  ]);
  assert.equal(vmPinKb(e), 0); // 14
  assert.equal(mapDma(e, BUF, 0x100000, 0x4000), 0); // 15
  assert.equal(mapDma(e, BUF, 0xfee00000, 0x1000), -EINVAL); // 16
  assert.equal(mapDma(e, 0x50000000, 0x200000, 0x1000), -EFAULT); // 17
  assert.equal(vmPinKb(e), 16); // 18
  assert.equal(e.p.ioctl(e.fd, V.VFIO_CHECK_EXTENSION, V.VFIO_DMA_CC_IOMMU), 0); // 19
  const ii = raw(e, V.VFIO_IOMMU_GET_INFO, [["u32", 0, 4096]]); // 20
  assert.deepEqual([ii.rc, ii.get("u32", 4), ii.get("u64", 8)], [0, 3n, 0x40201000n]);
  assert.deepEqual(unmapDma(e, 0x101000, 0x1000), [-ENOENT, 0n]); // 21
  assert.deepEqual(unmapDma(e, 0x100000, 0x4000), [0, 0x4000n]); // 22
  assert.equal(vmPinKb(e), 0); // 23
  const d2 = getDeviceFd(e, g, "0000:00:01.0"); // 24
  assert.ok(d2 >= 0);
  assert.equal(e.p.close(d2), 0); // 25
  checkAll(e);
  assert.equal(destroy(e, 1), -EBUSY); // 26 the compat IOAS
  assert.equal(destroy(e, 2), -EBUSY); // 27 the device
  assert.equal(destroy(e, 3), -EBUSY); // 28 its automatic HWPT
  const c = e.p.open("/dev/vfio/devices/vfio0"); // 29
  assert.ok(c >= 0);
  assert.equal(bindIommufd(e, c).rc, -EBUSY); // 30
  assert.equal(e.p.ioctl(g, V.VFIO_GROUP_UNSET_CONTAINER), 0); // 31: no EBUSY on the iommufd path
  assert.deepEqual(status(e, g), [0, 0]); // 32: still owned by the bound device
  assert.equal(raw(e, V.VFIO_DEVICE_GET_INFO, [["u32", 0, 24]], undefined, d).rc, 0); // 33
  assert.equal(e.p.close(d), 0); // 34
  assert.equal(vmPinKb(e), 0); // 35
  assert.equal(setContainer(e, g, e.fd), 0); // 36
  assert.deepEqual(vfioIoasGet(e), [0, 1]); // 37
  assert.equal(e.p.close(g), 0); // 38
  assert.deepEqual(bindIommufd(e, c), { rc: 0, devid: 2 }); // 39
  checkAll(e);
  assert.equal(e.p.close(c), 0); // 40
  teardown(e);
});
