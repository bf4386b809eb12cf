// strace's quoting of a buffer (util.c string_quote(), default style): printable ASCII as is,
// \" and \\ escaped, \t \n \v \f \r by name, every other byte in octal with as few digits as
// possible unless an octal digit follows; cut at `max` bytes with "..." after the quote.

const NAMED: Record<number, string> = { 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 34: '\\"', 92: "\\\\" };

export function straceQuote(b: Uint8Array, max: number): string {
  const n = Math.min(b.length, max);
  let s = '"';
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    const named = NAMED[c];
    if (named !== undefined) s += named;
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else {
      const next = i + 1 < n ? b[i + 1]! : -1;
      if (next >= 0x30 && next <= 0x37) s += `\\${c.toString(8).padStart(3, "0")}`;
      else s += `\\${c.toString(8)}`;
    }
  }
  return b.length > max ? `${s}"...` : `${s}"`;
}
