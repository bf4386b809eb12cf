// `vfio-twin script FILE [--backend twin|host] [--bdf BDF]`: run a scenario of the oracle's
// language (../shared/oracle/guest/vfio_script.c) and print its INFO/STEP/DONE lines, so that
// `diff` against the real kernel's output is the test.
// `vfio-twin script --compare DIR`: run every scenario of a corpus directory on the twin and
// count, per scenario, the steps that match the kernel's recorded golden.

import { readFileSync } from "node:fs";
import type { Backend } from "../backend/backend.js";
import { createTwin } from "../twin.js";
import { loadCorpus, MUST_MATCH, ORACLE_PROCESS, runOnTwin } from "../vmm/corpus.js";
import { formatMismatch } from "../vmm/fidelity.js";
import { runScript } from "../vmm/script.js";
import type { Command } from "./main.js";

export { runScript } from "../vmm/script.js";

function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function hostBackend(): Promise<Backend> {
  // the FFI backend is loaded only when asked for
  const { createHost } = await import("../backend/host.js");
  return createHost();
}

/** The fidelity table; the first mismatch of each scenario (every one with `all`). */
export function compareCorpus(dir: string, log: (s: string) => void, all = false): number {
  let total = 0;
  let matched = 0;
  let expected = 0;
  let failures = 0;
  const details: string[] = [];
  log(`${"scenario".padEnd(28)} ${"match".padStart(9)}  status`);
  for (const e of loadCorpus(dir)) {
    if (e.golden === null) {
      log(`${e.name.padEnd(28)} ${"-".padStart(9)}  no golden recorded`);
      continue;
    }
    const { cmp } = runOnTwin(e);
    total += cmp.total;
    matched += cmp.matched;
    expected += cmp.expected;
    const must = e.status === MUST_MATCH;
    if (must && cmp.mismatches.length) failures++;
    const frac = `${cmp.matched}/${cmp.total}`;
    const exp = cmp.expected ? ` (+${cmp.expected} expected diffs)` : "";
    log(`${e.name.padEnd(28)} ${frac.padStart(9)}  ${e.status ?? "unlisted"}${exp}`);
    for (const m of all ? cmp.mismatches : cmp.mismatches.slice(0, 1)) details.push(formatMismatch(e.name, m));
  }
  log(
    `${"total".padEnd(28)} ${`${matched}/${total}`.padStart(9)}  steps match the kernel; ${expected} deliberate differences`,
  );
  if (details.length)
    log(["", all ? "mismatches:" : "first mismatch of each scenario (--all for every one):", ...details].join("\n"));
  return failures ? 1 : 0;
}

export const scriptCommand: Command = {
  name: "script",
  summary: "run an oracle scenario (FILE) and print its STEP lines; --compare DIR counts matches",
  async run(args) {
    const dir = opt(args, "--compare");
    if (dir !== undefined) return compareCorpus(dir, (s) => console.log(s), args.includes("--all"));
    const file = args.find((a, i) => !a.startsWith("--") && !(i > 0 && args[i - 1]!.startsWith("--")));
    if (!file) {
      console.error("usage: vfio-twin script FILE [--backend twin|host] [--bdf BDF] | --compare DIR [--all]");
      return 2;
    }
    const kind = opt(args, "--backend") ?? "twin";
    if (kind !== "twin" && kind !== "host") {
      console.error(`unknown backend ${kind}`);
      return 2;
    }
    const backend: Backend = kind === "twin" ? createTwin() : await hostBackend();
    const p = backend.spawn(kind === "twin" ? ORACLE_PROCESS : {});
    const bdf = opt(args, "--bdf");
    const lines = runScript(readFileSync(file, "utf8"), p, bdf ? { bdf } : {});
    backend.kill(p);
    for (const l of lines) console.log(l);
    return 0;
  },
};
