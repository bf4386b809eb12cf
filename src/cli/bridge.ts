// `vfio-twin serve` and `vfio-twin run`: the twin for unmodified programs (docs/bridge.md).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createTwin, type Twin, type TwinConfig } from "../twin.js";
import { BridgeServer } from "../bridge/server.js";
import { checkInvariants, formatViolations } from "../check/invariants.js";
import type { Command } from "./main.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const PRELOAD = join(ROOT, "dist/native/libvfiotwin.so");

/** The preload library, built from native/ with the system compiler if it is not there yet. */
export function preloadLibrary(): string {
  if (!existsSync(PRELOAD)) {
    const r = spawnSync(join(ROOT, "scripts/build-native.sh"), { stdio: "inherit" });
    if (r.status !== 0) throw new Error("building the preload library failed (is a C compiler installed?)");
  }
  return PRELOAD;
}

/** The machine file: a createTwin() config; a user error is one line, not a stack. */
function machine(file: string | undefined): TwinConfig {
  if (!file) return {};
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UserError(`--machine ${file}: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new UserError(`--machine ${file}: not a JSON object`);
  return v as TwinConfig;
}

class UserError extends Error {}

/** Boot the twin of `--machine`; a bad description is one line on stderr and null. */
function boot(cmd: string, file: string | undefined): Twin | null {
  try {
    const config = machine(file);
    try {
      return createTwin(config);
    } catch (e) {
      throw new UserError(`--machine ${file}: ${(e as Error).message}`);
    }
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    console.error(`vfio-twin ${cmd}: ${e.message}`);
    return null;
  }
}

interface Parsed {
  socket?: string;
  machine?: string;
  verbose: boolean;
  check: boolean;
  rest: string[];
}

function parse(args: string[], allowRest: boolean): Parsed | string {
  const p: Parsed = { verbose: false, check: false, rest: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      if (!allowRest) return "unexpected --";
      p.rest = args.slice(i + 1);
      break;
    } else if (a === "--socket" || a === "--machine") {
      const v = args[++i];
      if (v === undefined) return `${a} needs a value`;
      if (a === "--socket") p.socket = v;
      else p.machine = v;
    } else if (a === "--verbose" || a === "-v") p.verbose = true;
    else if (a === "--check") p.check = true;
    else return `unknown argument ${a}`;
  }
  return p;
}

export const serveCommand: Command = {
  name: "serve",
  summary: "serve one twin kernel to unmodified programs on a Unix socket",
  async run(args) {
    const p = parse(args, false);
    if (typeof p === "string") {
      console.error(`vfio-twin serve: ${p}\nusage: vfio-twin serve [--socket PATH] [--machine FILE.json]`);
      return 2;
    }
    const path = p.socket ?? join(tmpdir(), "vfio-twin.sock");
    const twin = boot("serve", p.machine);
    if (!twin) return 1;
    const srv = new BridgeServer(twin, { log: (l) => console.error(`vfio-twin: ${l}`) });
    await srv.listen(path);
    console.error(`vfio-twin: serving on ${path}; run programs with`);
    console.error(`  VFIO_TWIN_SOCKET=${path} LD_PRELOAD=${preloadLibrary()} PROGRAM`);
    await new Promise<void>((res) => {
      const stop = () => res();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    await srv.close();
    const v = checkInvariants(twin.kernel);
    console.error(`vfio-twin: stopped; invariants: ${v.length ? formatViolations(v) : "ok"}`);
    return v.length ? 1 : 0;
  },
};

export const runCommand: Command = {
  name: "run",
  summary: "run an unmodified program against the twin (LD_PRELOAD bridge)",
  async run(args) {
    const p = parse(args, true);
    if (typeof p === "string" || p.rest.length === 0) {
      console.error(
        `vfio-twin run: ${typeof p === "string" ? p : "no program given"}\n` +
          "usage: vfio-twin run [--socket PATH | --machine FILE.json] [--verbose] [--check] -- CMD ARGS...",
      );
      return 2;
    }
    if (p.socket && p.machine) {
      console.error("vfio-twin run: --socket and --machine exclude each other (the server has its machine)");
      return 2;
    }
    const lib = preloadLibrary();
    let srv: BridgeServer | null = null;
    let dir: string | null = null;
    let path = p.socket;
    if (!path) {
      dir = mkdtempSync(join(tmpdir(), "vfio-twin-"));
      path = join(dir, "sock");
      const log = p.verbose ? (l: string) => console.error(`vfio-twin: ${l}`) : undefined;
      const twin = boot("run", p.machine);
      if (!twin) return 1;
      srv = new BridgeServer(twin, log ? { log } : {});
      await srv.listen(path);
    }
    const env = {
      ...process.env,
      VFIO_TWIN_SOCKET: path,
      LD_PRELOAD: [lib, process.env.LD_PRELOAD].filter(Boolean).join(" "),
    };
    const child = spawn(p.rest[0]!, p.rest.slice(1), { stdio: "inherit", env });
    const code = await new Promise<number>((res) => {
      child.on("error", (e) => {
        console.error(`vfio-twin run: ${p.rest[0]}: ${e.message}`);
        res(127);
      });
      child.on("exit", (c, sig) =>
        res(
          c ??
            128 +
              (sig ? (({ SIGKILL: 9, SIGSEGV: 11, SIGABRT: 6, SIGTERM: 15 } as Record<string, number>)[sig] ?? 1) : 1),
        ),
      );
    });
    let rc = code;
    if (srv) {
      // every client has gone: what it held must be released
      await waitFor(() => srv!.conns.size === 0, 2000);
      await srv.close();
      if (p.check) {
        const v = checkInvariants(srv.twin.kernel);
        console.error(`vfio-twin: invariants after the run: ${v.length ? formatViolations(v) : "ok"}`);
        if (v.length && rc === 0) rc = 1;
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
    return rc;
  },
};

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
}
