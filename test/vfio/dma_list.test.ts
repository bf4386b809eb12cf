// type1's dma_list (src/vfio/vfio_dma_list.ts) against a sorted array: generated sequences of
// inserts and removes of disjoint page ranges, every query checked after each step. Ranges
// reach page 2^52 - 1 (the page of IOVA 2^64 - 1), and enough of them to split leaves and
// inner nodes and to empty them again.
import { it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { DmaList, type PfnRange } from "../../src/vfio/vfio_dma_list.js";

const TOP = 2 ** 52 - 1;

/** the reference: the ranges in order */
function model(xs: PfnRange[]): PfnRange[] {
  return [...xs].sort((a, b) => a.pfn - b.pfn);
}

function check(t: DmaList<PfnRange>, live: PfnRange[], probes: number[]): void {
  const m = model(live);
  assert.equal(t.size, m.length);
  assert.deepEqual([...t], m);
  assert.equal(t.first(), m[0] ?? null);
  assert.equal(t.last(), m.at(-1) ?? null);
  for (const k of probes) {
    const floor = m.filter((x) => x.pfn <= k).at(-1) ?? null;
    const ceil = m.find((x) => x.pfn >= k) ?? null;
    assert.equal(t.floor(k), floor, `floor ${k}`);
    assert.equal(t.ceil(k), ceil, `ceil ${k}`);
    assert.equal(t.find(k), floor && floor.lastPfn >= k ? floor : null, `find ${k}`);
    const span = 3;
    const ov = m.find((x) => x.lastPfn >= k && x.pfn <= k + span) ?? null;
    assert.equal(t.firstOverlap(k, k + span), ov, `firstOverlap ${k}`);
  }
  for (let i = 0; i + 1 < m.length; i++) assert.equal(t.next(m[i]!), m[i + 1]);
}

it("dma_list: inserts and removes of disjoint page ranges agree with a sorted array", () => {
  // a slot s holds the range [base + 8s, base + 8s + len]: disjoint for len < 8
  // `ask`: look the range up first, as MAP_DMA (overlap check) and UNMAP_DMA (find) do, so
  // the change starts from that lookup's cursor
  const op = fc.record({ insert: fc.boolean(), slot: fc.nat(2000), len: fc.nat(6), ask: fc.boolean() });
  fc.assert(
    fc.property(fc.constantFrom(0, TOP - 8 * 2001), fc.array(op, { maxLength: 1500 }), (base, ops) => {
      const t = new DmaList<PfnRange>();
      const live = new Map<number, PfnRange>();
      let step = 0;
      for (const o of ops) {
        const cur = live.get(o.slot);
        if (o.insert && !cur) {
          const r = { pfn: base + 8 * o.slot, lastPfn: base + 8 * o.slot + o.len };
          if (o.ask) assert.equal(t.firstOverlap(r.pfn, r.lastPfn), null);
          t.insert(r);
          live.set(o.slot, r);
          // the same key again right after the change (a stale cursor would answer it)
          assert.equal(t.find(r.pfn), r);
        } else if (!o.insert && cur) {
          if (o.ask) assert.equal(t.find(cur.pfn), cur);
          assert.equal(t.remove(cur), true);
          live.delete(o.slot);
          assert.equal(t.find(cur.pfn), null);
        } else if (!o.insert) assert.equal(t.remove({ pfn: base + 8 * o.slot, lastPfn: base + 8 * o.slot }), false);
        // the full check is quadratic: every 50th step and at the end
        if (++step % 50 === 0) check(t, [...live.values()], [base, base + 8 * o.slot + 1, base + 8 * o.slot + 7]);
      }
      const probes = [
        base,
        base + 5,
        base + 8 * 2000 + 8,
        ...[...live.keys()].slice(0, 20).map((s) => base + 8 * s + 3),
      ];
      check(t, [...live.values()], probes);
      // and emptied: the tree shrinks back to a leaf that still works
      for (const r of live.values()) assert.equal(t.remove(r), true);
      check(t, [], [base]);
      const r = { pfn: TOP, lastPfn: TOP };
      t.insert(r);
      check(t, [r], [0, TOP]);
    }),
    { numRuns: 60 },
  );
});

it("dma_list: a removal that empties leaves keeps floor and ceil right across the gaps", () => {
  const t = new DmaList<PfnRange>();
  const rs: PfnRange[] = [];
  for (let i = 0; i < 5000; i++) rs.push({ pfn: 2 * i, lastPfn: 2 * i });
  for (const r of rs) t.insert(r);
  // remove all but every 100th: most leaves empty and go
  const keep = rs.filter((_, i) => i % 100 === 0);
  for (let i = 0; i < rs.length; i++) if (i % 100 !== 0) assert.equal(t.remove(rs[i]!), true);
  check(t, keep, [0, 1, 199, 200, 201, 5555, 9800, 9801, 10_000]);
});
