// Running the CLI in this process with its output captured, for the CLI's tests.

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cli } from "../../src/cli/main.js";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const MAIN = join(ROOT, "dist/src/cli/main.js");
export const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

export interface Ran {
  code: number;
  out: string;
  err: string;
}

/** The CLI in this process, stdout and stderr captured. */
export async function run(...argv: string[]): Promise<Ran> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.map(String).join(" ") + "\n");
  console.error = (...a: unknown[]) => err.push(a.map(String).join(" ") + "\n");
  try {
    const code = await cli(argv);
    return { code, out: out.join(""), err: err.join("") };
  } finally {
    console.log = log;
    console.error = error;
  }
}
