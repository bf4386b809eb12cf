// Seeded random concurrent programs (src/check/random_program.ts): the correct model passes a
// fixed seed and budget clean under PCT and bounded DPOR; broken variants are found by the
// generated programs alone (no named world) within a stated budget, the program shrunk small;
// the saved trace carries the program and `replay` reproduces the violation exactly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { explore, runSchedule } from "../../src/check/explorer.js";
import {
  type ConcurrentProgram,
  concurrentProgramArb,
  programWorld,
  removeWhileFailing,
  type ThreadOp,
} from "../../src/check/random_program.js";
import { replayTrace, runExplore } from "../../src/check/run.js";
import { run } from "../cli/harness.js";
import { PASID_DETACH_VS_UNMAP } from "./programs.js";

const TMP = mkdtempSync(join(tmpdir(), "vfio-twin-programs-"));

test("generated programs are multi-thread and multi-process, over the uAPI and its setups", () => {
  const progs = fc.sample(concurrentProgramArb(), { seed: 3, numRuns: 200 });
  const ops = progs.flatMap((p) => p.threads.flatMap((t) => t.ops));
  const kinds = new Set(ops.map((o) => (o.op === "ioctl" ? o.name : o.op)));
  for (const k of ["close", "sendFd", "exit", "dma", "dup", "open", "KVM_SET_DEVICE_ATTR", "VFIO_IOMMU_UNMAP_DMA"])
    assert.ok(kinds.has(k), `no ${k} in 200 programs`);
  assert.ok(kinds.has("IOMMU_IOAS_UNMAP") && kinds.has("VFIO_DEVICE_DETACH_IOMMUFD_PT"));
  assert.ok(progs.some((p) => p.threads.length >= 3));
  assert.ok(
    progs.some((p) => new Set(p.threads.map((t) => t.p)).size >= 2),
    "threads of several processes",
  );
  assert.ok(
    progs.some((p) => p.admin.some((m) => !m.load)),
    "module unloads",
  );
  assert.ok(
    progs.some((p) => p.admin.some((m) => m.load)),
    "module loads",
  );
});

test("a program's threads really interleave: two threads of one process race on one container", () => {
  const prog = {
    setup: [{ op: "setup" as const, p: 0, kind: "type1" as const, alt: false }],
    threads: [0, 1].map(() => ({
      p: 0,
      ops: [
        {
          op: "ioctl" as const,
          p: 0,
          fd: { t: "container" as const, i: 0 },
          name: "VFIO_IOMMU_UNMAP_DMA",
          fields: { argsz: { sizeof: 0 }, iova: 0, size: 0x4000 },
        },
      ],
    })),
    admin: [],
  };
  // thread 0 up to its lock, then thread 1 all the way: the unmap is thread 1's
  const o = runSchedule(() => programWorld(prog, {}), [0, 1, 1, 1, 0, 0, 0]);
  assert.deepEqual(o.violations, []);
  assert.deepEqual(o.results, [[0], [0]]);
  assert.deepEqual(o.schedule.slice(0, 2), [0, 1], "thread 1 ran while thread 0 was inside its call");
});

test("the correct model passes seeded random programs clean (PCT and bounded DPOR)", () => {
  const pct = runExplore({ random: true, programs: 30, seed: 1, budget: 3 });
  assert.equal(pct.trace, null, pct.text?.join("\n"));
  assert.equal(pct.programs?.generated, 30);
  assert.ok(pct.executions >= 30 && pct.executions <= 90, String(pct.executions));
  const dpor = runExplore({ random: true, programs: 8, seed: 2, budget: 20, strategy: "dpor", preemptionBound: 1 });
  assert.equal(dpor.trace, null, dpor.text?.join("\n"));
  assert.equal(dpor.strategy, "dpor");
});

// seed 3, at most 60 programs of at most 3 PCT executions each (the search stops at the first)
const FOUND: readonly { variant: string; check: RegExp }[] = [
  { variant: "unmap-no-unpin", check: /^vfio_iommu_type1$/ },
  { variant: "file-del-no-fput", check: /holder|owner/ },
  { variant: "kvm-ops-no-module-pin", check: /^kvm$/ },
  { variant: "kvm-vfio-destroy-op", check: /^after$/ },
];

for (const f of FOUND) {
  test(`random programs alone find ${f.variant} within 60 programs x 3 executions, shrunk small, replayable`, () => {
    const r = runExplore({ random: true, programs: 60, seed: 3, budget: 3, variant: f.variant });
    assert.ok(r.trace, `${f.variant}: not found`);
    assert.ok(r.programs!.generated <= 60);
    const prog = r.trace.program!;
    assert.ok(prog, "the trace carries the program");
    // small: at most two threads and four steps, setup included
    assert.ok(prog.threads.length <= 2, JSON.stringify(prog));
    const steps = prog.setup.length + prog.threads.reduce((n, t) => n + t.ops.length, 0) + prog.admin.length;
    assert.ok(steps <= 4, JSON.stringify(prog));
    assert.match(r.trace.violations[0]!.check, f.check, JSON.stringify(r.trace.violations[0]));
    const again = replayTrace(JSON.stringify(r.trace));
    assert.equal(again.same, true, again.lines.join("\n"));
    assert.equal(again.failed, true);
    // the same program and schedule on the correct model (the variant's design): clean
    const design = r.trace.design;
    const good = runSchedule(() => programWorld(prog, { design }), r.trace.schedule);
    assert.deepEqual(good.violations, []);
  });
}

test("CLI: explore --random --programs saves the shrunk program; replay reproduces it; clean exits 0", async () => {
  const file = join(TMP, "program.json");
  const bad = await run(
    "explore",
    "--random",
    "--programs",
    "60",
    "--seed",
    "3",
    "--budget",
    "3",
    "--variant",
    "unmap-no-unpin",
    "--out",
    file,
  );
  assert.equal(bad.code, 1, bad.out + bad.err);
  assert.match(bad.out, /VIOLATION in program \d+, shrunk/);
  assert.match(bad.out, /thread 0 of p\d: VFIO_IOMMU_UNMAP_DMA/);
  const saved = JSON.parse(readFileSync(file, "utf8"));
  assert.match(saved.world, /^program:3$/);
  assert.ok(Array.isArray(saved.program.threads));
  const rp = await run("replay", file);
  assert.equal(rp.code, 1, rp.out + rp.err);
  assert.match(rp.out, /reproduced exactly/);
  assert.match(rp.out, /# thread 0 of p\d/);
  // with --programs, --budget is each program's and --time the whole run's: both at once
  const ok = await run("explore", "--random", "--programs", "5", "--seed", "3", "--budget", "2", "--time", "60s");
  assert.equal(ok.code, 0, ok.out + ok.err);
  assert.match(ok.out, /no violation/);
  const usage = await run("explore", "--programs", "5");
  assert.equal(usage.code, 2);
  assert.match(usage.err, /--programs needs --random/);
});

test("removeWhileFailing drops threads, setup steps and calls while the failure stays", () => {
  const op = (n: number) => ({ op: "dma" as const, iova: n, len: 64 });
  const prog = {
    setup: [
      { op: "setup" as const, p: 0, kind: "kvm" as const, alt: false },
      { op: "setup" as const, p: 1, kind: "type1" as const, alt: false },
    ],
    threads: [
      { p: 0, ops: [op(1), op(2), op(3)] },
      { p: 1, ops: [op(4)] },
    ],
    admin: [{ op: "module" as const, load: true, name: "vfio" }],
  };
  // "fails" while some thread has a DMA at iova 2
  const small = removeWhileFailing(prog, (p) =>
    p.threads.some((t) => t.ops.some((o) => o.op === "dma" && o.iova === 2)),
  );
  assert.deepEqual(small, { setup: [], threads: [{ p: 0, ops: [op(2)] }], admin: [] });
});

// The variants the generator's racing pairs, machines and setups reach (the PASID machine, the
// KVM-gated mdev, an IOAS no device uses with a selftest access, two devices on one iommufd, a
// driver's rmmod under a lookup): each found from the library within its stated budget
// (programs x executions per program under PCT, or bounded DPOR where the window is one
// preemption point wide, seed), and the correct model clean over the same budget.
// docs/explorer.md "Random programs" has the rates over seeds 1-8.
const RACES: readonly {
  variant: string;
  seed: number;
  programs: number;
  message: RegExp;
  /** default PCT with RACE_BUDGET executions a program */
  dpor?: number;
}[] = [
  { variant: "set-kvm-group-lock", seed: 2, programs: 10, message: /kvm\.lock|group_lock/ },
  { variant: "pasid-translation-not-revoked", seed: 2, programs: 20, message: /guest PASID 1 reaches host PASID 5/ },
  { variant: "iommufd-auto-domain-unlock-early", seed: 5, programs: 25, message: /before its creator finalized/ },
  // DESTROY must run between the two halves of a MAP's or UNMAP's put: bounded DPOR reaches
  // that window systematically, PCT in about 1 program of 100 (docs/explorer.md)
  { variant: "iommufd-shortterm-put-early", seed: 2, programs: 15, message: /use-after-free.*ioas/, dpor: 20 },
  { variant: "device-put-outside-list-lock", seed: 6, programs: 90, message: /use-after-free.*vfio_device/ },
  { variant: "iommufd-unmap-area-after-unlock", seed: 5, programs: 150, message: /use-after-free.*iopt_area/ },
];
const RACE_BUDGET = 5;

for (const f of RACES) {
  const how = f.dpor !== undefined ? `${f.dpor} DPOR` : `${RACE_BUDGET} PCT`;
  test(`random programs find ${f.variant} within ${f.programs} programs x ${how} executions (seed ${f.seed}); the correct model passes them clean`, () => {
    const o = {
      random: true,
      programs: f.programs,
      seed: f.seed,
      budget: f.dpor ?? RACE_BUDGET,
      strategy: f.dpor !== undefined ? ("dpor" as const) : ("pct" as const),
    };
    const r = runExplore({ ...o, variant: f.variant });
    assert.ok(r.trace, `${f.variant}: not found`);
    assert.match(r.trace.violations[0]!.message, f.message, JSON.stringify(r.trace.violations[0]));
    const prog = r.trace.program!;
    assert.ok(prog.threads.length <= 3, JSON.stringify(prog));
    // the same programs, the same schedules on the correct model (the variant's design)
    const clean = runExplore(o);
    assert.equal(clean.trace, null, clean.text?.join("\n"));
    assert.equal(clean.programs?.generated, f.programs);
    assert.deepEqual(
      runSchedule(() => programWorld(prog, { design: r.trace!.design }), r.trace.schedule).violations,
      [],
    );
  });
}

test("CLI: a PASID-machine program's violation is saved with its machine; replay reproduces it", async () => {
  const file = join(TMP, "pasid-program.json");
  const args = ["explore", "--random", "--programs", "20", "--seed", "2", "--budget", "5"];
  const bad = await run(...args, "--variant", "pasid-translation-not-revoked", "--out", file);
  assert.equal(bad.code, 1, bad.out + bad.err);
  assert.match(bad.out, /machine: pasid/);
  const saved = JSON.parse(readFileSync(file, "utf8"));
  assert.equal(saved.program.machine, "pasid");
  const rp = await run("replay", file);
  assert.equal(rp.code, 1, rp.out + rp.err);
  assert.match(rp.out, /reproduced exactly/);
  assert.match(rp.out, /pasid-reach/);
  const ok = await run(...args);
  assert.equal(ok.code, 0, ok.out + ok.err);
});

test("generated programs cover the machines, the new setups, object ids and racing pairs", () => {
  const progs = fc.sample(concurrentProgramArb(), { seed: 5, numRuns: 300 });
  const machines = new Set(progs.map((p) => p.machine ?? "pc"));
  assert.deepEqual([...machines].sort(), ["pasid", "pc", "two"]);
  const kinds = new Set(progs.flatMap((p) => p.setup.flatMap((x) => (x.op === "setup" ? [x.kind] : []))));
  for (const k of ["type1", "group", "iommufd", "kvm", "ioas", "mdev", "pasid", "devices"] as const)
    assert.ok(kinds.has(k), k);
  const ops = progs.flatMap((p) => p.threads.flatMap((t) => t.ops));
  const json = JSON.stringify(ops);
  assert.match(json, /"id":"ioas"/, "IOAS ids by reference");
  assert.match(json, /"t":"access"/, "selftest access calls");
  assert.match(json, /KVM_TWIN_SET_PASID_TRANSLATION/);
  // racing: two threads of one process whose first calls name the same kind of object
  const racing = progs.filter(
    (p) =>
      p.threads.length >= 2 &&
      p.threads[0]!.p === p.threads[1]!.p &&
      JSON.stringify(p.threads[0]!.ops[0]) === JSON.stringify(p.threads[1]!.ops[0]),
  );
  assert.ok(racing.length >= 20, `the same call in two threads: ${racing.length} of 300`);
  // fuzzed ioctls are still drawn
  assert.ok(ops.some((o) => o.op === "ioctl" && /^(VFIO_DEVICE_GET|KVM_GET|IOMMU_GET|VFIO_IOMMU_GET)/.test(o.name)));
  // an rmmod by the administrator racing a thread
  assert.ok(progs.some((p) => p.admin.some((m) => !m.load && m.name === "vfio_pci") && p.threads.length === 1));
});

// Two model deadlocks the new programs found on the correct twin, now paths that wait
test("rmmod of the KVM-gated mdev racing GET_DEVICE_FD of it waits for the lock (a path): DPOR and PCT clean", () => {
  const gdf: ThreadOp = {
    op: "ioctl",
    p: 0,
    fd: { t: "group", i: 0 },
    name: "VFIO_GROUP_GET_DEVICE_FD",
    arg: { str: "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001" },
  };
  const prog: ConcurrentProgram = {
    setup: [{ op: "setup", p: 0, kind: "mdev", alt: true }],
    threads: [{ p: 0, ops: [gdf] }],
    admin: [{ op: "module", load: false, name: "vfio_kvm_gated_mdev" }],
  };
  // (the processes' exits are threads too: the search does not complete in a test's time)
  const r = explore(() => programWorld(prog, {}), { maxExecutions: 1000, preemptionBound: 2 });
  assert.deepEqual(
    r.failures.map((f) => f.violations[0]),
    [],
  );
  const pct = explore(() => programWorld(prog, {}), { strategy: "pct", maxExecutions: 300, seed: 3 });
  assert.deepEqual(
    pct.failures.map((f) => f.violations[0]),
    [],
  );
});

test("a PASID detach racing IOAS_UNMAP waits for the IOAS's locks (a path), DPOR clean", () => {
  const prog = PASID_DETACH_VS_UNMAP;
  const r = explore(() => programWorld(prog, {}), { maxExecutions: 3000, preemptionBound: 2 });
  assert.deepEqual(
    r.failures.map((f) => f.violations[0]),
    [],
  );
  assert.equal(r.complete, true);
  assert.ok(r.outcomes.size >= 1);
});
