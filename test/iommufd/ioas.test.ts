// IOAS commands against the expectations of tools/testing/selftests/iommu/iommufd.c and the
// oracle's recorded answers (shared/oracle/README.md, "IOMMUFD").

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import {
  E2BIG,
  EADDRINUSE,
  EBUSY,
  EEXIST,
  EINVAL,
  EMSGSIZE,
  ENODEV,
  ENOENT,
  EOPNOTSUPP,
  EOVERFLOW,
  EPERM,
} from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import { CAP_SYS_RESOURCE } from "../../src/kernel/process.js";
import {
  type Env,
  setup,
  teardown,
  raw,
  ioasAlloc,
  map,
  unmap,
  destroy,
  ranges,
  RW,
  FIXED,
  allowIovas,
} from "./helpers.js";

const MAX = 0xffffffffffffffffn;
let e: Env;
beforeEach(() => (e = setup()));
afterEach(() => teardown(e));

function copy(dst: number, src: number, len: bigint, dstIova: bigint, srcIova: bigint, flags = FIXED | RW) {
  return raw(e, U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, {
    size: U.iommu_ioas_copy.size,
    flags,
    dst_ioas_id: dst,
    src_ioas_id: src,
    length: len,
    dst_iova: dstIova,
    src_iova: srcIova,
  });
}

const allow = (ioas: number, list: [bigint, bigint][]) => allowIovas(e, ioas, list);

function option(id: number, op: number, obj: number, val = 0n) {
  const r = raw(e, U.IOMMU_OPTION, U.iommu_option, {
    size: U.iommu_option.size,
    option_id: id,
    op,
    object_id: obj,
    val64: val,
  });
  return { rc: r.rc, val: r.out.val64 };
}

describe("IOMMU_IOAS_ALLOC and IOMMU_DESTROY", () => {
  it("allocates ids from 1 and reuses the lowest freed id first", () => {
    assert.deepEqual([ioasAlloc(e), ioasAlloc(e), ioasAlloc(e), ioasAlloc(e)], [1, 2, 3, 4]);
    assert.equal(destroy(e, 3), 0);
    assert.equal(destroy(e, 2), 0);
    assert.equal(ioasAlloc(e), 2);
    assert.equal(ioasAlloc(e), 3);
    assert.equal(ioasAlloc(e), 5);
  });
  it("rejects flags with EOPNOTSUPP and unknown ids with ENOENT", () => {
    assert.equal(raw(e, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: 12, flags: 1 }).rc, -EOPNOTSUPP);
    assert.equal(destroy(e, 0), -ENOENT);
    assert.equal(destroy(e, 7), -ENOENT);
    const id = ioasAlloc(e);
    assert.equal(id, 1, "the failed alloc used no id");
    assert.equal(destroy(e, id), 0);
    assert.equal(destroy(e, id), -ENOENT);
  });
  it("destroys an IOAS with mappings, freeing them", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x10000n, 0x4000n).rc, 0);
    assert.equal(destroy(e, id), 0);
    assert.equal(map(e, id, 0x10000n, 0x4000n).rc, -ENOENT);
  });
  it("DESTROY of a fault queue is EBUSY while its fd is open", () => {
    const r = raw(e, U.IOMMU_FAULT_QUEUE_ALLOC, U.iommu_fault_alloc, { size: 16 });
    assert.equal(r.rc, 0);
    assert.equal(r.out.out_fault_id, 1);
    assert.equal(destroy(e, 1), -EBUSY);
    assert.equal(e.p.close(r.out.out_fault_fd), 0);
    assert.equal(destroy(e, 1), 0);
  });
});

describe("IOMMU_IOAS_IOVA_RANGES", () => {
  it("reports 0..U64_MAX with alignment 1 and answers EMSGSIZE with the count when short", () => {
    const id = ioasAlloc(e);
    const short = ranges(e, id, 0);
    assert.equal(short.rc, -EMSGSIZE);
    assert.equal(short.num, 1);
    assert.equal(short.align, 1n);
    const full = ranges(e, id, 4);
    assert.equal(full.rc, 0);
    assert.deepEqual(full.list, [[0n, MAX]]);
    assert.equal(ranges(e, 99, 1).rc, -ENOENT);
  });
  it("is not narrowed by ALLOW_IOVAS", () => {
    const id = ioasAlloc(e);
    assert.equal(allow(id, [[0x100000n, 0x1fffffn]]), 0);
    assert.deepEqual(ranges(e, id, 4).list, [[0n, MAX]]);
  });
});

describe("IOMMU_IOAS_MAP", () => {
  it("maps fixed IOVAs and refuses every kind of overlap with EEXIST", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x100000n, 0x10000n).rc, 0);
    for (const [iova, len] of [
      [0x100000n, 0x10000n],
      [0xff000n, 0x2000n],
      [0x10f000n, 0x2000n],
      [0x104000n, 0x1000n],
      [0xf0000n, 0x40000n],
    ] as const)
      assert.equal(map(e, id, iova, len).rc, -EEXIST, `0x${iova.toString(16)}+0x${len.toString(16)}`);
    assert.equal(map(e, id, 0x110000n, 0x1000n).rc, 0, "adjacent");
    assert.equal(map(e, id, 0xff000n, 0x1000n).rc, 0, "adjacent below");
  });
  it("accepts unaligned IOVAs, lengths and user addresses with no domain (alignment 1)", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x1001n, 0x1001n, { va: e.buf + 3 }).rc, 0);
  });
  it("accepts unbacked user memory: nothing is pinned without a domain", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x1000n, 0x100000n, { va: 0x7000_0000_0000 }).rc, 0);
  });
  it("checks flags, length and overflow in the kernel's order", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x1000n, 0n).rc, -EINVAL);
    assert.equal(map(e, id, 0x1000n, 0x1000n, { flags: FIXED }).rc, -EINVAL);
    assert.equal(map(e, id, 0x1000n, 0x1000n, { flags: FIXED | RW | 8 }).rc, -EOPNOTSUPP);
    assert.equal(map(e, id, MAX - 0xfffn, 0x2000n).rc, -EOVERFLOW);
    assert.equal(map(e, id, MAX, 0x1000n).rc, -EOVERFLOW);
    assert.equal(map(e, id, 0x1000n, MAX).rc, -EOVERFLOW);
    assert.equal(map(e, 42, 0x1000n, 0x1000n).rc, -ENOENT);
    const r = raw(e, U.IOMMU_IOAS_MAP, U.iommu_ioas_map, { size: 40, flags: FIXED | RW, ioas_id: id, __reserved: 1 });
    assert.equal(r.rc, -EOPNOTSUPP);
  });
  it("chooses IOVAs aligned to min(roundup_pow_of_two(len), lowest bit of user_va), never 0", () => {
    const id = ioasAlloc(e);
    // buf is 1 MiB aligned at least to 4 KiB; pick VAs with a known lowest bit
    const va = 0x10000000;
    e.p.mmap(1 << 20, { addr: va });
    const a = map(e, id, 0n, 0x4000n, { flags: RW, va });
    assert.equal(a.rc, 0);
    assert.equal(a.iova, 0x4000n);
    const b = map(e, id, 0n, 0x3000n, { flags: RW, va: va + 0x1000 });
    assert.equal(b.rc, 0);
    assert.equal(b.iova, 0x1000n, "alignment 0x1000 from the VA: the hole below the first area");
    const c = map(e, id, 0n, 0x1000n, { flags: RW, va: va + 0x2000 });
    assert.equal(c.iova, 0x8000n);
    const d = map(e, id, 0n, 0x100n, { flags: RW, va: va + 0x10 });
    assert.equal(d.rc, 0);
    assert.equal(d.iova % 0x10n, 0n);
  });
  it("keeps automatic IOVAs inside the allowed ranges, and FIXED ones anywhere", () => {
    const id = ioasAlloc(e);
    assert.equal(allow(id, [[0x4000_0000n, 0x4000_ffffn]]), 0);
    const a = map(e, id, 0n, 0x1000n, { flags: RW });
    assert.equal(a.iova, 0x4000_0000n);
    assert.equal(map(e, id, 0x1000n, 0x1000n).rc, 0);
    for (let i = 1; i < 16; i++) assert.equal(map(e, id, 0n, 0x1000n, { flags: RW }).rc, 0);
    assert.equal(map(e, id, 0n, 0x1000n, { flags: RW }).rc, -28, "ENOSPC");
  });
});

describe("IOMMU_IOAS_ALLOW_IOVAS", () => {
  it("rejects empty, inverted and overlapping ranges with EINVAL", () => {
    const id = ioasAlloc(e);
    assert.equal(allow(id, [[0x2000n, 0x1000n]]), -EINVAL);
    assert.equal(allow(id, [[0x2000n, 0x2000n]]), -EINVAL);
    assert.equal(
      allow(id, [
        [0x1000n, 0x2fffn],
        [0x2000n, 0x3fffn],
      ]),
      -EINVAL,
    );
    assert.equal(allow(id, []), 0);
  });
  it("conflicts with reserved ranges (EADDRINUSE) only through reservations", () => {
    const id = ioasAlloc(e);
    assert.notEqual(allow(id, [[0x1000n, 0x1fffn]]), -EADDRINUSE);
  });
});

describe("IOMMU_IOAS_UNMAP", () => {
  it("unmaps exact areas, spans with holes, and everything", () => {
    const id = ioasAlloc(e);
    for (const iova of [0x10000n, 0x20000n, 0x30000n]) assert.equal(map(e, id, iova, 0x4000n).rc, 0);
    assert.deepEqual(unmap(e, id, 0x10000n, 0x4000n), { rc: 0, length: 0x4000n });
    assert.equal(unmap(e, id, 0x10000n, 0x4000n).rc, -ENOENT, "again");
    assert.deepEqual(unmap(e, id, 0x0n, 0x100000n), { rc: 0, length: 0x8000n });
    assert.deepEqual(unmap(e, id, 0n, MAX), { rc: 0, length: 0n }, "unmap-all of nothing");
    assert.equal(map(e, id, 0x10000n, 0x4000n).rc, 0);
    assert.deepEqual(unmap(e, id, 0n, MAX), { rc: 0, length: 0x4000n });
  });
  it("refuses missing ranges, cuts and zero lengths", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x10000n, 0x4000n).rc, 0);
    assert.equal(unmap(e, id, 0x50000n, 0x1000n).rc, -ENOENT);
    assert.equal(unmap(e, id, 0x11000n, 0x1000n).rc, -ENOENT);
    assert.equal(unmap(e, id, 0x10000n, 0x1000n).rc, -ENOENT);
    assert.equal(unmap(e, id, 0xf000n, 0x2000n).rc, -ENOENT);
    assert.equal(unmap(e, id, 0x10000n, 0n).rc, -EINVAL);
    assert.equal(unmap(e, id, MAX - 1n, 0x10n).rc, -EOVERFLOW);
    assert.equal(unmap(e, id, 1n, MAX).rc, -EOVERFLOW);
    assert.deepEqual(unmap(e, id, 0x10000n, 0x4000n), { rc: 0, length: 0x4000n });
  });
  it("keeps the 6.12 partial success: a covered area goes before a cut one fails the call", () => {
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x10000n, 0x1000n).rc, 0);
    assert.equal(map(e, id, 0x20000n, 0x4000n).rc, 0);
    assert.equal(unmap(e, id, 0x10000n, 0x12000n).rc, -ENOENT);
    assert.equal(unmap(e, id, 0x10000n, 0x1000n).rc, -ENOENT, "the first area is gone");
    assert.deepEqual(unmap(e, id, 0x20000n, 0x4000n), { rc: 0, length: 0x4000n });
  });
});

describe("IOMMU_IOAS_COPY", () => {
  it("copies areas, sub-ranges and spans of adjacent areas between IOASes", () => {
    const a = ioasAlloc(e);
    const b = ioasAlloc(e);
    assert.equal(map(e, a, 0x10000n, 0x4000n).rc, 0);
    assert.equal(map(e, a, 0x14000n, 0x4000n, { va: e.buf + 0x4000 }).rc, 0);
    assert.equal(copy(b, a, 0x4000n, 0x10000n, 0x10000n).rc, 0);
    assert.equal(copy(b, a, 0x4000n, 0x10000n, 0x10000n).rc, -EEXIST);
    assert.equal(copy(b, a, 0x1000n, 0x40000n, 0x11000n).rc, 0, "sub-range");
    const span = copy(b, a, 0x6000n, 0n, 0x11000n, RW);
    assert.equal(span.rc, 0, "two adjacent areas, kernel-chosen IOVA");
    assert.equal(unmap(e, b, span.out.dst_iova, 0x6000n).rc, 0, "one copy makes one area per source slice");
    assert.equal(copy(b, a, 0x1000n, 0x80000n, 0x30000n).rc, -ENOENT, "missing source");
    assert.equal(copy(b, a, 0x10000n, 0x80000n, 0x10000n).rc, -ENOENT, "source runs past the areas");
    assert.equal(unmap(e, b, 0x10000n, 0x1000n).rc, -ENOENT, "part of a copied area");
    assert.equal(destroy(e, a), 0, "copies keep the pages, not the source IOAS");
    assert.deepEqual(unmap(e, b, 0n, MAX), { rc: 0, length: 0x5000n });
  });
  it("checks flags, overflow and ids", () => {
    const a = ioasAlloc(e);
    assert.equal(map(e, a, 0x10000n, 0x4000n).rc, 0);
    assert.equal(copy(a, a, 0x1000n, 0x80000n, 0x10000n, FIXED | RW | 8).rc, -EOPNOTSUPP);
    assert.equal(copy(a, a, 0x1000n, 0x80000n, 0x10000n, FIXED).rc, -EINVAL);
    assert.equal(copy(a, a, MAX, 0x80000n, 0x10000n).rc, -EOVERFLOW);
    assert.equal(copy(9, a, 0x1000n, 0x80000n, 0x10000n).rc, -ENOENT);
    assert.equal(copy(a, 9, 0x1000n, 0x80000n, 0x10000n).rc, -ENOENT);
    assert.equal(copy(a, a, 0x1000n, 0x80000n, 0x10000n).rc, 0, "into the same IOAS");
  });
});

describe("IOMMU_OPTION", () => {
  it("reads RLIMIT_MODE 0 and HUGE_PAGES 1, rejects unknown options and reserved bits", () => {
    const id = ioasAlloc(e);
    assert.deepEqual(option(U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_GET, 0), { rc: 0, val: 0n });
    assert.deepEqual(option(U.IOMMU_OPTION_HUGE_PAGES, U.IOMMU_OPTION_OP_GET, id), { rc: 0, val: 1n });
    assert.equal(option(U.IOMMU_OPTION_HUGE_PAGES, U.IOMMU_OPTION_OP_GET, 9).rc, -ENOENT);
    assert.equal(option(7, U.IOMMU_OPTION_OP_GET, 0).rc, -EOPNOTSUPP);
    assert.equal(option(U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_GET, id).rc, -EOPNOTSUPP);
    assert.equal(option(U.IOMMU_OPTION_RLIMIT_MODE, 2, 0).rc, -EOPNOTSUPP);
    assert.equal(option(U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_SET, 0, 1n).rc, -EPERM);
  });
  it("turns huge pages off and on (the IOAS alignment becomes PAGE_SIZE)", () => {
    const id = ioasAlloc(e);
    assert.equal(option(U.IOMMU_OPTION_HUGE_PAGES, U.IOMMU_OPTION_OP_SET, id, 0n).rc, 0);
    assert.equal(option(U.IOMMU_OPTION_HUGE_PAGES, U.IOMMU_OPTION_OP_GET, id).val, 0n);
    assert.equal(ranges(e, id, 1).align, 0x1000n);
    assert.equal(map(e, id, 0x1001n, 0x1000n).rc, -EINVAL);
    assert.equal(option(U.IOMMU_OPTION_HUGE_PAGES, U.IOMMU_OPTION_OP_SET, id, 2n).rc, -EINVAL);
    assert.equal(option(U.IOMMU_OPTION_HUGE_PAGES, U.IOMMU_OPTION_OP_SET, id, 1n).rc, 0);
    assert.equal(ranges(e, id, 1).align, 1n);
  });
});

describe("RLIMIT_MODE with CAP_SYS_RESOURCE", () => {
  it("sets per-mm accounting only while the context has no objects", () => {
    e.twin.kill(e.p);
    e = setup({ caps: [CAP_SYS_RESOURCE] });
    assert.equal(option(U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_SET, 0, 2n).rc, -EINVAL);
    assert.equal(option(U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_SET, 0, 1n).rc, 0);
    assert.deepEqual(option(U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_GET, 0), { rc: 0, val: 1n });
    ioasAlloc(e);
    assert.equal(option(U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_SET, 0, 0n).rc, -EBUSY);
  });
});

describe("IOMMU_VFIO_IOAS and the compat container", () => {
  it("GET is ENODEV until SET; CLEAR forgets it", () => {
    const vio = (op: number, ioas = 0) =>
      raw(e, U.IOMMU_VFIO_IOAS, U.iommu_vfio_ioas, { size: U.iommu_vfio_ioas.size, op, ioas_id: ioas });
    assert.equal(vio(U.IOMMU_VFIO_IOAS_GET).rc, -ENODEV);
    const id = ioasAlloc(e);
    assert.equal(vio(U.IOMMU_VFIO_IOAS_SET, 5).rc, -ENOENT);
    assert.equal(vio(U.IOMMU_VFIO_IOAS_SET, id).rc, 0);
    assert.equal(vio(U.IOMMU_VFIO_IOAS_GET).out.ioas_id, id);
    assert.equal(vio(3).rc, -EOPNOTSUPP);
    assert.equal(vio(U.IOMMU_VFIO_IOAS_CLEAR).rc, 0);
    assert.equal(vio(U.IOMMU_VFIO_IOAS_GET).rc, -ENODEV);
    assert.equal(vio(U.IOMMU_VFIO_IOAS_SET, id).rc, 0);
    assert.equal(destroy(e, id), 0, "the compat pointer is not a reference");
    assert.equal(vio(U.IOMMU_VFIO_IOAS_GET).rc, -ENODEV);
  });
});

describe("IOAS_MAP/UNMAP u64 fields across the number/bigint boundary", () => {
  // the two commands decode u64s as numbers below 2^53 and bigints from 2^53 (NumU64), and
  // run their arithmetic in numbers below 2^52: every side of both edges must stay exact
  it("maps, reports and unmaps IOVAs around 2^52, 2^53 and 2^64 exactly", () => {
    const id = ioasAlloc(e);
    const at = [
      2n ** 52n - 0x1000n,
      2n ** 52n,
      2n ** 53n - 0x2000n,
      2n ** 53n,
      2n ** 53n + 0x1000n,
      2n ** 63n,
      MAX - 0x1fffn,
    ];
    for (const iova of at) assert.deepEqual(map(e, id, iova, 0x1000n), { rc: 0, iova }, `map at ${iova}`);
    // an area whose last byte is past 2^53 while its start is below
    assert.deepEqual(map(e, id, 2n ** 53n - 0x1000n, 0x2000n), { rc: -EEXIST, iova: 2n ** 53n - 0x1000n });
    assert.deepEqual(map(e, id, 2n ** 53n - 0x4000n, 0x2000n), { rc: 0, iova: 2n ** 53n - 0x4000n });
    for (const iova of at) assert.deepEqual(unmap(e, id, iova, 0x1000n), { rc: 0, length: 0x1000n }, `unmap ${iova}`);
    assert.deepEqual(unmap(e, id, 2n ** 53n + 0x1000n, 0x1000n), { rc: -ENOENT, length: 0x1000n });
    assert.deepEqual(unmap(e, id, 2n ** 53n - 0x4000n, 0x2000n), { rc: 0, length: 0x2000n });
  });

  it("adds the bytes of an unmap past 2^53 exactly", () => {
    const id = ioasAlloc(e);
    // two areas of 2^52 + 4 KiB each (the same user page range is mapped twice): their sum,
    // 2^53 + 8 KiB, is no safe integer
    const len = 2n ** 52n + 0x1000n;
    const va = 0x1000_0000_0000;
    // the user range is checked at pin time only (no domain here), so any VA range serves
    assert.equal(map(e, id, 0x10000n, len, { va }).rc, 0);
    assert.equal(map(e, id, 0x10000n + len, len, { va }).rc, 0);
    assert.deepEqual(unmap(e, id, 0n, MAX), { rc: 0, length: 2n * len });
  });
});

describe("IOAS_MAP/UNMAP structs read and answered in place", () => {
  // the two commands read their struct field by field from the user's page (or from the
  // staged copy when it crosses a page or carries a tail) and write the kernel's copy back
  // whole, sizeof bytes, as iommufd_ucmd_respond() does
  it("answers with the whole struct as the kernel copied it, u64s exact past 2^53", () => {
    const id = ioasAlloc(e);
    const va = MAX - 0x3fffn; // not pinned without a domain: any user range serves
    const r = raw(e, U.IOMMU_IOAS_MAP, U.iommu_ioas_map, {
      size: U.iommu_ioas_map.size,
      flags: RW,
      ioas_id: id,
      user_va: va,
      length: 0x2000n,
      iova: 0x1234n, // ignored without FIXED_IOVA: the kernel picks and reports one
    });
    assert.equal(r.rc, 0);
    assert.deepEqual(
      { ...r.out, iova: 0n },
      { size: 40, flags: RW, ioas_id: id, __reserved: 0, user_va: va, length: 0x2000n, iova: 0n },
    );
    assert.ok(r.out.iova > 0n && r.out.iova % 0x2000n === 0n, `chosen iova ${r.out.iova}`);
    const u = raw(e, U.IOMMU_IOAS_UNMAP, U.iommu_ioas_unmap, { size: 24, ioas_id: id, iova: 0n, length: MAX });
    assert.deepEqual(u.out, { size: 24, ioas_id: id, iova: 0n, length: 0x2000n });
  });

  it("takes a longer struct with a zero tail and writes nothing past sizeof", () => {
    const id = ioasAlloc(e);
    const tail = new Uint8Array(16);
    const m = raw(
      e,
      U.IOMMU_IOAS_MAP,
      U.iommu_ioas_map,
      { size: 56, flags: FIXED | RW, ioas_id: id, user_va: BigInt(e.buf), length: 0x1000n, iova: 0x5000n },
      40,
      tail,
    );
    assert.equal(m.rc, 0);
    assert.equal(m.out.size, 56);
    assert.equal(m.out.iova, 0x5000n);
    assert.deepEqual([...m.bytes.subarray(40)], new Array(16).fill(0));
    const u = raw(
      e,
      U.IOMMU_IOAS_UNMAP,
      U.iommu_ioas_unmap,
      { size: 40, ioas_id: id, iova: 0x5000n, length: 0x1000n },
      24,
      tail,
    );
    assert.deepEqual([u.rc, u.out.length], [0, 0x1000n]);
    // a non-zero tail is E2BIG before anything is looked at; one byte short of sizeof is EINVAL
    const junk = new Uint8Array([0, 0, 0, 1]);
    const big = { size: 44, flags: FIXED | RW, ioas_id: id, user_va: BigInt(e.buf), length: 0x1000n, iova: 0x5000n };
    assert.equal(raw(e, U.IOMMU_IOAS_MAP, U.iommu_ioas_map, big, 40, junk).rc, -E2BIG);
    assert.equal(raw(e, U.IOMMU_IOAS_MAP, U.iommu_ioas_map, { ...big, size: 39 }).rc, -EINVAL);
    assert.equal(
      raw(e, U.IOMMU_IOAS_UNMAP, U.iommu_ioas_unmap, { size: 23, ioas_id: id, iova: 0n, length: 1n }).rc,
      -EINVAL,
    );
    assert.equal(map(e, id, 0x5000n, 0x1000n).rc, 0, "the E2BIG and EINVAL calls mapped nothing");
  });

  it("reads and answers a struct that crosses a page boundary", () => {
    const id = ioasAlloc(e);
    // 20 bytes before the end of a page: the copy-in and the answer take the staged path
    const at = e.buf + 0x3000 - 20;
    const put = (b: Uint8Array) => e.p.write(at, b);
    put(
      U.iommu_ioas_map.encode({
        size: 40,
        flags: FIXED | RW,
        ioas_id: id,
        user_va: BigInt(e.buf),
        length: 0x3000n,
        iova: 2n ** 53n,
      }),
    );
    assert.equal(e.p.ioctl(e.fd, U.IOMMU_IOAS_MAP, at), 0);
    assert.deepEqual(U.iommu_ioas_map.decode(e.p.read(at, 40)), {
      size: 40,
      flags: FIXED | RW,
      ioas_id: id,
      __reserved: 0,
      user_va: BigInt(e.buf),
      length: 0x3000n,
      iova: 2n ** 53n,
    });
    put(U.iommu_ioas_unmap.encode({ size: 24, ioas_id: id, iova: 2n ** 53n, length: 0x3000n }));
    assert.equal(e.p.ioctl(e.fd, U.IOMMU_IOAS_UNMAP, at), 0);
    assert.deepEqual(U.iommu_ioas_unmap.decode(e.p.read(at, 24)), {
      size: 24,
      ioas_id: id,
      iova: 2n ** 53n,
      length: 0x3000n,
    });
  });
});
