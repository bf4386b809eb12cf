// Symbolic flags and enums as strace prints them: set bits by name joined with |, leftover
// bits as a hex number at the end, 0 as "0"; an enum value by name or as a number.

import { hex, int, type Int, sym, type TVal } from "./value.js";

export type FlagTable = readonly (readonly [string, number])[];

export function flagsText(table: FlagTable, v: number): string {
  const names: string[] = [];
  let rest = v >>> 0;
  for (const [name, bit] of table) {
    if (bit !== 0 && (rest & bit) === bit) {
      names.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0 || names.length === 0) names.push(rest === 0 ? "0" : `0x${rest.toString(16)}`);
  return names.join("|");
}

export function flags(table: FlagTable, v: Int): TVal {
  const n = Number(v);
  return v === 0 || v === 0n ? int(0) : sym(flagsText(table, n), v);
}

/** An enum: its name, or the number (decimal, or hex where strace prints it so). */
export function enumVal(table: FlagTable, v: Int, fallback: "int" | "hex" = "int"): TVal {
  const n = Number(v);
  for (const [name, x] of table) if (x === n) return sym(name, v);
  return fallback === "hex" ? hex(v) : int(v);
}
