// The area tree of an io_pagetable (iopt->area_itree in drivers/iommu/iommufd/io_pagetable.c)
// as a B+tree: the kernel keeps areas in an interval tree, but areas never overlap, so
// ordering them by their last byte orders them by start too, and "the first area intersecting
// [s, l]" is the first area whose last >= s, if its start <= l. No augmentation.
//
// The nodes are pooled, not objects. An inner node is a fixed slice of one Int32Array, an
// entry per child: (largest last under it as biased int32 halves, child id). A leaf is a slice
// of another, an entry per area: (last, start, handle), the handle being the area's index in
// `byHandle`. At 1M live areas a lookup is cache and TLB misses, not arithmetic (~110-160 ns
// each on the bench machine), so the layout is about lines touched: the child id, the area's
// start and its handle sit next to the key the search stopped at; a lookup that finds a hole
// (every successful MAP) never reads an area object; leaves move int32 handles, never object
// references (no write barrier per moved slot). A removal moves the entries before its own,
// which the lookup just read, rather than those after it, which may not be in cache, and so
// leaves a gap at the leaf's front; an insert moves into that gap the same way when there is
// one. bench/iommufd.ts measures it.
//
// The areas themselves stay objects (access.ts and the invariants hold them); removal is by
// identity. An area's range must not change while it is in the tree (io_pagetable.ts removes
// an area before it splits or resizes it). firstH() remembers the path it took: unmap's
// find-then-remove and map's check-then-insert descend once. Nodes that fall under a quarter
// full merge with a neighbour, so the height stays logarithmic under any insert/remove order.

import { fromHalves, hiOf, loOf, type IovaRange } from "./interval_tree.js";

/** entries per inner node, per leaf (measured: wider leaves touch more lines per search) */
const KI = 32;
const KL = 16;
/** inner entry: last hi, last lo, child id */
const IE = 3;
/** leaf entry: last hi, last lo, start hi, start lo, handle */
const LE = 5;
const IS = IE * KI;
const LS = LE * KL;
/** deepest tree: 1 + log_{K/4}(2^52 areas) is far below this */
const MAX_DEPTH = 32;

/**
 * The first entry in [0, n) whose key (the first two words of each stride-e entry from base)
 * is >= (h, l), or n. A linear scan, not a binary search: its loads do not depend on each
 * other's results, so a node's lines arrive in parallel instead of one probe's miss after
 * another (at 1M live areas, ~25% less per lookup than binary search, bench/iommufd.ts).
 */
function lowerBound(k: Int32Array, base: number, n: number, e: number, h: number, l: number): number {
  let j = 0;
  for (let at = base; j < n; j++, at += e) {
    const kh = k[at]!;
    if (kh > h || (kh === h && k[at + 1]! >= l)) break;
  }
  return j;
}

/** a[to + i] = a[from + i] for i < len, overlapping either way (TypedArray.copyWithin is a
 * runtime call that costs more than these few words) */
function move(a: Int32Array, to: number, from: number, len: number): void {
  if (to < from) for (let i = 0; i < len; i++) a[to + i] = a[from + i]!;
  else for (let i = len - 1; i >= 0; i--) a[to + i] = a[from + i]!;
}

function grown(a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> {
  if (need <= a.length) return a;
  // 1.5x: the slack is heap bytes per area at 1M (bench/iommufd.ts)
  const b = new Int32Array(Math.max(need, Math.ceil(a.length * 1.5)));
  b.set(a);
  return b;
}

/** Disjoint closed intervals [start, last] over u64, in order. */
export class AreaTree<N extends IovaRange> {
  size = 0;
  /** levels; the root is a leaf when 1, none when 0 */
  private height = 0;
  private root = -1;
  /** inner node pool (IS words a node) and entry counts */
  private inner = new Int32Array(0);
  private innerN = new Int32Array(0);
  private innerCount = 0;
  private readonly innerFree: number[] = [];
  /** leaf pool (LS words a leaf) and entry counts */
  private leaf = new Int32Array(0);
  private leafN = new Int32Array(0);
  /** entries before a leaf's first (a gap at its front, left by removals) */
  private leafS = new Int32Array(0);
  private leafCount = 0;
  private readonly leafFree: number[] = [];
  /** the areas by handle: written once when an area enters, once when it leaves */
  private readonly byHandle: (N | null)[] = [];
  private readonly handleFree: number[] = [];
  /** the path (node, index per level, the leaf last) of the last firstH() that found an area;
   * 0 when stale */
  private pathLen = 0;
  /** the same for the last firstH() that found a hole, with its query: inserting exactly the
   * queried range next (a MAP) goes straight to that slot */
  private missLen = 0;
  private mqsh = 0;
  private mqsl = 0;
  private mqlh = 0;
  private mqll = 0;
  private readonly pathNode = new Int32Array(MAX_DEPTH);
  private readonly pathIdx = new Int32Array(MAX_DEPTH);

  isEmpty(): boolean {
    return this.size === 0;
  }

  /** Levels from the root to the leaves (0 when empty). */
  depth(): number {
    return this.height;
  }

  /** The first node that intersects [start, last], halves given (iopt_area_iter_first()). */
  firstH(qsh: number, qsl: number, qlh: number, qll: number): N | null {
    this.pathLen = 0;
    this.missLen = 0;
    if (this.root < 0 || this.pastEnd(qsh, qsl)) return null;
    this.descend(qsh, qsl);
    const top = this.height - 1;
    const x = this.pathNode[top]!;
    const i = this.pathIdx[top]!;
    const lf = this.leaf;
    const at = this.eb(x) + LE * i;
    // the area's start, from the leaf: a hole is told without reading the area
    if (i === this.leafN[x] || lf[at + 2]! > qlh || (lf[at + 2] === qlh && lf[at + 3]! > qll)) {
      this.missLen = top + 1;
      this.mqsh = qsh;
      this.mqsl = qsl;
      this.mqlh = qlh;
      this.mqll = qll;
      return null;
    }
    this.pathLen = top + 1;
    return this.byHandle[lf[at + 4]!]!;
  }

  first(start: bigint, last: bigint): N | null {
    return this.firstH(hiOf(start), loOf(start), hiOf(last), loOf(last));
  }

  /** Every node intersecting [start, last], in order. */
  all(start: bigint = 0n, last: bigint = 0xffffffffffffffffn): N[] {
    const out: N[] = [];
    const qsh = hiOf(start);
    const qsl = loOf(start);
    const qlh = hiOf(last);
    const qll = loOf(last);
    const walk = (x: number, d: number): boolean => {
      if (d < this.height - 1) {
        const n = this.innerN[x]!;
        for (let i = lowerBound(this.inner, x * IS, n, IE, qsh, qsl); i < n; i++)
          if (!walk(this.inner[x * IS + IE * i + 2]!, d + 1)) return false;
        return true;
      }
      const n = this.leafN[x]!;
      const eb = this.eb(x);
      for (let i = lowerBound(this.leaf, eb, n, LE, qsh, qsl); i < n; i++) {
        const at = eb + LE * i;
        const sh = this.leaf[at + 2]!;
        if (sh > qlh || (sh === qlh && this.leaf[at + 3]! > qll)) return false;
        out.push(this.byHandle[this.leaf[at + 4]!]!);
      }
      return true;
    };
    if (this.root >= 0) walk(this.root, 0);
    return out;
  }

  /** Insert a node that overlaps none in the tree (the caller checked). */
  insert(a: N): void {
    const h = a.lh;
    const l = a.ll;
    const top = this.height - 1;
    const pn = this.pathNode;
    const pi = this.pathIdx;
    // firstH() just found exactly this range empty: every area before the leaf slot it stopped
    // at ends below a's start, the one at it starts past a's last, so a goes right there and
    // no key above changes
    const reuse =
      this.missLen === top + 1 && a.sh === this.mqsh && a.sl === this.mqsl && h === this.mqlh && l === this.mqll;
    this.pathLen = 0;
    this.missLen = 0;
    this.size++;
    if (this.root < 0) {
      this.root = this.newLeaf();
      this.height = 1;
      this.leafPut(this.root, 0, a);
      return;
    }
    let x: number;
    let i: number;
    if (reuse) {
      x = pn[top]!;
      i = pi[top]!;
    } else if (this.pastEnd(h, l)) {
      // an append (maps in ascending IOVA order): down the right edge, raising its keys, with
      // no scan of nodes whose every key is below a
      x = this.root;
      for (let d = 0; d < top; d++) {
        const j = this.innerN[x]! - 1;
        const at = x * IS + IE * j;
        this.inner[at] = h;
        this.inner[at + 1] = l;
        pn[d] = x;
        pi[d] = j;
        x = this.inner[at + 2]!;
      }
      i = this.leafN[x]!;
    } else {
      this.descend(h, l);
      x = pn[top]!;
      i = pi[top]!;
    }
    if (this.leafN[x]! < KL) {
      this.leafPut(x, i, a);
      return;
    }
    // a full leaf splits; each split hands its new right sibling to the parent
    let right = this.leafSplit(x, i, a);
    let child = x;
    for (let d = top - 1; d >= 0; d--) {
      const p = pn[d]!;
      const j = pi[d]!;
      this.setInnerKey(p, j, child, d + 1);
      if (this.innerN[p]! < KI) {
        this.innerPut(p, j + 1, right, d + 1);
        return;
      }
      right = this.innerSplit(p, j + 1, right, d + 1);
      child = p;
    }
    // the root split: a new root over the two halves (levels still counted from the old root)
    const r = this.newInner();
    this.innerPut(r, 0, child, 0);
    this.innerPut(r, 1, right, 0);
    this.root = r;
    this.height++;
  }

  /** Remove a (by identity); false if it is not in the tree. */
  remove(a: N): boolean {
    const pn = this.pathNode;
    const pi = this.pathIdx;
    let len = this.pathLen;
    this.pathLen = 0;
    this.missLen = 0;
    if (len === 0 || this.areaAt(pn[len - 1]!, pi[len - 1]!) !== a) {
      // not the area firstH() found last: walk down to it
      if (this.root < 0 || this.pastEnd(a.lh, a.ll)) return false;
      this.descend(a.lh, a.ll);
      len = this.height;
      const x = pn[len - 1]!;
      const i = pi[len - 1]!;
      if (i === this.leafN[x] || this.areaAt(x, i) !== a) return false;
    }
    this.leafCut(pn[len - 1]!, pi[len - 1]!);
    this.size--;
    // up the path: drop emptied children, refresh keys, merge what fell under a quarter
    for (let d = len - 2; d >= 0; d--) {
      const p = pn[d]!;
      const i = pi[d]!;
      const c = pn[d + 1]!;
      const cl = d + 1;
      const isLeaf = cl === this.height - 1;
      const cn = isLeaf ? this.leafN[c]! : this.innerN[c]!;
      if (cn === 0) {
        this.freeNode(c, cl);
        this.innerCut(p, i);
        continue;
      }
      this.setInnerKey(p, i, c, cl);
      if (cn < (isLeaf ? KL : KI) >>> 2) this.mergeAround(p, i, cl);
    }
    const r = this.root;
    const rn = this.height === 1 ? this.leafN[r]! : this.innerN[r]!;
    if (rn === 0) {
      // empty: give the pools back (an IOAS unmapped to nothing may live on a long time)
      this.root = -1;
      this.height = 0;
      this.inner = new Int32Array(0);
      this.innerN = new Int32Array(0);
      this.innerCount = 0;
      this.innerFree.length = 0;
      this.leaf = new Int32Array(0);
      this.leafN = new Int32Array(0);
      this.leafS = new Int32Array(0);
      this.leafCount = 0;
      this.leafFree.length = 0;
      this.byHandle.length = 0;
      this.handleFree.length = 0;
    } else if (this.height > 1 && rn === 1) {
      this.root = this.inner[r * IS + 2]!;
      this.freeNode(r, 0);
      this.height--;
    }
    return true;
  }

  /** The path (pathNode, pathIdx, every level) to the first entry whose key is >= (h, l); the
   * tree is not empty and (h, l) is not past its end, so no inner scan runs off a node. */
  private descend(h: number, l: number): void {
    const pn = this.pathNode;
    const pi = this.pathIdx;
    const inner = this.inner;
    const top = this.height - 1;
    let x = this.root;
    for (let d = 0; d < top; d++) {
      const base = x * IS;
      const i = lowerBound(inner, base, this.innerN[x]!, IE, h, l);
      pn[d] = x;
      pi[d] = i;
      x = inner[base + IE * i + 2]!;
    }
    pn[top] = x;
    pi[top] = lowerBound(this.leaf, this.eb(x), this.leafN[x]!, LE, h, l);
  }

  /** Where node x's largest key is (in the leaf pool for a leaf, else the inner pool). */
  private lastKeyAt(x: number, leaf: boolean): number {
    return leaf ? this.eb(x) + LE * (this.leafN[x]! - 1) : x * IS + IE * (this.innerN[x]! - 1);
  }

  /** Every area ends below (h, l) (the tree is not empty): the root's last key says so. */
  private pastEnd(h: number, l: number): boolean {
    const leaf = this.height === 1;
    const k = leaf ? this.leaf : this.inner;
    const at = this.lastKeyAt(this.root, leaf);
    const mh = k[at]!;
    return mh < h || (mh === h && k[at + 1]! < l);
  }

  private areaAt(x: number, i: number): N | null {
    return this.byHandle[this.leaf[this.eb(x) + LE * i + 4]!]!;
  }

  private newInner(): number {
    let id = this.innerFree.pop();
    if (id === undefined) {
      id = this.innerCount++;
      this.inner = grown(this.inner, this.innerCount * IS);
      this.innerN = grown(this.innerN, this.innerCount);
    }
    this.innerN[id] = 0;
    return id;
  }

  private newLeaf(): number {
    let id = this.leafFree.pop();
    if (id === undefined) {
      id = this.leafCount++;
      this.leaf = grown(this.leaf, this.leafCount * LS);
      this.leafN = grown(this.leafN, this.leafCount);
      this.leafS = grown(this.leafS, this.leafCount);
    }
    this.leafN[id] = 0;
    this.leafS[id] = 0;
    return id;
  }

  private freeNode(x: number, d: number): void {
    if (d === this.height - 1) this.leafFree.push(x);
    else this.innerFree.push(x);
  }

  /** inner[p] entry j's key = the largest last under its child c (at level d). */
  private setInnerKey(p: number, j: number, c: number, d: number): void {
    const leaf = d === this.height - 1;
    const src = leaf ? this.leaf : this.inner;
    const at = this.lastKeyAt(c, leaf);
    this.inner[p * IS + IE * j] = src[at]!;
    this.inner[p * IS + IE * j + 1] = src[at + 1]!;
  }

  /** Open entry i of leaf x for a (room is there). The entries before i, which the lookup
   * just read, move down into a gap at the front when there is one; those after it, maybe
   * not in cache, move up only when there is not. */
  private leafPut(x: number, i: number, a: N): void {
    const lf = this.leaf;
    const n = this.leafN[x]!;
    const s = this.leafS[x]!;
    let at: number;
    if (s > 0 && (i < n || s + n === KL)) {
      const eb = x * LS + LE * s;
      move(lf, eb - LE, eb, LE * i);
      this.leafS[x] = s - 1;
      at = eb + LE * (i - 1);
    } else {
      at = x * LS + LE * (s + i);
      move(lf, at + LE, at, LE * (n - i));
    }
    let hd = this.handleFree.pop();
    if (hd === undefined) {
      hd = this.byHandle.length;
      this.byHandle.push(a);
    } else this.byHandle[hd] = a;
    lf[at] = a.lh;
    lf[at + 1] = a.ll;
    lf[at + 2] = a.sh;
    lf[at + 3] = a.sl;
    lf[at + 4] = hd;
    this.leafN[x] = n + 1;
  }

  /** Close entry i of leaf x (its area leaves the tree): the entries before it, which the
   * lookup just read, move up, widening the gap at the front. */
  private leafCut(x: number, i: number): void {
    const lf = this.leaf;
    const n = this.leafN[x]! - 1;
    const eb = this.eb(x);
    const hd = lf[eb + LE * i + 4]!;
    this.byHandle[hd] = null;
    this.handleFree.push(hd);
    move(lf, eb + LE, eb, LE * i);
    this.leafN[x] = n;
    this.leafS[x] = n === 0 ? 0 : this.leafS[x]! + 1;
  }

  /** Where leaf x's first entry is. */
  private eb(x: number): number {
    return x * LS + LE * this.leafS[x]!;
  }

  /** Close leaf x's front gap (before a split or a merge moves its entries). */
  private leafPack(x: number): void {
    const s = this.leafS[x]!;
    if (s === 0) return;
    move(this.leaf, x * LS, x * LS + LE * s, LE * this.leafN[x]!);
    this.leafS[x] = 0;
  }

  /** Split the full leaf x while putting a at i; returns the new right leaf. */
  private leafSplit(x: number, i: number, a: N): number {
    const r = this.newLeaf();
    // appending (ascending IOVAs, the common case) leaves x three quarters full, so that maps
    // into the holes between later do not split every leaf a sequential build made;
    // otherwise split evenly
    const at = i === KL ? (3 * KL) >>> 2 : KL >>> 1;
    this.leafPack(x);
    this.moveTail(this.leaf, this.leafN, LS, LE, x, at, r);
    if (i < at) this.leafPut(x, i, a);
    else this.leafPut(r, i - at, a);
    return r;
  }

  /** Open entry i of inner node p for child c (at level d), keyed by c's largest last. */
  private innerPut(p: number, i: number, c: number, d: number): void {
    const n = this.innerN[p]!;
    const at = p * IS + IE * i;
    move(this.inner, at + IE, at, IE * (n - i));
    this.inner[at + 2] = c;
    this.innerN[p] = n + 1;
    this.setInnerKey(p, i, c, d);
  }

  private innerCut(p: number, i: number): void {
    const n = this.innerN[p]! - 1;
    const at = p * IS + IE * i;
    move(this.inner, at, at + IE, IE * (n - i));
    this.innerN[p] = n;
  }

  /** Split the full inner node p while putting child c (level d) at i; returns the new right node. */
  private innerSplit(p: number, i: number, c: number, d: number): number {
    const r = this.newInner();
    const at = i === KI ? (3 * KI) >>> 2 : KI >>> 1;
    this.moveTail(this.inner, this.innerN, IS, IE, p, at, r);
    if (i < at) this.innerPut(p, i, c, d);
    else this.innerPut(r, i - at, c, d);
    return r;
  }

  /** Append entries [from, n) of node x to node y (same pool: words a node s, an entry e). */
  private moveTail(pool: Int32Array, count: Int32Array, s: number, e: number, x: number, from: number, y: number) {
    const n = count[x]!;
    const m = count[y]!;
    move(pool, y * s + e * m, x * s + e * from, e * (n - from));
    count[x] = from;
    count[y] = m + n - from;
  }

  /** Child i of p (at level d) is under a quarter full: merge it with a neighbour if both
   * fit in three quarters of a node. */
  private mergeAround(p: number, i: number, d: number): void {
    const j = i + 1 < this.innerN[p]! ? i + 1 : i - 1;
    if (j < 0) return;
    const lo = Math.min(i, j);
    const left = this.inner[p * IS + IE * lo + 2]!;
    const right = this.inner[p * IS + IE * (lo + 1) + 2]!;
    const isLeaf = d === this.height - 1;
    const count = isLeaf ? this.leafN : this.innerN;
    if (count[left]! + count[right]! > (3 * (isLeaf ? KL : KI)) >>> 2) return;
    if (isLeaf) {
      this.leafPack(left);
      this.leafPack(right);
      this.moveTail(this.leaf, this.leafN, LS, LE, right, 0, left);
    } else this.moveTail(this.inner, this.innerN, IS, IE, right, 0, left);
    this.freeNode(right, d);
    this.setInnerKey(p, lo, left, d);
    this.innerCut(p, lo + 1);
  }

  /** Structural faults (for the invariant checker and tests): key order, keys = child maxima,
   * the leaf copies of each area's range, disjointness, leaf depth, size, handles. */
  violations(what: string): string[] {
    const out: string[] = [];
    let prev: N | null = null;
    let count = 0;
    const walk = (x: number, d: number): bigint => {
      let m = -1n;
      if (d === this.height - 1) {
        const n = this.leafN[x]!;
        if (n === 0) out.push(`${what}: empty leaf`);
        if (this.leafS[x]! < 0 || this.leafS[x]! + n > KL)
          out.push(`${what}: leaf gap ${this.leafS[x]} with ${n} entries`);
        for (let i = 0; i < n; i++) {
          const at = this.eb(x) + LE * i;
          const a = this.areaAt(x, i);
          if (!a) {
            out.push(`${what}: leaf entry ${i} holds no area`);
            continue;
          }
          count++;
          if (prev !== null && a.start <= prev.last)
            out.push(`${what}: areas overlap or out of order at 0x${a.start.toString(16)}`);
          if (a.start > a.last) out.push(`${what}: area start past last at 0x${a.start.toString(16)}`);
          if (fromHalves(this.leaf[at]!, this.leaf[at + 1]!) !== a.last)
            out.push(`${what}: leaf key ${i} is not its area's last`);
          if (fromHalves(this.leaf[at + 2]!, this.leaf[at + 3]!) !== a.start)
            out.push(`${what}: leaf start ${i} is not its area's start`);
          prev = a;
          m = a.last;
        }
        return m;
      }
      const n = this.innerN[x]!;
      if (n === 0) out.push(`${what}: empty node`);
      for (let i = 0; i < n; i++) {
        const at = x * IS + IE * i;
        const k = walk(this.inner[at + 2]!, d + 1);
        if (fromHalves(this.inner[at]!, this.inner[at + 1]!) !== k)
          out.push(`${what}: key ${i} is not its child's last at depth ${d}`);
        if (k <= m) out.push(`${what}: keys out of order at depth ${d}`);
        m = k;
      }
      return m;
    };
    if (this.root >= 0) walk(this.root, 0);
    else if (this.height !== 0) out.push(`${what}: no root at height ${this.height}`);
    if (count !== this.size) out.push(`${what}: tree size ${this.size}, ${count} areas`);
    const held = this.byHandle.length - this.handleFree.length;
    if (held !== this.size) out.push(`${what}: ${held} handles held for ${this.size} areas`);
    return out;
  }
}
