// Fault injection over a world: for each thread's call, with the threads before it run to
// completion, the n-th fallible step fails, for n = 1, 2, ... until the call no longer
// reaches an n-th (the fail-nth countdown of src/iommufd/fail_nth.ts: allocations, pins,
// IOMMU maps, object lookups). Each failing call must return an errno and leave the twin
// exactly as before: the same live objects with the same counts and holders, the same fds,
// module pins, pinned and locked memory, IOMMU group domains, iommufd objects and areas; and
// every invariant must hold.

import { failNthRemaining, failNthSteps, setFailNth } from "../iommufd/fail_nth.js";
import { IommufdIoas } from "../iommufd/ioas.js";
import { iommufdState } from "../iommufd/main.js";
import { IommuCore } from "../iommu/iommu.js";
import type { Kernel } from "../kernel/kernel.js";
import { runSchedule, type World } from "./explorer.js";
import { checkInvariants, formatViolations } from "./invariants.js";

/** What a failed call must leave as it was, as a comparable string. */
export function twinDigest(k: Kernel): string {
  const ids = new Map<object, number>();
  const id = (o: object): number => {
    let n = ids.get(o);
    if (n === undefined) ids.set(o, (n = ids.size));
    return n;
  };
  const out: string[] = [];
  const objs = [...k.objects].sort((a, b) => a.serial - b.serial);
  for (const o of objs)
    out.push(`${o.serial} ${o.describe()} refs=${o.refs} ${[...o.holders].map(([h, n]) => `${h}:${n}`).join(",")}`);
  for (const m of k.modules.loaded.values()) out.push(`module ${m.name} ${m.refcnt} ${[...m.pins].join(",")}`);
  for (const p of k.processes.values()) {
    out.push(
      `pid ${p.pid} fds ${p.files
        .entries()
        .map(([fd, f]) => `${fd}=${f.serial}`)
        .join(",")}`,
    );
    out.push(`pid ${p.pid} locked ${p.mm.lockedVm} pinned ${p.mm.pinnedVm} user ${p.user.lockedVm}`);
  }
  for (const g of IommuCore.of(k).groups.values())
    out.push(`iommu group ${g.id} domain ${id(g.domain)} owner ${g.owner === null ? "-" : id(g.owner as object)}`);
  for (const ictx of iommufdState(k)?.ctxs ?? []) {
    for (const o of ictx.objects.objects()) {
      out.push(`${ictx.name} ${o.id} ${o.type} ${o.refs}`);
      if (o instanceof IommufdIoas)
        out.push(
          `  areas ${o.iopt.areas
            .all()
            .map((a) => `${a.start}-${a.last}:${a.filled}`)
            .join(",")}`,
        );
    }
  }
  return out.join("\n");
}

export interface FaultSweepResult {
  /** failing calls checked, per thread */
  readonly failures: number[];
  /** what went wrong: a call that succeeded while failing, a change, a violation */
  readonly problems: string[];
  /** failures the kernel itself absorbs, as the call's own fallback (listed, not problems,
   * when the caller names the thread in `absorbs`): the call succeeds, the invariants hold */
  readonly absorbed: string[];
}

/** Sweep every fallible step of every thread of the world, each thread alone after the ones
 * before it. */
export function faultSweep(build: () => World, maxPerThread = 200, absorbs: readonly string[] = []): FaultSweepResult {
  const threads = build().threads.length;
  const failures: number[] = [];
  const problems: string[] = [];
  const absorbed: string[] = [];
  const multi = build().threads.map((t) => (t.calls ?? 1) > 1);
  for (let i = 0; i < threads; i++) {
    if (multi[i]) {
      // several calls in one thread: one failing leaves the others' changes (not checked here)
      failures.push(0);
      continue;
    }
    let n = 1;
    for (; n <= maxPerThread; n++) {
      let before = "";
      let after = "";
      let armed = false;
      let fired = false;
      const o = runSchedule(
        () => {
          const w = build();
          // threads before i run first, then i alone: arm when i's first step starts
          const wrapped = w.threads.map((t, j) =>
            j !== i
              ? t
              : {
                  ...t,
                  path: (task: Parameters<typeof t.path>[0]) => {
                    return armAround(() => t.path(task), {
                      arm: () => {
                        before = twinDigest(w.kernel);
                        armed = true;
                        setFailNth(n);
                      },
                      disarm: () => {
                        fired = failNthRemaining() === 0 && failNthSteps() >= n;
                        setFailNth(0);
                        after = twinDigest(w.kernel);
                      },
                    });
                  },
                },
          );
          return { ...w, threads: wrapped };
        },
        order(threads, i),
        { poison: false },
      );
      const name = o.threads[i]!;
      if (!armed) break;
      if (!fired) break; // the call has no n-th fallible step: every one was checked
      const rc = o.results[i];
      const v = o.violations;
      if (
        !(typeof rc === "number" && rc < 0) &&
        !(Array.isArray(rc) && rc.some((x) => typeof x === "number" && x < 0))
      ) {
        if (absorbs.includes(name)) {
          absorbed.push(`${name}: fail-nth ${n} absorbed, the call returned ${JSON.stringify(rc)}`);
          if (v.length) problems.push(`${name}: fail-nth ${n}: ${formatViolations(v)}`);
          continue;
        }
        problems.push(`${name}: fail-nth ${n} fired but the call returned ${JSON.stringify(rc)}`);
      }
      if (after !== before) problems.push(`${name}: fail-nth ${n}: the twin changed:\n${diff(before, after)}`);
      if (v.length) problems.push(`${name}: fail-nth ${n}: ${formatViolations(v)}`);
    }
    failures.push(n - 1);
  }
  return { failures, problems, absorbed };
}

/** Threads 0..i-1 to completion, then i, then the rest. */
function order(threads: number, i: number): number[] {
  const s: number[] = [];
  for (let j = 0; j < i; j++) for (let r = 0; r < 64; r++) s.push(j);
  for (let r = 0; r < 64; r++) s.push(i);
  return s;
}

/** Wrap a path: `arm` before its first step, `disarm` after its last. */
function armAround<T>(make: () => T, h: { arm: () => void; disarm: () => void }): Generator<never, unknown, void> {
  return (function* () {
    h.arm();
    let r: unknown;
    try {
      const p = make() as unknown;
      if (p && typeof (p as Generator).next === "function") r = yield* p as Generator<never, unknown, void>;
      else r = p;
    } finally {
      h.disarm();
    }
    return r;
  })();
}

/** A sequential check that a call failed by fail-nth leaves the twin as before: the digest
 * before the armed call equals the digest after it. */
export function sweepCall(k: Kernel, call: () => number, maxN = 200): { checked: number; problems: string[] } {
  const problems: string[] = [];
  let n = 1;
  for (; n <= maxN; n++) {
    const before = twinDigest(k);
    setFailNth(n);
    const rc = call();
    const fired = failNthRemaining() === 0 && failNthSteps() >= n;
    setFailNth(0);
    if (!fired) {
      // it ran through: it made its change; the sweep of this call is over
      break;
    }
    if (rc >= 0) problems.push(`fail-nth ${n}: the call returned ${rc}`);
    const after = twinDigest(k);
    if (after !== before) problems.push(`fail-nth ${n}: the twin changed:\n${diff(before, after)}`);
    const v = checkInvariants(k);
    if (v.length) problems.push(`fail-nth ${n}: ${formatViolations(v)}`);
  }
  return { checked: n - 1, problems };
}

function diff(a: string, b: string): string {
  const A = new Set(a.split("\n"));
  const B = new Set(b.split("\n"));
  return [
    ...[...A].filter((x) => !B.has(x)).map((x) => `- ${x}`),
    ...[...B].filter((x) => !A.has(x)).map((x) => `+ ${x}`),
  ]
    .slice(0, 12)
    .join("\n");
}
