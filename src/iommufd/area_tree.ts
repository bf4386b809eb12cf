// The area tree of an io_pagetable (iopt->area_itree in drivers/iommu/iommufd/io_pagetable.c)
// as a B+tree with wide nodes: the kernel keeps areas in an interval tree, but areas never
// overlap, so ordering them by their last byte orders them by start too, and "the first area
// intersecting [s, l]" is the first area whose last >= s, if its start <= l. No augmentation.
//
// Against the treap of ./interval_tree.ts (bench/iommufd.ts, tree alone, sequential 4 KiB
// areas): inserts are cheaper (no rotations, appends fill leaves), lookups cost about the same
// (3-4 nodes with a binary search each vs ~20 cached pointer hops), and an area shrinks by
// four fields. A node keeps its children's largest last as biased int32 halves interleaved
// in a packed Smi array (on the JS heap: no ArrayBuffer per node). firstH() remembers the
// path it took, so unmap's find-then-remove descends once.
//
// The areas themselves stay objects (access.ts and the invariants hold them); removal is by
// identity. Nodes that fall under a quarter full merge with a neighbour, so the height stays
// logarithmic under any insert/remove order. At 1M live areas what remains is the GC
// promoting each live area out of the young generation, not the descent.

import { fromHalves, hiOf, loOf, type IovaRange } from "./interval_tree.js";

/** entries per inner node, and per leaf (leaves shift entries on every insert/remove) */
const B = 64;
const LB = 32;

class BNode<N> {
  n = 0;
  /** keys[2i], keys[2i+1]: hi, lo halves of the largest last under kids[i] */
  readonly keys: number[] = [];
  readonly kids: (BNode<N> | N)[] = [];
  /** capacity */
  readonly cap: number;
  constructor(readonly leaf: boolean) {
    this.cap = leaf ? LB : B;
    // Smis in a packed array: on the JS heap, no ArrayBuffer per node
    for (let i = 0; i < 2 * this.cap; i++) this.keys.push(0);
  }

  /** The first index whose key >= (h, l), or n. */
  lowerBound(h: number, l: number): number {
    const k = this.keys;
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      const mh = k[2 * m]!;
      if (mh < h || (mh === h && k[2 * m + 1]! < l)) lo = m + 1;
      else hi = m;
    }
    return lo;
  }

  setKey(i: number, h: number, l: number): void {
    this.keys[2 * i] = h;
    this.keys[2 * i + 1] = l;
  }

  /** Open a slot at i (entries i.. move right by one). */
  openAt(i: number, h: number, l: number, kid: BNode<N> | N): void {
    const n = this.n;
    const kids = this.kids;
    if (i < n) {
      // plain loops: cheaper than copyWithin/splice at these sizes
      const k = this.keys;
      kids.push(kids[n - 1]!);
      for (let j = n - 1; j > i; j--) {
        kids[j] = kids[j - 1]!;
        k[2 * j + 2] = k[2 * j]!;
        k[2 * j + 3] = k[2 * j + 1]!;
      }
      k[2 * i + 2] = k[2 * i]!;
      k[2 * i + 3] = k[2 * i + 1]!;
      kids[i] = kid;
    } else kids.push(kid);
    this.setKey(i, h, l);
    this.n = n + 1;
  }

  closeAt(i: number): void {
    const n = this.n - 1;
    const kids = this.kids;
    const k = this.keys;
    for (let j = i; j < n; j++) {
      kids[j] = kids[j + 1]!;
      k[2 * j] = k[2 * j + 2]!;
      k[2 * j + 1] = k[2 * j + 3]!;
    }
    kids.pop();
    this.n = n;
  }

  /** Move entries [from, n) into a new node. */
  splitOff(from: number): BNode<N> {
    const r = new BNode<N>(this.leaf);
    for (let i = from; i < this.n; i++) {
      r.kids.push(this.kids[i]!);
      r.setKey(i - from, this.keys[2 * i]!, this.keys[2 * i + 1]!);
    }
    r.n = this.n - from;
    this.kids.length = from;
    this.n = from;
    return r;
  }

  /** Append all of b's entries. */
  absorb(b: BNode<N>): void {
    for (let i = 0; i < b.n; i++) {
      this.kids.push(b.kids[i]!);
      this.setKey(this.n + i, b.keys[2 * i]!, b.keys[2 * i + 1]!);
    }
    this.n += b.n;
  }
}

/** Disjoint closed intervals [start, last] over u64, in order. */
export class AreaTree<N extends IovaRange> {
  private root: BNode<N> | null = null;
  size = 0;
  /** the path (node, index per level) to the last area firstH() returned; 0 when stale */
  private pathLen = 0;
  private readonly pathNodes: BNode<N>[] = [];
  private readonly pathIdx: number[] = [];

  isEmpty(): boolean {
    return this.size === 0;
  }

  /** The first node that intersects [start, last], halves given (iopt_area_iter_first()). */
  firstH(qsh: number, qsl: number, qlh: number, qll: number): N | null {
    let x = this.root;
    if (x === null) return null;
    const nodes = this.pathNodes;
    const idx = this.pathIdx;
    this.pathLen = 0;
    for (let d = 0; ; d++) {
      const i = x.lowerBound(qsh, qsl);
      if (i === x.n) return null;
      nodes[d] = x;
      idx[d] = i;
      if (x.leaf) {
        const a = x.kids[i] as N;
        if (a.sh < qlh || (a.sh === qlh && a.sl <= qll)) {
          // remember the way down: unmap removes what it just found without a second descent
          this.pathLen = d + 1;
          return a;
        }
        return null;
      }
      x = x.kids[i] as BNode<N>;
    }
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
    const walk = (x: BNode<N>): boolean => {
      for (let i = x.lowerBound(qsh, qsl); i < x.n; i++) {
        if (!x.leaf) {
          if (!walk(x.kids[i] as BNode<N>)) return false;
          continue;
        }
        const a = x.kids[i] as N;
        if (a.sh > qlh || (a.sh === qlh && a.sl > qll)) return false;
        out.push(a);
      }
      return true;
    };
    if (this.root !== null) walk(this.root);
    return out;
  }

  /** Insert a node that overlaps none in the tree (the caller checked). */
  insert(a: N): void {
    this.pathLen = 0;
    if (this.root === null) {
      this.root = new BNode<N>(true);
      this.root.openAt(0, a.lh, a.ll, a);
    } else {
      const r = this.ins(this.root, a);
      if (r !== null) {
        const old = this.root;
        const top = new BNode<N>(false);
        top.openAt(0, old.keys[2 * old.n - 2]!, old.keys[2 * old.n - 1]!, old);
        top.openAt(1, r.keys[2 * r.n - 2]!, r.keys[2 * r.n - 1]!, r);
        this.root = top;
      }
    }
    this.size++;
  }

  /** Insert under x; returns the new right sibling if x split. */
  private ins(x: BNode<N>, a: N): BNode<N> | null {
    const h = a.lh;
    const l = a.ll;
    let i = x.lowerBound(h, l);
    if (x.leaf) return this.place(x, i, h, l, a);
    if (i === x.n) {
      // past every key: into the last child, whose max becomes a's last
      i--;
      x.setKey(i, h, l);
    }
    const kid = x.kids[i] as BNode<N>;
    const r = this.ins(kid, a);
    if (r === null) return null;
    x.setKey(i, kid.keys[2 * kid.n - 2]!, kid.keys[2 * kid.n - 1]!);
    return this.place(x, i + 1, r.keys[2 * r.n - 2]!, r.keys[2 * r.n - 1]!, r);
  }

  /** Put an entry at i of x, splitting x if full; returns the new right sibling or null. */
  private place(x: BNode<N>, i: number, h: number, l: number, kid: BNode<N> | N): BNode<N> | null {
    const cap = x.cap;
    if (x.n < cap) {
      x.openAt(i, h, l, kid);
      return null;
    }
    // appending (ascending IOVAs, the common case) leaves x full; otherwise split evenly
    const at = i === cap ? cap : cap >>> 1;
    const r = x.splitOff(at);
    if (i < at) x.openAt(i, h, l, kid);
    else r.openAt(i - at, h, l, kid);
    return r;
  }

  /** Remove a (by identity); false if it is not in the tree. */
  remove(a: N): boolean {
    const nodes = this.pathNodes;
    const idx = this.pathIdx;
    let len = this.pathLen;
    this.pathLen = 0;
    if (len === 0 || nodes[len - 1]!.kids[idx[len - 1]!] !== a) {
      // not the area firstH() found last: walk down to it
      let x = this.root;
      if (x === null) return false;
      for (len = 0; ;) {
        const i = x.lowerBound(a.lh, a.ll);
        if (i === x.n) return false;
        nodes[len] = x;
        idx[len++] = i;
        if (x.leaf) break;
        x = x.kids[i] as BNode<N>;
      }
      if (nodes[len - 1]!.kids[idx[len - 1]!] !== a) return false;
    }
    nodes[len - 1]!.closeAt(idx[len - 1]!);
    for (let d = len - 2; d >= 0; d--) {
      const x = nodes[d]!;
      const i = idx[d]!;
      const kid = nodes[d + 1]!;
      if (kid.n === 0) {
        x.closeAt(i);
        continue;
      }
      x.setKey(i, kid.keys[2 * kid.n - 2]!, kid.keys[2 * kid.n - 1]!);
      if (kid.n < kid.cap >>> 2) {
        // merge with a neighbour when both fit in three quarters of a node
        const j = i + 1 < x.n ? i + 1 : i - 1;
        if (j >= 0) {
          const lo = Math.min(i, j);
          const left = x.kids[lo] as BNode<N>;
          const right = x.kids[lo + 1] as BNode<N>;
          if (left.n + right.n <= (3 * kid.cap) >>> 2) {
            left.absorb(right);
            x.setKey(lo, left.keys[2 * left.n - 2]!, left.keys[2 * left.n - 1]!);
            x.closeAt(lo + 1);
          }
        }
      }
    }
    this.size--;
    const r = this.root!;
    if (r.n === 0) this.root = null;
    else if (!r.leaf && r.n === 1) this.root = r.kids[0] as BNode<N>;
    return true;
  }

  /** Structural faults (for the invariant checker and tests): key order, keys = child maxima,
   * disjointness, leaf depth, size. */
  violations(what: string): string[] {
    const out: string[] = [];
    let prev: N | null = null;
    let count = 0;
    let leafDepth = -1;
    const keyOf = (x: BNode<N>, i: number) => fromHalves(x.keys[2 * i]!, x.keys[2 * i + 1]!);
    const walk = (x: BNode<N>, depth: number): bigint => {
      if (x.n === 0) out.push(`${what}: empty node`);
      if (x.kids.length !== x.n) out.push(`${what}: node holds ${x.kids.length} kids, counts ${x.n}`);
      let m = -1n;
      for (let i = 0; i < x.n; i++) {
        let k: bigint;
        if (x.leaf) {
          const a = x.kids[i] as N;
          count++;
          if (prev !== null && a.start <= prev.last)
            out.push(`${what}: areas overlap or out of order at 0x${a.start.toString(16)}`);
          if (a.start > a.last) out.push(`${what}: area start past last at 0x${a.start.toString(16)}`);
          prev = a;
          k = a.last;
        } else k = walk(x.kids[i] as BNode<N>, depth + 1);
        if (keyOf(x, i) !== k) out.push(`${what}: key ${i} is not its entry's last at depth ${depth}`);
        if (k <= m) out.push(`${what}: keys out of order at depth ${depth}`);
        m = k;
      }
      if (x.leaf) {
        if (leafDepth < 0) leafDepth = depth;
        else if (leafDepth !== depth) out.push(`${what}: leaves at depths ${leafDepth} and ${depth}`);
      }
      return m;
    };
    if (this.root !== null) walk(this.root, 0);
    if (count !== this.size) out.push(`${what}: tree size ${this.size}, ${count} areas`);
    return out;
  }

  /** Levels from the root to the leaves (0 when empty). */
  depth(): number {
    let d = 0;
    for (let x = this.root; x !== null; x = x.leaf ? null : (x.kids[0] as BNode<N>)) d++;
    return d;
  }
}
