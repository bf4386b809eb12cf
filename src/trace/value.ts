// A decoded syscall argument as strace prints it, kept as data: the trace stores these, the
// strace formatter renders them as text and the JSON form turns them into plain fields. One
// tree, two renderings, so the text and the JSON never disagree.

import { straceQuote } from "./strace_quote.js";

export type Int = number | bigint;

export type TVal =
  /** an integer in decimal: counts, sizes, fds */
  | { readonly k: "int"; readonly v: Int }
  /** an integer as %#x: 0 is "0", others "0x..." (addresses of the device side, offsets) */
  | { readonly k: "hex"; readonly v: Int }
  /** a user pointer left undecoded: NULL for 0 */
  | { readonly k: "ptr"; readonly v: Int }
  /** symbolic: a constant, an ioctl name, flags joined by | (v is the number it stands for) */
  | { readonly k: "sym"; readonly s: string; readonly v?: Int }
  /** bytes from user memory as a quoted C string, cut at `max` bytes with ... after; a C
   * string (a path, a name) keeps its text for the JSON form */
  | { readonly k: "str"; readonly b: Uint8Array; readonly max: number; readonly text?: string }
  | { readonly k: "struct"; readonly f: readonly (readonly [string, TVal])[] }
  | { readonly k: "arr"; readonly a: readonly TVal[] }
  /** an in/out argument the kernel changed: `in => out` */
  | { readonly k: "change"; readonly from: TVal; readonly to: TVal }
  /** text with no structure (a comment, a tracepoint's field) */
  | { readonly k: "raw"; readonly s: string };

export const int = (v: Int): TVal => ({ k: "int", v });
export const hex = (v: Int): TVal => ({ k: "hex", v });
export const ptr = (v: Int): TVal => ({ k: "ptr", v });
export const sym = (s: string, v?: Int): TVal => (v === undefined ? { k: "sym", s } : { k: "sym", s, v });
export const raw = (s: string): TVal => ({ k: "raw", s });
export const struct = (f: readonly (readonly [string, TVal])[]): TVal => ({ k: "struct", f });
export const arr = (a: readonly TVal[]): TVal => ({ k: "arr", a });
/** strace's default -s 32 */
export const STRSIZE = 32;
export const str = (b: Uint8Array, max = STRSIZE): TVal => ({ k: "str", b, max });
export const cstr = (s: string): TVal => ({ k: "str", b: new TextEncoder().encode(s), max: 4096, text: s });

function hexText(v: Int): string {
  if (typeof v === "bigint") v = BigInt.asUintN(64, v);
  else if (v < 0) return hexText(BigInt(v));
  return v === 0 || v === 0n ? "0" : `0x${v.toString(16)}`;
}

/** strace's text for one value. */
export function render(v: TVal): string {
  switch (v.k) {
    case "int":
      return String(v.v);
    case "hex":
      return hexText(v.v);
    case "ptr":
      return v.v === 0 || v.v === 0n ? "NULL" : hexText(v.v);
    case "sym":
      return v.s;
    case "str":
      return straceQuote(v.b, v.max);
    case "struct":
      return `{${v.f.map(([n, x]) => `${n}=${render(x)}`).join(", ")}}`;
    case "arr":
      return `[${v.a.map(render).join(", ")}]`;
    case "change":
      return `${render(v.from)} => ${render(v.to)}`;
    case "raw":
      return v.s;
  }
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function jsonInt(v: Int): number | string {
  if (typeof v === "number") return v;
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : String(v);
}

/** The same value as plain JSON: numbers stay numbers (u64 past 2^53 as decimal strings),
 * hex and pointers as "0x..." strings, symbols and flags as strace spells them, a path or name
 * as its text, a buffer as strace quotes it, structs as objects, an in/out change as {in, out}. */
export function toJson(v: TVal): Json {
  switch (v.k) {
    case "int":
      return jsonInt(v.v);
    case "hex":
      return hexText(v.v);
    case "ptr":
      return v.v === 0 || v.v === 0n ? null : hexText(v.v);
    case "sym":
      return v.s;
    case "str":
      return v.text ?? straceQuote(v.b, v.max);
    case "struct":
      return Object.fromEntries(v.f.map(([n, x]) => [n, toJson(x)]));
    case "arr":
      return v.a.map(toJson);
    case "change":
      return { in: toJson(v.from), out: toJson(v.to) };
    case "raw":
      return v.s;
  }
}
