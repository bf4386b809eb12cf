// Which of a world snapshot's Maps and Sets an execution changed (src/check/snapshot.ts).
// Without a record the restore compares every entry of every Map and Set it covers after
// each execution (55 Maps and 22 Sets in the vfio-four world), although an execution changes
// a handful. A Map or Set the snapshot reaches is given a prototype whose set/delete/clear
// (add/delete/clear) note the collection in the active journal before doing what the
// built-in does; the restore then puts back only the noted ones. Outside a search the
// journal is null and a change costs one comparison more.
//
// Sound as long as every change goes through those methods: the model changes its Maps and
// Sets only by calling them (the snapshot's own restore calls the built-ins directly, so
// putting a collection back notes nothing). Only plain Maps and Sets are journaled: a
// subclass (with its own methods) is compared in full on every restore, as before. The
// constructor keeps the built-in's name, so digests and reports read the same.

const mapSet = Map.prototype.set;
const mapDelete = Map.prototype.delete;
const mapClear = Map.prototype.clear;
const setAdd = Set.prototype.add;
const setDelete = Set.prototype.delete;
const setClear = Set.prototype.clear;

/** the active journal: the collections changed since it was set (repeats allowed), or null */
let journal: object[] | null = null;

/** The active journal. */
export function collectionJournal(): object[] | null {
  return journal;
}

/** Note changes to journaled Maps and Sets into `j` from now on (null: stop). */
export function setCollectionJournal(j: object[] | null): void {
  journal = j;
}

class JournaledMap<K, V> extends Map<K, V> {
  override set(key: K, value: V): this {
    if (journal !== null) journal.push(this);
    return mapSet.call(this, key, value) as this;
  }
  override delete(key: K): boolean {
    if (journal !== null) journal.push(this);
    return mapDelete.call(this, key);
  }
  override clear(): void {
    if (journal !== null) journal.push(this);
    mapClear.call(this);
  }
}

class JournaledSet<T> extends Set<T> {
  override add(value: T): this {
    if (journal !== null) journal.push(this);
    return setAdd.call(this, value) as this;
  }
  override delete(value: T): boolean {
    if (journal !== null) journal.push(this);
    return setDelete.call(this, value);
  }
  override clear(): void {
    if (journal !== null) journal.push(this);
    setClear.call(this);
  }
}
Object.defineProperty(JournaledMap, "name", { value: "Map" });
Object.defineProperty(JournaledSet, "name", { value: "Set" });

/** Journal the changes of `c` (a Map or Set, still extensible) from now on: true, or false
 * when it is not a plain Map or Set (a subclass keeps its own methods). */
export function journalCollection(c: Map<unknown, unknown> | Set<unknown>): boolean {
  const proto: unknown = Object.getPrototypeOf(c);
  if (proto === JournaledMap.prototype || proto === JournaledSet.prototype) return true;
  if (!Object.isExtensible(c)) return false;
  if (proto === Map.prototype) Object.setPrototypeOf(c, JournaledMap.prototype);
  else if (proto === Set.prototype) Object.setPrototypeOf(c, JournaledSet.prototype);
  else return false;
  return true;
}

/** The built-in changes, which note nothing (for the restore). */
export const builtin = { mapSet, mapDelete, mapClear, setAdd, setDelete, setClear };
