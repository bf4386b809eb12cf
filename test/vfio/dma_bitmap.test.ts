// DmaBitmap (runs of set bits) against the plain bit array it stands for: the lib/bitmap.c
// operations update_user_bitmap() uses, on random small bitmaps.
import { it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { DmaBitmap } from "../../src/vfio/vfio_dma_bitmap.js";

const ones = (n: number) => (1n << BigInt(n)) - 1n;

type Op =
  { op: "set" | "clear"; a: number; n: number } | { op: "shift"; s: number; nbits: number } | { op: "or"; w: bigint };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom("set" as const, "clear" as const), a: fc.nat(300), n: fc.nat(200) }),
  fc.record({
    op: fc.constant("shift" as const),
    s: fc.integer({ min: 0, max: 63 }),
    nbits: fc.integer({ min: 1, max: 400 }),
  }),
  fc.record({ op: fc.constant("or" as const), w: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
);

it("set, clear, shift-left (unmasked top word, words above untouched), OR of word 0, words out", () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 12 }), (ops) => {
      const b = new DmaBitmap();
      let ref = 0n;
      for (const o of ops) {
        if (o.op === "set") {
          b.set(o.a, o.n);
          ref |= ones(o.n) << BigInt(o.a);
        } else if (o.op === "clear") {
          b.clear(o.a, o.n);
          ref &= ~(ones(o.n) << BigInt(o.a));
        } else if (o.op === "shift") {
          b.shiftLeft(o.s, o.nbits);
          const window = ones(Math.ceil(o.nbits / 64) * 64);
          ref = (((ref & window) << BigInt(o.s)) & window) | (ref & ~window);
        } else if (o.op === "or") {
          b.orWord0(o.w);
          ref |= o.w;
        }
      }
      for (let w = 0; w < 12; w++) assert.equal(b.word(w), (ref >> BigInt(64 * w)) & ones(64), `word ${w}`);
      const spans = b.wordSpans(12);
      for (let w = 0; w < 12; w++) {
        const inSpan = spans.some(([a, z]) => w >= a && w < z);
        assert.equal(inSpan, ((ref >> BigInt(64 * w)) & ones(64)) !== 0n, `span of word ${w}`);
      }
    }),
    { seed: 12, numRuns: 500 },
  );
});
