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
import { runSchedule } from "../../src/check/explorer.js";
import { concurrentProgramArb, programWorld, removeWhileFailing } from "../../src/check/random_program.js";
import { replayTrace, runExplore } from "../../src/check/run.js";
import { run } from "../cli/harness.js";

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
