// The u64 representation behind src/uapi/struct.ts: u64 fields are bigint (exact to 2^64-1).
// What that costs against the alternatives, per value:
//   reads   DataView.getBigUint64 | two getUint32 + BigInt combine (struct.ts readU64) |
//           two getUint32 kept as a number pair | two getUint32 folded into one number
//           (exact only below 2^53)
//   writes  DataView.setBigUint64 | struct.ts writeU64 (two setUint32) | two setUint32 of numbers
//   math    an IOVA-range check (a + len <= end, a < b) in bigint vs number
//   codec   decode/encode of a whole kvm_userspace_memory_region (3 u64 + 2 u32)
// Values are a mix of small ones (hi word 0, the common case: sizes, flags) and full 64-bit
// ones (IOVAs near the top, ~0 sentinels).

import { defineStruct, readU64, readU64Bytes, writeU64, writeU64Bytes } from "../src/uapi/struct.js";
import { kvm_userspace_memory_region } from "../src/uapi/kvm.js";
import type { BenchContext, BenchRow, BenchSuite } from "./harness.js";

const N = 1024;

/** struct.ts's writeU64 as it was first written: asUintN, mask and shift, two u32 writes. */
function writeU64Split(dv: DataView, o: number, v: bigint): void {
  const u = BigInt.asUintN(64, v);
  dv.setUint32(o, Number(u & 0xffffffffn), true);
  dv.setUint32(o + 4, Number(u >> 32n), true);
}

/** The same shape as kvm_userspace_memory_region with u32 in place of each u64. */
const region32 = defineStruct("region32", [
  ["slot", "u32"],
  ["flags", "u32"],
  ["guest_phys_addr", "u32"],
  ["memory_size", "u32"],
  ["userspace_addr", "u32"],
] as const);

function run(ctx: BenchContext): BenchRow[] {
  const buf = new ArrayBuffer(N * 8);
  const dv = new DataView(buf);
  for (let i = 0; i < N; i++) {
    const v = i % 4 === 0 ? 0xffff_f000_0000_0000n + BigInt(i) * 4096n : BigInt(i) * 0x1000n;
    dv.setBigUint64(i * 8, v, true);
  }
  const bigs = Array.from({ length: N }, (_, i) => dv.getBigUint64(i * 8, true));
  // numbers for the arithmetic rows stay below 2^53, as user addresses and sizes do
  const nums = Array.from({ length: N }, (_, i) => i * 0x1000 + (i % 4 === 0 ? 2 ** 46 : 0));
  const bigsSmall = nums.map((n) => BigInt(n));
  const m = (fn: () => unknown) => ctx.measure(fn, { opsPerCall: N });
  const rows: BenchRow[] = [];
  const R = "u64/read getBigUint64";

  rows.push({
    name: R,
    ns: m(() => {
      let c = 0;
      for (let i = 0; i < N; i++) if (dv.getBigUint64(i * 8, true) === 0n) c++;
      return c;
    }),
    note: "bigint, exact",
  });
  rows.push({
    name: "u64/read 2x getUint32 + BigInt (readU64)",
    baseline: R,
    ns: m(() => {
      let c = 0;
      for (let i = 0; i < N; i++) if (readU64(dv, i * 8) === 0n) c++;
      return c;
    }),
    note: "bigint, exact",
  });
  const bytes = new Uint8Array(buf);
  rows.push({
    name: "u64/read bytes 2x u32 + BigInt (readU64Bytes)",
    baseline: R,
    ns: m(() => {
      let c = 0;
      for (let i = 0; i < N; i++) if (readU64Bytes(bytes, i * 8) === 0n) c++;
      return c;
    }),
    note: "bigint, exact, no DataView (struct.ts)",
  });
  rows.push({
    name: "u64/read 2x getUint32 as number pair",
    baseline: R,
    ns: m(() => {
      let c = 0;
      for (let i = 0; i < N; i++) {
        const lo = dv.getUint32(i * 8, true);
        const hi = dv.getUint32(i * 8 + 4, true);
        if ((lo | hi) === 0) c++;
      }
      return c;
    }),
    note: "exact, but every use handles two words",
  });
  rows.push({
    name: "u64/read 2x getUint32 folded to number",
    baseline: R,
    ns: m(() => {
      let c = 0;
      for (let i = 0; i < N; i++) if (dv.getUint32(i * 8, true) + dv.getUint32(i * 8 + 4, true) * 2 ** 32 === 0) c++;
      return c;
    }),
    note: "inexact above 2^53",
  });

  const W = "u64/write setBigUint64";
  rows.push({
    name: W,
    ns: m(() => {
      for (let i = 0; i < N; i++) dv.setBigUint64(i * 8, bigs[i]!, true);
      return dv;
    }),
  });
  rows.push({
    name: "u64/write bigint split into 2x setUint32",
    baseline: W,
    ns: m(() => {
      for (let i = 0; i < N; i++) writeU64Split(dv, i * 8, bigs[i]!);
      return dv;
    }),
    note: "struct.ts before this bench",
  });
  rows.push({
    name: "u64/write writeU64 (setBigUint64)",
    baseline: W,
    ns: m(() => {
      for (let i = 0; i < N; i++) writeU64(dv, i * 8, bigs[i]!);
      return dv;
    }),
  });
  rows.push({
    name: "u64/write bytes writeU64Bytes",
    baseline: W,
    ns: m(() => {
      for (let i = 0; i < N; i++) writeU64Bytes(bytes, i * 8, bigs[i]!);
      return bytes;
    }),
    note: "via an 8-byte scratch DataView (struct.ts)",
  });
  rows.push({
    name: "u64/write 2x setUint32 from numbers",
    baseline: W,
    ns: m(() => {
      for (let i = 0; i < N; i++) {
        const v = nums[i]!;
        dv.setUint32(i * 8, v >>> 0, true);
        dv.setUint32(i * 8 + 4, Math.floor(v / 2 ** 32), true);
      }
      return dv;
    }),
  });

  const A = "u64/math bigint range check";
  const endB = 2n ** 47n;
  rows.push({
    name: A,
    ns: m(() => {
      let c = 0;
      for (let i = 0; i < N - 1; i++) {
        const a = bigsSmall[i]!;
        const b = bigsSmall[i + 1]!;
        if (a + 0x1000n <= endB && a < b) c++;
      }
      return c;
    }),
    note: "a + len <= end && a < b",
  });
  rows.push({
    name: "u64/math number range check",
    baseline: A,
    ns: m(() => {
      let c = 0;
      for (let i = 0; i < N - 1; i++) {
        const a = nums[i]!;
        const b = nums[i + 1]!;
        if (a + 0x1000 <= 2 ** 47 && a < b) c++;
      }
      return c;
    }),
  });

  // the argument checks of KVM_SET_USER_MEMORY_REGION (src/kvm/kvm.ts) on realistic values
  const K = "u64/math memslot argument checks, bigint";
  const slotB = { gpa: 0x1_0000_0000n, size: 0x4000_0000n, uaddr: 0x7f00_0000_0000n };
  const slotN = { gpa: 0x1_0000_0000, size: 0x4000_0000, uaddr: 0x7f00_0000_0000 };
  const M64 = 2n ** 64n - 1n;
  rows.push({
    name: K,
    ns: ctx.measure(() => {
      const { gpa, size, uaddr } = slotB;
      if (size & 4095n || gpa & 4095n || uaddr & 4095n) return 1;
      const end = (uaddr + size) & M64;
      if (end > 2n ** 47n - 4096n || end < uaddr) return 2;
      if (((gpa + size) & M64) < gpa) return 3;
      return size >> 12n > (1n << 31n) - 1n ? 4 : 0;
    }),
    note: "13 bigint ops, each allocating",
  });
  rows.push({
    name: "u64/math memslot argument checks, number",
    baseline: K,
    ns: ctx.measure(() => {
      const { gpa, size, uaddr } = slotN;
      if (size % 4096 || gpa % 4096 || uaddr % 4096) return 1;
      const end = uaddr + size;
      if (end > 2 ** 47 - 4096) return 2;
      if (gpa + size > 2 ** 64) return 3;
      return size / 4096 > 2 ** 31 - 1 ? 4 : 0;
    }),
    note: "exact only below 2^53",
  });

  rows.push({
    name: "u64/alloc DataView over a fresh 32-byte Uint8Array",
    ns: ctx.measure(() => {
      const b = new Uint8Array(32);
      return new DataView(b.buffer, b.byteOffset, b.byteLength);
    }),
    note: ".buffer moves a small on-heap array off the heap",
  });
  rows.push({
    name: "u64/alloc fresh 32-byte Uint8Array",
    baseline: "u64/alloc DataView over a fresh 32-byte Uint8Array",
    ns: ctx.measure(() => new Uint8Array(32)),
  });

  const D = "u64/codec decode kvm_userspace_memory_region";
  const region = kvm_userspace_memory_region.encode({
    slot: 3,
    flags: 1,
    guest_phys_addr: 0x1_0000_0000n,
    memory_size: 0x4000_0000n,
    userspace_addr: 0x7f00_0000_0000n,
  });
  rows.push({
    name: D,
    ns: ctx.measure(() => kvm_userspace_memory_region.decode(region)),
    note: "per struct, 3 u64 + 2 u32",
  });
  const val = kvm_userspace_memory_region.decode(region);
  rows.push({
    name: "u64/codec encode kvm_userspace_memory_region",
    baseline: D,
    ns: ctx.measure(() => kvm_userspace_memory_region.encode(val)),
  });
  const r32 = region32.encode({ slot: 3, flags: 1, guest_phys_addr: 1, memory_size: 2, userspace_addr: 3 });
  rows.push({
    name: "u64/codec decode the same shape, all u32",
    baseline: D,
    ns: ctx.measure(() => region32.decode(r32)),
    note: "the same codec without bigint",
  });
  const v32 = region32.decode(r32);
  rows.push({
    name: "u64/codec encode the same shape, all u32",
    baseline: D,
    ns: ctx.measure(() => region32.encode(v32)),
  });
  return rows;
}

function summary(rows: BenchRow[]): string[] {
  const ns = (n: string) => rows.find((r) => r.name === n)?.ns ?? NaN;
  const big = ns("u64/read getBigUint64");
  const bytes = ns("u64/read bytes 2x u32 + BigInt (readU64Bytes)");
  const pair = ns("u64/read 2x getUint32 as number pair");
  const dec = ns("u64/codec decode kvm_userspace_memory_region");
  const dec32 = ns("u64/codec decode the same shape, all u32");
  if ([big, bytes, pair, dec, dec32].some(Number.isNaN)) return [];
  const bigintShare = (3 * (bytes - pair)) / dec;
  return [
    `per u64 read: bigint ${bytes.toFixed(1)} ns (struct.ts), number pair ${pair.toFixed(1)} ns. A whole ` +
      `kvm_userspace_memory_region decode costs ${dec.toFixed(0)} ns (${(dec / 5).toFixed(0)} ns a field; ` +
      `the all-u32 shape ${dec32.toFixed(0)} ns): bigint is at most ${(100 * bigintShare).toFixed(0)}% of it, ` +
      `the rest is the codec itself.`,
  ];
}

export const suite: BenchSuite = {
  name: "u64",
  title: "u64 representation: bigint vs split 32-bit words vs number",
  run,
  summary,
};
