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

/** An explore counterexample as `vfio-twin explore --variant iommufd-shortterm-put-early` saves
 * it: IOAS_MAP preempted between the two halves of its put (users dropped, shortterm_users
 * not yet), IOMMU_DESTROY frees the IOAS without waiting, the put's second half touches it. */
export const EXPLORE_TRACE = {
  format: "vfio-twin-explore-trace/1",
  world: "iommufd-map-vs-destroy",
  design: "upstream",
  broken: ["iommufd-shortterm-put-early"],
  variant: "iommufd-shortterm-put-early",
  threads: ["map", "destroy"],
  schedule: [0, 0, 0, 0, 1, 0],
  results: [-5, 0],
  violations: [
    {
      check: "no-kernel-bugs",
      message: "use-after-free: read of iommufd ioas 1 of iommufd ctx 6.shortterm after its release",
    },
  ],
  violationStep: 5,
};
