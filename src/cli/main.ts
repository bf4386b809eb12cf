#!/usr/bin/env node
// vfio-twin's command line.
//
// Adding a command is one entry: write src/cli/NAME.ts exporting a `Command` (./command.ts):
//
//   export const fooCommand: Command = {
//     name: "foo",
//     summary: "one line for `vfio-twin --help`",
//     args: "PATH [OBJECT]",                      // positionals; [X] is optional; omit for none
//     options: { depth: { type: "string", value: "N", integer: true, help: "how deep" } },
//     run({ values, positionals, json }) { ...; return 0; },
//   };
//
// and add `fooCommand` to COMMANDS below. Everything else is done here for every command:
// - `-h`/`--help` prints the command's help (from the same table) on stdout, exit 0;
//   `vfio-twin --help` (or `help [COMMAND]`) the tool's; `--version` the package's version;
// - an unknown command, an unknown option, a missing or extra argument, a missing option value
//   or one outside `choices`: one line on stderr saying what was wrong, exit 2;
// - a UserError (./command.ts) or a file that cannot be read, thrown from run(): one line on
//   stderr, no stack, exit 1; anything else is a bug in the twin: its stack, exit 1;
// - `--json` is accepted by every command: the command then prints only JSON on stdout, one
//   document or JSON lines of events (`emit()` in ./command.ts, the event shapes in ./json.ts);
// - run() returns the exit code: 0 when everything it checked holds, 1 otherwise.

import { readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type Command, commandHelp, parseInvocation, UsageError, UserError } from "./command.js";
import { demoCommand } from "./demo.js";
import { designsCommand } from "./designs.js";
import { eduCommand } from "./edu.js";
import { fidelityCommand, scriptCommand } from "./script.js";
import { runCommand, serveCommand } from "./bridge.js";
import { fuzzCommand } from "./fuzz.js";
import { exploreCommand } from "./explore.js";
import { replayCommand } from "./replay.js";
import { holdersCommand } from "./holders.js";
import { graphCommand } from "./graph.js";

export type { Command } from "./command.js";

/** Every command, in the order `vfio-twin --help` lists them. */
export const COMMANDS: readonly Command[] = [
  demoCommand,
  designsCommand,
  eduCommand,
  scriptCommand,
  fidelityCommand,
  fuzzCommand,
  exploreCommand,
  replayCommand,
  holdersCommand,
  graphCommand,
  runCommand,
  serveCommand,
];

const TOOL = "vfio-twin";

export function version(): string {
  // dist/src/cli/main.js -> the package root, in the repo and in an installed package alike
  const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
  return (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
}

export function toolHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    `usage: ${TOOL} COMMAND [options] [args]`,
    "",
    "An executable twin of Linux's device-passthrough control plane (KVM, VFIO, iommufd, IOMMU).",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    "",
    "options:",
    "  -h, --help     this help; COMMAND --help for a command's",
    "  -V, --version  the version",
    "",
    `Every command takes --json. Exit status: 0 ok, 1 a failed check or an error, 2 a usage error.`,
  ].join("\n");
}

/** Why a thrown error is the user's (one line, no stack), or null for a bug. */
function userMessage(e: unknown): string | null {
  if (e instanceof UserError) return e.message;
  const err = e as { code?: unknown; path?: unknown; message?: unknown };
  const code = typeof err.code === "string" ? err.code : "";
  const fsWhy: Record<string, string> = {
    ENOENT: "no such file or directory",
    EISDIR: "is a directory",
    ENOTDIR: "not a directory",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
  };
  if (fsWhy[code] && typeof err.path === "string") return `${err.path}: ${fsWhy[code]}`;
  if (code.startsWith("ERR_VFIO_TWIN_")) return String(err.message);
  return null;
}

/** Run the tool on `argv` (without node and the script); returns the exit code. */
export async function cli(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  const fail = (who: string, msg: string, code: number) => {
    console.error(`${who}: ${msg}`);
    return code;
  };
  if (first === undefined)
    return fail(TOOL, `missing command (one of ${COMMANDS.map((c) => c.name).join(", ")}; see ${TOOL} --help)`, 2);
  if (first === "-h" || first === "--help" || (first === "help" && rest.length === 0)) {
    console.log(toolHelp());
    return 0;
  }
  if (first === "-V" || first === "--version") {
    console.log(version());
    return 0;
  }
  const name = first === "help" ? rest[0]! : first;
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    if (name.startsWith("-")) return fail(TOOL, `unknown option ${name} (see ${TOOL} --help)`, 2);
    return fail(TOOL, `unknown command ${name} (see ${TOOL} --help)`, 2);
  }
  if (first === "help") {
    console.log(commandHelp(cmd));
    return 0;
  }
  const who = `${TOOL} ${cmd.name}`;
  try {
    const inv = parseInvocation(cmd, rest);
    if (inv.help) {
      console.log(commandHelp(cmd));
      return 0;
    }
    return await cmd.run(inv);
  } catch (e) {
    if (e instanceof UsageError) return fail(who, `${e.message} (see ${who} --help)`, 2);
    const m = userMessage(e);
    if (m !== null) return fail(who, m, 1);
    console.error(`${who}: internal error (a bug in vfio-twin):`);
    console.error(e);
    return 1;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

/** process.exit() drops what a pipe has not taken yet: exit once stdout and stderr drained. */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
}

if (isEntryPoint()) {
  cli(process.argv.slice(2)).then(exitAfterFlush, (e: unknown) => {
    console.error(e);
    exitAfterFlush(1);
  });
}
