// `vfio-twin serve` and `vfio-twin run`: the twin for unmodified programs (docs/bridge.md).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createTwin, type Twin, type TwinConfig } from "../twin.js";
import { BridgeServer } from "../bridge/server.js";
import { requireKoffi } from "../backend/host.js";
import { checkInvariants, formatViolations, holders, leakedSince } from "../check/invariants.js";
import { IommuCore } from "../iommu/iommu.js";
import type { RefCounted } from "../kernel/kref.js";
import { constants as osConstants } from "node:os";
import { type Command, emit, readUserFile, UsageError, UserError } from "./command.js";
import { faultEvent, invariantsEvent, traceEvent } from "./json.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const PRELOAD = join(ROOT, "dist/native/libvfiotwin.so");

/** The preload library, built from native/ with the system compiler if it is not there yet. */
export function preloadLibrary(): string {
  if (!existsSync(PRELOAD)) {
    const r = spawnSync("bash", [join(ROOT, "scripts/build-native.sh")], { stdio: "inherit" });
    if (r.status !== 0) throw new UserError("building the preload library failed (is a C compiler installed?)");
  }
  return PRELOAD;
}

/** The machine file: a createTwin() config; a bad one is a UserError (one line, exit 1). */
function machine(file: string | undefined): TwinConfig {
  if (!file) return {};
  const text = readUserFile(file, "machine file");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UserError(`--machine ${file}: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new UserError(`--machine ${file}: not a JSON object`);
  return v as TwinConfig;
}

/** Boot the twin of `--machine`; a description the twin refuses is a UserError. */
function boot(file: string | undefined): Twin {
  const config = machine(file);
  try {
    return createTwin(config);
  } catch (e) {
    throw new UserError(`--machine ${file}: ${(e as Error).message}`);
  }
}

const BRIDGE_OPTIONS = {
  socket: { type: "string", value: "PATH", help: "the server's Unix socket" },
  machine: { type: "string", value: "FILE.json", help: "the machine: a createTwin() config as JSON" },
} as const;

export const serveCommand: Command = {
  name: "serve",
  summary: "serve one twin kernel to unmodified programs on a Unix socket",
  options: BRIDGE_OPTIONS,
  details:
    "Runs until SIGINT or SIGTERM, then checks every invariant (exit 1 if one fails). With --json:\n" +
    "JSON lines on stdout: listening (socket, the environment a program needs), log, invariants.",
  async run({ values, json }) {
    requireKoffi("vfio-twin serve");
    const path = (values.socket as string | undefined) ?? join(tmpdir(), "vfio-twin.sock");
    const twin = boot(values.machine as string | undefined);
    const log = json ? (l: string) => emit({ type: "log", text: l }) : (l: string) => console.error(`vfio-twin: ${l}`);
    const srv = new BridgeServer(twin, { log });
    await srv.listen(path);
    // the handlers are in place before anyone is told where to connect (and may stop us)
    const stopped = new Promise<void>((res) => {
      const stop = () => res();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    const env = { VFIO_TWIN_SOCKET: path, LD_PRELOAD: preloadLibrary() };
    if (json) emit({ type: "listening", socket: path, env });
    else {
      console.error(`vfio-twin: serving on ${path}; run programs with`);
      console.error(`  VFIO_TWIN_SOCKET=${path} LD_PRELOAD=${env.LD_PRELOAD} PROGRAM`);
    }
    await stopped;
    await srv.close();
    const v = checkInvariants(twin.kernel);
    if (json) emit(invariantsEvent(v));
    else console.error(`vfio-twin: stopped; invariants: ${v.length ? formatViolations(v) : "ok"}`);
    return v.length ? 1 : 0;
  },
};

export const runCommand: Command = {
  name: "run",
  summary: "run an unmodified program against the twin (LD_PRELOAD bridge)",
  rest: "CMD ARGS...",
  options: {
    ...BRIDGE_OPTIONS,
    verbose: { type: "boolean", short: "v", help: "log the server's connections on stderr" },
    check: {
      type: "boolean",
      help: "after the run: the IOMMU fault log, the invariants and what the run left (exit 1 if any)",
    },
  },
  details:
    "Without --socket a twin is booted for this run (--machine picks its machine). The exit status is\n" +
    "the program's. With --json: the program's stdout goes to stderr and stdout has JSON lines only:\n" +
    "the twin's syscall events (without --socket), an exit event, and with --check fault events, the\n" +
    "invariants event and a leaks event.",
  async run({ values, rest, json }) {
    const socket = values.socket as string | undefined;
    const machineFile = values.machine as string | undefined;
    if (socket && machineFile)
      throw new UsageError("--socket and --machine exclude each other (the server has its machine)");
    if (!socket) requireKoffi("vfio-twin run");
    const lib = preloadLibrary();
    let srv: BridgeServer | null = null;
    let baseline: ReadonlySet<RefCounted> | null = null;
    let dir: string | null = null;
    let path = socket;
    if (!path) {
      const twin = boot(machineFile);
      if (json) {
        twin.kernel.trace.enabled = true;
        twin.kernel.trace.sink = (e) => emit(traceEvent(e, twin.kernel));
      }
      dir = mkdtempSync(join(tmpdir(), "vfio-twin-"));
      path = join(dir, "sock");
      const log = values.verbose ? (l: string) => console.error(`vfio-twin: ${l}`) : undefined;
      srv = new BridgeServer(twin, log ? { log } : {});
      baseline = new Set(twin.kernel.objects);
      await srv.listen(path);
    }
    const env = {
      ...process.env,
      VFIO_TWIN_SOCKET: path,
      LD_PRELOAD: [lib, process.env.LD_PRELOAD].filter(Boolean).join(" "),
    };
    // with --json stdout carries only JSON: the program's own output goes to stderr
    const stdio = json ? (["inherit", process.stderr, "inherit"] as const) : "inherit";
    const [cmd, ...cmdArgs] = rest;
    const child = spawn(cmd!, cmdArgs, { stdio: stdio as never, env });
    const { code, signal } = await new Promise<{ code: number; signal: string | null }>((res) => {
      child.on("error", (e) => {
        console.error(`vfio-twin run: ${cmd}: ${e.message}`);
        res({ code: 127, signal: null });
      });
      child.on("exit", (c, sig) =>
        res({ code: c ?? 128 + (sig ? (osConstants.signals[sig] ?? 1) : 1), signal: sig ?? null }),
      );
    });
    if (json) emit({ type: "exit", code, signal });
    let rc = code;
    if (srv) {
      // every client has gone: what it held must be released
      await waitFor(() => srv!.conns.size === 0, 2000);
      await srv.close();
      srv.twin.kernel.trace.enabled = false;
      if (values.check && !report(srv.twin, baseline!, json) && rc === 0) rc = 1;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
    return rc;
  },
};

/** After the run (--check): the IOMMU's fault log, the invariants, and anything the run left
 * in the twin (open files, pinned pages, objects: the leak registry). True when clean. */
function report(twin: Twin, baseline: ReadonlySet<RefCounted>, json: boolean): boolean {
  const k = twin.kernel;
  const faults = IommuCore.of(k).faults;
  if (json) {
    for (const f of faults) emit(faultEvent(f));
    const v = checkInvariants(k);
    emit(invariantsEvent(v));
    const left = leakedSince(k, baseline);
    emit({ type: "leaks", objects: left.map((o) => ({ object: o.describe(), holders: holders(o) })) });
    return v.length === 0 && left.length === 0;
  }
  console.error(`vfio-twin: IOMMU faults: ${faults.length}`);
  for (const f of faults)
    console.error(
      `  ${f.bdf} iova=0x${f.iova.toString(16)} ${f.write ? "write" : "read"} ${f.reason} (domain ${f.domain})`,
    );
  const v = checkInvariants(k);
  console.error(`vfio-twin: invariants after the run: ${v.length ? formatViolations(v) : "ok"}`);
  const left = leakedSince(k, baseline);
  console.error(`vfio-twin: left in the twin after the run: ${left.length ? "" : "nothing"}`);
  for (const o of left) console.error(`  ${o.describe()} held by ${holders(o)}`);
  return v.length === 0 && left.length === 0;
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
}
