// Proof that the explorer finds real kernel bugs: each broken variant of src/check/variants.ts
// is found within its stated budget of executions, from the library and from the CLI, and a
// replay of the saved trace reproduces it exactly; the correct model passes the same worlds
// with the same budget clean (each of these small worlds is searched to completion).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runExplore, replayTrace } from "../../src/check/run.js";
import { VARIANTS } from "../../src/check/variants.js";
import { exploreCommand } from "../../src/cli/explore.js";
import { replayCommand } from "../../src/cli/replay.js";
import { parseInvocation } from "../../src/cli/command.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "../../src/cli/main.js");
const TMP = mkdtempSync(join(tmpdir(), "vfio-twin-variants-"));

async function cli(cmd: typeof exploreCommand, args: string[]): Promise<{ rc: number; out: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => lines.push(String(s));
  try {
    const rc = await cmd.run(parseInvocation(cmd, args));
    return { rc, out: lines.join("\n") };
  } finally {
    console.log = log;
  }
}

for (const v of VARIANTS) {
  test(`variant ${v.name} (${/^[0-9a-f]{12}$/.test(v.fix) ? v.fix : "no fix commit"}) is found within ${v.budget} executions; the correct model is clean`, async () => {
    // library
    const bad = runExplore({ variant: v.name, budget: v.budget });
    assert.ok(bad.trace, `${v.name}: not found in ${v.budget} executions`);
    assert.ok(bad.executions <= v.budget);
    assert.ok(bad.trace.violations.length > 0);
    const again = replayTrace(JSON.stringify(bad.trace));
    assert.equal(again.same, true, `${v.name}: the replay differs:\n${again.lines.join("\n")}`);

    const good = runExplore({ world: v.world, ...(v.design ? { design: v.design } : {}), budget: v.budget });
    assert.equal(good.trace, null, good.text?.join("\n"));
    assert.equal(good.complete, true, `${v.world}: not searched to completion within ${v.budget}`);

    // CLI: exit 1 with the trace saved, and `replay` reproduces it; the correct model exits 0
    const file = join(TMP, `${v.name}.json`);
    const r = await cli(exploreCommand, ["--variant", v.name, "--budget", String(v.budget), "--out", file]);
    assert.equal(r.rc, 1, r.out);
    assert.match(r.out, /VIOLATION/);
    assert.equal(JSON.parse(readFileSync(file, "utf8")).variant, v.name);
    const rp = await cli(replayCommand, [file]);
    assert.equal(rp.rc, 1);
    assert.match(rp.out, /reproduced exactly/);
    const ok = await cli(exploreCommand, [
      "--world",
      v.world,
      ...(v.design ? ["--design", v.design] : []),
      "--budget",
      String(v.budget),
      "--json",
    ]);
    assert.equal(ok.rc, 0, ok.out);
    const j = JSON.parse(ok.out) as { violation: unknown; complete: boolean };
    assert.equal(j.violation, null);
    assert.equal(j.complete, true);
  });
}

test("the CLI binary: --list-variants prints a name and its fix on each line; explore exits 1 on a variant, 0 clean", () => {
  const list = spawnSync(process.execPath, [MAIN, "explore", "--list-variants"], { encoding: "utf8" });
  assert.equal(list.status, 0);
  const lines = list.stdout.trim().split("\n");
  assert.equal(lines.length, VARIANTS.length);
  for (const [i, v] of VARIANTS.entries()) assert.ok(lines[i]!.startsWith(`${v.name} `) && lines[i]!.includes(v.fix));
  for (const c of ["51cdc8bc120e", "2b48f52f2bff", "90b1253e4139", "6f9c4d8c468c"])
    assert.match(list.stdout, new RegExp(c));
  const file = join(TMP, "bin.json");
  const bad = spawnSync(
    process.execPath,
    [MAIN, "explore", "--variant", "set-kvm-group-lock", "--out", file, "--json"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(bad.status, 1, bad.stderr);
  assert.equal(JSON.parse(bad.stdout).violation.violations[0].check, "lockdep");
  const rp = spawnSync(process.execPath, [MAIN, "replay", file], { encoding: "utf8" });
  assert.equal(rp.status, 1);
  assert.match(rp.stdout, /---- (switch|preempt): open_mdev -> close_kvm_vfio ----/);
  const good = spawnSync(process.execPath, [MAIN, "explore", "--world", "kvm-file-add-del", "--seed", "3"], {
    encoding: "utf8",
  });
  assert.equal(good.status, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /search complete/);
});
