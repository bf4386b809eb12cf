// Struct layouts as data: one descriptor per uAPI struct gives every field's offset, size and
// type, laid out by the C rules of x86-64 (natural alignment, struct aligned to its widest
// member, tail padding). The kernel side decodes ioctl arguments with it and the typed client
// encodes them with it: one table, no offsets written twice.
//
// u64/s64 fields are bigint (exact up to 2^64-1); narrower integers are number. bench/ measures
// the cost of that choice against a split-u32 representation (see bench/u64.ts).

export type Scalar = "u8" | "u16" | "u32" | "u64" | "s8" | "s16" | "s32" | "s64";

const SCALAR_SIZE: Record<Scalar, number> = { u8: 1, s8: 1, u16: 2, s16: 2, u32: 4, s32: 4, u64: 8, s64: 8 };

/** One field: [name, scalar], [name, scalar, count], [name, "bytes", n], [name, struct] or
 * [name, struct, count]. count 0 is a C flexible array member (no size, only an offset). */
export type FieldSpec =
  | readonly [string, Scalar]
  | readonly [string, Scalar, number]
  | readonly [string, "bytes", number]
  | readonly [string, StructDesc<any>]
  | readonly [string, StructDesc<any>, number];

type ScalarValue<S> = S extends "u64" | "s64" ? bigint : number;
type FieldValue<F> = F extends readonly [string, "bytes", number]
  ? Uint8Array
  : F extends readonly [string, infer S extends Scalar]
    ? ScalarValue<S>
    : F extends readonly [string, infer S extends Scalar, number]
      ? ScalarValue<S>[]
      : F extends readonly [string, StructDesc<infer V>]
        ? V
        : F extends readonly [string, StructDesc<infer V>, number]
          ? V[]
          : never;

export type StructValue<F extends readonly FieldSpec[]> = { -readonly [E in F[number] as E[0]]: FieldValue<E> };

export interface FieldLayout {
  readonly name: string;
  readonly offset: number;
  /** bytes of one element */
  readonly elemSize: number;
  /** 1 for a plain field; n for an array; 0 for a flexible array member */
  readonly count: number;
  readonly scalar?: Scalar;
  readonly bytes?: boolean;
  readonly struct?: StructDesc<any>;
}

export class StructDesc<V = Record<string, unknown>> {
  readonly fields: readonly FieldLayout[];
  readonly size: number;
  readonly align: number;
  private readonly byName = new Map<string, FieldLayout>();

  constructor(
    readonly name: string,
    specs: readonly FieldSpec[],
    opts: { packed?: boolean } = {},
  ) {
    let off = 0;
    let align = 1;
    const fields: FieldLayout[] = [];
    for (const spec of specs) {
      const [fname, kind, count] = spec as readonly [string, unknown, number?];
      let elemSize: number;
      let elemAlign: number;
      let layout: Omit<FieldLayout, "offset">;
      if (kind === "bytes") {
        elemSize = 1;
        elemAlign = 1;
        layout = { name: fname, elemSize: 1, count: count ?? 0, bytes: true };
      } else if (kind instanceof StructDesc) {
        elemSize = kind.size;
        elemAlign = kind.align;
        layout = { name: fname, elemSize, count: count ?? 1, struct: kind };
      } else {
        const s = kind as Scalar;
        elemSize = SCALAR_SIZE[s];
        elemAlign = elemSize;
        layout = { name: fname, elemSize, count: count ?? 1, scalar: s };
      }
      if (opts.packed) elemAlign = 1;
      off = alignUp(off, elemAlign);
      align = Math.max(align, elemAlign);
      const f = { ...layout, offset: off };
      fields.push(f);
      this.byName.set(fname, f);
      off += elemSize * f.count;
    }
    this.fields = fields;
    this.align = align;
    this.size = alignUp(off, align);
  }

  field(name: string): FieldLayout {
    const f = this.byName.get(name);
    if (!f) throw new Error(`${this.name} has no field ${name}`);
    return f;
  }

  offsetOf(name: string): number {
    return this.field(name).offset;
  }

  /** offsetofend(): the first byte after the named field (the kernel's minsz rule). */
  offsetOfEnd(name: string): number {
    const f = this.field(name);
    return f.offset + f.elemSize * f.count;
  }

  /** Decode from bytes; fields that lie (partly) past `bytes.length` read as zero. */
  decode(bytes: Uint8Array, base = 0): V {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return this.decodeView(dv, base);
  }

  decodeView(dv: DataView, base: number): V {
    const out: Record<string, unknown> = {};
    for (const f of this.fields) {
      const o = base + f.offset;
      if (f.bytes) {
        const n = f.count;
        const b = new Uint8Array(n);
        const avail = Math.max(0, Math.min(n, dv.byteLength - o));
        for (let i = 0; i < avail; i++) b[i] = dv.getUint8(o + i);
        out[f.name] = b;
      } else if (f.struct) {
        if (f.count === 1) out[f.name] = f.struct.decodeView(dv, o);
        else out[f.name] = repeat(f.count, (i) => f.struct!.decodeView(dv, o + i * f.elemSize));
      } else if (f.count === 1) {
        out[f.name] = readScalar(dv, o, f.scalar!);
      } else {
        out[f.name] = repeat(f.count, (i) => readScalar(dv, o + i * f.elemSize, f.scalar!));
      }
    }
    return out as V;
  }

  /** Encode into a fresh buffer of `size` bytes (default sizeof); missing fields are zero. */
  encode(value: Partial<V>, size = this.size): Uint8Array {
    const b = new Uint8Array(size);
    this.encodeInto(b, value, 0);
    return b;
  }

  encodeInto(bytes: Uint8Array, value: Partial<V>, base = 0): void {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.encodeView(dv, value as Record<string, unknown>, base);
  }

  encodeView(dv: DataView, value: Record<string, unknown>, base: number): void {
    for (const f of this.fields) {
      const v = value[f.name];
      if (v === undefined) continue;
      const o = base + f.offset;
      if (f.bytes) {
        const src = v as Uint8Array;
        const n = f.count === 0 ? src.length : Math.min(f.count, src.length);
        for (let i = 0; i < n && o + i < dv.byteLength; i++) dv.setUint8(o + i, src[i]!);
      } else if (f.struct) {
        if (f.count === 1) f.struct.encodeView(dv, v as Record<string, unknown>, o);
        else (v as Record<string, unknown>[]).forEach((e, i) => f.struct!.encodeView(dv, e, o + i * f.elemSize));
      } else if (f.count === 1) {
        writeScalar(dv, o, f.scalar!, v as number | bigint);
      } else {
        (v as (number | bigint)[]).forEach((e, i) => writeScalar(dv, o + i * f.elemSize, f.scalar!, e));
      }
    }
  }
}

export function defineStruct<const F extends readonly FieldSpec[]>(
  name: string,
  fields: F,
  opts?: { packed?: boolean },
): StructDesc<StructValue<F>> {
  return new StructDesc<StructValue<F>>(name, fields, opts);
}

function alignUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

function repeat<T>(n: number, f: (i: number) => T): T[] {
  const out: T[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

function readScalar(dv: DataView, o: number, s: Scalar): number | bigint {
  if (o + SCALAR_SIZE[s] > dv.byteLength) return s === "u64" || s === "s64" ? 0n : 0;
  switch (s) {
    case "u8":
      return dv.getUint8(o);
    case "s8":
      return dv.getInt8(o);
    case "u16":
      return dv.getUint16(o, true);
    case "s16":
      return dv.getInt16(o, true);
    case "u32":
      return dv.getUint32(o, true);
    case "s32":
      return dv.getInt32(o, true);
    case "u64":
      return readU64(dv, o);
    case "s64":
      return BigInt.asIntN(64, readU64(dv, o));
  }
}

function writeScalar(dv: DataView, o: number, s: Scalar, v: number | bigint): void {
  if (o + SCALAR_SIZE[s] > dv.byteLength) return;
  switch (s) {
    case "u8":
    case "s8":
      dv.setUint8(o, Number(v) & 0xff);
      return;
    case "u16":
    case "s16":
      dv.setUint16(o, Number(v) & 0xffff, true);
      return;
    case "u32":
    case "s32":
      dv.setUint32(o, Number(v) >>> 0, true);
      return;
    case "u64":
    case "s64":
      writeU64(dv, o, typeof v === "bigint" ? v : BigInt(v));
  }
}

/** u64 through two u32 reads: bench/u64.ts measures this against getBigUint64. */
export function readU64(dv: DataView, o: number): bigint {
  const lo = dv.getUint32(o, true);
  const hi = dv.getUint32(o + 4, true);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

export function writeU64(dv: DataView, o: number, v: bigint): void {
  const u = BigInt.asUintN(64, v);
  dv.setUint32(o, Number(u & 0xffffffffn), true);
  dv.setUint32(o + 4, Number(u >> 32n), true);
}

export const U64_MAX = 0xffffffffffffffffn;
