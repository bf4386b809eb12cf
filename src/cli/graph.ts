// `vfio-twin graph [--script FILE | --replay FILE] [--html] [--all] [-o FILE]`: the object
// graph (processes -> fds -> files -> VFIO/iommufd objects -> VMs, modules) as SVG, of the
// demo's scene by default; --html writes one self-contained page that steps through the
// scenario syscall by syscall with the trace beside the graph (an explore trace: step by
// step of its interleaving, each preemption marked).

import { writeFileSync } from "node:fs";
import { busyTargets, holderIds, objectGraph, withoutStdio } from "../check/holders.js";
import { formatEvent } from "../kernel/trace.js";
import { collectSteps, renderPage } from "./graph_html.js";
import { graphSvg } from "./graph_svg.js";
import { type Command, type Invocation, runArgv, toJson, UsageError, UserError } from "./command.js";
import { runScene, SceneError, type SceneSource } from "./scene.js";

/** The graph after the scenario, or after its call `at` (a number, or the first EBUSY). */
function staticGraph(src: SceneSource, at: number | "ebusy" | undefined, all: boolean): string {
  let svg: string | null = null;
  let n = 0;
  const scene = runScene(src, (twin, e) => {
    n++;
    if (svg !== null || at === undefined || (at === "ebusy" ? e.errno !== "EBUSY" : n !== at)) return;
    const k = twin.kernel;
    const full = objectGraph(k);
    const g = all ? full : withoutStdio(full);
    const p = k.processes.get(e.pid);
    const hot = e.errno === "EBUSY" && p?.lastBusy ? holderIds(g, busyTargets(k, p, p.lastBusy, g)) : undefined;
    svg = graphSvg(g, { title: `${formatEvent(e)}`, ...(hot ? { highlight: hot } : {}) });
  });
  if (svg !== null) return svg;
  if (at !== undefined)
    throw new SceneError(
      at === "ebusy" ? `${scene.title}: no call failed with EBUSY` : `${scene.title}: only ${n} calls, not ${at}`,
    );
  const g = objectGraph(scene.kernel);
  return graphSvg(all ? g : withoutStdio(g), { title: scene.title });
}

export const graphCommand: Command = {
  name: "graph",
  summary:
    "draw the object graph (processes, fds, files, VFIO/iommufd objects, VMs, modules) as SVG; --html steps through it",
  options: {
    script: { type: "string", value: "FILE", help: "an oracle scenario file (test/scenarios/*.txt)" },
    replay: {
      type: "string",
      value: "FILE",
      help: "a counterexample: a fuzz program or an explore trace (the JSON vfio-twin fuzz or explore writes)",
    },
    at: {
      type: "string",
      value: "N|ebusy",
      help: "the graph after the Nth traced call (1-based), or after the first EBUSY with its holders outlined",
    },
    html: {
      type: "boolean",
      help: "a page that steps through the scenario (an explore trace: its interleaving, preemptions marked), trace beside graph",
    },
    all: { type: "boolean", help: "keep every process's stdin/stdout/stderr on /dev/null" },
    output: { type: "string", short: "o", value: "FILE", help: "write to FILE instead of stdout" },
  },
  details:
    "Draws the twin's object graph after a scenario (default: the demo's scene, a VMM with the edu device " +
    "assigned and a second VMM told EBUSY) as SVG on stdout or in FILE. With --json: {svg} or {html}.",
  run: (inv) => graphRun(inv, (s) => process.stdout.write(s)),
};

/** The command on argv with its output to `out` (tests). */
export function graphMain(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): number {
  return runArgv(graphCommand, argv, out, graphRun);
}

function graphRun(inv: Invocation, out: (s: string) => void): number {
  const v = inv.values as {
    script?: string;
    replay?: string;
    at?: string;
    html?: boolean;
    all?: boolean;
    output?: string;
  };
  if (v.script !== undefined && v.replay !== undefined)
    throw new UsageError("--script and --replay exclude each other");
  const at = v.at === undefined ? undefined : v.at === "ebusy" ? "ebusy" : Number(v.at);
  if (at !== undefined && at !== "ebusy" && !(Number.isInteger(at) && at > 0))
    throw new UsageError(`--at takes a call number (1, 2, ...) or "ebusy", not ${JSON.stringify(v.at)}`);
  const src = {
    ...(v.script !== undefined ? { script: v.script } : {}),
    ...(v.replay !== undefined ? { replay: v.replay } : {}),
  };
  let text: string;
  try {
    if (v.html) text = renderPage(collectSteps({ ...src, teardown: true }, v.all === true));
    else text = `${staticGraph(src, at, v.all === true)}\n`;
  } catch (e) {
    if (e instanceof SceneError) throw new UserError(e.message);
    throw e;
  }
  if (v.output !== undefined) writeFileSync(v.output, text);
  else if (inv.json) out(`${toJson(v.html ? { html: text } : { svg: text.trimEnd() })}\n`);
  else out(text);
  return 0;
}
