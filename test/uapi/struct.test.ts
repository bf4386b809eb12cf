import { test } from "node:test";
import fc from "fast-check";
import assert from "node:assert/strict";
import { defineStruct, U64_MAX } from "../../src/uapi/struct.js";
import { kvm_create_device, kvm_device_attr, kvm_userspace_memory_region } from "../../src/uapi/kvm.js";

test("C layout: natural alignment and tail padding", () => {
  const s = defineStruct("t", [
    ["a", "u8"],
    ["b", "u64"],
    ["c", "u16"],
  ] as const);
  assert.equal(s.offsetOf("a"), 0);
  assert.equal(s.offsetOf("b"), 8);
  assert.equal(s.offsetOf("c"), 16);
  assert.equal(s.size, 24);
  assert.equal(s.offsetOfEnd("c"), 18);
});

test("kvm structs have the header's sizes", () => {
  assert.equal(kvm_create_device.size, 12);
  assert.equal(kvm_device_attr.size, 24);
  assert.equal(kvm_device_attr.offsetOf("attr"), 8);
  assert.equal(kvm_userspace_memory_region.size, 32);
});

test("u64 fields round-trip exactly up to 2^64-1", () => {
  const b = kvm_device_attr.encode({ flags: 1, group: 2, attr: U64_MAX, addr: 0x1234_5678_9abc_def0n });
  const v = kvm_device_attr.decode(b);
  assert.equal(v.attr, U64_MAX);
  assert.equal(v.addr, 0x1234_5678_9abc_def0n);
  assert.equal(v.group, 2);
});

test("decode of a short buffer reads missing fields as zero; arrays and nested structs", () => {
  const r = defineStruct("r", [
    ["start", "u64"],
    ["last", "u64"],
  ] as const);
  const s = defineStruct("s", [
    ["n", "u32"],
    ["tag", "bytes", 4],
    ["ranges", r, 2],
    ["v", "u32", 2],
  ] as const);
  assert.equal(s.size, 48);
  const b = s.encode({
    n: 2,
    tag: new Uint8Array([1, 2, 3, 4]),
    ranges: [
      { start: 1n, last: 2n },
      { start: 3n, last: U64_MAX },
    ],
    v: [7, 8],
  });
  const d = s.decode(b);
  assert.deepEqual([...d.tag], [1, 2, 3, 4]);
  assert.equal(d.ranges[1]!.last, U64_MAX);
  assert.deepEqual(d.v, [7, 8]);
  const short = s.decode(b.subarray(0, 4));
  assert.equal(short.n, 2);
  assert.equal(short.ranges[0]!.start, 0n);
});

test("signed fields and u64 values around 2^53 round-trip exactly, little-endian", () => {
  const s = defineStruct("signed", [
    ["a", "s8"],
    ["b", "s16"],
    ["c", "s32"],
    ["d", "s64"],
    ["e", "u64"],
    ["f", "u64"],
    ["g", "u32"],
  ] as const);
  const b = s.encode({ a: -2, b: -300, c: -70000, d: -5n, e: 2n ** 53n + 1n, f: 2n ** 53n - 1n, g: 2 ** 32 + 5 });
  assert.deepEqual([...b.subarray(s.offsetOf("e"), s.offsetOf("e") + 8)], [1, 0, 0, 0, 0, 0, 0x20, 0]);
  assert.deepEqual([...b.subarray(s.offsetOf("d"), s.offsetOf("d") + 8)], [0xfb, 255, 255, 255, 255, 255, 255, 255]);
  const v = s.decode(b);
  assert.deepEqual(v, { a: -2, b: -300, c: -70000, d: -5n, e: 2n ** 53n + 1n, f: 2n ** 53n - 1n, g: 5 });
  const at = new Uint8Array(s.size + 8);
  s.encodeInto(at, { e: U64_MAX }, 8);
  assert.equal(s.decode(at, 8).e, U64_MAX);
  assert.equal(s.decode(at.subarray(8)).e, U64_MAX, "a subarray view decodes at its own offset 0");
});

// A reference codec written independently with DataView, for the generated flat codecs.
const SIZES = { u8: 1, s8: 1, u16: 2, s16: 2, u32: 4, s32: 4, u64: 8, s64: 8 } as const;
type Sc = keyof typeof SIZES;
function refRead(dv: DataView, o: number, s: Sc): number | bigint {
  if (o + SIZES[s] > dv.byteLength) return s === "u64" || s === "s64" ? 0n : 0;
  const m = { u8: "getUint8", s8: "getInt8", u16: "getUint16", s16: "getInt16", u32: "getUint32", s32: "getInt32" };
  if (s === "u64") return dv.getBigUint64(o, true);
  if (s === "s64") return dv.getBigInt64(o, true);
  return (dv as any)[m[s]](o, true);
}

test("generated flat codecs agree with a DataView reference on random layouts, values and short buffers", () => {
  const scalar = fc.constantFrom<Sc>("u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64");
  const value = (s: Sc): fc.Arbitrary<number | bigint> =>
    s === "u64" || s === "s64"
      ? fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n })
      : fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 });
  const layout = fc.record({ scalars: fc.array(scalar, { minLength: 1, maxLength: 8 }), packed: fc.boolean() });
  fc.assert(
    fc.property(
      layout.chain(({ scalars, packed }) =>
        fc.record({
          scalars: fc.constant(scalars),
          packed: fc.constant(packed),
          values: fc.tuple(...scalars.map((s) => fc.option(value(s), { nil: undefined }))),
          base: fc.nat(9),
          cut: fc.nat(80),
        }),
      ),
      ({ scalars, packed, values, base, cut }) => {
        const desc = defineStruct(
          "rand",
          scalars.map((s, i) => [`f${i}`, s] as const),
          { packed },
        );
        const obj: Record<string, number | bigint> = {};
        values.forEach((v, i) => v !== undefined && (obj[`f${i}`] = v));
        const buf = new Uint8Array(Math.min(base + desc.size, cut)).fill(0xa5);
        const want = new Uint8Array(buf);
        const dv = new DataView(want.buffer);
        desc.fields.forEach((f, i) => {
          const v = obj[`f${i}`];
          const o = base + f.offset;
          if (v === undefined || o + f.elemSize > want.length) return;
          const s = f.scalar as Sc;
          if (s === "u64" || s === "s64") dv.setBigUint64(o, BigInt.asUintN(64, BigInt(v)), true);
          else
            for (let k = 0; k < f.elemSize; k++)
              want[o + k] = Number(BigInt.asUintN(32, BigInt(v)) >> BigInt(8 * k)) & 0xff;
        });
        desc.encodeInto(buf, obj as never, base);
        assert.deepEqual(buf, want, "encode");
        const got = desc.decode(buf, base) as Record<string, unknown>;
        desc.fields.forEach((f) => assert.equal(got[f.name], refRead(dv, base + f.offset, f.scalar as Sc), f.name));
      },
    ),
    { numRuns: 300 },
  );
});
