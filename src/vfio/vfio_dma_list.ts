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

/** K numbers in a JS array of doubles (on the heap with its node, where a Float64Array of
 * 256 bytes has its store outside it: one more pointer to follow per node) */
function doubles(): number[] {
  const a: number[] = [];
  for (let i = 0; i < K; i++) a.push(0.5); // packed doubles from the start
  return a.fill(0);
}

class Leaf<T> {
  n = 0;
  /** each entry's first and last page: a search that ends in a hole (every successful
   * MAP_DMA) reads no mapping object */
  readonly keys = doubles();
  readonly lasts = doubles();
  readonly items: (T | undefined)[] = new Array<T | undefined>(K).fill(undefined);
  prev: Leaf<T> | null = null;
  next: Leaf<T> | null = null;
}

class Inner<T> {
  n = 0;
  readonly keys = doubles();
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
  /** the last descent: its key, its leaf, the number of that leaf's keys <= the key, and
   * whether the tree is unchanged since (then insert and remove of that key start there:
   * MAP_DMA's overlap check and UNMAP_DMA's find are the descents their change needs) */
  private curKey = 0;
  private curLeaf: Leaf<T> = this.root as Leaf<T>;
  private curPos = 0;
  private curValid = false;

  get size(): number {
    return this.n;
  }

  /** Descend to the leaf where key k belongs, recording the path and the cursor. */
  private descend(k: number): void {
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
    const leaf = node as Leaf<T>;
    const keys = leaf.keys;
    const n = leaf.n;
    let j = 0;
    while (j < n && keys[j]! <= k) j++;
    this.curKey = k;
    this.curLeaf = leaf;
    this.curPos = j;
    this.curValid = true;
  }

  /** The cursor for key k: the last descent's when it was for k and nothing changed since. */
  private seek(k: number): void {
    if (!this.curValid || this.curKey !== k) this.descend(k);
  }

  /** The mapping with the greatest pfn <= k. */
  floor(k: number): T | null {
    this.seek(k);
    const leaf = this.curLeaf;
    const j = this.curPos;
    if (j > 0) return leaf.items[j - 1]!;
    const p = leaf.prev;
    return p ? p.items[p.n - 1]! : null;
  }

  /** The mapping with the smallest pfn >= k. */
  ceil(k: number): T | null {
    this.seek(k);
    const leaf = this.curLeaf;
    const j = this.curPos;
    if (j > 0 && leaf.keys[j - 1] === k) return leaf.items[j - 1]!;
    if (j < leaf.n) return leaf.items[j]!;
    const nx = leaf.next;
    return nx ? nx.items[0]! : null;
  }

  /** The mapping containing page k, or null. */
  find(k: number): T | null {
    this.seek(k);
    const leaf = this.curLeaf;
    const j = this.curPos;
    if (j > 0) return leaf.lasts[j - 1]! >= k ? leaf.items[j - 1]! : null;
    const p = leaf.prev;
    return p && p.lasts[p.n - 1]! >= k ? p.items[p.n - 1]! : null;
  }

  /** The lowest mapping overlapping pages [first, last], or null (vfio_find_dma()'s question,
   * answered with the lowest): the one holding `first`, else the one after it if it starts
   * by `last`. One descent; the leaf's own numbers answer a hole. */
  firstOverlap(first: number, last: number): T | null {
    this.seek(first);
    const leaf = this.curLeaf;
    const j = this.curPos;
    if (j > 0) {
      if (leaf.lasts[j - 1]! >= first) return leaf.items[j - 1]!;
    } else {
      const p = leaf.prev;
      if (p && p.lasts[p.n - 1]! >= first) return p.items[p.n - 1]!;
    }
    if (j < leaf.n) return leaf.keys[j]! <= last ? leaf.items[j]! : null;
    const nx = leaf.next;
    return nx && nx.keys[0]! <= last ? nx.items[0]! : null;
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
    this.seek(k);
    const leaf = this.curLeaf;
    const j = this.curPos;
    this.curValid = false;
    this.n++;
    if (leaf.n < K) {
      leafPut(leaf, j, item);
      return;
    }
    // split: the upper half moves to a new leaf on the right, linked in after this one
    const right = new Leaf<T>();
    for (let i = HALF; i < K; i++) {
      right.keys[i - HALF] = leaf.keys[i]!;
      right.lasts[i - HALF] = leaf.lasts[i]!;
      right.items[i - HALF] = leaf.items[i];
      leaf.items[i] = undefined;
    }
    right.n = K - HALF;
    leaf.n = HALF;
    right.next = leaf.next;
    if (right.next) right.next.prev = right;
    right.prev = leaf;
    leaf.next = right;
    if (j <= HALF) leafPut(leaf, j, item);
    else leafPut(right, j - HALF, item);
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
    this.seek(k);
    const leaf = this.curLeaf;
    const j = this.curPos - 1;
    if (j < 0 || leaf.keys[j] !== k || leaf.items[j] !== item) return false;
    this.curValid = false;
    for (let i = j + 1; i < leaf.n; i++) {
      leaf.keys[i - 1] = leaf.keys[i]!;
      leaf.lasts[i - 1] = leaf.lasts[i]!;
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

function leafPut<T extends PfnRange>(leaf: Leaf<T>, j: number, item: T): void {
  for (let i = leaf.n; i > j; i--) {
    leaf.keys[i] = leaf.keys[i - 1]!;
    leaf.lasts[i] = leaf.lasts[i - 1]!;
    leaf.items[i] = leaf.items[i - 1];
  }
  leaf.keys[j] = item.pfn;
  leaf.lasts[j] = item.lastPfn;
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
