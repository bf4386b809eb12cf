#!/usr/bin/env node
// vfio-twin's command line. Each command lives in its own file and registers in COMMANDS.

import { demoCommand } from "./demo.js";
import { designsCommand } from "./designs.js";
import { eduCommand } from "./edu.js";
import { scriptCommand } from "./script.js";
import { runCommand, serveCommand } from "./bridge.js";
import { fuzzCommand } from "./fuzz.js";
import { holdersCommand } from "./holders.js";
import { graphCommand } from "./graph.js";

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** returns the process exit code */
  run(args: string[]): number | Promise<number>;
}

const COMMANDS: Command[] = [
  demoCommand,
  designsCommand,
  scriptCommand,
  eduCommand,
  serveCommand,
  runCommand,
  fuzzCommand,
  holdersCommand,
  graphCommand,
];

function usage(): string {
  return ["usage: vfio-twin <command> [args]", "", ...COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`)].join(
    "\n",
  );
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    console.error(usage());
    return name === undefined || name === "help" || name === "--help" ? 0 : 2;
  }
  return cmd.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
