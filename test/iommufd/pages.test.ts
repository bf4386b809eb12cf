// Lazy pinning and accounting (pages.c) with a domain in the IOAS. Until devices can be
// attached through VFIO, the domain is a test double added to the IOAS's io_pagetable the
// way iopt_table_add_domain() is called by HWPT allocation; MAP, COPY and UNMAP still go
// through ioctl(2).

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { EADDRINUSE, EFAULT, EINVAL, ENOMEM } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import type { Page } from "../../src/kernel/mm.js";
import { CAP_IPC_LOCK, CAP_SYS_RESOURCE } from "../../src/kernel/process.js";
import type { IommufdCtx } from "../../src/iommufd/main.js";
import type { IommufdIoas } from "../../src/iommufd/ioas.js";
import type { IoptDomain } from "../../src/iommufd/io_pagetable.js";
import { type Env, setup, teardown, raw, ioasAlloc, map, unmap, ranges, checkAll, RW, FIXED } from "./helpers.js";

class FakeDomain implements IoptDomain {
  readonly pt = new Map<bigint, Page>();
  constructor(
    readonly pgsizeBitmap = 0x40201000n,
    readonly apertureStart = 0n,
    readonly apertureEnd = (1n << 39n) - 1n,
  ) {}
  map(iova: bigint, _len: bigint, _off: number, pages: readonly Page[]): number {
    pages.forEach((p, i) => this.pt.set(iova + BigInt(i * 4096), p));
    return 0;
  }
  unmap(iova: bigint, length: bigint): void {
    for (let a = iova; a < iova + length; a += 4096n) this.pt.delete(a);
  }
}

let e: Env;
beforeEach(() => (e = setup()));
afterEach(() => teardown(e));

function ioasOf(env: Env, id: number): IommufdIoas {
  const ictx = env.p.proc.files.lookup(env.fd)!.privateData as IommufdCtx;
  return ictx.objects.peek(id) as IommufdIoas;
}
const user = (env: Env) => env.p.proc.user.lockedVm;
const pinned = (env: Env) => env.p.proc.mm.pinnedVm;

function copy(dst: number, src: number, len: bigint, dIova: bigint, sIova: bigint) {
  return raw(e, U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, {
    size: 40,
    flags: FIXED | RW,
    dst_ioas_id: dst,
    src_ioas_id: src,
    length: len,
    dst_iova: dIova,
    src_iova: sIova,
  }).rc;
}

describe("pinning and accounting", () => {
  it("pins nothing without a domain and everything once a domain arrives", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x10000n, 0x4000n).rc, 0);
    assert.equal(pinned(e), 0);
    const d = new FakeDomain();
    assert.equal(ioasOf(e, id).iopt.addDomain(d), 0);
    assert.equal(pinned(e), 4);
    assert.equal(user(e), 4);
    assert.equal(d.pt.size, 4);
    assert.equal(d.pt.get(0x10000n), e.p.proc.mm.pageAt(e.buf));
    assert.equal(e.p.proc.mm.pageAt(e.buf)!.pins, 1);
    checkAll(e);
    assert.deepEqual(unmap(e, id, 0x10000n, 0x4000n), { rc: 0, length: 0x4000n });
    assert.equal(pinned(e), 0);
    assert.equal(user(e), 0);
    assert.equal(d.pt.size, 0);
    assert.equal(e.p.proc.mm.pageAt(e.buf)!.pins, 0);
    ioasOf(e, id).iopt.removeDomain(d);
  });

  it("answers EFAULT for unbacked memory, at MAP with a domain and at domain add without one", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x10000n, 0x2000n, { va: 0x7000_0000_0000 }).rc, 0);
    const d = new FakeDomain();
    const iopt = ioasOf(e, id).iopt;
    assert.equal(iopt.addDomain(d), -EFAULT);
    assert.equal(iopt.iovaAlignment, 1, "nothing changed");
    assert.equal(pinned(e), 0);
    assert.deepEqual(unmap(e, id, 0n, 0xffffffffffffffffn).rc, 0);
    assert.equal(iopt.addDomain(d), 0);
    assert.equal(map(e, id, 0x10000n, 0x2000n, { va: 0x7000_0000_0000 }).rc, -EFAULT);
    assert.equal(map(e, id, 0x10000n, 0x2000n).rc, 0, "the failed map left no area behind");
    // PROT_READ memory pinned for a writeable map
    const ro = e.p.mmap(0x2000, { prot: 1 });
    assert.equal(map(e, id, 0x20000n, 0x2000n, { va: ro }).rc, -EFAULT);
    assert.equal(map(e, id, 0x20000n, 0x2000n, { va: ro, flags: FIXED | U.IOMMU_IOAS_MAP_READABLE }).rc, 0);
    checkAll(e);
    iopt.removeDomain(d);
    assert.equal(pinned(e), 0);
  });

  it("pins a page once per MAP: COPY shares, a second MAP of the same memory charges again", () => {
    const a = ioasAlloc(e);
    const b = ioasAlloc(e);
    const da = new FakeDomain();
    const db = new FakeDomain();
    assert.equal(ioasOf(e, a).iopt.addDomain(da), 0);
    assert.equal(ioasOf(e, b).iopt.addDomain(db), 0);
    assert.equal(map(e, a, 0x10000n, 0x4000n).rc, 0);
    assert.equal(user(e), 4);
    assert.equal(copy(b, a, 0x4000n, 0x10000n, 0x10000n), 0);
    assert.equal(copy(a, a, 0x2000n, 0x80000n, 0x11000n), 0);
    assert.equal(user(e), 4, "copies pin nothing more");
    assert.equal(db.pt.size, 4);
    assert.equal(map(e, b, 0x40000n, 0x4000n).rc, 0);
    assert.equal(user(e), 8, "a second MAP of the same memory is charged again");
    assert.equal(e.p.proc.mm.pageAt(e.buf)!.pins, 2);
    checkAll(e);
    ioasOf(e, a).iopt.removeDomain(da);
    ioasOf(e, b).iopt.removeDomain(db);
    assert.equal(user(e), 0);
  });

  it("pins once however many domains an IOAS has; the last one gone unpins", () => {
    const id = ioasAlloc(e);
    const iopt = ioasOf(e, id).iopt;
    const d1 = new FakeDomain();
    const d2 = new FakeDomain();
    assert.equal(map(e, id, 0x10000n, 0x3000n).rc, 0);
    assert.equal(iopt.addDomain(d1), 0);
    assert.equal(iopt.addDomain(d2), 0);
    assert.equal(pinned(e), 3);
    assert.equal(d2.pt.size, 3);
    assert.equal(map(e, id, 0x20000n, 0x1000n).rc, 0);
    assert.equal(pinned(e), 4);
    assert.equal(d1.pt.size, 4);
    iopt.removeDomain(d1);
    assert.equal(pinned(e), 4);
    assert.equal(d1.pt.size, 0);
    checkAll(e);
    iopt.removeDomain(d2);
    assert.equal(pinned(e), 0);
    checkAll(e);
  });

  it("answers ENOMEM over RLIMIT_MEMLOCK and leaves everything as it was", () => {
    e.twin.kill(e.p);
    e = setup({ memlock: 3 * 4096 });
    const id = ioasAlloc(e);
    const iopt = ioasOf(e, id).iopt;
    const d = new FakeDomain();
    assert.equal(iopt.addDomain(d), 0);
    assert.equal(map(e, id, 0x10000n, 0x2000n).rc, 0);
    assert.equal(map(e, id, 0x20000n, 0x2000n, { va: e.buf + 0x8000 }).rc, -ENOMEM);
    assert.equal(user(e), 2);
    assert.equal(e.p.proc.mm.pageAt(e.buf + 0x8000)!.pins, 0);
    assert.equal(map(e, id, 0x20000n, 0x1000n, { va: e.buf + 0x8000 }).rc, 0);
    checkAll(e);
    iopt.removeDomain(d);
  });

  it("charges mm->locked_vm in RLIMIT_MODE 1 and nothing with CAP_IPC_LOCK", () => {
    e.twin.kill(e.p);
    e = setup({ caps: [CAP_SYS_RESOURCE] });
    const opt = raw(e, U.IOMMU_OPTION, U.iommu_option, { size: 24, option_id: 0, op: 0, val64: 1n });
    assert.equal(opt.rc, 0);
    let id = ioasAlloc(e);
    let d = new FakeDomain();
    ioasOf(e, id).iopt.addDomain(d);
    assert.equal(map(e, id, 0x10000n, 0x2000n).rc, 0);
    assert.equal(e.p.proc.mm.lockedVm, 2);
    assert.equal(user(e), 0);
    ioasOf(e, id).iopt.removeDomain(d);
    assert.equal(e.p.proc.mm.lockedVm, 0);
    e.twin.kill(e.p);
    e = setup({ caps: [CAP_IPC_LOCK], memlock: 0 });
    id = ioasAlloc(e);
    d = new FakeDomain();
    ioasOf(e, id).iopt.addDomain(d);
    assert.equal(map(e, id, 0x10000n, 0x2000n).rc, 0);
    assert.equal(user(e), 0);
    assert.equal(pinned(e), 2);
    checkAll(e);
    ioasOf(e, id).iopt.removeDomain(d);
  });
});

describe("domains narrow the IOAS", () => {
  it("reserve outside the aperture, raise the alignment, and refuse what conflicts", () => {
    const id = ioasAlloc(e);
    const iopt = ioasOf(e, id).iopt;
    assert.equal(map(e, id, 0x10001n, 0x1000n).rc, 0);
    const d = new FakeDomain();
    assert.equal(iopt.addDomain(d), -EADDRINUSE, "an area is not page aligned");
    assert.equal(unmap(e, id, 0n, 0xffffffffffffffffn).rc, 0);
    assert.equal(map(e, id, 1n << 40n, 0x1000n).rc, 0);
    assert.equal(iopt.addDomain(d), -EADDRINUSE, "an area above the aperture");
    assert.equal(unmap(e, id, 0n, 0xffffffffffffffffn).rc, 0);
    assert.equal(iopt.addDomain(d), 0);
    const r = ranges(e, id, 4);
    assert.deepEqual(r.list, [[0n, (1n << 39n) - 1n]]);
    assert.equal(r.align, 0x1000n);
    assert.equal(map(e, id, 1n << 39n, 0x1000n).rc, -EINVAL);
    assert.equal(map(e, id, 0x1001n, 0x1000n).rc, -EINVAL);
    assert.equal(iopt.enforceDevResvRegions([{ start: 0xfee00000n, length: 0x100000n }], "dev"), 0);
    assert.deepEqual(ranges(e, id, 4).list, [
      [0n, 0xfedfffffn],
      [0xfef00000n, (1n << 39n) - 1n],
    ]);
    assert.equal(map(e, id, 0xfee00000n, 0x1000n).rc, -EINVAL);
    iopt.removeReservedIova("dev");
    iopt.removeDomain(d);
    assert.deepEqual(ranges(e, id, 4).list, [[0n, 0xffffffffffffffffn]]);
    assert.equal(ranges(e, id, 4).align, 1n);
  });
});
