/**
 * An SVG drawing of a few graph nodes (an attention block before fusion, or what replaced it after): nodes
 * placed in layers by their longest path from the block's inputs, edges for the values one node hands the
 * next, the block's external inputs and outputs as small labels. Self-contained SVG, no script.
 */
import type { Graph, Node } from "../ir/graph.js";

const BOX_W = 190;
const BOX_H = 34;
const GAP_X = 24;
const GAP_Y = 30;

export function escapeXml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

/** The nodes of `graph` named in `names`, in the graph's order. */
export function nodesNamed(graph: Graph, names: Iterable<string>): Node[] {
  const wanted = new Set(names);
  return graph.nodes.filter((n) => wanted.has(n.name));
}

/** The nodes that compute `output` from values outside the block, walking producers up to `limit` nodes. */
export function producersOf(graph: Graph, output: string, stopAt: ReadonlySet<string>, limit = 12): Node[] {
  const producer = new Map<string, Node>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const found = new Set<Node>();
  const stack = [output];
  while (stack.length > 0 && found.size < limit) {
    const n = producer.get(stack.pop()!);
    if (!n || found.has(n)) continue;
    found.add(n);
    for (const i of n.inputs) if (i && !stopAt.has(i) && !graph.initializers.has(i)) stack.push(i);
  }
  return graph.nodes.filter((n) => found.has(n));
}

export function drawNodes(nodes: readonly Node[], title: string): string {
  const byOutput = new Map<string, Node>();
  for (const n of nodes) for (const o of n.outputs) if (o) byOutput.set(o, n);
  const layer = new Map<Node, number>();
  for (const n of nodes) {
    // Nodes come in topological order, so every producer inside the block already has its layer.
    const deps = n.inputs
      .map((i) => (i ? byOutput.get(i) : undefined))
      .filter((p): p is Node => p !== undefined);
    layer.set(n, deps.length === 0 ? 0 : Math.max(...deps.map((p) => layer.get(p) ?? 0)) + 1);
  }
  const rows = new Map<number, Node[]>();
  for (const n of nodes) rows.set(layer.get(n)!, [...(rows.get(layer.get(n)!) ?? []), n]);
  const width = Math.max(1, ...[...rows.values()].map((r) => r.length)) * (BOX_W + GAP_X) + GAP_X;
  const height = rows.size * (BOX_H + GAP_Y) + GAP_Y + 20;
  const pos = new Map<Node, { x: number; y: number }>();
  for (const [l, row] of rows)
    row.forEach((n, i) => {
      const offset = (width - row.length * (BOX_W + GAP_X) + GAP_X) / 2;
      pos.set(n, { x: offset + i * (BOX_W + GAP_X), y: 20 + GAP_Y / 2 + l * (BOX_H + GAP_Y) });
    });
  const parts: string[] = [];
  for (const n of nodes)
    for (const i of n.inputs) {
      const p = i ? byOutput.get(i) : undefined;
      if (!p) continue;
      const a = pos.get(p)!;
      const b = pos.get(n)!;
      parts.push(
        `<line x1="${a.x + BOX_W / 2}" y1="${a.y + BOX_H}" x2="${b.x + BOX_W / 2}" y2="${b.y}" class="edge" marker-end="url(#arrow)"/>`,
      );
    }
  for (const n of nodes) {
    const { x, y } = pos.get(n)!;
    const fused = n.domain === "mhafuse";
    parts.push(
      `<g class="node${fused ? " fused" : ""}"><title>${escapeXml(n.name)}</title>` +
        `<rect x="${x}" y="${y}" width="${BOX_W}" height="${BOX_H}" rx="6"/>` +
        `<text x="${x + BOX_W / 2}" y="${y + 21}">${escapeXml(n.domain ? `${n.domain}.${n.opType}` : n.opType)}</text></g>`,
    );
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="block" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(title)}">` +
    `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>` +
    `<text x="8" y="14" class="caption">${escapeXml(title)}</text>${parts.join("")}</svg>`
  );
}
