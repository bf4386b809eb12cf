// vfio_iommu.dma_list (drivers/vfio/vfio_iommu_type1.c, an rb-tree of struct vfio_dma by
// iova): type1's mappings in address order. The kernel searches it with vfio_find_dma() and
// walks it with rb_next(); here it is a B+tree keyed by the mapping's first IOVA page number.
//
// Keys are page numbers, not IOVAs: every type1 mapping starts and ends on a page boundary
// (MAP_DMA refuses anything not aligned to the IOMMU's smallest page, at least 4 KiB), so a
// mapping is the page range [pfn, lastPfn], and an IOVA up to 2^64 - 1 has a page number
// below 2^52: exact as a JS number, compared as doubles, no bigint in the tree. A byte range
// [iova, last] overlaps a mapping exactly when the page range [iova >> 12, last >> 12] does.
//
// Nodes are objects with Float64Array keys, scanned linearly (a node's keys share two cache
// lines). Inner node i's key is a lower bound of everything under child i and above
// everything under child i - 1 (key 0 is never read: child 0 takes all below key 1); leaves
// are linked both ways, so floor and ceiling that fall off a leaf's end read the neighbour.
// At 100k mappings a lookup touches 4 nodes where the treap it replaced walked ~25 levels of
// node and bigint objects, and MAP_DMA + UNMAP_DMA do 4 lookups where they did ~10 walks
// (docs/performance.md).
//
// A leaf or inner node that empties is unlinked and freed; nodes are not merged below that.
// The height grows only when a full root splits, so it is at most 1 + log_16 of the
// insertions ever made (4 levels at the bench's 100k), however the mappings come and go.

/** what the tree orders: an inclusive page range that does not change while in the tree */
export interface PfnRange {
  readonly pfn: number;
  readonly lastPfn: number;
}

/** entries per leaf and per inner node */
const K = 32;
const HALF = K / 2;
/** the path stack's depth: the height grows only when a full root splits, which takes at least
 * 16^(height - 1) insertions, so 16 levels are never reached */
const MAX_DEPTH = 16;

class Leaf<T> {
  n = 0;
  readonly keys = new Float64Array(K);
  readonly items: (T | undefined)[] = new Array<T | undefined>(K).fill(undefined);
  prev: Leaf<T> | null = null;
  next: Leaf<T> | null = null;
}

class Inner<T> {
  n = 0;
  readonly keys = new Float64Array(K);
  readonly kids: (Inner<T> | Leaf<T>)[] = new Array<Inner<T> | Leaf<T>>(K);
}

export class DmaList<T extends PfnRange> {
  private root: Inner<T> | Leaf<T> = new Leaf<T>();
  /** levels: 1 while the root is a leaf */
  private height = 1;
  private n = 0;
  /** the inner nodes and child indexes the last descent went through (insert and remove
   * climb back along it) */
  private readonly pathNode: (Inner<T> | undefined)[] = new Array<Inner<T> | undefined>(MAX_DEPTH).fill(undefined);
  private readonly pathIdx = new Int32Array(MAX_DEPTH);

  get size(): number {
    return this.n;
  }

  /** The leaf where key k belongs, the path to it recorded. */
  private descend(k: number): Leaf<T> {
    let node = this.root;
    for (let d = 0; d < this.height - 1; d++) {
      const inner = node as Inner<T>;
      const keys = inner.keys;
      const n = inner.n;
      let i = 1;
      while (i < n && keys[i]! <= k) i++;
      i--;
      this.pathNode[d] = inner;
      this.pathIdx[d] = i;
      node = inner.kids[i]!;
    }
    return node as Leaf<T>;
  }

  /** The mapping with the greatest pfn <= k. */
  floor(k: number): T | null {
    const leaf = this.descend(k);
    const keys = leaf.keys;
    let j = 0;
    while (j < leaf.n && keys[j]! <= k) j++;
    if (j > 0) return leaf.items[j - 1]!;
    const p = leaf.prev;
    return p ? p.items[p.n - 1]! : null;
  }

  /** The mapping with the smallest pfn >= k. */
  ceil(k: number): T | null {
    const leaf = this.descend(k);
    const keys = leaf.keys;
    let j = 0;
    while (j < leaf.n && keys[j]! < k) j++;
    if (j < leaf.n) return leaf.items[j]!;
    const nx = leaf.next;
    return nx ? nx.items[0]! : null;
  }

  /** The mapping containing page k, or null. */
  find(k: number): T | null {
    const f = this.floor(k);
    return f !== null && f.lastPfn >= k ? f : null;
  }

  /** The lowest mapping overlapping pages [first, last], or null (vfio_find_dma()'s question,
   * answered with the lowest). */
  firstOverlap(first: number, last: number): T | null {
    const f = this.floor(first);
    if (f !== null && f.lastPfn >= first) return f;
    const c = this.ceil(first);
    return c !== null && c.pfn <= last ? c : null;
  }

  /** The mapping after `item` in address order. */
  next(item: T): T | null {
    return this.ceil(item.pfn + 1);
  }

  /** The mapping with the lowest and with the highest address. */
  first(): T | null {
    let node = this.root;
    for (let d = 1; d < this.height; d++) node = (node as Inner<T>).kids[0]!;
    return node.n ? ((node as Leaf<T>).items[0] ?? null) : null;
  }

  last(): T | null {
    let node = this.root;
    for (let d = 1; d < this.height; d++) node = (node as Inner<T>).kids[node.n - 1]!;
    return node.n ? ((node as Leaf<T>).items[node.n - 1] ?? null) : null;
  }

  /** Insert; the caller has checked that it overlaps nothing. */
  insert(item: T): void {
    const k = item.pfn;
    const leaf = this.descend(k);
    let j = 0;
    while (j < leaf.n && leaf.keys[j]! <= k) j++;
    this.n++;
    if (leaf.n < K) {
      leafPut(leaf, j, k, item);
      return;
    }
    // split: the upper half moves to a new leaf on the right, linked in after this one
    const right = new Leaf<T>();
    for (let i = HALF; i < K; i++) {
      right.keys[i - HALF] = leaf.keys[i]!;
      right.items[i - HALF] = leaf.items[i];
      leaf.items[i] = undefined;
    }
    right.n = K - HALF;
    leaf.n = HALF;
    right.next = leaf.next;
    if (right.next) right.next.prev = right;
    right.prev = leaf;
    leaf.next = right;
    if (j <= HALF) leafPut(leaf, j, k, item);
    else leafPut(right, j - HALF, k, item);
    this.addChild(this.height - 2, right.keys[0]!, right);
  }

  /** Put child `kid` with lower bound `sep` right after the path's child at depth d (a new
   * root above depth 0), splitting full inner nodes upward. */
  private addChild(d: number, sep: number, kid: Inner<T> | Leaf<T>): void {
    for (; d >= 0; d--) {
      const p = this.pathNode[d]!;
      const at = this.pathIdx[d]! + 1;
      if (p.n < K) {
        innerPut(p, at, sep, kid);
        return;
      }
      const right = new Inner<T>();
      for (let i = HALF; i < K; i++) {
        right.keys[i - HALF] = p.keys[i]!;
        right.kids[i - HALF] = p.kids[i]!;
      }
      p.kids.fill(undefined as unknown as Inner<T>, HALF);
      right.n = K - HALF;
      p.n = HALF;
      if (at <= HALF) innerPut(p, at, sep, kid);
      else innerPut(right, at - HALF, sep, kid);
      sep = right.keys[0]!;
      kid = right;
    }
    const r = new Inner<T>();
    r.kids[0] = this.root;
    r.keys[1] = sep;
    r.kids[1] = kid;
    r.n = 2;
    this.root = r;
    this.height++;
  }

  /** Remove `item` (found by its pfn and identity); false if it is not in the tree. */
  remove(item: T): boolean {
    const k = item.pfn;
    const leaf = this.descend(k);
    let j = 0;
    while (j < leaf.n && leaf.keys[j]! < k) j++;
    if (j === leaf.n || leaf.items[j] !== item) return false;
    for (let i = j + 1; i < leaf.n; i++) {
      leaf.keys[i - 1] = leaf.keys[i]!;
      leaf.items[i - 1] = leaf.items[i];
    }
    leaf.items[--leaf.n] = undefined;
    this.n--;
    if (leaf.n === 0 && this.height > 1) {
      // unlink the empty leaf and take it out of its parent, and so up while parents empty
      if (leaf.prev) leaf.prev.next = leaf.next;
      if (leaf.next) leaf.next.prev = leaf.prev;
      for (let d = this.height - 2; d >= 0; d--) {
        const p = this.pathNode[d]!;
        const at = this.pathIdx[d]!;
        for (let i = at + 1; i < p.n; i++) {
          p.keys[i - 1] = p.keys[i]!;
          p.kids[i - 1] = p.kids[i]!;
        }
        p.kids[--p.n] = undefined as unknown as Inner<T>;
        if (p.n > 0 || d === 0) break;
      }
      // a root with one child gives way to it
      while (this.height > 1 && this.root.n === 1) {
        this.root = (this.root as Inner<T>).kids[0]!;
        this.height--;
      }
      if (this.height > 1 && this.root.n === 0) {
        this.root = new Leaf<T>();
        this.height = 1;
      }
    }
    return true;
  }

  /** Every mapping in address order. */
  *[Symbol.iterator](): IterableIterator<T> {
    let node = this.root;
    for (let d = 1; d < this.height; d++) node = (node as Inner<T>).kids[0]!;
    for (let leaf: Leaf<T> | null = node as Leaf<T>; leaf; leaf = leaf.next)
      for (let i = 0; i < leaf.n; i++) yield leaf.items[i]!;
  }
}

function leafPut<T>(leaf: Leaf<T>, j: number, k: number, item: T): void {
  for (let i = leaf.n; i > j; i--) {
    leaf.keys[i] = leaf.keys[i - 1]!;
    leaf.items[i] = leaf.items[i - 1];
  }
  leaf.keys[j] = k;
  leaf.items[j] = item;
  leaf.n++;
}

function innerPut<T>(p: Inner<T>, at: number, sep: number, kid: Inner<T> | Leaf<T>): void {
  for (let i = p.n; i > at; i--) {
    p.keys[i] = p.keys[i - 1]!;
    p.kids[i] = p.kids[i - 1]!;
  }
  p.keys[at] = sep;
  p.kids[at] = kid;
  p.n++;
}
