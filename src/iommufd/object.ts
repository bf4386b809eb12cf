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
// inside an ioctl takes an unnamed short-term reference, as iommufd_get_object() does: it
// counts in `users` and in `shortterm` (shortterm_users, biased by 1 while the table holds
// the object). Closing the fd destroys leaves first, pass after pass (iommufd_fops_release()).
//
// Locks: the table's xa_lock (a spinlock: nothing sleeps under it) is taken by lookups,
// finalize, abort and remove (main.c:136, 194). IOMMU_DESTROY, having erased the id, waits
// on the context's destroy_wait for the short-term users still putting the object
// (iommufd_object_dec_wait_shortterm(), main.c:145): a put drops `users` first, then
// `shortterm`, and a DESTROY may run between the two (iommufdPutObject).

import { EBUSY, ENOENT, ENOMEM, ENOSPC } from "../uapi/errno.js";
import { shouldFail } from "./fail_nth.js";
import type { Kernel } from "../kernel/kernel.js";
import { RefCounted } from "../kernel/kref.js";
import { SpinLock } from "../kernel/locks.js";
import type { KGen, KRet, Waitable } from "../kernel/sched.js";

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
  /** shortterm_users: the table's bias (1) plus every short-term reference (an unnamed
   * get(), iommufd_get_object()/iommufd_lock_obj()) */
  shortterm = 1;

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

  /** an unnamed get is a short-term user: it counts in users and in shortterm_users */
  override get(holder?: string): this {
    super.get(holder);
    if (holder === undefined) this.shortterm++;
    return this;
  }

  /** an unnamed put is iommufd_put_object() with nothing between its two decrements (the
   * generator iommufdPutObject() is the preemptible one) */
  override put(holder?: string): void {
    if (holder === undefined && !this.dead) this.shortterm--;
    super.put(holder);
  }

  /** iommufd_put_object()'s first half: refcount_dec(&obj->users) */
  putUsers(): void {
    super.put();
  }

  /** its second half: refcount_dec_and_test(&obj->shortterm_users), waking destroy_wait (a
   * DESTROY waiting for it reads the count: a touch of the object in the step's footprint) */
  putShortterm(): void {
    this.k.footprint?.touched.push(this);
    this.shortterm--;
  }

  /** the part of the type's destroy that takes sleeping locks, as a path (an access leaving
   * its IOAS), or null: the table runs it before its last put (IOMMU_DESTROY,
   * iommufd_object_destroy_user()); other routes leave it to destroyObj() */
  beforeDestroy(): KRet<void> | null {
    return null;
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
  /** ictx->objects' xa_lock. Not in step footprints: the table records its own reads and
   * writes (xaRead/xaWrite), so two lookups commute and a lookup and a remove do not. */
  private readonly xa: SpinLock;
  /** ictx->destroy_wait's name (the yield point of a DESTROY waiting on it) */
  private readonly waitAt: string;

  constructor(k: Kernel, ctxName: string) {
    this.xa = new SpinLock(k, "iommufd_ctx.objects.xa_lock", `objects xa_lock of ${ctxName}`, false);
    this.waitAt = `wait_event(destroy_wait of ${ctxName})`;
  }

  get size(): number {
    return this.slots.size;
  }

  /**
   * xa_lock(&ictx->objects). Nothing sleeps or takes a lock under it, so with no lock held
   * and no explorer step recording, taking it has nothing to show (no lockdep edge, no
   * footprint, no sleeping-while-atomic) and the sequential path skips it: true when taken.
   */
  private xaLock(): boolean {
    const k = this.xa.k;
    if (k.footprint === null && (k.current ?? k.kthread).held.length === 0) return false;
    this.xa.lock();
    return true;
  }

  /** a lookup under the lock: reads the table (commutes with other lookups) */
  private xaRead(): void {
    this.xa.k.footprint?.touched.push(this);
  }

  /** a change of the table, or of `o`'s counts decided under the lock: conflicts with
   * every lookup and every other change */
  private xaWrite(o?: IommufdObject): void {
    const fp = this.xa.k.footprint;
    if (fp === null) return;
    fp.released.push(this);
    if (o) fp.released.push(o);
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
    const locked = this.xaLock();
    this.xaWrite();
    obj.id = id;
    obj.creator = obj.k.current ?? obj.k.kthread;
    this.slots.set(id, null);
    if (locked) this.xa.unlock();
    return 0;
  }

  /** iommufd_object_finalize(): visible to lookups; the creator's reference becomes the table's. */
  finalize(obj: IommufdObject): void {
    const locked = this.xaLock(); // xa_store (main.c:79)
    this.xaWrite();
    obj.creator = null;
    this.slots.set(obj.id, obj);
    if (locked) this.xa.unlock();
    obj.handOver("init", TABLE_HOLDER);
  }

  /** iommufd_object_abort_and_destroy(): undo alloc() for an object never finalized. */
  abort(obj: IommufdObject): void {
    obj.creator = null;
    const locked = this.xaLock(); // xa_erase (main.c:90)
    this.xaWrite();
    this.erase(obj.id);
    if (locked) this.xa.unlock();
    obj.markAborted();
    obj.put("init");
  }

  private erase(id: number): void {
    this.slots.delete(id);
    this.free.push(id);
  }

  /** iommufd_get_object() (main.c:128): typed lookup with a short-term reference (users and
   * shortterm_users), or null (ENOENT). */
  get<T extends IommufdObject>(id: number, type?: IommufdObjType | readonly IommufdObjType[]): T | null {
    if (shouldFail()) return null; // iommufd_should_fail() in iommufd_get_object()
    const k = this.xa.k;
    // the sequential path with no lock held: xa_lock has nothing to show (xaLock())
    if (k.footprint !== null || (k.current ?? k.kthread).held.length !== 0) return this.getLocked<T>(id, type);
    return this.lookup<T>(id, type);
  }

  private getLocked<T extends IommufdObject>(id: number, type?: IommufdObjType | readonly IommufdObjType[]): T | null {
    this.xa.lock();
    this.xaRead();
    const r = this.lookup<T>(id, type);
    this.xa.unlock();
    return r;
  }

  /** xa_load() and iommufd_lock_obj() under the lock */
  private lookup<T extends IommufdObject>(id: number, type?: IommufdObjType | readonly IommufdObjType[]): T | null {
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
    const locked = this.xaLock();
    const r = this.unlink(id);
    if (locked) this.xa.unlock();
    return r;
  }

  /** under xa_lock: the object out of the table if only the table holds it
   * (refcount_dec_if_one(&obj->users), main.c:208), else -ENOENT / -EBUSY */
  private unlink(id: number): IommufdObject | number {
    const o = this.slots.get(id);
    this.xaWrite(o ?? undefined);
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

  /**
   * iommufd_object_remove(ictx, NULL, id, 0) for IOMMU_DESTROY (main.c:166): the id erased
   * under xa_lock if only the table holds the object (ENOENT unknown or reserved, EBUSY in
   * use); then the table's short-term bias dropped and, while a short-term user is still
   * between the two halves of its put, a wait on destroy_wait; then the destroy.
   */
  *remove(id: number): KGen<number> {
    const locked = this.xaLock();
    const o = this.unlink(id);
    if (locked) this.xa.unlock();
    if (typeof o === "number") return o;
    // broken variant "iommufd-shortterm-put-early" (before 6f9c4d8c468c there was no
    // shortterm_users): the object is freed at once, under a user that has dropped `users`
    // and not finished its put
    yield* this.decWaitShortterm(o, o.k.broken.has("iommufd-shortterm-put-early"));
    yield* this.destroy(o);
    return 0;
  }

  /**
   * iommufd_object_dec_wait_shortterm() (main.c:145): the table's bias on shortterm_users
   * dropped, then a wait on destroy_wait until no short-term user is left (not when
   * `noWait`: the broken variant).
   */
  private *decWaitShortterm(o: IommufdObject, noWait = false): KGen<void> {
    o.shortterm--;
    if (o.shortterm === 0 || noWait) return;
    const w: Waitable = {
      name: `destroy_wait (shortterm_users of ${o.describe()})`,
      available: () => o.shortterm === 0,
    };
    while (o.shortterm !== 0) yield { kind: "block", on: w, where: this.waitAt, k: o.k };
  }

  /** iommufd_object_ops[type].destroy() and the free, for an object out of the table: the
   * type's sleeping part as a path (beforeDestroy), then the table's reference */
  private *destroy(o: IommufdObject): KGen<void> {
    const b = o.beforeDestroy();
    if (b) yield* b;
    o.put(TABLE_HOLDER);
  }

  /**
   * iommufd_object_destroy_user(): iommufd_object_remove(ictx, o, o->id,
   * REMOVE_WAIT_SHORTTERM) (iommufd_private.h:196, main.c:166) for an object a driver holds
   * under `holder` (a device's unbind, an access's destroy): wait on destroy_wait until no
   * short-term user is left (an ioctl that looked the object up), then, under xa_lock, drop
   * the driver's reference and erase the id if only the table holds it. -EBUSY when a
   * long-term user remains (a kernel bug, WARN_ON in the kernel): the driver's reference is
   * gone anyway and the object waits for the file's release.
   */
  *destroyUser(o: IommufdObject, holder: string): KGen<number> {
    o.k.footprint?.released.push(o); // shortterm_users written, read by the wait
    yield* this.decWaitShortterm(o);
    const locked = this.xaLock();
    this.xaWrite(o);
    o.put(holder);
    const ok = this.slots.get(o.id) === o && o.refs === 1;
    if (ok) {
      this.erase(o.id);
      o.unpublished = true;
    } else o.shortterm = 1; // err_xa: the table's bias restored
    if (locked) this.xa.unlock();
    if (!ok) return -EBUSY;
    yield* this.destroy(o);
    return 0;
  }

  /** Remove an object the kernel itself destroys (an auto-created HWPT), if only the table holds it. */
  removeIfUnused(o: IommufdObject): boolean {
    const locked = this.xaLock();
    this.xaWrite(o);
    const ok = this.slots.get(o.id) === o && o.refs === 1;
    if (ok) this.erase(o.id);
    if (locked) this.xa.unlock();
    if (ok) o.put(TABLE_HOLDER);
    return ok;
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

/**
 * iommufd_put_object() (iommufd_private.h:166) where a task may be preempted between its two
 * halves: `users` first, then `shortterm_users`, which a DESTROY that erased the object in
 * between waits for (ObjectTable.remove). A sequential call runs both at once.
 */
export function* iommufdPutObject(o: IommufdObject): KGen<void> {
  o.putUsers();
  yield { kind: "preempt", where: "iommufd_put_object(users dropped)" };
  o.putShortterm();
}
