// The command line's conventions, for the tool and every command in its table (a command
// added later is held to them by the same loops): help on stdout with exit 0, --version,
// usage errors as one line with exit 2, user errors as one line without a stack with exit 1.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { COMMANDS } from "../../src/cli/main.js";
import { MAIN, type Ran, run, VERSION } from "./harness.js";
import { commandHelp } from "../../src/cli/command.js";

/** A usage or user error: exactly one line on stderr, nothing on stdout, no stack. */
function oneLine(r: Ran, code: number, re: RegExp): void {
  assert.equal(r.code, code, r.err);
  assert.equal(r.out, "");
  assert.equal(r.err.split("\n").length, 2, `one line: ${r.err}`);
  assert.doesNotMatch(r.err, /^\s+at /m);
  assert.match(r.err, re);
}

test("the tool's help is on stdout with exit 0 (-h, --help, help), listing every command", async () => {
  for (const a of [["-h"], ["--help"], ["help"]]) {
    const r = await run(...a);
    assert.equal(r.code, 0);
    assert.equal(r.err, "");
    assert.match(r.out, /^usage: vfio-twin COMMAND/);
    for (const c of COMMANDS) assert.match(r.out, new RegExp(`^  ${c.name} +${c.summary.slice(0, 20)}`, "m"));
  }
});

test("--version and -V print the package's version", async () => {
  for (const a of ["--version", "-V"]) assert.deepEqual(await run(a), { code: 0, out: `${VERSION}\n`, err: "" });
});

test("every command's help is on stdout with exit 0, and names each of its options", async () => {
  for (const c of COMMANDS) {
    for (const a of [
      [c.name, "-h"],
      [c.name, "--help"],
      ["help", c.name],
      [c.name, "--json", "--help"],
    ]) {
      const r = await run(...a);
      assert.equal(r.code, 0, `${a.join(" ")}: ${r.err}`);
      assert.equal(r.err, "");
      assert.equal(r.out, commandHelp(c) + "\n");
      assert.match(r.out, new RegExp(`^usage: vfio-twin ${c.name} `));
      for (const o of [...Object.keys(c.options ?? {}), "json", "help"]) assert.match(r.out, new RegExp(`--${o}\\b`));
    }
  }
});

test("an unknown command, a missing one and an unknown top-level option: one line, exit 2", async () => {
  oneLine(await run("bogus"), 2, /^vfio-twin: unknown command bogus \(see vfio-twin --help\)$/m);
  oneLine(await run(), 2, /^vfio-twin: missing command \(one of demo, /);
  oneLine(await run("--frobnicate"), 2, /^vfio-twin: unknown option --frobnicate/);
  oneLine(await run("help", "bogus"), 2, /unknown command bogus/);
});

test("every command rejects an unknown option (one line naming it, exit 2) before doing anything", async () => {
  for (const c of COMMANDS) {
    const r = await run(c.name, "--no-such-option", ...(c.rest ? ["--", "true"] : []));
    oneLine(
      r,
      2,
      new RegExp(`^vfio-twin ${c.name}: unknown option --no-such-option \\(see vfio-twin ${c.name} --help\\)$`, "m"),
    );
    oneLine(await run(c.name, "-Z"), 2, /unknown option -Z/);
  }
});

test("arguments: extra, missing, without a value, outside the choices, not an integer: one line, exit 2", async () => {
  oneLine(await run("demo", "extra"), 2, /^vfio-twin demo: unexpected argument extra/);
  oneLine(await run("designs", "a", "b"), 2, /unexpected argument a/);
  oneLine(await run("script"), 2, /^vfio-twin script: missing FILE/);
  oneLine(await run("script", "a", "b"), 2, /unexpected argument b/);
  oneLine(await run("fuzz", "--seconds"), 2, /^vfio-twin fuzz: option --seconds needs a value/);
  oneLine(await run("fuzz", "--seed", "x"), 2, /--seed needs a non-negative integer, not x/);
  oneLine(await run("script", "--backend", "qemu", "f"), 2, /--backend must be one of twin, host, not qemu/);
  oneLine(await run("demo", "--json=yes"), 2, /option --json takes no value/);
  oneLine(
    await run("fuzz", "--seed", "-1"),
    2,
    /option --seed needs a value \(one starting with "-" goes as --seed=VALUE\)/,
  );
  oneLine(await run("run"), 2, /^vfio-twin run: missing -- CMD ARGS\.\.\./);
  oneLine(await run("run", "--socket", "/x", "--machine", "/y", "--", "true"), 2, /exclude each other/);
});

test("user errors (a missing file, a directory, a malformed file) are one line without a stack, exit 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-cli-"));
  try {
    const junk = join(dir, "junk.json");
    writeFileSync(junk, "{ not json");
    oneLine(await run("script", "/no/such.txt"), 1, /^vfio-twin script: \/no\/such\.txt: no such scenario file$/m);
    oneLine(await run("script", dir), 1, /: is a directory, not a scenario file$/m);
    oneLine(await run("fidelity", "/no/such"), 1, /^vfio-twin fidelity: \/no\/such: no such corpus directory$/m);
    oneLine(await run("fidelity", junk), 1, /junk\.json: not a directory$/m);
    oneLine(await run("fidelity", dir), 1, /: no scenarios \(NAME\.txt\) in it$/m);
    oneLine(await run("script", "--compare", "/no/such"), 1, /no such corpus directory/);
    oneLine(
      await run("fuzz", "--replay", "/no/such.json"),
      1,
      /^vfio-twin fuzz: \/no\/such\.json: no such fuzz program$/m,
    );
    oneLine(await run("fuzz", "--replay", junk), 1, /^vfio-twin fuzz: .*junk\.json: not a fuzz program \(/m);
    oneLine(await run("run", "--machine", junk, "--", "true"), 1, /^vfio-twin run: --machine .*junk\.json: /m);
    oneLine(await run("run", "--machine", dir, "--", "true"), 1, /is a directory, not a machine file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a malformed scenario line: PARSE_ERROR as the C runner prints it, its reason on stderr, exit 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-cli-"));
  try {
    const f = join(dir, "s.txt");
    writeFileSync(f, "open c /dev/vfio/vfio\nfrobnicate 1\ncheck_ext $c BOGUS_EXT\nsleep zz\nsleep 99999\n");
    const r = await run("script", f);
    assert.equal(r.code, 1);
    assert.deepEqual(r.out.split("\n").slice(1, -2), [
      "STEP 1 open 0 0 OK",
      "STEP 2 frobnicate PARSE_ERROR",
      "STEP 3 check_ext PARSE_ERROR",
      "STEP 4 sleep PARSE_ERROR",
      "STEP 5 sleep PARSE_ERROR",
    ]);
    assert.equal(
      r.err,
      [
        `vfio-twin script: ${f}:2: frobnicate: unknown command frobnicate`,
        `vfio-twin script: ${f}:3: check_ext: unknown flag BOGUS_EXT`,
        `vfio-twin script: ${f}:4: sleep: not a number: zz`,
        `vfio-twin script: ${f}:5: sleep: sleep must be 0 to 10000 ms`,
        "",
      ].join("\n"),
    );
    // a well-formed scenario: exit 0, nothing on stderr
    writeFileSync(f, "open c /dev/vfio/vfio\nvfio_api $c\n");
    const ok = await run("script", f);
    assert.equal(ok.err, "");
    assert.equal(ok.code, 0);
    assert.match(ok.out, /^STEP 2 vfio_api 0 0 OK$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the installed binary: streams and exit codes as the in-process runs (help 0, usage 2, user error 1)", () => {
  const node = (...a: string[]) => spawnSync(process.execPath, [MAIN, ...a], { encoding: "utf8" });
  const h = node("-h");
  assert.equal(h.status, 0);
  assert.match(h.stdout, /^usage: vfio-twin COMMAND/);
  assert.equal(h.stderr, "");
  const u = node("demo", "--bogus");
  assert.equal(u.status, 2);
  assert.equal(u.stdout, "");
  assert.equal(u.stderr, "vfio-twin demo: unknown option --bogus (see vfio-twin demo --help)\n");
  const e = node("script", "/no/such.txt");
  assert.equal(e.status, 1);
  assert.equal(e.stderr, "vfio-twin script: /no/such.txt: no such scenario file\n");
});

test("a pipe that reads slowly still gets all of a large output (no exit before stdout drained)", () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-cli-"));
  try {
    const big = join(dir, "big.txt");
    // ~150 KB of JSON lines: more than a pipe holds
    writeFileSync(big, "open c /dev/vfio/vfio\n" + "vfio_api $c\n".repeat(800));
    const file = join(dir, "out.json");
    const sh = (cmd: string) => spawnSync("sh", ["-c", cmd], { encoding: "utf8" });
    sh(`"${process.execPath}" "${MAIN}" script --json "${big}" > "${file}"`);
    const whole = readFileSync(file).length;
    assert.ok(whole > 100_000, `${whole} bytes`);
    const piped = sh(`"${process.execPath}" "${MAIN}" script --json "${big}" | (sleep 0.5; wc -c)`);
    assert.equal(Number(piped.stdout.trim()), whole);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
