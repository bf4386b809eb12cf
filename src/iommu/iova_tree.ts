// A set of non-overlapping IOVA intervals [iova, last] kept in a treap (a randomized
// balanced binary search tree): insert, remove, floor/ceiling and overlap queries in
// O(log n) expected, in-order iteration. type1's dma_list (an rb-tree in the kernel) and
// iommufd's area tree (an interval tree) both fit this shape. "last" is inclusive.

export interface IovaInterval {
  readonly iova: bigint;
  /** inclusive */
  readonly last: bigint;
}

interface Node<T> {
  item: T;
  prio: number;
  left: Node<T> | null;
  right: Node<T> | null;
}

export class IovaTree<T extends IovaInterval> {
  private root: Node<T> | null = null;
  private n = 0;
  private seed = 0x2545f491;

  get size(): number {
    return this.n;
  }

  private rand(): number {
    // xorshift32: deterministic, so runs are repeatable
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed;
  }

  /** Insert; the caller has checked that it overlaps nothing. */
  insert(item: T): void {
    const node: Node<T> = { item, prio: this.rand(), left: null, right: null };
    const [l, r] = this.split(this.root, item.iova);
    this.root = this.merge(this.merge(l, node), r);
    this.n++;
  }

  /** Remove the interval starting at item.iova; false if absent. */
  remove(item: T): boolean {
    const [l, r] = this.split(this.root, item.iova);
    const [mid, rest] = this.split(r, item.iova + 1n);
    if (!mid) {
      this.root = this.merge(l, r);
      return false;
    }
    this.root = this.merge(l, rest);
    this.n--;
    return true;
  }

  /** split into keys < k and keys >= k */
  private split(t: Node<T> | null, k: bigint): [Node<T> | null, Node<T> | null] {
    if (!t) return [null, null];
    if (t.item.iova < k) {
      const [a, b] = this.split(t.right, k);
      t.right = a;
      return [t, b];
    }
    const [a, b] = this.split(t.left, k);
    t.left = b;
    return [a, t];
  }

  private merge(a: Node<T> | null, b: Node<T> | null): Node<T> | null {
    if (!a) return b;
    if (!b) return a;
    if (a.prio > b.prio) {
      a.right = this.merge(a.right, b);
      return a;
    }
    b.left = this.merge(a, b.left);
    return b;
  }

  /** The interval with the greatest iova <= k. */
  floor(k: bigint): T | null {
    let t = this.root;
    let best: T | null = null;
    while (t) {
      if (t.item.iova <= k) {
        best = t.item;
        t = t.right;
      } else t = t.left;
    }
    return best;
  }

  /** The interval with the smallest iova >= k. */
  ceil(k: bigint): T | null {
    let t = this.root;
    let best: T | null = null;
    while (t) {
      if (t.item.iova >= k) {
        best = t.item;
        t = t.left;
      } else t = t.right;
    }
    return best;
  }

  /** The interval containing address a, or null. */
  find(a: bigint): T | null {
    const f = this.floor(a);
    return f && f.last >= a ? f : null;
  }

  /** The lowest interval overlapping [start, last], or null. */
  firstOverlap(start: bigint, last: bigint): T | null {
    const f = this.floor(start);
    if (f && f.last >= start) return f;
    const c = this.ceil(start);
    return c && c.iova <= last ? c : null;
  }

  /** The interval after `item` in address order. */
  next(item: T): T | null {
    return this.ceil(item.iova + 1n);
  }

  /** Every interval in address order. */
  *[Symbol.iterator](): IterableIterator<T> {
    const stack: Node<T>[] = [];
    let t = this.root;
    while (t || stack.length) {
      while (t) {
        stack.push(t);
        t = t.left;
      }
      const x = stack.pop()!;
      yield x.item;
      t = x.right;
    }
  }
}
