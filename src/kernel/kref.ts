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
    this.refs++;
    if (holder !== undefined) this.addHolder(holder);
    return this;
  }

  put(holder?: string): void {
    if (this.dead) throw this.k.bug("use-after-free", `put on released ${this.describe()}`);
    if (holder !== undefined) {
      const n = this.holders.get(holder);
      if (!n) throw this.k.bug("refcount", `${holder} puts ${this.describe()} it does not hold`);
      if (n === 1) {
        this.holders.delete(holder);
        this.origins.delete(holder);
      } else this.holders.set(holder, n - 1);
    }
    if (--this.refs === 0) {
      this.dead = true;
      this.k.objects.delete(this);
      this.release();
    }
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
