// The scenario corpus on disk (test/scenarios/): NAME.txt scenarios, NAME.golden kernel
// outputs, and status.json saying for each scenario whether the twin must match it now
// ("must-match") or why not yet (any other string). Used by the test and `script --compare`.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createTwin, type Twin } from "../twin.js";
import type { RefCounted } from "../kernel/kref.js";
import { compareRun, type Comparison } from "./fidelity.js";
import { runScript } from "./script.js";

export const MUST_MATCH = "must-match";

export interface CorpusEntry {
  readonly name: string;
  readonly scenario: string;
  /** null when no golden has been recorded */
  readonly golden: string | null;
  /** "must-match" or the reason it is not expected to match yet; null if unlisted */
  readonly status: string | null;
}

export function loadCorpus(dir: string): CorpusEntry[] {
  const statusPath = join(dir, "status.json");
  const status: Record<string, string> = existsSync(statusPath) ? JSON.parse(readFileSync(statusPath, "utf8")) : {};
  return readdirSync(dir)
    .filter((f) => f.endsWith(".txt"))
    .sort()
    .map((f) => {
      const name = f.slice(0, -4);
      const g = join(dir, `${name}.golden`);
      return {
        name,
        scenario: readFileSync(join(dir, f), "utf8"),
        golden: existsSync(g) ? readFileSync(g, "utf8") : null,
        status: status[name] ?? null,
      };
    });
}

/** The oracle's runner is /init's child: root, every capability, the default 8 MiB
 * RLIMIT_MEMLOCK. */
export const ORACLE_PROCESS = {
  name: "vfio_script",
  uid: 0,
  caps: Array.from({ length: 41 }, (_, i) => i),
  memlock: 8 << 20,
};

/** Run one scenario on a fresh default twin and compare it with its golden. */
export function runOnTwin(e: CorpusEntry): { lines: string[]; cmp: Comparison; twin: Twin; baseline: Set<RefCounted> } {
  const twin = createTwin();
  const baseline = new Set(twin.kernel.objects);
  const p = twin.spawn(ORACLE_PROCESS);
  const lines = runScript(e.scenario, p);
  twin.kill(p);
  return { lines, cmp: compareRun(e.scenario, e.golden ?? "", lines), twin, baseline };
}
