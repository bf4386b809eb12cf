// The explorer's world snapshot (src/check/snapshot.ts) is checked, not trusted: for every
// world of worlds.ts (and each broken variant's world), a restored world has exactly the
// digest it had when the snapshot was taken, holds every invariant and equals a freshly built
// world under the twin digest; and the search with the snapshot finds exactly what the search
// rebuilding the world per execution finds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { explore, type ExploreResult, rng, runSchedule, WorldSource, type World } from "../../src/check/explorer.js";
import { twinDigest } from "../../src/check/fault.js";
import { checkInvariants } from "../../src/check/invariants.js";
import { WorldSnapshot } from "../../src/check/snapshot.js";
import fc from "fast-check";
import { type ConcurrentProgram, concurrentProgramArb, programWorld } from "../../src/check/random_program.js";
import { randomWorld } from "../../src/check/random_world.js";
import { VARIANTS } from "../../src/check/variants.js";
import { WORLDS, worldByName, type WorldOptions } from "../../src/check/worlds.js";
import { ioasUnmapOp, PASID_DETACH_VS_UNMAP } from "./programs.js";

const SETUP_PROGRAMS: [string, ConcurrentProgram][] = [
  ["random program on the PASID machine", PASID_DETACH_VS_UNMAP],
  [
    "random program on an IOAS a selftest access pins",
    {
      setup: [{ op: "setup", p: 0, kind: "ioas", alt: true }],
      threads: [
        { p: 0, ops: [ioasUnmapOp(0)] },
        { p: 0, ops: [ioasUnmapOp(0), { op: "close", p: 0, fd: { t: "access", i: 0 } }] },
      ],
      admin: [],
    },
  ],
];

interface Case {
  readonly label: string;
  readonly build: () => World;
  readonly budget: number;
}

const CASES: Case[] = [
  ...WORLDS.map((w) => ({ label: w.name, build: () => w.build({}), budget: 2000 })),
  ...VARIANTS.map((v) => {
    const o: WorldOptions = { broken: v.broken, ...(v.design ? { design: v.design } : {}) };
    const w = worldByName(v.world)!;
    return { label: `${v.world} with ${v.name}`, build: () => w.build(o), budget: v.budget };
  }),
  ...[1, 2, 3, 4, 5, 6].map((seed) => ({
    label: `random world ${seed}`,
    build: () => randomWorld(seed, {}),
    budget: 150,
  })),
  // random programs (src/check/random_program.ts): the harness's own state (its processes,
  // named fds, live threads, the exit bookkeeping) is walked through World.state
  ...fc
    .sample(concurrentProgramArb(), { seed: 11, numRuns: 6 })
    .map((prog, i) => ({ label: `random program ${i}`, build: () => programWorld(prog, {}), budget: 60 })),
  // and the setups a sample may miss: the PASID machine, an IOAS pinned by a selftest access
  ...SETUP_PROGRAMS.map(([label, prog]) => ({ label, build: () => programWorld(prog, {}), budget: 60 })),
];

/** object serials differ between two builds (a global counter): name them by rank */
function bySerialRank(k: World["kernel"], text: string): string {
  const serials = [...k.objects].map((o) => o.serial).sort((a, b) => a - b);
  const rank = new Map(serials.map((s, i) => [String(s), `s${i}`]));
  return text
    .split("\n")
    .map((line) =>
      line
        .replace(/^\d+/, (s) => rank.get(s) ?? s)
        .replace(/=(\d+)/g, (m, s) => `=${rank.get(s) ?? s}`)
        // inode numbers and container ids come from global counters too
        .replace(/(ino|vfio_container|container|file|ctx) \d+/g, "$1 N"),
    )
    .join("\n");
}

/** the search's findings, violations without the numbers an execution's names carry
 * (distinct states are not compared: lock names carry ids from global counters, e.g. "group_lock
 * of container 8", so rebuilding the world per execution counts one state once per build) */
function shape(r: ExploreResult): unknown {
  return {
    executions: r.executions,
    steps: r.steps,
    complete: r.complete,
    sleepBlocked: r.sleepBlocked,
    outcomes: [...r.outcomes],
    failures: r.failures.map((f) => ({
      schedule: f.schedule,
      results: f.results,
      violationStep: f.violationStep,
      violations: f.violations.map((v) => `${v.check}: ${v.message.replace(/\d+/g, "N")}`),
    })),
  };
}

test("every world can be snapshotted (none falls back to rebuilding)", () => {
  for (const c of CASES) {
    const src = new WorldSource(c.build, true, true);
    try {
      src.next();
      assert.equal(src.unsnapshotable, null, c.label);
    } finally {
      src.close();
    }
  }
});

test("a restored world equals the world the snapshot was taken of, and a freshly built one", () => {
  for (const c of CASES) {
    const fresh = c.build();
    const freshDigest = bySerialRank(fresh.kernel, twinDigest(fresh.kernel));
    const w = c.build();
    const snap = new WorldSnapshot(w.kernel, [w]);
    try {
      const d0 = snap.digest();
      const t0 = bySerialRank(w.kernel, twinDigest(w.kernel));
      assert.equal(t0, freshDigest, `${c.label}: two builds differ`);
      snap.restore();
      const n = w.threads.length;
      // schedules that run whole threads in order, in reverse, and one step each in turn
      const schedules = [[], Array.from({ length: 64 }, () => n - 1), Array.from({ length: 64 }, (_, i) => i % n)];
      const outcomes: unknown[] = [];
      for (const prefix of schedules) {
        const out = runSchedule(() => w, prefix);
        outcomes.push(out.results);
        snap.restore();
        assert.equal(snap.digest(), d0, `${c.label}: restored after ${JSON.stringify(prefix.slice(0, 8))}`);
        assert.deepEqual(checkInvariants(w.kernel), [], c.label);
        assert.equal(bySerialRank(w.kernel, twinDigest(w.kernel)), freshDigest, c.label);
      }
      // the same schedules on freshly built worlds give the same results
      snap.release();
      for (let i = 0; i < schedules.length; i++)
        assert.deepEqual(runSchedule(c.build, schedules[i]!).results, outcomes[i], `${c.label} schedule ${i}`);
    } finally {
      snap.release();
    }
  }
});

// The restore puts back only the Maps and Sets an execution changed, as their journal
// (src/check/collection_journal.ts) noted them, and every one when the journal did not cover
// the time since the last restore (the first restore, after release(), after another
// snapshot's restore took the journal over).
test("the journaled restore equals the snapshot after random schedules, and after another snapshot's restore", () => {
  for (const c of CASES) {
    const w = c.build();
    const other = c.build();
    const snap = new WorldSnapshot(w.kernel, [w]);
    const snap2 = new WorldSnapshot(other.kernel, [other]);
    try {
      const d0 = snap.digest();
      const d2 = snap2.digest();
      const rand = rng(c.label.length);
      const n = w.threads.length;
      snap.restore();
      for (let run = 0; run < 12; run++) {
        const prefix = Array.from({ length: 48 }, () => Math.floor(rand() * n));
        runSchedule(() => w, prefix);
        if (run === 4) {
          snap.restore();
          snap.release(); // the journal stops: the next restore compares every Map and Set
        }
        if (run === 8) {
          // another snapshot's restore takes the journal over: this world's Maps and Sets
          // are compared in full at its next restore, and those it changes meanwhile, noted
          // in the other snapshot's journal, are not the other's to restore
          snap2.restore();
          runSchedule(() => w, prefix);
          runSchedule(() => other, prefix);
          snap2.restore();
          assert.equal(snap2.digest(), d2, `${c.label}: the other world, run ${run}`);
        }
        snap.restore();
        assert.equal(snap.digest(), d0, `${c.label}: run ${run} (${JSON.stringify(prefix.slice(0, 8))})`);
      }
    } finally {
      snap2.release();
      snap.release();
    }
  }
});

test("the search with the snapshot finds exactly what it finds rebuilding the world per execution", () => {
  for (const c of CASES) {
    // PCT's schedules do not depend on footprints: the same executions, step for step
    const pct = { strategy: "pct" as const, maxExecutions: 50, seed: 7 };
    assert.deepEqual(
      shape(explore(c.build, { ...pct, snapshot: true })),
      shape(explore(c.build, { ...pct, snapshot: false })),
      c.label,
    );
    // DPOR: the same outcomes and the same violations. The executions differ: a sleep set
    // keeps the footprint of a step of an earlier execution, which names objects of the
    // snapshot's one world; rebuilding, those objects are gone, so a sleeper sleeps at its
    // node only and the search runs at least as many executions
    const rebuilt = explore(c.build, { maxExecutions: c.budget, snapshot: false });
    const restored = explore(c.build, { maxExecutions: c.budget, snapshot: true });
    const found = (r: ExploreResult) =>
      [...new Set(r.failures.flatMap((f) => f.violations.map((v) => v.check)))].sort();
    if (rebuilt.complete) assert.equal(restored.complete, true, c.label);
    if (!rebuilt.complete) {
      // the rebuilding search was cut by the budget: a correct world is clean in both, a
      // variant's world fails in both
      const variant = c.label.includes(" with ");
      assert.equal(found(rebuilt).length > 0, variant, `${c.label} (rebuilt)`);
      assert.equal(found(restored).length > 0, variant, `${c.label} (restored)`);
      continue;
    }
    assert.ok(restored.executions <= rebuilt.executions, `${c.label}: ${restored.executions} > ${rebuilt.executions}`);
    assert.deepEqual([...restored.outcomes.keys()].sort(), [...rebuilt.outcomes.keys()].sort(), c.label);
    assert.deepEqual(found(restored), found(rebuilt), c.label);
  }
});
