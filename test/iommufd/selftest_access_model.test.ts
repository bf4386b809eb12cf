// Generated programs of the selftest's access ops (fast-check): ACCESS_PAGES of random page
// ranges, DESTROY_ACCESS_PAGES, unmaps that meet pinned items (the access's unmap op drops
// them), remaps, and a mock domain coming and going. After every command MD_CHECK_REFS finds
// each page of the one MAP pinned exactly once while an item or a domain uses it (pins are
// per iopt_pages page, however many users), DESTROY_ACCESS_PAGES knows exactly the live
// items, ACCESS_RW reads what is behind the IOVA, and every invariant holds.

import { it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ENOENT } from "../../src/uapi/errno.js";
import * as T from "../../src/uapi/iommufd_test.js";
import { type Env, setup, teardown, ioasAlloc, map, unmap, destroy, checkAll } from "./helpers.js";
import {
  BUF,
  START,
  accessPages,
  accessRw,
  checkRefs,
  createAccess,
  destroyAccessPages,
  mockDomainOk,
} from "./selftest_helpers.js";

const P = 0x1000;
const NPAGES = 16;

interface Model {
  mapped: boolean;
  items: { id: number; first: number; n: number }[];
  domain: number | null; // the selftest object id
  nextId: number;
}

type Cmd =
  | { op: "pin"; first: number; n: number }
  | { op: "unpin"; k: number }
  | { op: "unmap" }
  | { op: "remap" }
  | { op: "domain" }
  | { op: "rw"; at: number; len: number };

function step(e: Env, ioas: number, fd: number, m: Model, c: Cmd): void {
  const what = JSON.stringify(c);
  switch (c.op) {
    case "pin": {
      const r = accessPages(e, fd, START + BigInt(c.first * P), BigInt(c.n * P), BUF + c.first * P);
      if (!m.mapped) {
        assert.equal(r.rc, -ENOENT, what);
        return;
      }
      assert.equal(r.rc, 0, what);
      assert.equal(r.id, m.nextId++, what);
      m.items.push({ id: r.id, first: c.first, n: c.n });
      break;
    }
    case "unpin": {
      if (!m.items.length) {
        assert.equal(destroyAccessPages(e, fd, m.nextId), -ENOENT, what);
        return;
      }
      const it = m.items.splice(c.k % m.items.length, 1)[0]!;
      assert.equal(destroyAccessPages(e, fd, it.id), 0, what);
      assert.equal(destroyAccessPages(e, fd, it.id), -ENOENT, what);
      break;
    }
    case "unmap":
      if (!m.mapped) return;
      assert.equal(unmap(e, ioas, START, BigInt(NPAGES * P)).rc, 0, what);
      m.mapped = false;
      m.items = []; // the unmap op unpinned them all
      break;
    case "remap":
      if (m.mapped) return;
      assert.equal(map(e, ioas, START, BigInt(NPAGES * P), { va: BUF }).rc, 0, what);
      m.mapped = true;
      break;
    case "domain":
      if (m.domain === null) m.domain = mockDomainOk(e, ioas).stdev;
      else {
        assert.equal(destroy(e, m.domain), 0, what);
        m.domain = null;
      }
      break;
    case "rw": {
      const rc = accessRw(e, fd, START + BigInt(c.at), BigInt(c.len), BUF + 0x40000);
      if (!m.mapped) {
        assert.equal(rc, -ENOENT, what);
        return;
      }
      assert.equal(rc, 0, what);
      assert.deepEqual(e.p.read(BUF + 0x40000, c.len), e.p.read(BUF + c.at, c.len), what);
      break;
    }
  }
}

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.integer({ min: 0, max: NPAGES - 1 }).chain((first) =>
      fc.record({
        op: fc.constant("pin" as const),
        first: fc.constant(first),
        n: fc.integer({ min: 1, max: NPAGES - first }),
      }),
    ),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("unpin" as const), k: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("unmap" as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("remap" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("domain" as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("rw" as const),
      at: fc.integer({ min: 0, max: NPAGES * P - 64 }),
      len: fc.integer({ min: 1, max: 64 }),
    }),
  },
);

it("access pins, unmap notifications and MD_CHECK_REFS agree with a model", () => {
  fc.assert(
    fc.property(fc.array(cmd, { minLength: 1, maxLength: 30 }), (cmds) => {
      const e = setup();
      assert.equal(e.p.mmap(0x80000, { addr: BUF }), BUF);
      e.p.write(
        BUF,
        Uint8Array.from({ length: NPAGES * P }, (_, i) => (i * 13) & 0xff),
      );
      const ioas = ioasAlloc(e);
      const fd = createAccess(e, ioas, T.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES).fd;
      assert.equal(map(e, ioas, START, BigInt(NPAGES * P), { va: BUF }).rc, 0);
      const m: Model = { mapped: true, items: [], domain: null, nextId: 0 };
      for (const c of cmds) {
        step(e, ioas, fd, m, c);
        for (let p = 0; p < NPAGES; p++) {
          const used = (m.mapped && m.domain !== null) || m.items.some((x) => x.first <= p && p < x.first + x.n);
          assert.equal(checkRefs(e, BUF + p * P, BigInt(P), used ? 1 : 0), 0, `${JSON.stringify(c)}: page ${p}`);
        }
      }
      checkAll(e);
      teardown(e);
    }),
    { numRuns: 100 },
  );
});
