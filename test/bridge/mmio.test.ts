// native/mmio.c, the BAR emulation every bridged mmap of a device region relies on: its own C
// test (native/test_mmio.c: every decoded instruction form against a callback, signal
// chaining, SIGBUS to the program's handler, deaths that must still kill, threads) built three
// ways as the Makefile does, and the smoke run of unmodified programs with their own SIGSEGV
// handlers under a preload that installed the emulation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./harness.js";

const make = (target: string) =>
  spawnSync("make", ["-s", "-C", join(ROOT, "native"), target], { encoding: "utf8", timeout: 120_000 });

test("the MMIO emulation's own test passes at -O0, -O2 and as a shared library", () => {
  const r = make("test");
  assert.equal(r.status, 0, r.stdout.slice(-3000) + r.stderr);
  const totals = r.stdout.split("\n").filter((l) => /^\d+ passed, \d+ failed$/.test(l));
  assert.equal(totals.length, 3, r.stdout.slice(-2000));
  for (const t of totals) assert.match(t, /^\d+ passed, 0 failed$/);
});

test("programs with their own SIGSEGV/USR1 handlers behave under the emulation", () => {
  const r = make("smoke");
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ok bash trap/);
  assert.match(r.stdout, /ok python faulthandler chained/);
});
