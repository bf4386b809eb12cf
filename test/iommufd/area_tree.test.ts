// The io_pagetable's area B+tree (src/iommufd/area_tree.ts) against a sorted-array model:
// random inserts of disjoint ranges (some right after a lookup found their hole, as MAP does),
// removals by identity (found or not, some right after a lookup found them, as UNMAP does),
// first-intersecting queries and range listings, with the structure checked after every
// step. Small node counts would never split: runs go past several levels (16 areas a leaf,
// 32 children a node) by inserting in bulk.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AreaTree } from "../../src/iommufd/area_tree.js";
import { IovaRange } from "../../src/iommufd/interval_tree.js";

class R extends IovaRange {
  constructor(start: bigint, last: bigint) {
    super();
    this.setRange(start, last);
  }
}

type Op =
  | { k: "ins"; slot: number; len: number; count: number; stride: number }
  | { k: "rem"; pick: number; count: number; stray: boolean }
  | { k: "first"; s: bigint; len: bigint };

/** IOVAs in slots of 16 bytes; some near 2^32 and 2^64 so both halves matter */
const BASES = [0n, 0xffff_f000n, 0xffff_ffff_ffff_0000n - 0x100000n];
const slotStart = (slot: number) => BASES[slot % 3]! + BigInt(Math.floor(slot / 3)) * 16n;

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    k: fc.constant("ins" as const),
    slot: fc.nat(30000),
    len: fc.integer({ min: 1, max: 40 }),
    count: fc.oneof(fc.constant(1), fc.integer({ min: 50, max: 700 })),
    stride: fc.integer({ min: 1, max: 5 }),
  }),
  fc.record({
    k: fc.constant("rem" as const),
    pick: fc.nat(),
    count: fc.oneof(fc.constant(1), fc.integer({ min: 20, max: 600 })),
    stray: fc.boolean(),
  }),
  fc.record({
    k: fc.constant("first" as const),
    s: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
    len: fc.bigInt({ min: 1n, max: 0x100000n }),
  }),
);

function modelFirst(model: R[], s: bigint, l: bigint): R | null {
  for (const r of model) if (r.last >= s) return r.start <= l ? r : null;
  return null;
}

describe("iommufd: area B+tree", () => {
  it("matches a sorted-array model under random inserts, removals and queries", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        const t = new AreaTree<R>();
        const model: R[] = [];
        const overlaps = (s: bigint, l: bigint) => model.some((r) => r.start <= l && s <= r.last);
        for (const o of ops) {
          if (o.k === "ins") {
            // a run of `count` ranges, `stride` slots apart, skipping any that would overlap
            for (let c = 0; c < o.count; c++) {
              const s: bigint = slotStart(o.slot + c * o.stride * 3);
              const l: bigint = s + BigInt(o.len) - 1n;
              if (l > 0xffff_ffff_ffff_ffffn || overlaps(s, l)) continue;
              const r = new R(s, l);
              // as MAP does, half the time: look the range up (a hole), then insert it, which
              // takes the slot that lookup stopped at
              if (c % 2 === 0) assert.equal(t.first(s, l), null);
              t.insert(r);
              model.push(r);
            }
            model.sort((a, b) => (a.start < b.start ? -1 : 1));
          } else if (o.k === "rem") {
            for (let c = 0; c < o.count && model.length > 0; c++) {
              if (o.stray) {
                // an equal range that is another object is not in the tree
                const m: R = model[(o.pick + c) % model.length]!;
                assert.equal(t.remove(new R(m.start, m.last)), false);
                continue;
              }
              const i: number = (o.pick + c * 7) % model.length;
              const m: R = model[i]!;
              // half the time through firstH() first, as unmap does (the remembered path)
              if (c % 2 === 0) assert.equal(t.first(m.start, m.start), m);
              assert.equal(t.remove(m), true);
              assert.equal(t.remove(m), false, "removed twice");
              model.splice(i, 1);
            }
          } else {
            const l = o.s + o.len - 1n > 0xffff_ffff_ffff_ffffn ? 0xffff_ffff_ffff_ffffn : o.s + o.len - 1n;
            assert.equal(t.first(o.s, l), modelFirst(model, o.s, l));
            const want = model.filter((r) => r.start <= l && o.s <= r.last);
            assert.deepEqual(t.all(o.s, l), want);
          }
          assert.deepEqual(t.violations("t"), []);
          assert.equal(t.size, model.length);
          assert.equal(t.isEmpty(), model.length === 0);
          for (const m of model.length > 64 ? model.filter((_, i) => i % 17 === 0) : model)
            assert.equal(t.first(m.last, m.last), m);
        }
        assert.deepEqual(t.all(), model);
      }),
      { numRuns: 60 },
    );
  });

  it("keeps its shape under descending and shuffled builds, and hands every handle back", () => {
    for (const order of ["descending", "shuffled"] as const) {
      const t = new AreaTree<R>();
      const rs: R[] = [];
      for (let i = 0; i < 6000; i++) rs.push(new R(BigInt(i) * 0x2000n, BigInt(i) * 0x2000n + 0xfffn));
      const ins = order === "descending" ? [...rs].reverse() : rs.map((_, i) => rs[(i * 4099) % rs.length]!);
      for (const r of ins) {
        assert.equal(t.first(r.start, r.last), null);
        t.insert(r);
      }
      assert.deepEqual(t.violations(order), []);
      assert.ok(t.depth() <= 4, `${order}: depth ${t.depth()}`);
      assert.deepEqual(t.all(), rs);
      // a lookup's remembered hole is for that range only: inserting another range next
      // must not land in its slot
      assert.equal(t.first(0x1000n, 0x1fffn), null);
      const other = new R(0x3000n, 0x3fffn);
      t.insert(other);
      assert.deepEqual(t.violations(order), []);
      assert.equal(t.first(0x3000n, 0x3000n), other);
      assert.equal(t.remove(other), true);
      for (const r of ins) assert.equal(t.remove(r), true);
      assert.deepEqual(t.violations(order), []);
      assert.equal(t.isEmpty(), true);
    }
  });

  it("stays shallow and empties completely after a million-style sequential run", () => {
    const t = new AreaTree<R>();
    const rs: R[] = [];
    for (let i = 0; i < 20000; i++) {
      const r = new R(BigInt(i) * 0x2000n, BigInt(i) * 0x2000n + 0xfffn);
      t.insert(r);
      rs.push(r);
    }
    assert.equal(
      t.depth(),
      4,
      "12 areas a leaf, 24 children a node after a sequential build: 20k areas in four levels",
    );
    assert.deepEqual(t.violations("t"), []);
    for (let i = 0; i < rs.length; i += 2) assert.equal(t.remove(rs[i]!), true);
    assert.deepEqual(t.violations("t"), []);
    for (let i = 1; i < rs.length; i += 2) {
      assert.equal(t.first(rs[i]!.start, rs[i]!.last), rs[i]);
      assert.equal(t.remove(rs[i]!), true);
    }
    assert.equal(t.isEmpty(), true);
    assert.equal(t.depth(), 0);
    assert.equal(t.first(0n, 0xffff_ffff_ffff_ffffn), null);
  });
});
