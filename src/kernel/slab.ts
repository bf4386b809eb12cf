// Small zeroed byte buffers carved from shared slabs, as kzalloc() serves small objects from
// a slab cache (mm/slub.c). A `new Uint8Array(n)` above V8's on-heap limit (64 bytes) gets a
// backing store of its own, allocated and later freed outside the JS heap: ~0.3-0.5 us each.
// A view into a 64 KiB slab costs one small object. A slab is never reused: it is zero where
// nothing was carved yet, and stays alive while any buffer carved from it does (at most the
// slab's 64 KiB for a long-lived buffer). Only for buffers of at most SLAB_MAX bytes.

const SLAB_SIZE = 64 * 1024;
/** the largest buffer kzallocBytes() carves; larger ones are allocated alone */
export const SLAB_MAX = 1024;

let slab = new ArrayBuffer(SLAB_SIZE);
let used = 0;

/** kzalloc() of `n` bytes: a zeroed Uint8Array of its own (no other buffer overlaps it). */
export function kzallocBytes(n: number): Uint8Array {
  if (n > SLAB_MAX) return new Uint8Array(n);
  if (used + n > SLAB_SIZE) {
    slab = new ArrayBuffer(SLAB_SIZE);
    used = 0;
  }
  const b = new Uint8Array(slab, used, n);
  used += (n + 7) & ~7; // 8-byte aligned, as the slab's objects are
  return b;
}
