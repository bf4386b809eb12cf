// Model-based test of the IOVA engine (fast-check): random FIXED maps, unmaps (exact,
// spanning, cutting, unmap-all), automatic maps and copies run through ioctl(2) and against a
// plain list of intervals that states the 6.12 rules directly. After every command the
// answers agree, the area tree equals the model, and every invariant holds; a failure
// prints a replayable command list.

import { it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { EADDRINUSE, EEXIST, EINVAL, ENOENT } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import type { IommufdCtx } from "../../src/iommufd/main.js";
import type { IommufdIoas } from "../../src/iommufd/ioas.js";
import * as V from "../../src/uapi/vfio.js";
import {
  type Env,
  setup,
  teardown,
  ioasAlloc,
  map,
  unmap,
  raw,
  rawFields,
  checkAll,
  RW,
  FIXED,
  bindIommufd,
  attachPt,
} from "./helpers.js";

type Iv = [number, number]; // [start, last] in pages
interface Model {
  a: Iv[];
  b: Iv[];
  /** areas not on page boundaries (start page of a 0x10-byte-offset 4 KiB map) */
  odd: { a: number[]; b: number[] };
  /** the device is attached to IOAS a (its domain pins a's areas) */
  attached: boolean;
}

type Cmd =
  | { op: "map"; to: "a" | "b"; start: number; len: number }
  | { op: "unmap"; to: "a" | "b"; start: number; len: number }
  | { op: "unmapAll"; to: "a" | "b" }
  | { op: "auto"; to: "a" | "b"; len: number }
  | { op: "copy"; start: number; len: number; dst: number }
  | { op: "mapOdd"; to: "a" | "b"; start: number }
  | { op: "attach" }
  | { op: "detach" };

const P = 0x1000;
const overlaps = (l: Iv[], s: number, e: number) => l.some(([a, b]) => a <= e && s <= b);

function step(e: Env, m: Model, ids: { a: number; b: number }, c: Cmd, dev: number): void {
  const what = JSON.stringify(c);
  if (c.op === "attach") {
    const r = attachPt(e, dev, ids.a);
    // every area must fit the domain's 4 KiB alignment (iopt_check_iova_alignment)
    const want = m.odd.a.length ? -EADDRINUSE : 0;
    assert.equal(r.rc, want, what);
    if (want === 0) m.attached = true;
    return;
  }
  if (c.op === "detach") {
    assert.equal(rawFields(e, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, [["u32", 0, 8]], undefined, dev).rc, 0, what);
    m.attached = false;
    return;
  }
  if (c.op === "mapOdd") {
    // [start*P + 0x10, +0x1000) touches pages start and start+1
    const r = map(e, ids[c.to], BigInt(c.start * P + 0x10), 0x1000n);
    const domain = c.to === "a" && m.attached;
    const want = domain ? -EINVAL : overlaps(m[c.to], c.start, c.start + 1) ? -EEXIST : 0;
    assert.equal(r.rc, want, what);
    if (want === 0) {
      m[c.to].push([c.start, c.start + 1]);
      m.odd[c.to].push(c.start);
    }
    return;
  }
  if (c.op === "map") {
    const r = map(e, ids[c.to], BigInt(c.start * P), BigInt(c.len * P));
    const last = c.start + c.len - 1;
    const want = overlaps(m[c.to], c.start, last) ? -EEXIST : 0;
    assert.equal(r.rc, want, what);
    if (want === 0) m[c.to].push([c.start, last]);
  } else if (c.op === "unmap") {
    const last = c.start + c.len - 1;
    const r = unmap(e, ids[c.to], BigInt(c.start * P), BigInt(c.len * P));
    // 6.12: areas in IOVA order; each must lie inside; the first that does not is ENOENT,
    // with the earlier ones already gone; nothing at all is ENOENT too
    const hit = m[c.to].filter(([a, b]) => a <= last && c.start <= b).sort((x, y) => x[0] - y[0]);
    let want = hit.length ? 0 : -ENOENT;
    let bytes = 0;
    for (const iv of hit) {
      if (iv[0] < c.start || iv[1] > last) {
        want = -ENOENT;
        break;
      }
      m[c.to].splice(m[c.to].indexOf(iv), 1);
      const oi = m.odd[c.to].indexOf(iv[0]);
      if (oi >= 0 && iv[1] === iv[0] + 1) {
        m.odd[c.to].splice(oi, 1);
        bytes += 0x1000;
      } else bytes += (iv[1] - iv[0] + 1) * P;
    }
    assert.equal(r.rc, want, what);
    if (want === 0) assert.equal(r.length, BigInt(bytes), what);
  } else if (c.op === "unmapAll") {
    const r = unmap(e, ids[c.to], 0n, 0xffffffffffffffffn);
    const bytes = m[c.to].reduce(
      (s, [a, b]) => s + (m.odd[c.to].includes(a) && b === a + 1 ? 0x1000 : (b - a + 1) * P),
      0,
    );
    assert.deepEqual(r, { rc: 0, length: BigInt(bytes) }, what);
    m[c.to].length = 0;
    m.odd[c.to].length = 0;
  } else if (c.op === "auto") {
    const r = map(e, ids[c.to], 0n, BigInt(c.len * P), { flags: RW, va: e.buf });
    assert.equal(r.rc, 0, what);
    const s = Number(r.iova / BigInt(P));
    assert.equal(r.iova % BigInt(P), 0n, what);
    assert.ok(s >= 1 && !overlaps(m[c.to], s, s + c.len - 1), what);
    m[c.to].push([s, s + c.len - 1]);
  } else {
    // copy a -> b: the source must be covered by contiguous areas
    const last = c.start + c.len - 1;
    const src = m.a.filter(([a, b]) => a <= last && c.start <= b).sort((x, y) => x[0] - y[0]);
    // an area that is not page aligned can never begin or continue a page-aligned range
    let covered =
      src.length > 0 && src[0]![0] <= c.start && !src.some((iv) => m.odd.a.includes(iv[0]) && iv[1] === iv[0] + 1);
    for (let i = 1; covered && i < src.length; i++) covered = src[i]![0] === src[i - 1]![1] + 1;
    covered = covered && src.length > 0 && src[src.length - 1]![1] >= last;
    const r = raw(e, U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, {
      size: 40,
      flags: FIXED | RW,
      dst_ioas_id: ids.b,
      src_ioas_id: ids.a,
      length: BigInt(c.len * P),
      dst_iova: BigInt(c.dst * P),
      src_iova: BigInt(c.start * P),
    });
    const dLast = c.dst + c.len - 1;
    const want = !covered ? -ENOENT : overlaps(m.b, c.dst, dLast) ? -EEXIST : 0;
    assert.equal(r.rc, want, what);
    if (want === 0) {
      // one area per source slice
      let at = c.dst;
      for (const [a, b] of src) {
        const s = Math.max(a, c.start);
        const l = Math.min(b, last);
        m.b.push([at, at + (l - s)]);
        at += l - s + 1;
      }
    }
  }
}

function areasOf(e: Env, id: number): Iv[] {
  const ictx = e.p.proc.files.lookup(e.fd)!.privateData as IommufdCtx;
  const ioas = ictx.objects.peek(id) as IommufdIoas;
  // in pages; an area off the page grid ([s*P + 0x10, +0x1000)) reads as pages [s, s + 1]
  return ioas.iopt.areas
    .all()
    .map((a) => [Math.floor(Number(a.start) / P), Math.ceil(Number(a.last + 1n) / P) - 1] as Iv);
}

const side = fc.constantFrom<"a" | "b">("a", "b");
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("map" as const),
      to: side,
      start: fc.integer({ min: 0, max: 63 }),
      len: fc.integer({ min: 1, max: 6 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("unmap" as const),
      to: side,
      start: fc.integer({ min: 0, max: 63 }),
      len: fc.integer({ min: 1, max: 16 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("unmapAll" as const), to: side }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("auto" as const), to: side, len: fc.integer({ min: 1, max: 4 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("copy" as const),
      start: fc.integer({ min: 0, max: 63 }),
      len: fc.integer({ min: 1, max: 8 }),
      dst: fc.integer({ min: 0, max: 63 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("mapOdd" as const),
      to: side,
      start: fc.integer({ min: 0, max: 31 }).map((x) => 2 * x),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("attach" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("detach" as const) }) },
);

it("agrees with a list-of-intervals model of the 6.12 IOAS rules", () => {
  fc.assert(
    fc.property(fc.array(cmd, { minLength: 1, maxLength: 40 }), (cmds) => {
      const e = setup();
      const ids = { a: ioasAlloc(e), b: ioasAlloc(e) };
      const dev = e.p.open("/dev/vfio/devices/vfio0");
      assert.equal(bindIommufd(e, dev).rc, 0);
      const m: Model = { a: [], b: [], odd: { a: [], b: [] }, attached: false };
      for (const c of cmds) {
        step(e, m, ids, c, dev);
        // with the domain, each of a's areas is pinned (its own MAP, offset 0); b's are not
        const want = m.attached ? m.a.reduce((s, [x, y]) => s + y - x + 1, 0) : 0;
        assert.equal(e.p.proc.mm.pinnedVm, want, `pinned after ${JSON.stringify(c)}`);
        for (const k of ["a", "b"] as const)
          assert.deepEqual(
            areasOf(e, ids[k]),
            [...m[k]].sort((x, y) => x[0] - y[0]),
            JSON.stringify(c),
          );
      }
      checkAll(e);
      teardown(e);
    }),
    { numRuns: 150 },
  );
});
