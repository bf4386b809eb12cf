// `vfio-twin replay FILE`: run the schedule an explore violation saved (its world, design and
// broken switches, thread by thread, step by step) and print it strace-like with the
// interleaving marked; exit 1 when the violation reproduces, 0 when it no longer does.

import { programLines } from "../check/random_program.js";
import { replayTrace } from "../check/run.js";
import { type Command, readUserFile, toJson, UserError } from "./command.js";

export const replayCommand: Command = {
  name: "replay",
  summary: "replay a violation saved by `vfio-twin explore`, step by step",
  args: "FILE",
  details: "Exit 1 when the violation reproduces, 0 when it no longer does. With --json: one JSON document.",
  run({ positionals, json }) {
    const file = positionals[0]!;
    const text = readUserFile(file, "explore trace");
    let r;
    try {
      r = replayTrace(text);
    } catch (e) {
      throw new UserError(`${file}: not an explore trace (${(e as Error).message.split("\n")[0]})`);
    }
    const t = r.trace;
    if (json) {
      console.log(toJson({ trace: t, reproduced: r.same, failed: r.failed, lines: r.lines }));
      return r.failed ? 1 : 0;
    }
    console.log(
      `# world ${t.world}, design ${t.design}${t.variant ? `, variant ${t.variant}` : ""}${t.broken.length ? ` (broken: ${t.broken.join(", ")})` : ""}`,
    );
    if (t.program) for (const l of programLines(t.program)) console.log(`# ${l}`);
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
