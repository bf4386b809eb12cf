// Reference counts with a leak registry (include/linux/kref.h, gVisor's refs package).
// A RefCounted object starts with one reference owned by its creator, is released when the
// count reaches zero, and is then dead: any later get or put is a use after free, reported
// as a KernelBug. Each live object is in its kernel's registry until released, so a test
// can ask what is still alive (a leak) after everything was closed.
//
// Long-lived references name their holder ("fd 5 of pid 2", "kvm-vfio of vm 1"); the
// invariant checker sums holders and compares with the count. A short borrow inside one
// syscall (fdget-style) uses get()/put() without a holder name and is not tracked.

import type { Kernel } from "./kernel.js";
import type { Task } from "./sched.js";

/** The syscall during which a holder took its reference ("who holds it" names it). */
export interface RefOrigin {
  /** the task, e.g. "qemu[1]" */
  readonly task: string;
  readonly call: string;
  readonly a0: number;
  readonly a1: number;
  /** open's path */
  readonly path: string;
}

/** Where a reference taken now comes from: the current task's syscall, if it is in one. */
export function refOrigin(k: Kernel): RefOrigin | undefined {
  const t: Task | null = k.current;
  if (!t || !t.inSyscall || !t.process) return undefined;
  return { task: t.name, call: t.call, a0: t.a0, a1: t.a1, path: t.path };
}

/**
 * What the owner behind a holder name says about its reference, read from the owner's own
 * structure (an fd slot, a VMA, a device's kvm pointer): whether the owner was released, and
 * how many references to the object it really keeps under that name.
 */
export interface HolderOwnership {
  readonly owner: string;
  readonly released: boolean;
  readonly holds: number;
}

/** A subsystem's reading of the holder names it hands out; undefined for names it does not own. */
export type HolderResolver = (holder: string, obj: RefCounted) => HolderOwnership | undefined;

let nextSerial = 1;

export abstract class RefCounted {
  refs = 1;
  dead = false;
  readonly serial = nextSerial++;
  /** holder name -> references it holds; the creator's reference is "init" until handed over */
  readonly holders = new Map<string, number>([["init", 1]]);
  /** holder name -> the syscall that took its first reference (for "who holds it") */
  readonly origins = new Map<string, RefOrigin>();

  constructor(
    readonly k: Kernel,
    /** the kernel type, e.g. "file", "vfio_group", "kvm" */
    readonly kind: string,
  ) {
    k.objects.add(this);
  }

  /** A short description for reports, e.g. "file /dev/vfio/1". */
  abstract describe(): string;
  /** Called once, when the last reference goes. */
  protected abstract release(): void;

  get(holder?: string): this {
    if (this.dead) throw this.k.bug("use-after-free", `get on released ${this.describe()}`);
    this.k.footprint?.touched.push(this);
    this.refs++;
    if (holder !== undefined) this.addHolder(holder);
    return this;
  }

  put(holder?: string): void {
    if (this.dead) throw this.k.bug("use-after-free", `put on released ${this.describe()}`);
    this.k.footprint?.touched.push(this);
    if (holder !== undefined) {
      const n = this.holders.get(holder);
      if (!n) throw this.k.bug("refcount", `${holder} puts ${this.describe()} it does not hold`);
      if (n === 1) {
        this.holders.delete(holder);
        this.origins.delete(holder);
      } else this.holders.set(holder, n - 1);
    }
    if (--this.refs === 0) {
      // gets and puts commute (atomic counts); the put that releases does not: it is in the
      // step's footprint for the explorer's partial-order reduction
      this.k.footprint?.released.push(this);
      this.dead = true;
      this.k.objects.delete(this);
      this.release();
      if (this.k.poison && this.poisonable()) poison(this);
    }
  }

  /** Whether the explorer's poisoning applies to this type (after release, its memory is
   * freed in the kernel: every later field access is a use after free). */
  protected poisonable(): boolean {
    return false;
  }

  /** Move a tracked reference from one holder name to another (e.g. "init" -> "fd 3 of pid 1"). */
  handOver(from: string, to: string): void {
    const n = this.holders.get(from);
    if (!n) throw this.k.bug("refcount", `${from} hands over ${this.describe()} it does not hold`);
    if (n === 1) {
      this.holders.delete(from);
      this.origins.delete(from);
    } else this.holders.set(from, n - 1);
    this.addHolder(to);
  }

  private addHolder(holder: string): void {
    const n = this.holders.get(holder) ?? 0;
    this.holders.set(holder, n + 1);
    if (n === 0) {
      const o = refOrigin(this.k);
      if (o) this.origins.set(holder, o);
    }
  }

  /** Throws if the object was released: call before touching it from a stale pointer. */
  assertLive(): void {
    if (this.dead) throw this.k.bug("use-after-free", `access to released ${this.describe()}`);
  }
}

/** what a poisoned object still answers: the kref itself and the names reports print */
const POISON_KEEP = new Set([
  "refs",
  "dead",
  "serial",
  "holders",
  "k",
  "kind",
  "id",
  "name",
  "type",
  "ctxName",
  "path",
]);

/**
 * KASAN for the twin: every other own field of a released object becomes an accessor that
 * reports a use-after-free (a KernelBug, recorded) naming the field, at the access.
 */
function poison(o: RefCounted): void {
  poisonFields(o.k, o, o.describe(), POISON_KEEP);
}

/** Poison every own field of a freed object that is not refcounted (an iopt_area). */
export function poisonFields(k: Kernel, o: object, desc: string, keep: ReadonlySet<string> = new Set()): void {
  k.poisoned.push(o);
  for (const key of Object.keys(o)) {
    if (keep.has(key)) continue;
    Object.defineProperty(o, key, {
      configurable: true,
      enumerable: false,
      get() {
        throw k.bug("use-after-free", `read of ${desc}.${key} after its release`);
      },
      set() {
        throw k.bug("use-after-free", `write of ${desc}.${key} after its release`);
      },
    });
  }
}
