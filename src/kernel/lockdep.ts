// Lock-order tracking in the spirit of kernel/locking/lockdep.c: every lock belongs to a
// class (its name without the instance); taking class B while holding class A records the
// edge A -> B with the stack that first made it. An acquisition that closes a cycle in that
// graph is a possible deadlock (an inversion), reported with both stacks, once per pair.

import type { Task } from "./sched.js";

export interface LockStack {
  /** what the task was doing */
  readonly task: string;
  /** lock classes held, outermost first, then the one being taken */
  readonly chain: readonly string[];
  readonly where: string;
}

export interface LockInversion {
  readonly first: string;
  readonly second: string;
  /** the stack that established first -> second */
  readonly established: LockStack;
  /** the stack now taking them in the other order */
  readonly now: LockStack;
}

export class Lockdep {
  enabled = true;
  /** edges: from class -> (to class -> stack that made it) */
  private readonly edges = new Map<string, Map<string, LockStack>>();
  readonly inversions: LockInversion[] = [];
  private readonly reported = new Set<string>();
  /** the last single-held pair checked: the loop below records its edge (or skips a
   * same-class pair), so checking it again would change nothing */
  private lastFrom = "";
  private lastTo = "";

  /** Called with the lock about to be taken while `t.held` lists the ones already held. */
  acquire(t: Task, cls: string, where: string): void {
    if (!this.enabled || t.held.length === 0) return;
    // one lock held and the same pair as last time (a sequential path taking its two locks
    // again): the edge is already in the graph
    if (t.held.length === 1 && cls === this.lastTo && t.held[0]!.cls === this.lastFrom) return;
    if (t.held.length === 1) {
      this.lastFrom = t.held[0]!.cls;
      this.lastTo = cls;
    }
    for (const h of t.held) {
      if (h.cls === cls) continue; // nesting within one class is not ordered here
      let out = this.edges.get(h.cls);
      if (!out) this.edges.set(h.cls, (out = new Map()));
      if (out.has(cls)) continue;
      const stack: LockStack = { task: t.label, chain: [...t.held.map((x) => x.cls), cls], where };
      // does cls already reach h.cls? then h.cls -> cls closes a cycle
      const back = this.path(cls, h.cls);
      if (back) {
        const key = [h.cls, cls].sort().join("|");
        if (!this.reported.has(key)) {
          this.reported.add(key);
          this.inversions.push({ first: cls, second: h.cls, established: back, now: stack });
        }
      }
      out.set(cls, stack);
    }
  }

  /** Whether class `to` was ever taken while `from` was held (an edge of the graph). */
  ordered(from: string, to: string): boolean {
    return this.edges.get(from)?.has(to) ?? false;
  }

  /** The stack of the first edge on a path from -> to, or null when `to` is unreachable. */
  private path(from: string, to: string): LockStack | null {
    const seen = new Set<string>();
    const stack: [string, LockStack | null][] = [[from, null]];
    while (stack.length) {
      const [c, firstEdge] = stack.pop()!;
      if (seen.has(c)) continue;
      seen.add(c);
      const out = this.edges.get(c);
      if (!out) continue;
      for (const [n, st] of out) {
        const fe = firstEdge ?? st;
        if (n === to) return fe;
        stack.push([n, fe]);
      }
    }
    return null;
  }

  /** Human-readable report of every inversion, in the shape of a lockdep splat. */
  report(): string {
    return this.inversions
      .map(
        (inv) =>
          `WARNING: possible circular locking dependency detected\n` +
          `  ${inv.now.task} is trying to take ${inv.now.chain.at(-1)} while holding ${inv.now.chain.slice(0, -1).join(" -> ")}\n` +
          `    at ${inv.now.where}\n` +
          `  but ${inv.established.task} took ${inv.established.chain.join(" -> ")}\n` +
          `    at ${inv.established.where}`,
      )
      .join("\n");
  }
}
