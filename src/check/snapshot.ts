// A snapshot of a built world, restored in place before each explorer execution instead of
// building the twin again (docs/explorer.md, "Snapshot").
//
// The snapshot walks every object reachable from its roots (the kernel, the world's
// threads) and records each one's own fields, array elements, Map and Set entries and bytes,
// plus the side-table entries (src/kernel/side_table.ts) of every object it reached. Restoring
// writes those values back into the *same* objects: the world's thread closures, which hold
// the kernel, its processes and the setup's fds, stay valid, and whatever an execution
// allocated is unreachable again afterwards. Side-table set/delete are journaled while the
// snapshot is active and undone newest first; the Maps and Sets are put back only when their
// journal (./collection_journal.ts) saw them change; a poisoned object (kref.ts) gets its
// fields back as plain data properties.
//
// What a walk cannot see it refuses: an accessor or a read-only field it would have to
// restore, a plain WeakMap/WeakSet/WeakRef, a Promise. take() then throws and the explorer
// rebuilds the world per execution as before. State kept only in a closure's variables is
// invisible to it: the model keeps its state in objects (the side tables for per-object
// state), and test/check/snapshot.test.ts checks every world of worlds.ts: a restored world
// has the digest it had when the snapshot was taken, and the search with the snapshot finds
// exactly what it finds rebuilding the world per execution.

import type { Kernel } from "../kernel/kernel.js";
import {
  moduleSideTables,
  ownedSideTables,
  setSideJournal,
  SideSet,
  SideTable,
  undoSideJournal,
} from "../kernel/side_table.js";
import { builtin, collectionJournal, journalCollection, setCollectionJournal } from "./collection_journal.js";

const PLAIN = 0;
const ARRAY = 1;
const MAP = 2;
const SET = 3;
const BYTES = 4;
/** reached, but nothing of its own to restore (frozen, or a side table: journaled) */
const NONE = 5;
const SPARSE = 6;
/** a hole of a sparse array */
const HOLE = Symbol("hole");

type Side = SideTable<object, unknown> | SideSet<object>;

const { mapSet, mapDelete, mapClear, setAdd, setDelete, setClear } = builtin;

export class Unsnapshotable extends Error {}

export class WorldSnapshot {
  private readonly objs: object[] = [];
  private readonly kinds: number[] = [];
  /** own writable fields of each object (PLAIN, and the fields of a Map/Set subclass) */
  private readonly keys: PropertyKey[][] = [];
  private readonly vals: unknown[][] = [];
  /** ARRAY: the elements; SPARSE: the elements or HOLE; MAP: key, value, ...; SET: the values; BYTES: [view, copy] */
  private readonly items: unknown[][] = [];
  private readonly index = new Map<object, number>();
  /** the side tables that can hold entries of reached objects: the modules' tables and
   * those owned by a reached object (digest() names them by their place here) */
  private readonly tables: Side[];
  private readonly journal: unknown[] = [];
  /** the objects with elements, entries or bytes to restore after every execution */
  private readonly collections: number[] = [];
  /** the Maps and Sets whose changes are journaled (./collection_journal.ts): restored when
   * noted, or all of them when the journal did not cover the whole execution */
  private readonly journaled: number[] = [];
  private readonly isJournaled: boolean[] = [];
  /** the journaled collections changed since the last restore (repeats allowed) */
  private readonly changed: object[] = [];
  /** per object, the restore that last put it back (repeats in `changed` are done once) */
  private readonly restoredAt: number[] = [];
  private restores = 0;
  /** writes every recorded field back: generated for this snapshot's objects once it has
   * been restored a few times (compiling costs more than a few generic restores: a random
   * program's world, a new layout each, is restored only a handful of times) */
  private fields: ((objs: object[], vals: unknown[][]) => void) | null = null;
  private fieldRestores = 0;

  /** Walk everything reachable from `k` and `roots` now; throws Unsnapshotable. */
  constructor(
    private readonly k: Kernel,
    roots: readonly unknown[] = [],
  ) {
    const tables = (this.tables = [...moduleSideTables()]);
    const stack: unknown[] = [k, ...roots];
    const objs = this.objs;
    // the side-table entries of what was reached: their values are reached too. A table
    // found late (its owner reached late) is read for the objects reached before it.
    let owners = 0;
    let scannedObjs = 0;
    let scannedTables = 0;
    for (;;) {
      while (stack.length > 0) this.visit(stack.pop(), stack);
      for (; owners < objs.length; owners++) {
        const own = ownedSideTables(objs[owners]!);
        if (own) for (const t of own) tables.push(t);
      }
      if (scannedObjs === objs.length && scannedTables === tables.length) break;
      for (let t = scannedTables; t < tables.length; t++)
        for (let i = 0; i < scannedObjs; i++) sideEntry(tables[t]!, objs[i]!, stack);
      for (let i = scannedObjs; i < objs.length; i++) for (const t of tables) sideEntry(t, objs[i]!, stack);
      scannedObjs = objs.length;
      scannedTables = tables.length;
    }
    for (let i = 0; i < this.kinds.length; i++) {
      if (this.isJournaled[i] === true) this.journaled.push(i);
      else if (this.kinds[i] !== PLAIN && this.kinds[i] !== NONE && !this.aliased(i)) this.collections.push(i);
    }
  }

  /** bytes object i views exactly the bytes of one restored before it (a page's array and its
   * DataView): one copy puts both back */
  private aliased(i: number): boolean {
    if (this.kinds[i] !== BYTES) return false;
    const v = this.items[i]![0] as Uint8Array;
    for (const j of this.collections) {
      if (this.kinds[j] !== BYTES) continue;
      const w = this.items[j]![0] as Uint8Array;
      if (w.buffer === v.buffer && w.byteOffset === v.byteOffset && w.byteLength === v.byteLength) return true;
    }
    return false;
  }

  /** objects the snapshot restores */
  get size(): number {
    return this.objs.length;
  }

  private visit(o: unknown, stack: unknown[]): void {
    if (o === null || typeof o !== "object" || this.index.has(o)) return;
    const i = this.objs.length;
    this.index.set(o, i);
    this.objs.push(o);
    this.keys.push([]);
    this.vals.push([]);
    this.items.push([]);
    if (o instanceof SideTable || o instanceof SideSet) {
      this.kinds.push(NONE);
      return;
    }
    if (o instanceof WeakMap || o instanceof WeakSet || o instanceof WeakRef || o instanceof Promise)
      throw new Unsnapshotable(`a ${o.constructor.name} is reachable: its contents cannot be walked`);
    if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer) {
      const view = o instanceof ArrayBuffer ? new Uint8Array(o) : new Uint8Array(o.buffer, o.byteOffset, o.byteLength);
      this.kinds.push(BYTES);
      this.items[i] = [view, view.slice()];
      return;
    }
    if (Array.isArray(o)) {
      const n = Object.keys(o).length;
      if (n === o.length) {
        this.kinds.push(ARRAY);
        this.items[i] = o.slice();
        for (const x of o) stack.push(x);
        return;
      }
      // a sparse array (a page table's entries): holes stay holes
      const it: unknown[] = [];
      let present = 0;
      for (let j = 0; j < o.length; j++) {
        if (j in o) {
          it.push(o[j]);
          stack.push(o[j]);
          present++;
        } else it.push(HOLE);
      }
      if (present !== n) throw new Unsnapshotable("an array with fields besides its elements");
      this.kinds.push(SPARSE);
      this.items[i] = it;
      return;
    }
    if (Object.isFrozen(o)) {
      this.kinds.push(NONE);
      for (const key of Object.keys(o)) stack.push((o as Record<string, unknown>)[key]);
      return;
    }
    const items: unknown[] = [];
    if (o instanceof Map) {
      this.kinds.push(MAP);
      for (const [a, b] of o) {
        items.push(a, b);
        stack.push(a, b);
      }
      this.isJournaled[i] = journalCollection(o);
    } else if (o instanceof Set) {
      this.kinds.push(SET);
      for (const a of o) {
        items.push(a);
        stack.push(a);
      }
      this.isJournaled[i] = journalCollection(o);
    } else this.kinds.push(PLAIN);
    this.items[i] = items;
    const keys: PropertyKey[] = [];
    const vals: unknown[] = [];
    for (const key of Reflect.ownKeys(o)) {
      const d = Object.getOwnPropertyDescriptor(o, key)!;
      const what = () => `${o.constructor?.name ?? "object"}.${String(key)}`;
      if (d.get || d.set) throw new Unsnapshotable(`${what()} is an accessor`);
      stack.push(d.value);
      if (!d.writable) {
        if (d.configurable) throw new Unsnapshotable(`${what()} is read-only`);
        continue; // never changes
      }
      keys.push(key);
      vals.push(d.value);
    }
    this.keys[i] = keys;
    this.vals[i] = vals;
    // an execution cannot add a field the restore would not know to remove: adding one
    // throws (an oops at that step, which the search reports), never a silent divergence
    Object.preventExtensions(o);
  }

  /** Put every reached object back as it was when the snapshot was taken, and journal the
   * side tables and the Maps and Sets from now on (until release()). */
  restore(): void {
    // the journal covered everything since the last restore only if no other snapshot took
    // it over and release() did not stop it
    const tracked = collectionJournal() === this.changed;
    setCollectionJournal(null);
    undoSideJournal(this.journal);
    // released objects the last execution poisoned: their fields are data properties again
    for (const p of this.k.poisoned) {
      const i = this.index.get(p);
      if (i === undefined) continue;
      const ks = this.keys[i]!;
      const vs = this.vals[i]!;
      for (let j = 0; j < ks.length; j++) {
        if (Object.getOwnPropertyDescriptor(p, ks[j]!)?.get === undefined) continue;
        Object.defineProperty(p, ks[j]!, { value: vs[j], writable: true, enumerable: true, configurable: true });
      }
    }
    if (this.fields === null && ++this.fieldRestores > COMPILE_AFTER) this.fields = compileFields(this.keys);
    if (this.fields !== null) this.fields(this.objs, this.vals);
    else restoreFields(this.objs, this.keys, this.vals);
    const { objs, kinds, items } = this;
    for (const i of this.collections) {
      const kind = kinds[i]!;
      const o = objs[i]!;
      const it = items[i]!;
      if (kind === ARRAY) {
        const a = o as unknown[];
        if (a.length !== it.length) a.length = it.length;
        for (let j = 0; j < it.length; j++) if (a[j] !== it[j]) a[j] = it[j];
      } else if (kind === SPARSE) {
        const a = o as unknown[];
        if (a.length !== it.length) a.length = it.length;
        for (let j = 0; j < it.length; j++) {
          if (it[j] === HOLE) {
            if (j in a) delete a[j];
          } else if (a[j] !== it[j]) a[j] = it[j];
        }
      } else if (kind === BYTES) (it[0] as Uint8Array).set(it[1] as Uint8Array);
      else if (kind === MAP) restoreMap(o as Map<unknown, unknown>, it);
      else restoreSet(o as Set<unknown>, it);
    }
    this.restoreJournaled(tracked);
    setSideJournal(this.journal);
    setCollectionJournal(this.changed);
  }

  /** the journaled Maps and Sets: those noted as changed, or every one when untracked */
  private restoreJournaled(tracked: boolean): void {
    const { objs, kinds, items, changed, restoredAt } = this;
    const n = ++this.restores;
    if (tracked) {
      for (let c = 0; c < changed.length; c++) {
        // a collection of another snapshot's world (journaled by it, changed while this
        // journal was active) is not this snapshot's to restore
        const i = this.index.get(changed[c]!);
        if (i === undefined || restoredAt[i] === n) continue;
        restoredAt[i] = n;
        if (kinds[i] === MAP) restoreMap(objs[i] as Map<unknown, unknown>, items[i]!);
        else restoreSet(objs[i] as Set<unknown>, items[i]!);
      }
    } else
      for (const i of this.journaled) {
        if (kinds[i] === MAP) restoreMap(objs[i] as Map<unknown, unknown>, items[i]!);
        else restoreSet(objs[i] as Set<unknown>, items[i]!);
      }
    changed.length = 0;
  }

  /** Stop journaling (the search is over); restore() starts it again. */
  release(): void {
    setSideJournal(null);
    setCollectionJournal(null);
    this.journal.length = 0;
    this.changed.length = 0;
  }

  /**
   * A canonical text of everything the snapshot covers as it is now: each object in walk
   * order with its constructor, fields, elements, entries and side-table entries, objects
   * named by walk order. Equal digests: the same state, up to object identity of what an
   * execution allocated.
   */
  digest(): string {
    const ids = new Map<unknown, number>();
    const fns = new Map<unknown, number>();
    const val = (v: unknown): string => {
      if (typeof v === "bigint") return `${v}n`;
      if (typeof v === "string") return JSON.stringify(v);
      if (typeof v === "function") {
        if (!fns.has(v)) fns.set(v, fns.size);
        return `fn${fns.get(v)}:${(v as { name: string }).name}`;
      }
      if (v === null || typeof v !== "object") return String(v);
      let id = ids.get(v);
      if (id === undefined) {
        id = ids.size;
        ids.set(v, id);
        queue.push(v);
      }
      return `#${id}`;
    };
    const queue: object[] = [];
    const lines: string[] = [];
    val(this.k);
    for (let q = 0; q < queue.length; q++) {
      const o = queue[q]!;
      let s = `#${q} ${o.constructor?.name ?? "null"}`;
      if (ArrayBuffer.isView(o)) s += ` bytes ${Buffer.from(o.buffer, o.byteOffset, o.byteLength).toString("hex")}`;
      else if (o instanceof ArrayBuffer) s += ` bytes ${Buffer.from(o).toString("hex")}`;
      else {
        if (o instanceof Map) for (const [a, b] of o) s += ` [${val(a)}]=${val(b)}`;
        if (o instanceof Set) for (const a of o) s += ` {${val(a)}}`;
        for (const key of Reflect.ownKeys(o)) {
          const d = Object.getOwnPropertyDescriptor(o, key)!;
          s += d.get || d.set ? ` ${String(key)}:accessor` : ` ${String(key)}=${val(d.value)}`;
        }
      }
      for (let t = 0; t < this.tables.length; t++) {
        const table = this.tables[t]!;
        if (table.has(o)) s += ` side${t}=${table instanceof SideTable ? val(table.get(o)) : "member"}`;
      }
      lines.push(s);
    }
    return lines.join("\n");
  }
}

/** a side-table entry of a reached object: its value is reached too */
function sideEntry(t: Side, o: object, stack: unknown[]): void {
  if (t instanceof SideTable && t.has(o)) stack.push(t.get(o));
}

// The walks over a Map's or Set's entries use forEach with these module-level callbacks and
// scratch state: no iterator and no [key, value] pair is allocated per entry.
/** the saved entries being compared, the position in them, whether all matched so far */
let cmpIt: unknown[] = [];
let cmpJ = 0;
let cmpSame = true;
/** keys an execution added (scratch, reused) */
const extra: unknown[] = [];

function sameEntry(v: unknown, k: unknown): void {
  if (cmpSame && (k !== cmpIt[cmpJ] || v !== cmpIt[cmpJ + 1])) cmpSame = false;
  cmpJ += 2;
}
let nExtra = 0;
function matchKey(_v: unknown, k: unknown): void {
  if (cmpJ < cmpIt.length && k === cmpIt[cmpJ]) cmpJ += 2;
  else extra[nExtra++] = k;
}
function matchMember(k: unknown): void {
  if (cmpJ < cmpIt.length && k === cmpIt[cmpJ]) cmpJ++;
  else extra[nExtra++] = k;
}

/**
 * Put a Map's entries back in their order. The common case keeps the saved keys in order
 * with values changed and new keys added: fix the values in place and delete the added keys.
 * When a saved key is missing or moved, clear and refill.
 */
function restoreMap(m: Map<unknown, unknown>, it: unknown[]): void {
  const n = it.length;
  cmpIt = it;
  if (m.size === n >>> 1) {
    cmpJ = 0;
    cmpSame = true;
    m.forEach(sameEntry);
    if (cmpSame) return;
  }
  cmpJ = 0;
  nExtra = 0;
  m.forEach(matchKey);
  if (cmpJ === n) {
    // every saved key is there in its order, and the others were added
    for (let i = 0; i < nExtra; i++) mapDelete.call(m, extra[i]);
    for (let i = 0; i < n; i += 2) if (m.get(it[i]) !== it[i + 1]) mapSet.call(m, it[i], it[i + 1]);
  } else {
    mapClear.call(m);
    for (let i = 0; i < n; i += 2) mapSet.call(m, it[i], it[i + 1]);
  }
  extra.fill(undefined, 0, nExtra); // hold no key of the execution
}

function restoreSet(s: Set<unknown>, it: unknown[]): void {
  cmpIt = it;
  cmpJ = 0;
  nExtra = 0;
  s.forEach(matchMember);
  if (cmpJ === it.length) {
    for (let i = 0; i < nExtra; i++) setDelete.call(s, extra[i]);
  } else {
    setClear.call(s);
    for (let i = 0; i < it.length; i++) setAdd.call(s, it[i]);
  }
  extra.fill(undefined, 0, nExtra);
}

/** restores a snapshot gets with the generic field loop before its code is generated */
const COMPILE_AFTER = 50;

/** The field restore by a keyed loop (before a snapshot's code is generated). */
function restoreFields(objs: object[], keys: PropertyKey[][], vals: unknown[][]): void {
  for (let i = 0; i < keys.length; i++) {
    const ks = keys[i]!;
    if (ks.length === 0) continue;
    const o = objs[i] as Record<PropertyKey, unknown>;
    const v = vals[i]!;
    for (let j = 0; j < ks.length; j++) if (o[ks[j]!] !== v[j]) o[ks[j]!] = v[j];
  }
}

type FieldsFn = (o: object[], v: unknown[][], k: PropertyKey[][]) => void;

/** the generated functions by their text: every snapshot of the same world has the same
 * fields, and reusing the function keeps its type feedback and optimized code warm from one
 * search to the next (a new function would start cold in the interpreter every search) */
const compiled = new Map<string, FieldsFn>();

const IDENT = /^[A-Za-z_$][\w$]*$/;

/**
 * The field restore as straight-line code, one compare-and-write per recorded field with the
 * field's name in the code: each access site sees one object, so it is a monomorphic load
 * and store instead of a keyed lookup by a name read from an array (three times faster on
 * the vfio-four world). Names that are not identifiers (and symbols) go through the array.
 */
function compileFields(keys: PropertyKey[][]): (objs: object[], vals: unknown[][]) => void {
  const chunks: string[] = [];
  // the lines of a chunk, joined once: a text built by += is a rope of a thousand pieces,
  // which the cache lookup below would flatten before hashing it
  let body: string[] = [];
  let lines = 0;
  for (let i = 0; i < keys.length; i++) {
    const ks = keys[i]!;
    if (ks.length === 0) continue;
    body.push(`o = O[${i}]; v = V[${i}];\n`);
    for (let j = 0; j < ks.length; j++) {
      const k = ks[j]!;
      const at = typeof k === "string" && IDENT.test(k) ? `.${k}` : `[K[${i}][${j}]]`;
      body.push(`if (o${at} !== v[${j}]) o${at} = v[${j}];\n`);
    }
    // V8 optimizes functions up to a size: a few hundred fields per function
    if ((lines += ks.length) >= 400) {
      chunks.push(body.join(""));
      body = [];
      lines = 0;
    }
  }
  chunks.push(body.join(""));
  const fns = chunks.map((b) => {
    let f = compiled.get(b);
    if (f === undefined) {
      if (compiled.size >= 256) compiled.clear();
      compiled.set(b, (f = new Function("O", "V", "K", `let o, v;\n${b}`) as FieldsFn));
    }
    return f;
  });
  return (objs, vals) => {
    for (const f of fns) f(objs, vals, keys);
  };
}
