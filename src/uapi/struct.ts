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

/**
 * A struct value with its u64/s64 fields as a number where the value is a safe integer (below
 * 2^53: exact) and a bigint otherwise: what decodeViewNum() returns and what every encoder
 * takes (an encoder takes a number or a bigint for a u64 field either way).
 */
export type NumU64<V> = { [K in keyof V]: V[K] extends bigint ? bigint | number : V[K] };

/** What an encoder takes: fields may be absent, u64 fields bigints or safe-integer numbers. */
export type EncodeValue<V> = Partial<V> | Partial<NumU64<V>>;

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
  /** only scalar fields, no arrays: decode/encode run code generated for this layout */
  private readonly flat: boolean;
  private flatDecode: FlatDecode | undefined;
  private flatEncode: FlatEncode | undefined;
  private viewDecode: ViewDecode | undefined;
  private viewEncode: ViewEncode | undefined;
  private viewDecodeNum: ViewDecode | undefined;

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
    this.flat = fields.every((f) => f.scalar !== undefined && f.count === 1);
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
    if (this.flat) return (this.flatDecode ??= compileDecode(this.fields))(bytes, base) as V;
    const out: Record<string, unknown> = {};
    for (const f of this.fields) {
      const o = base + f.offset;
      if (f.bytes) {
        const n = f.count;
        const b = new Uint8Array(n);
        const avail = Math.max(0, Math.min(n, bytes.length - o));
        if (avail > 0) b.set(bytes.subarray(o, o + avail));
        out[f.name] = b;
      } else if (f.struct) {
        if (f.count === 1) out[f.name] = f.struct.decode(bytes, o);
        else out[f.name] = repeat(f.count, (i) => f.struct!.decode(bytes, o + i * f.elemSize));
      } else if (f.count === 1) {
        out[f.name] = readScalar(bytes, o, f.scalar!);
      } else {
        out[f.name] = repeat(f.count, (i) => readScalar(bytes, o + i * f.elemSize, f.scalar!));
      }
    }
    return out as V;
  }

  /**
   * Decode in place from `dv` at `base`, as decode() would from the bytes [base, end): fields
   * that lie (partly) at or past `end` (default: the view's end) read as zero. Flat structs
   * run a reader compiled once for this layout on the DataView itself (one getter per field,
   * no copy); others decode from a byte view of the same memory.
   */
  decodeView(dv: DataView, base: number, end = dv.byteLength): V {
    if (this.flat) return (this.viewDecode ??= compileViewDecode(this.fields))(dv, base, end) as V;
    const whole = new Uint8Array(dv.buffer, dv.byteOffset, Math.min(end, dv.byteLength));
    return this.decode(whole, base);
  }

  /**
   * decodeView() with u64 fields as numbers below 2^53 and bigints from 2^53 up (NumU64): a
   * hot path that runs its arithmetic in numbers gets them without a BigInt() per field and
   * keeps the exact value for the rest. Flat structs only (see `compiled`).
   */
  decodeViewNum(dv: DataView, base: number, end = dv.byteLength): NumU64<V> {
    if (!this.flat) return this.numU64(this.decodeView(dv, base, end));
    return (this.viewDecodeNum ??= compileViewDecodeNum(this.fields))(dv, base, end) as NumU64<V>;
  }

  /** A decoded value's u64 fields below 2^53 as numbers (NumU64), in place. */
  numU64(value: V): NumU64<V> {
    const rec = value as Record<string, unknown>;
    for (const f of this.fields) {
      if (f.scalar !== "u64" || f.count !== 1) continue;
      const x = rec[f.name];
      if (typeof x === "bigint" && x <= 9007199254740991n) rec[f.name] = Number(x);
    }
    return value as NumU64<V>;
  }

  /** Whether decodeView()/encodeWhole() run compiled code (a flat struct: scalars only). */
  get compiled(): boolean {
    return this.flat;
  }

  /**
   * Encode the whole struct (all `size` bytes) into `dv` at `base`, as encode() lays it out:
   * missing fields and padding are written as zero. Flat structs only (see `compiled`); the
   * caller checks that [base, base + size) lies within the view.
   */
  encodeWhole(dv: DataView, value: EncodeValue<V>, base: number): void {
    (this.viewEncode ??= compileViewEncode(this.fields, this.size))(dv, value as Record<string, unknown>, base);
  }

  /** Encode into a fresh buffer of `size` bytes (default sizeof); missing fields are zero. */
  encode(value: EncodeValue<V>, size = this.size): Uint8Array {
    const b = new Uint8Array(size);
    this.encodeInto(b, value, 0);
    return b;
  }

  /** Encode into `bytes` at `base`; bytes past its end are not written. */
  encodeInto(bytes: Uint8Array, value: EncodeValue<V>, base = 0): void {
    const rec = value as Record<string, unknown>;
    if (this.flat) return (this.flatEncode ??= compileEncode(this.fields))(bytes, rec, base);
    for (const f of this.fields) {
      const v = rec[f.name];
      if (v === undefined) continue;
      const o = base + f.offset;
      if (f.bytes) {
        const src = v as Uint8Array;
        const n = Math.min(f.count === 0 ? src.length : Math.min(f.count, src.length), bytes.length - o);
        if (n > 0) bytes.set(src.subarray(0, n), o);
      } else if (f.struct) {
        if (f.count === 1) f.struct.encodeInto(bytes, v as Record<string, unknown>, o);
        else (v as Record<string, unknown>[]).forEach((e, i) => f.struct!.encodeInto(bytes, e, o + i * f.elemSize));
      } else if (f.count === 1) {
        writeScalar(bytes, o, f.scalar!, v as number | bigint);
      } else {
        (v as (number | bigint)[]).forEach((e, i) => writeScalar(bytes, o + i * f.elemSize, f.scalar!, e));
      }
    }
  }

  encodeView(dv: DataView, value: Record<string, unknown>, base: number): void {
    this.encodeInto(new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength), value as Partial<V>, base);
  }
}

// Flat structs (most ioctl arguments) get a decoder and an encoder generated from their layout
// on first use: an object literal of fixed shape and one specialised reader or writer per
// field at a constant offset, instead of the generic loop's keyed loads and stores (2-3x
// faster; bench/u64.ts). Same semantics: fields past the end read as zero and are not written.

type FlatDecode = (b: Uint8Array, base: number) => Record<string, unknown>;
type FlatEncode = (b: Uint8Array, v: Record<string, unknown>, base: number) => void;

function compileDecode(fields: readonly FieldLayout[]): FlatDecode {
  const props = fields.map((f) => `${JSON.stringify(f.name)}: ${f.scalar}(b, base + ${f.offset})`);
  const names = Object.keys(READERS);
  return new Function(...names, `return function decode(b, base) { return { ${props.join(", ")} }; };`)(
    ...names.map((n) => READERS[n as Scalar]),
  );
}

function compileEncode(fields: readonly FieldLayout[]): FlatEncode {
  const stmts = fields.map(
    (f) => `x = v[${JSON.stringify(f.name)}]; if (x !== undefined) ${f.scalar}(b, base + ${f.offset}, x);`,
  );
  const names = Object.keys(WRITERS);
  return new Function(...names, `return function encodeInto(b, v, base) { let x; ${stmts.join(" ")} };`)(
    ...names.map((n) => WRITERS[n as Scalar]),
  );
}

// The same, on a DataView (a user page's view made once, src/kernel/mm.ts): the fields are
// read and written with the DataView's own getters, little-endian. A u64 whose high word is
// zero costs one BigInt() of a u32 (none when it repeats the field's last value); other u64s one
// getBigUint64. Encoding writes every byte of
// the struct (absent fields and padding as zero), so a struct encoded in place equals encode().

type ViewDecode = (dv: DataView, base: number, end: number) => Record<string, unknown>;
type ViewEncode = (dv: DataView, v: Record<string, unknown>, base: number) => void;

const VIEW_GET: Record<Scalar, string> = {
  u8: "dv.getUint8(o)",
  s8: "dv.getInt8(o)",
  u16: "dv.getUint16(o, true)",
  s16: "dv.getInt16(o, true)",
  u32: "dv.getUint32(o, true)",
  s32: "dv.getInt32(o, true)",
  u64: "u64(dv, o)", // compileViewDecode's per-field reader
  s64: "dv.getBigInt64(o, true)",
};

/** u64/s64 from a bigint or a number (a negative number wraps modulo 2^64, as BigInt would). */
/** Store a u64 field given as a number (a safe integer: two u32 words, no bigint) or a
 * bigint: what the generated encoders call, and what in-place answers use. */
export function viewSet64(dv: DataView, o: number, x: unknown): void {
  if (typeof x === "number" && x >= 0 && x <= Number.MAX_SAFE_INTEGER) {
    // ToUint32 of a safe integer is its low 32 bits (4x faster than `% 2^32` on a double)
    const lo = x >>> 0;
    dv.setUint32(o, lo, true);
    dv.setUint32(o + 4, (x - lo) / 4294967296, true);
  } else dv.setBigUint64(o, typeof x === "bigint" ? x : BigInt(x as number), true);
}

function compileViewDecode(fields: readonly FieldLayout[]): ViewDecode {
  // each u64 field keeps the last bigint it made below 2^32 and hands it out again while the
  // value repeats (a bigint is an immutable value: sharing one is invisible): the length and
  // user address a VMM passes call after call cost no allocation
  const cached: string[] = [];
  const props = fields.map((f, i) => {
    const size = SCALAR_SIZE[f.scalar!];
    const zero = f.scalar === "u64" || f.scalar === "s64" ? "0n" : "0";
    let get = VIEW_GET[f.scalar!].replace("(o", `(base + ${f.offset}`).replace("(dv, o)", `(dv, base + ${f.offset})`);
    if (f.scalar === "u64") {
      cached.push(
        `let l${i} = 0, b${i} = 0n; function u${i}(dv, o) { if (dv.getUint32(o + 4, true) !== 0) return dv.getBigUint64(o, true); ` +
          `const lo = dv.getUint32(o, true); if (lo !== l${i}) { l${i} = lo; b${i} = BigInt(lo); } return b${i}; }`,
      );
      get = `u${i}(dv, base + ${f.offset})`;
    }
    return `${JSON.stringify(f.name)}: base + ${f.offset + size} <= end ? ${get} : ${zero}`;
  });
  return new Function(
    `${cached.join(" ")} return function decodeView(dv, base, end) { return { ${props.join(", ")} }; };`,
  )();
}

function compileViewDecodeNum(fields: readonly FieldLayout[]): ViewDecode {
  // each u64 a number below 2^53 (hi < 2^21), else a bigint, written out per field: a helper
  // reached through the closure is a call per field that TurboFan does not inline
  const props = fields.map((f) => {
    const size = SCALAR_SIZE[f.scalar!];
    const o = `base + ${f.offset}`;
    const get =
      f.scalar === "u64"
        ? `((h = dv.getUint32(${o} + 4, true)) === 0 ? dv.getUint32(${o}, true) : ` +
          `h < 0x200000 ? h * 4294967296 + dv.getUint32(${o}, true) : dv.getBigUint64(${o}, true))`
        : VIEW_GET[f.scalar!].replace("(o", `(${o}`);
    const zero = f.scalar === "s64" ? "0n" : "0";
    return `${JSON.stringify(f.name)}: base + ${f.offset + size} <= end ? ${get} : ${zero}`;
  });
  return new Function(`return function decodeViewNum(dv, base, end) { let h; return { ${props.join(", ")} }; };`)();
}

function compileViewEncode(fields: readonly FieldLayout[], size: number): ViewEncode {
  const stmts: string[] = [];
  let at = 0;
  const zeroes = (from: number, to: number) => {
    for (let o = from; o < to; o++) stmts.push(`dv.setUint8(base + ${o}, 0);`);
  };
  // Each value is computed before its dv.setX() call and has no conditional: a `?:` among the
  // call's arguments merges control between the method's load (its map check) and the call,
  // and TurboFan then calls the DataView builtin instead of inlining the store (about 8x per
  // store in isolation). Number(undefined) is NaN, which `>>> 0` and `& mask` make 0.
  for (const f of fields) {
    zeroes(at, f.offset);
    const o = `base + ${f.offset}`;
    const x = `v[${JSON.stringify(f.name)}]`;
    switch (f.scalar!) {
      case "u8":
      case "s8":
        stmts.push(`x = Number(${x}) & 0xff; dv.setUint8(${o}, x);`);
        break;
      case "u16":
      case "s16":
        stmts.push(`x = Number(${x}) & 0xffff; dv.setUint16(${o}, x, true);`);
        break;
      case "u32":
      case "s32":
        stmts.push(`x = Number(${x}) >>> 0; dv.setUint32(${o}, x, true);`);
        break;
      default:
        stmts.push(
          // viewSet64's number case written out (a call through the closure is not inlined)
          `x = ${x}; if (typeof x === "number" && x >= 0 && x <= 9007199254740991) { lo = x >>> 0; ` +
            `dv.setUint32(${o}, lo, true); dv.setUint32(${o} + 4, (x - lo) / 4294967296, true); } ` +
            `else if (x === undefined) { dv.setUint32(${o}, 0, true); dv.setUint32(${o} + 4, 0, true); } else set64(dv, ${o}, x);`,
        );
    }
    at = f.offset + SCALAR_SIZE[f.scalar!];
  }
  zeroes(at, size);
  return new Function("set64", `return function encodeWhole(dv, v, base) { let x, lo; ${stmts.join(" ")} };`)(
    viewSet64,
  );
}

/** One reader per scalar type for generated decoders (readScalar's cases, specialised). */
const READERS: Record<Scalar, (b: Uint8Array, o: number) => number | bigint> = {
  u8: (b, o) => (o >= 0 && o < b.length ? b[o]! : 0),
  s8: (b, o) => (o >= 0 && o < b.length ? (b[o]! << 24) >> 24 : 0),
  u16: (b, o) => (o >= 0 && o + 2 <= b.length ? b[o]! | (b[o + 1]! << 8) : 0),
  s16: (b, o) => (o >= 0 && o + 2 <= b.length ? ((b[o]! | (b[o + 1]! << 8)) << 16) >> 16 : 0),
  u32: (b, o) => (o >= 0 && o + 4 <= b.length ? u32At(b, o) : 0),
  s32: (b, o) => (o >= 0 && o + 4 <= b.length ? u32At(b, o) | 0 : 0),
  u64: (b, o) => (o >= 0 && o + 8 <= b.length ? readU64Bytes(b, o) : 0n),
  s64: (b, o) => (o >= 0 && o + 8 <= b.length ? BigInt.asIntN(64, readU64Bytes(b, o)) : 0n),
};

/** One writer per scalar type for generated encoders (writeScalar's cases, specialised). */
const WRITERS: Record<Scalar, (b: Uint8Array, o: number, v: number | bigint) => void> = {
  u8: (b, o, v) => {
    if (o >= 0 && o < b.length) b[o] = Number(v);
  },
  s8: (b, o, v) => {
    if (o >= 0 && o < b.length) b[o] = Number(v);
  },
  u16: (b, o, v) => writeScalar(b, o, "u16", v),
  s16: (b, o, v) => writeScalar(b, o, "u16", v),
  u32: (b, o, v) => {
    if (o >= 0 && o + 4 <= b.length) setU32(b, o, Number(v));
  },
  s32: (b, o, v) => {
    if (o >= 0 && o + 4 <= b.length) setU32(b, o, Number(v));
  },
  u64: (b, o, v) => {
    if (o >= 0 && o + 8 <= b.length) writeU64Bytes(b, o, typeof v === "bigint" ? v : BigInt(v));
  },
  s64: (b, o, v) => {
    if (o >= 0 && o + 8 <= b.length) writeU64Bytes(b, o, typeof v === "bigint" ? v : BigInt(v));
  },
};

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

// Scalars are read and written with byte arithmetic on the Uint8Array itself, little-endian
// as on x86-64: a DataView would need the array's ArrayBuffer, and asking a small, freshly
// allocated Uint8Array for .buffer makes V8 move it off the heap (several hundred ns, more
// than the rest of a struct's decode; measured in bench/u64.ts).

function u32At(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function readScalar(b: Uint8Array, o: number, s: Scalar): number | bigint {
  if (o < 0 || o + SCALAR_SIZE[s] > b.length) return s === "u64" || s === "s64" ? 0n : 0;
  switch (s) {
    case "u8":
      return b[o]!;
    case "s8":
      return (b[o]! << 24) >> 24;
    case "u16":
      return b[o]! | (b[o + 1]! << 8);
    case "s16":
      return ((b[o]! | (b[o + 1]! << 8)) << 16) >> 16;
    case "u32":
      return u32At(b, o);
    case "s32":
      return u32At(b, o) | 0;
    case "u64":
      return readU64Bytes(b, o);
    case "s64":
      return BigInt.asIntN(64, readU64Bytes(b, o));
  }
}

function writeScalar(b: Uint8Array, o: number, s: Scalar, v: number | bigint): void {
  if (o < 0 || o + SCALAR_SIZE[s] > b.length) return;
  switch (s) {
    case "u8":
    case "s8":
      b[o] = Number(v);
      return;
    case "u16":
    case "s16": {
      const n = Number(v);
      b[o] = n;
      b[o + 1] = n >>> 8;
      return;
    }
    case "u32":
    case "s32":
      setU32(b, o, Number(v));
      return;
    case "u64":
    case "s64":
      writeU64Bytes(b, o, typeof v === "bigint" ? v : BigInt(v));
  }
}

function setU32(b: Uint8Array, o: number, n: number): void {
  b[o] = n;
  b[o + 1] = n >>> 8;
  b[o + 2] = n >>> 16;
  b[o + 3] = n >>> 24;
}

/** u64 as two u32 words combined into a bigint (one BigInt() when the high word is zero). */
export function readU64Bytes(b: Uint8Array, o: number): bigint {
  const lo = u32At(b, o);
  const hi = u32At(b, o + 4);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

const scratch = new ArrayBuffer(8);
const scratchView = new DataView(scratch);
const scratchBytes = new Uint8Array(scratch);

/** u64 (or s64: setBigUint64 wraps modulo 2^64) through an 8-byte scratch DataView, copied
 * byte by byte: about 4x cheaper than splitting the bigint with shifts and masks. */
export function writeU64Bytes(b: Uint8Array, o: number, v: bigint): void {
  scratchView.setBigUint64(0, v, true);
  for (let i = 0; i < 8; i++) b[o + i] = scratchBytes[i]!;
}

/** u64 through two u32 reads of a DataView: bench/u64.ts measures this against getBigUint64. */
export function readU64(dv: DataView, o: number): bigint {
  const lo = dv.getUint32(o, true);
  const hi = dv.getUint32(o + 4, true);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

/** setBigUint64 wraps modulo 2^64 itself (s64 negatives included). */
export function writeU64(dv: DataView, o: number, v: bigint): void {
  dv.setBigUint64(o, v, true);
}

export const U64_MAX = 0xffffffffffffffffn;
