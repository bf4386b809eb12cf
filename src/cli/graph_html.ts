// The scenario as a page to step through: the strace trace on the left, the object graph as it
// was after the current syscall on the right, the holders of an EBUSY outlined in red with their
// chains printed under the graph. One self-contained HTML file: every step's picture is drawn
// here on one shared layout (identical pictures stored once) and the page only swaps them, so
// it needs no library and no network. An explore trace's page steps through its interleaving:
// each syscall under the thread that made it, each scheduler step (the yield points a thread
// ran between) with the graph after it, each preemption marked, the violation at the end.

import {
  busyTargets,
  formatChains,
  type GraphEdge,
  type GraphNode,
  holderIds,
  objectGraph,
  type ObjectGraph,
  withoutStdio,
} from "../check/holders.js";
import type { Kernel } from "../kernel/kernel.js";
import { formatEvent, type TraceEvent } from "../kernel/trace.js";
import { drawSvg, edgeKey, layoutGraph } from "./graph_svg.js";
import { type Interleaving, runScene, type SceneSource } from "./scene.js";

export interface PageStep {
  /** the strace line */
  readonly line: string;
  /** index into the page's pictures */
  readonly svg: number;
  readonly busy: boolean;
  /** the chains of an EBUSY, as text */
  readonly holders?: string;
  /** an interleaving's row that is no syscall: the world as built, a scheduler step, a
   * preemption or switch of thread, a violation or the results */
  readonly kind?: "world" | "step" | "preempt" | "violation";
}

export interface PageData {
  readonly title: string;
  readonly svgs: string[];
  readonly steps: PageStep[];
}

function signature(g: ObjectGraph, hot: ReadonlySet<string> | undefined): string {
  const n = [...g.nodes.values()].map((x) => `${x.id}:${x.label}:${x.refs ?? ""}`).join("|");
  const e = g.edges.map((x) => `${x.from}>${x.to}:${x.ref}:${x.count}`).join("|");
  return `${n}#${e}#${hot ? [...hot].sort().join(",") : ""}`;
}

/** Every node and reference any step had, each node as its widest label: one layout for all. */
function union(graphs: readonly ObjectGraph[]): ObjectGraph {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  const width = (n: GraphNode) => Math.max(n.label.length, String(n.refs ?? "").length + 9);
  for (const g of graphs) {
    for (const n of g.nodes.values()) {
      const had = nodes.get(n.id);
      if (!had || width(n) > width(had)) nodes.set(n.id, n);
    }
    for (const e of g.edges) {
      const had = edges.get(edgeKey(e));
      if (!had || e.count > had.count) edges.set(edgeKey(e), e);
    }
  }
  return { nodes, edges: [...edges.values()] };
}

/**
 * The object graph now, or null when it cannot be drawn: in a broken variant's interleaving a
 * live object can point at a released (poisoned) one, and reading it reports a use-after-free
 * that the drawing, not the schedule, made; that report is taken back.
 */
function graphNow(k: Kernel): ObjectGraph | null {
  const bugs = k.bugs.length;
  try {
    return objectGraph(k);
  } catch {
    return null;
  } finally {
    k.bugs.length = bugs;
  }
}

/** Run the scene and picture the graph after every traced call, every picture on one layout
 * so that stepping moves nothing: what appears, disappears or changes is what the call did. */
export function collectSteps(src: SceneSource, all = false): PageData {
  const pictures: { graph: ObjectGraph; hot: Set<string> | undefined }[] = [];
  const byKey = new Map<string, number>();
  const steps: PageStep[] = [];
  const empty: ObjectGraph = { nodes: new Map(), edges: [] };
  let last = -1;
  const picture = (k: Kernel, e?: TraceEvent): number => {
    const full = graphNow(k);
    if (full === null && last >= 0) return last;
    const graph = full === null ? empty : all ? full : withoutStdio(full);
    let hot: Set<string> | undefined;
    const p = e && k.processes.get(e.pid);
    if (e?.errno === "EBUSY" && p?.lastBusy) hot = holderIds(graph, busyTargets(k, p, p.lastBusy, graph));
    const key = signature(graph, hot);
    let idx = byKey.get(key);
    if (idx === undefined) {
      idx = pictures.push({ graph, hot }) - 1;
      byKey.set(key, idx);
    }
    return (last = idx);
  };
  // an interleaving's rows whose text needs the whole outcome: filled in after the run
  const pending: { at: number; kind: "world" | "step" | "preempt"; step: number }[] = [];
  let stepsRun = 0;
  const row = (kind: "world" | "step" | "preempt", step: number, svg: number) => {
    pending.push({ at: steps.length, kind, step });
    steps.push({ line: "", svg, busy: false, kind });
  };
  let prevThread = -1;
  const scene = runScene(
    src,
    (host, e) => {
      const line = host.thread !== undefined ? `[${host.thread}] ${formatEvent(e, { pid: false })}` : formatEvent(e);
      steps.push({
        line,
        svg: picture(host.kernel, e),
        busy: e.errno === "EBUSY",
        ...(e.holders ? { holders: formatChains(e.holders) } : {}),
      });
    },
    {
      built: (host) => row("world", -1, picture(host.kernel)),
      step: (host, n, thread) => {
        if (n > 0) row("step", n - 1, picture(host.kernel));
        if (prevThread !== -1 && thread !== prevThread) row("preempt", n, last);
        prevThread = thread;
        stepsRun = n + 1;
      },
    },
  );
  const il = scene.interleaving;
  if (il) {
    if (stepsRun > 0) row("step", stepsRun - 1, picture(scene.kernel));
    for (const p of pending) (steps[p.at] as { line: string }).line = interleavingRow(il, p.kind, p.step);
    const end = picture(scene.kernel);
    for (const line of interleavingEnd(il)) steps.push({ line, svg: end, busy: false, kind: "violation" });
  }
  const layout = layoutGraph(union(pictures.map((x) => x.graph)));
  const svgs = pictures.map((x) => drawSvg(x.graph, layout, x.hot ? { highlight: x.hot } : {}));
  return { title: scene.title, svgs, steps };
}

/** A row of the interleaving as `vfio-twin replay` prints it (src/check/report.ts). */
function interleavingRow(il: Interleaving, kind: "world" | "step" | "preempt", n: number): string {
  const o = il.outcome;
  if (kind === "world") return `# world ${il.trace.world} built; threads: ${o.threads.join(", ")}`;
  const s = o.steps[n];
  if (!s) return `step ${n}`;
  if (kind === "step") return `${String(n).padStart(3)} [${o.threads[s.thread]}] ${s.from} -> ${s.to}`;
  const prev = o.steps[n - 1]!;
  const stillRunnable = o.steps.slice(n).some((x) => x.thread === prev.thread);
  return stillRunnable
    ? `---- preempt: ${o.threads[prev.thread]} at ${prev.to} -> ${o.threads[s.thread]} ----`
    : `---- switch: ${o.threads[prev.thread]} ${prev.to === "done" ? "done" : `blocks at ${prev.to}`} -> ${o.threads[s.thread]} ----`;
}

/** The end of an interleaving: what each thread returned, the violation, whether it was the saved one. */
function interleavingEnd(il: Interleaving): string[] {
  const o = il.outcome;
  const out = [
    `results: ${o.threads.map((n, i) => `${n} = ${JSON.stringify(o.results[i], (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`).join(", ")}`,
  ];
  if (o.deadlock) out.push(`DEADLOCK: ${o.deadlock}`);
  for (const v of o.violations) out.push(`VIOLATION [${v.check}] ${v.message}`);
  if (!o.deadlock && o.violations.length === 0) out.push("no violation");
  out.push(
    il.reproduced
      ? "reproduced exactly"
      : o.violations.length || o.deadlock
        ? "a violation, but not the saved one"
        : "the saved violation no longer reproduces",
  );
  return out;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** The page: data as JSON in the document, a few lines of script to step through it. */
export function renderPage(d: PageData): string {
  const json = JSON.stringify(d).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vfio-twin: ${esc(d.title)}</title>
<style>
  body { margin: 0; font: 13px/1.4 system-ui, sans-serif; color: #0f172a; }
  header { padding: 8px 12px; border-bottom: 1px solid #cbd5e1; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
  header h1 { font-size: 15px; margin: 0 12px 0 0; }
  button { font: inherit; padding: 2px 10px; }
  main { display: flex; height: calc(100vh - 46px); }
  #trace { width: 42%; overflow: auto; margin: 0; padding: 6px 0; border-right: 1px solid #cbd5e1; font: 12px/1.5 monospace; list-style: none; }
  #trace li { padding: 0 8px; white-space: pre; cursor: pointer; }
  #trace li.busy { color: #b91c1c; }
  #trace li.world, #trace li.step { color: #475569; font-style: italic; }
  #trace li.preempt { color: #c2410c; font-weight: bold; }
  #trace li.violation { color: #7f1d1d; background: #fee2e2; }
  #trace li.current { background: #dbeafe; }
  #trace li.after { color: #94a3b8; }
  #right { flex: 1; overflow: auto; }
  #graph svg { display: block; }
  #holders { margin: 8px 12px; font: 12px/1.4 monospace; color: #7f1d1d; white-space: pre; }
</style>
</head>
<body>
<header>
  <h1>${esc(d.title)}</h1>
  <button id="first" title="first step">first</button>
  <button id="prev" title="previous step (Left)">&#x25C0; prev</button>
  <button id="next" title="next step (Right)">next &#x25B6;</button>
  <button id="last" title="last step">last</button>
  <button id="next-busy" title="the next EBUSY">next EBUSY</button>
  <button id="next-preempt" title="the next preemption or switch of thread" hidden>next preempt</button>
  <span id="pos"></span>
</header>
<main>
  <ol id="trace"></ol>
  <div id="right"><div id="graph"></div><pre id="holders"></pre></div>
</main>
<script type="application/json" id="data">${json}</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const trace = document.getElementById("trace");
const items = data.steps.map((s, i) => {
  const li = document.createElement("li");
  li.textContent = s.line;
  if (s.busy) li.classList.add("busy");
  if (s.kind) li.classList.add(s.kind);
  li.addEventListener("click", () => show(i));
  trace.appendChild(li);
  return li;
});
let cur = -1;
function show(i) {
  if (data.steps.length === 0) return;
  i = Math.max(0, Math.min(data.steps.length - 1, i));
  const s = data.steps[i];
  if (cur < 0 || data.steps[cur].svg !== s.svg) document.getElementById("graph").innerHTML = data.svgs[s.svg];
  items.forEach((li, j) => {
    li.classList.toggle("current", j === i);
    li.classList.toggle("after", j > i);
  });
  items[i].scrollIntoView({ block: "nearest" });
  document.getElementById("holders").textContent = s.holders ? "who holds it:\\n" + s.holders : "";
  document.getElementById("pos").textContent = "step " + (i + 1) + " / " + data.steps.length;
  cur = i;
  document.body.dataset.step = String(i);
}
document.getElementById("first").onclick = () => show(0);
document.getElementById("prev").onclick = () => show(cur - 1);
document.getElementById("next").onclick = () => show(cur + 1);
document.getElementById("last").onclick = () => show(data.steps.length - 1);
function nextWhere(want) {
  for (let j = 1; j <= data.steps.length; j++) {
    const k = (cur + j) % data.steps.length;
    if (want(data.steps[k])) return show(k);
  }
}
document.getElementById("next-busy").onclick = () => nextWhere((s) => s.busy);
const preempt = document.getElementById("next-preempt");
preempt.hidden = !data.steps.some((s) => s.kind === "preempt");
preempt.onclick = () => nextWhere((s) => s.kind === "preempt");
document.addEventListener("keydown", (e) => {
  if (e.key === "ArrowRight") show(cur + 1);
  else if (e.key === "ArrowLeft") show(cur - 1);
});
if (data.steps.length) show(0);
else document.getElementById("graph").textContent = "the scenario made no syscalls";
</script>
</body>
</html>
`;
}
