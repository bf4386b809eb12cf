// In-kernel accesses (device.c iommufd_access_*): what an emulated device uses to reach an
// IOAS without DMA, driven here as a VFIO emulated device would (no uAPI exists).

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { EADDRINUSE, EBUSY, EDEADLK, EINVAL, ENOENT, EPERM } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import type { IommufdCtx } from "../../src/iommufd/main.js";
import {
  iommufdAccessAttach,
  iommufdAccessCreate,
  iommufdAccessDestroy,
  iommufdAccessDetach,
  iommufdAccessPinPages,
  iommufdAccessReplace,
  iommufdAccessRw,
  IOMMUFD_ACCESS_RW_WRITE,
  iommufdAccessUnpinPages,
  type IommufdAccess,
} from "../../src/iommufd/access.js";
import { type Env, setup, teardown, ioasAlloc, map, unmap, destroy, ranges, checkAll, FIXED } from "./helpers.js";

let e: Env;
beforeEach(() => (e = setup()));
afterEach(() => teardown(e));

const ctx = () => e.p.proc.files.lookup(e.fd)!.privateData as IommufdCtx;

/** An emulated device: records unmap calls and unpins what it pinned there (unless stubborn). */
function device(stubborn = false) {
  const pinned: [bigint, bigint][] = [];
  const calls: [bigint, bigint][] = [];
  const box: { access?: IommufdAccess } = {};
  const ops = {
    needsPinPages: true,
    unmap(iova: bigint, length: bigint) {
      calls.push([iova, length]);
      if (stubborn) return;
      for (const p of [...pinned]) {
        if (p[0] + p[1] > iova && p[0] < iova + length) {
          iommufdAccessUnpinPages(box.access!, p[0], p[1]);
          pinned.splice(pinned.indexOf(p), 1);
        }
      }
    },
  };
  const a = iommufdAccessCreate(ctx(), ops);
  assert.ok(typeof a !== "number");
  const access = (box.access = a);
  const pin = (iova: bigint, len: bigint, write = true) => {
    const r = iommufdAccessPinPages(access, iova, len, write);
    if (typeof r !== "number") pinned.push([iova, len]);
    return r;
  };
  return { access, pin, pinned, calls };
}

describe("iommufd_access", () => {
  it("pins and reads/writes the process's pages through the IOAS", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x100000n, 0x3000n).rc, 0);
    const dev = device();
    assert.equal(iommufdAccessAttach(dev.access, id), 0);
    assert.equal(ranges(e, id, 1).align, 0x1000n, "a pinning access raises the alignment");
    assert.equal(iommufdAccessAttach(dev.access, id), -EINVAL, "attached already");
    const pages = dev.pin(0x101000n, 0x2000n);
    assert.ok(Array.isArray(pages));
    assert.equal(pages[0], e.p.proc.mm.pageAt(e.buf + 0x1000));
    assert.equal(pages[0]!.pins, 1);
    assert.equal(e.p.proc.user.lockedVm, 2);
    e.p.write(e.buf + 0x2004, new Uint8Array([7, 8]));
    const buf = new Uint8Array(2);
    assert.equal(iommufdAccessRw(dev.access, 0x102004n, buf, 0), 0);
    assert.deepEqual([...buf], [7, 8]);
    assert.equal(
      iommufdAccessRw(dev.access, 0x100ffen, new Uint8Array([1, 2, 3, 4]), IOMMUFD_ACCESS_RW_WRITE),
      0,
      "across a page",
    );
    assert.deepEqual([...e.p.read(e.buf + 0xffe, 4)], [1, 2, 3, 4]);
    assert.equal(iommufdAccessRw(dev.access, 0x102ffen, new Uint8Array(4), 0), -ENOENT, "past the area");
    checkAll(e);
    assert.equal(destroy(e, id), -EBUSY, "the access holds the IOAS");
    assert.equal(destroy(e, dev.access.id), -EBUSY, "the driver holds the access");
    assert.equal(dev.access.id, 2);
    iommufdAccessDetach(dev.access);
    assert.deepEqual(dev.calls, [[0n, 0xffffffffffffffffn]], "detach asks to unpin everything");
    assert.equal(e.p.proc.user.lockedVm, 0);
    assert.equal(ranges(e, id, 1).align, 1n);
    iommufdAccessDestroy(dev.access);
    assert.equal(destroy(e, id), 0);
  });

  it("refuses what the kernel refuses", () => {
    const id = ioasAlloc(e);
    const dev = device();
    assert.deepEqual(dev.pin(0x100000n, 0x1000n), -ENOENT, "not attached");
    assert.equal(map(e, id, 0x100001n, 0x1000n).rc, 0);
    assert.equal(iommufdAccessAttach(dev.access, id), -EADDRINUSE, "an unaligned area");
    assert.equal(unmap(e, id, 0n, 0xffffffffffffffffn).rc, 0);
    assert.equal(iommufdAccessAttach(dev.access, 77), -ENOENT);
    assert.equal(iommufdAccessReplace(dev.access, id), -ENOENT, "replace needs an attachment");
    assert.equal(iommufdAccessAttach(dev.access, id), 0);
    assert.equal(map(e, id, 0x100000n, 0x2000n, { flags: FIXED | U.IOMMU_IOAS_MAP_READABLE }).rc, 0);
    assert.equal(dev.pin(0x100000n, 0x1000n, true), -EPERM, "write pin of a read-only area");
    assert.ok(Array.isArray(dev.pin(0x100000n, 0x1000n, false)));
    assert.equal(dev.pin(0x100000n, 0n), -EINVAL);
    assert.equal(dev.pin(0x101000n, 0x2000n, false), -ENOENT, "runs past the area");
    assert.equal(iommufdAccessRw(dev.access, 0x100000n, new Uint8Array(1), IOMMUFD_ACCESS_RW_WRITE), -EPERM);
    const other = ioasAlloc(e);
    assert.equal(iommufdAccessReplace(dev.access, other), 0, "replace unpins through ops.unmap");
    assert.equal(dev.pinned.length, 0);
    checkAll(e);
    iommufdAccessDestroy(dev.access);
  });

  it("unmap asks accesses to unpin, and gives up with EDEADLK on one that does not", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x100000n, 0x2000n).rc, 0);
    assert.equal(map(e, id, 0x200000n, 0x1000n).rc, 0);
    const good = device();
    assert.equal(iommufdAccessAttach(good.access, id), 0);
    assert.ok(Array.isArray(good.pin(0x100000n, 0x1000n)));
    assert.ok(Array.isArray(good.pin(0x100000n, 0x1000n)), "the same range twice: one pin, two users");
    assert.equal(e.p.proc.user.lockedVm, 1);
    assert.deepEqual(unmap(e, id, 0x100000n, 0x2000n), { rc: 0, length: 0x2000n });
    assert.deepEqual(good.calls, [[0x100000n, 0x2000n]]);
    assert.equal(e.p.proc.user.lockedVm, 0);
    iommufdAccessDetach(good.access);
    iommufdAccessDestroy(good.access);
    const bad = device(true);
    assert.equal(iommufdAccessAttach(bad.access, id), 0);
    assert.ok(Array.isArray(bad.pin(0x200000n, 0x1000n)));
    assert.equal(unmap(e, id, 0x200000n, 0x1000n).rc, -EDEADLK);
    assert.equal(bad.calls.length, 101);
    assert.equal(bad.pin(0x200000n, 0x1000n), -EINVAL, "the area refuses new pins once unmap began");
    checkAll(e);
    for (const [iova, len] of bad.pinned.splice(0)) iommufdAccessUnpinPages(bad.access, iova, len);
    assert.deepEqual(unmap(e, id, 0x200000n, 0x1000n), { rc: 0, length: 0x1000n });
    iommufdAccessDetach(bad.access);
    iommufdAccessDestroy(bad.access);
  });
});
