// The interval tree of include/linux/interval_tree.h, for the IOVA engine: areas, reserved
// ranges and allowed ranges of an io_pagetable each live in one.
//
// Intervals are closed, [start, last], over u64. A u64 is kept as two biased int32 halves
// (hi ^ 0x80000000, lo ^ 0x80000000): both halves stay small integers (Smis, stored inline
// in the node, no heap box), and signed comparison of biased halves is unsigned comparison
// of the originals. bench/iommufd.ts measures this against bigint keys (see its report).
//
// The tree is a treap whose priority is a hash of the node's start (no field spent on it),
// ordered by (start, last), augmented with the largest `last` of each subtree so that "the
// first interval that intersects [s, l]" costs O(log n). Nodes are intrusive: an IoptArea
// is its own tree node, as in the kernel. Intervals may overlap and repeat (two devices
// reserve the same MSI window); removal is by identity.

export const BIAS = 0x80000000 | 0;

/** A u64 as biased halves. */
export function hiOf(v: bigint): number {
  return Number(v >> 32n) ^ BIAS;
}
export function loOf(v: bigint): number {
  return Number(v & 0xffffffffn) ^ BIAS;
}
export function fromHalves(h: number, l: number): bigint {
  return (BigInt((h ^ BIAS) >>> 0) << 32n) | BigInt((l ^ BIAS) >>> 0);
}

/** The four halves of a closed range, whatever class carries them (IoptArea extends
 * IoptPages, so it cannot also extend IovaRange: it uses these functions instead). */
export interface RangeHalves {
  sh: number;
  sl: number;
  lh: number;
  ll: number;
}

export function setRangeHalves(r: RangeHalves, start: bigint, last: bigint): void {
  r.sh = hiOf(start);
  r.sl = loOf(start);
  r.lh = hiOf(last);
  r.ll = loOf(last);
}

/** A closed range [start, last] over u64, as biased halves (an area, a reserved range). */
export class IovaRange implements RangeHalves {
  sh = 0;
  sl = 0;
  lh = 0;
  ll = 0;

  setRange(start: bigint, last: bigint): void {
    setRangeHalves(this, start, last);
  }
  get start(): bigint {
    return fromHalves(this.sh, this.sl);
  }
  get last(): bigint {
    return fromHalves(this.lh, this.ll);
  }
}

export class IntervalNode extends IovaRange {
  /** the largest last in this subtree */
  mh = 0;
  ml = 0;
  left: this | null = null;
  right: this | null = null;
}

function prio(n: IntervalNode): number {
  // a murmur3 finaliser over the start: pseudo-random and stable while the node is in the tree
  let h = Math.imul(n.sl ^ Math.imul(n.sh, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** a before b in tree order */
function less(a: IntervalNode, b: IntervalNode): boolean {
  if (a.sh !== b.sh) return a.sh < b.sh;
  if (a.sl !== b.sl) return a.sl < b.sl;
  if (a.lh !== b.lh) return a.lh < b.lh;
  return a.ll < b.ll;
}

function fix(n: IntervalNode): void {
  let h = n.lh;
  let l = n.ll;
  const a = n.left;
  if (a !== null && (a.mh > h || (a.mh === h && a.ml > l))) {
    h = a.mh;
    l = a.ml;
  }
  const b = n.right;
  if (b !== null && (b.mh > h || (b.mh === h && b.ml > l))) {
    h = b.mh;
    l = b.ml;
  }
  n.mh = h;
  n.ml = l;
}

export class IntervalTree<N extends IntervalNode> {
  root: N | null = null;
  size = 0;

  insert(n: N): void {
    n.left = null;
    n.right = null;
    n.mh = n.lh;
    n.ml = n.ll;
    this.root = ins(this.root, n, prio(n));
    this.size++;
  }

  /** Remove n (by identity); returns false if it is not in the tree. */
  remove(n: N): boolean {
    const r = rem(this.root, n);
    if (r === NOT_FOUND) return false;
    this.root = r as N | null;
    this.size--;
    return true;
  }

  /** The first node (in (start, last) order) that intersects [start, last], halves given
   * (lib/interval_tree's iter_first: if the left subtree reaches start, the answer is there
   * or nowhere). */
  firstH(qsh: number, qsl: number, qlh: number, qll: number): N | null {
    let n = this.root;
    if (n === null || n.mh < qsh || (n.mh === qsh && n.ml < qsl)) return null;
    for (;;) {
      const l: N | null = n.left;
      if (l !== null && (l.mh > qsh || (l.mh === qsh && l.ml >= qsl))) {
        n = l;
        continue;
      }
      if (n.sh < qlh || (n.sh === qlh && n.sl <= qll)) {
        if (n.lh > qsh || (n.lh === qsh && n.ll >= qsl)) return n;
        const r: N | null = n.right;
        if (r !== null && (r.mh > qsh || (r.mh === qsh && r.ml >= qsl))) {
          n = r;
          continue;
        }
      }
      return null;
    }
  }

  first(start: bigint, last: bigint): N | null {
    return this.firstH(hiOf(start), loOf(start), hiOf(last), loOf(last));
  }

  /** Every node intersecting [start, last], in order. */
  all(start: bigint = 0n, last: bigint = 0xffffffffffffffffn): N[] {
    const out: N[] = [];
    collect(this.root, hiOf(start), loOf(start), hiOf(last), loOf(last), out);
    return out;
  }

  isEmpty(): boolean {
    return this.root === null;
  }

  /** Depth of the deepest node (for tests of balance). */
  depth(): number {
    const d = (n: IntervalNode | null): number => (n === null ? 0 : 1 + Math.max(d(n.left), d(n.right)));
    return d(this.root);
  }
}

function collect<N extends IntervalNode>(n: N | null, qsh: number, qsl: number, qlh: number, qll: number, out: N[]) {
  if (n === null) return;
  if (n.mh < qsh || (n.mh === qsh && n.ml < qsl)) return;
  collect(n.left, qsh, qsl, qlh, qll, out);
  if (n.sh > qlh || (n.sh === qlh && n.sl > qll)) return;
  if (n.lh > qsh || (n.lh === qsh && n.ll >= qsl)) out.push(n);
  collect(n.right, qsh, qsl, qlh, qll, out);
}

function ins<N extends IntervalNode>(t: N | null, n: N, p: number): N {
  if (t === null) return n;
  if (p > prio(t)) {
    // n becomes the root of this subtree: split t around n
    split(t, n);
    n.left = splitL as N | null;
    n.right = splitR as N | null;
    splitL = splitR = null;
    fix(n);
    return n;
  }
  if (less(n, t)) t.left = ins(t.left, n, p);
  else t.right = ins(t.right, n, p);
  fix(t);
  return t;
}

// split()'s two results, passed back without allocating a pair per level
let splitL: IntervalNode | null = null;
let splitR: IntervalNode | null = null;

/** Split t into splitL (nodes before n) and splitR (nodes not before n). */
function split(t: IntervalNode | null, n: IntervalNode): void {
  if (t === null) {
    splitL = splitR = null;
    return;
  }
  if (less(t, n)) {
    split(t.right, n);
    t.right = splitL;
    fix(t);
    splitL = t;
  } else {
    split(t.left, n);
    t.left = splitR;
    fix(t);
    splitR = t;
  }
}

function merge<N extends IntervalNode>(a: N | null, b: N | null): N | null {
  if (a === null) return b;
  if (b === null) return a;
  if (prio(a) > prio(b)) {
    a.right = merge(a.right, b);
    fix(a);
    return a;
  }
  b.left = merge(a, b.left);
  fix(b);
  return b;
}

const NOT_FOUND = Symbol("not found");

function rem<N extends IntervalNode>(t: N | null, n: N): N | null | typeof NOT_FOUND {
  if (t === null) return NOT_FOUND;
  if (t === n) {
    const m = merge(t.left, t.right);
    n.left = null;
    n.right = null;
    return m;
  }
  if (less(n, t)) {
    const r = rem(t.left, n);
    if (r === NOT_FOUND) return r;
    t.left = r;
  } else if (less(t, n)) {
    const r = rem(t.right, n);
    if (r === NOT_FOUND) return r;
    t.right = r;
  } else {
    // an equal interval that is another node: n may sit on either side
    let r = rem(t.left, n);
    if (r !== NOT_FOUND) t.left = r;
    else {
      r = rem(t.right, n);
      if (r === NOT_FOUND) return r;
      t.right = r;
    }
  }
  fix(t);
  return t;
}
