// Side tables: state a subsystem keeps about another's object (the IOMMU core of a kernel,
// a VFIO device's iommufd binding, a group's PASID table) in a WeakMap or WeakSet keyed by
// that object, as Linux keeps a pointer in a private struct. The explorer's world snapshot
// (src/check/snapshot.ts) must see and undo these too: a SideTable is a WeakMap that is
// listed (a module's tables for good, an instance's under the object that owns it) so a
// snapshot can read the entries of the objects it walks, and that
// journals its set/delete while a snapshot's journal is active, so restoring undoes them.
// Outside the explorer the journal is null and a set costs one comparison more.

/** the active journal: flat [table, key, had, old value] records, or null */
let journal: unknown[] | null = null;

/** Journal side-table changes into `j` from now on (null: stop). */
export function setSideJournal(j: unknown[] | null): void {
  journal = j;
}

type AnySide = SideTable<object, unknown> | SideSet<object>;
/** the tables made once at module load (one per subsystem, shared by every twin): they live
 * as long as the program, listed strongly */
const moduleTables: AnySide[] = [];
/** the tables made per instance (one per twin, or per module load), listed under the object
 * that owns them: a plain WeakMap, so the list neither keeps a table alive nor grows with
 * the twins a long run builds. (A list of WeakRefs did: every WeakRef made or dereferenced
 * keeps its table alive until the current job ends, and a synchronous loop of searches is
 * one job, so each snapshot walked the tables of every twin built before it.) */
const ownedTables = new WeakMap<object, AnySide[]>();

/** list a new table: under its owner, or as a module's table when it has none */
function register(t: AnySide, owner: object | undefined): void {
  if (owner === undefined) moduleTables.push(t);
  else {
    const list = ownedTables.get(owner);
    if (list) list.push(t);
    else ownedTables.set(owner, [t]);
  }
}

/** The tables made at module load (made without an owner). */
export function moduleSideTables(): readonly AnySide[] {
  return moduleTables;
}

/** The tables made with `owner` as their owner, if any. */
export function ownedSideTables(owner: object): readonly AnySide[] | undefined {
  return ownedTables.get(owner);
}

const wmSet = WeakMap.prototype.set;
const wmDelete = WeakMap.prototype.delete;
const wsAdd = WeakSet.prototype.add;
const wsDelete = WeakSet.prototype.delete;

/** A table made per instance names its owner (an object the instance's state is reachable
 * from, e.g. its kernel), so a snapshot that reaches the owner finds the table; a table made at
 * module load names none. */
export class SideTable<K extends object, V> extends WeakMap<K, V> {
  constructor(owner?: object) {
    super();
    register(this as unknown as AnySide, owner);
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
  constructor(owner?: object) {
    super();
    register(this as unknown as AnySide, owner);
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
