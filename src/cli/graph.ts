// `vfio-twin graph [--script FILE | --replay FILE] [--html] [--all] [-o FILE]`: the object
// graph (processes -> fds -> files -> VFIO/iommufd objects -> VMs, modules) as SVG, of the
// demo's scene by default; --html writes one self-contained page that steps through the
// scenario syscall by syscall with the trace beside the graph.

import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { busyTargets, holderIds, objectGraph, withoutStdio } from "../check/holders.js";
import { formatEvent } from "../kernel/trace.js";
import { collectSteps, renderPage } from "./graph_html.js";
import { graphSvg } from "./graph_svg.js";
import { runScene, SceneError, type SceneSource } from "./scene.js";

export const GRAPH_USAGE = `usage: vfio-twin graph [--script FILE | --replay FILE] [--at N|ebusy] [--html] [--all] [-o FILE]

Draw the twin's object graph after a scenario (default: the demo's scene, a VMM with the edu
device assigned and a second VMM told EBUSY) as SVG on stdout or in FILE.
  --script FILE   an oracle scenario file (test/scenarios/*.txt)
  --replay FILE   a counterexample program (the JSON vfio-twin fuzz writes)
  --at N|ebusy    the graph after the Nth traced call (1-based), or after the first EBUSY,
                  with the EBUSY's holders outlined; default: after the scenario
  --html          a page that steps through the scenario, trace beside graph (the demo: with teardown)
  --all           keep every process's stdin/stdout/stderr on /dev/null
  -o, --output    write to FILE instead of stdout
  -h, --help      this help`;

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
  const g = objectGraph(scene.twin.kernel);
  return graphSvg(all ? g : withoutStdio(g), { title: scene.title });
}

/** Runs the command; returns the exit code. */
export function graphMain(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): number {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        script: { type: "string" },
        replay: { type: "string" },
        html: { type: "boolean" },
        at: { type: "string" },
        all: { type: "boolean" },
        output: { type: "string", short: "o" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
    }).values;
  } catch (e) {
    console.error(`vfio-twin graph: ${(e as Error).message.split(". ")[0]}`);
    return 2;
  }
  if (v.help) {
    out(`${GRAPH_USAGE}\n`);
    return 0;
  }
  if (v.script !== undefined && v.replay !== undefined) {
    console.error("vfio-twin graph: --script and --replay exclude each other");
    return 2;
  }
  const at = v.at === undefined ? undefined : v.at === "ebusy" ? "ebusy" : Number(v.at);
  if (at !== undefined && at !== "ebusy" && !(Number.isInteger(at) && at > 0)) {
    console.error(`vfio-twin graph: --at takes a call number (1, 2, ...) or "ebusy", not ${JSON.stringify(v.at)}`);
    return 2;
  }
  const src = {
    ...(v.script !== undefined ? { script: v.script } : {}),
    ...(v.replay !== undefined ? { replay: v.replay } : {}),
  };
  let text: string;
  try {
    if (v.html) text = renderPage(collectSteps({ ...src, teardown: true }, v.all === true));
    else text = `${staticGraph(src, at, v.all === true)}\n`;
  } catch (e) {
    if (e instanceof SceneError) {
      console.error(`vfio-twin graph: ${e.message}`);
      return 1;
    }
    throw e;
  }
  if (v.output !== undefined) writeFileSync(v.output, text);
  else out(text);
  return 0;
}

export const graphCommand = {
  name: "graph",
  summary:
    "draw the object graph (processes, fds, files, VFIO/iommufd objects, VMs, modules) as SVG; --html steps through it",
  run: (args: string[]) => graphMain(args),
};
