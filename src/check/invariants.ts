// Invariants over the whole twin, checked between syscalls (at quiescent points). Each one
// recomputes a count from the real holders and compares it with the count the kernel keeps:
// a leak or an over-put shows up as a mismatch with names. Subsystems add their own checks
// through Kernel.checks (pinned pages against mappings, memlock against pins, ...), and
// read the holder names they hand out through Kernel.holderOwners, so a reference whose
// owner was released, or that its owner no longer keeps, is found wherever it sits.

import type { Kernel } from "../kernel/kernel.js";
import type { HolderOwnership, RefCounted } from "../kernel/kref.js";
import type { LockInversion } from "../kernel/lockdep.js";
import { checkPasidReach } from "./pasid_invariants.js";

export interface Violation {
  readonly check: string;
  readonly message: string;
}

/** Every invariant of the twin; an empty list means all hold. */
export function checkInvariants(k: Kernel): Violation[] {
  const out: Violation[] = [];
  const add = (check: string, message: string) => out.push({ check, message });

  for (const b of k.bugs) add("no-kernel-bugs", `${b.kind}: ${b.message}`);
  // lockdep saw two classes taken in both orders: a possible deadlock, whether or not this
  // run deadlocked
  for (const inv of k.lockdep.inversions) add("lockdep", inversionText(inv));

  // refcounts: every reference is held by somebody with a name (only between syscalls:
  // a syscall's own short borrow is gone by then)
  for (const o of k.objects) {
    let sum = 0;
    for (const n of o.holders.values()) sum += n;
    if (sum !== o.refs)
      add("refcount-holders", `${o.describe()}: refs=${o.refs} but holders sum to ${sum} (${holders(o)})`);
    if (o.dead) add("registry", `${o.describe()} is released but still registered`);
    // each named holder, asked of its owner: a released owner holds nothing, and a live
    // one keeps in its own structure (fd slot, VMA, device pointer) what it is counted for
    for (const [h, n] of o.holders) {
      const own = ownerOf(k, h, o);
      if (!own) continue;
      if (own.released) add("held-by-released-owner", `${o.describe()}: ${h} x${n}, but ${own.owner} was released`);
      else if (own.holds !== n)
        add("holder-not-in-owner", `${o.describe()}: ${h} x${n}, but ${own.holds} found in ${own.owner}`);
    }
    // a file whose fops belong to a module that is gone: every call through it runs freed code
    const fops = (o as { fops?: { owner: { state: string; name: string } | null } }).fops;
    if (o.kind === "file" && fops?.owner && fops.owner.state === "unloaded")
      add("module-gone", `${o.describe()} is open but its module ${fops.owner.name} was unloaded`);
  }

  // fd tables: each slot's file is live and knows it is held by that slot
  for (const p of k.processes.values()) {
    for (const [fd, f] of p.files.entries()) {
      if (f.dead) add("fd-table", `pid ${p.pid} fd ${fd}: ${f.describe()} is released`);
      else if (!f.holders.get(p.files.holder(fd)))
        add("fd-table", `pid ${p.pid} fd ${fd}: ${f.describe()} lacks holder`);
    }
    // VMAs that map files hold references to them
    for (const v of p.mm.vmas) {
      if (v.file && (v.file.dead || !v.file.holders.get("vma")))
        add("vma-file", `pid ${p.pid} vma 0x${v.start.toString(16)}: file not held`);
    }
  }

  // modules: the refcount is the sum of named pins
  for (const m of k.modules.loaded.values()) {
    let sum = 0;
    for (const n of m.pins.values()) sum += n;
    if (sum !== m.refcnt) add("module-pins", `${m.name}: refcnt=${m.refcnt} but pins sum to ${sum}`);
  }

  for (const [name, check] of k.checks) for (const msg of check()) add(name, msg);
  for (const msg of checkPasidReach(k)) add("pasid-reach", msg); // docs/pasid.md
  return out;
}

/** "A takes X holding Y at ..., but B took Y -> ... -> X at ..." */
function inversionText(inv: LockInversion): string {
  const n = inv.now;
  const e = inv.established;
  return `${n.task} takes ${n.chain.at(-1)} holding ${n.chain.slice(0, -1).join(" -> ")} (at ${n.where}), but ${e.task} took ${e.chain.join(" -> ")} (at ${e.where})`;
}

const NOTHING: readonly Violation[] = Object.freeze([]);

/**
 * What holds at every yield point, cheap enough to run after each explorer step: new splats
 * (use after free at the poisoned access, sleeping in atomic context, deadlocks, oopses) and
 * new lockdep inversions since the counts given. Counts (refs against holders) are only
 * exact between syscalls, so checkInvariants() runs them when the threads are done.
 */
export function checkStep(k: Kernel, bugsSeen: number, inversionsSeen: number): readonly Violation[] {
  if (k.bugs.length === bugsSeen && k.lockdep.inversions.length === inversionsSeen) return NOTHING;
  const out: Violation[] = [];
  for (let i = bugsSeen; i < k.bugs.length; i++)
    out.push({ check: "no-kernel-bugs", message: `${k.bugs[i]!.kind}: ${k.bugs[i]!.message}` });
  for (let i = inversionsSeen; i < k.lockdep.inversions.length; i++) {
    const inv = k.lockdep.inversions[i]!;
    out.push({
      check: "lockdep",
      message: inversionText(inv),
    });
  }
  return out;
}

function ownerOf(k: Kernel, holder: string, o: RefCounted): HolderOwnership | undefined {
  for (const resolve of k.holderOwners.values()) {
    const r = resolve(holder, o);
    if (r) return r;
  }
  return undefined;
}

/** Objects alive now that were not alive in `baseline`: what a test leaked. */
export function leakedSince(k: Kernel, baseline: ReadonlySet<RefCounted>): RefCounted[] {
  return [...k.objects].filter((o) => !baseline.has(o));
}

export function holders(o: RefCounted): string {
  return [...o.holders].map(([h, n]) => (n === 1 ? h : `${h} x${n}`)).join(", ");
}

/** A readable report of violations, one per line. */
export function formatViolations(v: readonly Violation[]): string {
  return v.length === 0 ? "all invariants hold" : v.map((x) => `[${x.check}] ${x.message}`).join("\n");
}
