// The bridged ioctl round trip (issue 13): a C program's ioctl through the preload, the socket
// and the server, against the same call on the twin in-process and, where /dev/kvm exists, on
// the real kernel; and the transport's floor: the same-sized request and reply between two C
// processes over a socketpair, with no server work at all. Each C figure is the median of 21
// batches measured by native/bench/bridge_bench.c itself (no process start in the number).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createTwin } from "../src/twin.js";
import { BridgeServer } from "../src/bridge/server.js";
import { preloadLibrary } from "../src/cli/bridge.js";
import * as K from "../src/uapi/kvm.js";
import type { BenchContext, BenchRow, BenchSuite } from "./harness.js";
import { memslotNoop } from "./ioctl.js";
import { RemoteMm } from "../src/bridge/remote_mm.js";
import { createHost, koffiAvailable } from "../src/backend/host.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const TARGET_NS = 10_000;

function benchClient(): string {
  const out = join(ROOT, "dist/native/bridge_bench");
  const r = spawnSync(process.env.CC ?? "cc", ["-O2", "-Wall", "-o", out, join(ROOT, "native/bench/bridge_bench.c")], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`building bridge_bench: ${r.stderr}`);
  return out;
}

function runC(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((res, rej) => {
    const c = spawn(argv[0]!, argv.slice(1), { env, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    c.stdout.on("data", (d) => (out += d));
    c.on("error", rej);
    c.on("close", () => {
      const m = /ns=(\d+)/.exec(out);
      if (m) res(Number(m[1]));
      else rej(new Error(`${argv.join(" ")}: ${out.trim()}`));
    });
  });
}

/** A bridged client's struct read as the server makes it (RemoteMm over process_vm_readv),
 * here of this very process's memory: the copying path and decode the server used before the
 * user-memory layer, against the layer's readStruct (issue 18: one design for both). */
function remoteStructRows(ctx: BenchContext): BenchRow[] {
  if (!koffiAvailable()) return [];
  const host = createHost();
  const p = host.spawn();
  const addr = p.mmap(4096);
  const desc = K.kvm_userspace_memory_region;
  p.write(addr, desc.encode({ slot: 1, memory_size: 0x10000n, userspace_addr: 0x7f0000000000n }));
  const mm = new RemoteMm(process.pid);
  const COPY = "bridge/RemoteMm struct in: copy_from_user + decode (before)";
  const rows: BenchRow[] = [
    {
      name: COPY,
      ns: ctx.measure(() => {
        const b = mm.copyFromUser(addr, desc.size);
        return typeof b === "number" ? b : desc.decode(b);
      }),
      note: "process_vm_readv of this process, 32 bytes",
    },
    {
      name: "bridge/RemoteMm struct in: readStruct (the user-memory layer)",
      ns: ctx.measure(() => mm.readStruct(desc, addr)),
      baseline: COPY,
      note: "the same read, staged and decoded in place",
    },
  ];
  mm.exitMmap();
  host.kill(p);
  return rows;
}

async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const bin = benchClient();
  const n = String(Math.max(2100, Math.round(ctx.budgetMs * 40)));
  const rows: BenchRow[] = [...remoteStructRows(ctx)];
  const FLOOR = "bridge/floor: C<->C socketpair ping-pong, 64 B + 32 B";
  rows.push({ name: FLOOR, ns: await runC([bin, "pingpong", n], process.env), note: "the transport alone" });

  const twin = createTwin();
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-bench-"));
  const sock = join(dir, "sock");
  const srv = new BridgeServer(twin, { wallClock: false });
  await srv.listen(sock);
  const env = { ...process.env, VFIO_TWIN_SOCKET: sock, LD_PRELOAD: preloadLibrary() };
  const real = existsSync("/dev/kvm");
  // warm the server's paths first: V8's optimizing compiler works on a background thread,
  // which on two cores takes one from the spinning client or the spinning server
  for (const mode of ["check", "struct", "enotty"]) await runC([bin, mode, "20000"], env);
  for (const [mode, what] of [
    ["check", "KVM_CHECK_EXTENSION"],
    ["struct", "KVM_SET_USER_MEMORY_REGION, no change"],
    ["enotty", "unknown ioctl (EINVAL)"],
  ] as const) {
    const bridged = `bridge/bridged ${what}`;
    const inproc = `bridge/in-process ${what}`;
    const host = `bridge/real /dev/kvm ${what}`;
    rows.push({
      name: bridged,
      ns: await runC([bin, mode, n], env),
      baseline: FLOOR,
      note: `target <= ${TARGET_NS / 1000} us`,
    });
    const p = twin.spawn();
    const kvm = p.open("/dev/kvm");
    let fn: () => number;
    if (mode === "check") fn = () => p.ioctl(kvm, K.KVM_CHECK_EXTENSION, K.KVM_CAP_USER_MEMORY);
    else if (mode === "enotty") fn = () => p.ioctl(kvm, 0xaeff, 0);
    else fn = memslotNoop(p);
    rows.push({ name: inproc, ns: ctx.measure(fn), baseline: bridged, note: "the same call, no bridge" });
    twin.kill(p);
    if (real) rows.push({ name: host, ns: await runC([bin, mode, n], process.env), baseline: bridged });
  }
  if (!real) ctx.log("bridge: no /dev/kvm on this machine: the real-kernel rows are not measured");
  await srv.close();
  rmSync(dir, { recursive: true, force: true });
  return rows;
}

function summary(rows: BenchRow[]): string[] {
  const floor = rows.find((r) => r.name.startsWith("bridge/floor"));
  const b = rows.filter((r) => r.name.startsWith("bridge/bridged"));
  const worst = Math.max(...b.map((r) => r.ns));
  return [
    `bridged ioctl: ${b.map((r) => `${(r.ns / 1000).toFixed(1)} us`).join(", ")}; target <= ${TARGET_NS / 1000} us: ` +
      (worst <= TARGET_NS ? "met" : "not met"),
    floor ? `transport floor (two C processes, one request and one reply): ${(floor.ns / 1000).toFixed(1)} us` : "",
  ].filter(Boolean);
}

export const suite: BenchSuite = {
  name: "bridge",
  title: "a C program's ioctl through the LD_PRELOAD bridge, in-process and real kernel beside it",
  run,
  summary,
};
