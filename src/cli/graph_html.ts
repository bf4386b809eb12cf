// The scenario as a page to step through: the strace trace on the left, the object graph as it
// was after the current syscall on the right, the holders of an EBUSY outlined in red with their
// chains printed under the graph. One self-contained HTML file: every step's picture is drawn
// here on one shared layout (identical pictures stored once) and the page only swaps them, so
// it needs no library and no network.

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
import { formatEvent } from "../kernel/trace.js";
import { drawSvg, edgeKey, layoutGraph } from "./graph_svg.js";
import { runScene, type SceneSource } from "./scene.js";

export interface PageStep {
  /** the strace line */
  readonly line: string;
  /** index into the page's pictures */
  readonly svg: number;
  readonly busy: boolean;
  /** the chains of an EBUSY, as text */
  readonly holders?: string;
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

/** Run the scene and picture the graph after every traced call, every picture on one layout
 * so that stepping moves nothing: what appears, disappears or changes is what the call did. */
export function collectSteps(src: SceneSource, all = false): PageData {
  const pictures: { graph: ObjectGraph; hot: Set<string> | undefined }[] = [];
  const byKey = new Map<string, number>();
  const steps: PageStep[] = [];
  const scene = runScene(src, (twin, e) => {
    const k = twin.kernel;
    const full = objectGraph(k);
    const graph = all ? full : withoutStdio(full);
    let hot: Set<string> | undefined;
    const p = k.processes.get(e.pid);
    if (e.errno === "EBUSY" && p?.lastBusy) hot = holderIds(graph, busyTargets(k, p, p.lastBusy, graph));
    const key = signature(graph, hot);
    let idx = byKey.get(key);
    if (idx === undefined) {
      idx = pictures.push({ graph, hot }) - 1;
      byKey.set(key, idx);
    }
    steps.push({
      line: formatEvent(e),
      svg: idx,
      busy: e.errno === "EBUSY",
      ...(e.holders ? { holders: formatChains(e.holders) } : {}),
    });
  });
  const layout = layoutGraph(union(pictures.map((x) => x.graph)));
  const svgs = pictures.map((x) => drawSvg(x.graph, layout, x.hot ? { highlight: x.hot } : {}));
  return { title: scene.title, svgs, steps };
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
document.getElementById("next-busy").onclick = () => {
  for (let j = 1; j <= data.steps.length; j++) {
    const k = (cur + j) % data.steps.length;
    if (data.steps[k].busy) return show(k);
  }
};
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
