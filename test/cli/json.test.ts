// --json on every command: stdout is JSON only (one document, or one event a line), with
// syscalls as decoded fields, errno names, holders on EBUSY and the invariant results.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { traceEvent } from "../../src/cli/json.js";
import { TraceEvent } from "../../src/kernel/trace.js";
import { arr, cstr, int, sym } from "../../src/trace/value.js";
import { createTwin } from "../../src/twin.js";
import { MAIN, ROOT, run } from "./harness.js";

type Ev = Record<string, unknown> & { type: string };

/** Every stdout line is one JSON object with a type. */
function jsonl(out: string): Ev[] {
  const lines = out.trimEnd().split("\n");
  return lines.map((l) => {
    const v = JSON.parse(l) as Ev;
    assert.equal(typeof v.type, "string", l);
    return v;
  });
}

/** Every reference name in a list of held objects' chains. */
function refs(held: unknown): string[] {
  const out: string[] = [];
  const walk = (links: { ref: string; heldBy: unknown[] }[]) => {
    for (const l of links) {
      out.push(l.ref);
      walk(l.heldBy as { ref: string; heldBy: unknown[] }[]);
    }
  };
  for (const o of held as { holders: { ref: string; heldBy: unknown[] }[] }[]) walk(o.holders);
  return out;
}

test("traceEvent: the trace event's structured form; EBUSY carries holders (the trace's chains, the path's, or null)", () => {
  const twin = createTwin();
  const k = twin.kernel;
  const e = new TraceEvent(
    1,
    2,
    0,
    "ioctl",
    [
      { name: "fd", value: int(5) },
      { name: "request", value: sym("VFIO_GROUP_SET_CONTAINER") },
      { name: "arg", value: arr([int(6)]) },
    ],
    -16,
  );
  assert.deepEqual(traceEvent(e), {
    type: "syscall",
    seq: 1,
    pid: 2,
    t: 0,
    syscall: "ioctl",
    args: { fd: 5, request: "VFIO_GROUP_SET_CONTAINER", arg: [6] },
    result: -1,
    errno: "EBUSY",
    error: "Device or resource busy",
    text: "ioctl(5, VFIO_GROUP_SET_CONTAINER, [6]) = -1 EBUSY (Device or resource busy)",
    holders: null,
  });
  const chain = [{ object: "vfio_group 1", kind: "vfio_group", holders: [] }];
  e.holders = chain;
  assert.deepEqual(traceEvent(e).holders, chain);
  const p = twin.spawn();
  assert.ok(p.open("/dev/vfio/1") >= 0);
  const open = new TraceEvent(2, 2, 0, "openat", [{ name: "pathname", value: cstr("/dev/vfio/1") }], -16);
  assert.deepEqual(
    (traceEvent(open, k).holders as { holder: string }[]).map((h) => h.holder),
    [`fd 3 of pid ${p.pid}`],
  );
  const ok = new TraceEvent(3, 2, 0, "close", [{ name: "fd", value: int(3) }], 0);
  assert.equal("holders" in traceEvent(ok), false);
});

test("demo --json: JSON lines only; decoded syscalls, EBUSY with its holders, the fault, the invariants", async () => {
  const r = await run("demo", "--json");
  assert.equal(r.code, 0);
  assert.equal(r.err, "");
  const ev = jsonl(r.out);
  type Args = Record<string, unknown>;
  const attr = ev.find((e) => e.type === "syscall" && (e.args as Args).request === "KVM_SET_DEVICE_ATTR")!;
  const a = (attr.args as Args).arg as Args;
  assert.deepEqual([a.flags, a.group, a.attr], ["0", "KVM_DEV_VFIO_FILE", "KVM_DEV_VFIO_FILE_ADD"]);
  assert.equal(attr.result, 0);
  const busy = ev.find((e) => e.errno === "EBUSY")!;
  assert.equal(busy.syscall, "openat");
  assert.deepEqual(busy.args, { dirfd: "AT_FDCWD", pathname: "/dev/vfio/1", flags: "O_RDWR" });
  assert.deepEqual([busy.result, busy.error], [-1, "Device or resource busy"]);
  const holders = refs(busy.holders);
  assert.ok(holders.includes("fd 7 of pid 1") && holders.includes("kvm-vfio of vm 1"), holders.join());
  assert.ok(ev.some((e) => e.type === "tracepoint" && e.tracepoint === "io_page_fault"));
  const fault = ev.find((e) => e.type === "fault")!;
  assert.deepEqual([fault.bdf, fault.write, fault.reason], ["0000:00:01.0", true, "not-present"]);
  assert.deepEqual(
    ev.filter((e) => e.type === "dma").map((e) => e.arrived),
    [true, false],
  );
  assert.deepEqual(ev.at(-1), { type: "invariants", ok: true, violations: [] });
  assert.ok(
    ev.some((e) => e.type === "syscall" && e.syscall === "mmap" && /^0x7[0-9a-f]{11}$/.test(String(e.result))),
    "mmap's address decoded",
  );
});

test("edu --json: trace events, a result event per mode, the invariants", async () => {
  const r = await run("edu", "--json", "--iommufd");
  assert.equal(r.code, 0, r.err);
  const ev = jsonl(r.out);
  const res = ev.filter((e) => e.type === "result");
  assert.equal(res.length, 1);
  assert.equal(res[0]!.mode, "iommufd");
  assert.equal(res[0]!.ok, true);
  assert.equal(res[0]!.factorial, 3628800);
  assert.equal(res[0]!.replaced, true);
  assert.ok(ev.some((e) => e.type === "syscall" && (e.args as Record<string, unknown>).request === "IOMMU_IOAS_ALLOC"));
  assert.deepEqual(ev.at(-1), { type: "invariants", ok: true, violations: [] });
});

test("designs --json: one document, a report per coupling design and the PASID designs' rows", async () => {
  const r = await run("designs", "--json");
  assert.equal(r.code, 0);
  const doc = JSON.parse(r.out) as {
    coupling: { design: string; uapi: [string, string][] }[];
    pasid: { rows: { name: string; cells: Record<string, string[]> }[] };
  };
  assert.deepEqual(
    doc.coupling.map((d) => d.design),
    ["symbol-get", "file-ops", "upstream"],
  );
  assert.ok(doc.coupling[0]!.uapi.length > 3);
  const fdPassing = doc.pasid.rows.find((x) => x.name.startsWith("fd passing"))!;
  assert.equal(fdPassing.cells["vfio-translate"]!.at(-1), "rule BROKEN: 1");
  assert.equal(fdPassing.cells["process-table"]!.at(-1), "rule holds");
});

test("script --json: syscalls, one step event per line (with errno, parse errors' reasons), invariants", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-json-"));
  try {
    const f = join(dir, "s.txt");
    writeFileSync(f, "open c /dev/vfio/vfio\nopen g $GROUP\nopen g2 $GROUP\nbogus\n");
    const r = await run("script", "--json", f);
    assert.equal(r.code, 1, "a malformed line fails the run");
    const ev = jsonl(r.out);
    const steps = ev.filter((e) => e.type === "step");
    assert.deepEqual(
      steps.map((s) => [s.line, s.op, s.rc, s.errno, s.parseError]),
      [
        [1, "open", 0, undefined, undefined],
        [2, "open", 0, undefined, undefined],
        [3, "open", -1, "EBUSY", undefined],
        [4, "bogus", undefined, undefined, "unknown command bogus"],
      ],
    );
    const busy = ev.find((e) => e.type === "syscall" && e.errno === "EBUSY")!;
    assert.ok(refs(busy.holders).includes("fd 4 of pid 1"), JSON.stringify(busy.holders));
    assert.deepEqual(ev.at(-1), { type: "invariants", ok: true, violations: [] });
    assert.match(r.err, /s\.txt:4: bogus: unknown command bogus/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fidelity --json (and script --compare --json): one document with every scenario and the totals", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-json-"));
  try {
    for (const n of ["runner-language", "edu-close"])
      for (const ext of [".txt", ".golden"]) copyFileSync(join(ROOT, "test/scenarios", n + ext), join(dir, n + ext));
    writeFileSync(
      join(dir, "status.json"),
      JSON.stringify({ "runner-language": "must-match", "edu-close": "must-match" }),
    );
    const r = await run("fidelity", "--json", dir);
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out) as { scenarios: { name: string; total: number; matched: number }[]; total: number };
    assert.deepEqual(
      doc.scenarios.map((s) => [s.name, s.matched === s.total]),
      [
        ["edu-close", true],
        ["runner-language", true],
      ],
    );
    assert.equal(doc.total, doc.scenarios[0]!.total + doc.scenarios[1]!.total);
    assert.deepEqual(JSON.parse((await run("script", "--json", "--compare", dir)).out), doc);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fuzz --json: start, summary; --replay --json: the syscalls and a replay event", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-json-"));
  try {
    const r = await run("fuzz", "--json", "--programs", "3", "--seed", "7", "--out", dir);
    assert.equal(r.code, 0, r.out);
    const ev = jsonl(r.out);
    assert.deepEqual(ev[0], { type: "start", seed: 7, seconds: null, programs: 3, steps: 30 });
    assert.equal(ev.at(-1)!.type, "summary");
    assert.equal(ev.at(-1)!.failures, 0);
    const prog = join(dir, "p.json");
    writeFileSync(prog, JSON.stringify([{ op: "open", p: 0, path: "/dev/vfio/vfio" }]));
    const rr = await run("fuzz", "--json", "--replay", prog);
    assert.equal(rr.code, 0, rr.out);
    const rev = jsonl(rr.out);
    assert.ok(rev.some((e) => e.type === "syscall" && e.syscall === "openat"));
    assert.deepEqual(rev.at(-1), { type: "replay", ok: true, failures: [] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("run --json: stdout has JSON lines only (the program's output goes to stderr), an exit event", () => {
  const r = spawnSync(process.execPath, [MAIN, "run", "--json", "--check", "--", "sh", "-c", "echo hello; exit 3"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 3);
  assert.match(r.stderr, /^hello$/m);
  const ev = jsonl(r.stdout);
  assert.deepEqual(ev[0], { type: "exit", code: 3, signal: null });
  assert.deepEqual(
    ev.map((e) => e.type),
    ["exit", "invariants", "leaks"],
  );
  assert.deepEqual(ev.at(-1), { type: "leaks", objects: [] });
});

test("serve --json: a listening event with the environment, log events, the invariants when stopped", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-json-"));
  const sock = join(dir, "s.sock");
  mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, [MAIN, "serve", "--json", "--socket", sock], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.setEncoding("utf8");
  try {
    await new Promise<void>((res, rej) => {
      child.stdout.on("data", (d: string) => {
        out += d;
        if (out.includes("\n")) res();
      });
      child.on("exit", () => rej(new Error(`serve exited early: ${out}`)));
    });
    const first = jsonl(out)[0]!;
    assert.equal(first.type, "listening");
    assert.equal(first.socket, sock);
    assert.equal((first.env as Record<string, string>).VFIO_TWIN_SOCKET, sock);
    const code = await new Promise<number | null>((res) => {
      child.removeAllListeners("exit");
      child.on("exit", (c) => res(c));
      child.kill("SIGTERM");
    });
    assert.equal(code, 0);
    assert.deepEqual(jsonl(out).at(-1), { type: "invariants", ok: true, violations: [] });
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
