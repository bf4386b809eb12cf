// The corpus scenario iommufd-accounting (test/scenarios/iommufd-accounting.{txt,golden}),
// which drops CAP_IPC_LOCK: the scenario runner cannot, so it is replayed here with a process
// spawned without it (RLIMIT_MEMLOCK 16 KiB, CAP_SYS_RESOURCE kept as root has it).

import { it } from "node:test";
import assert from "node:assert/strict";
import { EBUSY, ENOMEM } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import * as V from "../../src/uapi/vfio.js";
import { CAP_SYS_RESOURCE } from "../../src/kernel/process.js";
import {
  type Env,
  setup,
  teardown,
  ioasAlloc,
  map,
  unmap,
  destroy,
  rawFields as raw,
  bindIommufd,
  attachPt,
  checkAll,
  RW,
  FIXED,
} from "./helpers.js";

const BUF = 0x10000000;

function option(e: Env, op: number, val = 0n) {
  const r = raw(e, U.IOMMU_OPTION, [
    ["u32", 0, 24],
    ["u32", 4, U.IOMMU_OPTION_RLIMIT_MODE],
    ["u16", 8, op],
    ["u64", 16, val],
  ]);
  return [r.rc, r.get("u64", 16)];
}

it("reproduces the oracle's iommufd-accounting scenario", () => {
  const e = setup({ caps: [CAP_SYS_RESOURCE], memlock: 0x4000 }); // 5, 6
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
  assert.deepEqual(option(e, U.IOMMU_OPTION_OP_GET), [0, 0n]); // 8
  const [a, b] = [ioasAlloc(e), ioasAlloc(e)]; // 9, 10
  assert.equal(option(e, U.IOMMU_OPTION_OP_SET, 1n)[0], -EBUSY); // 11
  assert.equal(map(e, a, 0x100000n, 0x3000n, { va: BUF }).rc, 0); // 12
  assert.equal(map(e, a, 0x200000n, 0x3000n, { va: BUF + 0x10000 }).rc, 0); // 13
  const d = e.p.open("/dev/vfio/devices/vfio0"); // 14
  assert.equal(bindIommufd(e, d).rc, 0); // 15
  const attach = () => attachPt(e, d, a).rc;
  assert.equal(attach(), -ENOMEM); // 16: six pages over a four-page limit
  assert.equal(e.p.proc.user.lockedVm, 0);
  assert.deepEqual(unmap(e, a, 0x200000n, 0x3000n), { rc: 0, length: 0x3000n }); // 17
  assert.equal(attach(), 0); // 18
  assert.equal(e.p.proc.user.lockedVm, 3);
  assert.equal(map(e, a, 0x300000n, 0x1000n, { va: BUF }).rc, 0); // 19: the same memory again: charged
  assert.equal(map(e, a, 0x400000n, 0x1000n, { va: BUF }).rc, -ENOMEM); // 20
  const cp = raw(e, U.IOMMU_IOAS_COPY, [
    ["u32", 0, 40],
    ["u32", 4, FIXED | RW],
    ["u32", 8, a],
    ["u32", 12, a],
    ["u64", 16, 0x3000],
    ["u64", 24, 0x500000],
    ["u64", 32, 0x100000],
  ]);
  assert.equal(cp.rc, 0); // 21: COPY shares the pin
  assert.equal(e.p.proc.user.lockedVm, 4);
  checkAll(e);
  assert.deepEqual(unmap(e, a, 0x300000n, 0x1000n), { rc: 0, length: 0x1000n }); // 22
  assert.equal(map(e, a, 0x400000n, 0x1000n, { va: BUF }).rc, 0); // 23
  assert.equal(e.p.close(d), 0); // 24
  assert.equal(e.p.proc.user.lockedVm, 0, "no domain, no pins");
  assert.equal(map(e, a, 0x600000n, 0x3000n, { va: BUF + 0x10000 }).rc, 0); // 25
  assert.equal(destroy(e, a), 0); // 26
  assert.equal(destroy(e, b), 0); // 27
  assert.deepEqual(option(e, U.IOMMU_OPTION_OP_SET, 1n), [0, 1n]); // 28
  assert.deepEqual(option(e, U.IOMMU_OPTION_OP_GET), [0, 1n]); // 29
  teardown(e);
});

it("charges compat MAP_DMA per user, per mm only in RLIMIT_MODE 1 (oracle: iommufd-compat-accounting)", () => {
  for (const mode of [0n, 1n]) {
    const e = setup({ caps: [CAP_SYS_RESOURCE] });
    assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
    if (mode) assert.deepEqual(option(e, U.IOMMU_OPTION_OP_SET, 1n), [0, 1n]);
    const g = e.p.open("/dev/vfio/1");
    const at = e.tp.scratchAddr() + 0x4000;
    e.p.write(at, new Uint8Array(new Int32Array([e.fd]).buffer));
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, at), 0);
    const name = e.tp.scratchAddr() + 0x5000;
    e.p.write(name, new TextEncoder().encode("0000:00:01.0\0"));
    const d = e.p.ioctl(g, V.VFIO_GROUP_GET_DEVICE_FD, name);
    assert.ok(d >= 0);
    const m = raw(e, V.VFIO_IOMMU_MAP_DMA, [
      ["u32", 0, 32],
      ["u32", 4, 3],
      ["u64", 8, BUF],
      ["u64", 16, 0x100000],
      ["u64", 24, 0x4000],
    ]);
    assert.equal(m.rc, 0);
    // VmLck is mm->locked_vm, VmPin mm->pinned_vm
    assert.deepEqual([e.p.proc.mm.lockedVm * 4, e.p.proc.mm.pinnedVm * 4], mode ? [16, 16] : [0, 16]);
    assert.equal(e.p.proc.user.lockedVm, mode ? 0 : 4);
    teardown(e);
  }
});
