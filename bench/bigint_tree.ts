// The IOVA interval tree of src/iommufd/interval_tree.ts with bigint keys instead of biased
// int32 halves: the same treap, priority hash, (start, last) order and max augmentation,
// kept only so bench/iommufd.ts can measure what the representation costs.

export class BigNode {
  start = 0n;
  last = 0n;
  max = 0n;
  left: BigNode | null = null;
  right: BigNode | null = null;
  constructor(start: bigint, last: bigint) {
    this.start = start;
    this.last = last;
    this.max = last;
  }
}

function prio(n: BigNode): number {
  const sl = Number(n.start & 0xffffffffn) | 0;
  const sh = Number(n.start >> 32n) | 0;
  let h = Math.imul(sl ^ Math.imul(sh, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function less(a: BigNode, b: BigNode): boolean {
  return a.start < b.start || (a.start === b.start && a.last < b.last);
}

function fix(n: BigNode): void {
  let m = n.last;
  if (n.left !== null && n.left.max > m) m = n.left.max;
  if (n.right !== null && n.right.max > m) m = n.right.max;
  n.max = m;
}

function split(t: BigNode | null, n: BigNode): [BigNode | null, BigNode | null] {
  if (t === null) return [null, null];
  if (less(t, n)) {
    const [a, b] = split(t.right, n);
    t.right = a;
    fix(t);
    return [t, b];
  }
  const [a, b] = split(t.left, n);
  t.left = b;
  fix(t);
  return [a, t];
}

function ins(t: BigNode | null, n: BigNode, p: number): BigNode {
  if (t === null) return n;
  if (p > prio(t)) {
    const [a, b] = split(t, n);
    n.left = a;
    n.right = b;
    fix(n);
    return n;
  }
  if (less(n, t)) t.left = ins(t.left, n, p);
  else t.right = ins(t.right, n, p);
  fix(t);
  return t;
}

function merge(a: BigNode | null, b: BigNode | null): BigNode | null {
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

function rem(t: BigNode | null, n: BigNode): BigNode | null {
  if (t === null) return null;
  if (t === n) return merge(t.left, t.right);
  if (less(n, t)) t.left = rem(t.left, n);
  else t.right = rem(t.right, n);
  fix(t);
  return t;
}

export class BigIntervalTree {
  root: BigNode | null = null;
  insert(n: BigNode): void {
    n.left = n.right = null;
    n.max = n.last;
    this.root = ins(this.root, n, prio(n));
  }
  remove(n: BigNode): void {
    this.root = rem(this.root, n);
  }
  first(s: bigint, l: bigint): BigNode | null {
    let n = this.root;
    if (n === null || n.max < s) return null;
    for (;;) {
      if (n.left !== null && n.left.max >= s) {
        n = n.left;
        continue;
      }
      if (n.start <= l) {
        if (n.last >= s) return n;
        if (n.right !== null && n.right.max >= s) {
          n = n.right;
          continue;
        }
      }
      return null;
    }
  }
}
