// dma->bitmap of vfio_iommu_type1 (drivers/vfio/vfio_iommu_type1.c vfio_dma_bitmap_alloc()):
// one bit per page of a mapping, plus the extra u64 the kernel allocates for the shift that
// clubs mappings into one user bitmap. The kernel's array is up to 256 MiB (2^31 pages); the
// twin keeps the set bits as runs, so a bitmap costs what is set in it: every page of a
// mapping that is pinned and mapped, or nothing. The operations are the lib/bitmap.c ones
// update_user_bitmap() uses, with their edge behaviour.

/** DIRTY_BITMAP_PAGES_MAX: INT_MAX pages, the largest mapping dirty tracking accepts */
export const DIRTY_BITMAP_PAGES_MAX = 0x7fffffff;

export class DmaBitmap {
  /** sorted, disjoint, non-adjacent runs [start, end) of set bits */
  private runs: [number, number][] = [];

  /** bitmap_set() of bits [start, start + n) */
  set(start: number, n: number): void {
    if (n <= 0) return;
    this.runs.push([start, start + n]);
    this.normalize();
  }

  /** bitmap_clear() of bits [start, start + n) */
  clear(start: number, n: number): void {
    const end = start + n;
    const out: [number, number][] = [];
    for (const [s, e] of this.runs) {
      if (e <= start || s >= end) out.push([s, e]);
      else {
        if (s < start) out.push([s, start]);
        if (e > end) out.push([end, e]);
      }
    }
    this.runs = out;
  }

  /**
   * bitmap_shift_left(bitmap, bitmap, shift, nbits) for shift < 64 (lib/bitmap.c
   * __bitmap_shift_left()): the words below BITS_TO_LONGS(nbits) move up by `shift`, bits
   * pushed past the last of them are lost, the top word is not masked to nbits, and the
   * words above are untouched.
   */
  shiftLeft(shift: number, nbits: number): void {
    if (shift === 0) return;
    const w = Math.ceil(nbits / 64) * 64;
    const out: [number, number][] = [];
    for (const [s, e] of this.runs) {
      if (s >= w) {
        out.push([s, e]);
        continue;
      }
      const ns = s + shift;
      const ne = Math.min(Math.min(e, w) + shift, w);
      if (ns < ne) out.push([ns, ne]);
      if (e > w) out.push([w, e]);
    }
    this.runs = out;
    this.normalize();
  }

  /** OR `word` into bits [0, 64) */
  orWord0(word: bigint): void {
    for (let i = 0; i < 64; i++) if ((word >> BigInt(i)) & 1n) this.runs.push([i, i + 1]);
    this.normalize();
  }

  /** u64 word i */
  word(i: number): bigint {
    const lo = i * 64;
    const hi = lo + 64;
    let v = 0n;
    for (const [s, e] of this.runs) {
      if (e <= lo || s >= hi) continue;
      const a = Math.max(s, lo) - lo;
      const b = Math.min(e, hi) - lo;
      v |= ((1n << BigInt(b - a)) - 1n) << BigInt(a);
    }
    return v;
  }

  /** The spans [first, end) of words below `lim` that have a bit set, ascending. */
  wordSpans(lim: number): [number, number][] {
    const out: [number, number][] = [];
    for (const [s, e] of this.runs) {
      const a = Math.floor(s / 64);
      const b = Math.min(Math.ceil(e / 64), lim);
      if (a >= b) continue;
      const last = out[out.length - 1];
      if (last && a <= last[1]) last[1] = Math.max(last[1], b);
      else out.push([a, b]);
    }
    return out;
  }

  private normalize(): void {
    this.runs.sort((x, y) => x[0] - y[0]);
    const out: [number, number][] = [];
    for (const r of this.runs) {
      const last = out[out.length - 1];
      if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
      else out.push([r[0], r[1]]);
    }
    this.runs = out;
  }
}
