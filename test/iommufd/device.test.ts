// Devices on iommufd through the VFIO device cdev: replays the oracle's iommufd-attach
// scenario (test/iommufd/oracle/iommufd-attach.txt; the recorded answers of the real 6.12
// kernel are in iommufd-attach.custom.txt, step numbers in the comments), then the rules
// around binding (group vs cdev, one bound file) and DMA through the attached domain.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EADDRINUSE, EBADF, EBADFD, EBUSY, EINVAL, ENOENT, EOPNOTSUPP } from "../../src/uapi/errno.js";
import { _IO, VFIO_BASE, VFIO_TYPE } from "../../src/uapi/ioctl.js";
import * as U from "../../src/uapi/iommufd.js";
import * as V from "../../src/uapi/vfio.js";
import { CAP_IPC_LOCK, CAP_SYS_RESOURCE } from "../../src/kernel/process.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import {
  type Env,
  setup,
  teardown,
  ioasAlloc,
  map,
  unmap,
  destroy,
  ranges,
  rawFields as raw,
  bindIommufd as bind,
  attachPt as attach,
  checkAll,
  RW,
  FIXED,
  allowIovas as allow,
} from "./helpers.js";

const BUF = 0x10000000;
const CDEV = "/dev/vfio/devices/vfio0";
const MAX = 0xffffffffffffffffn;

function rootEnv(): Env {
  const e = setup({ caps: [CAP_IPC_LOCK, CAP_SYS_RESOURCE] });
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
  return e;
}

function detach(e: Env, d: number) {
  return raw(e, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, [["u32", 0, 8]], undefined, d).rc;
}
function hwptAlloc(e: Env, set: [string, number, number | bigint][]) {
  const r = raw(e, U.IOMMU_HWPT_ALLOC, [["u32", 0, 48], ...set]);
  return { rc: r.rc, id: Number(r.get("u32", 16)) };
}
const vmPinKb = (e: Env) => e.p.proc.mm.pinnedVm * 4;

describe("the oracle's iommufd-attach scenario", () => {
  it("reproduces every recorded answer", () => {
    const e = rootEnv();
    const scr = e.tp.scratchAddr();
    assert.deepEqual([ioasAlloc(e), ioasAlloc(e), ioasAlloc(e)], [1, 2, 3]); // 5-7
    const [ioas, ioas2, ioas3] = [1, 2, 3];
    const d = e.p.open(CDEV); // 8
    assert.ok(d >= 0);
    const b = bind(e, d); // 9
    assert.deepEqual(b, { rc: 0, devid: 4 });
    const dev = b.devid;
    const hw = raw(e, U.IOMMU_GET_HW_INFO, [
      ["u32", 0, 40],
      ["u32", 8, dev],
      ["u32", 12, 64],
      ["u64", 16, scr + 256],
    ]); // 10
    assert.equal(hw.rc, 0);
    assert.deepEqual(
      [
        ["u32", 12],
        ["u32", 24],
        ["u8", 28],
        ["u64", 32],
        ["u32", 256],
        ["u32", 260],
        ["u64", 264],
        ["u64", 272],
        ["u64", 280],
      ].map(([t, o]) => hw.get(t as string, o as number)),
      [0x18n, 1n, 0n, 0n, 1n, 0n, 0xd2008c22260286n, 0xf00f4an, 0n],
    );
    const hw8 = raw(e, U.IOMMU_GET_HW_INFO, [
      ["u32", 0, 40],
      ["u32", 8, dev],
      ["u32", 12, 8],
      ["u64", 16, scr + 256],
    ]); // 11
    assert.deepEqual([hw8.rc, hw8.get("u32", 12), hw8.get("u32", 256), hw8.get("u64", 264)], [0, 0x18n, 1n, 0n]);
    const hw32 = raw(e, U.IOMMU_GET_HW_INFO, [
      ["u32", 0, 32],
      ["u32", 8, dev],
    ]); // 12
    assert.deepEqual([hw32.rc, hw32.get("u32", 12), hw32.get("u32", 24), hw32.get("u64", 32)], [0, 0x18n, 1n, 0n]);
    // attach refused: an area in the MSI window, above the aperture, unaligned; an allowed range over the MSI window
    for (const [iova, va] of [
      [0xfee00000n, BUF],
      [0x8000000000n, BUF],
      [0x10001n, BUF + 1],
    ] as const) {
      assert.equal(map(e, ioas2, iova, 0x1000n, { va }).rc, 0); // 13, 16, 19
      assert.equal(attach(e, d, ioas2).rc, -EADDRINUSE); // 14, 17, 20
      assert.deepEqual(unmap(e, ioas2, 0n, MAX), { rc: 0, length: 0x1000n }); // 15, 18, 21
    }
    assert.equal(allow(e, ioas2, [[0xfee00000n, 0xfeefffffn]]), 0); // 22
    assert.equal(attach(e, d, ioas2).rc, -EADDRINUSE); // 23
    assert.equal(allow(e, ioas2, []), 0); // 24
    assert.equal(vmPinKb(e), 0); // 25
    checkAll(e);
    assert.equal(map(e, ioas, 0x100000n, 0x4000n, { va: BUF }).rc, 0); // 26
    const a = attach(e, d, ioas); // 27
    assert.deepEqual(a, { rc: 0, pt: 5 });
    const hwpt = a.pt;
    assert.equal(vmPinKb(e), 16); // 28
    const r = ranges(e, ioas, 4); // 29
    assert.equal(r.align, 0x1000n);
    assert.deepEqual(r.list, [
      [0n, 0xfedfffffn],
      [0xfef00000n, 0x7fffffffffn],
    ]);
    assert.equal(map(e, ioas, 0x200000n, 0x4000n, { va: BUF }).rc, 0); // 30
    assert.equal(vmPinKb(e), 32); // 31: a second MAP of the same memory pins again
    const cp = raw(e, U.IOMMU_IOAS_COPY, [
      ["u32", 0, 40],
      ["u32", 4, FIXED | RW],
      ["u32", 8, ioas3],
      ["u32", 12, ioas],
      ["u64", 16, 0x4000],
      ["u64", 24, 0x100000],
      ["u64", 32, 0x100000],
    ]);
    assert.equal(cp.rc, 0); // 32
    assert.equal(vmPinKb(e), 32); // 33
    assert.equal(allow(e, ioas, [[0xfee00000n, 0xfeefffffn]]), -EADDRINUSE); // 34
    assert.equal(allow(e, ioas, [[0x1000n, 0x1fffn]]), 0); // 35
    const opt = raw(e, U.IOMMU_OPTION, [
      ["u32", 0, 24],
      ["u32", 4, U.IOMMU_OPTION_HUGE_PAGES],
      ["u16", 8, 0],
      ["u32", 12, ioas],
      ["u64", 16, 0],
    ]);
    assert.equal(opt.rc, -EINVAL); // 36
    assert.deepEqual(unmap(e, ioas, 0x200000n, 0x4000n), { rc: 0, length: 0x4000n }); // 37
    assert.equal(vmPinKb(e), 16); // 38
    const h1 = hwptAlloc(e, [
      ["u32", 8, dev],
      ["u32", 12, ioas],
    ]); // 39
    assert.deepEqual(h1, { rc: 0, id: 6 });
    assert.equal(
      hwptAlloc(e, [
        ["u32", 4, 4],
        ["u32", 8, dev],
        ["u32", 12, ioas],
      ]).rc,
      -EOPNOTSUPP,
    ); // 40
    const data: [string, number, number | bigint][] = [
      ["u32", 24, 1],
      ["u32", 28, 24],
      ["u64", 32, scr + 256],
    ];
    assert.equal(hwptAlloc(e, [["u32", 8, dev], ["u32", 12, ioas], ...data]).rc, -EOPNOTSUPP); // 41
    assert.equal(
      hwptAlloc(e, [
        ["u32", 8, dev],
        ["u32", 12, h1.id],
      ]).rc,
      -EOPNOTSUPP,
    ); // 42
    assert.equal(hwptAlloc(e, [["u32", 8, dev], ["u32", 12, h1.id], ...data]).rc, -EINVAL); // 43
    assert.equal(hwptAlloc(e, [["u32", 8, dev], ["u32", 12, hwpt], ...data]).rc, -EINVAL); // 44
    assert.equal(
      hwptAlloc(e, [
        ["u32", 8, dev],
        ["u32", 12, dev],
      ]).rc,
      -EINVAL,
    ); // 45
    assert.equal(
      raw(e, U.IOMMU_HWPT_SET_DIRTY_TRACKING, [
        ["u32", 0, 16],
        ["u32", 4, 1],
        ["u32", 8, h1.id],
      ]).rc,
      -EOPNOTSUPP,
    ); // 46
    assert.equal(
      raw(e, U.IOMMU_HWPT_SET_DIRTY_TRACKING, [
        ["u32", 0, 16],
        ["u32", 8, hwpt],
      ]).rc,
      -EOPNOTSUPP,
    ); // 47
    const bm = (iova: number, len: number, pg: number) =>
      raw(e, U.IOMMU_HWPT_GET_DIRTY_BITMAP, [
        ["u32", 0, 48],
        ["u32", 4, h1.id],
        ["u64", 16, iova],
        ["u64", 24, len],
        ["u64", 32, pg],
      ]).rc;
    assert.equal(bm(0x100000, 0x4000, 0x1000), -EOPNOTSUPP); // 48
    assert.equal(bm(0x100000, 0x4000, 0), -EINVAL); // 49
    assert.equal(bm(0x100001, 0x4000, 0x1000), -EINVAL); // 50
    assert.equal(bm(0x100000, 0, 0), -EINVAL); // 51
    const inv1 = raw(e, U.IOMMU_HWPT_INVALIDATE, [
      ["u32", 0, 32],
      ["u32", 4, h1.id],
    ]); // 52
    assert.deepEqual([inv1.rc, inv1.get("u32", 24)], [-ENOENT, 0n]);
    const inv2 = raw(e, U.IOMMU_HWPT_INVALIDATE, [
      ["u32", 0, 32],
      ["u32", 4, hwpt],
      ["u32", 24, 1],
      ["u32", 20, 16],
      ["u64", 8, scr + 256],
    ]); // 53
    assert.deepEqual([inv2.rc, inv2.get("u32", 24)], [-ENOENT, 0n]);
    assert.equal(
      raw(e, U.IOMMU_VFIO_IOAS, [
        ["u32", 0, 12],
        ["u32", 4, ioas],
        ["u16", 8, U.IOMMU_VFIO_IOAS_SET],
      ]).rc,
      0,
    ); // 54
    assert.equal(e.p.ioctl(e.fd, _IO(VFIO_TYPE, VFIO_BASE + 1), 4), 0); // 55 DMA_CC: the HWPTs do not enforce coherency
    const info = raw(e, _IO(VFIO_TYPE, VFIO_BASE + 12), [["u32", 0, 16]]); // 56
    assert.deepEqual(
      [info.rc, info.get("u32", 0), info.get("u32", 4), info.get("u64", 8)],
      [0, 0x58n, 3n, 0x40201000n],
    );
    assert.equal(destroy(e, dev), -EBUSY); // 57
    assert.equal(destroy(e, ioas), -EBUSY); // 58
    assert.deepEqual(attach(e, d, h1.id), { rc: 0, pt: 6 }); // 59: replace
    assert.equal(destroy(e, hwpt), -ENOENT); // 60: the automatic HWPT went with its device
    assert.deepEqual(attach(e, d, ioas), { rc: 0, pt: 5 }); // 61
    assert.equal(destroy(e, h1.id), 0); // 62
    assert.equal(detach(e, d), 0); // 63
    assert.equal(destroy(e, 6), -ENOENT); // 64
    assert.equal(destroy(e, 5), -ENOENT); // 65
    assert.deepEqual(attach(e, d, ioas), { rc: 0, pt: 5 }); // 66
    assert.deepEqual(attach(e, d, ioas3), { rc: 0, pt: 6 }); // 67
    assert.equal(destroy(e, 5), -ENOENT); // 68
    assert.equal(vmPinKb(e), 16); // 69: only ioas3's copy is in a domain now
    checkAll(e);
    assert.equal(e.p.close(e.fd), 0); // 70
    assert.equal(vmPinKb(e), 16); // 71: the bound device keeps the context
    assert.equal(raw(e, U.IOMMU_IOAS_ALLOC, [["u32", 0, 12]]).rc, -EBADF); // 72
    checkAll(e);
    assert.equal(e.p.close(d), 0); // 73
    assert.equal(vmPinKb(e), 0);
    teardown(e);
  });
});

describe("VFIO_DEVICE_BIND_IOMMUFD", () => {
  it("checks its argument, refuses a second bind and a bind while the group is open", () => {
    const e = rootEnv();
    const d = e.p.open(CDEV);
    assert.equal(raw(e, V.VFIO_DEVICE_GET_INFO, [["u32", 0, 16]], undefined, d).rc, -EINVAL, "unbound");
    assert.equal(attach(e, d, 1).rc, -EINVAL, "unbound");
    assert.equal(bind(e, d, -1).rc, -EINVAL);
    assert.equal(bind(e, d, 99).rc, -EBADF);
    assert.equal(bind(e, d, d).rc, -EBADFD);
    assert.equal(bind(e, d, e.fd, [["u32", 4, 1]]).rc, -EINVAL);
    assert.equal(bind(e, d, e.fd, [["u32", 0, 8]]).rc, -EINVAL, "argsz 8");
    const g = e.p.open("/dev/vfio/1");
    assert.ok(g >= 0);
    assert.equal(bind(e, d).rc, -EBUSY, "the group file is open");
    assert.equal(e.p.close(g), 0);
    assert.deepEqual(bind(e, d), { rc: 0, devid: 1 });
    assert.equal(e.p.open("/dev/vfio/1"), -EBUSY, "a bound cdev blocks the group");
    assert.equal(bind(e, d).rc, -EINVAL, "bound already");
    const d2 = e.p.open(CDEV);
    const i2 = e.p.open("/dev/iommu");
    assert.equal(bind(e, d2, i2).rc, -EINVAL, "one bound file per device");
    assert.equal(bind(e, d2).rc, -EINVAL);
    assert.equal(attach(e, d, 1, 1).rc, -EINVAL, "attach flags");
    assert.equal(attach(e, d, 42).rc, -ENOENT);
    assert.equal(attach(e, d, 1).rc, -EINVAL, "the device itself as pt_id");
    checkAll(e);
    assert.equal(e.p.close(d), 0);
    assert.deepEqual(bind(e, d2, i2), { rc: 0, devid: 1 }, "free again after close");
    teardown(e);
  });
});

describe("device DMA through the attached domain", () => {
  it("reads and writes process memory at mapped IOVAs and faults elsewhere", () => {
    const e = rootEnv();
    const id = ioasAlloc(e);
    const d = e.p.open(CDEV);
    assert.equal(bind(e, d).rc, 0);
    assert.equal(map(e, id, 0x100000n, 0x2000n, { va: BUF }).rc, 0);
    assert.equal(map(e, id, 0x200000n, 0x1000n, { va: BUF + 0x2000, flags: FIXED | U.IOMMU_IOAS_MAP_READABLE }).rc, 0);
    const core = IommuCore.of(e.twin.kernel);
    const fn = core.pciFunctions[0]!;
    assert.equal(fn.hw.dma!.read(0x100000n, 4), null, "blocked before attach");
    assert.equal(attach(e, d, id).rc, 0);
    e.p.write(BUF + 0x10, new Uint8Array([1, 2, 3, 4]));
    assert.deepEqual([...fn.hw.dma!.read(0x100010n, 4)!], [1, 2, 3, 4]);
    assert.equal(fn.hw.dma!.write(0x101000n, new Uint8Array([9, 9])), true);
    assert.deepEqual([...e.p.read(BUF + 0x1000, 2)], [9, 9]);
    assert.equal(fn.hw.dma!.write(0x200000n, new Uint8Array([1])), false, "read-only mapping");
    assert.equal(fn.hw.dma!.read(0x300000n, 1), null, "not mapped");
    assert.deepEqual(
      core.faults.slice(-2).map((f) => [f.iova, f.reason]),
      [
        [0x200000n, "permission"],
        [0x300000n, "not-present"],
      ],
    );
    assert.deepEqual(unmap(e, id, 0x100000n, 0x2000n), { rc: 0, length: 0x2000n });
    assert.equal(fn.hw.dma!.read(0x100010n, 4), null, "unmapped");
    teardown(e);
  });
});
