// The object graph as a picture: processes -> fds -> files -> groups, devices, containers,
// iommufd objects -> VMs and modules, each object with its refcount, each arrow a reference
// named as the kernel names it. Laid out by dagre (a layered layout, left to right), drawn as
// a standalone SVG with nothing but text and shapes, so it embeds anywhere.

import dagre from "@dagrejs/dagre";
import type { GraphEdge, GraphNode, NodeKind, ObjectGraph } from "../check/holders.js";

/** Fill and stroke per kind; holders of an EBUSY get a red outline (class "holder"). */
const COLORS: Record<NodeKind, [string, string]> = {
  process: ["#dbeafe", "#1d4ed8"],
  fd: ["#f1f5f9", "#64748b"],
  vma: ["#f1f5f9", "#64748b"],
  file: ["#fef9c3", "#a16207"],
  vfio_group: ["#dcfce7", "#15803d"],
  vfio_device: ["#dcfce7", "#15803d"],
  vfio_container: ["#dcfce7", "#15803d"],
  iommufd: ["#ede9fe", "#6d28d9"],
  kvm: ["#ffedd5", "#c2410c"],
  domain: ["#fce7f3", "#be185d"],
  module: ["#e5e7eb", "#374151"],
  kernel: ["#fafafa", "#9ca3af"],
};

const CHAR_W = 7.2;
const LINE_H = 15;

export interface SvgOptions {
  /** node ids to outline (the holders of an EBUSY) */
  readonly highlight?: ReadonlySet<string>;
  readonly title?: string;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function nodeLines(n: GraphNode): string[] {
  const lines = [n.label];
  if (n.refs !== undefined) lines.push(n.kind === "module" ? `refcnt ${n.refs}` : `refcount ${n.refs}`);
  return lines;
}

/** The arrow's label: the reference's name where it says more than the two boxes do. */
function edgeLabel(ref: string, count: number): string {
  if (ref === "fd table" || ref === "address space" || ref === "vma" || /^fd \d+ of pid \d+$/.test(ref)) return "";
  const name = /^file /.test(ref) ? "open file" : ref;
  const s = count > 1 ? `${name} x${count}` : name;
  return s.length > 28 ? `${s.slice(0, 27)}…` : s;
}

/** A stable DOM id for a node (ids like "fd:1:3" are fine in SVG, but keep them simple). */
export function domId(id: string): string {
  return `n-${id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** Where dagre put each node (centre and size) and each reference (its route and label). */
export interface Layout {
  readonly width: number;
  readonly height: number;
  readonly nodes: Map<string, { x: number; y: number; width: number; height: number }>;
  readonly edges: Map<string, { points: { x: number; y: number }[]; x?: number; y?: number }>;
}

/** A reference's identity across the steps of a scenario. */
export function edgeKey(e: GraphEdge): string {
  return `${e.from}>${e.to}>${e.ref}`;
}

/** Lay the graph out (left to right: holders before what they hold). */
export function layoutGraph(graph: ObjectGraph): Layout {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 70, edgesep: 8, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes.values()) {
    const lines = nodeLines(n);
    const w = Math.max(...lines.map((l) => l.length)) * CHAR_W + 16;
    g.setNode(n.id, { width: w, height: lines.length * LINE_H + 10 });
  }
  for (const e of graph.edges) {
    const label = edgeLabel(e.ref, e.count);
    g.setEdge(e.from, e.to, label ? { width: label.length * 6, height: 12, labelpos: "c" } : {}, edgeKey(e));
  }
  dagre.layout(g);
  const nodes: Layout["nodes"] = new Map();
  for (const id of graph.nodes.keys()) {
    const n = g.node(id);
    nodes.set(id, { x: n.x, y: n.y, width: n.width, height: n.height });
  }
  const edges: Layout["edges"] = new Map();
  for (const e of graph.edges) {
    const le = g.edge({ v: e.from, w: e.to, name: edgeKey(e) });
    if (le) edges.set(edgeKey(e), { points: le.points ?? [], ...(le.x !== undefined ? { x: le.x, y: le.y } : {}) });
  }
  const gl = g.graph();
  return { width: Math.ceil(gl.width ?? 200), height: Math.ceil(gl.height ?? 60), nodes, edges };
}

/** The graph laid out and drawn; an empty graph is a small SVG that says so. */
export function graphSvg(graph: ObjectGraph, o: SvgOptions = {}): string {
  return drawSvg(graph, layoutGraph(graph), o);
}

/**
 * Draw `graph` at the places `layout` gives (a layout of this graph, or of a larger one that
 * contains it: the steps of a scenario share one layout, so nothing moves between them).
 */
export function drawSvg(graph: ObjectGraph, layout: Layout, o: SvgOptions = {}): string {
  const width = layout.width;
  const height = layout.height + (o.title ? 24 : 0);
  const dy = o.title ? 24 : 0;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">`,
    `<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#64748b"/></marker></defs>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
  ];
  if (o.title) out.push(`<text x="12" y="17" font-weight="bold">${esc(o.title)}</text>`);
  if (graph.nodes.size === 0) out.push(`<text x="12" y="${dy + 30}">no processes, files or objects</text>`);
  out.push(`<g transform="translate(0 ${dy})">`);
  graph.edges.forEach((e) => {
    const le = layout.edges.get(edgeKey(e));
    if (!le?.points.length) return;
    const pts = le.points.map((p: { x: number; y: number }) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
    const hot = o.highlight?.has(e.from) && o.highlight.has(e.to);
    out.push(
      `<g class="edge${hot ? " holder" : ""}"><title>${esc(e.ref)}${e.takenBy ? ` - taken by ${esc(e.takenBy)}` : ""}</title>` +
        `<polyline points="${pts}" fill="none" stroke="${hot ? "#dc2626" : "#94a3b8"}" stroke-width="${hot ? 2 : 1}" marker-end="url(#arrow)"/>`,
    );
    const short = edgeLabel(e.ref, e.count);
    if (short && le.x !== undefined && le.y !== undefined) {
      out.push(
        `<text x="${le.x.toFixed(1)}" y="${(le.y + 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#475569">${esc(short)}</text>`,
      );
    }
    out.push(`</g>`);
  });
  for (const n of graph.nodes.values()) {
    const ln = layout.nodes.get(n.id);
    if (!ln) continue;
    const [fill, stroke] = COLORS[n.kind];
    const hot = o.highlight?.has(n.id);
    const x = ln.x - ln.width / 2;
    const y = ln.y - ln.height / 2;
    out.push(
      `<g class="node ${n.kind}${hot ? " holder" : ""}" id="${domId(n.id)}">` +
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${ln.width.toFixed(1)}" height="${ln.height.toFixed(1)}" rx="5" fill="${fill}" stroke="${hot ? "#dc2626" : stroke}" stroke-width="${hot ? 3 : 1}"/>`,
    );
    nodeLines(n).forEach((l, i) => {
      out.push(
        `<text x="${ln.x.toFixed(1)}" y="${(y + 5 + LINE_H * (i + 1) - 3).toFixed(1)}" text-anchor="middle"${i ? ' fill="#475569" font-size="11"' : ""}>${esc(l)}</text>`,
      );
    });
    out.push(`</g>`);
  }
  out.push(`</g></svg>`);
  return out.join("\n");
}
