// IOMMU_TEST_CMD's access ops (CREATE_ACCESS, ACCESS_PAGES, DESTROY_ACCESS_PAGES, ACCESS_RW,
// ACCESS_REPLACE_IOAS), modelled on tools/testing/selftests/iommu/iommufd.c (6.12):
// access_pin, access_pin_unmap, access_rw(_unaligned), access_domain_destory, user_copy.

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import {
  EBADE,
  EBADF,
  EBADFD,
  EBUSY,
  EFAULT,
  EINVAL,
  ENOENT,
  ENOMEM,
  EOPNOTSUPP,
  EPERM,
} from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import * as T from "../../src/uapi/iommufd_test.js";
import { type Env, setup, teardown, ioasAlloc, map, unmap, destroy, raw, RW, FIXED } from "./helpers.js";
import {
  BUF,
  START,
  accessPages,
  accessReplaceIoas,
  accessRw,
  checkMap,
  checkRefs,
  createAccess,
  destroyAccessPages,
  mockDomain,
  mockDomainOk,
} from "./selftest_helpers.js";

const PAGE = 0x1000n;
const SIZE = 0x10000n; // the selftest's BUFFER_SIZE is 16 pages too
const PIN = T.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES;
let e: Env;
beforeEach(() => {
  e = setup();
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
});
afterEach(() => teardown(e));

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

describe("CREATE_ACCESS", () => {
  it("returns an fd from the process's table; the ACCESS object is busy while it is open", () => {
    const ioas = ioasAlloc(e);
    const a = createAccess(e, ioas);
    assert.equal(a.rc, 0);
    assert.equal(a.fd, e.fd + 1, "the lowest free fd");
    assert.match(e.twin.kernel.processes.get(e.p.pid)!.files.lookup(a.fd)!.path, /iommufd_test_staccess/);
    assert.equal(destroy(e, 2), -EBUSY, "the ACCESS object (id 2) is held by the access fd");
    assert.equal(destroy(e, ioas), -EBUSY, "the access holds the IOAS");
    assert.equal(e.p.close(a.fd), 0);
    assert.equal(destroy(e, 2), -ENOENT);
    assert.equal(destroy(e, ioas), 0);
  });

  it("errors take no fd and no object id", () => {
    const ioas = ioasAlloc(e);
    assert.equal(createAccess(e, ioas, 2).rc, -EOPNOTSUPP);
    assert.equal(createAccess(e, 99).rc, -ENOENT);
    const a = createAccess(e, ioas, PIN);
    assert.equal(a.rc, 0);
    assert.equal(a.fd, e.fd + 1);
    assert.equal(destroy(e, 2), -EBUSY);
  });

  it("the other ops need an access fd: EBADFD for any other", () => {
    const ioas = ioasAlloc(e);
    assert.equal(accessPages(e, e.fd, START, PAGE, BUF).rc, -EBADFD);
    assert.equal(accessPages(e, 99, START, PAGE, BUF).rc, -EBADFD);
    assert.equal(accessRw(e, e.fd, START, 8n, BUF), -EBADFD);
    assert.equal(destroyAccessPages(e, 1000, 0), -EBADFD);
    assert.equal(accessReplaceIoas(e, 0, ioas), -EBADFD);
  });

  it("the access fd outlives the iommufd fd and keeps the context", () => {
    const ioas = ioasAlloc(e);
    assert.equal(map(e, ioas, START, SIZE, { va: BUF }).rc, 0);
    const a = createAccess(e, ioas, PIN);
    assert.equal(accessPages(e, a.fd, START, SIZE, BUF).rc, 0);
    assert.equal(e.p.close(e.fd), 0);
    assert.equal(checkRefs(e, BUF, SIZE, 1), -EBADF, "the test command needs an iommufd");
    e.fd = e.p.open("/dev/iommu");
    assert.equal(checkRefs(e, BUF, SIZE, 1), 0, "the old context still pins");
    assert.equal(e.p.close(a.fd), 0);
    assert.equal(checkRefs(e, BUF, SIZE, 0), 0);
  });
});

describe("ACCESS_PAGES", () => {
  it("access_pin: single, double user, a domain added and removed under a user", () => {
    const ioas = ioasAlloc(e);
    const a = createAccess(e, ioas, PIN);
    for (let npages = 1n; npages < 16n; npages += 5n) {
      const len = npages * PAGE;
      assert.equal(map(e, ioas, START, SIZE, { va: BUF }).rc, 0);
      const p1 = accessPages(e, a.fd, START, len, BUF);
      assert.equal(p1.rc, 0);
      assert.equal(checkRefs(e, BUF, len, 1), 0);
      assert.equal(destroyAccessPages(e, a.fd, p1.id), 0);
      assert.equal(checkRefs(e, BUF, len, 0), 0);
      const p2 = accessPages(e, a.fd, START, len, BUF);
      const p3 = accessPages(e, a.fd, START, len, BUF);
      assert.equal(p3.id, p2.id + 1);
      assert.equal(checkRefs(e, BUF, len, 1), 0, "pinned once for two users");
      assert.equal(destroyAccessPages(e, a.fd, p3.id), 0);
      assert.equal(destroyAccessPages(e, a.fd, p2.id), 0);
      assert.equal(destroyAccessPages(e, a.fd, p2.id), -ENOENT);
      const p4 = accessPages(e, a.fd, START, len, BUF);
      assert.equal(p4.rc, 0);
      const d = mockDomainOk(e, ioas);
      assert.equal(checkMap(e, d.hwpt, START, SIZE, BUF), 0);
      assert.equal(checkRefs(e, BUF, SIZE, 1), 0);
      assert.equal(destroy(e, d.stdev), 0);
      assert.equal(checkRefs(e, BUF, len, 1), 0);
      assert.equal(destroyAccessPages(e, a.fd, p4.id), 0);
      assert.equal(unmap(e, ioas, START, SIZE).rc, 0);
    }
    assert.equal(e.p.close(a.fd), 0);
  });

  it("access_pin_unmap: an unmap unpins the items it meets", () => {
    const ioas = ioasAlloc(e);
    const a = createAccess(e, ioas, PIN);
    assert.equal(map(e, ioas, START, SIZE, { va: BUF }).rc, 0);
    const p = accessPages(e, a.fd, START, SIZE, BUF);
    assert.equal(p.rc, 0);
    assert.equal(unmap(e, ioas, START, SIZE).rc, 0);
    assert.equal(destroyAccessPages(e, a.fd, p.id), -ENOENT);
    assert.equal(checkRefs(e, BUF, SIZE, 0), 0);
  });

  it("checks: flags, pin ops, length, alignment, holes, the pages behind uptr", () => {
    const ioas = ioasAlloc(e);
    const a = createAccess(e, ioas, PIN);
    const nopin = createAccess(e, ioas);
    assert.equal(map(e, ioas, START, SIZE, { va: BUF }).rc, 0);
    assert.equal(accessPages(e, a.fd, START, PAGE, BUF, 4).rc, -EOPNOTSUPP);
    assert.equal(accessPages(e, nopin.fd, START, PAGE, BUF).rc, -EOPNOTSUPP);
    assert.equal(accessPages(e, a.fd, START, (16n << 20n) + 1n, BUF).rc, -ENOMEM);
    assert.equal(accessPages(e, a.fd, START, 0n, BUF).rc, -EINVAL);
    assert.equal(accessPages(e, a.fd, START + SIZE, PAGE, BUF).rc, -ENOENT);
    assert.equal(accessPages(e, a.fd, START + SIZE - PAGE, 2n * PAGE, BUF).rc, -ENOENT);
    assert.equal(accessPages(e, a.fd, START, PAGE, BUF + 0x1000).rc, -EBADE);
    assert.equal(accessPages(e, a.fd, START, PAGE, 0x1000).rc, -EFAULT);
    assert.equal(accessPages(e, a.fd, START, PAGE, 0).rc, 0, "a NULL uptr skips the check");
    // a write pin of a read-only area
    assert.equal(map(e, ioas, START + SIZE, PAGE, { flags: FIXED | U.IOMMU_IOAS_MAP_READABLE, va: BUF }).rc, 0);
    assert.equal(accessPages(e, a.fd, START + SIZE, PAGE, BUF, T.MOCK_FLAGS_ACCESS_WRITE).rc, -EPERM);
    assert.equal(accessPages(e, a.fd, START + SIZE, PAGE, BUF).rc, 0);
    // iopt_area_contig_is_aligned(): the pin starts on a page of the pages
    assert.equal(accessPages(e, a.fd, START + 0x10n, 0x20n, BUF + 0x10).rc, -EINVAL);
  });

  it("syzkaller mode: the IOVA is the nth area plus an offset", () => {
    const ioas = ioasAlloc(e);
    const a = createAccess(e, ioas, PIN);
    assert.equal(map(e, ioas, START, PAGE, { va: BUF }).rc, 0);
    assert.equal(map(e, ioas, START + 0x10000n, 2n * PAGE, { va: BUF + 0x4000 }).rc, 0);
    const syz = (nth: bigint, off: bigint) => nth | (off << 32n);
    const p = accessPages(e, a.fd, syz(1n, PAGE), PAGE, BUF + 0x5000, T.MOCK_FLAGS_ACCESS_SYZ);
    assert.equal(p.rc, 0);
    assert.equal(checkRefs(e, BUF + 0x5000, PAGE, 1), 0);
    assert.equal(accessPages(e, a.fd, syz(2n, 0n), PAGE, 0, T.MOCK_FLAGS_ACCESS_SYZ).rc, -ENOENT, "IOVA 0");
    // IOMMU_IOAS_COPY converts its source IOVA the same way (ioas.c, CONFIG_IOMMUFD_TEST)
    const dst = ioasAlloc(e);
    const copy = (flags: number, src: bigint) =>
      raw(e, U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, {
        size: U.iommu_ioas_copy.size,
        flags,
        dst_ioas_id: dst,
        src_ioas_id: ioas,
        dst_iova: START,
        src_iova: src,
        length: PAGE,
      }).rc;
    assert.equal(copy(FIXED | RW | T.MOCK_FLAGS_ACCESS_SYZ, syz(1n, PAGE)), 0);
    assert.equal(checkRefs(e, BUF + 0x5000, PAGE, 1), 0, "still the one pin");
    assert.equal(copy(FIXED | RW | (1 << 15), syz(0n, 0n)), -EOPNOTSUPP, "other flags stay unknown");
  });

  it("access_domain_destory: the item survives a domain going away", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    assert.equal(map(e, ioas, START, 8n * PAGE, { va: BUF }).rc, 0);
    const a = createAccess(e, ioas, PIN);
    const p = accessPages(e, a.fd, START + PAGE, PAGE, BUF + 0x1000);
    assert.equal(p.rc, 0);
    assert.equal(destroy(e, d.stdev), 0);
    assert.equal(checkRefs(e, BUF + 0x1000, PAGE, 1), 0);
    assert.equal(checkRefs(e, BUF, PAGE, 0), 0);
    assert.equal(destroyAccessPages(e, a.fd, p.id), 0);
    assert.equal(e.p.close(a.fd), 0);
    assert.equal(checkRefs(e, BUF, 8n * PAGE, 0), 0);
  });
});

describe("ACCESS_RW", () => {
  for (const [name, iovaOff] of [
    ["access_rw", 0n],
    ["access_rw_unaligned", 0x800n],
  ] as const)
    it(`${name}: reads and writes across a page boundary, and a multi-page read`, () => {
      const ioas = ioasAlloc(e);
      mockDomainOk(e, ioas);
      const a = createAccess(e, ioas);
      const iova = START + iovaOff;
      assert.equal(map(e, ioas, iova, SIZE, { va: BUF }).rc, 0);
      e.p.write(BUF, pattern(Number(SIZE), 3));
      const tmp = BUF + 0x80000;
      for (let at = iova + PAGE - 50n; at < iova + PAGE + 50n; at += 7n)
        for (let len = 1n; len < 64n; len += 9n) {
          for (const flags of [0, T.MOCK_ACCESS_RW_SLOW_PATH]) {
            assert.equal(accessRw(e, a.fd, at, len, tmp, flags), 0);
            assert.deepEqual(e.p.read(tmp, Number(len)), e.p.read(BUF + Number(at - iova), Number(len)));
          }
          e.p.write(tmp, pattern(Number(len), Number(at)));
          assert.equal(accessRw(e, a.fd, at, len, tmp, T.MOCK_ACCESS_RW_WRITE), 0);
          assert.deepEqual(e.p.read(BUF + Number(at - iova), Number(len)), pattern(Number(len), Number(at)));
        }
      assert.equal(accessRw(e, a.fd, iova, SIZE, tmp), 0);
      assert.deepEqual(e.p.read(tmp, Number(SIZE)), e.p.read(BUF, Number(SIZE)));
    });

  it("checks: flags, length, holes, permissions, user buffers", () => {
    const ioas = ioasAlloc(e);
    const a = createAccess(e, ioas);
    assert.equal(map(e, ioas, START, PAGE, { flags: FIXED | U.IOMMU_IOAS_MAP_READABLE, va: BUF }).rc, 0);
    assert.equal(accessRw(e, a.fd, START, 8n, BUF, 2), -EOPNOTSUPP);
    assert.equal(accessRw(e, a.fd, START, (16n << 20n) + 1n, BUF), -ENOMEM);
    assert.equal(accessRw(e, a.fd, START, 0n, BUF), -EINVAL);
    assert.equal(accessRw(e, a.fd, START + PAGE, 8n, BUF), -ENOENT);
    assert.equal(accessRw(e, a.fd, START + PAGE - 4n, 8n, BUF + 0x2000), -ENOENT);
    assert.equal(accessRw(e, a.fd, START, 8n, BUF + 0x2000, T.MOCK_ACCESS_RW_WRITE), -EPERM);
    assert.equal(accessRw(e, a.fd, START, 8n, 0x1000, T.MOCK_ACCESS_RW_WRITE), -EFAULT);
    assert.equal(accessRw(e, a.fd, START, 8n, 0x1000), -EFAULT);
  });
});

describe("ACCESS_REPLACE_IOAS and IOAS_COPY (user_copy)", () => {
  it("pins in an IOAS without domains, copies into one with a domain, then moves to a new IOAS", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    const src = ioasAlloc(e);
    const m = map(e, src, 0n, SIZE, { flags: RW, va: BUF });
    assert.equal(m.rc, 0);
    const a = createAccess(e, src, PIN);
    const p = accessPages(e, a.fd, m.iova, SIZE, BUF);
    assert.equal(p.rc, 0);
    const copy = (from: number, fromIova: bigint) =>
      raw(e, U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, {
        size: U.iommu_ioas_copy.size,
        flags: FIXED | U.IOMMU_IOAS_MAP_WRITEABLE,
        dst_ioas_id: ioas,
        src_ioas_id: from,
        dst_iova: START,
        src_iova: fromIova,
        length: SIZE,
      }).rc;
    assert.equal(copy(src, m.iova), 0);
    assert.equal(checkMap(e, d.hwpt, START, SIZE, BUF), 0);
    assert.equal(checkRefs(e, BUF, SIZE, 1), 0);
    const next = ioasAlloc(e);
    const m2 = map(e, next, 0n, SIZE, { flags: RW, va: BUF });
    assert.equal(accessReplaceIoas(e, a.fd, 99), -ENOENT);
    assert.equal(accessReplaceIoas(e, a.fd, next), 0);
    assert.equal(destroyAccessPages(e, a.fd, p.id), -ENOENT, "the replace unpinned every item");
    assert.equal(unmap(e, ioas, START, SIZE).rc, 0);
    assert.equal(destroy(e, src), 0);
    const p2 = accessPages(e, a.fd, m2.iova, SIZE, BUF);
    assert.equal(p2.rc, 0);
    assert.equal(copy(next, m2.iova), 0);
    assert.equal(checkMap(e, d.hwpt, START, SIZE, BUF), 0);
    assert.equal(destroyAccessPages(e, a.fd, p2.id), 0);
    assert.equal(e.p.close(a.fd), 0);
    assert.equal(destroy(e, next), 0);
  });
});

describe("a mapping made by another process (fork_gone, fork_present)", () => {
  /** A second process with the iommufd passed to it maps `SIZE` bytes of its own memory. */
  function child(ioas: number, fill: number) {
    const c = e.twin.spawn();
    const cfd = e.p.sendFd(e.fd, c);
    const cbuf = c.mmap(Number(SIZE));
    c.write(cbuf, new Uint8Array(Number(SIZE)).fill(fill));
    const scratch = c.mmap(0x1000);
    c.write(
      scratch,
      U.iommu_ioas_map.encode({
        size: U.iommu_ioas_map.size,
        flags: FIXED | RW,
        ioas_id: ioas,
        user_va: BigInt(cbuf),
        length: SIZE,
        iova: START,
      }),
    );
    assert.equal(c.ioctl(cfd, U.IOMMU_IOAS_MAP, scratch), 0);
    return c;
  }

  it("fork_gone with a domain: the pages pinned while the child lived are read through", () => {
    const ioas = ioasAlloc(e);
    mockDomainOk(e, ioas);
    const a = createAccess(e, ioas);
    const c = child(ioas, 0x5a);
    e.twin.kill(c);
    mockDomainOk(e, ioas);
    for (const flags of [0, T.MOCK_ACCESS_RW_SLOW_PATH]) {
      assert.equal(accessRw(e, a.fd, START + 0xff0n, 0x20n, BUF, flags), 0);
      assert.deepEqual(e.p.read(BUF, 0x20), new Uint8Array(0x20).fill(0x5a));
    }
    assert.equal(e.p.close(a.fd), 0);
  });

  it("fork_gone without a domain: nothing can pin the memory of a process that is gone", () => {
    const ioas = ioasAlloc(e);
    const a = createAccess(e, ioas);
    e.twin.kill(child(ioas, 1));
    assert.equal(mockDomain(e, ioas).rc, -EFAULT);
    assert.equal(accessRw(e, a.fd, START, 8n, BUF), -EFAULT);
    assert.equal(e.p.close(a.fd), 0);
  });

  it("fork_present: the other process's pages are read while it lives", () => {
    const ioas = ioasAlloc(e);
    const a = createAccess(e, ioas);
    const c = child(ioas, 0x33);
    assert.equal(accessRw(e, a.fd, START + 0xff0n, 0x20n, BUF), 0, "pinned for the copy only");
    assert.deepEqual(e.p.read(BUF, 0x20), new Uint8Array(0x20).fill(0x33));
    assert.equal(checkRefs(e, BUF, SIZE, 0), 0);
    mockDomainOk(e, ioas);
    e.p.write(BUF, new Uint8Array([9, 9]));
    assert.equal(accessRw(e, a.fd, START, 2n, BUF, T.MOCK_ACCESS_RW_WRITE), 0);
    assert.equal(e.p.close(a.fd), 0);
    e.twin.kill(c);
  });
});
