// Side tables: state a subsystem keeps about another's object (the IOMMU core of a kernel,
// a VFIO device's iommufd binding, a group's PASID table) in a WeakMap or WeakSet keyed by
// that object, as Linux keeps a pointer in a private struct. The explorer's world snapshot
// (src/check/snapshot.ts) must see and undo these too: a SideTable is a WeakMap that is
// listed (weakly) so a snapshot can read the entries of the objects it walks, and that
// journals its set/delete while a snapshot's journal is active, so restoring undoes them.
// Outside the explorer the journal is null and a set costs one comparison more.

/** the active journal: flat [table, key, had, old value] records, or null */
let journal: unknown[] | null = null;

/** Journal side-table changes into `j` from now on (null: stop). */
export function setSideJournal(j: unknown[] | null): void {
  journal = j;
}

type AnySide = SideTable<object, unknown> | SideSet<object>;
const tables = new Set<WeakRef<AnySide>>();
let registered = 0;

/** list a new table; every 512, drop the dead ones (each twin makes a few tables of its
 * own: the list must not grow with the twins a long run builds) */
function register(t: AnySide): void {
  tables.add(new WeakRef(t));
  if (++registered % 512 === 0) sideTables();
}

/** The side tables alive now (dead ones are dropped from the list). */
export function sideTables(): AnySide[] {
  const out: AnySide[] = [];
  for (const r of tables) {
    const t = r.deref();
    if (t) out.push(t);
    else tables.delete(r);
  }
  return out;
}

const wmSet = WeakMap.prototype.set;
const wmDelete = WeakMap.prototype.delete;
const wsAdd = WeakSet.prototype.add;
const wsDelete = WeakSet.prototype.delete;

export class SideTable<K extends object, V> extends WeakMap<K, V> {
  constructor() {
    super();
    register(this as unknown as AnySide);
  }
  override set(key: K, value: V): this {
    if (journal !== null) journal.push(this, key, this.has(key), this.get(key));
    return wmSet.call(this, key, value) as this;
  }
  override delete(key: K): boolean {
    if (journal !== null && this.has(key)) journal.push(this, key, true, this.get(key));
    return wmDelete.call(this, key);
  }
}

export class SideSet<K extends object> extends WeakSet<K> {
  constructor() {
    super();
    register(this as unknown as AnySide);
  }
  override add(key: K): this {
    if (journal !== null && !this.has(key)) journal.push(this, key, false, undefined);
    return wsAdd.call(this, key) as this;
  }
  override delete(key: K): boolean {
    if (journal !== null && this.has(key)) journal.push(this, key, true, undefined);
    return wsDelete.call(this, key);
  }
}

/** Undo the records of `j` (newest first) and empty it. */
export function undoSideJournal(j: unknown[]): void {
  for (let i = j.length - 4; i >= 0; i -= 4) {
    const t = j[i] as AnySide;
    const key = j[i + 1] as object;
    const had = j[i + 2] as boolean;
    if (t instanceof SideTable) {
      if (had) wmSet.call(t, key, j[i + 3]);
      else wmDelete.call(t, key);
    } else if (had) wsAdd.call(t, key);
    else wsDelete.call(t, key);
  }
  j.length = 0;
}
