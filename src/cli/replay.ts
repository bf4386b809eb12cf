// `vfio-twin replay FILE`: run the schedule an explore violation saved (its world, design and
// broken switches, thread by thread, step by step) and print it strace-like with the
// interleaving marked; exit 1 when the violation reproduces, 0 when it no longer does.

import { readFileSync } from "node:fs";
import { replayTrace } from "../check/run.js";
import type { Command } from "./main.js";

export const replayCommand: Command = {
  name: "replay",
  summary: "replay a violation saved by `vfio-twin explore` (FILE)",
  run(args) {
    const file = args.find((a) => !a.startsWith("--"));
    if (file === undefined || args.includes("--help")) {
      console.log("usage: vfio-twin replay FILE");
      return file === undefined ? 2 : 0;
    }
    let r;
    try {
      r = replayTrace(readFileSync(file, "utf8"));
    } catch (e) {
      console.error(`${file}: ${e instanceof Error ? e.message : String(e)}`);
      return 2;
    }
    const t = r.trace;
    console.log(
      `# world ${t.world}, design ${t.design}${t.variant ? `, variant ${t.variant}` : ""}${t.broken.length ? ` (broken: ${t.broken.join(", ")})` : ""}`,
    );
    for (const l of r.lines) console.log(l);
    console.log(
      r.same
        ? "reproduced exactly"
        : r.failed
          ? "a violation, but not the saved one"
          : "the violation no longer reproduces",
    );
    return r.failed ? 1 : 0;
  },
};
