// The user-memory layer (src/kernel/mm.ts userView/readStruct/writeStruct) and the struct
// codecs compiled for DataViews (src/uapi/struct.ts): the fast path in place must agree byte
// for byte and value for value with the copying path and the byte codecs, at the u64
// boundaries (2^32, 2^53, 2^64 - 1), across page boundaries, on absent pages, and fault where
// the copying path faults.

import { test } from "node:test";
import fc from "fast-check";
import assert from "node:assert/strict";
import { defineStruct, U64_MAX } from "../../src/uapi/struct.js";
import { MmStruct, PAGE_SIZE, PROT_READ, PROT_WRITE } from "../../src/kernel/mm.js";
import { EFAULT } from "../../src/uapi/errno.js";

const s = defineStruct("layer_test", [
  ["a", "u32"],
  ["b", "u8"],
  ["c", "u64"],
  ["d", "s32"],
  ["e", "s64"],
  ["f", "u16"],
  ["g", "s8"],
] as const);

/** u64 values at and around the representation's edges */
const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: U64_MAX }),
  fc.constantFrom(
    0n,
    1n,
    2n ** 32n - 1n,
    2n ** 32n,
    2n ** 53n - 1n,
    2n ** 53n,
    2n ** 53n + 1n,
    2n ** 63n,
    U64_MAX - 1n,
    U64_MAX,
  ),
);
const s64 = u64.map((v) => BigInt.asIntN(64, v));
const value = fc
  .record({
    a: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    b: fc.integer({ min: 0, max: 255 }),
    c: u64,
    d: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    e: s64,
    f: fc.integer({ min: 0, max: 0xffff }),
    g: fc.integer({ min: -128, max: 127 }),
  })
  .map((v) => ({ ...v })); // a plain object, as the codecs return

test("a struct encoded and decoded in a DataView equals the byte codecs, u64 edges included", () => {
  fc.assert(
    fc.property(value, fc.integer({ min: 0, max: 64 }), (v, base) => {
      const dv = new DataView(new ArrayBuffer(base + s.size + 8));
      new Uint8Array(dv.buffer).fill(0xee);
      s.encodeWhole(dv, v, base);
      const bytes = new Uint8Array(dv.buffer, base, s.size);
      assert.deepEqual([...bytes], [...s.encode(v)], "every byte, padding zeroed");
      assert.deepEqual(s.decodeView(dv, base), s.decode(s.encode(v)));
      assert.deepEqual(s.decodeView(dv, base), v);
    }),
  );
});

test("encodeWhole: an absent field is zero and a small field given as a bigint is its number, as the byte codec has them", () => {
  // the compiled encoder computes each small field as Number(x) >>> 0 or & mask before its
  // store (struct.ts: no ?: among a DataView call's arguments); undefined must still be 0
  const partial = value.chain((v) =>
    fc
      .record({
        keep: fc.subarray(Object.keys(v)),
        big: fc.subarray(["a", "b", "d", "f", "g"]),
      })
      .map(({ keep, big }) => {
        const out: Record<string, number | bigint> = {};
        for (const k of keep) {
          const x = v[k as keyof typeof v];
          out[k] = big.includes(k) ? BigInt(x) : x;
        }
        return out;
      }),
  );
  fc.assert(
    fc.property(partial, (v) => {
      const dv = new DataView(new ArrayBuffer(s.size));
      new Uint8Array(dv.buffer).fill(0xee);
      s.encodeWhole(dv, v, 0);
      assert.deepEqual([...new Uint8Array(dv.buffer)], [...s.encode(v)]);
      const back = s.decodeView(dv, 0) as Record<string, unknown>;
      for (const k of ["a", "b", "d", "f", "g"]) assert.equal(back[k], k in v ? Number(v[k]) : 0, k);
    }),
  );
});

test("a u64 given as a number encodes exactly below 2^53 and wraps as BigInt would when negative", () => {
  const dv = new DataView(new ArrayBuffer(s.size));
  for (const n of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -(2 ** 40)]) {
    s.encodeWhole(dv, { c: n as unknown as bigint }, 0);
    assert.equal(s.decodeView(dv, 0).c, BigInt.asUintN(64, BigInt(n)), String(n));
  }
});

test("decodeView: fields at or past `end` read as zero", () => {
  const v = { a: 7, b: 9, c: U64_MAX, d: -5, e: -1n, f: 3, g: -2 };
  const dv = new DataView(s.encode(v).slice().buffer);
  const part = s.decodeView(dv, 0, s.offsetOfEnd("c"));
  assert.deepEqual(part, { a: 7, b: 9, c: U64_MAX, d: 0, e: 0n, f: 0, g: 0 });
});

function mm(): { mm: MmStruct; base: number } {
  const m = new MmStruct();
  const base = m.mmap(4 * PAGE_SIZE, { prot: PROT_READ | PROT_WRITE });
  assert.ok(base > 0);
  return { mm: m, base };
}

test("readStruct/writeStruct in place and across pages agree with copy_from_user/copy_to_user", () => {
  fc.assert(
    fc.property(value, fc.integer({ min: 0, max: 3 * PAGE_SIZE - s.size }), (v, off) => {
      const { mm: m, base } = mm();
      const addr = base + off;
      assert.equal(m.writeStruct(s, addr, v), 0);
      const bytes = m.copyFromUser(addr, s.size);
      assert.ok(bytes instanceof Uint8Array);
      assert.deepEqual([...bytes], [...s.encode(v)]);
      assert.deepEqual(m.readStruct(s, addr), v);
      // written through the copying path, read through the layer
      const w = { ...v, a: (v.a + 1) >>> 0 };
      assert.equal(m.copyToUser(addr, s.encode(w)), 0);
      assert.deepEqual(m.readStruct(s, addr), w);
    }),
  );
});

test("readStruct of a short user size: the user's bytes, then zeros up to sizeof", () => {
  const { mm: m, base } = mm();
  const v = { a: 1, b: 2, c: 0x1234_5678_9abc_def0n, d: -3, e: -4n, f: 5, g: -6 };
  assert.equal(m.writeStruct(s, base + 100, v), 0);
  // 12 bytes: a, b, padding and the low 4 bytes of c (copy_struct_from_user() keeps them)
  assert.deepEqual(m.readStruct(s, base + 100, 12), { a: 1, b: 2, c: 0x9abc_def0n, d: 0, e: 0n, f: 0, g: 0 });
});

test("a page never touched reads as zeros and stays absent; a write faults it in", () => {
  const { mm: m, base } = mm();
  const at = base + 2 * PAGE_SIZE + 8;
  assert.deepEqual(m.readStruct(s, at), { a: 0, b: 0, c: 0n, d: 0, e: 0n, f: 0, g: 0 });
  assert.equal(m.vmas[0]!.pages!.size, 0, "reading allocated no page");
  assert.equal(m.getU32(at), 0);
  assert.equal(m.writeStruct(s, at, { a: 42 }), 0);
  assert.equal(m.vmas[0]!.pages!.size, 1);
  assert.equal(m.getU32(at), 42);
});

test("faults: holes, read-only memory, the top of user space, and a cache that outlived munmap", () => {
  const { mm: m, base } = mm();
  assert.equal(m.readStruct(s, base - PAGE_SIZE), null);
  assert.equal(m.writeStruct(s, base + 4 * PAGE_SIZE - 8, {}), -EFAULT, "runs off the mapping");
  assert.equal(m.getU32(2 ** 47), -EFAULT);
  assert.equal(m.getU32(2 ** 64), -EFAULT);
  assert.equal(m.getU32(-4), -EFAULT);
  const ro = m.mmap(PAGE_SIZE, { prot: PROT_READ });
  assert.deepEqual(m.readStruct(s, ro), s.decode(new Uint8Array(s.size)));
  assert.equal(m.writeStruct(s, ro, { a: 1 }), -EFAULT);
  // warm the caches on a page, unmap it: the next access faults
  assert.equal(m.writeStruct(s, base, { a: 9 }), 0);
  assert.equal(m.getU32(base), 9);
  assert.equal(m.munmap(base, PAGE_SIZE), 0);
  assert.equal(m.getU32(base), -EFAULT);
  assert.equal(m.readStruct(s, base), null);
  // a new mapping at the same address is a new, zeroed page
  assert.equal(m.mmap(PAGE_SIZE, { addr: base, prot: PROT_READ | PROT_WRITE }), base);
  assert.equal(m.getU32(base), 0);
});

test("device memory goes through the copying path's io hooks", () => {
  const m = new MmStruct();
  const regs = new Uint8Array(PAGE_SIZE);
  let calls = 0;
  const at = m.mmap(PAGE_SIZE, {
    prot: PROT_READ | PROT_WRITE,
    io: {
      read: (off, len) => {
        calls++;
        return regs.slice(off, off + len);
      },
      write: (off, b) => {
        calls++;
        regs.set(b, off);
        return true;
      },
    },
  });
  const v = { a: 1, b: 2, c: U64_MAX, d: -1, e: -2n, f: 3, g: 4 };
  assert.equal(m.writeStruct(s, at + 16, v), 0);
  assert.deepEqual([...regs.subarray(16, 16 + s.size)], [...s.encode(v)]);
  assert.deepEqual(m.readStruct(s, at + 16), v);
  assert.equal(calls, 2, "one io call per single-chunk access");
});
