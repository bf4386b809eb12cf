// Generated programs against the mock domain (fast-check): random 2 KiB-grained FIXED maps,
// exact unmaps, unmap-all, copies and mock domains coming and going on one IOAS. After every
// command MD_CHECK_MAP finds each area's user memory behind its IOVAs in every mock domain
// (and nothing at a chunk no area covers), MD_CHECK_REFS finds each page pinned once per
// MAP whose live areas touch it (COPY shares its source's pages), and every invariant holds.

import { it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { EEXIST, EINVAL } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import { type Env, setup, teardown, ioasAlloc, map, unmap, destroy, raw, checkAll, RW, FIXED } from "./helpers.js";
import { BUF, START, checkMap, checkRefs, mockDomainOk } from "./selftest_helpers.js";

const C = 0x800; // MOCK_IO_PAGE_SIZE
const CHUNKS = 32; // the buffer: 16 pages
interface Area {
  start: number; // chunk index from START
  len: number; // chunks
  va: number; // chunk index from BUF
  origin: number; // the MAP whose iopt_pages it slices
}
interface Model {
  areas: Area[];
  domains: { stdev: number; hwpt: number }[];
  nextOrigin: number;
}

type Cmd =
  | { op: "map"; start: number; len: number; va: number }
  | { op: "unmap"; k: number }
  | { op: "unmapAll" }
  | { op: "copy"; k: number; dst: number }
  | { op: "addDomain" }
  | { op: "removeDomain"; k: number };

const overlaps = (l: Area[], s: number, n: number) => l.some((a) => a.start < s + n && s < a.start + a.len);
const iova = (chunk: number) => START + BigInt(chunk * C);

function step(e: Env, ioas: number, m: Model, c: Cmd): void {
  const what = JSON.stringify(c);
  switch (c.op) {
    case "map": {
      const r = map(e, ioas, iova(c.start), BigInt(c.len * C), { va: BUF + c.va * C });
      const want = overlaps(m.areas, c.start, c.len) ? -EEXIST : 0;
      assert.equal(r.rc, want, what);
      if (!want) m.areas.push({ start: c.start, len: c.len, va: c.va, origin: m.nextOrigin++ });
      break;
    }
    case "unmap": {
      if (!m.areas.length) return;
      const a = m.areas[c.k % m.areas.length]!;
      assert.deepEqual(unmap(e, ioas, iova(a.start), BigInt(a.len * C)), { rc: 0, length: BigInt(a.len * C) }, what);
      m.areas.splice(m.areas.indexOf(a), 1);
      break;
    }
    case "unmapAll":
      assert.equal(unmap(e, ioas, 0n, 0xffffffffffffffffn).rc, 0, what);
      m.areas = [];
      break;
    case "copy": {
      if (!m.areas.length) return;
      const a = m.areas[c.k % m.areas.length]!;
      const r = raw(e, U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, {
        size: U.iommu_ioas_copy.size,
        flags: FIXED | RW,
        dst_ioas_id: ioas,
        src_ioas_id: ioas,
        dst_iova: iova(c.dst),
        src_iova: iova(a.start),
        length: BigInt(a.len * C),
      });
      const want = overlaps(m.areas, c.dst, a.len) ? -EEXIST : 0;
      assert.equal(r.rc, want, what);
      if (!want) m.areas.push({ start: c.dst, len: a.len, va: a.va, origin: a.origin });
      break;
    }
    case "addDomain":
      if (m.domains.length >= 2) return;
      m.domains.push(mockDomainOk(e, ioas));
      break;
    case "removeDomain": {
      if (!m.domains.length) return;
      const d = m.domains.splice(c.k % m.domains.length, 1)[0]!;
      assert.equal(destroy(e, d.stdev), 0, what);
      break;
    }
  }
}

function check(e: Env, m: Model, what: string): void {
  for (const d of m.domains) {
    for (const a of m.areas)
      assert.equal(checkMap(e, d.hwpt, iova(a.start), BigInt(a.len * C), BUF + a.va * C), 0, what);
    const free = [...Array(80).keys()].find((x) => !overlaps(m.areas, x, 1))!;
    assert.equal(checkMap(e, d.hwpt, iova(free), BigInt(C), BUF), -EINVAL, `${what}: chunk ${free} is unmapped`);
  }
  for (let page = 0; page < CHUNKS / 2; page++) {
    const origins = new Set<number>();
    if (m.domains.length)
      for (const a of m.areas) if (a.va < 2 * page + 2 && 2 * page < a.va + a.len) origins.add(a.origin);
    assert.equal(checkRefs(e, BUF + page * 0x1000, 0x1000n, origins.size), 0, `${what}: page ${page}`);
  }
}

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .record({ start: fc.integer({ min: 0, max: 63 }), len: fc.integer({ min: 1, max: 8 }) })
      .chain(({ start, len }) =>
        fc.record({
          op: fc.constant("map" as const),
          start: fc.constant(start),
          len: fc.constant(len),
          va: fc.integer({ min: 0, max: CHUNKS - len }),
        }),
      ),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("unmap" as const), k: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("unmapAll" as const) }) },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant("copy" as const), k: fc.nat(), dst: fc.integer({ min: 0, max: 63 }) }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("addDomain" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("removeDomain" as const), k: fc.nat() }) },
);

it("MD_CHECK_MAP and MD_CHECK_REFS agree with a model after random map/unmap/copy/domain programs", () => {
  fc.assert(
    fc.property(fc.array(cmd, { minLength: 1, maxLength: 30 }), (cmds) => {
      const e = setup();
      assert.equal(e.p.mmap(CHUNKS * C, { addr: BUF }), BUF);
      const ioas = ioasAlloc(e);
      const m: Model = { areas: [], domains: [], nextOrigin: 0 };
      for (const c of cmds) {
        step(e, ioas, m, c);
        check(e, m, JSON.stringify(c));
      }
      checkAll(e);
      teardown(e);
    }),
    { numRuns: 120 },
  );
});
