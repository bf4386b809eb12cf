// What the bridge tests need: the preload library (built from native/ with the system C
// compiler), the oracle's C programs built for this host (scripts/build-clients.sh: the 6.12
// uapi headers, vfio_script, the kernel's iommufd selftest and iommufd_fail_nth), a server on
// a fresh twin, and a way to run a real program against it.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createTwin, type Twin, type TwinConfig } from "../../src/twin.js";
import { BridgeServer } from "../../src/bridge/server.js";
import { preloadLibrary } from "../../src/cli/bridge.js";
import { checkInvariants, formatViolations, holders, leakedSince } from "../../src/check/invariants.js";
import type { RefCounted } from "../../src/kernel/kref.js";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const ORACLE = resolve(ROOT, "../shared/oracle");
const HOST_OUT = join(
  process.env.ORACLE_TMP ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "vfio-oracle"),
  "out/host",
);

/** The 6.12 uapi headers the oracle's build made (for C tests that need 6.12 structs). */
export function uapiInclude(): string | null {
  try {
    return readFileSync(join(HOST_OUT, "uapi-include-dir"), "utf8").trim();
  } catch {
    return null;
  }
}

export interface HostPrograms {
  vfioScript: string;
  selftest: string;
  failNth: string;
}

/** The oracle's programs as host binaries (scripts/build-clients.sh, which `npm test` runs
 * first), or why they are not there. */
export function hostPrograms(): HostPrograms | string {
  const progs = {
    vfioScript: join(HOST_OUT, "vfio_script"),
    selftest: join(HOST_OUT, "iommufd_selftest"),
    failNth: join(HOST_OUT, "iommufd_fail_nth"),
  };
  if (!existsSync(join(ORACLE, "build.sh"))) return `no oracle at ${ORACLE} to build the C clients from`;
  const missing = Object.values(progs).filter((p) => !existsSync(p));
  if (missing.length) throw new Error(`${missing.join(", ")} missing: run scripts/build-clients.sh (npm test does)`);
  return progs;
}

export interface Served {
  twin: Twin;
  server: BridgeServer;
  socket: string;
  baseline: ReadonlySet<RefCounted>;
  stop(): Promise<void>;
}

/** A server on a fresh twin. Device time moves only with the clients' sleeps unless
 * `wallClock` (a program that polls without sleeping needs it). */
export async function serve(config: TwinConfig = {}, o: { wallClock?: boolean } = {}): Promise<Served> {
  preloadLibrary();
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-test-"));
  const socket = join(dir, "sock");
  const twin = createTwin(config);
  const server = new BridgeServer(twin, { wallClock: o.wallClock ?? false });
  await server.listen(socket);
  return {
    twin,
    server,
    socket,
    baseline: new Set(twin.kernel.objects),
    async stop() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function clientEnv(s: Served): NodeJS.ProcessEnv {
  return { ...process.env, VFIO_TWIN_SOCKET: s.socket, LD_PRELOAD: preloadLibrary() };
}

/** Run a program under the bridge to its end, feeding it `stdin`. */
export function runClient(s: Served, argv: string[], stdin = ""): Promise<Run> {
  return new Promise((res, rej) => {
    const c = spawn(argv[0]!, argv.slice(1), { env: clientEnv(s), stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("error", rej);
    c.on("close", (code, signal) => res({ code, signal, stdout, stderr }));
    c.stdin.end(stdin);
  });
}

/** Wait until every client connection is gone (their exit has been processed). */
export async function quiesce(s: Served, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (s.server.conns.size !== 0) {
    if (Date.now() > end) throw new Error(`${s.server.conns.size} client(s) still connected`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The whole twin after the clients: every invariant, and nothing left from the run. */
export function twinProblems(s: Served): string {
  const out: string[] = [];
  const v = checkInvariants(s.twin.kernel);
  if (v.length) out.push(formatViolations(v));
  for (const o of leakedSince(s.twin.kernel, s.baseline)) out.push(`leaked: ${o.describe()} held by ${holders(o)}`);
  if (s.twin.kernel.processes.size) out.push(`processes left: ${[...s.twin.kernel.processes.keys()].join(", ")}`);
  return out.join("\n");
}
