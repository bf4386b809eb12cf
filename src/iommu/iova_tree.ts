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
    this.split(this.root, item.iova);
    const r = this.sr;
    this.root = this.merge(this.merge(this.sl, node), r);
    this.n++;
  }

  /** Remove the interval starting at item.iova; false if absent. */
  remove(item: T): boolean {
    this.split(this.root, item.iova);
    const l = this.sl;
    const r = this.sr;
    this.split(r, item.iova + 1n);
    const mid = this.sl;
    const rest = this.sr;
    if (!mid) {
      this.root = this.merge(l, r);
      return false;
    }
    this.root = this.merge(l, rest);
    this.n--;
    return true;
  }

  /** split()'s two halves: keys < k, keys >= k (fields, not a fresh pair per level: at 100k
   * mappings a MAP_DMA split ~17 levels deep, and the pairs were most of its garbage) */
  private sl: Node<T> | null = null;
  private sr: Node<T> | null = null;

  /** split into keys < k (sl) and keys >= k (sr) */
  private split(t: Node<T> | null, k: bigint): void {
    if (!t) {
      this.sl = null;
      this.sr = null;
      return;
    }
    if (t.item.iova < k) {
      this.split(t.right, k);
      t.right = this.sl;
      this.sl = t;
      return;
    }
    this.split(t.left, k);
    t.left = this.sr;
    this.sr = t;
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
