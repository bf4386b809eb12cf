// iommufd objects and the per-fd id table (drivers/iommu/iommufd/main.c).
//
// Life of an object: alloc() reserves the lowest free id (the xarray's XA_ZERO_ENTRY: the id
// is taken but lookups miss it) and gives the creator its "init" reference; finalize()
// publishes it (the reference becomes the table's, holder "xarray"); abort() frees the id
// and destroys it when creation fails after alloc. Ids start at 1 and are reused lowest
// first (xa_alloc with XA_FLAGS_ALLOC1), up to 2^31 - 1 (xa_limit_31b).
//
// `refs` is the kernel's `users`: 1 = only the table holds it. Objects that depend on
// another take a named reference on it (an HWPT holds its IOAS, a device attachment holds
// its HWPT), so DESTROY of a referenced object is EBUSY (iommufd_object_remove()); a lookup
// inside an ioctl takes an unnamed short-term reference, as iommufd_get_object() does.
// Closing the fd destroys leaves first, pass after pass (iommufd_fops_release()).

import { EBUSY, ENOENT, ENOMEM, ENOSPC } from "../uapi/errno.js";
import { shouldFail } from "./fail_nth.js";
import type { Kernel } from "../kernel/kernel.js";
import { RefCounted } from "../kernel/kref.js";

export type IommufdObjType = "device" | "hwpt_paging" | "hwpt_nested" | "ioas" | "access" | "fault" | "selftest";

export const TABLE_HOLDER = "xarray";
const XA_LIMIT_31B = 0x7fffffff;

export abstract class IommufdObject extends RefCounted {
  id = 0;
  /** set by abort(): release runs abortObj() instead of destroyObj() */
  private aborted = false;
  /** set when alloc() failed: nothing was initialized, release does nothing (kfree) */
  private discarded = false;
  /** between alloc() and finalize()/abort(): the task making it (null once published) */
  creator: object | null = null;
  /** out of the table by unpublish(), being destroyed: the kernel's users count is 0, so
   * iommufd_lock_obj() fails on it */
  unpublished = false;

  constructor(
    k: Kernel,
    readonly type: IommufdObjType,
    /** the owning context's serial, for reports */
    readonly ctxName: string,
  ) {
    super(k, `iommufd_${type}`);
  }

  protected override poisonable(): boolean {
    return true;
  }

  describe(): string {
    return `iommufd ${this.type} ${this.id} of ${this.ctxName}`;
  }

  /** the per-type destroy (iommufd_object_ops[type].destroy): never fails */
  protected abstract destroyObj(): void;
  /** the per-type abort; the default is destroy */
  protected abortObj(): void {
    this.destroyObj();
  }

  markAborted(): void {
    this.aborted = true;
  }

  /** Free an object whose id allocation failed: the creator's reference goes, no destroy. */
  discard(): void {
    this.discarded = true;
    this.put("init");
  }

  protected release(): void {
    if (this.discarded) return;
    if (this.aborted) this.abortObj();
    else this.destroyObj();
  }
}

/** A min-heap of free ids below `next`. */
class IdHeap {
  private readonly a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(v: number): void {
    const a = this.a;
    let i = a.length;
    a.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= v) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]! < a[l]! ? r : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

export class ObjectTable {
  /** id -> object; null is a reserved id whose object is not finalized yet */
  private readonly slots = new Map<number, IommufdObject | null>();
  private readonly free = new IdHeap();
  private next = 1;

  get size(): number {
    return this.slots.size;
  }

  /** _iommufd_object_alloc()'s xa_alloc: the lowest free id, reserved. On failure the
   * object is discarded (its creator's reference dropped without a destroy). */
  alloc(obj: IommufdObject): number {
    if (shouldFail()) {
      obj.discard(); // kzalloc / xa_alloc
      return -ENOMEM;
    }
    let id: number;
    if (this.free.size > 0) id = this.free.pop();
    else {
      if (this.next > XA_LIMIT_31B) {
        obj.discard();
        return -ENOSPC;
      }
      id = this.next++;
    }
    obj.id = id;
    obj.creator = obj.k.current ?? obj.k.kthread;
    this.slots.set(id, null);
    return 0;
  }

  /** iommufd_object_finalize(): visible to lookups; the creator's reference becomes the table's. */
  finalize(obj: IommufdObject): void {
    obj.creator = null;
    this.slots.set(obj.id, obj);
    obj.handOver("init", TABLE_HOLDER);
  }

  /** iommufd_object_abort_and_destroy(): undo alloc() for an object never finalized. */
  abort(obj: IommufdObject): void {
    obj.creator = null;
    this.erase(obj.id);
    obj.markAborted();
    obj.put("init");
  }

  private erase(id: number): void {
    this.slots.delete(id);
    this.free.push(id);
  }

  /** iommufd_get_object(): typed lookup with a short-term reference, or null (ENOENT). */
  get<T extends IommufdObject>(id: number, type?: IommufdObjType | readonly IommufdObjType[]): T | null {
    if (shouldFail()) return null; // iommufd_should_fail() in iommufd_get_object()
    const o = this.slots.get(id);
    if (!o) return null;
    if (type !== undefined && (typeof type === "string" ? o.type !== type : !type.includes(o.type))) return null;
    o.get();
    return o as T;
  }

  /**
   * iommufd_lock_obj() of an object found through a kernel list rather than the table (an
   * automatic HWPT on its IOAS's hwpt_list): a short-term reference. Until it is finalized
   * an object belongs to the task making it (_iommufd_object_alloc(): "the caller must
   * complete all errorable operations before calling iommufd_object_finalize()"), which may
   * still abort and free it; another task reaching it is a kernel bug, reported here.
   */
  lockObj(o: IommufdObject): boolean {
    if (o.unpublished || o.dead) return false; // refcount_inc_not_zero(&obj->users) fails
    const k = o.k;
    if (o.creator !== null && o.creator !== (k.current ?? k.kthread))
      k.bug("iommufd", `${o.describe()} reached before its creator finalized it (it may still be aborted)`);
    o.get();
    return true;
  }

  /** Take a published object out of the table without dropping the table's reference:
   * the caller destroys it (a HWPT's destroy takes locks, ./hw_pagetable.ts). ENOENT
   * unknown or reserved, EBUSY in use. */
  unpublish(id: number): IommufdObject | number {
    const o = this.slots.get(id);
    if (!o) return -ENOENT;
    if (o.refs !== 1) return -EBUSY;
    this.erase(id);
    o.unpublished = true;
    return o;
  }

  /** Peek without a reference (invariant checks, reports). */
  peek(id: number): IommufdObject | null {
    return this.slots.get(id) ?? null;
  }

  /** iommufd_object_remove() for DESTROY: ENOENT unknown/reserved, EBUSY in use. */
  remove(id: number): number {
    const o = this.slots.get(id);
    if (!o) return -ENOENT;
    if (o.refs !== 1) return -EBUSY;
    this.erase(id);
    o.put(TABLE_HOLDER);
    return 0;
  }

  /** Remove an object the kernel itself destroys (an auto-created HWPT), if only the table holds it. */
  removeIfUnused(o: IommufdObject): boolean {
    if (this.slots.get(o.id) !== o || o.refs !== 1) return false;
    this.erase(o.id);
    o.put(TABLE_HOLDER);
    return true;
  }

  /** Every finalized object, ascending by id. */
  objects(): IommufdObject[] {
    const out: IommufdObject[] = [];
    for (const [id, o] of [...this.slots].sort((a, b) => a[0] - b[0])) if (o) out[out.length] = o ?? id;
    return out;
  }

  isEmpty(): boolean {
    return this.slots.size === 0;
  }

  /** iommufd_fops_release(): destroy every object only the table holds, until none is left.
   * Returns the objects that could not be destroyed (a refcount bug) */
  destroyAll(): IommufdObject[] {
    while (this.slots.size > 0) {
      let destroyed = 0;
      for (const o of this.objects()) {
        if (o.refs !== 1) continue;
        this.slots.delete(o.id);
        o.put(TABLE_HOLDER);
        destroyed++;
      }
      if (destroyed === 0) return this.objects();
    }
    return [];
  }
}
